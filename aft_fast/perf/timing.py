"""Honest timings: warm-up first, the device synchronised around every timed region (CUDA events
on a GPU), the median of N repeats, and side-by-side variants interleaved round by round so a slow
spell of the machine hits every variant alike. Figures are only compared within one run."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from aft_fast.errors import check_at_least


@dataclass
class Timing:
    """Seconds per call of one variant: every sample and their median."""

    name: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the samples were."""
        if len(self.samples) < 2:
            return 0.0
        return (max(self.samples) - min(self.samples)) / self.median

    def as_dict(self) -> dict:
        return {"median_s": self.median, "min_s": min(self.samples), "max_s": max(self.samples),
                "repeats": len(self.samples), "samples_s": self.samples}


class DeviceTimer:
    """Times one call of `fn`: CUDA events on a GPU (the device's own clock, after a sync),
    `perf_counter` on a CPU."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def __call__(self, fn: Callable[[], object]) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.sync()  # queued work of earlier calls must not count
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start


def time_interleaved(variants: dict[str, Callable[[], object]], device: torch.device | str, *,
                     warmup: int = 1, repeats: int = 5,
                     progress: Callable[[str], None] | None = None) -> dict[str, Timing]:
    """Median seconds per call of each variant, measured in `repeats` interleaved rounds after
    `warmup` untimed calls of each (allocator, autotuning and caches settle first)."""
    check_at_least("repeats", repeats, 1)
    check_at_least("warmup", warmup, 0)
    timer = DeviceTimer(device)
    for name, fn in variants.items():
        if progress:
            progress(f"warm-up: {name}")
        for _ in range(warmup):
            fn()
    timer.sync()
    out = {name: Timing(name) for name in variants}
    for r in range(repeats):
        if progress:
            progress(f"round {r + 1}/{repeats}")
        for name, fn in variants.items():
            out[name].samples.append(timer(fn))
    return out
