"""`CompareOptions`: every option of a method comparison, one field each (the CLI makes one
flag per field)."""
from __future__ import annotations

from dataclasses import dataclass

from aft_fast.compare.recipes import ROW_NAMES, row_class
from aft_fast.errors import check, check_at_least, check_choice, check_pixels
from aft_fast.fast_path import AMP_SETTINGS, CHANNELS_LAST_SETTINGS, channels_last_setting
from aft_fast.policy import AA_POINTS, AUTOATTACK_REFERENCE, COMPARE_EMA_DECAY


@dataclass
class CompareOptions:
    data: str = "mnist5k"
    arch: str = "small_cnn"
    eps: float = 0.3
    out: str = "runs/compare"  # training runs, evaluation state, and (unless --report) the table
    report: str | None = None  # where table.md / table.json / robust_vs_cost.png go (None: out)
    seeds: tuple = (0,)
    methods: tuple = ROW_NAMES  # built-in rows and RiFT, or a method's import path
    # budget (see aft_fast.compare.recipes)
    epochs: tuple = (8,)  # E: epochs of data of every from-scratch method; several: a sweep
    aft_epochs: int | None = None  # A: AFT's (and RiFT's) fine-tuning epochs; None: round(E/8)
    train_steps: int = 7  # k of PGD AT's and AFT's PGD-k training examples
    replays: int | None = None  # Free AT's m; None: 4 for the small CNN, 8 otherwise
    warmup_fraction: float = 0.25  # PGD AT's ε warm-up, as a fraction of its epochs
    ema_decay: float = COMPARE_EMA_DECAY  # τ of the weight-average rows (pgd-at+ema, aft+ema)
    batch_size: int = 128
    train_images: int | None = None  # a fixed subset of the training split, for every row
    val_images: int | None = None  # per-epoch validation images (None: the training default)
    device: str = "auto"
    # the training rows' precision and memory format (aft_fast.fast_path); evaluation is fp32
    amp: str = "auto"
    channels_last: str = "auto"
    # the evaluation protocol (aft_fast.compare.protocol)
    eval_images: int | None = None  # PGD / AutoAttack / masking on the first N test images
    pgd_steps: int = 50
    pgd_restarts: int = 5
    aa_steps: int = AUTOATTACK_REFERENCE["steps"]
    aa_queries: int = AUTOATTACK_REFERENCE["queries"]
    aa_targets: int = AUTOATTACK_REFERENCE["targets"]
    aa_images: int | None = None  # AutoAttack on the first N of the evaluated images (None: all)
    mask_images: int = 500
    aa_points: str = "all"  # a sweep's points that AutoAttack evaluates (policy.AA_POINTS)
    test_each_epoch: bool = False  # the training rows' per-epoch test columns (reported only)
    eval_batch_size: int = 500
    train_only: bool = False  # train every row, evaluate nothing (evaluate later, elsewhere)
    report_only: bool = False  # write the table from the finished rows; train/evaluate nothing
    quiet: bool = False

    @property
    def sweep(self) -> bool:
        """Several budgets: rows per budget, the paper-length fine-tunes, a Pareto plot."""
        return len(self.epochs) > 1

    def check(self) -> "CompareOptions":
        if isinstance(self.epochs, int):  # one budget, as the API took it before sweeps
            self.epochs = (self.epochs,)
        self.epochs = tuple(self.epochs)
        check(len(self.epochs) >= 1, "epochs", "give at least one budget, e.g. 8 or 4,8,16,32")
        check(len(set(self.epochs)) == len(self.epochs), "epochs",
              f"a budget is given twice: {','.join(map(str, self.epochs))}")
        for e in self.epochs:
            check_at_least("epochs", e, 1)
        check_choice("aa_points", self.aa_points, AA_POINTS)
        self.channels_last = channels_last_setting(self.channels_last)
        check_choice("amp", self.amp, AMP_SETTINGS)
        check_choice("channels_last", self.channels_last, CHANNELS_LAST_SETTINGS)
        check_pixels("eps", self.eps)
        check(self.eps > 0, "eps", "must be > 0: a comparison of robust training needs a radius")
        check(len(self.seeds) >= 1, "seeds", "give at least one seed")
        check(len(self.methods) >= 1, "methods", f"names no method: give rows from "
              f"{', '.join(ROW_NAMES)} (or a method's import path package.module:Class)")
        rows = [row_class(m) for m in self.methods]  # an unknown name is refused here
        keys = [c.name for c in rows]
        check(len(set(keys)) == len(keys), "methods", f"a row is named twice: {', '.join(keys)}")
        for c in rows:
            check(not c.parent or c.parent in keys, "methods",
                  f"{c.name} starts from the {c.parent} model: include {c.parent}")
        for name in ("train_steps", "batch_size", "pgd_steps", "pgd_restarts",
                     "aa_steps", "aa_queries", "aa_targets", "mask_images", "eval_batch_size",
                     "aft_epochs", "replays", "eval_images", "val_images", "train_images",
                     "aa_images"):
            check_at_least(name, getattr(self, name), 1)
        check(0 <= self.warmup_fraction <= 1, "warmup_fraction",
              f"must be in [0, 1], got {self.warmup_fraction}")
        check(0 < self.ema_decay < 1, "ema_decay", f"is the decay of the weight-average rows' "
              f"average and must be in (0, 1), e.g. 0.995; got {self.ema_decay}")
        check(not (self.train_only and self.report_only), "train_only",
              "--train-only trains and --report-only trains nothing: give one of them")
        return self
