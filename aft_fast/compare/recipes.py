"""Each method's canonical recipe, and the budget rule that makes the rows comparable.

Budget rule (one number, `epochs` = E, applied to every row):
- from scratch, every method sees the training split E times: Natural, PGD AT and Fast AT run
  E epochs; Free AT runs E / m epochs replaying each batch m times (Shafahi et al.), YOPO E / m
  epochs of m full rounds per batch, rounded to the nearest integer (halves up, at least 1) when m does not divide E; the cost column counts
  the work actually done, so a rounding shows there;
- a fine-tuning method (one with a parent: AFT and TRADES-FT from the Natural model) runs A
  epochs, by default round(E / 8) (at least 1): the AFT paper's claim is AFT at 1/8-1/10 of PGD
  AT's cost. The parent's training is its own row, reported separately, never folded in;
- RiFT fine-tunes one module of the PGD AT model on clean data for A epochs (its MRC and α
  search run on small subsets).

Recipes come from the methods' own modules (`aft_fast.methods.*`: `recipes` per model family,
`compare_train`, `budget_epochs`, `passes_per_epoch`), each from its paper and reference code; two
families: the small CNN on 28×28 grayscale follows the MNIST code of each reference, other
networks the CIFAR code. The rows are the built-in training methods, RiFT (a pipeline on the PGD
AT model, `aft_fast.rift.method`) and any method given by import path (`package.module:Class`).
A method with `compare_ema` (PGD AT, AFT) also has the row NAME+ema: the same recipe and cost,
trained with a weight average of decay `--ema-decay` (`methods.base.ema_row`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from aft_fast import methods as registry
from aft_fast.errors import OptionError
from aft_fast.methods import Budget, Method
from aft_fast.methods.base import ema_rows
from aft_fast.policy import COMPARE_EMA_DECAY
from aft_fast.rift.method import RiFT

# the rows compare knows by name: each built-in (and its weight-average row), RiFT
ROWS: tuple[type[Method], ...] = (*ema_rows(registry.BUILTIN), RiFT)
ROW_NAMES = tuple(m.name for m in ROWS)


@dataclass(frozen=True)
class Recipe:
    key: str  # run folder, JSON key: the method's name
    label: str
    parent: str | None  # the row whose model it starts from
    epochs: int
    train: dict = field(default_factory=dict)  # TrainOptions fields (empty for a pipeline: RiFT)
    method: str = ""  # what makes the method: its name, or the import path it was given as
    passes_per_epoch: float = 1.0  # its cost rule applied to these options (see cost.py)
    source: str = ""


def row_class(name: str) -> type[Method]:
    """The method class of a comparison row: a built-in, RiFT, or an import path."""
    for cls in ROWS:
        if cls.name == name:
            return cls
    return registry.get(name, option="methods")


def make_row_method(r: Recipe) -> Method:
    """The method of a row, made with the row's options (its cost reads steps, replays)."""
    cls = row_class(r.method or r.key)
    keys = ("eps", "alpha", "steps") + tuple(o.name for o in cls.options)
    return cls(**{k: r.train[k] for k in keys if r.train.get(k) is not None})


def plan(*, arch: str, eps: float, epochs: int, train_steps: int, replays: int | None,
         aft_epochs: int | None, methods=ROW_NAMES, warmup_fraction: float = 0.25,
         ema_decay: float = COMPARE_EMA_DECAY, paper_length: bool = False) -> list[Recipe]:
    """The recipes of `methods` in an order where every parent comes first. `paper_length` (a
    budget sweep): each fine-tuning method with `paper_epochs` also gets a row of that length
    from the same parent, keyed "name@N", after its rule's row."""
    b = Budget(epochs=epochs, family="small" if arch == "small_cnn" else "cifar", eps=eps,
               train_steps=train_steps, replays=replays, fine_tune_epochs=aft_epochs,
               warmup_fraction=warmup_fraction, ema_decay=ema_decay)
    out = []
    for r in _plan(b, methods):
        out.append(r)
        n = row_class(r.method).paper_epochs
        if paper_length and n and n != r.epochs:
            long = _plan(replace(b, fine_tune_epochs=n), (r.method,), check_parents=False)[0]
            out.append(replace(long, key=f"{r.key}@{n}", label=f"{r.label}, {n} epochs"))
    return out


def _plan(b: Budget, methods, check_parents: bool = True) -> list[Recipe]:
    classes = {name: row_class(name) for name in methods}
    keys = {cls.name for cls in classes.values()}
    out = []
    for name, cls in sorted(classes.items(), key=lambda kv: _depth(kv[1], classes)):
        if check_parents and cls.parent and cls.parent not in keys:
            raise OptionError("methods", f"{cls.name} starts from the {cls.parent} model: "
                              f"include {cls.parent} in the methods")
        train = cls.compare_train(b)
        if train and name != cls.name:
            train["method"] = name  # an import path stays one: train() imports it
        r = Recipe(cls.name, cls.compare_label(b), cls.parent, cls.budget_epochs(b), train,
                   name, source=cls.reference)
        out.append(replace(r, passes_per_epoch=make_row_method(r).passes_per_epoch()))
    return out


def _depth(cls, classes: dict) -> int:
    """How many parents up a row's chain goes (a stable sort on it puts parents first)."""
    by_key = {c.name: c for c in classes.values()}
    depth, seen = 0, set()
    while cls.parent in by_key and cls.name not in seen:
        seen.add(cls.name)
        cls, depth = by_key[cls.parent], depth + 1
    return depth
