"""Runs that chain training jobs and evaluate them the same way: the demo (natural pretraining,
then AFT) and the paper's MNIST comparison (benchmarks/reproduce_mnist.py)."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from aft_fast.attacks import AttackConfig
from aft_fast.data import make_loaders
from aft_fast.evaluate import accuracy
from aft_fast.train import TrainOptions, load_checkpoint, train


def train_timed(opts: TrainOptions) -> tuple[str, float]:
    """Train; return (best checkpoint, training wall-clock excluding per-epoch evaluation)."""
    start = time.perf_counter()
    summary = train(opts)
    seconds = time.perf_counter() - start - sum(r["eval_seconds"] for r in summary["rows"])
    return str(Path(opts.out) / "best.pt"), seconds


def evaluate_checkpoint(path: str, data: str, eps: float, steps: int = 20, *,
                        autoattack: dict | None = None, max_batches: int | None = None) -> dict:
    """Clean, PGD-`steps` (and optionally AutoAttack) accuracy on the test split, fp32, eval mode."""
    model = load_checkpoint(path)
    test = make_loaders(data, batch_size=250).test
    cfg = AttackConfig(eps, 2.5 * eps / steps, steps)
    g = torch.Generator().manual_seed(0)
    pgd = accuracy(model, test, cfg=cfg, max_batches=max_batches, generator=g)
    out = {"clean_acc": pgd["clean_acc"], "pgd_acc": pgd["robust_acc"], "n": pgd["n"]}
    if autoattack is not None:
        aa = accuracy(model, test, attack="autoattack", max_batches=max_batches,
                      autoattack_kwargs={"eps": eps, **autoattack})
        out["autoattack_acc"] = aa["robust_acc"]
    return out


def markdown_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(c[1] for c in columns) + " |"
    sep = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"
    body = []
    for r in rows:
        cells = []
        for key, _ in columns:
            v = r.get(key)
            cells.append("-" if v is None else f"{100 * v:.2f}%" if key.endswith("_acc")
                         else f"{v:.1f}" if isinstance(v, float) else str(v))
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *body])
