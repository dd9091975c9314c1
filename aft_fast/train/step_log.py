"""What a training epoch prints and times: a line (or a tqdm bar's postfix on a terminal) every
--log-every steps with loss, accuracy, LR, images/s and data time; the epoch's wall-clock and the
attack's time per iteration. The device is synchronised only where a timing needs it."""
from __future__ import annotations

import sys
import time

import torch
from tqdm import tqdm

from aft_fast.runtime import synced_clock


class StepLog:
    def __init__(self, *, epoch: int, epochs: int, n_batches: int, start_batch: int, name: str,
                 device: torch.device, log_every: int, show: bool, world_size: int = 1):
        self.epoch, self.n_batches, self.log_every = epoch, n_batches, log_every
        self.device, self.show, self.world_size = device, show, world_size
        self.bar = tqdm(total=n_batches, initial=start_batch, leave=False,
                        desc=f"{name} epoch {epoch + 1}/{epochs}",
                        disable=not (show and sys.stderr.isatty()))
        # Attack timings synchronise the device: every iteration on CPU (free), a sample on GPUs.
        self.timed_every = 1 if device.type == "cpu" else max(1, min(log_every, 20))
        self.images, self.data_time = 0, 0.0
        self.start = synced_clock(device)
        self._t_data = time.perf_counter()

    def batch_ready(self) -> None:
        self.data_time += time.perf_counter() - self._t_data

    def times_attack(self, i: int) -> bool:
        return i % self.timed_every == self.timed_every - 1 or i == self.n_batches - 1

    def due(self, i: int) -> bool:
        return (i + 1) % self.log_every == 0

    def step_done(self, n_images: int) -> None:
        self.images += n_images
        self.bar.update(1)
        self._t_data = time.perf_counter()

    def line(self, i: int, sums: torch.Tensor, lr: float) -> None:
        """The log line after batch `i` from the epoch's on-device sums (one host sync)."""
        if not self.show:
            return
        loss_sum, correct, n = sums.tolist()
        elapsed = synced_clock(self.device) - self.start
        msg = (f"loss {loss_sum / max(n, 1):.4f} acc {correct / max(n, 1):.3f} lr {lr:.3g} "
               f"{self.images * self.world_size / elapsed:.0f} img/s data {self.data_time:.1f}s")
        if not self.bar.disable:
            self.bar.set_postfix_str(msg)
        else:
            print(f"  epoch {self.epoch + 1} iter {i + 1}/{self.n_batches}: {msg}", flush=True)

    def finish(self) -> tuple[float, float]:
        """(seconds of this pass, images/s over all ranks)."""
        self.bar.close()
        seconds = synced_clock(self.device) - self.start
        return seconds, self.images * self.world_size / max(seconds, 1e-12)


def say(show: bool, message: str) -> None:
    if show:
        print(message, flush=True)
