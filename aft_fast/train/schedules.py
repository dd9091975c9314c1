"""Learning-rate schedules as pure functions of training progress `t` in epochs (a float, so the
LR changes every iteration, not only at epoch boundaries).

`slow_start_fast_decay` is AFT's schedule. The paper (Jeddi et al. 2020, Fig. 5) describes it only
in words: a small starting LR, a smooth rise over the first few epochs so the pretrained model
learns the adversarial distribution without forgetting the natural one, then a fast decay so it
settles before it overfits the training set's l∞ balls. We choose:

    t <= w:   lr = lr_start + (lr_peak - lr_start) * (1 - cos(pi * t / w)) / 2     (smooth rise)
    t >  w:   lr = lr_peak * (lr_end / lr_peak) ** ((t - w) / (T - w))           (exponential decay)

with T = epochs and defaults w = 0.3 T (3 of the paper's 10 epochs), lr_start = lr_peak / 10 and
lr_end = lr_peak / 100. The exponential is fastest right after the peak, which is the "fast decay";
the cosine rise has zero slope at both ends, which is the "smooth" start.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass, field

from aft_fast.errors import OptionError, check_at_least, check_choice


@dataclass
class Schedule:
    name: str
    lr: float  # the peak / base learning rate
    epochs: float
    params: dict = field(default_factory=dict)

    def __call__(self, t: float) -> float:
        return SCHEDULES[self.name](t, self.lr, self.epochs, **self.params)

    def state_dict(self) -> dict:
        return asdict(self)


def constant(t, lr, epochs):
    return lr


def slow_start_fast_decay(t, lr, epochs, warmup_frac=0.3, start_frac=0.1, end_frac=0.01):
    w = max(warmup_frac * epochs, 1e-12)
    lr_start, lr_end = lr * start_frac, lr * end_frac
    if t <= w:
        return lr_start + (lr - lr_start) * (1 - math.cos(math.pi * t / w)) / 2
    span = max(epochs - w, 1e-12)
    return lr * (lr_end / lr) ** (min(t - w, span) / span)


def step_lr(t, lr, epochs, every=1.0, gamma=0.5):
    """The paper's step-LR(i, γ): multiply by γ every i epochs (plateaus of length i)."""
    return lr * gamma ** math.floor(t / every + 1e-9)


def multistep(t, lr, epochs, milestones=(0.3, 0.6, 0.8), gamma=0.2):
    """Multiply by γ at each milestone. Milestones <= 1 are fractions of the run (the paper's
    pretraining: 0.1 × 0.2 at epochs 60, 120, 160 of 200 = 0.3, 0.6, 0.8)."""
    ms = [m * epochs if m <= 1 else m for m in milestones]
    return lr * gamma ** sum(t >= m - 1e-9 for m in ms)


def cyclic(t, lr, epochs, peak_frac=0.4):
    """One triangular cycle, 0 → lr at peak_frac of the run → 0 (Fast AT's cyclic LR)."""
    p = peak_frac * epochs
    return lr * (t / p if t <= p else max(0.0, (epochs - t) / (epochs - p)))


SCHEDULES = {"slow-start-fast-decay": slow_start_fast_decay, "step-lr": step_lr,
             "multistep": multistep, "cyclic": cyclic, "constant": constant}


def make_schedule(name: str, lr: float, epochs: float, **params) -> Schedule:
    check_choice("schedule", name, SCHEDULES)
    check_at_least("lr", lr, 0, strict=True)
    check_at_least("epochs", epochs, 0, strict=True)
    params = {k: _number(v) for k, v in params.items()}
    sched = Schedule(name, lr, epochs, params)
    try:
        sched(0.0)
    except TypeError as exc:
        takes = list(inspect.signature(SCHEDULES[name]).parameters)[3:]  # after t, lr, epochs
        raise OptionError("schedule_params", f"{params} do not fit schedule {name} ({exc}); it "
                          f"takes {', '.join(takes) or 'no parameters'}") from None
    _check_range(sched)
    return sched


def _number(value):
    """YAML 1.1 reads `1e12` (no dot) as a string: a parameter that reads as a number is one."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


CHECK_POINTS = 200  # where a schedule's LR is checked over the run


def _check_range(sched: Schedule) -> None:
    """Every LR of the run lies in [0, lr] (the peak): parameters that blow it up, or make it
    negative or NaN, are refused before any step."""
    for i in range(CHECK_POINTS + 1):
        t = sched.epochs * i / CHECK_POINTS
        try:
            v = float(sched(t))
        except (ArithmeticError, TypeError, ValueError) as exc:
            v, why = math.nan, f" ({exc})"
        else:
            why = ""
        if not (math.isfinite(v) and 0 <= v <= sched.lr * (1 + 1e-9)):
            raise OptionError("schedule_params", f"{sched.params} make schedule {sched.name} give "
                              f"a learning rate of {v:g}{why} at epoch {t:g}; it must stay in "
                              f"[0, {sched.lr:g}] (the peak --lr)")
