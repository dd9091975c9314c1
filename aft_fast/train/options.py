"""`TrainOptions`: every option of a training run, one field each, declared once with its help,
choices and check (`aft_fast.options.option`). The CLI makes one flag per field
(`aft_fast.commands.train`), `--config` YAML fills them, a run's `args.yaml` records them: add an
option here and it exists everywhere.
The built-in methods' own options (Free AT's `replays`, Fast AT's `co_guard`, TRADES' `beta`) are
fields too, made from their declarations in `aft_fast.methods` (the help text comes with them);
a user's method's options go in `method_options`."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass

from aft_fast.errors import check, check_choice
from aft_fast.fast_path import (AMP_HELP, AMP_SETTINGS, CHANNELS_LAST_HELP,
                                CHANNELS_LAST_SETTINGS, channels_last_setting)
from aft_fast.models.normalize import parse_floats
from aft_fast import methods
from aft_fast.options import check_declared, option
from aft_fast.policy import (AUGMENTS, BN_MODES, CHECK_FILES, CHECK_FILES_OF, LOADERS,
                             NONFINITE_POLICIES, OPTIMIZERS)
from aft_fast.train.schedules import SCHEDULES, make_schedule


@dataclass
class _TrainOptions:
    method: str = option(
        "aft", f"Training method: {', '.join(methods.NAMES)}, or your own as an import path "
        "package.module:Class (a subclass of aft_fast.methods.Method; see docs/METHODS.md). "
        "`aft-fast methods` lists them.")
    arch: str = option(
        "small_cnn", "Model architecture: ours (small_cnn, preact_resnet18, wrn28_10, wrn34_10), "
        "efficientnet_lite0, a torchvision or timm name (timm/NAME), or package.module:factory "
        "for your own nn.Module; `aft-fast models` lists them.")
    mean: str | list | None = option(
        None, "Normalisation mean inside the model, one value or one per channel (0.5 or "
        "0.485,0.456,0.406; default: the arch's).")
    std: str | list | None = option(
        None, "Normalisation std inside the model, like --mean (default: the arch's).")
    data: str = option(
        "mnist5k", "mnist5k, fashion-mnist, synthetic, or an ImageNet-style folder (train/<class>/*, "
        "val/<class>/*).")
    out: str = option(
        "runs/aft", "Run directory (args.yaml, metrics.jsonl, summary.csv, last.pt, best.pt, plots).")
    weights: str | None = option(
        None, "Local weights to start from: a state_dict (module./_orig_mod. prefixes and "
        "state_dict/model wrappers are fine, .safetensors too) or an aft_fast checkpoint; "
        "`pretrained`: the file a packaged example ships (efficientnet_lite0).")
    replace_head: bool = option(
        False, "Re-initialise the classifier when --weights has another class count.")
    allow_scratch: bool = option(
        False, "Let aft run without --weights (fine-tuning random weights).")
    train_only: str | None = option(
        None, "Train only this submodule's parameters (a name such as layer4.1.conv2 or 7; the rest "
        "frozen), as RiFT does.")
    freeze_bn_stats: bool = option(
        False, "Keep BatchNorm layers in eval mode while training (running statistics unchanged).")
    epochs: float | None = option(
        None, "Passes over the training data (default: the method's; Free AT's default is divided by "
        "--replays, as each batch is replayed m times).", low=0, strict=True)
    batch_size: int = option(
        128, "Samples per step of each process (global batch = batch size x processes).", low=1)
    global_batch: int | None = option(
        None, "Samples per step over all processes, split evenly among them (instead of --batch-size "
        "per process); --resume keeps a run's global batch under any number of processes.", low=1)
    sync_bn: bool = option(
        False, "DDP on GPUs: BatchNorm statistics over the global batch (SyncBatchNorm).")
    eval_batch_size: int | None = option(
        None, "Batch size of the per-epoch evaluation (default: the training batch size).", low=1)
    lr: float | None = option(
        None, "Peak/base learning rate (default: the method's).", low=0, strict=True)
    optimizer: str | None = option(None, "sgd or adam (default: the method's).", choices=OPTIMIZERS)
    momentum: float = option(0.9, "SGD momentum.", low=0)
    weight_decay: float = option(5e-4, "SGD weight decay.", low=0)
    schedule: str | None = option(
        None, "LR schedule: slow-start-fast-decay, step-lr, multistep, cyclic, constant (default: the "
        "method's).", choices=SCHEDULES)
    schedule_params: dict | None = option(
        None, "YAML mapping of schedule parameters, e.g. '{every: 2, gamma: 0.5}'.")
    eps: float = option(
        0.3, "l∞ radius in pixel units of [0,1] images; fractions like 8/255 accepted.",
        pixels=True)
    alpha: float | None = option(
        None, "Attack step size (default: 2.5·eps/steps; Fast AT 1.25·eps; Free AT eps).",
        pixels=True)
    steps: int = option(10, "PGD steps of the training attack.", low=0)
    eval_steps: int | None = option(
        None, "PGD steps of the per-epoch evaluation (default: 10 for adversarial methods, 0 = clean "
        "accuracy only for natural; 20 with --eval-full).", low=0)
    eval_max_batches: int | None = option(
        None, "Evaluate at most this many batches per epoch (faster).", low=1)
    eval_images: int | None = option(
        None, "Per-epoch evaluation: at most this many images of val and of train_eval (default: 512, "
        "at most 5% of the training split, at least 128).", low=1)
    eval_full: bool = option(
        False, "Evaluate the whole val split and train_eval subset each epoch (PGD-20 unless "
        "--eval-steps), instead of the budget.")
    test_each_epoch: bool = option(
        False, "Also evaluate the test split each epoch, within the same budget (test_clean_acc, "
        "test_robust_acc in metrics.jsonl: held-out curves for `aft-fast analyze curves`); a "
        "reported column only, never used to pick best.pt, and the training is unchanged.")
    amp: str = option("auto", AMP_HELP, choices=AMP_SETTINGS)
    bn_mode: str | None = option(
        None, "BatchNorm mode during the training attack: eval or train (default: the method's "
        "reference code: train for fast-at and free-at, eval otherwise).", choices=BN_MODES)
    ema: float | None = option(
        None, "Keep an exponential moving average of the weights with this decay (e.g. 0.995 or "
        "0.999; warm-up min(decay, (1+t)/(10+t)) as in Gowal et al. 2020): evaluated every epoch "
        "(ema_val_* columns), picks best.pt, and is the model checkpoints give by default "
        "(eval --raw-weights: the trained weights). Off by default.", low=0, strict=True)
    eps_warmup_epochs: float = option(
        0.0, "Grow eps (and alpha) linearly from 0 over the first N epochs (0: off).", low=0)
    channels_last: str | bool = option("auto", CHANNELS_LAST_HELP)
    compile: bool = option(
        False, "torch.compile the weight update and the attack's forward + input backward.")
    loader: str = option("pytorch", "pytorch or dali (image folders).", choices=LOADERS)
    check_files: str | bool = option(
        "bytes", "Image folders, before training: bytes (each file's first/last bytes: truncated or "
        "foreign files), decode (decode every image as the loader will: also a corrupt middle; "
        "costs a decode of the folder) or off. true/false (an old args.yaml): bytes/off.",
        choices=CHECK_FILES)
    image_size: int | None = option(
        None, "Image side: folders' train crop / val centre crop (default: the images' own side up to "
        "64 px, else 224), synthetic data's side (default 32); (fashion-)mnist is always 28.",
        low=1)
    augment: str | None = option(
        None, "Folder augmentation: imagenet (random-resized crop + flip / resize + centre crop), "
        "small (4-px padded random crop + flip / as is), none (default: small for images of at "
        "most 64 px, else imagenet).", choices=AUGMENTS)
    class_map: str | None = option(
        None, "Folder classes -> the pretrained model's output indices: a JSON {class: index} file, a "
        "class-list file (one a line), or a packaged map (imagenette).")
    train_images: int | None = option(
        None, "Train on a fixed subset of this many training images (the same for every --seed; val "
        "and test unchanged): quick runs.")
    val_images: int | None = option(
        None, "Images held out from an image folder's training split as val (model selection, "
        "per-epoch metrics; default: one evaluation batch or 2%, at most a fifth); built-in "
        "datasets have a fixed val split.", low=1)
    workers: int = option(2, "Data-loading worker processes.", low=0)
    device: str = option("auto", "auto, cpu, cuda or cuda:N.")
    seed: int = option(
        0, "Seeds the weights, data order and attacks (a run is exactly repeatable on a CPU).")
    resume: bool = option(False, "Continue the run in --out from last.pt, exactly.")
    overwrite: bool = option(False, "Replace a run already in --out.")
    save_every: int | None = option(
        None, "Also write last.pt every N training steps (resumes mid-epoch exactly).", low=1)
    on_nonfinite: str = option(
        "stop", "A NaN/inf training loss: stop (naming the step; checkpoints keep the last finite "
        "weights) or skip that batch's update and count it.", choices=NONFINITE_POLICIES)
    log_every: int = option(50, "A progress line every N steps.", low=1)
    tensorboard: bool = option(
        True, "Write each epoch's metrics (loss, accuracies, LR, attack ms per iteration) as "
        "TensorBoard event files in --out/tensorboard (needs the tensorboard package).")
    quiet: bool = option(False, "Print nothing but errors.")
    method_options: dict | None = option(
        None, "Own options of a --method given by import path, a YAML mapping like '{beta: 3}' "
        "(built-in methods' own options are flags of their own).")

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    def check(self) -> "TrainOptions":
        """Refuse, before any work, every option value that cannot run or makes no sense with the
        others (OptionError naming the option). What needs the data or the weights (class
        counts, image sizes, files) is checked where they are opened."""
        self.method_class()  # a built-in name or an importable Method subclass
        self.channels_last = channels_last_setting(self.channels_last)  # an old args.yaml's bool
        check_choice("channels_last", self.channels_last, CHANNELS_LAST_SETTINGS)
        self.check_files = CHECK_FILES_OF.get(self.check_files, self.check_files)
        check_declared(self)  # each field's choices, radius and bounds, as declared
        for name in ("mean", "std"):  # numbers, before any data is read
            parse_floats(name, getattr(self, name))
        self._check_combinations()
        self.method_kwargs()  # each of the method's own options, checked by its declaration
        self._check_schedule_params()
        self._check_sense()
        return self

    def method_class(self):
        return methods.get(self.method)

    def method_kwargs(self) -> dict:
        """The method's own options given (a flag, YAML, or `method_options`); an own option of
        another method, or one the method does not have, is refused naming it."""
        cls = self.method_class()
        mine = {o.name: o for o in cls.options}
        # not given: None, or off for a flag (0 and 0.0 are values: `--beta 0`)
        given = {name: getattr(self, name) for name in OWN_OPTIONS
                 if getattr(self, name) is not None and getattr(self, name) is not False}
        for name in given:
            owners = ", ".join(c.name for c, _ in OWN_OPTIONS[name])
            check(name in mine, name, f"is an option of {owners}; --method {self.method} does "
                  f"not take it (its own options: {', '.join(mine) or 'none'})")
        extra = self.method_options or {}
        check(isinstance(extra, dict), "method_options",
              f"must be a mapping like '{{beta: 3}}', got {extra!r}")
        for name in extra:
            check(name in mine, "method_options", f"method {self.method} has no option "
                  f"{name!r} (its own options: {', '.join(mine) or 'none'})")
            check(name not in given, "method_options", f"{name} is given twice (--{name} and "
                  "method_options): give it once")
        kwargs = {**given, **extra}
        for name, value in kwargs.items():
            mine[name].value(value)
        return kwargs

    def _check_sense(self) -> None:
        """Values that would be accepted without effect or without sense (issue 23)."""
        import math
        import os

        if self.epochs is not None:
            check(math.isfinite(self.epochs) and self.epochs == int(self.epochs), "epochs",
                  f"must be a whole number of epochs, got {self.epochs:g}")
        method = self.method_class()
        check(not method.adversarial or self.eps > 0, "eps",
              f"--method {self.method} attacks within eps: 0 trains naturally and its robust "
              "accuracy would never be measured; pass eps > 0 or --method natural")
        check(self.steps >= 1 or not method.uses_steps, "steps",
              f"--method {self.method} trains on PGD-k examples: 0 steps attack nothing; pass "
              "steps >= 1 or --method natural")
        check(self.image_size is None or self.data not in ("mnist5k", "fashion-mnist"),
              "image_size",
              f"{self.data} is 28x28 built-in data, not resized: drop --image-size (it applies "
              "to image folders and synthetic data)")
        most = max(32, 4 * (os.cpu_count() or 1))
        check(self.workers <= most, "workers",
              f"must be at most {most} (4 per CPU of this machine), got {self.workers}")
        check(0 <= self.seed < 2**32, "seed", f"must be in [0, 2**32), got {self.seed}")
        check(self.ema is None or self.ema < 1, "ema",
              f"is the decay of the weight average and must be below 1 (e.g. 0.995 or 0.999), "
              f"got {self.ema}")
        check(bool(str(self.out).strip()), "out",
              "is empty: name the run's folder (an empty one would write into the current folder)")

    def _check_combinations(self) -> None:
        check(self.alpha is None or self.method_class().adversarial, "alpha",
              f"{self.method} runs no attack: drop --alpha or pick an adversarial --method")
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
        make_schedule(self.schedule or self.method_class().schedule, 1.0, 10.0,
                      **self.schedule_params)


# The built-in methods' own options: {name: [(method class, MethodOption), ...]}.
OWN_OPTIONS = methods.own_options()


def _own_field(name: str, declared: list):
    _cls, option = declared[0]
    kind = option.type if option.type is bool else option.type | None
    # not given: None (the method's default), or off for a flag
    return (name, kind, field(default=False if option.type is bool else None,
                              metadata={"help": option.help, "choices": option.choices}))


TrainOptions = make_dataclass("TrainOptions", [_own_field(n, d) for n, d in OWN_OPTIONS.items()],
                              bases=(_TrainOptions,))
TrainOptions.__module__ = __name__
TrainOptions.__doc__ = _TrainOptions.__doc__
