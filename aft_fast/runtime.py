"""Where a run executes and what it ran on: device choice and the environment stamp every JSON
result carries (device, torch, commit), so a figure always says where it came from."""
from __future__ import annotations

import os
import platform
import subprocess

import torch

from aft_fast.errors import OptionError, check
from aft_fast.policy import VERSION


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` = CUDA when available, else CPU. A CUDA request without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise OptionError("device", f"{name!r} is not a device; use auto, cpu, cuda or cuda:N") \
            from None
    check(dev.type != "cuda" or torch.cuda.is_available(), "device",
          f"{name}: no CUDA device is visible; use cpu or auto")
    return dev


def git_commit() -> str:
    """The checkout's commit (`-dirty` with local changes); AFT_FAST_COMMIT names it for a copy
    of the tree that travelled without its .git (a lent GPU machine)."""
    if os.environ.get("AFT_FAST_COMMIT"):
        return os.environ["AFT_FAST_COMMIT"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, text=True,
                             capture_output=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               text=True, capture_output=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def environment(device: torch.device | str = "cpu") -> dict:
    """The stamp written into every JSON result."""
    from aft_fast import ops

    return {
        "device": device_name(device),
        "device_type": torch.device(device).type,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "aft_fast": VERSION,
        "compiled_ops": ops.has_compiled_ops(),
        "commit": git_commit(),
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
    }


def load_average() -> list[float]:
    """The CPU's 1/5/15-min load averages: above the threads a run used, other jobs shared the
    cores and its seconds are inflated."""
    return [round(v, 1) for v in os.getloadavg()]


def synced_clock(device: torch.device | str) -> float:
    """perf_counter after the device has finished its queued work: honest timings on a GPU."""
    import time

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
