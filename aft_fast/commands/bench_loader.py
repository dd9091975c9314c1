"""``aft-fast bench-loader``: DALI vs torchvision throughput on one image folder."""
from __future__ import annotations

import click

from aft_fast.commands.common import json_option
from aft_fast.errors import OptionError
from aft_fast.io import write_json
from aft_fast.policy import LOADERS
from aft_fast.runtime import environment, pick_device


@click.command("bench-loader")
@click.option("--data", required=True, type=click.Path(file_okay=False), help="ImageNet-style folder.")
@click.option("--loader", type=click.Choice([*LOADERS, "both"]), default="both", show_default=True)
@click.option("--image-size", type=click.IntRange(min=8), default=224, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed epochs after one warm-up.")
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True,
              help="DALI threads = DataLoader workers.")
@click.option("--device", default="cpu", show_default=True)
@json_option
def bench_loader_command(data, loader, image_size, batch, epochs, threads, device, json_path):
    """Images/s of the training loader(s), median over epochs after a warm-up; with --loader
    both the epochs of the two loaders alternate."""
    from aft_fast.perf.loader_bench import bench_loaders, load_average

    try:
        dev = pick_device(device)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from exc
    names = list(LOADERS) if loader == "both" else [loader]  # pytorch first: the ratio's base
    load_before = load_average()
    try:
        results = bench_loaders(data, names, image_size=image_size, batch_size=batch,
                                epochs=epochs, threads=threads, device=dev)
    except ImportError as exc:
        raise click.BadParameter(str(exc), param_hint="--loader") from exc
    except OptionError as exc:
        raise click.BadParameter(exc.message, param_hint=exc.flag) from exc
    click.echo("| loader | images/epoch | images/s (median) | per epoch |\n|---|---:|---:|---|")
    for r in results:
        per_epoch = ", ".join(f"{v:.0f}" for v in r["per_epoch"])
        click.echo(f"| {r['loader']} | {r['images_per_epoch']} | {r['images_per_second']:.0f} "
                   f"| {per_epoch} |")
    report = {"data": data, "image_size": image_size, "batch": batch, "epochs": epochs,
              "threads": threads, "results": results,
              "load_average": {"before": load_before, "after": load_average()},
              "environment": environment(dev)}
    if len(results) == 2:
        report["dali_over_pytorch"] = results[1]["images_per_second"] / results[0]["images_per_second"]
        click.echo(f"DALI / torchvision: {report['dali_over_pytorch']:.2f}x")
    if json_path:
        write_json(report, json_path)
