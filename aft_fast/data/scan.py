"""Pre-flight check of an image folder: fully decode every file, list the ones that fail."""
from __future__ import annotations

from pathlib import Path

from aft_fast.data.types import IMAGE_EXTENSIONS


def scan_folder(root) -> tuple[int, list[tuple[str, str]]]:
    """(files checked, [(path, error)]) for every image file under `root`."""
    from PIL import Image, ImageFile

    ImageFile.LOAD_TRUNCATED_IMAGES = False
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    bad, n = [], 0
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS):
        n += 1
        try:
            with Image.open(path) as img:
                img.load()  # decodes the whole file: a truncated JPEG fails here
        except Exception as exc:  # PIL raises several types for bad data
            bad.append((str(path), f"{type(exc).__name__}: {exc}"))
    return n, bad
