"""``aft-fast data``: make a JPEG folder from bundled data; scan a folder for unreadable files."""
from __future__ import annotations

import click

from aft_fast.commands.common import json_option
from aft_fast.errors import OptionError
from aft_fast.io import write_json, write_text


@click.group("data")
def data_group():
    """Image folders: create one from bundled data, check one before training."""


@data_group.command("make-folder")
@click.option("--from", "source", default="mnist5k", show_default=True,
              help="mnist5k or fashion-mnist.")
@click.option("--size", type=int, default=64, show_default=True, help="Image side in pixels.")
@click.option("--per-class", type=int, default=None, help="At most N images per class and split.")
@click.option("--out", required=True, type=click.Path(file_okay=False))
def make_folder_command(source, size, per_class, out):
    """Write OUT/train/<class>/*.jpg and OUT/val/<class>/*.jpg."""
    from aft_fast.data.make_folder import make_folder

    try:
        counts = make_folder(out, source=source, size=size, per_class=per_class)
    except OptionError as exc:
        raise click.BadParameter(exc.message, param_hint=exc.flag) from exc
    click.echo(f"wrote {counts['train']} train and {counts['val']} val images to {out}")


@data_group.command("scan")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--quarantine-list", type=click.Path(dir_okay=False), default=None,
              help="Write the bad files' paths, one per line.")
@json_option
def scan_command(folder, quarantine_list, json_path):
    """Decode every image under FOLDER; list the unreadable ones (exit 1 if any)."""
    from aft_fast.data.scan import scan_folder

    try:
        n, bad = scan_folder(folder)
    except FileNotFoundError as exc:
        raise click.UsageError(str(exc)) from exc
    for path, err in bad:
        click.echo(f"BAD {path}: {err}")
    click.echo(f"{n} files checked, {len(bad)} unreadable")
    if quarantine_list:
        write_text("".join(p + "\n" for p, _ in bad), quarantine_list)
    if json_path:
        write_json({"checked": n, "bad": [{"path": p, "error": e} for p, e in bad]}, json_path)
    if bad:
        raise SystemExit(1)
