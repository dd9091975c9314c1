"""The method contract: everything about a training method lives in one class, in one module.

A method says who it is (`name`, `label`, `reference`: paper and code), where it starts
(`parent`: the comparison row whose model it fine-tunes; `needs_weights`), how a `train` run of it
is set up by default (`optimizer`, `lr`, `schedule`, `epochs`, `bn_mode` during its attack), its
recipe per model family for `compare` (`recipes`, `compare_train`), its own options (`options`:
declared, checked and documented here; they become flags of `train`), its cost in forward/backward
passes per training image (`passes_per_epoch`), and the three hooks of one batch:

    perturb(trainer, x, y) -> x_adv        the training input (x itself for natural training)
    loss(model, x_adv, y, x) -> loss, logits   what the one weight update minimises
    step(trainer, x, y, set_lr) -> StepStats   perturb + update(s); Free AT overrides it
                                               (with `needs_index`: step(..., origin), each
                                               image's index and placement: ATTA)

and what it carries between batches (`state_dict`/`load_state_dict`: saved in checkpoints, so a
resume is exact). The registry (`aft_fast.methods`), `train`'s options and flags, `compare`'s
recipes and cost, and `bench` are derived from these classes; a user's own subclass, named by
`--method package.module:Class`, runs through all of them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from aft_fast.attacks import AttackConfig
from aft_fast.errors import OptionError, check, check_at_least, check_choice
from aft_fast.policy import COMPARE_EMA_DECAY, default_alpha
from aft_fast.train.update import StepStats, Trainer, batch_stats


@dataclass(frozen=True)
class MethodOption:
    """An option a method owns: a flag of `train` (a key of `--config` and `args.yaml`), whose
    value the method reads as the attribute `self.<name>`; given to another method, it is
    refused."""
    name: str
    type: type  # int, float, bool or str (with `choices`)
    default: object
    help: str
    low: float | None = None  # refused below this
    choices: tuple[str, ...] | None = None  # the values a str option takes

    def value(self, given):
        """The value to use: `given` checked, or the default when not given (None)."""
        if given is None:
            return self.default
        if self.choices is not None:
            check_choice(self.name, given, self.choices)
            return given
        if self.type is bool:
            check(isinstance(given, bool), self.name, f"must be true or false, got {given!r}")
            return given
        if self.type is str:  # a name (YOPO's first layer: `0` in an nn.Sequential is one)
            check(isinstance(given, (str, int)) and not isinstance(given, bool)
                  and str(given).strip() != "", self.name, f"must be a name, got {given!r}")
            return str(given)
        try:
            value = self.type(given)
        except (TypeError, ValueError):
            raise OptionError(self.name, f"must be a number ({self.type.__name__}), got "
                              f"{given!r}") from None
        check(self.type is not int or value == given, self.name,
              f"must be a whole number, got {given!r}")
        if self.low is not None:
            check_at_least(self.name, value, self.low)
        check(math.isfinite(value), self.name, f"must be finite, got {given!r}")
        return value


@dataclass(frozen=True)
class Budget:
    """What `compare` hands every method to derive its row from (the budget rule of
    `aft_fast.compare.recipes`): E, the model family, ε, the PGD-k of the PGD family, Free AT's m
    (None: the method's family default), the fine-tuning epochs (None: round(E / 8)) and PGD AT's
    ε warm-up fraction."""
    epochs: int
    family: str  # "small" (the 28x28 small CNN: each reference's MNIST code) or "cifar"
    eps: float
    train_steps: int
    replays: int | None = None
    fine_tune_epochs: int | None = None
    warmup_fraction: float = 0.25
    ema_decay: float = COMPARE_EMA_DECAY  # the τ of the weight-average rows (`ema_row`)


FINE_TUNE_FRACTION = 8  # the AFT paper: fine-tuning at 1/8-1/10 of PGD AT's cost


def round_half_up(x: float) -> int:
    return max(1, math.floor(x + 0.5))


class Method:
    """The base: natural training on whatever `perturb` returns, cross-entropy loss."""
    name = "base"
    label = "base"
    reference = ""  # paper; reference code
    adversarial = True  # trains on perturbed inputs: robust accuracy is its validation metric
    trains = True  # `aft-fast train --method NAME` runs it (RiFT: a pipeline of its own)
    parent: str | None = None  # compare: the row whose model it starts from
    needs_weights = False  # fine-tunes a given model (refused without --weights)
    # a fine-tuning method's length in its paper: compare's budget sweep adds a row at it
    # (key "name@N"), next to the budget rule's round(E / 8); None: the rule's row only
    paper_epochs: int | None = None
    optimizer, lr, schedule, epochs = "sgd", 0.1, "multistep", 10
    bn_mode = "eval"  # BatchNorm while its training attack runs, as in its reference code
    separate_attack = True  # perturb() is a pass of its own, worth timing
    # A method whose attack is not PGD-k: its fixed steps per batch (Fast AT, N-FGSM: 1; natural
    # training, Free AT: 0); None: PGD-k, `steps` of them (0 would attack nothing).
    fixed_attack_steps: int | None = 0
    # α as a multiple of ε (Fast AT 1.25, Free AT and N-FGSM 1); None: Madry et al.'s 2.5·ε/k.
    alpha_per_eps: float | None = None
    options: tuple[MethodOption, ...] = ()
    # compare: TrainOptions fields per model family, from the reference code (see recipes.py)
    recipes: dict[str, dict] = {}
    imagenet_epochs: float | None = None  # bench's projection of a full ImageNet run
    # compare: also a row NAME+ema, its recipe with a weight average; declared by each class
    # itself, never inherited (MART and TRADES subclass PGD AT without that row): `ema_rows`
    compare_ema = False
    replays = 1  # weight updates per batch
    # The loop passes `step` each image's `data.batches.Origin` (index in the training split,
    # crop, flip) as `origin=`: state kept per training image (ATTA's perturbations).
    needs_index = False
    # Its state is the same on every rank (the ranks keep it in step): checkpoints hold it once.
    # (A resume under another world size is refused all the same: distributed.plan_batch.)
    same_state_on_every_rank = False

    def __init__(self, eps: float = 0.0, alpha: float | None = None, steps: int = 10,
                 amp: str | None = None, bn_mode: str | None = None, compile: bool = False,
                 eps_warmup_epochs: float = 0.0, **options):
        unknown = sorted(set(options) - {o.name for o in self.options})
        if unknown:
            raise OptionError(unknown[0], f"method {self.name} has no option {unknown[0]!r} "
                              f"(its options: {', '.join(o.name for o in self.options) or 'none'})")
        # Each own option is an attribute (FreeAT.replays, TRADES.beta) and listed in args.yaml.
        self.option_values = {o.name: o.value(options.get(o.name)) for o in self.options}
        for name, value in self.option_values.items():
            setattr(self, name, value)
        self.eps, self.steps, self.amp = eps, steps, amp
        self.bn_mode = bn_mode or type(self).bn_mode
        self.compile = compile  # the attack's forward + input backward as one compiled graph
        self.alpha = self.default_alpha(eps, steps) if alpha is None else alpha
        # ε warm-up: ε and α grow linearly from 0 over the first eps_warmup_epochs (set_progress)
        self.eps_warmup_epochs, self.eps_target, self.alpha_target = eps_warmup_epochs, eps, self.alpha

    def default_alpha(self, eps: float, steps: int) -> float:
        return default_alpha(eps, steps) if self.alpha_per_eps is None else self.alpha_per_eps * eps

    @property
    def uses_steps(self) -> bool:
        return self.fixed_attack_steps is None

    def default_epochs(self) -> int:
        """A `train` run's epochs when none are given: its own, divided by its replays (Free AT
        replays each batch m times, so the total work matches)."""
        return max(1, math.ceil(self.epochs / self.replays))

    # ------------------------------------------------------------------ cost and comparison
    @property
    def attack_steps(self) -> int:
        """Input-gradient passes of its attack per batch (bench's column)."""
        return self.steps if self.fixed_attack_steps is None else self.fixed_attack_steps

    def passes_per_epoch(self) -> float:
        """Forward/backward passes per training image in one epoch (`compare.cost`): by
        default its attack steps plus one weight update."""
        return self.attack_steps + self.replays

    def extra_passes(self, run_dir) -> float:
        """Passes of the whole training split spent outside its epochs (RiFT's searches)."""
        return 0.0

    @classmethod
    def budget_epochs(cls, b: Budget) -> int:
        """Its epochs under the budget rule: E from scratch; a fine-tuning method (one with a
        parent) b.fine_tune_epochs, by default round(E / 8), the AFT paper's cost claim."""
        if cls.parent:
            return b.fine_tune_epochs or round_half_up(b.epochs / FINE_TUNE_FRACTION)
        return b.epochs

    @classmethod
    def compare_train(cls, b: Budget) -> dict:
        """The TrainOptions fields of its comparison row: its family recipe, the budget's
        epochs and ε, its attack's BatchNorm mode and steps."""
        return dict(cls.recipes.get(b.family, {}), method=cls.name, epochs=cls.budget_epochs(b),
                    eps=b.eps, bn_mode=cls.bn_mode)

    @classmethod
    def compare_label(cls, b: Budget) -> str:
        return cls.label

    # ------------------------------------------------------------------ one batch
    def set_progress(self, t: float) -> None:
        """Training progress `t` in epochs, before every weight update: applies the ε warm-up
        (what practitioners add where PGD AT from scratch stalls at a small budget)."""
        if self.eps_warmup_epochs > 0:
            f = min(1.0, max(t, 0.0) / self.eps_warmup_epochs)
            self.eps, self.alpha = self.eps_target * f, self.alpha_target * f

    def attack_config(self) -> AttackConfig:
        return AttackConfig(self.eps, self.alpha, self.steps, amp=self.amp, bn_mode=self.bn_mode,
                            compile=self.compile)

    def perturb(self, trainer: Trainer, x, y) -> torch.Tensor:
        return x

    def loss(self, model, x_adv, y, x) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean loss, logits) of the weight update, run under the update's autocast. `x` is the
        clean batch (TRADES' and MART's terms read it)."""
        logits = model(x_adv)
        return F.cross_entropy(logits.float(), y), logits

    def step(self, trainer: Trainer, x, y, set_lr) -> StepStats:
        if self.separate_attack:
            x_adv = trainer.attack(self.perturb, x, y)
        else:
            x_adv = self.perturb(trainer, x, y)
        return batch_stats(trainer.update(x_adv, y, loss=self._loss_on(x)), y)

    def _loss_on(self, x):
        """`loss` as the update calls it, or None for plain cross-entropy (the base's own)."""
        if type(self).loss is Method.loss:
            return None
        return lambda model, x_in, y: self.loss(model, x_in, y, x)

    # ------------------------------------------------------------------ state and guard
    def state_dict(self) -> dict:
        """What it carries from batch to batch (saved in checkpoints for exact resume); tensors
        and plain types only (checkpoints are read with weights_only=True)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    @classmethod
    def training_run(cls, run_dir):
        """The training run folder inside its comparison row's folder (RiFT: its fine-tuning)."""
        return run_dir

    def guard(self, seed: int):
        """A per-epoch guard the loop runs (Fast AT's co-guard), or None."""
        return None

    def describe(self) -> dict:
        """What `args.yaml` records as resolved: α, replays, BatchNorm mode, its own options."""
        return {"alpha": self.alpha, "replays": self.replays, "bn_mode": self.bn_mode,
                "method_options": dict(self.option_values), "adversarial": self.adversarial}


EMA_SUFFIX = "+ema"  # the comparison row of a method trained with a weight average


def ema_rows(classes) -> list[type[Method]]:
    """`classes`, each followed by its weight-average row where it declares `compare_ema`."""
    return [row for cls in classes
            for row in ((cls, ema_row(cls)) if vars(cls).get("compare_ema") else (cls,))]


def ema_row(cls: type[Method]) -> type[Method]:
    """The comparison row NAME+ema of a method with `compare_ema`: the same recipe, parent and
    cost (the average costs no forward/backward pass), trained with `--ema Budget.ema_decay`
    (`aft_fast.train.ema`), so it is evaluated and its best epoch chosen on the average."""
    class WithEMA(cls):
        name = cls.name + EMA_SUFFIX
        label = cls.label + " + EMA"
        reference = f"{cls.reference}; weight average as in Gowal et al. 2020"

        @classmethod
        def compare_train(klass, b: Budget) -> dict:
            return dict(super().compare_train(b), method=cls.name, ema=b.ema_decay)

    WithEMA.__name__ = WithEMA.__qualname__ = cls.__name__ + "EMA"
    return WithEMA
