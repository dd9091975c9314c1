"""The evaluation cache of one comparison row (`evals/seed*/ROW.pt`): read without running code,
and trusted only where it proves what it was computed from.

A cache may come from a shared or downloaded results folder, so it is read with
`torch.load(weights_only=True)` (tensors, numbers, strings and containers only: a pickle that
would run code is refused, and the file is evaluated again). Each stage record carries the
protocol settings it read and a seal: the SHA-256 of the model's weights digest, those settings
and the record itself. A record whose seal does not match (edited by hand, truncated, written for
other weights) or that contradicts the clean stage (an image the attack left correct must be
correct clean) is dropped and computed again, said once. The seal detects edits and mix-ups; it
is not a signature: whoever can run this code can forge one, so a folder from someone you do not
trust is best evaluated afresh (delete its `evals/`)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

SEAL = "seal"


def read(path: Path, say=lambda s: None) -> dict | None:
    """The cache dict in `path`, or None (missing, unreadable, or holding more than plain data)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a code-running pickle lands here, unexecuted
        say(f"    {path}: not a plain evaluation cache ({str(exc).splitlines()[0][:120]}); "
            "evaluating again")
        return None
    return state if isinstance(state, dict) else None


def _feed(h, obj) -> None:
    """Hash `obj` (the plain types a cache holds) so that any change of a value changes it."""
    if isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=str):
            if k != SEAL:
                _feed(h, k)
                _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for v in obj:
            _feed(h, v)
        h.update(b"]")
    elif isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())


def seal(record: dict, weights_sha256: str) -> str:
    h = hashlib.sha256(weights_sha256.encode())
    _feed(h, record)
    return h.hexdigest()


def seal_stages(state: dict) -> dict:
    """Seal every stage record of `state` (before it is written)."""
    for rec in state.get("stages", {}).values():
        rec[SEAL] = seal(rec, state["weights_sha256"])
    return state


def trusted_stages(stages: dict, weights_sha256: str, n_test: int) -> tuple[dict, list[str]]:
    """The records of `stages` whose seal matches these weights and that agree with the clean
    stage; and the names of those dropped."""
    kept = {k: rec for k, rec in stages.items()
            if isinstance(rec, dict) and rec.get(SEAL) == seal(rec, weights_sha256)}
    clean = kept.get("clean", {}).get("correct")
    if not (isinstance(clean, torch.Tensor) and clean.dtype == torch.bool
            and len(clean) == n_test):
        kept = {}  # every other stage attacks the clean-correct images
    for name in [k for k in kept if k != "clean"]:
        if not all(_within(mask, clean) for mask in _survivor_masks(kept[name])):
            del kept[name]
    return kept, sorted(set(stages) - set(kept))


def _survivor_masks(rec: dict) -> list:
    return [*rec.get("history", []), *([rec["alive"]] if "alive" in rec else [])]


def _within(mask, clean: torch.Tensor) -> bool:
    """A survivor mask: booleans over the first images, true only where the clean one is."""
    return (isinstance(mask, torch.Tensor) and mask.dtype == torch.bool
            and len(mask) <= len(clean) and not bool((mask & ~clean[:len(mask)]).any()))
