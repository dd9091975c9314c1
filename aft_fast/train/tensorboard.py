"""TensorBoard event files of a training run (`--tensorboard`, on by default): RUN/tensorboard/
gets each finished epoch's metrics row, one scalar per numeric column (loss, accuracies, `lr`,
images/s, `attack_ms_per_iter`, the weight average's accuracies) at step = the epoch's number
(1-based), through `torch.utils.tensorboard.SummaryWriter`. metrics.jsonl stays the record: a
resumed run rewrites the board from it, so the board never disagrees with the tables. Rank 0
only. Without the `tensorboard` package (`pip install '.[tensorboard]'`) a run warns once per
process and trains on without it."""
from __future__ import annotations

import warnings
from pathlib import Path

FOLDER = "tensorboard"  # inside the run directory
_warned = False


def _writer(folder: Path):
    global _warned
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises it when the tensorboard package is absent
        if not _warned:
            _warned = True
            warnings.warn("--tensorboard: the tensorboard package is not installed, so this run "
                          "writes no event files (pip install 'aft_fast[tensorboard]', or pass "
                          "--no-tensorboard to silence this)", UserWarning, stacklevel=3)
        return None
    # purge_step=1: what an earlier process of a resumed run wrote is dropped on reading; the
    # history is written again from the metrics rows
    return SummaryWriter(str(folder), purge_step=1)


class EpochBoard:
    """One run's board; every method does nothing when it is off or the package is missing."""

    def __init__(self, run_path, enabled: bool, history: list[dict] = ()):
        self.writer = _writer(Path(run_path) / FOLDER) if enabled else None
        for row in history:
            self.epoch(row)

    def epoch(self, row: dict) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, row["epoch"] + 1)
        self.writer.flush()  # a killed run keeps the epochs it finished

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
