"""``aft-fast eval``: clean and robust accuracy of a checkpoint (PGD with restarts, AutoAttack)."""
from __future__ import annotations

import click
import torch

from aft_fast.attacks import AttackConfig
from aft_fast.commands.common import FRACTION, device_option, json_option
from aft_fast.data import make_loaders
from aft_fast.evaluate import ATTACKS, accuracy
from aft_fast.io import write_json
from aft_fast.runtime import environment, pick_device
from aft_fast.train.checkpoint import load_checkpoint, read_checkpoint


@click.command("eval")
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False), help="An aft_fast checkpoint.")
@click.option("--data", default="mnist5k", show_default=True, help="mnist5k, synthetic or a folder.")
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True)
@click.option("--attack", type=click.Choice(ATTACKS), default="pgd", show_default=True)
@click.option("--eps", type=FRACTION, required=True, help="l∞ radius in [0,1] pixel units (8/255 ok).")
@click.option("--alpha", type=FRACTION, default=None, help="PGD step (default 2.5·eps/steps).")
@click.option("--steps", type=int, default=20, show_default=True)
@click.option("--restarts", type=int, default=1, show_default=True)
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--max-batches", type=int, default=None, help="Evaluate only the first N batches.")
@click.option("--image-size", type=int, default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@device_option
@json_option
def eval_command(checkpoint, data, split, attack, eps, alpha, steps, restarts, batch_size,
                 max_batches, image_size, seed, device, json_path):
    """Clean and robust accuracy (per-example worst case over restarts), as a table and JSON."""
    try:
        dev = pick_device(device)
        ckpt = read_checkpoint(checkpoint)
        model = load_checkpoint(checkpoint, dev)
        loaders = make_loaders(data, batch_size=batch_size, device=dev,
                               image_size=image_size or ckpt.get("input_size"), seed=seed)
        if loaders.spec.num_classes != ckpt["num_classes"]:
            raise ValueError(f"--data {data} has {loaders.spec.num_classes} classes, the checkpoint "
                             f"{ckpt['num_classes']}")
        cfg = AttackConfig(eps, alpha if alpha is not None else 2.5 * eps / max(steps, 1), steps,
                           restarts=restarts)
    except (ValueError, FileNotFoundError) as exc:
        raise click.UsageError(str(exc)) from exc
    result = accuracy(model, getattr(loaders, split), attack=attack, cfg=cfg,
                      max_batches=max_batches, generator=torch.Generator().manual_seed(seed))
    report = {"checkpoint": checkpoint, "data": data, "split": split, "attack": attack,
              "settings": {"eps": eps, "alpha": cfg.alpha, "steps": steps, "restarts": restarts},
              **result, "environment": environment(dev)}
    rob = "-" if result["robust_acc"] is None else f"{100 * result['robust_acc']:.2f}%"
    click.echo(f"| checkpoint | n | clean | robust ({attack}, eps {eps:.4g}) |\n|---|---:|---:|---:|\n"
               f"| {checkpoint} | {result['n']} | {100 * result['clean_acc']:.2f}% | {rob} |")
    if json_path:
        write_json(report, json_path)
