"""The one error type the library raises for a bad user input. It carries the option it concerns
(the `TrainOptions`/CLI field name, e.g. ``"eps"``), so the CLI can report it as that flag's bad
value (`aft_fast.commands` is the only place that turns it into a click error) and a Python caller
can branch on ``exc.option`` instead of parsing the message."""
from __future__ import annotations


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
