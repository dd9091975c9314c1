"""The one error type the library raises for a bad user input, and the checks that raise it. It
carries the option it concerns (the `TrainOptions`/CLI field name, e.g. ``"eps"``), so the CLI can
report it as that flag's bad value (`aft_fast.commands` is the only place that turns it into a
click error) and a Python caller can branch on ``exc.option`` instead of parsing the message.
A leaf module (imports nothing from aft_fast)."""
from __future__ import annotations

from typing import Iterable


class OptionError(ValueError):
    """A bad value for option `option`. `message` says what is wrong and how to fix it, without
    naming the flag (the CLI adds ``--option``; a library caller reads `option`)."""

    def __init__(self, option: str, message: str):
        self.option = option.lstrip("-").replace("-", "_")
        self.message = message
        super().__init__(f"{self.flag}: {message}")

    @property
    def flag(self) -> str:
        return "--" + self.option.replace("_", "-")


def check(ok: bool, option: str, message: str) -> None:
    """Raise OptionError(option, message) unless `ok`."""
    if not ok:
        raise OptionError(option, message)


def check_choice(option: str, value, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    check(value in choices, option, f"must be one of {', '.join(choices)}; got {value!r}")


def check_at_least(option: str, value, low, *, strict: bool = False) -> None:
    """value >= low (value > low when `strict`); None passes (the option's default applies).
    NaN fails (every comparison with it is false)."""
    if value is None:
        return
    ok = value > low if strict else value >= low
    check(ok, option, f"must be {'>' if strict else '>='} {low:g}, got {value}")


def check_pixels(option: str, value) -> None:
    """An l∞ radius or step in pixel units of [0, 1] images. A value above 1 is almost always a
    radius on the 0-255 scale: say which fraction was meant."""
    if value is None:
        return
    hint = f"; did you mean {value:g}/255?" if 1 < value <= 255 else ""
    check(0 <= value <= 1, option,
          f"must be in [0, 1] (pixel units of [0, 1] images), got {value:g}{hint}")


def show_pixels(value: float) -> str:
    """A pixel-unit value as a person types it (what `parse_pixels` reads): 8/255 rather than
    0.0313725..."""
    k = value * 255
    return f"{round(k)}/255" if value and abs(k - round(k)) < 1e-6 else f"{value:g}"


def parse_pixels(value, option: str = "eps") -> float:
    """A float, or a fraction written as in papers: "8/255" (OptionError naming `option` else)."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise OptionError(option, f"expected a number or a fraction like 8/255, got {value!r}") \
            from None
