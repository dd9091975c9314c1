"""Image folders through both loaders: same samples, same labels, same contract; shards; corrupt
files; errors. DALI cases carry the `dali` marker (skipped when nvidia-dali is not installed)."""
import shutil

import pytest
import torch
from click.testing import CliRunner

from aft_fast.cli import main
from aft_fast.data import make_loaders
from aft_fast.data.make_folder import make_folder

LOADERS = ["pytorch", pytest.param("dali", marks=pytest.mark.dali)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs") / "f"
    counts = make_folder(root, size=32, per_class=6)
    assert counts == {"train": 60, "val": 60}
    return root


def collect(loader, epoch=0):
    loader.set_epoch(epoch)
    xs, ys = zip(*[(x, y) for x, y in loader])
    return torch.cat(xs), torch.cat(ys)


@pytest.mark.parametrize("name", LOADERS)
def test_contract(folder, name):
    L = make_loaders(str(folder), batch_size=8, loader=name, image_size=24, workers=1, val_size=10)
    assert L.spec.class_names == [str(i) for i in range(10)] and L.spec.num_classes == 10
    x, y = collect(L.train)
    assert len(y) == L.train.num_samples == 50 and len(L.train) == 7
    assert x.shape == (50, 3, 24, 24) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.5
    tx, ty = collect(L.test)
    assert len(ty) == 60 and sorted(ty.tolist()) == sorted([c for c in range(10) for _ in range(6)])


def test_both_loaders_agree_on_labels(folder):
    pytest.importorskip("nvidia.dali")
    a = make_loaders(str(folder), batch_size=60, loader="pytorch", image_size=24, workers=1, val_size=10)
    b = make_loaders(str(folder), batch_size=60, loader="dali", image_size=24, workers=1, val_size=10)
    xa, ya = collect(a.test)
    xb, yb = collect(b.test)
    assert torch.equal(ya, yb)  # same files in the same order, same ImageFolder indices
    assert (xa - xb).abs().mean() < 0.05  # same centre crops, up to resize filters


@pytest.mark.parametrize("name", LOADERS)
def test_two_shards_cover_every_file_once_per_epoch(folder, name):
    shards = [make_loaders(str(folder), batch_size=7, loader=name, image_size=16, workers=1,
                           rank=r, world_size=2, val_size=10).test for r in range(2)]
    for epoch in range(2):
        got = [collect(s, epoch)[1] for s in shards]
        assert sum(len(g) for g in got) == 60 if name == "dali" else len(got[0]) == len(got[1]) == 30
        counts = torch.bincount(torch.cat(got), minlength=10)
        assert counts.tolist() == [6] * 10


@pytest.fixture
def corrupt_folder(folder, tmp_path):
    root = tmp_path / "bad"
    shutil.copytree(folder, root)
    victim = sorted((root / "val" / "3").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated JPEG
    (root / "val" / "4" / "garbage.jpg").write_bytes(b"\x00not an image" * 10)
    return root, victim


def test_scan_finds_exactly_the_bad_files(corrupt_folder, tmp_path):
    root, victim = corrupt_folder
    out = tmp_path / "bad.txt"
    result = CliRunner().invoke(main, ["data", "scan", str(root), "--quarantine-list", str(out)])
    assert result.exit_code == 1
    assert sorted(out.read_text().split()) == sorted([str(victim), str(root / "val" / "4" / "garbage.jpg")])
    assert "121 files checked, 2 unreadable" in result.output


@pytest.mark.parametrize("name", LOADERS)
def test_corrupt_files_stop_both_loaders_before_the_first_batch(corrupt_folder, name):
    root, victim = corrupt_folder
    with pytest.raises(ValueError, match="2 unreadable image file") as err:
        make_loaders(str(root), batch_size=128, loader=name, image_size=16, workers=1, val_size=10)
    assert str(victim) in str(err.value) and "aft-fast data scan" in str(err.value)


def test_decode_failure_names_the_file(corrupt_folder):
    """A file that slips past the cheap check still stops torchvision with its name."""
    root, victim = corrupt_folder
    (root / "val" / "4" / "garbage.jpg").unlink()
    victim.write_bytes(victim.read_bytes()[:100] + b"\xff\xd9")  # truncated, EOI appended
    L = make_loaders(str(root), batch_size=128, loader="pytorch", image_size=16, workers=0,
                     val_size=10)
    with pytest.raises(RuntimeError, match=f"cannot decode {victim}.*aft-fast data scan"):
        collect(L.test)


@pytest.mark.parametrize("mutate,message", [
    (lambda r: shutil.rmtree(r / "val"), "missing val/ folder"),
    (lambda r: [p.unlink() for p in (r / "train" / "2").iterdir()], "holds no images"),
    (lambda r: [shutil.rmtree(p) for p in (r / "train").iterdir()], "no class sub-folders"),
])
def test_folder_errors(folder, tmp_path, mutate, message):
    root = tmp_path / "f"
    shutil.copytree(folder, root)
    mutate(root)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        make_loaders(str(root), batch_size=8)


def test_dali_missing_names_the_extra(folder, monkeypatch):
    import builtins
    real = builtins.__import__

    def no_dali(name, *a, **k):
        if name.startswith("nvidia.dali"):
            raise ImportError("No module named 'nvidia.dali'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_dali)
    with pytest.raises(ImportError, match=r"pip install 'aft_fast\[dali\]'"):
        make_loaders(str(folder), batch_size=8, loader="dali", val_size=10)


def test_make_folder_refuses_non_empty(folder):
    with pytest.raises(FileExistsError, match="not empty"):
        make_folder(folder)


def test_train_cli_on_a_folder(folder, tmp_path):
    result = CliRunner().invoke(main, [
        "train", "--method", "fast-at", "--arch", "resnet18", "--data", str(folder), "--image-size",
        "32", "--epochs", "1", "--batch-size", "16", "--eps", "8/255", "--eval-max-batches", "1",
        "--eval-steps", "1", "--workers", "0", "--out", str(tmp_path / "r"), "--quiet", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "best.pt").exists()
