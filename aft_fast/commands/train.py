"""``aft-fast train``: every field of `TrainOptions` is a flag; `--config` YAML fills defaults."""
from __future__ import annotations

import dataclasses
import re
import typing

import click
import yaml

from aft_fast.commands.common import FRACTION, config_option, json_option
from aft_fast.io import write_json
from aft_fast.runtime import environment
from aft_fast.train.methods import METHODS
from aft_fast.train.run import TrainOptions, train
from aft_fast.train.schedules import SCHEDULES

HELP = {
    "method": "Training method.",
    "arch": "Model architecture (torchvision name, preact_resnet18, wrn28_10, wrn34_10, small_cnn).",
    "data": "mnist5k, synthetic, or an ImageNet-style folder (train/<class>/*, val/<class>/*).",
    "out": "Run directory (args.yaml, metrics.jsonl, summary.csv, last.pt, best.pt, plots).",
    "weights": "Local weights to start from: torchvision state_dict or aft_fast checkpoint.",
    "replace_head": "Re-initialise the classifier when --weights has another class count.",
    "allow_scratch": "Let aft run without --weights (fine-tuning random weights).",
    "epochs": "Passes over the training data (default: the method's; Free AT's default is "
              "divided by --replays, as each batch is replayed m times).",
    "lr": "Peak/base learning rate (default: the method's).",
    "optimizer": "sgd or adam (default: the method's).",
    "schedule": f"LR schedule: {', '.join(SCHEDULES)} (default: the method's).",
    "schedule_params": "YAML mapping of schedule parameters, e.g. '{every: 2, gamma: 0.5}'.",
    "eps": "l∞ radius in pixel units of [0,1] images; fractions like 8/255 accepted.",
    "alpha": "Attack step size (default: 2.5·eps/steps; Fast AT 1.25·eps; Free AT eps).",
    "steps": "PGD steps of the training attack.",
    "replays": "Free AT: replays per batch (m).",
    "eval_steps": "PGD steps of the per-epoch validation attack.",
    "eval_max_batches": "Evaluate at most this many batches per epoch (faster).",
    "amp": "Mixed precision: none, bf16 or fp16.",
    "bn_mode": "BatchNorm mode during the training attack: eval or train.",
    "channels_last": "Model and inputs in channels_last memory format.",
    "compile": "torch.compile the weight update and the attack's forward + input backward.",
    "loader": "pytorch or dali (image folders).",
    "image_size": "Image side: folders' train crop / val centre crop (default 224), synthetic data's "
                  "side (default 32); mnist5k is always 28.",
    "check_files": "Check image files' first/last bytes before training (refuses corrupt folders).",
    "co_guard": "Fast AT: stop and roll back when PGD accuracy collapses (catastrophic overfitting).",
    "resume": "Continue the run in --out from last.pt, exactly.",
    "overwrite": "Replace a run already in --out.",
}
CHOICES = {"method": list(METHODS), "amp": ["none", "bf16", "fp16"], "bn_mode": ["eval", "train"],
           "optimizer": ["sgd", "adam"], "schedule": list(SCHEDULES), "loader": ["pytorch", "dali"]}


def _click_type(field: dataclasses.Field):
    if field.name in CHOICES:
        return click.Choice(CHOICES[field.name])
    if field.name in ("eps", "alpha"):
        return FRACTION
    base = [t for t in typing.get_args(field.type) if t is not type(None)] or [field.type]
    return {"int": int, "float": float, "str": str, "bool": bool, "dict": str}.get(
        getattr(base[0], "__name__", str(base[0])).split("|")[0].strip(), str)


def options_from_dataclass(cls):
    """One click option per dataclass field, in field order (booleans become flags)."""
    hints = typing.get_type_hints(cls)

    def decorate(fn):
        for f in reversed(dataclasses.fields(cls)):
            f.type = hints[f.name]
            flag = "--" + f.name.replace("_", "-")
            if f.type is bool:
                name = f"{flag}/--no-{flag[2:]}" if f.default else flag
                fn = click.option(name, f.name, is_flag=True, default=f.default,
                                  help=HELP.get(f.name))(fn)
            else:
                fn = click.option(flag, type=_click_type(f), default=f.default,
                                  help=HELP.get(f.name), show_default=f.default is not None)(fn)
        return fn

    return decorate


def _as_click_error(message: str) -> click.ClickException:
    """The library's errors start with the option they are about ("--eps must be >= 0"):
    report them as that option's bad value, the rest as usage errors."""
    match = re.match(r"(--[a-z][a-z-]*)\b", message)
    if match and match.group(1)[2:].replace("-", "_") in TrainOptions.names():
        return click.BadParameter(message[match.end():].lstrip(" :") or message,
                                  param_hint=match.group(1))
    return click.UsageError(message)


@click.command("train")
@config_option
@options_from_dataclass(TrainOptions)
@json_option
def train_command(json_path, **kwargs):
    """Train or fine-tune a model (natural, PGD AT, Free AT, Fast AT, AFT)."""
    if isinstance(kwargs.get("schedule_params"), str):
        params = yaml.safe_load(kwargs["schedule_params"])
        if not isinstance(params, dict):
            raise click.BadParameter("expected a YAML mapping like '{every: 2, gamma: 0.5}'",
                                     param_hint="--schedule-params")
        kwargs["schedule_params"] = params
    try:
        summary = train(TrainOptions(**kwargs))
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        raise _as_click_error(str(exc)) from exc
    if json_path:
        write_json({**summary, "environment": environment(summary["config"]["resolved"]["device"])},
                   json_path)
    best = summary["best"]
    click.echo(f"done: {summary['run_dir']} (best {best['metric']} {best['value']:.4f} at epoch "
               f"{best['epoch'] + 1})")
