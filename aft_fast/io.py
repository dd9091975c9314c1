"""Writes that lose nothing: every file the engine produces is written to a temporary file in the
same folder and renamed over the target, so a killed process leaves the old file or the new one,
never half of one."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_torch(obj: Any, path: str | os.PathLike) -> Path:
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda f: json.dump(obj, f, indent=2, sort_keys=False, default=str),
                        mode="w")


def write_text(text: str, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda f: f.write(text), mode="w")
