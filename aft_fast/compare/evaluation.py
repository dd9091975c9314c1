"""Evaluate one checkpoint with the protocol, stage by stage; every finished stage (and every
AutoAttack chunk) is saved, so a killed evaluation resumes where it stopped and a finished one is
never redone. Each stage is keyed by the protocol settings it reads (and all by the checkpoint's
bytes): changing one setting redoes only the stages that read it, and raising `aa_images` attacks
only the images not yet attacked. Two rows whose models compute the same function (RiFT's α
search may keep its parent's weights) share one evaluation. The cache is read without running
code and each stage is sealed to the weights and settings it was computed from (`eval_cache`)."""
from __future__ import annotations

import copy
import hashlib
import time
from pathlib import Path

import torch

from aft_fast.compare import eval_cache, masking
from aft_fast.compare.protocol import (Protocol, autoattack_survivors, correct, pgd_survivors)
from aft_fast.fast_path import for_evaluation
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
_COMMON = ("eps", "batch_size", "seed")
# The protocol settings each stage reads. AutoAttack's image count is not among them: a record
# covering the first k images is extended to more (its chunks are independent).
READS = {"clean": (), "weak": ("images", "weak_steps", *_COMMON),
         "pgd": ("images", "pgd_steps", "pgd_restarts", *_COMMON),
         "autoattack": ("aa_steps", "aa_queries", "aa_targets", *_COMMON),
         "sweep": ("images", "mask_images", "mask_steps", *_COMMON)}


def stage_settings(p: Protocol, name: str) -> dict:
    """The protocol settings stage `name` reads (recorded in its cache record)."""
    settings = p.settings()
    return {k: settings[k] for k in READS[name]}


