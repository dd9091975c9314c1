"""`RunDir`: everything a training run keeps on disk, in one object (timm's checkpoint saver).

    args.yaml      the resolved configuration (feeds back into --config)
    metrics.jsonl  one row per finished epoch; summary.csv the same rows as a table
    last.pt        the newest resumable state: after each epoch, every --save-every steps and
                   when SIGTERM/SIGINT stops the run (mid-epoch, with the loader position)
    best.pt        the epoch with the best validation metric (written before last.pt and the
                   tables, so it is never older than the metrics say)
    lr.png, accuracy.png
    tensorboard/   the metrics rows as TensorBoard event files (`tensorboard.py`, --tensorboard)
    .lock          the process running it (`run_lock`), while it runs

Every file is written atomically (temporary file + rename): a run killed at any moment leaves
the previous version or the new one. Only rank 0 writes (`is_main`).
"""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import torch
import yaml

from aft_fast.errors import OptionError
from aft_fast.io import write_text
from aft_fast.train.checkpoint import read_checkpoint, save_checkpoint
from aft_fast.train.plots import plot_accuracy, plot_schedule
from aft_fast.train.run_lock import LOCK_NAME, RunLock
from aft_fast.train.tensorboard import FOLDER as TENSORBOARD

RUN_FILES = ("args.yaml", "metrics.jsonl", "summary.csv", "last.pt", "best.pt", "lr.png",
             "accuracy.png")
RUN_MARKS = ("args.yaml", "metrics.jsonl", "last.pt")  # a folder with one of these holds a run
SPACE_MARGIN = 3  # last.pt, best.pt and one temporary copy exist at once


class RunDir:
    def __init__(self, path, *, is_main: bool = True):
        self.path, self.is_main = Path(path), is_main
        self.replacing = False  # an old run here is replaced (--overwrite) in `start`
        self.lock = RunLock(self.path, say=print)

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    def prepare(self, *, resume: bool, overwrite: bool) -> None:
        """Before any work: refuse what would lose a run (a non-empty folder needs --resume or
        --overwrite; --overwrite replaces a run directory only), check the folder is writable,
        and lock it (`run_lock`). Nothing is deleted here: --overwrite removes the old run's
        files in `start`, once every other check has passed, so a refused run loses nothing."""
        if resume:
            if not self.last.is_file():
                raise OptionError("resume", f"{self.last} does not exist; start the run without "
                                  "--resume")
        elif self.is_main:
            self.replacing = self._check_replaceable(overwrite)
        if self.is_main:
            self._probe_write()
            self.lock.acquire()
            self._remove_stale_temporaries()

    def unlock(self) -> None:
        self.lock.release()

    def _check_replaceable(self, overwrite: bool) -> bool:
        """Whether --overwrite will replace an old run here (refused: a non-empty folder without
        it, or with it a folder that holds no run)."""
        existing = sorted(p.name for p in self.path.iterdir() if not _own_leftover(p.name)) \
            if self.path.is_dir() else []
        if existing and not overwrite:
            shown = ", ".join(existing[:5]) + (", ..." if len(existing) > 5 else "")
            raise OptionError("out", f"{self.path} is not empty ({shown}); pass --resume to "
                              "continue the run there, --overwrite to replace its run files (other "
                              "files are kept), or another --out")
        if existing and not set(existing) & set(RUN_MARKS):
            raise OptionError("overwrite", f"{self.path} holds no run (none of "
                              f"{', '.join(RUN_MARKS)}): --overwrite replaces a run directory's "
                              "files only; pick an empty or new --out")
        return bool(existing)

    def _clear(self) -> None:
        for f in RUN_FILES:  # --overwrite: no file of the old run may pass for one of the new run
            if (self.path / f).exists():
                (self.path / f).unlink()
        shutil.rmtree(self.path / TENSORBOARD, ignore_errors=True)

    def _probe_write(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            write_text("", self.path / ".write_probe")
            (self.path / ".write_probe").unlink()
        except OSError as exc:
            raise OptionError("out", f"cannot write to {self.path} ({exc.strerror or exc}); "
                              "pick a writable folder") from None

    def _remove_stale_temporaries(self) -> None:
        """A run killed inside an atomic write leaves its temporary file (`.last.pt.*.tmp`)."""
        for f in RUN_FILES:
            for tmp in self.path.glob(f".{f}.*.tmp"):
                tmp.unlink(missing_ok=True)

    def check_space(self, checkpoint_bytes: int) -> None:
        """Refuse to start when the disk cannot hold the run's checkpoints."""
        if not self.is_main:
            return
        free, need = shutil.disk_usage(self.path).free, SPACE_MARGIN * checkpoint_bytes
        if self.replacing:  # the old run's files go before the first checkpoint
            free += sum((self.path / f).stat().st_size for f in RUN_FILES
                        if (self.path / f).is_file())
        if free < need:
            raise OptionError("out", f"{self.path} has {free / 2**20:.0f} MiB free; the run's "
                              f"checkpoints need about {need / 2**20:.0f} MiB")

    def start(self, config: dict, schedule) -> None:
        if self.is_main:
            if self.replacing:
                self._clear()
            write_text(yaml.safe_dump(config, sort_keys=False), self.path / "args.yaml")
            plot_schedule(schedule, self.path / "lr.png")

    def load_last(self) -> dict:
        return read_checkpoint(self.last, option="resume")

    def save(self, state: dict, *, best: bool = False) -> None:
        """`state`: `save_checkpoint`'s keyword arguments. best.pt first, then last.pt."""
        if not self.is_main:
            return
        if best:
            save_checkpoint(self.best, **state)
        save_checkpoint(self.last, **state)

    def write_rows(self, rows: list[dict]) -> None:
        """metrics.jsonl, summary.csv and accuracy.png from the finished epochs' rows."""
        if not self.is_main or not rows:
            return
        write_text("".join(json.dumps(r) + "\n" for r in rows), self.path / "metrics.jsonl")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
        write_text(buf.getvalue(), self.path / "summary.csv")
        plot_accuracy(rows, self.path / "accuracy.png")


def _own_leftover(name: str) -> bool:
    """The lock, the write probe, or a temporary file of a run file (a run killed inside an
    atomic write, even before its first checkpoint): not a file of the user's."""
    return name in (LOCK_NAME, ".write_probe") or any(
        name.startswith(f".{f}.") and name.endswith(".tmp") for f in RUN_FILES)


def checkpoint_bytes(model: torch.nn.Module, optimizer, *, ema: bool = False) -> int:
    """Roughly one checkpoint's size: the weights and buffers (twice with a weight average) plus
    the optimizer's state (its per-parameter buffers: one for SGD momentum, two for Adam),
    before the first step."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    per_param = {"SGD": 1, "Adam": 2, "AdamW": 2}.get(type(optimizer).__name__, 2)
    return weights * (1 + int(ema) + per_param)
