"""The CI-sized smoke run of the method comparison: mnist5k, the small CNN, l∞ ε = 0.3.

A thin caller of `aft-fast compare` (aft_fast/compare/) with small settings (a smoke run, far
below the full protocol); flags given here are passed on and win over these defaults:

    python benchmarks/reproduce_mnist.py
    # = aft-fast compare --data mnist5k --arch small_cnn --eps 0.3 --out runs/compare/mnist5k
    #     --report benchmarks/results/compare/mnist5k --methods natural,pgd-at,free-at,fast-at,aft
    #     --epochs 4 --train-steps 5 --batch-size 64 --val-images 128 --eval-images 200
    #     --pgd-steps 50 --pgd-restarts 5 --aa-steps 10 --aa-targets 2 --aa-queries 100
    #     --mask-images 100 --eval-batch-size 200 --device cpu

PGD-50×5, the reduced AutoAttack and the masking check run on the first 200 of the 1,000 mnist5k
test images (a smoke run: pass --eval-images 1000 --aa-steps 100 --aa-targets 9 --aa-queries 5000
for the full protocol).
"""
from __future__ import annotations

import sys

SMOKE = ["--data", "mnist5k", "--arch", "small_cnn", "--eps", "0.3",
         "--out", "runs/compare/mnist5k", "--report", "benchmarks/results/compare/mnist5k",
         "--methods", "natural,pgd-at,free-at,fast-at,aft", "--epochs", "4", "--train-steps", "5",
         "--batch-size", "64", "--val-images", "128", "--eval-images", "200", "--pgd-steps", "50",
         "--pgd-restarts", "5", "--aa-steps", "10", "--aa-targets", "2", "--aa-queries", "100",
         "--mask-images", "100", "--eval-batch-size", "200", "--device", "cpu"]


def main(argv=None) -> int:
    from aft_fast.commands.compare import compare_command

    args = SMOKE + list(sys.argv[1:] if argv is None else argv)  # later flags win in click
    compare_command.main(args=args, prog_name="aft-fast compare", standalone_mode=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
