"""Image folders through both loaders (torchvision, DALI): the `Batches` contract, the same
samples in the same order per (seed, epoch, rank), exact mid-epoch resume, shards, held-out
splits, augmentation presets, corrupt files, errors, and the data / bench-loader commands.
DALI cases carry the `dali` marker (skipped when nvidia-dali is not installed)."""
import builtins
import json
import shutil

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torchvision.transforms.functional import to_tensor

from aft_fast.cli import main
from aft_fast.data import Batches, make_loaders
from aft_fast.data.make_folder import make_folder
from aft_fast.errors import OptionError

LOADERS = ["pytorch", pytest.param("dali", marks=pytest.mark.dali)]
KW = dict(batch_size=7, image_size=16, workers=1, val_size=9)  # 51 train files: odd on purpose


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """10 classes × 6 images of 24×24 pixels in train/ and in val/."""
    root = tmp_path_factory.mktemp("imgs") / "f"
    assert make_folder(root, size=24, per_class=6) == {"train": 60, "val": 60}
    return root


def collect(loader, epoch=0, start_batch=0):
    loader.set_epoch(epoch, start_batch)
    xs, ys = zip(*[(x, y) for x, y in loader])
    return torch.cat(xs), torch.cat(ys)


def labels_of(loader, epoch):
    return collect(loader, epoch)[1]


