"""``aft-fast eval``: clean and robust accuracy of a checkpoint (PGD with restarts, AutoAttack)."""
from __future__ import annotations

import os

import click

from aft_fast.commands.common import FRACTION, config_option, device_option, json_option
from aft_fast.errors import OptionError, check, check_at_least
from aft_fast.evaluate import attack_settings, evaluate
from aft_fast.io import write_json
from aft_fast.policy import AUTOATTACK_REFERENCE, EVAL_ATTACKS
from aft_fast.train.checkpoint import data_settings, load_checkpoint, read_checkpoint


@click.command("eval")
@config_option
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False),
              help="An aft_fast checkpoint (last.pt / best.pt of a run).")
@click.option("--data", default="mnist5k", show_default=True,
              help="mnist5k, fashion-mnist, synthetic or an ImageNet-style folder.")
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True)
@click.option("--attack", type=click.Choice(EVAL_ATTACKS), default="pgd", show_default=True)
@click.option("--eps", type=FRACTION, required=True, help="l∞ radius in [0,1] pixel units (8/255 ok).")
@click.option("--alpha", type=FRACTION, default=None, help="PGD step (default 2.5·eps/steps).")
@click.option("--steps", type=int, default=20, show_default=True, help="PGD steps.")
@click.option("--restarts", type=int, default=1, show_default=True,
              help="PGD random restarts (worst case per example).")
@click.option("--aa-steps", type=int, default=AUTOATTACK_REFERENCE["steps"], show_default=True,
              help="AutoAttack APGD/FAB iterations (the default is the reference; lower only for "
                   "quick checks).")
@click.option("--aa-queries", type=int, default=AUTOATTACK_REFERENCE["queries"], show_default=True,
              help="AutoAttack Square queries (the default is the reference).")
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--max-batches", type=int, default=None, help="Evaluate only the first N batches.")
@click.option("--image-size", type=int, default=None, help="Image folders: resize to this size.")
@click.option("--class-map", default=None,
              help="Image folders: folder classes -> the model's output indices (a JSON {class: "
                   "index} file, a class-list file or a packaged map: imagenette). Default: the "
                   "map the checkpoint was trained with, if any.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the random starts.")
@click.option("--raw-weights", is_flag=True,
              help="Evaluate the trained weights of a run that kept a weight average (train "
                   "--ema), instead of the average (the default).")
@click.option("--trust-code", is_flag=True, help="Import the code a checkpoint names to build its "
              "model (an arch package.module:factory): only for a file and code you trust.")
@device_option
@json_option
def eval_command(checkpoint, data, split, attack, eps, alpha, steps, restarts, aa_steps, aa_queries,
                 batch_size, max_batches, image_size, class_map, seed, raw_weights, trust_code, device,
                 json_path):
    """Clean and robust accuracy (per-example worst case over restarts), as a table and JSON."""
    from aft_fast.data import make_loaders
    from aft_fast.runtime import pick_device

    attack_kw = dict(eps=eps, alpha=alpha, steps=steps, restarts=restarts, max_batches=max_batches,
                     autoattack_steps=aa_steps, autoattack_queries=aa_queries)
    attack_settings(attack, **attack_kw)  # bad options fail before anything is loaded
    check_at_least("batch_size", batch_size, 1)
    dev = pick_device(device)
    try:
        ckpt = read_checkpoint(checkpoint)
        model = load_checkpoint(checkpoint, dev, trust_code=trust_code, raw=raw_weights)
    except OptionError:
        raise
    except (ValueError, FileNotFoundError) as exc:  # whatever the file is, --checkpoint is wrong
        raise OptionError("checkpoint", str(exc)) from exc
    loaders = make_loaders(data, batch_size=batch_size, device=dev, seed=seed,
                           image_size=image_size or ckpt.get("input_size"),
                           **folder_settings(ckpt, data, class_map))
    check(loaders.spec.channels == ckpt["in_channels"], "data",
          f"{data} has {loaders.spec.channels}-channel images, the checkpoint's model takes "
          f"{ckpt['in_channels']}")
    check(loaders.spec.num_classes == ckpt["num_classes"], "data",
          f"{data} has {loaders.spec.num_classes} classes, the checkpoint {ckpt['num_classes']}")
    try:
        result = evaluate(model, getattr(loaders, split), attack=attack, seed=seed, **attack_kw)
    except ImportError as exc:  # torchattacks missing: the message says what to install
        raise click.ClickException(str(exc)) from exc
    report = {"checkpoint": checkpoint, "arch": ckpt["arch"], "data": data, "split": split,
              "weights": "average" if ckpt.get("ema") and not raw_weights else "trained",
              **result}
    click.echo(table(report))
    if json_path:
        write_json(report, json_path)
        click.echo(f"wrote {json_path}")


def folder_settings(ckpt: dict, data: str, class_map: str | None) -> dict:
    """A folder is read as the checkpoint's run read it (its class map and augmentation preset,
    which decides the evaluation resize); `--class-map` replaces the recorded map."""
    settings = data_settings(ckpt, keys=("class_map", "augment")) if os.path.isdir(data) else {}
    if class_map is not None:
        settings["class_map"] = class_map
    return settings


def table(report: dict) -> str:
    """A markdown table of one evaluation."""
    s = report["settings"]
    if report["attack"] == "pgd":
        what = f"PGD-{s['steps']}, {s['restarts']} restart(s), eps {s['eps']:.4g}, alpha {s['alpha']:.4g}"
    elif report["attack"] == "autoattack":
        what = f"AutoAttack, eps {s['eps']:.4g}" + ("" if s["reference_settings"] else
                                                     f" (reduced: {s['apgd_steps']} it, "
                                                     f"{s['square_queries']} queries)")
    else:
        what = "none"
    rob = "-" if report["robust_acc"] is None else f"{100 * report['robust_acc']:.2f}%"
    return (f"| checkpoint | weights | split | n | clean | robust | attack | seconds |\n"
            f"|---|---|---|---:|---:|---:|---|---:|\n"
            f"| {report['checkpoint']} | {report['weights']} | {report['split']} | {report['n']} | "
            f"{100 * report['clean_acc']:.2f}% | {rob} | {what} | {report['seconds']:.1f} |")
