"""`aft-fast bench`: the engine's PGD against the plain research-code way and torchattacks, side by
side in one process, against the network-compute floor; and the training iteration of every
adversarial method (built-in, or a user's by import path) with the projected wall-clock of a full
run. What a method's iteration is, its attack steps, weight updates per batch and the epochs of
its projection come from the method itself (`aft_fast.methods`)."""
from __future__ import annotations

import copy
import importlib.util
import os
from typing import Callable

from aft_fast.attacks import pgd
from aft_fast.data.batches import Origin
from aft_fast.attacks.pgd import compiled_input_grad, input_grad
from aft_fast.errors import check, check_at_least, check_choice
from aft_fast.perf.plain_pgd import plain_pgd
from aft_fast.perf.timing import time_interleaved
from aft_fast.perf.workload import Built, Workload, build_workload
from aft_fast import methods as registry
from aft_fast.methods import Method
from aft_fast.runtime import environment
from aft_fast.train.update import Trainer

IMAGENET_TRAIN_IMAGES = 1_281_167
# Epochs of a full ImageNet run per method, used only for the projection: each method's
# `imagenet_epochs` (its usual ImageNet setting, written in its module as an assumption, not
# copied from Jeddi et al.'s Table 3, which we could not consult). Override with --epochs METHOD=N.
ATTACK_VARIANTS = ("floor", "engine", "plain", "torchattacks")


def has_torchattacks() -> bool:
    return importlib.util.find_spec("torchattacks") is not None


def attack_variants(b: Built, w: Workload, third_party: bool = True) -> dict[str, Callable]:
    """The callables timed for the PGD loop. `floor` is one forward + input-gradient backward in
    the engine's settings (one step's unavoidable network compute); the others run PGD-k."""
    cfg = w.attack_config()
    x_in = b.x.to(cfg.amp_dtype) if cfg.amp_dtype is not None else b.x
    grad_fn = compiled_input_grad if cfg.compile else input_grad  # floor compiled as the engine is
    variants = {
        "floor": lambda: grad_fn(b.model, x_in, b.y, cfg.amp_dtype),
        "engine": lambda: pgd(b.model, b.x, b.y, cfg),
        "plain": lambda: plain_pgd(b.plain_model, b.x_plain, b.y, w.eps, w.alpha, w.steps),
    }
    if third_party and has_torchattacks():
        import torchattacks

        atk = torchattacks.PGD(b.plain_model, eps=w.eps, alpha=w.alpha, steps=w.steps,
                               random_start=True)
        variants["torchattacks"] = lambda: atk(b.x_plain, b.y)
    return variants


def bench_method(name: str, w: Workload, replays: int) -> Method:
    """The method as bench times it: the workload's ε, steps and AMP; the workload's α where the
    method takes the engine's default step rule (PGD-family), its own rule otherwise (Fast AT
    1.25ε, Free AT ε); --replays where it replays batches."""
    cls = registry.get(name, option="methods")
    kwargs = dict(eps=w.eps, steps=w.steps, amp=w.amp, compile=w.compile)
    if cls.alpha_per_eps is None and cls.default_alpha is Method.default_alpha:
        kwargs["alpha"] = w.alpha
    if "replays" in {o.name for o in cls.options}:
        kwargs["replays"] = replays
    return cls(**kwargs)


def method_variants(b: Built, w: Workload, methods=registry.ADVERSARIAL,
                    replays: int = 4) -> dict[str, Callable]:
    """One training iteration (perturbation + weight update(s)) of each method, each on its own
    copy of the same model with its own default optimizer."""
    from aft_fast.train.options import TrainOptions
    from aft_fast.train.run import make_optimizer

    out = {}
    for name in methods:
        method = bench_method(name, w, replays)
        model = copy.deepcopy(b.model)
        opt = make_optimizer(method.optimizer, model.parameters(), method.lr,
                             TrainOptions.momentum, TrainOptions.weight_decay)  # train's defaults
        trainer = Trainer(model, opt, w.amp, b.device)
        # per-image state (ATTA): the one batch is the whole split
        extra = {"origin": Origin.whole_batch(len(b.y), b.device)} if method.needs_index else {}
        out[name] = (lambda m=method, t=trainer, e=extra: m.step(t, b.x, b.y, lambda frac: None,
                                                                 **e))
    return out


