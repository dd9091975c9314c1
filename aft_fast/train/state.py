"""`TrainState`: the live objects of a run and where it stands, to and from a checkpoint.

The position is the next batch to run (`epoch`, `batch`): 0 at the start of an epoch, or the
batch after the last one done when a run stops mid-epoch (SIGTERM, --save-every). With it go the
epoch's partial sums, so a resumed epoch's metrics row is the one the run would have written.
The checkpoint's "epoch" key keeps its meaning: the last finished epoch (-1 before the first).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from aft_fast.train.checkpoint import set_rng_state
from aft_fast.train.co_guard import COGuard
from aft_fast.train.methods import Method, Trainer


@dataclass
class TrainState:
    method: Method
    model: torch.nn.Module  # Normalized (unwrapped): what evaluation and checkpoints read
    trainer: Trainer  # the optimizer, the GradScaler and the non-finite record
    schedule: object
    meta: dict  # arch, num_classes, input_size, method, config: what rebuilds the model
    guard: COGuard | None = None
    epoch: int = 0
    batch: int = 0
    sums: torch.Tensor | None = None  # this epoch so far: loss·n, correct, n (on the device)
    rows: list = field(default_factory=list)  # finished epochs' metrics rows
    best: dict | None = None  # {"epoch", "metric", "value"} of best.pt
    stopped: str | None = None  # why the run ended early (the co-guard): a resume does nothing
    n_batches: int = 1  # batches per epoch (turns a global step into epoch and batch)

    @property
    def optimizer(self):
        return self.trainer.optimizer

    def new_sums(self) -> torch.Tensor:
        return torch.zeros(3, dtype=torch.float64, device=self.trainer.device)

    def checkpoint(self) -> dict:
        """`save_checkpoint`'s keyword arguments for the current position."""
        sums = self.sums.cpu() if self.sums is not None and self.batch else None
        progress = {"epoch": self.epoch, "batch": self.batch, "sums": sums, "history": self.rows,
                    "nonfinite": self.trainer.nonfinite.state_dict(),
                    "guard": self.guard.state_dict() if self.guard else None,
                    "stopped": self.stopped}
        return dict(model=self.model, epoch=self.epoch - 1, optimizer=self.optimizer,
                    scaler=self.trainer.scaler, schedule=self.schedule,
                    metrics=self.rows[-1] if self.rows else {}, best=self.best,
                    method_state=self.method.state_dict(), progress=progress, **self.meta)

    def restore(self, ckpt: dict) -> None:
        """Continue from `ckpt` exactly: weights, optimizer, scaler, RNGs, method state,
        non-finite record, co-guard, position and history."""
        self.model.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            self.trainer.scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        self.method.load_state_dict(ckpt.get("method_state") or {})
        progress = ckpt.get("progress") or {"epoch": ckpt["epoch"] + 1, "batch": 0}
        self.epoch, self.batch, self.best = progress["epoch"], progress["batch"], ckpt.get("best")
        self.rows, self.stopped = list(progress.get("history") or []), progress.get("stopped")
        self.trainer.nonfinite.load_state_dict(progress.get("nonfinite") or {})
        if self.guard is not None and progress.get("guard"):
            self.guard.load_state_dict(progress["guard"], self.trainer.device)
        sums = progress.get("sums")
        self.sums = sums.to(self.trainer.device) if sums is not None else None
