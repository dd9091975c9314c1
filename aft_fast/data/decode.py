"""One way to read an image file, for every reader (the torchvision loader, `aft-fast data scan`):
what the scan calls fine the loader reads the same way, and what the loader would fail on the
scan lists.

    8-bit images        converted to RGB (PIL)
    16-bit grayscale    scaled to 8 bits (value >> 8); PIL's RGB conversion would clip every
                        value above 255 to white
    a file that fails   `UnreadableImage`, naming the file (one line, also from a loader worker)

Hidden entries (a name starting with "."; `.ipynb_checkpoints/`, macOS `._x.jpg`) are neither
classes nor images (`hidden`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

WIDE_GRAY = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # 16-bit grayscale as PIL opens it
SCAN_HINT = "find every bad file with `aft-fast data scan <folder>`"


class UnreadableImage(ValueError):
    """An image file that cannot be decoded (its message names the file)."""


def hidden(relative: Path) -> bool:
    """Whether a path (relative to the data folder) is or lies in a hidden entry."""
    return any(part.startswith(".") for part in Path(relative).parts)


def open_rgb(path):
    """The image in `path` as an 8-bit RGB PIL image (see the module docstring)."""
    from PIL import Image, ImageFile

    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, as in DALI
    try:
        with Image.open(path) as img:
            if img.mode in WIDE_GRAY:
                wide = np.asarray(img, dtype=np.int64).clip(0, 65535)
                return Image.fromarray((wide >> 8).astype(np.uint8)).convert("RGB")
            if img.mode == "F":
                raise UnreadableImage(f"cannot decode {path}: a floating-point image; save it "
                                      "with 8 or 16 bits per channel")
            return img.convert("RGB")
    except UnreadableImage:
        raise
    except Exception as exc:  # PIL raises several types for bad data
        raise UnreadableImage(f"cannot decode {path}: {exc}; {SCAN_HINT}") from None


def one_line(exc: UnreadableImage) -> UnreadableImage:
    """A loader worker's error comes back as the worker's whole traceback: keep its last line."""
    last = str(exc).strip().splitlines()[-1]
    return UnreadableImage(last.split("UnreadableImage: ", 1)[-1])
