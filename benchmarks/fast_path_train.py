"""One epoch of `aft-fast train --method pgd-at` as a new user runs it: today's default (auto)
against the former default (`--amp none --channels-last off`) and a plain-PyTorch loop of the
same recipe, interleaved round by round in one run, with the load average.

    python benchmarks/fast_path_train.py --out benchmarks/results/fast_path_train_cpu.json

The issue's setting: small CNN, the first 10,000 Fashion-MNIST training images, PGD-5, ε = 0.1,
Adam 1e-3, batch 128, one epoch. The engine's seconds are its training loop's (`epoch_seconds`,
per-epoch evaluation excluded); the plain loop reads the same images in the same batches.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from aft_fast.data import make_loaders
from aft_fast.io import write_json
from aft_fast.models import build
from aft_fast.perf.plain_pgd import plain_pgd
from aft_fast.runtime import environment, load_average

RECIPE = ["--method", "pgd-at", "--arch", "small_cnn", "--data", "fashion-mnist",
          "--train-images", "10000", "--epochs", "1", "--steps", "5", "--eps", "0.1",
          "--optimizer", "adam", "--lr", "1e-3", "--batch-size", "128", "--schedule", "constant",
          "--eval-images", "128", "--quiet"]
VARIANTS = {"default (auto)": [], "former default (fp32, contiguous)":
            ["--amp", "none", "--channels-last", "off"]}


def engine_epoch(extra: list[str], out: Path) -> dict:
    cmd = [sys.executable, "-m", "aft_fast.cli", "train", *RECIPE, *extra, "--out", str(out),
           "--overwrite"]
    subprocess.run(cmd, check=True)
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    import yaml

    resolved = yaml.safe_load((out / "args.yaml").read_text())["resolved"]
    return {"seconds": row["epoch_seconds"], "train_acc": row["train_acc"],
            "val_robust_acc": row["val_robust_acc"], "trained_under": resolved["fast_path"]}


def plain_epoch() -> dict:
    """PGD-5 AT written as research code writes it: fp32, NCHW, unfused PGD, Adam."""
    torch.manual_seed(0)
    loader = make_loaders("fashion-mnist", batch_size=128, train_images=10_000, seed=0).train
    model = build("small_cnn", 10, in_channels=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    correct = n = 0
    for x, y in loader:
        x_adv = plain_pgd(model, x, y, 0.1, 2.5 * 0.1 / 5, 5)
        model.train()
        opt.zero_grad()
        logits = model(x_adv)
        F.cross_entropy(logits, y).backward()
        opt.step()
        correct, n = correct + int((logits.argmax(1) == y).sum()), n + len(y)
    return {"seconds": time.perf_counter() - start, "train_acc": correct / n}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/fast_path_train_cpu.json")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    doc = {"kind": "aft_fast.fast_path_train/1", "environment": environment("cpu"),
           "command": "aft-fast train " + " ".join(RECIPE), "variants": VARIANTS,
           "load_average_start": load_average(), "rounds": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            row = {}
            for name, extra in VARIANTS.items():
                row[name] = {**engine_epoch(extra, Path(tmp) / "run"), "load_end": load_average()}
                print(f"round {r + 1} {name}: {row[name]}", flush=True)
            row["plain PyTorch (fp32, contiguous)"] = {**plain_epoch(), "load_end": load_average()}
            print(f"round {r + 1} plain: {row['plain PyTorch (fp32, contiguous)']}", flush=True)
            doc["rounds"].append(row)
            write_json(doc, args.out)
    names = list(doc["rounds"][0])
    med = {k: sorted(rd[k]["seconds"] for rd in doc["rounds"])[len(doc["rounds"]) // 2]
           for k in names}
    auto = med["default (auto)"]
    doc["median_seconds"] = med
    doc["x_auto_vs"] = {k: v / auto for k, v in med.items()}
    doc["load_average_end"] = load_average()
    write_json(doc, args.out)
    print(json.dumps(doc["x_auto_vs"], indent=1))


if __name__ == "__main__":
    main()
