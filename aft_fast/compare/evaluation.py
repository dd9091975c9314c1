"""Evaluate one checkpoint with the protocol, stage by stage; every finished stage (and every
AutoAttack chunk) is saved, so a killed evaluation resumes where it stopped and a finished one is
never redone. Results are keyed by the protocol's settings and the checkpoint's bytes."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch

from aft_fast.compare import masking
from aft_fast.compare.protocol import (Protocol, autoattack_survivors, correct, pgd_survivors)
from aft_fast.io import save_torch


def file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _mean(mask: torch.Tensor) -> float:
    return float(mask.float().mean()) if len(mask) else 0.0


STAGES = ("clean", "weak", "pgd", "autoattack", "sweep")


def evaluate_checkpoint(path, x, y, p: Protocol, state_path, *, device="cpu",
                        say=lambda s: None, only_cached: bool = False) -> dict | None:
    """The row's evaluation figures (see `summary`), cached stage by stage in `state_path`.
    `only_cached`: compute nothing; None unless every stage is cached."""
    from aft_fast import load_checkpoint

    state_path = Path(state_path)
    ident = {"protocol": p.key(), "checkpoint_sha256": file_digest(path)}
    state = {}
    if state_path.is_file():
        state = torch.load(state_path, weights_only=False)
        if state.get("ident") != ident:
            state = {}  # another protocol or another checkpoint: start again
    state["ident"] = ident
    if only_cached and not all(k in state.get("stages", {}) for k in STAGES):
        return None
    model = load_checkpoint(path, device).eval()
    return evaluate_model(model, x, y, p, state=state,
                          save=lambda: save_torch(state, state_path), say=say)


def progress(state_path) -> str:
    """How far an unfinished evaluation got: its finished stages (and clean accuracy)."""
    state_path = Path(state_path)
    if not state_path.is_file():
        return "not started"
    stages = torch.load(state_path, weights_only=False).get("stages", {})
    done = [k for k in STAGES if k in stages]
    text = f"stages done: {', '.join(done) or 'none'} of {', '.join(STAGES)}"
    if "clean" in stages:
        text += f"; clean accuracy {100 * _mean(stages['clean']['correct']):.2f}% (whole test split)"
    return text


def evaluate_model(model, x, y, p: Protocol, *, state: dict | None = None, save=lambda: None,
                   say=lambda s: None) -> dict:
    """Clean accuracy on all of (x, y); weak PGD, PGD with restarts, AutoAttack and the ε sweep
    on the first `p.images`; the masking checks. `state` holds finished stages (resumed from)."""
    state = {} if state is None else state
    stages = state.setdefault("stages", {})
    model.eval()
    n = len(y) if p.images is None else min(p.images, len(y))
    xs, ys = x[:n], y[:n]
    common = dict(batch_size=p.batch_size, seed=p.seed)

    def stage(name, fn):
        if name not in stages:
            t0 = time.perf_counter()
            stages[name] = fn()
            stages[name]["seconds"] = time.perf_counter() - t0
            save()
            say(f"    {name}: {stages[name]['seconds']:.0f}s")
        return stages[name]

    clean = stage("clean", lambda: {"correct": correct(model, x, y, p.batch_size)})
    alive = clean["correct"][:n]
    weak = stage("weak", lambda: {"alive": pgd_survivors(
        model, xs, ys, alive, eps=p.eps, steps=p.weak_steps, restarts=1, **common)[-1]})
    strong = stage("pgd", lambda: {"history": pgd_survivors(
        model, xs, ys, alive, eps=p.eps, steps=p.pgd_steps, restarts=p.pgd_restarts, **common)})
    na = n if p.aa_images is None else min(p.aa_images, n)
    if "autoattack" not in stages:
        stages["autoattack"] = _autoattack(model, xs[:na], ys[:na], alive[:na], p, state, save, say)
        state.pop("aa_partial", None)
        save()
    aa = stages["autoattack"]

    def sweep():
        m = min(p.mask_images, n)
        accs = []
        for e in p.sweep():
            left = pgd_survivors(model, xs[:m], ys[:m], alive[:m], eps=e, steps=p.mask_steps,
                                 restarts=1, **common)[-1]
            accs.append((e, _mean(left)))
        return {"accs": accs, "n": m}

    sw = stage("sweep", sweep)
    return summary(p, n, len(y), clean, weak, strong, aa, sw)


def _autoattack(model, xs, ys, alive, p: Protocol, state, save, say) -> dict:
    """AutoAttack in chunks of `batch_size` candidates, each chunk saved as it finishes."""
    t0 = time.perf_counter()
    part = state.setdefault("aa_partial", {"next": 0, "alive": alive.clone(), "counts": {},
                                          "seconds": 0.0})
    idx = alive.nonzero().flatten()
    while part["next"] < len(idx):
        ids = idx[part["next"]:part["next"] + p.batch_size]
        sub = torch.zeros_like(alive)
        sub[ids] = True
        left = autoattack_survivors(model, xs, ys, sub, p, part["counts"])
        part["alive"][ids] = left[ids]
        part["next"] += len(ids)
        part["seconds"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        save()
        say(f"    autoattack: {part['next']}/{len(idx)} candidates, {part['seconds']:.0f}s")
    return {"alive": part["alive"], "counts": dict(part["counts"]), "seconds": part["seconds"]}


def summary(p, n, n_test, clean, weak, strong, aa, sw) -> dict:
    hist = strong["history"]
    pgd_accs = [_mean(h) for h in hist]
    na = len(aa["alive"])  # AutoAttack's images: the first na of the n
    worst = hist[-1][:na] & aa["alive"]
    out = {
        "clean_acc": _mean(clean["correct"]), "clean_n": n_test,
        "clean_acc_attacked_subset": _mean(clean["correct"][:n]),
        "n": n,
        f"pgd{p.weak_steps}_acc": _mean(weak["alive"]),
        "pgd_acc": pgd_accs[-1], "pgd_acc_per_restart": pgd_accs,
        "autoattack_acc": _mean(aa["alive"]), "autoattack_n": na,
        "autoattack_candidates": int(clean["correct"][:na].sum()),
        "pgd_acc_autoattack_images": _mean(hist[-1][:na]),
        "autoattack_fooled_by_part": aa["counts"],
        "worst_case_acc": _mean(worst),
        "eps_sweep": [{"eps": e, "acc": a} for e, a in sw["accs"]], "eps_sweep_n": sw["n"],
        "seconds": {k: round(v["seconds"], 1) for k, v in
                    (("clean", clean), ("weak", weak), ("pgd", strong), ("autoattack", aa),
                     ("sweep", sw))},
    }
    out["masking"] = masking.checks(sweep=sw["accs"], weak=out[f"pgd{p.weak_steps}_acc"],
                                    pgd_first=pgd_accs[0], pgd_restarts=pgd_accs,
                                    autoattack=out["autoattack_acc"],
                                    pgd_autoattack_images=out["pgd_acc_autoattack_images"],
                                    tolerance=p.tolerance,
                                    weak_steps=p.weak_steps, pgd_steps=p.pgd_steps)
    return out
