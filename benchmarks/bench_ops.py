"""The fused ops against the eager unfused sequence and against torch.compile of that sequence.

Two ways to run it:
  python benchmarks/bench_ops.py [--device cpu|cuda] [--json PATH] [--md PATH]
      all variants side by side in one process: a table of ms, GB/s and ratios (the figures in
      benchmarks/results/ come from here);
  pytest benchmarks/bench_ops.py --benchmark-only
      the same variants as pytest-benchmark cases (`make bench`).

Sizes follow the issue: 64×3×224×224 on CPU, 256×3×224×224 on GPU. GB/s counts the bytes an ideal
single pass must move (every operand read once, every output written once); the copy row (torch's
`copy_` of one tensor) is the reference for what the device moves; on a GPU it is the floor the
fused op is held to (85% of it on an H100).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.utils.benchmark as tbench

from aft_fast import ops

EPS, ALPHA = 8 / 255, 2 / 255


def default_shape(device: str) -> tuple[int, ...]:
    return (256, 3, 224, 224) if device.startswith("cuda") else (64, 3, 224, 224)


# The plain-PyTorch way: what research code writes (one kernel per operator).
def eager_pgd_step(x_adv, grad, x_nat):
    x = x_adv + ALPHA * grad.sign()
    x = torch.min(torch.max(x, x_nat - EPS), x_nat + EPS)
    x_adv.copy_(x.clamp(0, 1))


def eager_pgd_step_mixed(x_adv, grad, x_nat, x_low):
    eager_pgd_step(x_adv, grad, x_nat)
    x_low.copy_(x_adv)  # the separate cast pass autocast needs


def eager_delta_step(delta, grad, x, x_adv):
    d = (delta + EPS * grad.sign()).clamp(-EPS, EPS)
    x_adv.copy_((x + d).clamp(0, 1))
    delta.copy_(x_adv - x)


def eager_random_init(x_adv, x_nat):
    x_adv.uniform_(-EPS, EPS).add_(x_nat).clamp_(0, 1)


@dataclass
class Case:
    name: str
    bytes_moved: int
    fused: Callable[[], None]
    eager: Callable[[], None]


def make_cases(device: str, shape) -> dict[str, Case]:
    g = torch.Generator(device=device).manual_seed(0)
    x_nat = torch.rand(shape, device=device, generator=g)
    grad = torch.randn(shape, device=device, generator=g)
    x_adv = x_nat.clone()
    grad_bf16, x_low = grad.bfloat16(), torch.empty_like(x_nat, dtype=torch.bfloat16)
    delta, x_out = torch.zeros_like(x_nat), torch.empty_like(x_nat)
    n, f32, bf16 = x_nat.numel(), 4, 2
    return {
        "pgd_step fp32": Case("pgd_step fp32", n * f32 * 4,
                              lambda: ops.pgd_step_(x_adv, grad, x_nat, EPS, ALPHA),
                              lambda: eager_pgd_step(x_adv, grad, x_nat)),
        "pgd_step fp32 + bf16 grad/copy": Case(
            "pgd_step fp32 + bf16 grad/copy", n * (f32 * 3 + bf16 * 2),
            lambda: ops.pgd_step_(x_adv, grad_bf16, x_nat, EPS, ALPHA, out=x_low),
            lambda: eager_pgd_step_mixed(x_adv, grad_bf16, x_nat, x_low)),
        "delta_step fp32": Case("delta_step fp32", n * f32 * 5,
                                lambda: ops.delta_step_(delta, grad, x_nat, EPS, EPS, x_adv=x_out),
                                lambda: eager_delta_step(delta, grad, x_nat, x_out)),
        "random_init fp32": Case("random_init fp32", n * f32 * 2,
                                 lambda: ops.random_init_(x_adv, x_nat, EPS, seed=1),
                                 lambda: eager_random_init(x_adv, x_nat)),
    }


def compiled_eager(case_name: str, device: str, shape):
    """torch.compile (inductor) of the same eager sequence, on its own tensors."""
    cases = make_cases(device, shape)
    fn = torch.compile(cases[case_name].eager)
    fn()  # compile outside the timed region
    return fn


def copy_case(device: str, shape):
    x = torch.rand(shape, device=device)
    y = torch.empty_like(x)
    return x.numel() * 4 * 2, lambda: y.copy_(x)


def time_ms(fn: Callable[[], None], min_run_time: float) -> float:
    for _ in range(3):
        fn()
    timer = tbench.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def interleaved_ms(variants: dict[str, Callable[[], None]], min_run_time: float,
                   rounds: int = 5) -> dict[str, float]:
    """Median over rounds, each round timing every variant once: drifts in machine state (other
    processes, cache placement) hit all variants alike instead of whichever ran last."""
    samples = {k: [] for k in variants}
    for _ in range(rounds):
        for label, fn in variants.items():
            samples[label].append(time_ms(fn, min_run_time / rounds))
    return {k: sorted(v)[len(v) // 2] for k, v in samples.items()}


def run(device: str, shape, min_run_time: float = 1.0, with_compile: bool = True) -> dict:
    from aft_fast.runtime import environment

    copy_bytes, copy_fn = copy_case(device, shape)
    copy_ms = interleaved_ms({"copy": copy_fn}, min_run_time)["copy"]
    copy_gbs = copy_bytes / copy_ms / 1e6
    rows = []
    for name, case in make_cases(device, shape).items():
        row = {"op": name, "bytes": case.bytes_moved}
        variants = {"fused": case.fused, "eager": case.eager}
        if with_compile:
            variants["compiled"] = compiled_eager(name, device, shape)
        for label, ms in interleaved_ms(variants, min_run_time).items():
            row[f"{label}_ms"] = ms
            row[f"{label}_gbs"] = case.bytes_moved / ms / 1e6
        row["speedup_vs_eager"] = row["eager_ms"] / row["fused_ms"]
        if with_compile:
            row["speedup_vs_compiled"] = row["compiled_ms"] / row["fused_ms"]
        row["fraction_of_copy_bw"] = row["fused_gbs"] / copy_gbs
        rows.append(row)
    return {"environment": environment(device), "shape": list(shape), "copy_ms": copy_ms,
            "copy_gbs": copy_gbs, "rows": rows}


def markdown(result: dict, command: str) -> str:
    env = result["environment"]
    lines = [f"# Fused ops vs eager vs torch.compile — {env['device']}", "",
             f"Command: `{command}`  ", f"torch {env['torch']}, commit {env['commit']}, "
             f"shape {'×'.join(map(str, result['shape']))}; torch `copy_` of one tensor: "
             f"{result['copy_gbs']:.1f} GB/s ({result['copy_ms']:.2f} ms). Medians of 5 interleaved "
             "rounds. GB/s = bytes an ideal single pass moves / time.", "",
             "| op | fused ms | GB/s | eager ms | compiled ms | × eager | × compiled | vs copy_ GB/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['op']} | {r['fused_ms']:.2f} | {r['fused_gbs']:.1f} | {r['eager_ms']:.2f} | "
                     f"{r.get('compiled_ms', float('nan')):.2f} | {r['speedup_vs_eager']:.1f}× | "
                     f"{r.get('speedup_vs_compiled', float('nan')):.2f}× | "
                     f"{100 * r['fraction_of_copy_bw']:.0f}% |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--shape", default=None, help="e.g. 64,3,224,224")
    p.add_argument("--min-run-time", type=float, default=1.0)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--json", default=None)
    p.add_argument("--md", default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = tuple(int(s) for s in args.shape.split(",")) if args.shape else default_shape(args.device)
    result = run(args.device, shape, args.min_run_time, not args.no_compile)
    command = "python " + " ".join(["benchmarks/bench_ops.py", *(argv if argv is not None else sys.argv[1:])])
    result["command"] = command
    table = markdown(result, command)
    print(table)
    if args.json:
        from aft_fast.io import write_json
        write_json(result, args.json)
    if args.md:
        Path(args.md).write_text(table)
    return 0


# ----------------------------------------------------------------------- pytest-benchmark cases
def _bench_device():
    return "cuda" if torch.cuda.is_available() else "cpu"


try:
    import pytest

    @pytest.mark.parametrize("variant", ["fused", "eager"])
    @pytest.mark.parametrize("name", ["pgd_step fp32", "pgd_step fp32 + bf16 grad/copy",
                                      "delta_step fp32", "random_init fp32"])
    def test_op(benchmark, name, variant):
        device = _bench_device()
        shape = default_shape(device)
        case = make_cases(device, shape)[name]
        fn = getattr(case, variant)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

        def call():
            fn()
            sync()

        benchmark.extra_info.update(device=device, shape=list(shape), bytes=case.bytes_moved)
        benchmark.pedantic(call, warmup_rounds=3, rounds=10, iterations=1)
        benchmark.extra_info["gbs_median"] = case.bytes_moved / benchmark.stats["median"] / 1e9
except ImportError:  # pragma: no cover
    pass


if __name__ == "__main__":
    sys.exit(main())
