"""``aft-fast methods``: the training methods (and the comparison's RiFT row), each with its
reference, where it starts, its own options and its cost rule, all read from the method modules;
and how to bring your own."""
from __future__ import annotations

import click

from aft_fast.commands.common import json_option
from aft_fast.io import write_json

EXAMPLE_STEPS = 7  # the k at which the cost column is shown (compare's default)


def method_rows(names=None) -> list[dict]:
    from aft_fast.compare.recipes import ROWS, row_class
    from aft_fast.methods import Method

    rows = []
    for cls in [row_class(n) for n in names] if names else ROWS:
        m = cls(eps=0.1, steps=EXAMPLE_STEPS)
        rows.append({"name": cls.name, "label": cls.label, "reference": cls.reference,
                     "adversarial": cls.adversarial, "train": cls.trains, "parent": cls.parent,
                     "defaults": {"optimizer": cls.optimizer, "lr": cls.lr,
                                  "schedule": cls.schedule, "epochs": cls.epochs,
                                  "bn_mode": cls.bn_mode},
                     "options": [{"name": o.name, "default": o.default, "help": o.help}
                                 for o in cls.options],
                     "passes_per_epoch": m.passes_per_epoch(),
                     "extra_passes": cls.extra_passes is not Method.extra_passes})
    return rows


@click.command("methods")
@click.argument("names", nargs=-1)
@json_option
def methods_command(names, json_path):
    """List the methods --method (and compare --methods) accept; NAMES may be import paths."""
    for r in method_rows(names):
        start = f"fine-tunes the {r['parent']} model" if r["parent"] else "from scratch"
        how = "" if r["train"] else " (compare row only: its own pipeline)"
        d = r["defaults"]
        click.echo(f"{r['name']}  {r['label']}{how}: {r['reference']}")
        defaults = (f"; train defaults: {d['optimizer']} lr {d['lr']:g}, {d['schedule']}, "
                    f"{d['epochs']} epochs" if r["train"] else "")
        attack = f", attack BatchNorm {d['bn_mode']}" if r["adversarial"] and r["train"] else ""
        click.echo(f"    {start}{defaults}{attack}")
        cost = f"{r['passes_per_epoch']:g}" + (" + its searches" if r["extra_passes"] else "")
        click.echo(f"    cost: {cost} forward/backward passes per image per epoch "
                   f"(at k = {EXAMPLE_STEPS} attack steps)")
        for o in r["options"]:
            click.echo(f"    --{o['name'].replace('_', '-')} (default {o['default']}): {o['help']}")
    if not names:
        click.echo("your own: --method package.module:Class, a subclass of aft_fast.methods.Method "
                   "(docs/METHODS.md)")
    if json_path:
        write_json({"methods": method_rows(names)}, json_path)
