"""One evaluation, the same for every row: clean accuracy on the whole test split; PGD-50 with
5 random restarts and the gradient-masking checks on the first `images` test images (all of
them unless reduced; a class-sorted folder's split is interleaved class by class first:
`split_tensors`), AutoAttack at the reference settings on the first `aa_images` of those (all
of them unless reduced: on a CPU it costs ~1.6 s per robust image for a small CNN). fp32,
model in eval mode.

Restarts run only on the examples every earlier restart left correct: an example is robust iff
no restart fools it, so this gives the same robust accuracy as running every restart on all of
them, at a fraction of the cost. AutoAttack runs on its own (not only on PGD's survivors), so
"AutoAttack <= PGD" is a real check.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import torch

from aft_fast.attacks import AttackConfig, pgd
from aft_fast.policy import AUTOATTACK_REFERENCE, default_alpha

MASK_EPS_MAX = 0.5  # the masking check's largest ε (half the pixel range)


@dataclass(frozen=True)
class Protocol:
    eps: float
    images: int | None = None  # PGD / AutoAttack / masking images: the first N (None: all)
    pgd_steps: int = 50
    pgd_restarts: int = 5
    aa_steps: int = AUTOATTACK_REFERENCE["steps"]
    aa_queries: int = AUTOATTACK_REFERENCE["queries"]
    aa_targets: int = AUTOATTACK_REFERENCE["targets"]
    aa_images: int | None = None  # AutoAttack on the first N of those images (None: all)
    mask_images: int = 500  # the ε sweep of the masking check: the first N of those images
    mask_steps: int = 20
    weak_steps: int = 10  # the "fewer steps" PGD of the masking check
    tolerance: float = 0.005  # accuracy a stronger attack may exceed a weaker one by (noise)
    batch_size: int = 500
    seed: int = 0

    def settings(self) -> dict:
        return asdict(self)

    @property
    def reference_autoattack(self) -> bool:
        return (self.aa_steps, self.aa_queries, self.aa_targets) == tuple(
            AUTOATTACK_REFERENCE[k] for k in ("steps", "queries", "targets"))

    def sweep(self) -> list[float]:
        """ε, 2ε, 4ε, ... while below 0.5, then 0.5. At ε = 0.5 PGD can move any pixel to mid-grey,
        so an informative gradient takes every model to ~0; beyond it the random start alone is
        near-uniform noise and fools anything, which proves nothing."""
        out, e = [], self.eps
        while 0 < e < MASK_EPS_MAX:
            out.append(round(e, 6))
            e *= 2
        return out + [MASK_EPS_MAX]


def test_set(data: str, *, image_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The whole test split as tensors in the test loader's order, and a record of it (dataset,
    split, order, count, SHA-256 of labels and images) an independent evaluator can check."""
    from aft_fast.data import make_loaders

    loaders = make_loaders(data, batch_size=500, image_size=image_size, device="cpu")
    x, y = split_tensors(loaders.test)
    record = {"data": data, "split": "test", "count": len(y),
              "order": "make_loaders(data).test in iteration order (unshuffled; for fashion-mnist "
                       "the official t10k file order, for mnist5k its fixed 1,000-image test "
                       "split, for a folder the sorted files of its test directory interleaved "
                       "class by class: the first of each class, then the second, ...)",
              "labels_sha256": digest(y), "images_sha256": digest(x),
              "train_split_images": loaders.spec.train_size}  # what training costs are per
    return x, y, record


def split_tensors(loader) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split as CPU tensors (fp32 images, labels), in the loader's order, except that a
    class-sorted split is interleaved (`interleave_classes`)."""
    xs, ys = zip(*((x.cpu().float(), y.cpu()) for x, y in loader))
    x, y = torch.cat(xs), torch.cat(ys)
    order = interleave_classes(y)
    return x[order].contiguous(), y[order].contiguous()


def interleave_classes(y: torch.Tensor) -> torch.Tensor:
    """The order that makes "the first N images" a sample of every class: for labels sorted by
    class (an image folder's test directory, read class by class) the first image of each
    class, then the second of each, ...; labels already mixed (Fashion-MNIST's official order)
    keep theirs. Without it the first 100 images of a sorted folder are all one class."""
    n = len(y)
    if n < 2 or not bool((y[1:] >= y[:-1]).all()) or int(y[0]) == int(y[-1]):
        return torch.arange(n)
    rank = torch.empty(n, dtype=torch.long)  # position of each image within its class
    for c in y.unique():
        where = (y == c).nonzero().flatten()
        rank[where] = torch.arange(len(where))
    return torch.argsort(rank * n + y.long(), stable=True)


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


def _chunks(n: int, size: int):
    for lo in range(0, n, size):
        yield slice(lo, min(n, lo + size))


@torch.no_grad()
def correct(model, x, y, batch_size: int) -> torch.Tensor:
    """Per-example correctness on clean images (bool, CPU)."""
    device = next(model.parameters()).device
    out = [model(x[s].to(device)).argmax(1).cpu() == y[s] for s in _chunks(len(y), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def pgd_survivors(model, x, y, alive: torch.Tensor, *, eps: float, steps: int, restarts: int,
                  batch_size: int, seed: int) -> list[torch.Tensor]:
    """Which examples are still correct after each restart of PGD-`steps` (bool masks, one per
    restart); only `alive` examples are attacked, and each restart only the survivors."""
    device = next(model.parameters()).device
    cfg = AttackConfig(eps, default_alpha(eps, steps), steps)
    alive, history = alive.clone(), []
    for r in range(restarts):
        idx = alive.nonzero().flatten()
        g = torch.Generator().manual_seed(seed * 1000 + r)
        for s in _chunks(len(idx), batch_size):
            ids = idx[s]
            xb, yb = x[ids].to(device), y[ids].to(device)
            x_adv = pgd(model, xb, yb, cfg, generator=g)
            with torch.no_grad():
                alive[ids] = (model(x_adv).argmax(1) == yb).cpu()
        history.append(alive.clone())
    return history


def autoattack_survivors(model, x, y, alive: torch.Tensor, p: Protocol, counts: dict) -> torch.Tensor:
    """Which `alive` examples survive standard AutoAttack (APGD-CE, APGD-T, FAB-T, Square)."""
    from aft_fast.attacks.autoattack import autoattack

    device = next(model.parameters()).device
    alive = alive.clone()
    idx = alive.nonzero().flatten()
    for s in _chunks(len(idx), p.batch_size):
        ids = idx[s]
        xb, yb = x[ids].to(device), y[ids].to(device)
        x_adv = autoattack(model, xb, yb, eps=p.eps, steps=p.aa_steps, queries=p.aa_queries,
                           targets=p.aa_targets, seed=p.seed, counts=counts)
        with torch.no_grad():
            alive[ids] = (model(x_adv).argmax(1) == yb).cpu()
    return alive
