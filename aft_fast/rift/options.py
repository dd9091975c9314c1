"""`RiftOptions`: every option of RiFT's three steps, one field each (the CLI makes one flag per
field, `--config` YAML fills them), and the checks that turn a bad value into an `OptionError`
naming the field."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

from aft_fast.errors import OptionError
from aft_fast.fast_path import AMP_SETTINGS, CHANNELS_LAST_SETTINGS, channels_last_setting
from aft_fast.policy import BN_STATS, LOADERS

DEFAULT_ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))  # 0, 0.1, ..., 1


@dataclass
class RiftOptions:
    checkpoint: str | None = None  # the adversarially trained model (an aft_fast checkpoint)
    data: str = "mnist5k"
    out: str = "runs/rift"
    eps: float | None = None  # None: the ε the checkpoint was trained at
    device: str = "auto"
    seed: int = 0
    batch_size: int = 128
    eval_batch_size: int = 256
    image_size: int | None = None  # None: the checkpoint's input size
    loader: str = "pytorch"
    workers: int = 2
    overwrite: bool = False
    trust_code: bool = False  # the checkpoint's arch is an import path: import that code
    quiet: bool = False
    # 1. module robust criticality
    rho: float = 0.1
    mrc_examples: int = 512
    mrc_steps: int = 10
    mrc_batch_size: int = 256
    attack_steps: int = 10  # PGD steps of the fixed MRC examples
    activation_cache: bool = True
    # 2. fine-tuning one module
    module: str | None = None  # None: the least critical module of OUT/mrc.json
    epochs: int = 10
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    bn_stats: str = "frozen"
    amp: str = "auto"  # the fine-tune's precision and memory format (aft_fast.fast_path)
    channels_last: str = "auto"
    # 3. interpolation
    finetuned: str | None = None  # None: OUT/finetune/best.pt
    alphas: tuple = DEFAULT_ALPHAS
    tolerance: float = 0.005
    val_images: int | None = None  # score each α on at most this many val images (None: all)
    eval_steps: int = 10  # PGD steps of the validation attack that scores each α

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


def _positive(opts, *names):
    for name in names:
        value = getattr(opts, name)
        if not value > 0:
            raise OptionError(name, f"must be > 0, got {value}")


def check(opts: RiftOptions, *steps: str) -> None:
    """Refuse bad values of the options the given steps ("mrc", "finetune", "interpolate") use."""
    if not opts.checkpoint:
        raise OptionError("checkpoint", "is required: the adversarially trained model's "
                                        "checkpoint (best.pt or last.pt of an aft-fast train run)")
    if opts.eps is not None and not (opts.eps >= 0 and math.isfinite(opts.eps)):
        raise OptionError("eps", f"must be a finite number >= 0, got {opts.eps}")
    if opts.loader not in LOADERS:
        raise OptionError("loader", f"must be one of {', '.join(LOADERS)}; got {opts.loader!r}")
    _positive(opts, "batch_size", "eval_batch_size")
    if "mrc" in steps:
        _positive(opts, "rho", "mrc_examples", "mrc_steps", "mrc_batch_size", "attack_steps")
    if "finetune" in steps:
        _positive(opts, "epochs", "lr")
        if opts.bn_stats not in BN_STATS:
            raise OptionError("bn_stats", f"must be one of {', '.join(BN_STATS)}; "
                                          f"got {opts.bn_stats!r}")
        opts.channels_last = channels_last_setting(opts.channels_last)
        for name, choices in (("amp", AMP_SETTINGS), ("channels_last", CHANNELS_LAST_SETTINGS)):
            if getattr(opts, name) not in choices:
                raise OptionError(name, f"must be one of {', '.join(choices)}; "
                                        f"got {getattr(opts, name)!r}")
        if opts.momentum < 0 or opts.weight_decay < 0:
            bad = "momentum" if opts.momentum < 0 else "weight_decay"
            raise OptionError(bad, f"must be >= 0, got {getattr(opts, bad)}")
    if "interpolate" in steps:
        if len(opts.alphas) == 0:
            raise OptionError("alphas", "the grid is empty; give the interpolation factors to "
                                        "try, e.g. 0,0.1,0.2,...,1")
        bad = [a for a in opts.alphas if not 0 <= a <= 1]
        if bad:
            raise OptionError("alphas", f"every α must lie in [0, 1] (0 = the AT model, 1 = the "
                                        f"fine-tuned one); got {bad}")
        if opts.val_images is not None:
            _positive(opts, "val_images")
        if not 0 <= opts.tolerance < 1:
            raise OptionError("tolerance", f"must be in [0, 1) (a fraction: 0.005 = 0.5 "
                                           f"points), got {opts.tolerance}")
    if "interpolate" in steps:
        _positive(opts, "eval_steps")
