"""N-FGSM (de Jorge et al. 2022, "Make Some Noise: Reliable and Efficient Single-Step
Adversarial Training"; code: pdejorge/N-FGSM, train.py): FGSM from a larger noise, without
projecting back to the ε-ball, and no early stopping needed against catastrophic overfitting.

As in its code: noise η ~ U(−kε, kε) with k = 2 (`--unif`), x + η kept in [0, 1], one signed
gradient step of α = ε from there, the result kept in [0, 1] and, by default, not clipped to any
ball (`nfgsm_clip` c > 0 clips the perturbation to the cε-ball, as its `--clip`). Model in train
mode throughout (its code never switches to eval while training). Recipe: SGD 0.2 (CIFAR) with
momentum 0.9, wd 5e-4 and the cyclic LR of fast_adversarial, on which its code is built; Adam
5e-3 for the small CNN, as the Fast AT row. Cost: 1 step + 1 update, like Fast AT.
The perturbation reaches (k + 1)ε in l∞: the paper's point is that training on these larger
perturbations avoids catastrophic overfitting; evaluation is at ε as for every row.
"""
from __future__ import annotations

from aft_fast.attacks import AttackConfig, pgd
from aft_fast.methods.base import Method, MethodOption


class NFGSM(Method):
    name = "n-fgsm"
    label = "N-FGSM"
    reference = "de Jorge et al. 2022; pdejorge/N-FGSM (noise 2ε, step ε, no clipping)"
    schedule, lr = "cyclic", 0.2
    bn_mode = "train"
    fixed_attack_steps, alpha_per_eps = 1, 1.0
    options = (MethodOption("noise", float, 2.0, "N-FGSM: the noise's radius in units of ε "
                            "(its --unif, k).", low=0.0),
               MethodOption("nfgsm_clip", float, 0.0, "N-FGSM: clip the perturbation to this "
                            "many ε (its --clip; 0: no clipping, the default).", low=0.0))
    recipes = {"small": dict(optimizer="adam", lr=5e-3, schedule="cyclic"),
               "cifar": dict(optimizer="sgd", lr=0.2, schedule="cyclic", weight_decay=5e-4)}
    imagenet_epochs = 15.0

    def attack_config(self) -> AttackConfig:
        # The step projects onto the clipping ball, or onto one the noise and the step never
        # leave (no clipping).
        radius = self.nfgsm_clip * self.eps if self.nfgsm_clip > 0 else \
            self.noise * self.eps + self.alpha
        return AttackConfig(radius, self.alpha, 1, amp=self.amp, bn_mode=self.bn_mode,
                            compile=self.compile, start_eps=self.noise * self.eps)

    def perturb(self, trainer, x, y):
        return pgd(trainer.attack_model, x, y, self.attack_config())
