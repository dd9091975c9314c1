"""The budget sweep of `aft-fast compare --epochs 4,8,...` and the per-epoch held-out curve of
`train --test-each-epoch`: rows per budget, the paper-length fine-tune from the same budget's
parent, the Pareto frontier, the plot, resume, the single-budget layout kept."""
import json

import pytest
import torch

from aft_fast.train.options import TrainOptions
from aft_fast.train.run import train

TINY = dict(data="synthetic", arch="small_cnn", batch_size=32, eval_max_batches=1, eval_steps=2,
            steps=2, eps=0.1, quiet=True, log_every=10**9, device="cpu", method="pgd-at",
            epochs=2)


def test_test_each_epoch_adds_the_test_columns_and_changes_no_weight(tmp_path, small_synthetic):
    from aft_fast.analysis.curves import read_run

    train(TrainOptions(out=str(tmp_path / "plain"), **TINY))
    train(TrainOptions(out=str(tmp_path / "test"), test_each_epoch=True, **TINY))
    rows = [json.loads(line) for line in (tmp_path / "test" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(0 <= r["test_robust_acc"] <= r["test_clean_acc"] <= 1
                                  for r in rows)
    plain = (tmp_path / "plain" / "metrics.jsonl").read_text()
    assert "test_robust_acc" not in plain
    # a reported column only: the same training (its PGD random starts do not shift the RNG)
    for name in ("last.pt", "best.pt"):
        a, b = (torch.load(tmp_path / run / name, weights_only=False)["model"]
                for run in ("plain", "test"))
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_run(tmp_path / "test").split == "test"  # the overfitting curves read it
