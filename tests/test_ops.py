"""The fused ops against their plain-PyTorch oracle, over device × dtype × layout × eps kind.

fp32: exact equality. fp16/bf16: exact equality with the reference (which, like the kernels,
computes in fp32 and rounds once), and an error against an fp64 oracle at most twice that of the
eager low-precision sequence. Plus invariants (ball, box, NaN/inf), opcheck, torch.compile, errors.
"""
import itertools
import json
import pathlib
import subprocess
import sys
import warnings

import pytest
import torch

import direct_op_cases
from aft_fast import ops, reference
from conftest import DEVICES

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
LAYOUTS = ["contiguous", "channels_last"]
EPS_KINDS = ["scalar", "per_sample"]
SHAPE = (5, 3, 9, 11)  # odd sizes: vector tails and packs that straddle samples
EPS, ALPHA = 8 / 255, 2 / 255


def _layout(t, layout):
    return t.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else t


def make_inputs(device, dtype, layout, grad_dtype=None, shape=SHAPE, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_nat = torch.rand(shape, generator=g)
    x_nat[0, 0, 0, :4] = torch.tensor([0.0, 1.0, 0.01, 0.99])  # pixels at the box edges
    grad = torch.randn(shape, generator=g)
    grad[1, 0, 0, :3] = 0.0
    x_adv = (x_nat + (torch.rand(shape, generator=g) - 0.5) * 2 * EPS).clamp(0, 1)
    conv = lambda t, dt: _layout(t.to(device=device, dtype=dt), layout)  # noqa: E731
    return conv(x_adv, dtype), conv(grad, grad_dtype or dtype), conv(x_nat, dtype)


def eps_alpha(kind, n, device):
    if kind == "scalar":
        return EPS, ALPHA
    eps = torch.linspace(0.0, 0.1, n, device=device)
    return eps, eps / 4


def clone_all(*ts):
    return [t.clone(memory_format=torch.preserve_format) for t in ts]


CASES = list(itertools.product(DEVICES, DTYPES, LAYOUTS, EPS_KINDS))


def _params():
    out = []
    for dev, dt, lay, ek in CASES:
        marks = dev.marks if hasattr(dev, "marks") else ()
        name = dev.values[0] if hasattr(dev, "values") else dev
        out.append(pytest.param(name, dt, lay, ek, marks=marks, id=f"{name}-{str(dt)[6:]}-{lay}-{ek}"))
    return out


# ------------------------------------------------------------------------- kernel == reference
@pytest.mark.parametrize("device,dtype,layout,eps_kind", _params())
def test_pgd_step_matches_reference(device, dtype, layout, eps_kind):
    x_adv, grad, x_nat = make_inputs(device, dtype, layout)
    eps, alpha = eps_alpha(eps_kind, SHAPE[0], device)
    ours, theirs = clone_all(x_adv, x_adv)
    ptr = ours.data_ptr()
    ops.pgd_step_(ours, grad, x_nat, eps, alpha)
    reference.pgd_step_(theirs, grad, x_nat, eps, alpha)
    assert ours.data_ptr() == ptr and ours.stride() == x_adv.stride()
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("device,dtype,layout,eps_kind", _params())
def test_random_init_matches_reference(device, dtype, layout, eps_kind):
    x_adv, _, x_nat = make_inputs(device, dtype, layout)
    eps, _ = eps_alpha(eps_kind, SHAPE[0], device)
    ours, theirs = clone_all(x_adv, x_adv)
    ops.random_init_(ours, x_nat, eps, seed=1234)
    reference.random_init_(theirs, x_nat, eps, 0.0, 1.0, 1234)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("device,dtype,layout,eps_kind", _params())
def test_delta_step_matches_reference(device, dtype, layout, eps_kind):
    _, grad, x = make_inputs(device, dtype, layout)
    eps, alpha = eps_alpha(eps_kind, SHAPE[0], device)
    delta = _layout(torch.zeros(SHAPE, device=device, dtype=dtype), layout)
    ours, theirs = clone_all(delta, delta)
    out_ours, out_theirs = clone_all(x, x)
    for _ in range(3):
        ops.delta_step_(ours, grad, x, eps, alpha, x_adv=out_ours)
        reference.delta_step_(theirs, grad, x, eps, alpha, x_adv=out_theirs)
    assert torch.equal(ours, theirs)
    assert torch.equal(out_ours, out_theirs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grad_dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("out_dtype", DTYPES)
def test_mixed_precision_streams(device, grad_dtype, out_dtype):
    """fp32 master x_adv, low-precision gradient in, low-precision copy out: one pass."""
    x_adv, grad, x_nat = make_inputs(device, torch.float32, "channels_last", grad_dtype=grad_dtype)
    out = torch.empty_like(x_adv, dtype=out_dtype)
    theirs = x_adv.clone(memory_format=torch.preserve_format)
    ops.pgd_step_(x_adv, grad, x_nat, EPS, ALPHA, out=out)
    reference.pgd_step_(theirs, grad, x_nat, EPS, ALPHA)
    assert torch.equal(x_adv, theirs)
    assert torch.equal(out, theirs.to(out_dtype))
    seeded = torch.empty_like(x_adv)
    ops.random_init_(seeded, x_nat, EPS, seed=7, out=out)
    assert torch.equal(out, seeded.to(out_dtype))


# ------------------------------------------------------------- low precision against fp64
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_error_at_most_twice_eager(device, dtype):
    x_adv, grad, x_nat = make_inputs(device, dtype, "contiguous", shape=(16, 3, 32, 32))
    oracle = x_adv.double()
    reference.pgd_step_(oracle, grad.double(), x_nat.double(), EPS, ALPHA)
    ours = x_adv.clone()
    ops.pgd_step_(ours, grad, x_nat, EPS, ALPHA)
    # The eager unfused sequence, every intermediate in the low-precision dtype.
    eager = x_adv + ALPHA * grad.sign()
    eager = torch.min(torch.max(eager, x_nat - EPS), x_nat + EPS).clamp(0, 1)
    err_ours = (ours.double() - oracle).abs().max().item()
    err_eager = (eager.double() - oracle).abs().max().item()
    ulp = torch.finfo(dtype).eps
    assert err_ours <= max(2 * err_eager, ulp / 2), (err_ours, err_eager)


# ------------------------------------------------------------------------------ invariants
@pytest.mark.parametrize("device,dtype,layout,eps_kind", _params())
def test_many_steps_stay_in_ball_and_box(device, dtype, layout, eps_kind):
    x_adv, _, x_nat = make_inputs(device, dtype, layout)
    eps, alpha = eps_alpha(eps_kind, SHAPE[0], device)
    ops.random_init_(x_adv, x_nat, eps, seed=3)
    g = torch.Generator(device=device).manual_seed(0)
    for _ in range(25):
        grad = torch.randn(SHAPE, generator=g, device=device) * 1e3
        grad[0, 0, 0, 0] = float("nan")
        grad[0, 0, 0, 1] = float("inf")
        grad[0, 0, 0, 2] = -float("inf")
        ops.pgd_step_(x_adv, _layout(grad, layout), x_nat, eps, alpha)
    bound = eps if isinstance(eps, float) else eps.view(-1, 1, 1, 1)
    # x_nat ± eps is rounded to float32 and the result to the storage dtype: each rounding may
    # cross the ball's edge by half an ulp of values <= 1.
    slack = torch.finfo(dtype).eps
    dist = (x_adv.double() - x_nat.double()).abs()
    assert bool((dist <= bound + slack).all())
    assert bool((x_adv >= 0).all()) and bool((x_adv <= 1).all())
    assert not bool(x_adv.isnan().any())


@pytest.mark.parametrize("device", DEVICES)
def test_sign_of_zero_nan_and_inf(device):
    x_nat = torch.full((1, 1, 1, 4), 0.5, device=device)
    x_adv = x_nat.clone()
    grad = torch.tensor([0.0, float("nan"), float("inf"), -float("inf")], device=device).view(1, 1, 1, 4)
    ops.pgd_step_(x_adv, grad, x_nat, 0.1, 0.05)
    # sign(0) = sign(NaN) = 0: the pixel stays; ±inf moves it by exactly alpha.
    expected = torch.tensor([0.5, 0.5, 0.55, 0.45], device=device).view(1, 1, 1, 4)
    assert torch.equal(x_adv, (x_nat + torch.tensor([0, 0, 0.05, -0.05], device=device)
                               .view(1, 1, 1, 4)).to(x_adv.dtype))
    assert torch.allclose(x_adv, expected)


@pytest.mark.parametrize("device", DEVICES)
def test_nan_start_lands_inside(device):
    """A NaN already in x_adv is pulled back into the ball: clamps ignore NaN."""
    x_nat = torch.full((1, 1, 1, 2), 0.5, device=device)
    x_adv = torch.tensor([float("nan"), 0.5], device=device).view(1, 1, 1, 2)
    ops.pgd_step_(x_adv, torch.ones_like(x_adv), x_nat, 0.1, 0.01)
    assert not bool(x_adv.isnan().any())
    assert bool(((x_adv - x_nat).abs() <= 0.1 + 1e-7).all())


@pytest.mark.parametrize("device", DEVICES)
def test_random_init_is_uniform_in_ball_and_box(device):
    x_nat = torch.rand(64, 3, 32, 32, device=device)
    x_adv = torch.empty_like(x_nat)
    ops.random_init_(x_adv, x_nat, EPS, seed=11)
    low = (x_nat - EPS).clamp(min=0)
    high = (x_nat + EPS).clamp(max=1)
    assert bool((x_adv >= low).all()) and bool((x_adv <= high).all())
    # Position inside each pixel's interval: uniform on [0, 1) -> mean 1/2, variance 1/12.
    inside = high - low > 1e-3
    pos = ((x_adv - low) / (high - low))[inside].double()
    assert abs(pos.mean().item() - 0.5) < 0.01
    assert abs(pos.var().item() - 1 / 12) < 0.005
    hist = torch.histc(pos.float(), bins=10, min=0, max=1) / pos.numel()
    assert bool(((hist - 0.1).abs() < 0.01).all()), hist


def test_random_init_seed_and_generator():
    x_nat = torch.rand(4, 3, 8, 8)
    a, b, c = (torch.empty_like(x_nat) for _ in range(3))
    ops.random_init_(a, x_nat, EPS, seed=5)
    ops.random_init_(b, x_nat, EPS, seed=5)
    ops.random_init_(c, x_nat, EPS, seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    ops.random_init_(a, x_nat, EPS, generator=g1)
    ops.random_init_(b, x_nat, EPS, generator=g2)
    assert torch.equal(a, b)


def test_random_init_does_not_depend_on_threads():
    x_nat = torch.rand(8, 3, 64, 64)
    a, b = torch.empty_like(x_nat), torch.empty_like(x_nat)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        ops.random_init_(a, x_nat, EPS, seed=42)
        torch.set_num_threads(2)
        ops.random_init_(b, x_nat, EPS, seed=42)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(a, b)


@pytest.mark.cuda
def test_cpu_and_cuda_agree():
    x_adv, grad, x_nat = make_inputs("cpu", torch.float32, "channels_last")
    gpu = [t.cuda() for t in (x_adv, grad, x_nat)]
    ops.random_init_(x_adv, x_nat, EPS, seed=77)
    ops.random_init_(gpu[0], gpu[2], EPS, seed=77)
    assert torch.equal(x_adv, gpu[0].cpu())
    ops.pgd_step_(x_adv, grad, x_nat, EPS, ALPHA)
    ops.pgd_step_(gpu[0], gpu[1], gpu[2], EPS, ALPHA)
    assert torch.equal(x_adv, gpu[0].cpu())


@pytest.mark.parametrize("device", DEVICES)
def test_per_sample_eps_is_per_sample(device):
    x_nat = torch.full((3, 1, 4, 4), 0.5, device=device)
    x_adv = x_nat.clone()
    eps = torch.tensor([0.0, 0.1, 0.2], device=device)
    for _ in range(10):
        ops.pgd_step_(x_adv, torch.ones_like(x_adv), x_nat, eps, eps / 2)
    moved = (x_adv - x_nat).amax(dim=(1, 2, 3))
    assert torch.allclose(moved, eps)


@pytest.mark.parametrize("device", DEVICES)
def test_delta_step_keeps_input_in_box(device):
    x = torch.rand(4, 3, 8, 8, device=device)
    delta, x_adv = torch.zeros_like(x), torch.empty_like(x)
    for _ in range(5):
        ops.delta_step_(delta, torch.randn_like(x), x, EPS, EPS, x_adv=x_adv)
        assert bool((delta.abs() <= EPS + 1e-7).all())
        assert bool((x_adv >= 0).all()) and bool((x_adv <= 1).all())
        assert torch.allclose(x_adv, x + delta, atol=1e-7)


def test_inputs_other_than_target_are_untouched():
    x_adv, grad, x_nat = make_inputs("cpu", torch.float32, "contiguous")
    g0, n0 = grad.clone(), x_nat.clone()
    ops.pgd_step_(x_adv, grad, x_nat, EPS, ALPHA)
    assert torch.equal(grad, g0) and torch.equal(x_nat, n0)


def test_empty_tensors():
    e = torch.empty(0, 3, 4, 4)
    ops.pgd_step_(e, e.clone(), e.clone(), EPS, ALPHA)
    ops.random_init_(e, e.clone(), EPS, seed=0)


# ----------------------------------------------------------------- dispatcher integration
def _op_samples(device):
    x_adv, grad, x_nat = make_inputs(device, torch.float32, "channels_last")
    eps = torch.full((SHAPE[0],), EPS, device=device)
    out = torch.empty_like(x_adv, dtype=torch.bfloat16)
    return [
        (torch.ops.aft_fast.pgd_step_.default, (x_adv, grad, x_nat, EPS, ALPHA, 0.0, 1.0),
         {"eps_per_sample": eps, "out": out}),
        (torch.ops.aft_fast.random_init_.default, (x_adv.clone(), x_nat, EPS, 0.0, 1.0, 3), {}),
        (torch.ops.aft_fast.delta_step_.default, (torch.zeros_like(x_adv), grad, x_nat, EPS, ALPHA,
                                                  0.0, 1.0), {"x_adv": x_adv.clone()}),
    ]


@pytest.mark.skipif(not ops.has_compiled_ops(), reason="compiled ops not built")
@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    for op, args, kwargs in _op_samples(device):
        torch.library.opcheck(op, args, kwargs)


@pytest.mark.skipif(not ops.has_compiled_ops(), reason="compiled ops not built")
def test_torch_compile_fullgraph_loop():
    x_adv, grad, x_nat = make_inputs("cpu", torch.float32, "contiguous")
    expected = x_adv.clone()
    for _ in range(3):
        reference.pgd_step_(expected, grad, x_nat, EPS, ALPHA)

    @torch.compile(fullgraph=True, backend="aot_eager")
    def attack(x, g, xn):
        for _ in range(3):
            ops.pgd_step_(x, g, xn, EPS, ALPHA)
        return x * 1.0

    result = attack(x_adv, grad, x_nat)
    assert torch.equal(result, expected)
    assert torch.equal(x_adv, expected)


# ------------------------------------------------------------------------------ bad input
def _bad_cases():
    x = torch.rand(2, 3, 4, 4)
    return [
        ("grad and x_adv must have the same shape", lambda: ops.pgd_step_(x.clone(), torch.rand(2, 3, 4, 5), x, EPS, ALPHA)),
        ("grad must be float32", lambda: ops.pgd_step_(x.clone(), torch.ones(2, 3, 4, 4, dtype=torch.int32), x, EPS, ALPHA)),
        ("x_adv must be float32", lambda: ops.pgd_step_(x.double(), x.double(), x.double(), EPS, ALPHA)),
        ("x_nat must have x_adv's dtype", lambda: ops.pgd_step_(x.clone(), x, x.half(), EPS, ALPHA)),
        ("must be on the same device", lambda: ops.pgd_step_(x.clone(), x.to("meta"), x, EPS, ALPHA)),
        ("x_adv must be dense", lambda: ops.pgd_step_(torch.rand(2, 3, 4, 8)[..., ::2], x, x, EPS, ALPHA)),
        ("grad must have the same memory layout as x_adv", lambda: ops.pgd_step_(
            x.clone(), x.contiguous(memory_format=torch.channels_last), x, EPS, ALPHA)),
        ("eps must be a finite number >= 0", lambda: ops.pgd_step_(x.clone(), x, x, -0.1, ALPHA)),
        ("alpha must be a finite number >= 0", lambda: ops.pgd_step_(x.clone(), x, x, EPS, -1.0)),
        ("eps must be a finite number >= 0", lambda: ops.pgd_step_(x.clone(), x, x, float("nan"), ALPHA)),
        ("lo <= hi", lambda: ops.pgd_step_(x.clone(), x, x, EPS, ALPHA, lo=1.0, hi=0.0)),
        ("eps as a tensor must have shape [N] = [2]", lambda: ops.pgd_step_(x.clone(), x, x, torch.ones(3), ALPHA)),
        ("eps must be >= 0 for every sample", lambda: ops.pgd_step_(x.clone(), x, x, torch.tensor([0.1, -0.1]), ALPHA)),
        ("out and x_adv must have the same shape", lambda: ops.pgd_step_(x.clone(), x, x, EPS, ALPHA, out=torch.empty(2))),
        ("x must have delta's dtype", lambda: ops.delta_step_(x.clone(), x, x.half(), EPS, ALPHA)),
        ("x_nat and x_adv must have the same shape", lambda: ops.random_init_(x.clone(), x[:1], EPS, seed=0)),
        ("eps must be a number or a float tensor", lambda: ops.pgd_step_(x.clone(), x, x, "8/255", ALPHA)),
        ("hi must be a number", lambda: ops.delta_step_(x.clone(), x, x, EPS, ALPHA, hi=None)),
        ("grad must be a torch.Tensor", lambda: ops.pgd_step_(x.clone(), [1.0], x, EPS, ALPHA)),
    ]


@pytest.mark.parametrize("case", range(len(_bad_cases())))
def test_bad_input_names_the_argument(case):
    message, call = _bad_cases()[case]
    with pytest.raises((ValueError, TypeError), match=message.replace("[", r"\[").replace("]", r"\]")):
        call()


def _run_direct_cases(device):
    """Every direct-op case, called in child processes (tests/direct_op_cases.py): a case that
    kills the interpreter is recorded as a crash and the next child goes on after it."""
    results, first = {}, 0
    script = str(pathlib.Path(__file__).with_name("direct_op_cases.py"))
    while first < len(direct_op_cases.CASES):
        proc = subprocess.run([sys.executable, script, device, str(first)], capture_output=True,
                              text=True, timeout=300, cwd=pathlib.Path(__file__).parent)
        started = first
        for line in proc.stdout.splitlines():
            row = json.loads(line)
            if row.pop("started", False):
                started = row["case"]
            else:
                results[row["case"]] = row
        if proc.returncode == 0:
            break
        results[started] = {"crashed": proc.returncode, "stderr": proc.stderr[-2000:]}
        first = started + 1
    return results


_DIRECT_RESULTS = {}


@pytest.mark.skipif(not ops.has_compiled_ops(), reason="compiled ops not built")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", direct_op_cases.CASES, ids=lambda c: c.name)
def test_direct_op_call_raises_named_error(device, case):
    """torch.ops.aft_fast.* called directly (no Python wrapper) with a bad argument raises the
    wrapper's exception class with a message naming the argument; it never crashes the process
    (numbers in C++ messages are formatted without iostreams, csrc/ops/check.h)."""
    if device not in _DIRECT_RESULTS:
        _DIRECT_RESULTS[device] = _run_direct_cases(device)
    result = _DIRECT_RESULTS[device][direct_op_cases.CASES.index(case)]
    if result.get("skipped"):
        pytest.skip("needs operands on two devices (a GPU)")
    assert "crashed" not in result, f"the process died (rc {result.get('crashed')}): {result}"
    assert result["raised"] == case.error, result
    assert case.message in result["message"], result


def test_reference_fallback_warns_once(monkeypatch):
    monkeypatch.setattr(ops, "_C", None)
    monkeypatch.setattr(ops, "_LOAD_ERROR", ImportError("simulated"))
    monkeypatch.setattr(ops, "_warned", False)
    x_adv, grad, x_nat = make_inputs("cpu", torch.float32, "contiguous")
    expected = x_adv.clone()
    reference.pgd_step_(expected, grad, x_nat, EPS, ALPHA)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ops.pgd_step_(x_adv, grad, x_nat, EPS, ALPHA)
        ops.pgd_step_(x_adv.clone(), grad, x_nat, EPS, ALPHA)
    assert sum("compiled ops unavailable" in str(w.message) for w in caught) == 1
    assert torch.equal(x_adv, expected)
    assert ops.build_info()["compiled"] is False and "make install" in ops.build_info()["fix"]
