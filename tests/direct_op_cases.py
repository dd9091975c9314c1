"""Every compiled op called directly (``torch.ops.aft_fast.*``, no Python wrapper) with each bad
argument, and the error it must raise. Run as a script, it calls the cases in this process and
prints one JSON line per case, so `tests/test_ops.py` can run them in a child process: a case that
crashes the interpreter (as streamed numbers did on one GPU machine, benchmarks/results/gpu/) then
fails its own test instead of taking the whole suite down.

    python tests/direct_op_cases.py DEVICE FIRST_CASE
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Callable

import torch

EPS, ALPHA = 8 / 255, 2 / 255
SHAPE = (2, 3, 4, 4)


@dataclass(frozen=True)
class Case:
    name: str
    error: str      # the Python exception class the op raises
    message: str    # a piece of the message, naming the argument
    call: Callable[[str], None]  # device -> calls the op
    cuda_only: bool = False


def _x(device, dtype=torch.float32, shape=SHAPE):
    return torch.rand(shape, device=device).to(dtype)


def _batch_inner(device):
    """Dense, but the batch dimension is not outermost in memory (strides (16, 32, 4, 1))."""
    return torch.rand(3, 2, 4, 4, device=device).transpose(0, 1)


def _cl(t):
    return t.contiguous(memory_format=torch.channels_last)


def _sparse(device):
    return torch.rand(2, 3, 4, 8, device=device)[..., ::2]


def pgd(device, x_adv=None, grad=None, x_nat=None, eps=EPS, alpha=ALPHA, lo=0.0, hi=1.0,
        eps_n=None, alpha_n=None, out=None):
    x = _x(device)
    torch.ops.aft_fast.pgd_step_(x.clone() if x_adv is None else x_adv, x if grad is None else grad,
                                 x if x_nat is None else x_nat, eps, alpha, lo, hi, eps_n, alpha_n,
                                 out)


def init(device, x_adv=None, x_nat=None, eps=EPS, lo=0.0, hi=1.0, eps_n=None, out=None):
    x = _x(device)
    torch.ops.aft_fast.random_init_(x.clone() if x_adv is None else x_adv,
                                    x if x_nat is None else x_nat, eps, lo, hi, 7, eps_n, out)


def delta(device, delta=None, grad=None, x=None, eps=EPS, alpha=ALPHA, lo=0.0, hi=1.0,
          eps_n=None, alpha_n=None, x_adv=None):
    t = _x(device)
    torch.ops.aft_fast.delta_step_(torch.zeros_like(t) if delta is None else delta,
                                   t if grad is None else grad, t if x is None else x, eps, alpha,
                                   lo, hi, eps_n, alpha_n, x_adv)


V, T = "ValueError", "TypeError"
nan, inf = float("nan"), float("inf")
CASES = [
    # ---------------------------------------------------------------------------- pgd_step_
    Case("pgd-x_adv-float64", T, "pgd_step_: x_adv must be float32, float16 or bfloat16, got Double",
         lambda d: pgd(d, _x(d, torch.float64), _x(d, torch.float64), _x(d, torch.float64))),
    Case("pgd-x_adv-int32", T, "x_adv must be float32, float16 or bfloat16, got Int",
         lambda d: pgd(d, x_adv=_x(d, torch.int32))),
    Case("pgd-grad-int32", T, "grad must be float32, float16 or bfloat16, got Int",
         lambda d: pgd(d, grad=_x(d, torch.int32))),
    Case("pgd-x_nat-dtype", T, "x_nat must have x_adv's dtype Float, got Half",
         lambda d: pgd(d, x_nat=_x(d, torch.float16))),
    Case("pgd-grad-shape", V, "grad and x_adv must have the same shape, got [2, 3, 4, 5] and [2, 3, 4, 4]",
         lambda d: pgd(d, grad=_x(d, shape=(2, 3, 4, 5)))),
    Case("pgd-x_nat-shape", V, "x_nat and x_adv must have the same shape",
         lambda d: pgd(d, x_nat=_x(d, shape=(1, 3, 4, 4)))),
    Case("pgd-grad-layout", V, "grad must have the same memory layout as x_adv, got strides [48, 1, 12, 3]",
         lambda d: pgd(d, grad=_cl(_x(d)))),
    Case("pgd-x_adv-not-dense", V, "x_adv must be dense in memory",
         lambda d: pgd(d, _sparse(d), _sparse(d), _sparse(d))),
    Case("pgd-eps-negative", V, "eps must be a finite number >= 0, got -0.1",
         lambda d: pgd(d, eps=-0.1)),
    Case("pgd-eps-nan", V, "eps must be a finite number >= 0, got nan", lambda d: pgd(d, eps=nan)),
    Case("pgd-eps-inf", V, "eps must be a finite number >= 0, got inf", lambda d: pgd(d, eps=inf)),
    Case("pgd-alpha-negative", V, "alpha must be a finite number >= 0, got -1",
         lambda d: pgd(d, alpha=-1.0)),
    Case("pgd-alpha-nan", V, "alpha must be a finite number >= 0, got nan",
         lambda d: pgd(d, alpha=nan)),
    Case("pgd-lo-above-hi", V, "lo <= hi with finite bounds, got lo=1, hi=0",
         lambda d: pgd(d, lo=1.0, hi=0.0)),
    Case("pgd-lo-nan", V, "got lo=nan, hi=1", lambda d: pgd(d, lo=nan)),
    Case("pgd-hi-inf", V, "got lo=0, hi=inf", lambda d: pgd(d, hi=inf)),
    Case("pgd-eps_per_sample-length", V, "eps_per_sample must have shape [N] = [2], got [3]",
         lambda d: pgd(d, eps_n=torch.ones(3, device=d))),
    Case("pgd-eps_per_sample-2d", V, "eps_per_sample must have shape [N] = [2], got [2, 1]",
         lambda d: pgd(d, eps_n=torch.ones(2, 1, device=d))),
    Case("pgd-eps_per_sample-float64", T, "eps_per_sample must be a float32 tensor, got Double",
         lambda d: pgd(d, eps_n=torch.ones(2, device=d, dtype=torch.float64))),
    Case("pgd-eps_per_sample-strided", V, "eps_per_sample must be contiguous, got strides [2]",
         lambda d: pgd(d, eps_n=torch.ones(4, device=d)[::2])),
    Case("pgd-alpha_per_sample-length", V, "alpha_per_sample must have shape [N] = [2], got [1]",
         lambda d: pgd(d, alpha_n=torch.ones(1, device=d))),
    Case("pgd-per-sample-batch-inner", V,
         "per-sample eps_per_sample needs the batch dimension outermost in memory, got strides [16, 32, 4, 1]",
         lambda d: pgd(d, _batch_inner(d), _batch_inner(d), _batch_inner(d),
                       eps_n=torch.ones(2, device=d))),
    Case("pgd-out-shape", V, "out and x_adv must have the same shape, got [2] and [2, 3, 4, 4]",
         lambda d: pgd(d, out=torch.empty(2, device=d))),
    Case("pgd-out-int32", T, "out must be float32, float16 or bfloat16, got Int",
         lambda d: pgd(d, out=_x(d, torch.int32))),
    Case("pgd-out-layout", V, "out must have the same memory layout as x_adv",
         lambda d: pgd(d, out=_cl(_x(d, torch.bfloat16)))),
    # -------------------------------------------------------------------------- random_init_
    Case("init-x_adv-float64", T, "random_init_: x_adv must be float32, float16 or bfloat16",
         lambda d: init(d, _x(d, torch.float64), _x(d, torch.float64))),
    Case("init-x_nat-shape", V, "random_init_: x_nat and x_adv must have the same shape",
         lambda d: init(d, x_nat=_x(d, shape=(1, 3, 4, 4)))),
    Case("init-x_nat-dtype", T, "x_nat must have x_adv's dtype Float, got BFloat16",
         lambda d: init(d, x_nat=_x(d, torch.bfloat16))),
    Case("init-x_nat-layout", V, "x_nat must have the same memory layout as x_adv",
         lambda d: init(d, x_nat=_cl(_x(d)))),
    Case("init-eps-negative", V, "random_init_: eps must be a finite number >= 0, got -0.5",
         lambda d: init(d, eps=-0.5)),
    Case("init-eps-nan", V, "eps must be a finite number >= 0, got nan", lambda d: init(d, eps=nan)),
    Case("init-lo-above-hi", V, "random_init_: the box must satisfy lo <= hi",
         lambda d: init(d, lo=0.5, hi=0.25)),
    Case("init-eps_per_sample-length", V, "eps_per_sample must have shape [N] = [2], got [5]",
         lambda d: init(d, eps_n=torch.ones(5, device=d))),
    Case("init-out-shape", V, "out and x_adv must have the same shape",
         lambda d: init(d, out=_x(d, shape=(2, 3, 4, 1)))),
    # --------------------------------------------------------------------------- delta_step_
    Case("delta-delta-float64", T, "delta_step_: delta must be float32, float16 or bfloat16",
         lambda d: delta(d, _x(d, torch.float64), _x(d, torch.float64), _x(d, torch.float64))),
    Case("delta-delta-not-dense", V, "delta must be dense in memory",
         lambda d: delta(d, _sparse(d), _sparse(d), _sparse(d))),
    Case("delta-grad-shape", V, "grad and delta must have the same shape",
         lambda d: delta(d, grad=_x(d, shape=(2, 3, 2, 4)))),
    Case("delta-x-dtype", T, "x must have delta's dtype Float, got Half",
         lambda d: delta(d, x=_x(d, torch.float16))),
    Case("delta-eps-negative", V, "delta_step_: eps must be a finite number >= 0, got -0.25",
         lambda d: delta(d, eps=-0.25)),
    Case("delta-alpha-nan", V, "alpha must be a finite number >= 0, got nan",
         lambda d: delta(d, alpha=nan)),
    Case("delta-lo-above-hi", V, "delta_step_: the box must satisfy lo <= hi",
         lambda d: delta(d, lo=2.0, hi=1.0)),
    Case("delta-alpha_per_sample-length", V, "alpha_per_sample must have shape [N] = [2], got [4]",
         lambda d: delta(d, alpha_n=torch.ones(4, device=d))),
    Case("delta-x_adv-shape", V, "x_adv and delta must have the same shape",
         lambda d: delta(d, x_adv=_x(d, shape=(2, 3, 4, 3)))),
    Case("delta-x_adv-int32", T, "x_adv must be float32, float16 or bfloat16, got Int",
         lambda d: delta(d, x_adv=_x(d, torch.int32))),
    # ----------------------------------------------- operands on two devices (needs a GPU)
    Case("pgd-grad-on-cpu", V, "grad and x_adv must be on the same device, got cpu and cuda:0",
         lambda d: pgd(d, grad=_x("cpu")), cuda_only=True),
    Case("pgd-eps_per_sample-on-cpu", V, "eps_per_sample must be on cuda:0, got cpu",
         lambda d: pgd(d, eps_n=torch.ones(2)), cuda_only=True),
    Case("init-x_nat-on-cpu", V, "x_nat and x_adv must be on the same device",
         lambda d: init(d, x_nat=_x("cpu")), cuda_only=True),
    Case("delta-x_adv-on-cpu", V, "x_adv and delta must be on the same device",
         lambda d: delta(d, x_adv=_x("cpu")), cuda_only=True),
]


def run(device: str, first: int) -> None:
    """Call cases[first:] in order; a line before each call, so a crash names its case."""
    import aft_fast.ops  # noqa: F401  (registers torch.ops.aft_fast.*)

    for i in range(first, len(CASES)):
        case = CASES[i]
        print(json.dumps({"case": i, "started": True}), flush=True)
        if case.cuda_only and device != "cuda":
            result = {"case": i, "skipped": True}
        else:
            try:
                case.call(device)
                result = {"case": i, "raised": None}
            except Exception as exc:  # noqa: BLE001 - the class is the result
                result = {"case": i, "raised": type(exc).__name__,
                          "message": str(exc).splitlines()[0]}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]))
