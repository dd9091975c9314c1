"""Policy constants and choice lists, each typed once: the library, the CLI and the benchmarks
import them from here. A leaf module (imports nothing from aft_fast)."""
from __future__ import annotations

VERSION = "0.1.0"

AMP_CHOICES = ("none", "bf16", "fp16")  # "none" = fp32
BN_MODES = ("eval", "train")  # BatchNorm/dropout mode while the attack runs
# BatchNorm running statistics while RiFT fine-tunes one module: kept as trained, or updated
# by the fine-tuning batches (train mode, as the reference code does).
BN_STATS = ("frozen", "train")
LOADERS = ("pytorch", "dali")
# --check-files: an image folder's pre-flight check (aft_fast.data.folder.check_files); the
# former boolean option's values (an old args.yaml) mean bytes / off.
CHECK_FILES = ("bytes", "decode", "off")
CHECK_FILES_OF = {True: "bytes", False: "off"}
# Augmentation presets of the folder loaders (aft_fast.data.augment); the default follows the
# images' own side: "small" up to SMALL_IMAGE_MAX pixels, "imagenet" above.
AUGMENTS = ("imagenet", "small", "none")
SMALL_IMAGE_MAX = 64
EVAL_ATTACKS = ("pgd", "autoattack", "none")
OPTIMIZERS = ("sgd", "adam")
# What a training run does with a NaN/inf loss (aft_fast.train.nonfinite).
NONFINITE_POLICIES = ("stop", "skip")
# Per-epoch evaluation budget (aft_fast.train.evaluation): of each of val and train_eval, at most
# EVAL_IMAGES images and EVAL_TRAIN_SHARE of the training split (but EVAL_MIN_IMAGES at least),
# so the two cost about a tenth of an epoch or less; PGD with EVAL_STEPS steps for adversarial
# methods (clean only for natural runs unless --eval-steps asks); --eval-full lifts the cap and
# runs EVAL_FULL_STEPS.
EVAL_IMAGES = 512
EVAL_MIN_IMAGES = 128
EVAL_TRAIN_SHARE = 0.05
EVAL_STEPS = 10
EVAL_FULL_STEPS = 20
# τ of compare's weight-average rows (pgd-at+ema, aft+ema; `--ema-decay`): the reference's
# (deepmind-research adversarial_robustness: swa_decay .995; its PyTorch port's --tau). Under the
# warm-up min(τ, (1+t)/(10+t)) τ takes over only after 9/(1-τ) updates (1,790 for 0.995, 8,990
# for 0.999): the CPU budget's runs (Fashion-MNIST: 79 updates an epoch, PGD AT 632, AFT 79)
# never get there, so both give the same average there; on longer runs 0.995 averages over the
# last ~200 updates, where 0.999's ~1,000 would outlast a fine-tuning run (AFT on CIFAR-10 at
# E = 24: 3 epochs, 1,173 updates) and mostly average the weights it started from.
COMPARE_EMA_DECAY = 0.995
# Exit status of a run stopped by SIGTERM/SIGINT after writing a resumable last.pt: 128 + the
# signal's number, the shell's convention for "ended by this signal" (143 for SIGTERM).
EXIT_SIGNAL_BASE = 128

# Standard AutoAttack's reference settings (Croce & Hein 2020): APGD-CE and APGD-T 100 iterations,
# FAB-T 100 iterations, 9 target classes, Square 5,000 queries.
AUTOATTACK_REFERENCE = {"steps": 100, "queries": 5000, "targets": 9}


# compare --aa-points: which points of a budget sweep AutoAttack evaluates (each method's best
# point, plus the Pareto frontier's; always the paper's setting rows), every point, or none.
AA_POINTS = ("all", "frontier", "best", "none")


def is_autoattack_reference(**settings: int) -> bool:
    """Whether these settings (any of steps, queries, targets) are standard AutoAttack's; a report
    of other settings must say they are reduced."""
    return all(AUTOATTACK_REFERENCE[k] == v for k, v in settings.items())


def amp_name(amp: str | None) -> str | None:
    """The AMP setting as the library takes it: None for fp32 ("none", "fp32" or None)."""
    return None if amp in (None, "none", "fp32") else amp


def default_alpha(eps: float, steps: int) -> float:
    """PGD's step size when none is given: Madry et al.'s rule, 2.5·ε/steps, reaches the ball's
    boundary with slack from any random start."""
    return 2.5 * eps / max(steps, 1)
