"""`aft-fast profile`: where the time of one PGD-AT training iteration goes.

The iteration is the engine's own loop (`aft_fast.attacks.pgd` with one restart, then the
`Trainer.update` weight step), run with a timer installed in their section hook
(`aft_fast.attacks.pgd.instrumented`): data wait, copies/casts, random start, and per attack step
forward, loss, input backward and the fused step; then the update's forward + loss, backward and
optimizer step. Sections are timed with CUDA
events on a GPU (no sync inside the iteration) and `perf_counter` on a CPU. The total is the
wall-clock of the whole iteration; time between sections (Python, loop control) is "other", and
the parts must cover the total within `TOLERANCE_PCT`. Every section is also a
`torch.profiler.record_function` range, so the Chrome trace (`--trace`) shows the same names.
`tests/test_perf.py` checks that the hook changes no result and that every part is timed.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import torch

from aft_fast.attacks import pgd
from aft_fast.attacks.pgd import instrumented
from aft_fast.errors import OptionError
from aft_fast.io import atomic_write
from aft_fast.perf.timing import DeviceTimer
from aft_fast.perf.workload import Built, Workload, build_workload
from aft_fast.runtime import environment
from aft_fast.train.update import Trainer

TOLERANCE_PCT = 10.0  # |other| may be at most this share of the measured total
PARTS = ("data wait", "copies/casts", "random start", "attack forward", "attack loss",
         "input backward", "fused step", "update forward+loss", "update backward", "optimizer step")


class SectionClock:
    """Start/end marks around named sections of one iteration; durations summed per name."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.spans: list[tuple[str, object, object]] = []

    def _mark(self):
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    @contextlib.contextmanager
    def section(self, name: str):
        with torch.profiler.record_function(name):
            start = self._mark()
            yield
            self.spans.append((name, start, self._mark()))

    def begin(self):
        self.spans.clear()
        self.first = self._mark()

    def end(self) -> tuple[float, dict[str, float]]:
        """(total seconds from begin, seconds per section name) of this iteration."""
        last = self._mark()
        if self.cuda:
            last.synchronize()
            elapsed = lambda a, b: a.elapsed_time(b) / 1000.0  # noqa: E731
        else:
            elapsed = lambda a, b: b - a  # noqa: E731
        parts: dict[str, float] = defaultdict(float)
        for name, a, b in self.spans:
            parts[name] += elapsed(a, b)
        return elapsed(self.first, last), dict(parts)


class Iteration:
    """One PGD-AT iteration on the workload: the engine's own `pgd` and `Trainer.update`, timed
    through their section hook (`attacks.pgd.instrumented`), not a copy of them."""

    def __init__(self, b: Built, w: Workload, pool: int = 2):
        self.b, self.w, self.cfg = b, w, w.attack_config()
        # Host-side batches: the data wait is the copy to the device in the engine's layout.
        self.host = [(b.x.cpu().contiguous(), b.y.cpu()) for _ in range(pool)]
        if b.device.type == "cuda":
            self.host = [(x.pin_memory(), y.pin_memory()) for x, y in self.host]
        self.opt = torch.optim.SGD(b.model.parameters(), lr=1e-3, momentum=0.9)
        self.trainer = Trainer(b.model, self.opt, w.amp, b.device)
        self.i = 0

    def next_batch(self):
        x, y = self.host[self.i % len(self.host)]
        self.i += 1
        x = x.to(self.b.device, non_blocking=True).contiguous(memory_format=self.w.memory_format)
        return x, y.to(self.b.device, non_blocking=True)

    def step(self, x, y, generator: torch.Generator | None = None) -> torch.Tensor:
        """The iteration as the engine runs it: PGD examples, then one weight update."""
        x_adv = pgd(self.b.model, x, y, self.cfg, generator=generator)
        self.trainer.update(x_adv, y)
        return x_adv

    def run(self, clock: SectionClock) -> tuple[float, dict[str, float]]:
        clock.begin()
        with clock.section("data wait"):
            x, y = self.next_batch()
        with instrumented(clock.section):
            self.step(x, y)
        return clock.end()

    def run_plain(self) -> None:
        """The same iteration without sections (the hook off)."""
        self.step(*self.next_batch())


