"""``aft-fast demo``: what the engine is for, in a few minutes on 2 CPU cores, on data that
`make install` installs (Fashion-MNIST's official files): a naturally trained classifier is made
robust by adversarial fine-tuning (AFT) at Fashion-MNIST's standard radius ε = 0.1, and its clean
and PGD-20 accuracy are measured before and after on the official test images."""
from __future__ import annotations

import math
import time
from pathlib import Path

import click

from aft_fast.commands.common import FRACTION, json_option
from aft_fast.fast_path import trained_in
from aft_fast.io import write_json
from aft_fast.perf.loader_bench import load_average
from aft_fast.runtime import environment, pick_device
from aft_fast.train.options import TrainOptions
from aft_fast.experiments import markdown_table, test_accuracy, train_timed

EVAL_BATCH = 250  # test_accuracy's batch: the test images are whole batches of it


@click.command("demo")
@click.option("--out", default="runs/demo", show_default=True,
              help="Folder for the two runs (natural/, aft/); the demo replaces its own runs there.")
@click.option("--data", default="fashion-mnist", show_default=True,
              help="fashion-mnist, mnist5k or another 28x28 single-channel source.")
@click.option("--eps", type=FRACTION, default=0.1, show_default=True,
              help="l-inf radius in [0, 1] pixel units, 8/255 accepted (Fashion-MNIST's "
                   "standard 0.1).")
@click.option("--train-images", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="A fixed subset of the training split, so the demo takes minutes on a CPU.")
@click.option("--pretrain-epochs", type=int, default=3, show_default=True)
@click.option("--pretrain-lr", type=float, default=0.03, show_default=True,
              help="Natural training: SGD (momentum 0.9, wd 5e-4), this LR for 70% of the "
                   "epochs, then a fifth of it.")
@click.option("--aft-epochs", type=int, default=2, show_default=True,
              help="The paper uses 10; 2 keeps the demo to a few minutes on 2 CPU cores.")
@click.option("--steps", type=int, default=5, show_default=True, help="PGD steps while fine-tuning.")
@click.option("--test-images", type=click.IntRange(min=1), default=1000, show_default=True,
              help=f"Official test images evaluated (whole batches of {EVAL_BATCH}).")
@click.option("--device", default="auto", show_default=True)
@json_option
def demo_command(out, data, eps, train_images, pretrain_epochs, pretrain_lr, aft_epochs, steps,
                 test_images, device, json_path):
    """Natural pretraining, then AFT, then clean and PGD-20 accuracy before and after."""
    start, out, load_before = time.perf_counter(), Path(out), load_average()
    common = dict(arch="small_cnn", data=data, eps=eps, train_images=train_images, device=device,
                  overwrite=True, eval_images=EVAL_BATCH, log_every=10**9, quiet=True)
    click.echo(f"1/3 natural pretraining: small_cnn, {train_images} {data} training images, "
               f"{pretrain_epochs} epochs -> {out / 'natural'}")
    natural, t_nat = train_timed(TrainOptions(
        method="natural", epochs=pretrain_epochs, lr=pretrain_lr, schedule="multistep",
        schedule_params={"milestones": [0.7]}, out=str(out / "natural"), **common))
    click.echo(f"2/3 AFT fine-tuning from it: {aft_epochs} epochs, PGD-{steps}, eps {eps} "
               f"-> {out / 'aft'}")
    aft, t_aft = train_timed(TrainOptions(method="aft", epochs=aft_epochs, steps=steps,
                                          weights=natural, out=str(out / "aft"), **common))
    click.echo(f"   both trained in {trained_in(out / 'aft')} (--amp/--channels-last auto); "
               "evaluation in fp32")
    batches = math.ceil(test_images / EVAL_BATCH)
    click.echo(f"3/3 clean and PGD-20 accuracy on {batches * EVAL_BATCH} official test images")
    rows = [{"model": name, **test_accuracy(path, data, eps, max_batches=batches),
             "train_s": seconds}
            for name, path, seconds in (("natural", natural, t_nat),
                                        ("AFT (from natural)", aft, t_aft))]
    click.echo(markdown_table(rows, [("model", "model"), ("clean_acc", "clean"),
                                     ("pgd_acc", f"PGD-20 (eps {eps:g})"),
                                     ("train_s", "training s")]))
    total = time.perf_counter() - start
    click.echo(f"demo wall-clock: {total:.0f} s (training s excludes per-epoch evaluation)")
    if json_path:
        write_json({"rows": rows, "total_s": total, "load_average": {
            "before": load_before, "after": load_average()}, "settings": {
            "data": data, "eps": eps, "train_images": train_images, "pretrain_epochs":
            pretrain_epochs, "pretrain_lr": pretrain_lr, "aft_epochs": aft_epochs, "steps": steps,
            "test_images": rows[0]["n"]}, "environment": environment(pick_device(device))},
            json_path)
