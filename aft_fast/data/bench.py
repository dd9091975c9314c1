"""Loader throughput: images/s of the training loader (random-resized crop + flip) per epoch after
one warm-up epoch, on the same folder with the same number of CPU threads (DALI threads =
DataLoader workers), median over epochs."""
from __future__ import annotations

import statistics
import time

import torch


def bench_loader(folder: str, loader: str, *, image_size: int, batch_size: int, epochs: int,
                 threads: int, device="cpu") -> dict:
    from aft_fast.data import make_loaders

    torch.set_num_threads(threads)
    train = make_loaders(folder, batch_size=batch_size, loader=loader, image_size=image_size,
                         device=device, workers=threads, val_size=1).train
    rates = []
    for epoch in range(epochs + 1):  # epoch 0 warms up (workers, pipeline, caches)
        train.set_epoch(epoch)
        n, start = 0, time.perf_counter()
        for x, _ in train:
            n += len(x)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        if epoch > 0:
            rates.append(n / (time.perf_counter() - start))
    return {"loader": loader, "images_per_epoch": n, "images_per_second": statistics.median(rates),
            "per_epoch": rates}