def _top_ops(prof, n: int, cuda: bool) -> list[dict]:
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if not e.key.startswith("ProfilerStep")
              and e.key not in PARTS]
    events.sort(key=lambda e: getattr(e, key, 0.0), reverse=True)
    return [{"op": e.key, "calls": e.count, "self_ms": getattr(e, key, 0.0) / 1000.0}
            for e in events[:n]]


def run_profile(w: Workload, *, iterations: int = 5, warmup: int = 1, trace: str | None = None,
                top_ops: int = 10, progress: Callable[[str], None] | None = None) -> dict:
    """Mean seconds per iteration of each part over `iterations` after `warmup`, the measured
    total, the remainder ("other"), the same iteration untimed for comparison, and optionally a
    torch.profiler pass (top ops by self time, Chrome trace)."""
    if iterations < 1:
        raise OptionError("iterations", f"must be >= 1, got {iterations}")
    if warmup < 0:
        raise OptionError("warmup", f"must be >= 0, got {warmup}")
    say = progress or (lambda msg: None)
    load_start = os.getloadavg()[0]
    b = build_workload(w)
    it = Iteration(b, w)
    clock = SectionClock(b.device)
    say(f"warm-up ({warmup})")
    for _ in range(warmup):
        it.run(clock)
        it.run_plain()
    totals, sums = [], defaultdict(float)
    say(f"timing {iterations} iterations")
    for _ in range(iterations):
        total, parts = it.run(clock)
        totals.append(total)
        for k, v in parts.items():
            sums[k] += v
    timer = DeviceTimer(b.device)
    plain = [timer(it.run_plain) for _ in range(iterations)]
    total = sum(totals) / iterations
    parts = {k: sums[k] / iterations for k in PARTS if k in sums}
    other = total - sum(parts.values())
    result = {
        "kind": "aft_fast.profile/1",
        "environment": environment(b.device),
        "settings": {**w.as_dict(), "device": str(b.device), "iterations": iterations,
                     "warmup": warmup, "timer": "CUDA events" if clock.cuda else "perf_counter",
                     "iteration": f"PGD-{w.steps} attack (eval-mode BN) + one SGD update"},
        "total_s": total,
        "parts": {k: {"s": v, "pct": 100.0 * v / total,
                      **({"per_step_s": v / w.steps} if k in ("attack forward", "attack loss",
                                                              "input backward", "fused step") else {})}
                  for k, v in parts.items()},
        "other_s": other,
        "other_pct": 100.0 * other / total,
        "tolerance_pct": TOLERANCE_PCT,
        "within_tolerance": abs(other) <= TOLERANCE_PCT / 100.0 * total,
        # the same iteration without sections (pgd + Trainer.update): what instrumenting costs
        "uninstrumented_total_s": sorted(plain)[len(plain) // 2],
        "top_ops": [],
        "trace": None,
        # other processes on the machine during the run (1-min load average, start and end)
        "load_average": [load_start, os.getloadavg()[0]],
    }
    if trace or top_ops > 0:
        say("torch.profiler pass")
        activities = [torch.profiler.ProfilerActivity.CPU]
        if b.device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as prof:
            for _ in range(min(iterations, 2)):
                it.run(clock)
        result["top_ops"] = _top_ops(prof, top_ops, b.device.type == "cuda")
        if trace:
            _export_trace(prof, trace)
            result["trace"] = str(trace)
    return result


def _export_trace(prof, path) -> None:
    """Chrome trace, written atomically (the profiler itself writes to a path)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".json", dir=path.parent)
    os.close(fd)
    try:
        prof.export_chrome_trace(tmp)
        data = Path(tmp).read_bytes()
    finally:
        os.unlink(tmp)
    atomic_write(path, lambda f: f.write(data))


def profile_table(result: dict) -> list[list[str]]:
    rows = [["part", "ms / iteration", "%", "ms / step"]]
    for name, p in result["parts"].items():
        rows.append([name, f"{p['s'] * 1000:.2f}", f"{p['pct']:.1f}",
                     f"{p['per_step_s'] * 1000:.2f}" if "per_step_s" in p else ""])
    rows.append(["other (between sections)", f"{result['other_s'] * 1000:.2f}",
                 f"{result['other_pct']:.1f}", ""])
    rows.append(["total (measured)", f"{result['total_s'] * 1000:.2f}", "100.0", ""])
    rows.append(["same iteration, no sections", f"{result['uninstrumented_total_s'] * 1000:.2f}",
                 f"{100 * result['uninstrumented_total_s'] / result['total_s']:.1f}", ""])
    return rows
