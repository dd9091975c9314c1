"""``aft-fast robustify``: train's flags for the model, data and attack (minus what robustify
chooses: LR, BatchNorm handling, epochs), plus robustify's own (`RobustifyOptions`)."""
from __future__ import annotations

import shlex
import sys

import click

from aft_fast.commands.common import (FAST_PATH_FLAGS, FAST_PATH_TYPES, config_option,
                                      options_from_dataclass)
from aft_fast.errors import OptionError
from aft_fast.robustify.options import CHOSEN, RobustifyOptions
from aft_fast.train.options import TrainOptions

OWN = {f for f in RobustifyOptions.__dataclass_fields__}


@click.command("robustify")
@config_option
@options_from_dataclass(TrainOptions, types=FAST_PATH_TYPES, flag_values=FAST_PATH_FLAGS,
                        skip=CHOSEN)
@options_from_dataclass(RobustifyOptions)
@click.pass_context
def robustify_command(ctx: click.Context, **kwargs):
    """Make a pretrained classifier robust: measure it, choose the recipe from short probes on
    held-out training data, fine-tune (AFT by default), evaluate (PGD-50, AutoAttack, masking
    checks), write report.md/.html and the exported model with its card into --out."""
    from aft_fast.robustify import robustify

    if ctx.get_parameter_source("eps") == click.core.ParameterSource.DEFAULT:
        raise OptionError("eps", "is required: the l∞ radius to make the model robust at, "
                          "e.g. --eps 2/255")
    own = {k: kwargs.pop(k) for k in OWN}
    robustify(TrainOptions(**kwargs), RobustifyOptions(**own),
              command=shlex.join(["aft-fast", *sys.argv[1:]]))
