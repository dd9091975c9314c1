"""Options every command shares: ``--config`` YAML defaults, ``--json`` output, ``--device``."""
from __future__ import annotations

from pathlib import Path

import click
import yaml


def load_config_defaults(ctx: click.Context, _param, path):
    """``--config FILE``: a YAML mapping whose keys (option names, ``-`` or ``_``) become defaults;
    flags given on the command line still win."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise click.BadParameter(f"no such file: {path}", param_hint="--config")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path} must hold a YAML mapping of option: value",
                                 param_hint="--config")
    data.pop("resolved", None)  # what a run's args.yaml records as resolved, not an option
    known = {prm.name for prm in ctx.command.params}
    unknown = sorted(k for k in data if k.replace("-", "_") not in known)
    if unknown:
        raise click.BadParameter(f"{path}: unknown option(s) {', '.join(unknown)}",
                                 param_hint="--config")
    ctx.default_map = {**(ctx.default_map or {}), **{k.replace("-", "_"): v for k, v in data.items()}}
    return path


config_option = click.option(
    "--config", type=click.Path(dir_okay=False), callback=load_config_defaults, is_eager=True,
    expose_value=False, help="YAML file of option defaults (command-line flags win).")

json_option = click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
                           help="Also write the figures as JSON to this path.")

device_option = click.option("--device", default="auto", show_default=True,
                             help="auto, cpu, cuda or cuda:N.")


class Fraction(click.ParamType):
    """A number, or a fraction as papers write ε: ``8/255``."""

    name = "number"

    def convert(self, value, param, ctx):
        from aft_fast.evaluate import parse_eps

        if value is None or isinstance(value, float):
            return value
        try:
            return parse_eps(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


FRACTION = Fraction()