def _attack_rows(times, w: Workload) -> dict:
    floor = times["floor"].median
    rows = {}
    for name, t in times.items():
        per_step = t.median if name == "floor" else t.median / w.steps
        rows[name] = {**t.as_dict(), "per_step_s": per_step,
                      "images_per_s": w.batch / t.median,
                      "overhead_vs_floor_pct": 100.0 * (per_step - floor) / floor}
    plain = rows["plain"]["per_step_s"]
    for name, row in rows.items():
        row["x_vs_plain"] = plain / row["per_step_s"]
    return rows


def _method_rows(times, w: Workload, epochs: dict, dataset_size: int, replays: int) -> dict:
    rows = {}
    for name, t in times.items():
        method = bench_method(name, w, replays)
        passes = epochs[name] / method.replays  # a replayed batch counts its m updates as epochs
        iterations = passes * dataset_size / w.batch
        rows[name] = {**t.as_dict(), "images_per_s": w.batch / t.median,
                      "weight_updates_per_batch": method.replays,
                      "attack_steps": method.attack_steps,
                      "epochs": epochs[name], "passes_over_data": passes,
                      "projected_hours": iterations * t.median / 3600.0}
    return rows


def default_epochs(methods) -> dict:
    """{method: epochs of its projected full run} (its `imagenet_epochs`; 10 where not set)."""
    return {name: registry.get(name, option="methods").imagenet_epochs or 10.0 for name in methods}


def run_bench(w: Workload, *, warmup: int = 1, repeats: int = 5, methods=registry.ADVERSARIAL,
              replays: int = 4, epochs: dict | None = None, dataset_size: int = IMAGENET_TRAIN_IMAGES,
              third_party: bool = True, progress: Callable[[str], None] | None = None) -> dict:
    """Every figure of `aft-fast bench` as one JSON-ready dict (see the module docstring)."""
    check_at_least("replays", replays, 1)
    check_at_least("dataset_size", dataset_size, 1)
    for name in methods:
        check(registry.get(name, option="methods").adversarial, "methods",
              f"{name} runs no attack: bench times adversarial methods")
    for name, n in (epochs or {}).items():
        check_choice("epochs", name, methods)
        check_at_least("epochs", n, 0, strict=True)
    epochs = {**default_epochs(methods), **(epochs or {})}
    load_start = os.getloadavg()[0]
    b = build_workload(w)
    say = progress or (lambda msg: None)
    variants = attack_variants(b, w, third_party)
    say(f"attack loop (PGD-{w.steps}): {', '.join(variants)}")
    attack_times = time_interleaved(variants, b.device, warmup=warmup,
                                    repeats=repeats, progress=progress)
    attack = _attack_rows(attack_times, w)
    method_rows = {}
    if methods:
        say(f"methods: {', '.join(methods)}")
        method_times = time_interleaved(method_variants(b, w, methods, replays), b.device,
                                        warmup=warmup, repeats=repeats, progress=progress)
        method_rows = _method_rows(method_times, w, epochs, dataset_size, replays)
    return {
        "kind": "aft_fast.bench/1",
        "environment": environment(b.device),
        "settings": {**w.as_dict(), "device": str(b.device), "warmup": warmup, "repeats": repeats,
                     "replays": replays, "dataset_size": dataset_size, "epochs": epochs,
                     "timing": "median of interleaved rounds; CUDA events on GPU, perf_counter on CPU"},
        "attack": attack,
        # engine vs the plain research-code PGD, same steps, same run: > 1 means the engine is faster
        "speedup": attack["plain"]["median_s"] / attack["engine"]["median_s"],
        # the same ratio from the fastest round of each: less sensitive to other jobs on the machine
        "speedup_min": attack["plain"]["min_s"] / attack["engine"]["min_s"],
        "speedup_torchattacks": (attack["torchattacks"]["median_s"] / attack["engine"]["median_s"]
                                 if "torchattacks" in attack else None),
        "methods": method_rows,
        # other processes on the machine during the run (1-min load average, start and end)
        "load_average": [load_start, os.getloadavg()[0]],
    }
