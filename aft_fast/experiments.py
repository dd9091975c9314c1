"""Runs that chain training jobs and evaluate them the same way: the demo (natural pretraining,
then AFT) and the paper's MNIST comparison (benchmarks/reproduce_mnist.py). It sits on top of
the training stack (train, data, evaluate) and formats its tables with `aft_fast.perf.report`."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from aft_fast.attacks import AttackConfig
from aft_fast.data import make_loaders
from aft_fast.evaluate import accuracy
from aft_fast.fast_path import for_evaluation
from aft_fast.perf.report import format_markdown
from aft_fast.policy import default_alpha
from aft_fast.train.checkpoint import load_checkpoint
from aft_fast.train.options import TrainOptions
from aft_fast.train.run import train


def train_timed(opts: TrainOptions) -> tuple[str, float]:
    """Train; return (best checkpoint, training wall-clock excluding per-epoch evaluation)."""
    start = time.perf_counter()
    summary = train(opts)
    seconds = time.perf_counter() - start - sum(r["eval_seconds"] for r in summary["rows"])
    return str(Path(opts.out) / "best.pt"), seconds


def test_accuracy(path: str, data: str, eps: float, steps: int = 20, *,
                        autoattack: dict | None = None, max_batches: int | None = None) -> dict:
    """Clean, PGD-`steps` (and optionally AutoAttack) accuracy on the test split, fp32, eval mode."""
    model = for_evaluation(load_checkpoint(path))
    test = make_loaders(data, batch_size=250).test
    cfg = AttackConfig(eps, default_alpha(eps, steps), steps)
    g = torch.Generator().manual_seed(0)
    pgd = accuracy(model, test, cfg=cfg, max_batches=max_batches, generator=g)
    out = {"clean_acc": pgd["clean_acc"], "pgd_acc": pgd["robust_acc"], "n": pgd["n"]}
    if autoattack is not None:
        aa = accuracy(model, test, attack="autoattack", max_batches=max_batches,
                      autoattack_kwargs={"eps": eps, **autoattack})
        out["autoattack_acc"] = aa["robust_acc"]
    return out


def _cell(key: str, value) -> str:
    if value is None:
        return "-"
    if key.endswith("_acc"):
        return f"{100 * value:.2f}%"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def markdown_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """Rows of results as a markdown table; `columns` are (key, heading) pairs, accuracies
    (keys ending in _acc) shown as percentages."""
    return format_markdown([[heading for _, heading in columns]] +
                           [[_cell(key, r.get(key)) for key, _ in columns] for r in rows])
