"""``aft-fast train``: every field of `TrainOptions` is a flag (its help, choices and check declared
with the field); `--config` YAML fills defaults."""
from __future__ import annotations

import click

from aft_fast.commands.common import (FAST_PATH_FLAGS, FAST_PATH_TYPES, config_option,
                                      json_option, options_from_dataclass)
from aft_fast.io import write_json
from aft_fast.runtime import environment
from aft_fast.train.run import TrainOptions, train


@click.command("train")
@config_option
@options_from_dataclass(TrainOptions, types=FAST_PATH_TYPES, flag_values=FAST_PATH_FLAGS)
@json_option
def train_command(json_path, **kwargs):
    """Train or fine-tune a model with a method (built-in, or your own by import path)."""
    summary = train(TrainOptions(**kwargs).check())
    if json_path:
        write_json({**summary, "environment": environment(summary["config"]["resolved"]["device"])},
                   json_path)
    best = summary["best"]
    click.echo(f"done: {summary['run_dir']} (best {best['metric']} {best['value']:.4f} at epoch "
               f"{best['epoch'] + 1})")
