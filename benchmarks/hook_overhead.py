"""What the profiler's section hook (`aft_fast.attacks.pgd.section`) costs when it is off.

    python benchmarks/hook_overhead.py [--before PATH/TO/OLD/pgd.py] [--rounds N] [--threads 2]

1. The hook alone: nanoseconds per `with section(name):` with no hook installed.
2. With `--before`: the PGD loop of another version of `attacks/pgd.py` (e.g. a checkout of the
   commit before the hook) loaded beside this one, both timed interleaved in one process on the
   `aft-fast bench` workload (ResNet-18, 32², batch 64, PGD-3, fp32): the ratio of the medians.
"""
import argparse
import importlib.util
import statistics
import sys
import time

import torch

from aft_fast.attacks import pgd as pgd_now
from aft_fast.attacks.pgd import section
from aft_fast.perf.workload import Workload, build_workload


def per_call_ns(n: int = 200_000) -> float:
    start = time.perf_counter()
    for _ in range(n):
        with section("attack forward"):
            pass
    return (time.perf_counter() - start) / n * 1e9


def load(path: str):
    spec = importlib.util.spec_from_file_location("pgd_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--before")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"section() with no hook: {per_call_ns():.0f} ns per use (4 uses per PGD step, 3 per "
          "weight update)")
    if not args.before:
        return
    w = Workload()
    b = build_workload(w)
    cfg = w.attack_config()
    before = load(args.before)
    old_cfg = before.AttackConfig(cfg.eps, cfg.alpha, cfg.steps)
    runs = {"before": lambda: before.pgd(b.model, b.x, b.y, old_cfg),
            "now": lambda: pgd_now(b.model, b.x, b.y, cfg)}
    times = {k: [] for k in runs}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(args.rounds):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"PGD-{w.steps} {w.arch} {w.image_size}² batch {w.batch}, {args.rounds} interleaved "
          f"rounds: before {med['before'] * 1e3:.1f} ms, now {med['now'] * 1e3:.1f} ms, "
          f"now/before {med['now'] / med['before']:.3f}")


if __name__ == "__main__":
    main()
