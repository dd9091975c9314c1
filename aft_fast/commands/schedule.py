"""``aft-fast schedule``: print or plot any learning-rate schedule."""
from __future__ import annotations

import click

from aft_fast.commands.common import YAML_MAPPING, json_option
from aft_fast.errors import OptionError
from aft_fast.io import write_json
from aft_fast.runtime import environment
from aft_fast.train.plots import plot_schedule
from aft_fast.train.schedules import SCHEDULES, make_schedule


@click.command("schedule")
@click.argument("name", type=click.Choice(list(SCHEDULES)))
@click.option("--epochs", type=float, default=10, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--params", type=YAML_MAPPING, default="{}",
              help="YAML mapping of parameters, e.g. '{every: 2, gamma: 0.5}'.")
@click.option("--points", type=click.IntRange(min=2), default=11, show_default=True,
              help="Rows printed (first and last epoch included).")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write a PNG.")
@json_option
def schedule_command(name, epochs, lr, params, points, plot, json_path):
    """Show a learning-rate schedule (slow-start-fast-decay is AFT's)."""
    try:
        sched = make_schedule(name, lr, epochs, **params)
    except OptionError as exc:  # the library names train's flag; here it is --params
        if exc.option != "schedule_params":
            raise
        raise OptionError("params", exc.message) from None
    rows = [(epochs * i / (points - 1), sched(epochs * i / (points - 1))) for i in range(points)]
    for t, v in rows:
        click.echo(f"epoch {t:7.3f}  lr {v:.6g}")
    if plot:
        plot_schedule(sched, plot)
    if json_path:
        write_json({"schedule": sched.state_dict(), "points": rows,
                    "environment": environment("cpu")}, json_path)
