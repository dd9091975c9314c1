"""What every command shares: ``--config`` YAML defaults, ``--json`` output, ``--device``, flags
made from a dataclass's fields, and the one place library errors become click errors."""
from __future__ import annotations

import dataclasses
import functools
import typing
from pathlib import Path

import click
import yaml

from aft_fast.errors import OptionError
from aft_fast.evaluate import parse_eps
from aft_fast.fast_path import AMP_SETTINGS, CHANNELS_LAST_SETTINGS


def load_config_defaults(ctx: click.Context, _param, path):
    """``--config FILE``: a YAML mapping whose keys (option names, ``-`` or ``_``) become defaults;
    flags given on the command line still win."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise click.BadParameter(f"no such file: {path}", param_hint="--config")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise click.BadParameter(f"{path} is not valid YAML ({_yaml_problem(exc)})",
                                 param_hint="--config") from None
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


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What YAML found wrong and where, on one line."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"{getattr(exc, 'problem', None) or exc}{where}"


config_option = click.option(
    "--config", type=click.Path(dir_okay=False), callback=load_config_defaults, is_eager=True,
    expose_value=False, help="YAML file of option defaults (command-line flags win).")

json_option = click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
                           help="Also write the figures as JSON to this path.")

device_option = click.option("--device", default="auto", show_default=True,
                             help="auto, cpu, cuda or cuda:N.")


class Parsed(click.ParamType):
    """A click type made from `parse(text, option) -> value`, which raises OptionError (its
    message is click's error). Values already of type `ready` (a --config YAML value, a default)
    pass as they are."""

    def __init__(self, name: str, parse, ready: type | tuple = ()):
        self.name, self.parse, self.ready = name, parse, ready

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, self.ready):
            return value
        try:
            return self.parse(value, param.name if param is not None else self.name)
        except OptionError as exc:
            self.fail(exc.message, param, ctx)


def parse_mapping(text: str, option: str) -> dict:
    """A YAML mapping written inline: ``'{every: 2, gamma: 0.5}'``."""
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        parsed = None
    if not isinstance(parsed, dict):
        raise OptionError(option, f"expected a YAML mapping like '{{every: 2, gamma: 0.5}}', got "
                          f"{text!r}")
    return parsed


FRACTION = Parsed("number", parse_eps, float)  # a number, or a fraction as papers write ε: 8/255
YAML_MAPPING = Parsed("mapping", parse_mapping, dict)


def show_fraction(value: float) -> str:
    """A default as a person types it: 8/255 rather than 0.0313725..."""
    k = value * 255
    return f"{round(k)}/255" if value and abs(k - round(k)) < 1e-6 else f"{value:g}"


def _click_type(name: str, kind, choices: dict, types: dict):
    if name in types:
        return types[name]
    if name in choices:
        return click.Choice(list(choices[name]))
    base = [t for t in typing.get_args(kind) if t is not type(None)] or [kind]
    if base[0] is dict:
        return YAML_MAPPING
    return base[0] if base[0] in (int, float, str) else str


class ChoiceOrBool(click.Choice):
    """A choice that also takes true/false as they are: a former boolean flag's value in an old
    --config YAML (the dataclass's check maps it onto a choice)."""

    def convert(self, value, param, ctx):
        return value if isinstance(value, bool) else super().convert(value, param, ctx)


# The fast-path options (aft_fast.fast_path), declared once for every command that trains.
FAST_PATH_HELP = {
    "amp": "Mixed precision of the attack steps and weight updates: auto (bf16 where the device "
           "computes it natively: CUDA capability >= 8.0, CPUs with AVX-512 BF16 or AMX; fp16 + "
           "GradScaler on CUDA 7.x; fp32 elsewhere), none (fp32), bf16 or fp16.",
    "channels_last": "Model and inputs in channels_last memory format: auto (on for networks "
                     "with 2-D convolutions), on (also the bare flag) or off.",
}
FAST_PATH_TYPES = {"amp": click.Choice(AMP_SETTINGS),
                   "channels_last": ChoiceOrBool(CHANNELS_LAST_SETTINGS)}
FAST_PATH_FLAGS = {"channels_last": "on"}  # --channels-last alone: the former flag's meaning


def options_from_dataclass(cls, *, help: dict, choices: dict | None = None,
                           types: dict | None = None, skip: tuple[str, ...] = (),
                           flag_values: dict | None = None):
    """One click option per field of dataclass `cls`, in field order, named after the field
    (``image_size`` → ``--image-size``; a boolean is a flag, ``--x/--no-x`` where it defaults to
    on). `choices` and `types` override a field's click type; `flag_values` gives an option the
    value it takes when named without one (``--channels-last`` = ``--channels-last on``, as the
    former flag); the dataclass's own checks validate the values."""
    flag_values = flag_values or {}
    hints = typing.get_type_hints(cls)

    def decorate(fn):
        for f in reversed(dataclasses.fields(cls)):
            if f.name in skip:
                continue
            flag = "--" + f.name.replace("_", "-")
            if hints[f.name] is bool:  # --x/--no-x only where the default is on
                name = f"{flag}/--no-{flag[2:]}" if f.default else flag
                fn = click.option(name, f.name, is_flag=True, default=f.default,
                                  help=help.get(f.name))(fn)
                continue
            kind = _click_type(f.name, hints[f.name], choices or {}, types or {})
            default = f.default  # a radius shows as typed (8/255); the type converts it back
            if kind is FRACTION and isinstance(default, float):
                default = show_fraction(default)
            bare = {"is_flag": False, "flag_value": flag_values[f.name]} \
                if f.name in flag_values else {}
            fn = click.option(flag, type=kind, default=default, help=help.get(f.name),
                              show_default=f.default is not None, **bare)(fn)
        return fn

    return decorate


def reports_library_errors(fn):
    """A command callback whose library errors come out as click errors (the only place they are
    converted): an OptionError is its flag's bad value; another ValueError, a missing file or an
    occupied path is a usage error; a non-finite loss under --on-nonfinite stop is the run's
    report (exit status 1). Anything else is a bug and keeps its traceback."""
    from aft_fast.train.nonfinite import NonFiniteLoss

    if getattr(fn, "reports_library_errors", False):
        return fn

    @functools.wraps(fn)
    def run(*args, **kwargs):
        ctx = click.get_current_context(silent=True)
        try:
            return fn(*args, **kwargs)
        except OptionError as exc:
            raise click.BadParameter(exc.message, ctx=ctx, param_hint=exc.flag) from exc
        except (ValueError, FileNotFoundError, FileExistsError) as exc:
            raise click.UsageError(str(exc), ctx=ctx) from exc
        except NonFiniteLoss as exc:
            raise click.ClickException(str(exc)) from exc

    run.reports_library_errors = True
    return run


class Group(click.Group):
    """A click group whose every command (and the commands of a group added to it) reports
    library errors as click errors, whoever wrote the command."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        _report_library_errors(cmd)
        super().add_command(cmd, name)


def _report_library_errors(cmd: click.Command) -> None:
    if cmd.callback is not None:
        cmd.callback = reports_library_errors(cmd.callback)
    for sub in getattr(cmd, "commands", {}).values():
        _report_library_errors(sub)
