"""The fused attack ops: the only place the sign-step and l∞ projection math is called from.

Each function validates its arguments (errors name the argument and the fix), then runs the compiled
kernel ``torch.ops.aft_fast.*`` (CPU or CUDA, chosen by the tensors' device) or, when the compiled
library is missing, the plain-PyTorch twin in :mod:`aft_fast.reference` after one warning.

``eps`` and ``alpha`` are a Python float or a float32 tensor of shape ``[N]`` (one value per sample,
batch dimension outermost in memory). Every tensor operand shares ``x_adv``'s shape, device and
dense layout (contiguous or channels_last, or any other dense layout they all share).
"""
from __future__ import annotations

import math
import warnings

import torch

from aft_fast import reference

Scalar = float | torch.Tensor

_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

try:
    from aft_fast import _C  # noqa: F401  (importing it registers torch.ops.aft_fast.*)
    _LOAD_ERROR: Exception | None = None
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    _C = None
    _LOAD_ERROR = exc

_warned = False


def has_compiled_ops() -> bool:
    """True when the C++/CUDA library is loaded."""
    return _C is not None


def build_info() -> dict:
    """What the compiled library contains (kernels, CUDA architectures, torch it was built with)."""
    if _C is None:
        return {"compiled": False, "error": str(_LOAD_ERROR),
                "fix": "build it with `make install` (or `pip install --no-build-isolation -e .`)"}
    return {"compiled": True, **_C.build_info()}


def _use_reference() -> bool:
    global _warned
    if _C is not None:
        return False
    if not _warned:
        warnings.warn(f"aft_fast: compiled ops unavailable ({_LOAD_ERROR}); using the slow "
                      "pure-PyTorch reference. Build them with `make install`.", stacklevel=3)
        _warned = True
    return True


# ----------------------------------------------------------------------------------------- checks
def _check_tensor(name: str, t, ref: torch.Tensor | None, ref_name: str, float_only=True) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if float_only and t.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32, float16 or bfloat16, got {t.dtype}")
    if ref is None:
        if not is_dense(t):
            raise ValueError(f"{name} must be dense in memory (contiguous or channels_last), got "
                             f"strides {tuple(t.stride())}; call .contiguous() first")
        return
    if t.shape != ref.shape:
        raise ValueError(f"{name} and {ref_name} must have the same shape, got "
                         f"{tuple(t.shape)} and {tuple(ref.shape)}")
    if t.device != ref.device:
        raise ValueError(f"{name} and {ref_name} must be on the same device, got "
                         f"{t.device} and {ref.device}")
    if _dense_strides(t) != _dense_strides(ref):
        raise ValueError(f"{name} must have the same memory layout as {ref_name}, got strides "
                         f"{tuple(t.stride())} and {tuple(ref.stride())}; convert both with "
                         f".contiguous(memory_format=...)")


def is_dense(t: torch.Tensor) -> bool:
    """Non-overlapping and dense: the elements fill one block of memory, in some dimension order."""
    expected = 1
    for stride, size in sorted((s, n) for s, n in zip(t.stride(), t.shape) if n > 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _dense_strides(t: torch.Tensor) -> tuple:
    """Strides with size-1 dimensions masked: they do not change where elements live."""
    return tuple(s if n > 1 else -1 for s, n in zip(t.stride(), t.shape))


def _as_float(name: str, v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or a float tensor of shape [N], got "
                        f"{type(v).__name__} {v!r}") from None


def _check_scalar(name: str, v, x: torch.Tensor, minimum: float | None = 0.0) -> tuple[float, torch.Tensor | None]:
    """Split a float-or-[N]-tensor argument into the op's (float, Tensor?) pair."""
    if isinstance(v, torch.Tensor):
        n = x.shape[0] if x.dim() else 1
        if v.dim() != 1 or v.numel() != n:
            raise ValueError(f"{name} as a tensor must have shape [N] = [{n}] (one value per "
                             f"sample), got {tuple(v.shape)}")
        if v.device != x.device:
            raise ValueError(f"{name} must be on {x.device}, got {v.device}")
        if x.dim() and n > 1 and x.stride(0) != x.numel() // n:
            raise ValueError(f"per-sample {name} needs the batch dimension outermost in memory; "
                             f"got strides {tuple(x.stride())}")
        v = v.to(torch.float32).contiguous()
        # A value check needs the values: done on CPU tensors only (on CUDA it would sync).
        if (v.device.type == "cpu" and minimum is not None and not torch.compiler.is_compiling()
                and bool((v < minimum).any())):
            raise ValueError(f"{name} must be >= {minimum:g} for every sample")
        return 0.0, v
    v = _as_float(name, v)
    if not math.isfinite(v) or (minimum is not None and v < minimum):
        raise ValueError(f"{name} must be a finite number >= {minimum:g}, got {v}")
    return v, None


def _check_box(lo: float, hi: float) -> tuple[float, float]:
    lo, hi = _as_float("lo", lo), _as_float("hi", hi)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"the box must satisfy lo <= hi with finite bounds, got lo={lo}, hi={hi}")
    return lo, hi


