"""The paper's comparison (its Table 1 layout) where we can run it: mnist5k, a small CNN, l∞.

Natural training; PGD AT, Free AT and Fast AT from scratch; AFT from the natural model. For each:
clean, PGD-20 and AutoAttack accuracy on the 1,000 test images and the adversarial-training
wall-clock (per-epoch validation excluded; AFT's figure excludes the natural pretraining it
starts from, as in the paper, which counts only the fine-tuning).

    python benchmarks/reproduce_mnist.py --out benchmarks/results/mnist_table

writes mnist_table.md and mnist_table.json. Defaults are sized for a 2-core CPU (~15 minutes);
the AutoAttack settings used are recorded in the output (the reference ones unless lowered).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aft_fast.experiments import evaluate_checkpoint, markdown_table, train_timed
from aft_fast.io import write_json, write_text
from aft_fast.runtime import environment, pick_device
from aft_fast.train import TrainOptions


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results/mnist_table")
    p.add_argument("--runs", default="runs/reproduce_mnist")
    p.add_argument("--eps", type=float, default=0.3)
    p.add_argument("--epochs", type=int, default=10, help="epochs of PGD AT, Fast AT and AFT")
    p.add_argument("--pretrain-epochs", type=int, default=8)
    p.add_argument("--free-replays", type=int, default=4)
    p.add_argument("--steps", type=int, default=10, help="PGD steps while training")
    p.add_argument("--aa-steps", type=int, default=100)
    p.add_argument("--aa-queries", type=int, default=5000)
    p.add_argument("--aa-max-batches", type=int, default=None,
                   help="AutoAttack on the first N batches of 250 test images only")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)

    runs = Path(args.runs)
    common = dict(arch="small_cnn", data="mnist5k", eps=args.eps, device=args.device,
                  overwrite=True, eval_max_batches=2, eval_steps=10, log_every=10**9, quiet=True,
                  steps=args.steps)
    plan = [
        ("Natural", TrainOptions(method="natural", epochs=args.pretrain_epochs, lr=0.1, **common)),
        ("PGD AT", TrainOptions(method="pgd-at", epochs=args.epochs, optimizer="adam", lr=1e-3,
                                schedule="multistep", **common)),
        ("Free AT (m=%d)" % args.free_replays, TrainOptions(
            method="free-at", epochs=max(1, args.epochs // args.free_replays),
            replays=args.free_replays, optimizer="adam", lr=1e-3, schedule="multistep", **common)),
        ("Fast AT", TrainOptions(method="fast-at", epochs=args.epochs, optimizer="adam", lr=1e-3,
                                 co_guard=True, **common)),
        ("AFT (from Natural)", None),
    ]
    aa = {"steps": args.aa_steps, "queries": args.aa_queries}
    rows, natural = [], None
    for name, opts in plan:
        if opts is None:
            opts = TrainOptions(method="aft", epochs=args.epochs, weights=natural, **common)
        opts.out = str(runs / opts.method)
        print(f"training {name} ...", flush=True)
        ckpt, seconds = train_timed(opts)
        if opts.method == "natural":
            natural = ckpt
        print(f"evaluating {name} ...", flush=True)
        scores = evaluate_checkpoint(ckpt, "mnist5k", args.eps, autoattack=aa,
                                     max_batches=args.aa_max_batches)
        rows.append({"method": name, **scores, "train_seconds": seconds,
                     "epochs": opts.epochs, "optimizer": opts.optimizer or "method default"})
        print(rows[-1], flush=True)

    command = "python benchmarks/reproduce_mnist.py " + " ".join(argv if argv is not None else sys.argv[1:])
    env = environment(pick_device(args.device))
    table = markdown_table(rows, [("method", "method"), ("clean_acc", "clean"),
                                  ("pgd_acc", "PGD-20"), ("autoattack_acc", "AutoAttack"),
                                  ("train_seconds", "AT wall-clock s"), ("epochs", "epochs")])
    text = (f"# mnist5k, small CNN, l∞ eps = {args.eps}\n\nCommand: `{command}`  \n"
            f"Device: {env['device']}, torch {env['torch']}, commit {env['commit']}.  \n"
            f"Test: the 1,000 mnist5k test images (AutoAttack on "
            f"{'all' if args.aa_max_batches is None else args.aa_max_batches * 250} of them: "
            f"APGD-CE, APGD-T, FAB-T at {args.aa_steps} iterations, Square {args.aa_queries} "
            f"queries). PGD-20 with step 2.5·eps/20.\n\n{table}\n")
    out = Path(args.out)
    write_text(text, out.with_suffix(".md"))
    write_json({"rows": rows, "settings": vars(args), "command": command, "environment": env},
               out.with_suffix(".json"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
