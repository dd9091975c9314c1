"""Writes that lose nothing: every file the engine produces is written to a temporary file in the
same folder and renamed over the target, so a killed process leaves the old file or the new one,
never half of one."""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


FULL = (errno.ENOSPC, errno.EDQUOT)  # a full disk, an exhausted quota


class DiskFull(OSError):
    """A write found no room: one line that says which file, and that its old version is intact
    (the write went to a temporary file, removed again)."""

    def __init__(self, path: Path, cause: BaseException):
        self.path = path
        reason = getattr(cause, "strerror", None) or "no space left on device"
        super().__init__(errno.ENOSPC, f"{path.parent} is full: {path.name} could not be written "
                         f"({reason}); its previous version is intact. Free space (or pick "
                         "another folder) and run the command again (a training run: with "
                         "--resume)")

    def __str__(self) -> str:
        return self.strerror


def _full_disk(exc: BaseException) -> bool:
    """Whether `exc`, or what caused it (torch.save wraps the OSError of a write), is a full disk."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in FULL:
            return True
        if "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, fsync, then rename. A full
    disk is `DiskFull` (the temporary file removed, the old ``path`` untouched)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if _full_disk(exc) and not isinstance(exc, DiskFull):
            raise DiskFull(path, exc) from None
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