def stage_key(p: Protocol, name: str) -> str:
    text = repr(list(stage_settings(p, name).items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def aa_image_count(p: Protocol, n_test: int) -> int:
    n = n_test if p.images is None else min(p.images, n_test)
    return n if p.aa_images is None else min(p.aa_images, n)


def _finished(stages: dict, name: str, p: Protocol, n_test: int) -> bool:
    got = stages.get(name)
    if got is None or got.get("key") != stage_key(p, name):
        return False
    if name == "autoattack":
        na = aa_image_count(p, n_test)
        return len(got["alive"]) >= na and got["next"] >= _candidates(stages, na)
    return True


def _candidates(stages: dict, na: int) -> int:
    """AutoAttack's candidates in the first `na` images: those correct clean."""
    return int(stages["clean"]["correct"][:na].sum()) if "clean" in stages else -1


def _load_state(state_path: Path, sha: str, weights_sha: str, n_test: int, say) -> dict:
    """The cached stages of the checkpoint whose file digest is `sha`: only those whose seal
    matches its weights and that agree with its clean stage (others are computed again)."""
    state = eval_cache.read(state_path, say) or {}
    stages = state.get("stages") if state.get("checkpoint_sha256") == sha else None
    kept, dropped = eval_cache.trusted_stages(stages if isinstance(stages, dict) else {},
                                              weights_sha, n_test)
    if dropped:
        sealed = any(isinstance(r, dict) and eval_cache.SEAL in r for r in stages.values())
        why = ("do not match the checkpoint's weights or the protocol record (edited or corrupt)"
               if sealed else "were cached before records were sealed")
        say(f"    {state_path}: cached stage(s) {', '.join(map(str, dropped))} {why}: "
            "evaluating again")
    # another checkpoint (or none yet): start again
    fresh = {"checkpoint_sha256": sha, "weights_sha256": weights_sha, "stages": kept}
    if kept and state.get("shared_with"):  # a twin's stages were adopted: the row still says so
        fresh["shared_with"] = str(state["shared_with"])
    return fresh


def _save_state(state: dict, state_path: Path) -> None:
    save_torch(eval_cache.seal_stages(state), state_path)


def evaluate_checkpoint(path, x, y, p: Protocol, state_path, *, device="cpu",
                        say=lambda s: None, only_cached: bool = False,
                        autoattack: bool = True) -> dict | None:
    """The row's evaluation figures (see `summary`), cached stage by stage in `state_path`.
    `only_cached`: compute nothing; None unless every stage is cached. `autoattack=False`: every
    stage but AutoAttack (a sweep runs it on the points that matter only, `--aa-points`)."""
    from aft_fast import load_checkpoint
    from aft_fast.models.weights import read_checkpoint
    from aft_fast.train.checkpoint import weights_digest

    state_path = Path(state_path)
    weights_sha = weights_digest(read_checkpoint(path))  # never taken from the cache itself
    state = _load_state(state_path, file_digest(path), weights_sha, len(y), say)
    needed = [k for k in STAGES if autoattack or k != "autoattack"]

    def complete():
        return all(_finished(state["stages"], k, p, len(y)) for k in needed)

    if not complete() and _adopt_twin(state, state_path, p, len(y)):
        say(f"    same weights as {state['shared_with']}: its evaluation is shared")
    if only_cached and not complete():
        return None
    if not only_cached:
        _save_state(state, state_path)  # so a twin row finds it
    model = for_evaluation(load_checkpoint(path, device).eval())
    scores = evaluate_model(model, x, y, p, state=state, autoattack=autoattack,
                            save=lambda: _save_state(state, state_path), say=say)
    return {**scores, "shared_with": state.get("shared_with")}


def _adopt_twin(state: dict, state_path: Path, p: Protocol, n_test: int) -> str | None:
    """Take the stages of a sibling evaluation (another row of the same comparison and seed)
    whose model has the same weights, where it got further under `p`; its row's name or None."""
    def progress_of(name, rec):
        if rec is None or rec.get("key") != stage_key(p, name):
            return (-1, -1)
        return (rec["next"], len(rec["alive"])) if name == "autoattack" else (0, 0)

    taken = None
    for other in sorted(state_path.parent.glob("*.pt")):
        if other == state_path:
            continue
        twin = eval_cache.read(other) or {}
        stages = twin.get("stages")
        if twin.get("weights_sha256") != state["weights_sha256"] or not isinstance(stages, dict):
            continue
        stages, _ = eval_cache.trusted_stages(stages, state["weights_sha256"], n_test)
        for name, rec in stages.items():
            if progress_of(name, rec) > progress_of(name, state["stages"].get(name)):
                state["stages"][name] = copy.deepcopy(rec)
                taken = state["shared_with"] = other.stem
    return taken


def progress(state_path, p: Protocol, n_test: int) -> str:
    """How far an unfinished evaluation got under `p`: its finished stages (and clean accuracy)."""
    state_path = Path(state_path)
    state = eval_cache.read(state_path)
    if state is None:
        return "not started"
    stages = state.get("stages") if isinstance(state.get("stages"), dict) else {}
    if "weights_sha256" in state:  # what a run would not trust, --report-only does not show
        stages, _ = eval_cache.trusted_stages(stages, state["weights_sha256"], n_test)
    done = [k for k in STAGES if _finished(stages, k, p, n_test)]
    left = [k for k in STAGES if k not in done]
    text = f"stages done: {', '.join(done) or 'none'}; left: {', '.join(left)}"
    if "clean" in stages:
        text += f"; clean accuracy {100 * _mean(stages['clean']['correct']):.2f}% (whole test split)"
    aa = stages.get("autoattack")
    if "autoattack" not in done and aa and aa.get("key") == stage_key(p, "autoattack"):
        na = aa_image_count(p, n_test)
        text += f"; AutoAttack {min(aa['next'], _candidates(stages, na))} of " \
                f"{_candidates(stages, na)} candidates in the first {na} images"
    return text


def evaluate_model(model, x, y, p: Protocol, *, state: dict | None = None, save=lambda: None,
                   say=lambda s: None, autoattack: bool = True) -> dict:
    """Clean accuracy on all of (x, y); weak PGD, PGD with restarts, AutoAttack and the ε sweep
    on the first `p.images`; the masking checks. `state` holds finished stages (resumed from)."""
    state = {} if state is None else state
    stages = state.setdefault("stages", {})
    model.eval()
    n = len(y) if p.images is None else min(p.images, len(y))
    xs, ys = x[:n], y[:n]
    common = dict(batch_size=p.batch_size, seed=p.seed)

    def stage(name, fn):
        if not _finished(stages, name, p, len(y)):
            t0 = time.perf_counter()
            stages[name] = {**fn(), "key": stage_key(p, name),
                            "protocol": stage_settings(p, name)}
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
    na = aa_image_count(p, len(y))
    aa = _autoattack(model, xs[:na], ys[:na], alive[:na], p, stages, save, say) if autoattack \
        else None

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


def _autoattack(model, xs, ys, alive, p: Protocol, stages, save, say) -> dict:
    """AutoAttack on the clean-correct of (xs, ys) in chunks of `batch_size` candidates, in
    image order, the record saved after every chunk. One record per attack setting serves every
    image count: a record of fewer images is extended (only the new candidates are attacked), a
    record of more images answers for its first ones (their candidates come first)."""
    na, key = len(ys), stage_key(p, "autoattack")
    rec = stages.get("autoattack")
    if not (rec and rec.get("key") == key):
        rec = {"key": key, "protocol": stage_settings(p, "autoattack"), "next": 0,
               "alive": alive[:0].clone(), "counts": {}, "seconds": 0.0}
    if len(rec["alive"]) < na:  # the record's images, then the new ones as they are clean
        rec["alive"] = torch.cat([rec["alive"], alive[len(rec["alive"]):]])
    stages["autoattack"] = rec
    idx = alive.nonzero().flatten()  # the candidates in the first na images
    t0 = time.perf_counter()
    while rec["next"] < len(idx):
        ids = idx[rec["next"]:rec["next"] + p.batch_size]
        sub = torch.zeros_like(alive)
        sub[ids] = True
        left = autoattack_survivors(model, xs, ys, sub, p, rec["counts"])
        rec["alive"][ids] = left[ids]
        rec["next"] += len(ids)
        rec["seconds"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        save()
        say(f"    autoattack: {rec['next']}/{len(idx)} candidates, {rec['seconds']:.0f}s")
    if len(rec["alive"]) == na:
        return rec
    # The first na of a larger record: fooled-by-part counts are kept for the whole record
    # only; the seconds are its mean per attacked candidate times this many candidates.
    return {"alive": rec["alive"][:na], "counts": None,
            "seconds": rec["seconds"] * len(idx) / max(1, rec["next"])}


def summary(p, n, n_test, clean, weak, strong, aa, sw) -> dict:
    hist = strong["history"]
    pgd_accs = [_mean(h) for h in hist]
    if aa is None:  # not run (a sweep's point outside --aa-points): PGD is the worst case
        aa = {"alive": None, "counts": None, "seconds": 0.0}
    na = 0 if aa["alive"] is None else len(aa["alive"])  # AutoAttack's: the first na of the n
    worst = hist[-1] if aa["alive"] is None else hist[-1][:na] & aa["alive"]
    out = {
        "clean_acc": _mean(clean["correct"]), "clean_n": n_test,
        "clean_acc_attacked_subset": _mean(clean["correct"][:n]),
        "n": n,
        f"pgd{p.weak_steps}_acc": _mean(weak["alive"]),
        "pgd_acc": pgd_accs[-1], "pgd_acc_per_restart": pgd_accs,
        "autoattack_acc": None if aa["alive"] is None else _mean(aa["alive"]),
        "autoattack_n": na, "autoattack_candidates": int(clean["correct"][:na].sum()),
        "pgd_acc_autoattack_images": _mean(hist[-1][:na]) if na else None,
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
