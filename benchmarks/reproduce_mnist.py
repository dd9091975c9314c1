"""The paper's comparison (its Table 1 layout) where we can run it: mnist5k, a small CNN, l∞.

Natural training; PGD AT, Free AT and Fast AT from scratch; AFT from the natural model. For each:
clean, PGD-20 and AutoAttack accuracy on the 1,000 test images and the adversarial-training
wall-clock (per-epoch validation excluded; AFT's figure excludes the natural pretraining it
starts from, as in the paper, which counts only the fine-tuning).

    python benchmarks/reproduce_mnist.py --out benchmarks/results/mnist_table

writes mnist_table.md and mnist_table.json. The defaults are sized to finish in ~15 minutes on
a 2-core CPU, far below the paper's budgets: 5 natural epochs, 10 epochs of PGD AT / Fast AT /
AFT with PGD-5 examples, Free AT with m = 4 for 10 / 4 -> 2 epochs, and AutoAttack on the first
250 test images with the reference 100 iterations but 1,000 Square queries (not 5,000); pass
`--aa-queries 5000 --aa-max-batches 0` for the reference AutoAttack on all 1,000 (slow on a CPU). The settings used are recorded in the output.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aft_fast import load_checkpoint
from aft_fast.data import make_loaders
from aft_fast.evaluate import accuracy
from aft_fast.train.experiments import evaluate_checkpoint, markdown_table, train_timed
from aft_fast.io import write_json, write_text
from aft_fast.policy import AUTOATTACK_REFERENCE, is_autoattack_reference
from aft_fast.runtime import environment, pick_device
from aft_fast.train import TrainOptions


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results/mnist_table")
    p.add_argument("--runs", default="runs/reproduce_mnist")
    p.add_argument("--eps", type=float, default=0.3)
    p.add_argument("--epochs", type=int, default=10, help="epochs of PGD AT, Fast AT and AFT")
    p.add_argument("--pretrain-epochs", type=int, default=5)
    p.add_argument("--pretrain-lr", type=float, default=0.03, help="natural training: SGD LR")
    p.add_argument("--free-replays", type=int, default=4)
    p.add_argument("--steps", type=int, default=5, help="PGD steps while training")
    p.add_argument("--aa-steps", type=int, default=AUTOATTACK_REFERENCE["steps"],
                   help=f"reference AutoAttack: {AUTOATTACK_REFERENCE['steps']}")
    p.add_argument("--aa-queries", type=int, default=1000,
                   help=f"reference AutoAttack: {AUTOATTACK_REFERENCE['queries']}")
    p.add_argument("--aa-max-batches", type=int, default=1,
                   help="AutoAttack on the first N batches of 250 test images only (0: all)")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    args.aa_max_batches = args.aa_max_batches or None

    runs = Path(args.runs)
    common = dict(arch="small_cnn", data="mnist5k", eps=args.eps, device=args.device,
                  overwrite=True, eval_max_batches=2, eval_steps=10, log_every=10**9, quiet=True,
                  steps=args.steps)
    plan = [
        ("Natural", TrainOptions(method="natural", epochs=args.pretrain_epochs,
                                 lr=args.pretrain_lr, **common)),
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
        scores = evaluate_checkpoint(ckpt, "mnist5k", args.eps)  # clean + PGD-20, all 1,000
        aa_run = accuracy(load_checkpoint(ckpt), make_loaders("mnist5k", batch_size=250).test,
                          attack="autoattack", max_batches=args.aa_max_batches,
                          autoattack_kwargs={"eps": args.eps, **aa})
        rows.append({"method": name, **scores, "autoattack_acc": aa_run["robust_acc"],
                     "autoattack_n": aa_run["n"], "train_seconds": seconds,
                     "epochs": opts.epochs, "optimizer": opts.optimizer or "method default",
                     "train_attack": {"natural": "-", "free-at": f"replays m={opts.replays}",
                                      "fast-at": "FGSM-RS, alpha 1.25 eps"}.get(
                                          opts.method, f"PGD-{opts.steps}")})
        print(rows[-1], flush=True)

    command = "python benchmarks/reproduce_mnist.py " + " ".join(argv if argv is not None else sys.argv[1:])
    env = environment(pick_device(args.device))
    reference_aa = is_autoattack_reference(steps=args.aa_steps, queries=args.aa_queries)
    lowered = (f": lowered from the reference {AUTOATTACK_REFERENCE['steps']} / "
               f"{AUTOATTACK_REFERENCE['queries']:,} to fit a CPU budget")
    table = markdown_table(rows, [("method", "method"), ("clean_acc", "clean"),
                                  ("pgd_acc", "PGD-20"), ("autoattack_acc", "AutoAttack"),
                                  ("train_seconds", "train wall-clock s"), ("epochs", "epochs"),
                                  ("train_attack", "training examples")])
    text = (f"# mnist5k, small CNN, l∞ eps = {args.eps}\n\nCommand: `{command}`  \n"
            f"Device: {env['device']}, torch {env['torch']}, commit {env['commit']}.  \n"
            f"Test: the 1,000 mnist5k test images (AutoAttack on "
            f"{'all' if args.aa_max_batches is None else args.aa_max_batches * 250} of them: "
            f"APGD-CE, APGD-T, FAB-T at {args.aa_steps} iterations, Square {args.aa_queries} "
            f"queries{'' if reference_aa else lowered}). "
            f"PGD-20 with step 2.5·eps/20, one random start, on all 1,000.  \n"
            f"Training wall-clock excludes the per-epoch validation; AFT's excludes the natural "
            f"pretraining it starts from (the paper counts only the fine-tuning). The machine may "
            f"have been shared with other jobs while this ran: treat the seconds as rough.\n\n"
            f"{table}\n")
    out = Path(args.out)
    write_text(text, out.with_suffix(".md"))
    write_json({"rows": rows, "settings": vars(args), "command": command, "environment": env},
               out.with_suffix(".json"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
