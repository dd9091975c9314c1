"""An option declared once: `option(default, help, choices=..., pixels=..., low=...)` is a
dataclass field whose metadata carries its help text, its choices and its check. The CLI makes
its flag from it (`commands.common.options_from_dataclass`: the help, a click.Choice, the 8/255
parser for pixel values), `check_declared(obj)` applies its check, `--config` YAML and a run's
`args.yaml` use its name. A leaf module (imports only errors)."""
from __future__ import annotations

from dataclasses import field, fields

from aft_fast.errors import check_at_least, check_choice, check_pixels


def option(default, help: str, *, choices: tuple | None = None, pixels: bool = False,
           low: float | None = None, strict: bool = False):
    """A field with its help, its choices (None passes: "the method's default"), whether it is
    a radius or step in pixel units of [0, 1] images (8/255 accepted), and its lower bound
    (`strict`: above it)."""
    return field(default=default, metadata={"help": help, "choices": choices, "pixels": pixels,
                                            "low": low, "strict": strict})


def check_declared(obj) -> None:
    """Every declared check of `obj`'s fields (OptionError naming the first that fails)."""
    for f in fields(obj):
        meta, value = f.metadata, getattr(obj, f.name)
        if value is None or not meta:
            continue
        if meta.get("choices") is not None:
            check_choice(f.name, value, meta["choices"])
        if meta.get("pixels"):
            check_pixels(f.name, value)
        if meta.get("low") is not None:
            check_at_least(f.name, value, meta["low"], strict=meta.get("strict", False))
