"""Preemption: SIGTERM (a cluster reclaiming the node) or SIGINT (Ctrl-C) asks the run to stop.

The handler only sets a flag; the loop reads it after each step and before each batch of the
per-epoch evaluation (a Python bool: free), writes a checkpoint that resumes mid-epoch exactly
(an interrupted evaluation is redone on resume), and raises `Preempted`, a `SystemExit` with status
128 + the signal's number (143 for SIGTERM, 130 for SIGINT): the status a shell gives a process
the signal ended, so job schedulers see "killed by the signal" and requeue it. A second SIGINT
interrupts at once (KeyboardInterrupt). Under DDP the ranks agree on the flag every
`AGREE_EVERY` steps (one small all-reduce), so all of them stop after the same step.
"""
from __future__ import annotations

import signal
import threading

import torch

from aft_fast.policy import EXIT_SIGNAL_BASE

SIGNALS = (signal.SIGTERM, signal.SIGINT)
AGREE_EVERY = 10  # steps between the ranks' agreement on a stop request (DDP only)


class Preempted(SystemExit):
    """The run stopped on a signal after writing `checkpoint`; `code` is the exit status."""

    def __init__(self, signum: int, checkpoint):
        self.signum, self.checkpoint = signum, checkpoint
        super().__init__(EXIT_SIGNAL_BASE + signum)


class StopRequest:
    """A context that turns SIGTERM/SIGINT into a flag (only in the main thread, where Python
    delivers signals; elsewhere the flag simply never rises)."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.signum is not None:
            raise KeyboardInterrupt  # asked twice: stop now
        self.signum = signum

    def requested(self, dist, step: int | None = None) -> bool:
        """Whether to stop after step `step`, or now (`None`: every rank asks at the same point);
        all ranks give the same answer."""
        if not dist.enabled:
            return self.signum is not None
        if step is not None and (step + 1) % AGREE_EVERY:
            return False
        flag = torch.tensor([float(self.signum or 0)], dtype=torch.float64)
        total = dist.sum(flag.to(_device_of(dist)))
        if total.item() and self.signum is None:
            self.signum = signal.SIGTERM  # another rank was signalled
        return bool(total.item())


def _device_of(dist) -> torch.device:
    # nccl reduces CUDA tensors only; gloo CPU ones.
    if torch.cuda.is_available() and torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
