"""The recipe, chosen from the probes' measurements (pure functions: every decision path is
tested with constructed probe results).

- **Collapse.** A probe whose held-out clean accuracy kept less than half of the best probe's
  accuracy above chance lost what the pretrained model knew; it is never chosen, however robust
  (a model that predicts one class is "robust": its clean and robust accuracy are equal).
- **BatchNorm.** A BatchNorm network's probes try each handling of the running statistics
  (HANDLINGS): frozen, updating, and re-estimated (frozen during the fine-tune, then recomputed
  on adversarial training examples: `batchnorm.py`); the probes decide, not a rule.
- **Pick.** Of the others, the highest held-out robust accuracy; probes within `tolerance` of
  it (one standard deviation of a difference of two accuracies on the probe images, at least
  half a point) are a tie, broken by clean accuracy. The BatchNorm handling and the peak LR are
  the chosen probe's.
- **Asked for.** With --bn-handling other than auto only that handling's probes may be chosen
  (the probes then choose the LR).
- **Round 2.** A short probe ranks how fast a recipe recovers, not where it ends: on
  EfficientNet-Lite0 the updating-statistics probe led after 30 batches (4.9% vs 1.4% held-out
  PGD-10), but the full fine-tune with frozen statistics ended more robust (14.2% vs 8.4% test
  PGD-50x5; PGD-10 ranked the two finished models within 1.4 points). So when more than one
  handling survives round 1, the best probe of each (`finalists`) trains again, the fine-tune's
  own schedule compressed into --confirm-epochs epochs, and is scored with --confirm-steps PGD
  steps; those scores choose. On that network even this ties (2 epochs: 1.6% vs 2.5% PGD-50; at
  a constant LR 2.5% vs 2.1%; the frozen 3e-4 recipe that ends best: 0.6%): the ranking reverses
  between 2 and 10 epochs, so a tie between handlings is a warning
  (benchmarks/results/robustify/efficientnet_lite0-imagenette-64px/round2/). What ranks them
  is the whole fine-tune: --confirm-epochs at the fine-tune's length makes each finalist one
  (scored on its best.pt), and the chosen one's run is the result, so it costs one fine-tune
  per handling, not one more.
- **Epochs.** --budget, else the method's default.
- **Warnings.** Fewer than MIN_UPDATES weight updates, no probe above ZERO robust accuracy,
  probes scored with fewer than STRONG_STEPS PGD steps, or a tie between BatchNorm handlings
  (the choice between them is then clean accuracy's, not robustness's).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# The worked example's EfficientNet-Lite0 (README) bought 18.8% PGD-20 at 2/255 from ~920 updates,
# ~105 updates gave 7%; issue 26's CIFAR ResNet got 0.0% from 47 updates at 8/255. Below half of
# the successful run's count the budget is likely too small.
MIN_UPDATES = 500
ZERO = 0.01  # robust accuracy of at most this on the probe images is "about zero"
MIN_TOLERANCE = 0.005
# The EfficientNet-Lite0 run scored its probes with PGD-3: the recipe it chose held 39.8% of val
# under PGD-3 and 16.5% of test under PGD-10 (benchmarks/results/robustify/): a weak attack
# ranks recipes by how well they resist *it*.
STRONG_STEPS = 10


# How a BatchNorm network's running statistics are handled, and how each is shown.
HANDLINGS = {"frozen": "BatchNorm statistics frozen",
             "updating": "BatchNorm statistics updating",
             "reestimated": "BatchNorm statistics frozen, then re-estimated"}


@dataclass(frozen=True)
class Probe:
    """One short fine-tune and its held-out scores."""
    lr: float
    bn: str | None  # a HANDLINGS key; None: the network has no BatchNorm layer
    clean: float
    robust: float
    n: int  # held-out images scored
    batches: int = 0
    seconds: float = 0.0
    round: int = 1  # 2: a finalist trained longer and scored with a stronger attack
    steps: int = 0  # PGD steps of its held-out scoring (0: a probe.json from before it was kept)

    @property
    def name(self) -> str:
        return (f"lr{self.lr:g}" + ("" if self.bn is None else f"-bn-{self.bn}")
                + ("" if self.round == 1 else f"-round{self.round}"))

    @property
    def freeze_bn_stats(self) -> bool:
        """Whether the fine-tune keeps the running statistics fixed (re-estimated ones too)."""
        return self.bn in ("frozen", "reestimated")

    def describe(self) -> str:
        return f"peak LR {self.lr:g}" + ("" if self.bn is None else f", {HANDLINGS[self.bn]}")


@dataclass(frozen=True)
class Choice:
    probe: Probe
    tolerance: float
    collapsed: tuple[str, ...]  # names of the probes excluded as collapsed
    tied: tuple[str, ...]  # names of the probes within tolerance of the best robust accuracy
    why: str
    asked: str = "auto"  # --bn-handling: auto, or the handling every candidate had to have


def tolerance(p: float, n: int) -> float:
    """One standard deviation of the difference of two accuracies near `p` on `n` images."""
    return max(MIN_TOLERANCE, math.sqrt(2 * p * (1 - p) / max(n, 1)))


def is_collapsed(probe: Probe, best_clean: float, chance: float) -> bool:
    return probe.clean < chance + 0.5 * (best_clean - chance)


def pick(probes: list[Probe], chance: float, handling: str = "auto") -> Choice:
    """The probe to follow (see the module docstring)."""
    if handling != "auto" and any(p.bn is not None for p in probes):
        probes = [p for p in probes if p.bn == handling]
    if not probes:
        raise ValueError("no probe to choose from")
    best_clean = max(p.clean for p in probes)
    # all below chance: none kept what the model knew, so none is excluded
    kept = [p for p in probes if not is_collapsed(p, best_clean, chance)] or list(probes)
    collapsed = tuple(p.name for p in probes if p not in kept)
    top = max(p.robust for p in kept)
    tol = tolerance(top, min(p.n for p in kept))
    tied = [p for p in kept if p.robust >= top - tol]
    chosen = max(tied, key=lambda p: (p.clean, p.robust))
    why = (f"highest held-out robust accuracy {100 * top:.1f}%"
           + (f"; {len(tied)} probes within {100 * tol:.1f} points (noise) of it, the most "
              f"accurate clean kept" if len(tied) > 1 else "")
           + (f"; {', '.join(collapsed)} collapsed (clean accuracy below half-way between "
              f"chance {100 * chance:.0f}% and the best probe's {100 * best_clean:.1f}%)"
              if collapsed else ""))
    return Choice(chosen, tol, collapsed, tuple(p.name for p in tied), why, handling)


def finalists(probes: list[Probe], chance: float, handling: str = "auto") -> list[Probe]:
    """Round 2's candidates: the best (robust, then clean) uncollapsed probe of each BatchNorm
    handling, in HANDLINGS order, when the probes may choose the handling and more than one
    handling survived; else none (round 1 decides)."""
    if handling != "auto" or not probes:
        return []
    best_clean = max(p.clean for p in probes)
    best = {}
    for p in probes:
        if p.bn is not None and not is_collapsed(p, best_clean, chance):
            if p.bn not in best or (p.robust, p.clean) > (best[p.bn].robust, best[p.bn].clean):
                best[p.bn] = p
    return [best[bn] for bn in HANDLINGS if bn in best] if len(best) > 1 else []


def batchnorm_decision(probes: list[Probe], choice: Choice) -> str:
    """The BatchNorm handling chosen, with the best probe of each handling."""
    if choice.probe.bn is None:
        return "not applicable: the network has no BatchNorm layer"
    if choice.asked != "auto":
        return f"{choice.asked} statistics (--bn-handling {choice.asked}: the probes chose the LR)"
    best = {}
    for bn in HANDLINGS:
        mine = [p for p in probes if p.bn == bn and p.name not in choice.collapsed]
        if mine or any(p.bn == bn for p in probes):
            best[bn] = max(mine, key=lambda p: (p.robust, p.clean)) if mine else None

    def show(p):
        return "all collapsed" if p is None else \
            f"best {100 * p.robust:.1f}% robust / {100 * p.clean:.1f}% clean at LR {p.lr:g}"

    return (f"{choice.probe.bn} statistics ("
            + "; ".join(f"{bn}: {show(p)}" for bn, p in best.items()) + ")")


def epochs(budget: int | None, method_default: int) -> tuple[int, str]:
    if budget is not None:
        return budget, f"{budget} (--budget)"
    return method_default, f"{method_default} (the method's default; --budget sets it)"


def warnings(*, updates: int, probes: list[Probe], choice: Choice, eps: float,
             probe_steps: int = STRONG_STEPS, full: bool = False) -> list[str]:
    """`full`: round 2 fine-tuned each handling to the end (nothing longer is left to try)."""
    out = []
    if probe_steps < STRONG_STEPS:
        out.append(f"the probes were scored with PGD-{probe_steps} (--eval-steps): a weak attack "
                   f"can rank first a recipe whose robustness it overstates; use at least "
                   f"{STRONG_STEPS} steps")
    if updates < MIN_UPDATES:
        out.append(f"{updates} weight updates in the fine-tune (< {MIN_UPDATES}): likely too few "
                   f"for eps {eps:.4g} (the worked example's ~920 updates bought 18.8% at 2/255, "
                   f"~105 gave 7%, 47 gave 0%); raise --budget or use more training data")
    handlings = sorted({p.bn for p in probes if p.name in choice.tied and p.bn is not None})
    if choice.asked == "auto" and len(handlings) > 1:
        out.append(f"the probes could not tell the BatchNorm handlings apart "
                   f"({', '.join(handlings)} within {100 * choice.tolerance:.1f} points, the "
                   f"noise of {choice.probe.n} held-out images), so the more accurate clean was kept; on "
                   "EfficientNet-Lite0 such a tie hid a 5.8-point PGD-50 difference at the end of "
                   "the fine-tune (benchmarks/results/robustify/): "
                   + ("raise --probe-images to score them on more held-out images" if full else
                      "run again with --confirm-epochs at the fine-tune's epochs (a whole "
                      "fine-tune per handling, the better one kept), or raise --probe-images"))
    if max(p.robust for p in probes) <= ZERO:
        out.append(f"no probe reached {100 * ZERO:g}% held-out robust accuracy at eps {eps:.4g}: "
                   "the eps may be too large for this model and data, or the budget too small")
    return out


def as_record(probes: list[Probe], choice: Choice, deciding: list[Probe] | None = None) -> dict:
    """`probes`: every probe run (both rounds); `deciding`: those the choice was made among
    (default: all)."""
    deciding = probes if deciding is None else deciding
    return {"probes": [{**asdict(p), "name": p.name, "collapsed": p.name in choice.collapsed}
                       for p in probes],
            "chosen": choice.probe.name, "lr": choice.probe.lr,
            "bn": choice.probe.bn, "freeze_bn_stats": choice.probe.freeze_bn_stats,
            "reestimate_bn": choice.probe.bn == "reestimated", "tolerance": choice.tolerance,
            "tied": list(choice.tied), "collapsed": list(choice.collapsed), "why": choice.why,
            "rounds": max(p.round for p in probes),
            "batchnorm": batchnorm_decision(deciding, choice)}
