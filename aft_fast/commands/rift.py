"""``aft-fast rift``: RiFT on an adversarially trained checkpoint. Without a step name it runs
all three steps (mrc, finetune, interpolate) into --out; ``aft-fast rift mrc|finetune|interpolate``
runs one. Every field of `RiftOptions` is a flag; ``--config`` YAML fills them (one file serves
every step: a step accepts the others' options without using them, and lists only its own)."""
from __future__ import annotations

import warnings

import click

from aft_fast.commands.common import (FAST_PATH_FLAGS, FAST_PATH_HELP, FAST_PATH_TYPES, FRACTION,
                                      config_option, options_from_dataclass,
                                      reports_library_errors)
from aft_fast.policy import BN_STATS, LOADERS
from aft_fast.rift.options import RiftOptions

HELP = {
    "checkpoint": "The adversarially trained model: an aft_fast checkpoint (best.pt of a run).",
    "data": "The data the model was trained on: mnist5k, synthetic or an ImageNet-style folder.",
    "out": "Output folder: mrc.json/png, finetune/, interpolation.json, alpha.png, rift.pt, "
           "summary.md.",
    "eps": "l∞ radius of the attacks (default: the ε the checkpoint was trained at; 8/255 ok).",
    "device": "auto, cpu, cuda or cuda:N.",
    "seed": "Seeds the fine-tune and the attacks' random starts.",
    "batch_size": "Fine-tuning batch size.",
    "eval_batch_size": "Batch size of the attacks and evaluations.",
    "image_size": "Image side (default: the checkpoint's input size).",
    "loader": "pytorch or dali (image folders).",
    "workers": "Loader worker processes (image folders).",
    "overwrite": "Replace this step's earlier outputs in --out.",
    "trust_code": "The checkpoint's model is built by importing code it names (an import-path "
                  "arch): import it.",
    "quiet": "Print only errors.",
    "rho": "MRC: the weight perturbation's radius, relative: ‖Δw‖_F ≤ rho·‖w‖_F.",
    "mrc_examples": "MRC: number of training examples (the first of the training split) made "
                    "adversarial once.",
    "mrc_steps": "MRC: gradient-ascent steps on each module's weight (projected every step).",
    "mrc_batch_size": "MRC: examples per forward/backward chunk (memory only; the ascent uses "
                      "the whole set's gradient).",
    "attack_steps": "MRC: PGD steps of the fixed adversarial examples.",
    "activation_cache": "MRC: compute the values entering each module once and run only the "
                        "network from it on (off: the whole network at every step).",
    "module": "Fine-tune this module (e.g. layer4.1.conv2; default: the least critical of "
              "--out's mrc.json).",
    "epochs": "Fine-tuning epochs (the LR drops ×0.1 at half).",
    "lr": "Fine-tuning SGD learning rate.",
    "momentum": "Fine-tuning SGD momentum.",
    "weight_decay": "Fine-tuning weight decay (of the trained module).",
    "bn_stats": "BatchNorm running statistics while fine-tuning: frozen (eval mode: only the "
                "module changes) or train (they drift, as in the reference code).",
    "finetuned": "Interpolate toward this checkpoint (default: --out's finetune/best.pt).",
    "alphas": "Interpolation factors to try, comma-separated (0 = AT, 1 = fine-tuned); the AT "
              "model (0) is always scored.",
    "tolerance": "Keep the most accurate α whose val robust accuracy is at least AT's minus this "
                 "fraction (0.005 = 0.5 points).",
    "val_images": "Score each α on the first N val images only (rounded up to whole batches; "
                  "default: all).",
    "eval_steps": "PGD steps of the validation attack that scores each α.",
}
STEP_OPTIONS = {
    "mrc": ("rho", "mrc_examples", "mrc_steps", "mrc_batch_size", "attack_steps",
            "activation_cache"),
    "finetune": ("module", "epochs", "lr", "momentum", "weight_decay", "bn_stats", "amp",
                 "channels_last"),
    "interpolate": ("finetuned", "alphas", "tolerance", "val_images", "eval_steps"),
}
SHARED = ("checkpoint", "data", "out", "eps", "device", "seed", "batch_size", "eval_batch_size",
          "image_size", "loader", "workers", "overwrite", "trust_code", "quiet")


class AlphaGrid(click.ParamType):
    """Comma-separated numbers (a list from --config too)."""

    name = "a,b,..."

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            items = list(value)
        else:
            items = [v for v in str(value).replace(" ", "").split(",") if v]
        try:
            return tuple(float(v) for v in items)
        except (TypeError, ValueError):
            self.fail(f"expected numbers separated by commas like 0,0.5,1; got {value!r}",
                      param, ctx)


def rift_options(fn):
    """Every RiftOptions field as a flag."""
    return options_from_dataclass(
        RiftOptions, help={**HELP, **FAST_PATH_HELP},
        choices={"bn_stats": BN_STATS, "loader": LOADERS},
        types={"eps": FRACTION, "alphas": AlphaGrid(), **FAST_PATH_TYPES},
        flag_values=FAST_PATH_FLAGS)(fn)


def _show_only(cmd: click.Command, names: tuple[str, ...]) -> click.Command:
    """Hide from --help the options this step does not use (they stay accepted, so one
    --config file serves every step)."""
    for p in cmd.params:
        if p.name in RiftOptions.names() and p.name not in names:
            p.hidden = True
    return cmd


def _run(step, kwargs: dict):
    def show(message, category, *_args, **_kw):
        click.echo(f"warning: {message}", err=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        return step(RiftOptions(**kwargs))


@click.group("rift", invoke_without_command=True)
@config_option
@rift_options
@click.pass_context
@reports_library_errors
def rift_group(ctx: click.Context, **kwargs):
    """RiFT: fine-tune the least robustness-critical module of an adversarially trained model,
    then interpolate back toward it (α chosen on validation data; test data is never used).

    Without a step: all three steps into --out. `aft-fast rift STEP --help` for one step."""
    if ctx.invoked_subcommand is not None:
        given = [p for p in kwargs if ctx.get_parameter_source(p) ==
                 click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"give the options after the step name "
                                   f"(aft-fast rift {ctx.invoked_subcommand} --"
                                   f"{given[0].replace('_', '-')} ...)")
        return
    from aft_fast.rift import rift

    _run(rift, kwargs)


def _step(name: str, doc: str):
    @click.command(name, help=doc)
    @config_option
    @rift_options
    @reports_library_errors
    def command(**kwargs):
        from aft_fast.rift import pipeline

        _run(getattr(pipeline, f"run_{name}"), kwargs)

    return _show_only(command, SHARED + STEP_OPTIONS[name])


rift_group.add_command(_step("mrc", "Step 1: module robust criticality of every Conv2d/Linear "
                                    "weight → mrc.json (ranked), mrc.png."))
rift_group.add_command(_step("finetune", "Step 2: fine-tune one module (default: the least "
                                         "critical in --out's mrc.json) → finetune/."))
rift_group.add_command(_step("interpolate", "Step 3: score θ(α) on val for each α, save the "
                                            "chosen model → rift.pt, interpolation.json, "
                                            "alpha.png."))
