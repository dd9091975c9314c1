"""What every command shares: ``--config`` YAML defaults, ``--json`` output, ``--device``, flags
made from a dataclass's fields, and the one place library errors become click errors."""
from __future__ import annotations

import dataclasses
import functools
import typing
from pathlib import Path

import click
import yaml

from aft_fast.errors import OptionError, parse_pixels, show_pixels
from aft_fast.fast_path import (AMP_HELP, AMP_SETTINGS, CHANNELS_LAST_HELP,
                                CHANNELS_LAST_SETTINGS)


# Where a run goes and whether it replaces or continues one: never taken from a run's args.yaml.
RUN_PLACE = ("out", "overwrite", "resume")


MAX_ALIASES = 20  # a configuration needs few; an alias bomb (billion laughs) needs many


class _FewAliases(yaml.SafeLoader):
    """yaml.safe_load that refuses a document expanding aliases more than MAX_ALIASES times (a
    few hundred bytes whose every repr or message would be gigabytes)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases = getattr(self, "aliases", 0) + 1
            if self.aliases > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases (*name): not a "
                                     "configuration")
        return super().compose_node(parent, index)


def safe_yaml(text: str):
    """yaml.safe_load with the alias limit of `_FewAliases`."""
    loader = _FewAliases(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_config_defaults(ctx: click.Context, _param, path):
    """``--config FILE``: a YAML mapping whose keys (option names, ``-`` or ``_``) become defaults;
    flags given on the command line still win."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise click.BadParameter(f"no such file: {path}", param_hint="--config")
    try:
        data = safe_yaml(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise click.BadParameter(f"{path} is not valid YAML ({_yaml_problem(exc)})",
                                 param_hint="--config") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path} must hold a YAML mapping of option: value",
                                 param_hint="--config")
    if "resolved" in data:  # a run's args.yaml: repeat the run, never replace or continue it
        data.pop("resolved")
        replayed = [k for k in RUN_PLACE if data.pop(k, None) not in (None, False)]
        if replayed:
            click.echo(f"--config {path}: a run's record; its {', '.join(replayed)} not "
                       "replayed (pass --out for the new run)", err=True)
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
        parsed = safe_yaml(text)
    except yaml.YAMLError:
        parsed = None
    if not isinstance(parsed, dict):
        raise OptionError(option, f"expected a YAML mapping like '{{every: 2, gamma: 0.5}}', got "
                          f"{text!r}")
    return parsed


FRACTION = Parsed("number", parse_pixels, float)  # a number, or a fraction as papers write ε: 8/255
YAML_MAPPING = Parsed("mapping", parse_mapping, dict)


def _click_type(name: str, kind, choices: dict, types: dict, meta):
    """A field's click type: given by the command, else from its declaration (`options.option`:
    choices, pixel units), else from its annotation."""
    if name in types:
        return types[name]
    if name in choices:
        return click.Choice(list(choices[name]))
    if meta.get("choices") is not None:  # a former boolean's true/false passes (its check maps it)
        takes_bool = bool in typing.get_args(kind)
        return (ChoiceOrBool if takes_bool else click.Choice)(list(meta["choices"]))
    if meta.get("pixels"):
        return FRACTION
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
FAST_PATH_HELP = {"amp": AMP_HELP, "channels_last": CHANNELS_LAST_HELP}
FAST_PATH_TYPES = {"amp": click.Choice(AMP_SETTINGS),
                   "channels_last": ChoiceOrBool(CHANNELS_LAST_SETTINGS)}
FAST_PATH_FLAGS = {"channels_last": "on"}  # --channels-last alone: the former flag's meaning


def options_from_dataclass(cls, *, help: dict | None = None, choices: dict | None = None,
                           types: dict | None = None, skip: tuple[str, ...] = (),
                           flag_values: dict | None = None):
    """One click option per field of dataclass `cls`, in field order, named after the field
    (``image_size`` → ``--image-size``; a boolean is a flag, ``--x/--no-x`` where it defaults to
    on). A field declared with `aft_fast.options.option` brings its help, choices and pixel type;
    `help`, `choices` and `types` give them for plain fields (or override); `flag_values` gives an
    option the value it takes when named without one (``--channels-last`` = ``--channels-last
    on``, as the former flag); the dataclass's own checks validate the values."""
    flag_values = flag_values or {}
    hints = typing.get_type_hints(cls)
    help = help or {}

    def decorate(fn):
        for f in reversed(dataclasses.fields(cls)):
            if f.name in skip:
                continue
            flag = "--" + f.name.replace("_", "-")
            if hints[f.name] is bool:  # --x/--no-x only where the default is on
                name = f"{flag}/--no-{flag[2:]}" if f.default else flag
                fn = click.option(name, f.name, is_flag=True, default=f.default,
                                  help=help.get(f.name, f.metadata.get("help")))(fn)
                continue
            kind = _click_type(f.name, hints[f.name], choices or {}, types or {}, f.metadata)
            default = f.default  # a radius shows as typed (8/255); the type converts it back
            if kind is FRACTION and isinstance(default, float):
                default = show_pixels(default)
            bare = {"is_flag": False, "flag_value": flag_values[f.name]} \
                if f.name in flag_values else {}
            fn = click.option(flag, type=kind, default=default,
                              help=help.get(f.name, f.metadata.get("help")),
                              show_default=f.default is not None, **bare)(fn)
        return fn

    return decorate


def reports_library_errors(fn):
    """A command callback whose library errors come out as click errors (the only place they are
    converted): an OptionError is its flag's bad value; another ValueError, a missing file or an
    occupied path is a usage error; a non-finite loss under --on-nonfinite stop is the run's
    report (exit status 1), and so are a full disk (one line: which file, the old one intact) and an
    image file that fails to decode mid-run.
    Anything else is a bug and keeps its traceback."""
    from aft_fast.data.decode import UnreadableImage
    from aft_fast.io import DiskFull
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
        except (NonFiniteLoss, DiskFull, UnreadableImage) as exc:
            raise click.ClickException(str(exc)) from exc
        except (ValueError, FileNotFoundError, FileExistsError) as exc:
            raise click.UsageError(str(exc), ctx=ctx) from exc

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
