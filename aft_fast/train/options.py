"""`TrainOptions`: every option of a training run, one field each. The CLI makes one flag per
field (`aft_fast.commands.train`), `--config` YAML fills them, a run's `args.yaml` records them.
Add an option here (with its help text in `commands/train.py`'s HELP) and it exists everywhere."""
from __future__ import annotations

from dataclasses import dataclass, fields

from aft_fast.errors import check, check_at_least, check_choice, check_pixels
from aft_fast.fast_path import AMP_SETTINGS, CHANNELS_LAST_SETTINGS, channels_last_setting
from aft_fast.models.normalize import parse_floats
from aft_fast.policy import (BN_MODES, LOADERS, METHOD_NAMES, NONFINITE_POLICIES,
                             OPTIMIZERS)
from aft_fast.train.methods import METHODS
from aft_fast.train.schedules import SCHEDULES, make_schedule


@dataclass
class TrainOptions:
    method: str = "aft"
    arch: str = "small_cnn"
    # Normalisation inside the model, one value or one per channel ("0.5", "0.485,0.456,0.406",
    # a YAML list); None: the arch's default (aft_fast.models.build)
    mean: str | list | None = None
    std: str | list | None = None
    data: str = "mnist5k"
    out: str = "runs/aft"
    weights: str | None = None
    replace_head: bool = False
    allow_scratch: bool = False
    train_only: str | None = None  # a submodule's name: train its parameters only (RiFT)
    freeze_bn_stats: bool = False  # BatchNorm layers stay in eval mode while training
    epochs: float | None = None  # None: the method's default (divided by replays for Free AT)
    batch_size: int = 128  # per process (global batch = batch_size x processes)
    global_batch: int | None = None  # split over the processes instead (kept on --resume)
    sync_bn: bool = False  # BatchNorm statistics over the global batch (DDP on GPUs)
    eval_batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str | None = None
    schedule_params: dict | None = None
    eps: float = 0.3
    alpha: float | None = None
    steps: int = 10
    replays: int | None = None
    eval_steps: int | None = None  # None: policy.EVAL_STEPS (adversarial), clean only (natural)
    eval_max_batches: int | None = None
    eval_images: int | None = None  # per-epoch evaluation: images per split (None: the budget)
    eval_full: bool = False  # per-epoch evaluation on the whole splits at PGD-EVAL_FULL_STEPS
    amp: str = "auto"  # auto: the device's native half precision (aft_fast.fast_path)
    bn_mode: str | None = None  # None: the method's (its reference code's) mode
    eps_warmup_epochs: float = 0.0  # ε (and α) grow linearly from 0 over these epochs
    channels_last: str = "auto"  # auto/on/off (True/False: on/off); auto: on for conv nets
    compile: bool = False
    loader: str = "pytorch"
    check_files: bool = True
    image_size: int | None = None
    augment: str | None = None  # None: "small" for images of at most 64 px, else "imagenet"
    class_map: str | None = None  # folder classes -> the pretrained model's output indices
    train_images: int | None = None  # a fixed subset of the training split (quick runs)
    workers: int = 2
    device: str = "auto"
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    co_guard: bool = False
    save_every: int | None = None  # also write last.pt every N steps (mid-epoch, resumable)
    on_nonfinite: str = "stop"  # a NaN/inf loss: stop (naming the step) or skip the update
    log_every: int = 50
    quiet: bool = False

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    def check(self) -> "TrainOptions":
        """Refuse, before any work, every option value that cannot run or makes no sense with the
        others (OptionError naming the option). What needs the data or the weights (class
        counts, image sizes, files) is checked where they are opened."""
        self.channels_last = channels_last_setting(self.channels_last)
        for name, choices in (("method", METHOD_NAMES), ("amp", AMP_SETTINGS),
                              ("channels_last", CHANNELS_LAST_SETTINGS),
                              ("loader", LOADERS), ("on_nonfinite", NONFINITE_POLICIES)):
            check_choice(name, getattr(self, name), choices)
        for name, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("bn_mode", BN_MODES)):
            if getattr(self, name) is not None:  # None: the method's default
                check_choice(name, getattr(self, name), choices)
        check_pixels("eps", self.eps)
        check_pixels("alpha", self.alpha)
        for name in ("mean", "std"):  # numbers, before any data is read
            parse_floats(name, getattr(self, name))
        for name in ("steps", "eval_steps", "workers", "momentum", "weight_decay",
                     "eps_warmup_epochs"):
            check_at_least(name, getattr(self, name), 0)
        for name in ("batch_size", "global_batch", "eval_batch_size", "eval_max_batches",
                     "replays", "log_every",
                     "image_size", "eval_images", "save_every"):
            check_at_least(name, getattr(self, name), 1)
        for name in ("epochs", "lr"):
            check_at_least(name, getattr(self, name), 0, strict=True)
        self._check_combinations()
        self._check_schedule_params()
        return self

    def _check_combinations(self) -> None:
        check(self.replays is None or self.method == "free-at", "replays",
              f"only free-at replays each batch; --method {self.method} takes no --replays")
        check(not self.co_guard or self.method == "fast-at", "co_guard",
              "guards Fast AT against catastrophic overfitting; use it with --method fast-at")
        check(self.alpha is None or self.method != "natural", "alpha",
              "natural training runs no attack: drop --alpha or pick an adversarial --method")
        check(not self.replace_head or self.weights, "replace_head",
              "re-initialises the classifier of --weights: pass --weights PATH as well")
        check(not (self.sync_bn and self.freeze_bn_stats), "sync_bn",
              "BatchNorm layers frozen by --freeze-bn-stats compute no batch statistics, so there "
              "is nothing to synchronise: drop one of the two")
        check(not (self.resume and self.overwrite), "overwrite",
              "replaces the run in --out, which --resume continues: pass one of them")

    def _check_schedule_params(self) -> None:
        if self.schedule_params is None:
            return
        check(isinstance(self.schedule_params, dict), "schedule_params",
              f"must be a mapping like {{every: 2, gamma: 0.5}}, got {self.schedule_params!r}")
        # the schedule (the method's default when none is named) refuses what it cannot take
        make_schedule(self.schedule or METHODS[self.method].schedule, 1.0, 10.0,
                      **self.schedule_params)
