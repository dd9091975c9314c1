"""Folder loaders beyond the basic contract (tests/test_folder.py): DALI and torchvision read the
same samples in the same order per (seed, epoch, rank); shards of the training loader; held-out
splits that do not depend on the run's seed; train_eval spread over classes; the data and
bench-loader commands."""
import json

import pytest
import torch
from click.testing import CliRunner

from aft_fast.cli import main
from aft_fast.data import make_loaders
from aft_fast.data.make_folder import make_folder

KW = dict(batch_size=7, image_size=16, workers=1, val_size=9)  # 51 train files: odd on purpose


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs") / "f"
    make_folder(root, size=24, per_class=6)
    return root


def labels_of(loader, epoch):
    loader.set_epoch(epoch)
    return torch.cat([y for _, y in loader])


def file_list(loader):
    """The files a folder loader reads (torchvision: the dataset; DALI: its file list)."""
    return list(loader.dataset.files.files if hasattr(loader, "dataset") else loader.files.files)


@pytest.mark.dali
@pytest.mark.parametrize("world_size", [1, 2])
def test_dali_and_torchvision_read_the_same_order(folder, world_size):
    for rank in range(world_size):
        tv = make_loaders(str(folder), loader="pytorch", rank=rank, world_size=world_size, **KW)
        dali = make_loaders(str(folder), loader="dali", rank=rank, world_size=world_size, **KW)
        assert len(tv.train) == len(dali.train) and tv.train.num_samples == dali.train.num_samples
        for epoch in (0, 1):
            assert torch.equal(labels_of(tv.train, epoch), labels_of(dali.train, epoch))


@pytest.mark.dali
def test_dali_train_epochs_are_a_function_of_seed_and_epoch(folder):
    L = make_loaders(str(folder), loader="dali", **KW)
    first, again, other = labels_of(L.train, 3), labels_of(L.train, 3), labels_of(L.train, 4)
    assert torch.equal(first, again) and not torch.equal(first, other)
    L.train.set_epoch(3)
    assert first.tolist() == L.train.epoch_files().labels  # DALI reads exactly the planned files


@pytest.mark.dali
def test_dali_train_shards_cover_every_file_once_per_epoch(folder):
    shards = [make_loaders(str(folder), loader="dali", rank=r, world_size=2, **KW).train
              for r in range(2)]
    n = len(file_list(shards[0]))
    for epoch in (0, 1):
        planned = []
        for s in shards:
            got = labels_of(s, epoch)
            assert len(got) == s.num_samples == (n + 1) // 2  # equal sizes: DDP steps agree
            assert got.tolist() == s.epoch_files().labels
            planned.append(s.epoch_files().files)
        union = planned[0] + planned[1]
        assert set(union) == set(file_list(shards[0]))  # every file ...
        assert len(union) - len(set(union)) == (2 - n % 2) % 2  # ... once, plus the one padding


@pytest.mark.dali
def test_dali_eval_loader_restarts_after_a_partial_pass(folder):
    L = make_loaders(str(folder), loader="dali", **KW)
    next(iter(L.test))  # evaluation on the first batch only, as with --eval-max-batches
    assert len(labels_of(L.test, 0)) == L.test.num_samples == 60


@pytest.mark.parametrize("name", ["pytorch", pytest.param("dali", marks=pytest.mark.dali)])
def test_val_split_is_fixed_and_train_eval_spans_classes(folder, name):
    a = make_loaders(str(folder), loader=name, seed=0, train_eval_size=10, **KW)
    b = make_loaders(str(folder), loader=name, seed=1, train_eval_size=10, **KW)
    assert file_list(a.val) == file_list(b.val) and len(file_list(a.val)) == 9
    assert not set(file_list(a.val)) & set(file_list(a.train))  # held out of training
    assert set(file_list(a.train_eval)) <= set(file_list(a.train))
    assert len(file_list(a.train_eval)) == 10
    assert len(set(labels_of(a.train_eval, 0).tolist())) > 2  # not the first class only


def test_make_folder_command(tmp_path):
    out = tmp_path / "m"
    result = CliRunner().invoke(main, ["data", "make-folder", "--size", "16", "--per-class", "1",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 10 train and 10 val images" in result.output
    assert sorted(p.name for p in (out / "train").iterdir()) == [str(i) for i in range(10)]
    bad = CliRunner().invoke(main, ["data", "make-folder", "--from", "cifar", "--out",
                                    str(tmp_path / "x")])
    assert bad.exit_code != 0 and "--from must be one of mnist5k" in bad.output


def test_bench_loader_command(folder, tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench-loader", "--data", str(folder), "--loader",
                                       "pytorch", "--image-size", "16", "--batch", "16",
                                       "--epochs", "1", "--threads", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    (r,) = report["results"]
    assert r["loader"] == "pytorch" and r["images_per_epoch"] == 59 and r["images_per_second"] > 0
    assert report["environment"]["device_type"] == "cpu"
    missing = CliRunner().invoke(main, ["bench-loader", "--data", str(tmp_path / "nope"),
                                        "--loader", "pytorch"])
    assert missing.exit_code == 2 and "--data" in missing.output


@pytest.mark.parametrize("name", ["pytorch", pytest.param("dali", marks=pytest.mark.dali)])
def test_channels_last_folder_batches(folder, name):
    L = make_loaders(str(folder), loader=name, channels_last=True, **KW)
    for loader in (L.train, L.test):
        x, y = next(iter(loader))
        assert x.shape == (7, 3, 16, 16) and x.is_contiguous(memory_format=torch.channels_last)
        assert y.dtype == torch.int64
