"""The CI-sized smoke run of the method comparison: mnist5k, the small CNN, l∞ ε = 0.3.

A thin caller of `aft-fast compare` (aft_fast/compare/) with settings that finish in minutes on
a 2-core CPU; flags given here are passed on and win over these defaults:

    python benchmarks/reproduce_mnist.py
    # = aft-fast compare --data mnist5k --eps 0.3 --out runs/compare/mnist5k
    #     --report benchmarks/results/compare/mnist5k --epochs 4 --train-steps 5
    #     --val-images 128 --eval-batch-size 1000 --pgd-restarts 5 --aa-steps 20
    #     --aa-targets 3 --aa-queries 300 --mask-images 200 --methods natural,pgd-at,free-at,fast-at,aft

The mnist5k test split has 1,000 images: PGD-50×5 and the (reduced) AutoAttack run on all of them.
"""
from __future__ import annotations

import sys

SMOKE = ["--data", "mnist5k", "--arch", "small_cnn", "--eps", "0.3",
         "--out", "runs/compare/mnist5k", "--report", "benchmarks/results/compare/mnist5k",
         "--epochs", "4", "--train-steps", "5", "--val-images", "128",
         "--eval-batch-size", "1000", "--pgd-steps", "50", "--pgd-restarts", "5",
         "--aa-steps", "20", "--aa-targets", "3", "--aa-queries", "300", "--mask-images", "200",
         "--methods", "natural,pgd-at,free-at,fast-at,aft", "--device", "cpu"]


def main(argv=None) -> int:
    from aft_fast.commands.compare import compare_command

    args = SMOKE + list(sys.argv[1:] if argv is None else argv)  # later flags win in click
    compare_command.main(args=args, prog_name="aft-fast compare", standalone_mode=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
