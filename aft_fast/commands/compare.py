"""``aft-fast compare``: Natural, PGD AT, Free AT, Fast AT, AFT (and RiFT) trained under one
budget rule and evaluated with one protocol, written as the paper's Table 1 (markdown, JSON, a
plot of robust accuracy against training cost). Resumable: run it again to continue."""
from __future__ import annotations

import shlex

import click

from aft_fast.commands.common import (FAST_PATH_FLAGS, FAST_PATH_HELP, FAST_PATH_TYPES, FRACTION,
                                      config_option, options_from_dataclass,
                                      reports_library_errors)
from aft_fast.compare.options import CompareOptions
from aft_fast.compare.recipes import ROW_NAMES
from aft_fast.errors import show_pixels
from aft_fast.policy import AA_POINTS

HELP = {
    "data": "mnist5k, fashion-mnist, synthetic or an ImageNet-style folder.",
    "arch": "Model architecture (small_cnn takes the MNIST-family recipes, others the CIFAR ones).",
    "eps": "l∞ radius of training and evaluation, pixel units (8/255 accepted).",
    "out": "Training runs, evaluation state and (unless --report) the table go here.",
    "report": "Write table.md, table.json and robust_vs_cost.png here (default: --out).",
    "seeds": "Seeds, comma- or space-separated: '0,1' trains and evaluates every row per seed.",
    "methods": f"Rows, comma-separated, from {','.join(ROW_NAMES)}, or your own method's "
               "import path package.module:Class (see docs/METHODS.md).",
    "epochs": "Budget E: epochs of data of every from-scratch method (Free AT: E/m epochs × m). "
              "A list, e.g. 4,8,16,32, is a budget sweep: every row at each budget, fine-tuning "
              "methods also at their paper's length (aft@10), the longest budget's from-scratch "
              "rows also at their last epoch, a Pareto plot (pareto.png).",
    "aft_epochs": "Fine-tuning epochs of every row with a parent (AFT, TRADES-FT, RiFT; default "
                  "round(E/8), the AFT paper's cost ratio).",
    "train_steps": "k of the PGD-k training attacks (PGD AT, AFT, TRADES).",
    "replays": "Free AT's m (default 4 for small_cnn, 8 otherwise).",
    "warmup_fraction": "PGD AT's ε warm-up, as a fraction of its epochs (0: none).",
    "ema_decay": "Decay of the weight average of the +ema rows (pgd-at+ema, aft+ema), with the "
                 "warm-up min(decay, (1+t)/(10+t)) of Gowal et al. 2020.",
    "batch_size": "Training batch size.",
    "train_images": "Train every row on a fixed subset of N training images (CPU-sized runs).",
    "val_images": "Per-epoch validation (model selection) on this many images (default: training's).",
    "device": "auto, cpu, cuda or cuda:N.",
    "eval_images": "PGD / AutoAttack / masking check on the first N test images (default: all).",
    "pgd_steps": "Evaluation PGD steps (50).",
    "pgd_restarts": "Evaluation PGD random restarts (5).",
    "aa_steps": "AutoAttack APGD/FAB iterations (100 = reference).",
    "aa_queries": "AutoAttack Square queries (5000 = reference).",
    "aa_targets": "AutoAttack APGD-T/FAB-T target classes (9 = reference).",
    "aa_images": "AutoAttack on the first N of the PGD-evaluated images (default: all of them); "
                 "its AA ≤ PGD check compares the same images.",
    "mask_images": "Masking check's ε sweep: the first N of the evaluated images.",
    "aa_points": "Which points AutoAttack evaluates: all; best (each row's best budget by PGD); "
                 "frontier (those and the Pareto frontier's); none. best and frontier also "
                 "take the longest budget's paper-setting rows.",
    "test_each_epoch": "Every training row also measures the test split each epoch (train "
                       "--test-each-epoch: the held-out curves of `aft-fast analyze curves`).",
    "eval_batch_size": "Evaluation batch size.",
    "train_only": "Train every row and stop; the same command without it evaluates them later "
                  "(finished runs are reused).",
    "report_only": "Write the table from the rows already trained and evaluated (others are "
                   "listed as not finished); train and evaluate nothing.",
    "quiet": "Print nothing but errors.",
}


NOT_RECORDED = ("train_only", "report_only", "quiet")  # how to run it, not what it computes


class Listing(click.ParamType):
    """A list written as '0,1' or '0 1' (a YAML list from --config too)."""

    name = "list"

    def __init__(self, item):
        self.item = item

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            items = list(value)
        else:
            items = [v for v in str(value).replace(",", " ").split() if v]
        try:
            return tuple(self.item(v) for v in items)
        except ValueError:
            self.fail(f"expected a comma-separated list of {self.item.__name__}, got {value!r}",
                      param, ctx)


@click.command("compare")
@config_option
@options_from_dataclass(CompareOptions, help={**HELP, **FAST_PATH_HELP},
                        types={"eps": FRACTION, "seeds": Listing(int), "methods": Listing(str),
                               "epochs": Listing(int), "aa_points": click.Choice(AA_POINTS),
                               **FAST_PATH_TYPES}, flag_values=FAST_PATH_FLAGS)
@reports_library_errors
def compare_command(**kwargs):
    """Train and evaluate every method the same way; write the paper's Table 1 and a cost plot."""
    from aft_fast.compare.runner import compare

    for name, item in (("seeds", int), ("methods", str), ("epochs", int)):
        if isinstance(kwargs[name], str):  # defaults arrive as their text form
            kwargs[name] = Listing(item).convert(kwargs[name], None, None)
    compare(CompareOptions(**kwargs), command=_command_line(click.get_current_context()))


def _command_line(ctx: click.Context) -> str:
    """The command as typed, rebuilt from the options given (on the command line or by a
    --config file), so the table names the command that reproduces it whoever called it."""
    from click.core import ParameterSource

    parts = ["aft-fast", "compare"]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if (param.name in NOT_RECORDED or param.name not in ctx.params
                or source not in (ParameterSource.COMMANDLINE, ParameterSource.DEFAULT_MAP)):
            continue
        value, flag = ctx.params[param.name], param.opts[0]
        if getattr(param, "is_flag", False):
            if value:
                parts.append(flag)
            continue
        if isinstance(value, tuple):
            value = ",".join(map(str, value))
        elif param.type is FRACTION:
            value = show_pixels(value)
        parts += [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)
