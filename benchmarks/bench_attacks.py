"""One attack iteration per method, and the engine's PGD against the plain research-code PGD and
torchattacks, as pytest-benchmark cases (`make bench`, or
`pytest benchmarks/bench_attacks.py --benchmark-only`).

The callables are the ones `aft-fast bench` times (`aft_fast.perf.bench`), on small settings:
resnet18 at 32×32, batch 32, PGD-3 (GPU: the same, larger batch). For ratios measured side by side
in interleaved rounds, use `aft-fast bench`; pytest-benchmark runs the cases one after another.
"""
from __future__ import annotations

import pytest
import torch

from aft_fast.perf.bench import attack_variants, has_torchattacks, method_variants
from aft_fast.perf.workload import Workload, build_workload
from aft_fast.methods import ADVERSARIAL as ADVERSARIAL_METHODS
from aft_fast.runtime import pick_device

DEVICE = pick_device("auto")
WORKLOAD = Workload(arch="resnet18", image_size=32, batch=128 if DEVICE.type == "cuda" else 32,
                    steps=3, device=str(DEVICE),
                    amp="bf16" if DEVICE.type == "cuda" else "none",
                    channels_last=DEVICE.type == "cuda")
ATTACKS = ["floor", "engine", "plain"] + (["torchattacks"] if has_torchattacks() else [])


@pytest.fixture(scope="module")
def built():
    return build_workload(WORKLOAD)


def _synced(fn):
    def call():
        fn()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize(DEVICE)
    return call


def _extra(benchmark, **kw):
    benchmark.extra_info.update(device=str(DEVICE), arch=WORKLOAD.arch, batch=WORKLOAD.batch,
                                image_size=WORKLOAD.image_size, steps=WORKLOAD.steps,
                                amp=WORKLOAD.amp or "fp32", channels_last=WORKLOAD.channels_last, **kw)


@pytest.mark.parametrize("variant", ATTACKS)
def test_pgd_attack(benchmark, built, variant):
    """PGD-k on one batch: floor (one forward + input backward), engine, plain, torchattacks."""
    fn = attack_variants(built, WORKLOAD, third_party=variant == "torchattacks")[variant]
    _extra(benchmark, variant=variant)
    benchmark.pedantic(_synced(fn), warmup_rounds=1, rounds=5, iterations=1)


@pytest.mark.parametrize("method", ADVERSARIAL_METHODS)
def test_method_iteration(benchmark, built, method):
    """One training iteration (perturbation + weight update(s)); Free AT replays the batch m=4 times."""
    fn = method_variants(built, WORKLOAD, (method,), replays=4)[method]
    _extra(benchmark, method=method)
    benchmark.pedantic(_synced(fn), warmup_rounds=1, rounds=5, iterations=1)
