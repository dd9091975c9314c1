"""``aft-fast demo``: the main job on the bundled data, in a few minutes on 2 CPU cores:
natural pretraining of a small CNN on mnist5k, AFT fine-tuning from it, PGD-20 evaluation."""
from __future__ import annotations

from pathlib import Path

import click

from aft_fast.commands.common import json_option
from aft_fast.train.experiments import evaluate_checkpoint, markdown_table, train_timed
from aft_fast.io import write_json
from aft_fast.runtime import environment, pick_device
from aft_fast.train import TrainOptions


@click.command("demo")
@click.option("--out", default="runs/demo", show_default=True,
              help="Folder for the two runs (natural/, aft/); the demo replaces its own runs there.")
@click.option("--eps", type=float, default=0.2, show_default=True)
@click.option("--pretrain-epochs", type=int, default=6, show_default=True)
@click.option("--pretrain-lr", type=float, default=0.03, show_default=True,
              help="Natural training: SGD (momentum 0.9, wd 5e-4, multistep) peak LR.")
@click.option("--aft-epochs", type=int, default=3, show_default=True,
              help="The paper uses 10; 3 keeps the demo to a few minutes on 2 CPU cores.")
@click.option("--steps", type=int, default=5, show_default=True, help="PGD steps while fine-tuning.")
@click.option("--device", default="auto", show_default=True)
@json_option
def demo_command(out, eps, pretrain_epochs, pretrain_lr, aft_epochs, steps, device, json_path):
    """Natural pretraining, then AFT, then PGD-20 evaluation, on mnist5k."""
    out = Path(out)
    common = dict(arch="small_cnn", data="mnist5k", eps=eps, device=device, overwrite=True,
                  eval_max_batches=2, eval_steps=10, log_every=10**9)
    click.echo(f"1/3 natural pretraining ({pretrain_epochs} epochs) -> {out / 'natural'}")
    natural, t_nat = train_timed(TrainOptions(method="natural", epochs=pretrain_epochs, lr=pretrain_lr,
                                              out=str(out / "natural"), **common))
    click.echo(f"2/3 AFT fine-tuning ({aft_epochs} epochs, PGD-{steps}, eps {eps}) -> {out / 'aft'}")
    aft, t_aft = train_timed(TrainOptions(method="aft", epochs=aft_epochs, steps=steps,
                                          weights=natural, out=str(out / "aft"), **common))
    click.echo("3/3 PGD-20 evaluation on the 1,000 test images")
    rows = [{"model": "natural", **evaluate_checkpoint(natural, "mnist5k", eps), "train_s": t_nat},
            {"model": "AFT (from natural)", **evaluate_checkpoint(aft, "mnist5k", eps), "train_s": t_aft}]
    click.echo(markdown_table(rows, [("model", "model"), ("clean_acc", "clean"),
                                     ("pgd_acc", f"PGD-20 (eps {eps})"), ("train_s", "train s")]))
    if json_path:
        write_json({"rows": rows, "environment": environment(pick_device(device))}, json_path)
