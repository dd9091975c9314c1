"""Loader throughput: images/s of the training loader (its augmentation preset) per epoch after
one warm-up epoch, on the same folder with the same number of CPU threads (DALI threads =
DataLoader workers), median over epochs.

When several loaders are compared their timed epochs are interleaved (epoch 1 of each, then
epoch 2 of each, ...), so a load change on a shared machine hits every loader alike."""
from __future__ import annotations

import os
import statistics
import time

import torch

from aft_fast.errors import OptionError


def _timed_epoch(train, epoch: int, device) -> tuple[int, float]:
    train.set_epoch(epoch)
    n, start = 0, time.perf_counter()
    for x, _ in train:
        n += len(x)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return n, time.perf_counter() - start


def bench_loaders(folder: str, loaders: list[str], *, image_size: int, batch_size: int,
                  epochs: int, threads: int, device="cpu") -> list[dict]:
    """One result per loader: {loader, images_per_epoch, images_per_second (median), per_epoch}."""
    from aft_fast.data import make_loaders

    if epochs < 1:
        raise OptionError("epochs", f"must be >= 1, got {epochs}")
    torch.set_num_threads(threads)
    trains = {name: make_loaders(folder, batch_size=batch_size, loader=name,
                                 image_size=image_size, device=device, workers=threads,
                                 val_size=1).train for name in loaders}
    for train in trains.values():  # warm-up: worker start, pipeline build, page cache
        _timed_epoch(train, 0, device)
    rates = {name: [] for name in loaders}
    counts = {}
    for epoch in range(1, epochs + 1):
        for name, train in trains.items():
            counts[name], seconds = _timed_epoch(train, epoch, device)
            rates[name].append(counts[name] / seconds)
    return [{"loader": name, "images_per_epoch": counts[name],
             "images_per_second": statistics.median(rates[name]), "per_epoch": rates[name]}
            for name in loaders]


def load_average() -> list[float] | None:
    """The machine's 1/5/15-minute load: other processes' CPU use skews loader figures."""
    try:
        return list(os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return None
