"""Real data sources: Fashion-MNIST (the official idx files), class maps onto a pretrained
model's outputs, and the real image folders of ../shared/data (Imagenette, CIFAR-10 JPEG copy),
which skip with the reason where they are absent (a user's clone)."""
import gzip
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from aft_fast.cli import main
from aft_fast.data import make_loaders
from aft_fast.data import fashion_mnist as fm
from aft_fast.data.class_map import load_class_map
from aft_fast.data.make_folder import make_folder
from aft_fast.errors import OptionError
from aft_fast.train.checkpoint import load_checkpoint

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
needs_fashion = pytest.mark.fashion  # skipped without the files (conftest)


# ------------------------------------------------------------------------------ Fashion-MNIST
@needs_fashion
def test_fashion_mnist_splits_sizes_determinism_no_overlap():
    sizes = {s: len(fm.fashion_mnist(s, uint8=True)[1]) for s in fm.SPLITS}
    assert sizes == {"train": 55_000, "val": 5_000, "test": 10_000}
    x, y = fm.fashion_mnist("val")
    assert x.shape == (5000, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0 <= x.min() and x.max() <= 1 and torch.bincount(y).min() > 400  # every class
    # val is a fixed function of SPLIT_SEED, and val + train are the official 60,000 exactly once
    assert torch.equal(fm.val_indices(), fm.val_indices())
    official_x, official_y = fm._official("train")
    held = fm.val_indices()
    assert torch.equal(official_y[held], y)
    rest = torch.ones(60_000, dtype=torch.bool)
    rest[held] = False
    assert torch.equal(official_x[rest], fm.fashion_mnist("train", uint8=True)[0])
    assert len(set(held.tolist())) == 5000
    # the test split is the official t10k file
    assert torch.equal(fm.fashion_mnist("test", uint8=True)[1], fm._official("test")[1])


@needs_fashion
def test_fashion_mnist_loaders():
    L = make_loaders("fashion-mnist", batch_size=1000)
    assert L.spec.name == "fashion-mnist" and L.spec.num_classes == 10 and L.spec.channels == 1
    assert L.spec.class_names[0] == "T-shirt/top" and L.test.num_samples == 10_000
    x, y = next(iter(L.test))
    assert x.dtype == torch.float32 and x.shape == (1000, 1, 28, 28) and 0 <= x.min() <= x.max() <= 1
    with pytest.raises(OptionError, match="applies to image folders") as err:
        make_loaders("fashion-mnist", batch_size=8, augment="small")
    assert err.value.option == "augment"


@needs_fashion
def test_fashion_mnist_elsewhere_through_the_environment(tmp_path, monkeypatch):
    expected = fm.fashion_mnist("test", uint8=True)
    for stem in fm.FILES["test"]:  # uncompressed copies are read too
        src = fm._find(Path(fm.DEFAULT_DIR), stem)
        (tmp_path / stem).write_bytes(gzip.decompress(src.read_bytes()))
    monkeypatch.setenv(fm.ENV_VAR, str(tmp_path))
    fm._official.cache_clear()
    try:
        got = fm.fashion_mnist("test", uint8=True)
        with pytest.raises(OptionError, match="train-images-idx3-ubyte") as err:
            fm.fashion_mnist("train")  # only the test files are there
    finally:
        fm._official.cache_clear()
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    assert fm.INSTALL in err.value.message and fm.ENV_VAR in err.value.message
    assert err.value.option == "data"


def test_fashion_mnist_missing_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv(fm.ENV_VAR, str(tmp_path))
    fm._official.cache_clear()
    try:
        with pytest.raises(OptionError, match="apt-get install dataset-fashion-mnist"):
            make_loaders("fashion-mnist", batch_size=8)
    finally:
        fm._official.cache_clear()


def test_a_file_that_is_not_idx_is_refused(tmp_path, monkeypatch):
    for stem in fm.FILES["test"]:
        (tmp_path / stem).write_bytes(b"\x00" * 64)
    monkeypatch.setenv(fm.ENV_VAR, str(tmp_path))
    fm._official.cache_clear()
    try:
        with pytest.raises(OptionError, match="not the Fashion-MNIST idx file"):
            fm.fashion_mnist("test")
    finally:
        fm._official.cache_clear()


# ------------------------------------------------------------------------------ class maps
@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs") / "f"
    make_folder(root, size=24, per_class=3)
    return root


def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_class_map_labels_are_the_model_outputs(folder, tmp_path):
    mapping = {str(c): 990 - 7 * c for c in range(10)}
    cmap = _write(tmp_path, "m.json", {"num_classes": 1000, "classes": mapping})
    L = make_loaders(str(folder), batch_size=64, val_size=5, class_map=cmap)
    assert L.spec.num_classes == 1000 and L.spec.class_indices == [mapping[str(c)] for c in range(10)]
    _, y = next(iter(L.test))
    plain = make_loaders(str(folder), batch_size=64, val_size=5)
    _, y0 = next(iter(plain.test))
    assert y.tolist() == [990 - 7 * c for c in y0.tolist()]
    # A plain {class: index} map: the model has max index + 1 outputs.
    bare = make_loaders(str(folder), batch_size=8, val_size=5,
                        class_map=_write(tmp_path, "b.json", mapping))
    assert bare.spec.num_classes == 991


def test_class_list_file_may_name_more_classes_than_the_folder(folder, tmp_path):
    lines = [f"x{i} something, else" for i in range(20)] + [f"{c} digit" for c in range(10)]
    L = make_loaders(str(folder), batch_size=8, val_size=5,
                     class_map=_write(tmp_path, "synsets.txt", "\n".join(lines)))
    assert L.spec.num_classes == 30 and L.spec.class_indices == list(range(20, 30))
    pairs = load_class_map(_write(tmp_path, "pairs.txt", "0 5\n1 3\n"))
    assert pairs.indices == {"0": 5, "1": 3} and pairs.num_classes == 6


@pytest.mark.parametrize("content,message", [
    ({str(c): c for c in range(9)}, "no entry for folder class"),  # folder class 9 unmapped
    ({**{str(c): c for c in range(10)}, "cat": 10}, "names class.* the folder does not have: cat"),
    ({"0": 1, "1": 1}, "both map to output 1"),
    ({"num_classes": 5, "classes": {str(c): c for c in range(10)}}, "not below num_classes 5"),
    ("not json", "not valid JSON"),
])
def test_class_map_errors(folder, tmp_path, content, message):
    with pytest.raises(OptionError, match=message) as err:
        make_loaders(str(folder), batch_size=8, val_size=5,
                     class_map=_write(tmp_path, "m.json", content))
    assert err.value.option == "class_map"


def test_unknown_class_map_lists_the_packaged_ones():
    with pytest.raises(OptionError, match=r"nor a packaged map \(imagenette\)"):
        load_class_map("no-such-map")
    assert load_class_map("imagenette").indices["n03888257"] == 701


def test_train_cli_fine_tunes_a_1000_class_head_through_a_class_map(folder, tmp_path):
    cmap = _write(tmp_path, "m.json", {"num_classes": 1000,
                                       "classes": {str(c): 100 * c for c in range(10)}})
    out = tmp_path / "r"
    result = CliRunner().invoke(main, [
        "train", "--method", "natural", "--arch", "small_cnn", "--image-size", "28",
        "--data", str(folder),
        "--class-map", cmap, "--epochs", "1", "--batch-size", "16", "--workers", "0",
        "--out", str(out), "--quiet", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    ckpt = torch.load(out / "best.pt", weights_only=False, map_location="cpu")
    assert ckpt["num_classes"] == 1000
    args = (out / "args.yaml").read_text()
    assert f"class_map: {cmap}" in args and "augment: small" in args  # 24-px images
    # eval reads the folder through the map the checkpoint recorded; --class-map replaces it.
    report = tmp_path / "eval.json"
    for extra in ([], ["--class-map", cmap]):
        result = CliRunner().invoke(main, [
            "eval", "--checkpoint", str(out / "best.pt"), "--data", str(folder), "--attack",
            "none", "--eps", "0", "--device", "cpu", "--json", str(report), *extra])
        assert result.exit_code == 0, result.output
        model = load_checkpoint(out / "best.pt")
        test = make_loaders(str(folder), batch_size=256, image_size=28, class_map=cmap,
                            augment="small").test
        with torch.no_grad():
            hits = [(model(x).argmax(1) == y).float() for x, y in test]
        got = json.loads(report.read_text())
        assert got["n"] == len(torch.cat(hits)) and got["clean_acc"] == pytest.approx(torch.cat(hits).mean().item())


# ------------------------------------------------------------------------------ ../shared/data
def _unzip(tmp_path_factory, name):
    zip_path = SHARED / name
    if not zip_path.is_file():
        pytest.skip(f"{zip_path} is absent (real data for tests lives in ../shared/data)")
    if shutil.which("unzip") is None:
        pytest.skip("needs the unzip command")
    dest = tmp_path_factory.mktemp(name.split(".")[0])
    subprocess.run(["unzip", "-q", str(zip_path), "-d", str(dest)], check=True)
    return dest


@pytest.fixture(scope="session")
def imagenette(tmp_path_factory):
    return _unzip(tmp_path_factory, "imagenette-4k.zip") / "imagenette-4k"


@pytest.fixture(scope="session")
def cifar_jpeg(tmp_path_factory):
    """CIFAR-10 (JPEG copy): its 10,000 test images, laid out as a folder whose train/ and val/
    are both that test set (enough to check loading; results need the train zip too)."""
    root = _unzip(tmp_path_factory, "cifar10-jpeg-test.zip")
    (root / "val").symlink_to(root / "test")
    (root / "train").symlink_to(root / "test")
    return root


def test_imagenette_with_the_packaged_map_gives_imagenet_indices(imagenette):
    L = make_loaders(str(imagenette), batch_size=50, image_size=64, class_map="imagenette",
                     workers=0, val_size=100)
    assert L.spec.num_classes == 1000 and L.spec.augment == "imagenet"
    assert L.test.num_samples == 1000 and L.train.num_samples == 2900
    x, y = next(iter(L.test))
    assert x.shape == (50, 3, 64, 64)
    assert set(y.tolist()) <= {0, 217, 482, 491, 497, 566, 569, 571, 574, 701}
    assert make_loaders(str(imagenette), batch_size=8, val_size=100).spec.image_size == 224


def test_cifar_jpeg_copy_is_read_at_32_px_in_the_standard_class_order(cifar_jpeg):
    L = make_loaders(str(cifar_jpeg), batch_size=500, workers=0, val_size=500)
    assert L.spec.class_names == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                  "horse", "ship", "truck"]
    assert L.spec.image_size == 32 and L.spec.augment == "small"
    x, y = next(iter(L.test))
    assert x.shape == (500, 3, 32, 32) and torch.equal(y, torch.zeros(500, dtype=torch.long))


@needs_fashion
def test_make_folder_from_fashion_mnist(tmp_path):
    out = tmp_path / "fm"
    result = CliRunner().invoke(main, ["data", "make-folder", "--from", "fashion-mnist", "--size",
                                       "28", "--per-class", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    L = make_loaders(str(out), batch_size=20, val_size=2)
    assert L.spec.image_size == 28 and L.test.num_samples == 20
