"""benchmarks/verify_compare.py: the outside evaluator's check of a comparison table."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from aft_fast.models import build
from aft_fast.train.checkpoint import save_checkpoint

pytestmark = pytest.mark.fashion  # it reads the official idx files (skipped without them)


@pytest.fixture
def verify():
    path = Path(__file__).parent.parent / "benchmarks" / "verify_compare.py"
    spec = importlib.util.spec_from_file_location("verify_compare", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkpoint(path, seed):
    torch.manual_seed(seed)
    model = build("small_cnn", 10, in_channels=1)
    save_checkpoint(path, model=model, arch="small_cnn", num_classes=10, input_size=28,
                    method="natural", config={}, epoch=1)
    return str(path)


def _table(verify, tmp_path, checkpoint, labels_sha=None):
    x, y = verify.fashion_mnist_test(verify.os.environ.get("AFT_FAST_FASHION_MNIST",
                                                           verify.OFFICIAL))
    doc = {"test_split": {"data": "fashion-mnist", "images_sha256": verify.sha256(x),
                          "labels_sha256": labels_sha or verify.sha256(y)},
           "protocol": {"eps": 0.1, "pgd_steps": 3, "pgd_restarts": 2},
           "rows": [{"label": "Natural", "seed": 0, "checkpoint": checkpoint, "n": 8,
                     "autoattack_n": 8, "pgd_acc_autoattack_images": 0.5,
                     "autoattack_acc": 0.25}]}
    path = tmp_path / "table.json"
    path.write_text(json.dumps(doc))
    return path


def _run(verify, monkeypatch, table, *extra):
    monkeypatch.setattr(sys, "argv", ["verify_compare.py", "--table", str(table), *extra])
    verify.main()
    return json.loads((table.parent / "verify.json").read_text())["rows"]


def test_a_row_checked_before_on_the_same_checkpoint_bytes_is_not_attacked_again(
        verify, tmp_path, monkeypatch):
    ckpt = _checkpoint(tmp_path / "a.pt", seed=0)
    table = _table(verify, tmp_path, ckpt)
    first = _run(verify, monkeypatch, table)
    assert first[0]["n"] == 8 and first[0]["table_pgd_acc"] == 0.5
    assert first[0]["attack"] == {"eps": 0.1, "steps": 3, "restarts": 2, "seed": 1234}
    assert "| Natural | 0 | 8 | 50.0 |" in (tmp_path / "verify.md").read_text()

    attacked = []
    real = verify.robust_mask
    monkeypatch.setattr(verify, "robust_mask", lambda *a, **k: attacked.append(1) or real(*a, **k))
    assert _run(verify, monkeypatch, table) == first and attacked == []
    _run(verify, monkeypatch, table, "--fresh")  # asked to attack every row again
    assert attacked == [1]
    _checkpoint(tmp_path / "a.pt", seed=1)  # same path, other weights: attacked again
    assert _run(verify, monkeypatch, table)[0]["checkpoint_sha256"] != first[0]["checkpoint_sha256"]
    assert attacked == [1, 1]


def test_a_test_split_other_than_the_tables_is_refused(verify, tmp_path, monkeypatch):
    table = _table(verify, tmp_path, _checkpoint(tmp_path / "a.pt", seed=0), labels_sha="0" * 64)
    with pytest.raises(SystemExit, match="differs from the table's record"):
        _run(verify, monkeypatch, table)


def test_a_row_whose_checkpoint_is_gone_is_taken_from_the_earlier_check_by_path(
        verify, tmp_path, monkeypatch):
    ckpt = _checkpoint(tmp_path / "a.pt", seed=0)
    table = _table(verify, tmp_path, ckpt)
    first = _run(verify, monkeypatch, table)
    (tmp_path / "a.pt").unlink()  # the committed table outlives its runs folder
    assert _run(verify, monkeypatch, table) == first
    (tmp_path / "verify.json").unlink()  # nothing to take it from: said, not a traceback
    with pytest.raises(SystemExit, match="is not here and no earlier verify.json row covers it"):
        _run(verify, monkeypatch, table)
