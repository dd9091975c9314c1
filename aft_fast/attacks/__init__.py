"""Attacks built on the fused ops: PGD-k with restarts, FGSM with random start (Fast AT), and
AutoAttack assembled from torchattacks' parts (`aft_fast.attacks.autoattack`, optional extra).
Training and evaluation share this code."""
from aft_fast.attacks.pgd import AttackConfig, input_grad, pgd  # noqa: F401
from aft_fast.attacks.fgsm import fgsm_rs  # noqa: F401
