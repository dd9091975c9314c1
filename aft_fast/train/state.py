"""`TrainState`: the live objects of a run and where it stands, to and from a checkpoint.

The position is the next batch to run (`epoch`, `batch`): 0 at the start of an epoch, or the
batch after the last one done when a run stops mid-epoch (SIGTERM, --save-every). With it go the
epoch's partial sums, so a resumed epoch's metrics row is the one the run would have written.
Under DDP what differs between ranks (random stream, partial sums, method state such as Free
AT's perturbation) is kept for every rank ("progress"/"ranks"); the top-level "rng" and
"method_state" are rank 0's. Resumed under another world size, rank 0 continues rank 0's stream,
the other ranks start their own, and the partial sums of all old ranks go to rank 0.
The checkpoint's "epoch" key keeps its meaning: the last finished epoch (-1 before the first).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from aft_fast.distributed import Dist, rank_seed
from aft_fast.train.checkpoint import rng_state, set_rng_state
from aft_fast.train.co_guard import COGuard
from aft_fast.train.update import Trainer

if TYPE_CHECKING:
    from aft_fast.methods import Method


@dataclass
class TrainState:
    method: "Method"
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
    dist: Dist = field(default_factory=Dist)
    seed: int = 0

    @property
    def optimizer(self):
        return self.trainer.optimizer

    @property
    def ema(self):
        """The weight average (`--ema`), or None."""
        return self.trainer.ema

    def new_sums(self) -> torch.Tensor:
        return torch.zeros(3, dtype=torch.float64, device=self.trainer.device)

    def checkpoint(self) -> dict:
        """`save_checkpoint`'s keyword arguments for the current position."""
        sums = self.sums.cpu() if self.sums is not None and self.batch else None
        method_state = self.method.state_dict()
        shared = self.method.same_state_on_every_rank  # then only the top level holds it
        ranks = self.dist.gather({"rng": rng_state(), "sums": sums,
                                  "method_state": None if shared else method_state})
        if ranks and not shared:  # rank 0's entry is a copy: the top level's tensors instead,
            ranks[0]["method_state"] = method_state  # so saved once
        progress = {"epoch": self.epoch, "batch": self.batch, "sums": sums, "history": self.rows,
                    "nonfinite": self.trainer.nonfinite.state_dict(),
                    "guard": self.guard.state_dict() if self.guard else None,
                    "stopped": self.stopped, "ranks": ranks}
        return dict(model=self.model, epoch=self.epoch - 1, optimizer=self.optimizer,
                    scaler=self.trainer.scaler, schedule=self.schedule,
                    metrics=self.rows[-1] if self.rows else {}, best=self.best,
                    method_state=method_state, progress=progress,
                    ema=self.ema.state_dict() if self.ema else None, **self.meta)

    def restore(self, ckpt: dict) -> None:
        """Continue from `ckpt` exactly: weights (and their average), optimizer, scaler, RNGs,
        method state, non-finite record, co-guard, position and history."""
        self.model.model.load_state_dict(ckpt["model"])
        if self.ema is not None:  # `--resume` refuses a run started with another --ema
            self.ema.load_state_dict(ckpt["ema"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            self.trainer.scaler.load_state_dict(ckpt["scaler"])
        progress = ckpt.get("progress") or {"epoch": ckpt["epoch"] + 1, "batch": 0}
        ranks = progress.get("ranks")
        mine = ranks[self.dist.rank] if ranks and len(ranks) == self.dist.world_size else None
        set_rng_state(mine["rng"] if mine else ckpt["rng"])
        if mine is None and self.dist.rank:  # another world size: a stream of this rank's own,
            # moved on by the position so it is not the one the rank started the run with
            torch.manual_seed(rank_seed(self.seed, self.dist.rank) + 1 + progress["epoch"])
        own = ckpt if mine is None or self.method.same_state_on_every_rank else mine
        self.method.load_state_dict(own.get("method_state") or {})
        self.epoch, self.batch, self.best = progress["epoch"], progress["batch"], ckpt.get("best")
        self.rows, self.stopped = list(progress.get("history") or []), progress.get("stopped")
        self.trainer.nonfinite.load_state_dict(progress.get("nonfinite") or {})
        if self.guard is not None and progress.get("guard"):
            self.guard.load_state_dict(progress["guard"], self.trainer.device)
        sums = mine["sums"] if mine else _all_ranks_sums(progress, ranks)
        if mine is None and sums is not None and self.dist.rank:
            sums = torch.zeros_like(sums)  # the old ranks' counts are on rank 0
        self.sums = sums.to(self.trainer.device) if sums is not None else None


def _all_ranks_sums(progress: dict, ranks: list | None):
    """The epoch's partial sums over every rank that wrote `progress` (one process: its own)."""
    if not ranks:
        return progress.get("sums")
    parts = [r["sums"] for r in ranks if r["sums"] is not None]
    return torch.stack(parts).sum(0) if parts else None
