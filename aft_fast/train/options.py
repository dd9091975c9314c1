"""`TrainOptions`: every option of a training run, one field each. The CLI makes one flag per
field (`aft_fast.commands.train`), `--config` YAML fills them, a run's `args.yaml` records them.
Add an option here (with its help text in `commands/train.py`'s HELP) and it exists everywhere."""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class TrainOptions:
    method: str = "aft"
    arch: str = "small_cnn"
    data: str = "mnist5k"
    out: str = "runs/aft"
    weights: str | None = None
    replace_head: bool = False
    allow_scratch: bool = False
    epochs: float | None = None  # None: the method's default (divided by replays for Free AT)
    batch_size: int = 128
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
    eval_steps: int = 20
    eval_max_batches: int | None = None
    amp: str = "none"
    bn_mode: str = "eval"
    channels_last: bool = False
    compile: bool = False
    loader: str = "pytorch"
    check_files: bool = True
    image_size: int | None = None
    workers: int = 2
    device: str = "auto"
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    co_guard: bool = False
    log_every: int = 50
    quiet: bool = False

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}