def _check_out(name: str, out, x: torch.Tensor, x_name: str) -> None:
    if out is not None:
        _check_tensor(name, out, x, x_name)


def _step(op: str, names: tuple[str, str, str, str], x, grad, nat, out, eps, alpha, lo, hi):
    """pgd_step_ and delta_step_: the same checks (under each op's own argument `names`: updated
    tensor, gradient, clean input, optional output), then the compiled op or its reference."""
    x_name, grad_name, nat_name, out_name = names
    _check_tensor(x_name, x, None, "")
    _check_tensor(grad_name, grad, x, x_name)
    _check_tensor(nat_name, nat, x, x_name)
    if nat.dtype != x.dtype:
        raise TypeError(f"{nat_name} must have {x_name}'s dtype {x.dtype}, got {nat.dtype}")
    _check_out(out_name, out, x, x_name)
    eps_f, eps_n = _check_scalar("eps", eps, x)
    alpha_f, alpha_n = _check_scalar("alpha", alpha, x)
    lo, hi = _check_box(lo, hi)
    if _use_reference():
        getattr(reference, op)(x, grad, nat, eps if eps_n is None else eps_n,
                               alpha if alpha_n is None else alpha_n, lo, hi, out)
    else:
        getattr(torch.ops.aft_fast, op)(x, grad, nat, eps_f, alpha_f, lo, hi, eps_n, alpha_n, out)


# ------------------------------------------------------------------------------------------- ops
def pgd_step_(x_adv: torch.Tensor, grad: torch.Tensor, x_nat: torch.Tensor, eps: Scalar,
              alpha: Scalar, lo: float = 0.0, hi: float = 1.0,
              out: torch.Tensor | None = None) -> torch.Tensor:
    """One PGD ascent step, in place, in one pass over memory.

    ``x_adv <- clamp(clamp(x_adv + alpha * sign(grad), x_nat - eps, x_nat + eps), lo, hi)``.
    ``grad`` may have any float dtype (e.g. bfloat16 from an autocast forward). ``out``, if given,
    receives the same result in its own dtype (e.g. a bfloat16 copy for the next forward), so mixed
    precision costs no extra pass. Math is float32 for every storage dtype. Returns ``x_adv``.
    """
    _step("pgd_step_", ("x_adv", "grad", "x_nat", "out"), x_adv, grad, x_nat, out, eps, alpha,
          lo, hi)
    return x_adv


def random_init_(x_adv: torch.Tensor, x_nat: torch.Tensor, eps: Scalar, lo: float = 0.0,
                 hi: float = 1.0, seed: int | None = None, generator: torch.Generator | None = None,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """Random start, in place: ``x_adv`` uniform in ``[x_nat-eps, x_nat+eps] ∩ [lo, hi]``.

    The values are a pure function of ``seed`` and each element's memory offset (identical on CPU
    and CUDA). Without ``seed``, one is drawn from ``generator`` (a CPU ``torch.Generator``; the
    global one by default, so ``torch.manual_seed`` makes runs repeatable) with no device sync.
    """
    _check_tensor("x_adv", x_adv, None, "")
    _check_tensor("x_nat", x_nat, x_adv, "x_adv")
    if x_nat.dtype != x_adv.dtype:
        raise TypeError(f"x_nat must have x_adv's dtype {x_adv.dtype}, got {x_nat.dtype}")
    _check_out("out", out, x_adv, "x_adv")
    eps_f, eps_n = _check_scalar("eps", eps, x_adv)
    lo, hi = _check_box(lo, hi)
    if seed is None:
        seed = draw_seed(generator)
    seed = int(seed) & ((1 << 64) - 1)
    signed_seed = seed - (1 << 64) if seed >= (1 << 63) else seed
    if _use_reference():
        reference.random_init_(x_adv, x_nat, eps if eps_n is None else eps_n, lo, hi, seed, out)
    else:
        torch.ops.aft_fast.random_init_(x_adv, x_nat, eps_f, lo, hi, signed_seed, eps_n, out)
    return x_adv


def delta_step_(delta: torch.Tensor, grad: torch.Tensor, x: torch.Tensor, eps: Scalar,
                alpha: Scalar, lo: float = 0.0, hi: float = 1.0,
                x_adv: torch.Tensor | None = None) -> torch.Tensor:
    """Free-AT / Fast-AT update of a persistent perturbation ``delta``, in place.

    ``delta <- clamp(delta + alpha*sign(grad), -eps, eps)``, then shrunk so ``x + delta`` lies in
    ``[lo, hi]``. ``x_adv`` (optional, any float dtype) receives ``x + delta``: the next input.
    Returns ``delta``.
    """
    _step("delta_step_", ("delta", "grad", "x", "x_adv"), delta, grad, x, x_adv, eps, alpha,
          lo, hi)
    return delta


def draw_seed(generator: torch.Generator | None = None) -> int:
    """A 63-bit seed from a CPU generator (never a device sync)."""
    return int(torch.randint(0, 2**63 - 1, (1,), generator=generator, device="cpu").item())
