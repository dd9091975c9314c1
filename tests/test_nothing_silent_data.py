"""Nothing silent in image folders: `data scan` and the loader read a file the same way (a 16-bit
PNG is scaled, not clipped to white); a hidden folder is not a class; an image name that is not a
readable file is refused, not skipped; a file that fails to decode mid-run is one line naming it."""
import os

import numpy as np
import pytest
from PIL import Image

from aft_fast.errors import OptionError


def _folder(root, per_class=4, side=16):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray((rng.random((side, side, 3)) * 255).astype("uint8")).save(
                    root / split / cls / f"{i}.jpg")
    return root


def test_a_16_bit_png_is_scaled_the_same_way_by_scan_and_loader(tmp_path):
    from aft_fast.data.decode import open_rgb
    from aft_fast.data.scan import scan_folder

    path = tmp_path / "gray16.png"
    Image.fromarray(np.full((8, 8), 30000, dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = np.asarray(open_rgb(path))
    assert rgb.shape == (8, 8, 3) and (rgb == 30000 >> 8).all()  # not clipped to 255 (white)
    assert scan_folder(tmp_path) == (1, [])


def test_a_hidden_folder_is_not_a_class(tmp_path):
    from aft_fast.data.folder import scan_split
    from aft_fast.data.scan import scan_folder

    root = _folder(tmp_path / "data")
    hidden = root / "train" / ".ipynb_checkpoints"
    hidden.mkdir()
    (hidden / "x.jpg").write_bytes(b"not an image")
    files, classes = scan_split(root, "train")
    assert classes == ["a", "b"] and files.labels == [0] * 4 + [1] * 4
    assert scan_folder(root)[1] == []  # what the loader never reads, the scan does not list


def test_an_image_name_that_is_not_a_readable_file_is_refused(tmp_path):
    from aft_fast.data.folder import scan_split
    from aft_fast.data.scan import scan_folder

    root = _folder(tmp_path / "data")
    loop = root / "train" / "a" / "loop.jpg"
    os.symlink(loop, loop)  # a symlink to itself
    with pytest.raises(OptionError, match="not readable files .*loop.jpg"):
        scan_split(root, "train")
    assert [p for p, _ in scan_folder(root)[1]] == [str(loop)]


def _folder_with_a_garbage_middle(tmp_path):
    """(folder, its JPEG whose middle is random bytes): SOI and EOI intact, so the bytes check
    passes it, but decoding fails, as `data scan` (the loader's decoder) says."""
    from aft_fast.data.scan import scan_folder

    root = _folder(tmp_path / "data", per_class=8, side=64)
    bad = root / "train" / "a" / "3.jpg"
    data = bytearray(bad.read_bytes())
    middle = len(data) // 2
    data[middle - 200:middle + 200] = np.random.default_rng(0).integers(0, 256, 400,
                                                                        dtype=np.uint8).tobytes()
    bad.write_bytes(bytes(data))
    assert [p for p, _ in scan_folder(root)[1]] == [str(bad)]
    return root, bad


def test_a_jpeg_with_a_garbage_middle_stops_the_run_in_one_line(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from aft_fast.cli import main

    root, bad = _folder_with_a_garbage_middle(tmp_path)
    result = CliRunner().invoke(main, [
        "train", "--method", "natural", "--data", str(root), "--arch", "small_cnn",
        "--image-size", "28", "--epochs", "1", "--batch-size", "4", "--workers", "1",
        "--device", "cpu", "--quiet", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"cannot decode {bad}" in lines[0], lines
    assert "aft-fast data scan" in lines[0]


def test_check_files_decode_finds_a_corrupt_middle_before_training(tmp_path):
    """The pre-flight `--check-files decode` decodes every image as the loader will, so a JPEG
    whose middle is garbage (its first and last bytes intact) is refused before the first step,
    naming the file and the option; the default `bytes` check does not read that far."""
    from aft_fast.train.options import TrainOptions
    from aft_fast.train.run import train

    root, bad = _folder_with_a_garbage_middle(tmp_path)
    opts = dict(method="natural", data=str(root), arch="small_cnn", image_size=28, epochs=1,
                batch_size=4, workers=0, device="cpu", quiet=True)
    with pytest.raises(OptionError) as err:
        train(TrainOptions(**opts, out=str(tmp_path / "decode"), check_files="decode").check())
    assert err.value.option == "data" and str(bad) in err.value.message
    assert not (tmp_path / "decode" / "last.pt").exists()  # refused before any step
    from aft_fast.data.folder import check_files, scan_split

    files, _ = scan_split(root, "train")
    check_files(files, root, "bytes")  # the cheap check passes it: only decoding finds it


def test_check_files_takes_the_former_boolean():
    from aft_fast.train.options import TrainOptions

    assert TrainOptions(check_files=True).check().check_files == "bytes"
    assert TrainOptions(check_files=False).check().check_files == "off"
    with pytest.raises(OptionError) as err:
        TrainOptions(check_files="deep").check()
    assert err.value.option == "check_files"
