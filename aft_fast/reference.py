"""The attack ops in plain PyTorch: the tests' oracle and the fallback when ``aft_fast._C`` is absent.

Every formula here is the one the C++/CUDA kernels implement (``csrc/ops/step_math.h``), written so
that, computed in float32, it rounds exactly as the kernels do; the tests compare the two for exact
equality in float32. Inputs are validated by :mod:`aft_fast.ops` before they get here.

Conventions shared with the kernels:
  * ``sign(0) = 0`` and ``sign(NaN) = 0``: a NaN gradient element leaves its pixel where it was.
  * Clamps ignore NaN (``fmax``/``fmin``): whatever the inputs, a result lands inside the ball and box.
  * Per-sample ``eps``/``alpha`` are float32 tensors of shape ``[N]`` (batch dimension first).
  * Random numbers are a counter-based hash of ``(seed, memory offset)``, so the same seed gives
    the same perturbation on CPU and CUDA and for any number of threads.
"""
from __future__ import annotations

import torch

Scalar = float | torch.Tensor


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _as(v: Scalar, like: torch.Tensor) -> torch.Tensor:
    """A scalar as a 0-d tensor, or an ``[N]`` tensor shaped to broadcast over the batch."""
    if isinstance(v, torch.Tensor):
        return v.to(device=like.device, dtype=like.dtype).view(-1, *([1] * (like.dim() - 1)))
    return torch.tensor(v, dtype=like.dtype, device=like.device)


def _sign(g: torch.Tensor) -> torch.Tensor:
    return torch.sign(g).nan_to_num(nan=0.0)


def _clamp(v: torch.Tensor, lo: Scalar | torch.Tensor, hi: Scalar | torch.Tensor) -> torch.Tensor:
    return torch.fmin(torch.fmax(v, lo), hi)


def _finish(dst: torch.Tensor, value: torch.Tensor, out: torch.Tensor | None) -> None:
    dst.copy_(value)
    if out is not None:
        out.copy_(value)


def pgd_step_(x_adv, grad, x_nat, eps: Scalar, alpha: Scalar, lo: float = 0.0, hi: float = 1.0,
              out: torch.Tensor | None = None) -> None:
    """``x_adv <- clamp(clamp(x_adv + alpha*sign(grad), x_nat-eps, x_nat+eps), lo, hi)``."""
    ct = _compute_dtype(x_adv)
    x, xn, g = x_adv.to(ct), x_nat.to(ct), grad.to(ct)
    e, a = _as(eps, x), _as(alpha, x)
    lo_t, hi_t = _as(lo, x), _as(hi, x)
    v = x + a * _sign(g)
    v = _clamp(_clamp(v, xn - e, xn + e), lo_t, hi_t)
    _finish(x_adv, v, out)


def delta_step_(delta, grad, x, eps: Scalar, alpha: Scalar, lo: float = 0.0, hi: float = 1.0,
                x_adv: torch.Tensor | None = None) -> None:
    """Free/Fast AT update of a persistent perturbation.

    ``delta <- clamp(delta + alpha*sign(grad), -eps, eps)``, then shrunk so that ``x + delta`` stays
    in ``[lo, hi]``; ``x_adv`` (optional, any float dtype) receives ``clamp(x + delta, lo, hi)``.
    """
    ct = _compute_dtype(delta)
    d, g, xx = delta.to(ct), grad.to(ct), x.to(ct)
    e, a = _as(eps, d), _as(alpha, d)
    d = _clamp(d + a * _sign(g), -e, e)
    xa = _clamp(xx + d, _as(lo, d), _as(hi, d))
    delta.copy_(xa - xx)
    if x_adv is not None:
        x_adv.copy_(xa)


_M32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``x * c mod 2**32`` for ``x, c < 2**32`` without overflowing int64."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _M32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer finaliser ("lowbias32"); the kernels use the same constants."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def memory_offsets(t: torch.Tensor) -> torch.Tensor:
    """Each element's offset in ``t``'s (dense) memory, as an int64 tensor laid out like ``t``."""
    idx = torch.empty_like(t, dtype=torch.int64)
    idx.as_strided((t.numel(),), (1,)).copy_(torch.arange(t.numel(), device=t.device))
    return idx


def uniform01(seed: int, offsets: torch.Tensor) -> torch.Tensor:
    """Float32 uniforms in [0, 1) with 24 random bits, a pure function of ``(seed, offset)``."""
    seed &= (1 << 64) - 1
    k0, k1 = seed & _M32, seed >> 32
    h = _mix32(_mix32((offsets & _M32) ^ k0) ^ _mix32((offsets >> 32) ^ k1))
    return (h >> 8).to(torch.float32) * (1.0 / 16777216.0)


def random_init_(x_adv, x_nat, eps: Scalar, lo: float = 0.0, hi: float = 1.0, seed: int = 0,
                 out: torch.Tensor | None = None) -> None:
    """``x_adv <- U[max(x_nat-eps, lo), min(x_nat+eps, hi)]``: uniform in the ball ∩ box."""
    ct = torch.float32
    xn = x_nat.to(ct)
    e = _as(eps, xn)
    low = torch.fmax(xn - e, _as(lo, xn))
    high = torch.fmin(xn + e, _as(hi, xn))
    u = uniform01(seed, memory_offsets(x_adv))
    _finish(x_adv, _clamp(low + u * (high - low), low, high), out)
