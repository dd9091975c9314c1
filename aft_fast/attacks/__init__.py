"""Attacks built on the fused ops: PGD-k with restarts, FGSM with random start (Fast AT), and
AutoAttack assembled from torchattacks' parts. Training and evaluation share this code."""
from aft_fast.attacks.pgd import AttackConfig, pgd, fgsm_rs, input_grad  # noqa: F401