@pytest.mark.parametrize("name", LOADERS)
def test_contract(folder, name):
    L = make_loaders(str(folder), loader=name, **{**KW, "val_size": 10})
    assert all(isinstance(b, Batches) for b in L[:4])
    assert L.spec.class_names == [str(i) for i in range(10)] and L.spec.num_classes == 10
    x, y = collect(L.train)
    assert len(y) == L.train.num_samples == 50 and len(L.train) == 8
    assert x.shape == (50, 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.5
    _, ty = collect(L.test)
    assert sorted(ty.tolist()) == sorted([c for c in range(10) for _ in range(6)])


@pytest.mark.parametrize("name", LOADERS)
def test_resume_mid_epoch_reads_the_rest_of_the_epoch(folder, name):
    L = make_loaders(str(folder), loader=name, augment="none", **KW)
    x, y = collect(L.train, epoch=3)
    k = 4 * KW["batch_size"]
    xr, yr = collect(L.train, epoch=3, start_batch=4)
    assert torch.equal(yr, y[k:]) and torch.allclose(xr, x[k:])  # no augmentation: same pixels
    assert len(labels_of(L.train, 3)) == 51  # the next pass reads the whole epoch again
    L.train.set_epoch(3, start_batch=len(L.train))
    assert list(L.train) == []  # resumed exactly at the end of an epoch


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
@pytest.mark.parametrize("augment,image_size", [("imagenet", 16), ("small", 24), ("none", 16)])
def test_dali_and_torchvision_evaluate_the_same_pixels(folder, augment, image_size):
    kw = {**KW, "image_size": image_size, "augment": augment}
    xa, ya = collect(make_loaders(str(folder), loader="pytorch", **kw).test)
    xb, yb = collect(make_loaders(str(folder), loader="dali", **kw).test)
    assert torch.equal(ya, yb)  # same files in the same order, same labels
    assert (xa - xb).abs().mean() < 0.03  # same resize/crop, up to filters and JPEG decoders


@pytest.mark.dali
def test_dali_train_epochs_are_a_function_of_seed_and_epoch(folder):
    L = make_loaders(str(folder), loader="dali", **KW)
    first, again, other = labels_of(L.train, 3), labels_of(L.train, 3), labels_of(L.train, 4)
    assert torch.equal(first, again) and not torch.equal(first, other)
    L.train.set_epoch(3)
    assert first.tolist() == L.train.epoch_files().labels  # DALI reads exactly the planned files


@pytest.mark.parametrize("name", LOADERS)
def test_two_shards_cover_every_file_once_per_epoch(folder, name):
    for split in ("train", "test"):
        shards = [getattr(make_loaders(str(folder), loader=name, rank=r, world_size=2, **KW),
                          split) for r in range(2)]
        n = shards[0].size
        for epoch in (0, 1):
            got = [s.files.pick(s.indices().tolist()).files for s in shards]
            assert [len(labels_of(s, epoch)) for s in shards] == [len(g) for g in got] \
                == [(n + 1) // 2] * 2  # equal sizes: DDP steps agree
            union = got[0] + got[1]
            assert set(union) == set(shards[0].files.files)  # every file ...
            assert len(union) - len(set(union)) == n % 2  # ... once, plus the one padding


@pytest.mark.dali
def test_dali_eval_loader_restarts_after_a_partial_pass(folder):
    L = make_loaders(str(folder), loader="dali", **KW)
    next(iter(L.test))  # evaluation on the first batch only, as with --eval-max-batches
    assert len(labels_of(L.test, 0)) == L.test.num_samples == 60


@pytest.mark.parametrize("name", LOADERS)
def test_val_split_is_fixed_and_train_eval_spans_classes(folder, name):
    a = make_loaders(str(folder), loader=name, seed=0, train_eval_size=10, **KW)
    b = make_loaders(str(folder), loader=name, seed=1, train_eval_size=10, **KW)
    assert a.val.files == b.val.files and len(a.val.files.files) == 9
    assert not set(a.val.files.files) & set(a.train.files.files)  # held out of training
    assert set(a.train_eval.files.files) <= set(a.train.files.files)
    assert len(a.train_eval.files.files) == 10
    assert len(set(labels_of(a.train_eval, 0).tolist())) > 2  # not the first class only


def test_train_images_keeps_val_and_test(folder):
    full = make_loaders(str(folder), **KW)
    few = make_loaders(str(folder), train_images=20, train_eval_size=5, **KW)
    assert few.train.num_samples == few.spec.train_size == 20
    assert set(few.train.files.files) < set(full.train.files.files)
    assert set(few.train_eval.files.files) <= set(few.train.files.files)
    assert few.val.files == full.val.files and few.test.files == full.test.files


def test_val_images_option_sizes_a_folders_val_split_and_is_refused_for_builtins(folder):
    from aft_fast.train.options import TrainOptions
    from aft_fast.train.run import open_data

    opts = TrainOptions(data=str(folder), batch_size=8, image_size=16, workers=0, val_images=13)
    assert len(open_data(opts, "cpu").val.files.files) == 13
    with pytest.raises(OptionError, match="applies to image folders") as err:
        open_data(TrainOptions(data="synthetic", val_images=13), "cpu")
    assert err.value.option == "val_images"


def test_a_class_sorted_test_split_is_interleaved_for_first_n_protocols(folder):
    from aft_fast.compare.protocol import interleave_classes, split_tensors

    x, y = split_tensors(make_loaders(str(folder), **KW).test)  # val/: 6 images × 10 classes
    assert len(y) == 60 and y[:10].tolist() == list(range(10))
    assert torch.bincount(y[:20]).tolist() == [2] * 10  # the first N: every class alike
    mixed = torch.tensor([3, 1, 2, 0, 1])  # already mixed (Fashion-MNIST's order): kept
    assert interleave_classes(mixed).tolist() == [0, 1, 2, 3, 4]
    uneven = torch.tensor([0, 0, 0, 1, 2, 2])
    assert uneven[interleave_classes(uneven)].tolist() == [0, 1, 2, 0, 2, 0]


# ------------------------------------------------------------------------------ augmentation
def test_default_size_and_augmentation_follow_the_images(folder):
    small = make_loaders(str(folder), batch_size=8, val_size=9)
    assert small.spec.image_size == 24 and small.spec.augment == "small"  # the images' own side
    zoomed = make_loaders(str(folder), batch_size=8, val_size=9, image_size=96)
    assert zoomed.spec.augment == "small"  # the images' side decides, not the training size
    assert make_loaders(str(folder), batch_size=8, val_size=9,
                        augment="imagenet").spec.augment == "imagenet"
    with pytest.raises(OptionError, match="must be one of imagenet, small, none") as err:
        make_loaders(str(folder), batch_size=8, val_size=9, augment="cifar")
    assert err.value.option == "augment"


def _plain(path):
    with Image.open(path) as img:
        return to_tensor(img.convert("RGB"))


def _shifted_flips(plain, pad=4):
    """Every image the small preset can make from `plain`: zero-padded shifts × flips."""
    size = plain.shape[-1]
    padded = torch.nn.functional.pad(plain, (pad,) * 4)
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy:dy + size, dx:dx + size]
            yield crop
            yield crop.flip(-1)


@pytest.mark.parametrize("name", LOADERS)
def test_small_preset_pads_crops_and_flips_and_evaluates_the_image_as_is(folder, name):
    L = make_loaders(str(folder), loader=name, augment="small", **{**KW, "image_size": 24})
    x, _ = collect(L.test)
    plain = torch.stack([_plain(p) for p in L.test.files.files])
    tol = 0 if name == "pytorch" else 0.01  # DALI's JPEG decoder may differ by a level or two
    assert (x - plain).abs().mean() <= tol
    L.train.set_epoch(0)
    x, _ = next(iter(L.train))
    order = L.train.indices()[:len(x)].tolist()
    for img, i in zip(x, order):
        best = min((img - c).abs().mean() for c in _shifted_flips(_plain(L.train.files.files[i])))
        assert best <= tol


# ------------------------------------------------------------------------------ bad input
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
    with pytest.raises(OptionError, match="2 unreadable image file") as err:
        make_loaders(str(root), loader=name, **KW)
    assert str(victim) in str(err.value) and "aft-fast data scan" in str(err.value)


def test_decode_failure_names_the_file(corrupt_folder):
    """A file that slips past the cheap check still stops torchvision with its name."""
    root, victim = corrupt_folder
    (root / "val" / "4" / "garbage.jpg").unlink()
    victim.write_bytes(victim.read_bytes()[:100] + b"\xff\xd9")  # truncated, EOI appended
    L = make_loaders(str(root), loader="pytorch", **{**KW, "workers": 0, "batch_size": 128})
    from aft_fast.data.decode import UnreadableImage
    with pytest.raises(UnreadableImage, match=f"cannot decode {victim}.*aft-fast data scan"):
        collect(L.test)


@pytest.mark.parametrize("mutate,message", [
    (lambda r: shutil.rmtree(r / "val"), "missing val/ folder"),
    (lambda r: [p.unlink() for p in (r / "train" / "2").iterdir()], "holds no images"),
    (lambda r: [shutil.rmtree(p) for p in (r / "train").iterdir()], "no class sub-folders"),
    (lambda r: shutil.rmtree(r / "val" / "5"), "classes differ from train/"),
])
def test_folder_errors(folder, tmp_path, mutate, message):
    root = tmp_path / "f"
    shutil.copytree(folder, root)
    mutate(root)
    with pytest.raises(OptionError, match=message) as err:
        make_loaders(str(root), batch_size=8)
    assert err.value.option == "data"


def test_val_size_error(folder):
    with pytest.raises(OptionError, match=r"must be in \[1, 59\]") as err:
        make_loaders(str(folder), batch_size=8, val_size=60)
    assert err.value.option == "val_images"  # the option that sets it


def test_default_val_size_fits_a_small_folder(folder):
    # One evaluation batch (or 2%) by default, capped at a fifth of the 60 training images, so
    # evaluating a small folder with the default batch of 256 works.
    assert make_loaders(str(folder), batch_size=8).spec.train_size == 60 - 8
    assert make_loaders(str(folder), batch_size=256).spec.train_size == 60 - 12


def test_dali_missing_names_the_extra(folder, monkeypatch):
    real = builtins.__import__

    def no_dali(name, *a, **k):
        if name.startswith("nvidia.dali"):
            raise ImportError("No module named 'nvidia.dali'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_dali)
    with pytest.raises(ImportError, match=r"pip install 'aft_fast\[dali\]'"):
        make_loaders(str(folder), batch_size=8, loader="dali", val_size=10)


@pytest.mark.parametrize("name", LOADERS)
def test_channels_last_folder_batches(folder, name):
    L = make_loaders(str(folder), loader=name, channels_last=True, **KW)
    for loader in (L.train, L.test):
        x, y = next(iter(loader))
        assert x.shape == (7, 3, 16, 16) and x.is_contiguous(memory_format=torch.channels_last)
        assert y.dtype == torch.int64


# ------------------------------------------------------------------------------ commands
def test_make_folder_refuses_non_empty(folder):
    with pytest.raises(OptionError, match="not empty") as err:
        make_folder(folder)
    assert err.value.option == "out"


def test_make_folder_command(tmp_path):
    out = tmp_path / "m"
    result = CliRunner().invoke(main, ["data", "make-folder", "--size", "16", "--per-class", "1",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 10 train and 10 val images" in result.output
    assert sorted(p.name for p in (out / "train").iterdir()) == [str(i) for i in range(10)]
    bad = CliRunner().invoke(main, ["data", "make-folder", "--from", "cifar", "--out",
                                    str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--from" in bad.output and "must be one of mnist5k" in bad.output


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


def test_train_cli_on_a_folder(folder, tmp_path):
    result = CliRunner().invoke(main, [
        "train", "--method", "fast-at", "--arch", "resnet18", "--data", str(folder), "--image-size",
        "32", "--epochs", "1", "--batch-size", "16", "--eps", "8/255", "--eval-max-batches", "1",
        "--eval-steps", "1", "--workers", "0", "--out", str(tmp_path / "r"), "--quiet", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "best.pt").exists()
