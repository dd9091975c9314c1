"""Pre-flight check of an image folder: fully decode every file the loader would read, list the
ones that fail."""
from __future__ import annotations

from pathlib import Path

from aft_fast.data.decode import SCAN_HINT, UnreadableImage, hidden, open_rgb
from aft_fast.data.types import IMAGE_EXTENSIONS


def scan_folder(root) -> tuple[int, list[tuple[str, str]]]:
    """(files checked, [(path, error)]) for every visible image file under `root`, each decoded
    the way the loader decodes it (`decode.open_rgb`)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    bad, n = [], 0
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                       and not hidden(p.relative_to(root))):
        n += 1
        try:
            open_rgb(path)
        except UnreadableImage as exc:
            bad.append((str(path), str(exc).split(": ", 1)[-1].split(f"; {SCAN_HINT}")[0]))
    return n, bad
