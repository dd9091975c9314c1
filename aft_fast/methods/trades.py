"""TRADES (Zhang et al. 2019, "Theoretically Principled Trade-off between Robustness and
Accuracy"; code: yaodongyu/TRADES, trades.py): minimise the clean cross-entropy plus β times
KL(f(x) ‖ f(x')), where x' maximises that KL term within the ε-ball.

As in its code: the attack runs with BatchNorm in eval mode from a small random start (the code
adds 0.001·N(0, 1); here uniform in ±0.001, what the fused random start draws: either only breaks
the zero gradient of the KL term at x' = x), k signed-gradient steps on the summed KL; the update
runs two train-mode forwards (clean and x') and takes CE(f(x), y) + β·KL/B; β = 6 (the paper's
CIFAR setting). Its step size here is the engine's 2.5ε/k (the code: 0.007 at ε = 0.031, k = 10,
i.e. 0.23ε; 2.5ε/k = 0.25ε). Recipe: SGD 0.01, momentum 0.9 for the small CNN (its MNIST code),
SGD 0.1, momentum 0.9, wd 2e-4 otherwise (its CIFAR code); step decay.
Cost: k attack steps + 2 passes of the update (clean and adversarial forward/backward).

Fine-tuning with the TRADES loss (AFT's recipe, TRADES' objective) is `trades-ft`.
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from aft_fast.attacks import pgd
from aft_fast.attacks.pgd import attack_mode
from aft_fast.methods.aft import AFT
from aft_fast.methods.base import MethodOption
from aft_fast.methods.pgd_at import PGDAT

START_RADIUS = 0.001  # the code's 0.001·N(0, 1) start


def kl_sum(logits_adv: torch.Tensor, p_clean: torch.Tensor) -> torch.Tensor:
    """Σ KL(p_clean ‖ softmax(logits_adv)) over the batch (nn.KLDivLoss(reduction="sum"))."""
    return F.kl_div(F.log_softmax(logits_adv.float(), dim=1), p_clean, reduction="sum")


# β, the weight of the KL term: TRADES' 1/λ, and MART's
BETA = MethodOption("beta", float, 6.0, "TRADES / MART: weight β of the KL term.", low=0.0)


class TradesObjective:
    """TRADES' attack, loss, cost and β: mixed into a from-scratch and a fine-tuning recipe."""
    options = (BETA,)

    def perturb(self, trainer, x, y):
        model = trainer.attack_model
        with torch.no_grad(), attack_mode(model, self.bn_mode), trainer.autocast():
            p_clean = F.softmax(model(x).float(), dim=1)
        cfg = replace(self.attack_config(), start_eps=min(START_RADIUS, self.eps))
        return pgd(model, x, y, cfg, loss_fn=lambda logits, _y, reduction: kl_sum(logits, p_clean))

    def loss(self, model, x_adv, y, x):
        logits_clean, logits_adv = model(x), model(x_adv)
        p_clean = F.softmax(logits_clean.float(), dim=1)
        robust = kl_sum(logits_adv, p_clean) / len(x)
        return F.cross_entropy(logits_clean.float(), y) + self.beta * robust, logits_adv

    def passes_per_epoch(self) -> float:
        return self.attack_steps + 2


class TRADES(TradesObjective, PGDAT):
    name = "trades"
    label = "TRADES"
    reference = "Zhang et al. 2019; yaodongyu/TRADES (KL attack, β = 6)"
    recipes = {"small": dict(optimizer="sgd", lr=0.01, schedule="multistep", weight_decay=0.0),
               "cifar": dict(optimizer="sgd", lr=0.1, schedule="multistep", weight_decay=2e-4)}
    imagenet_epochs = 90.0
    compare_warmup = False  # its code has none (the clean term keeps it from stalling)


class TRADESFineTune(TradesObjective, AFT):
    """AFT's fine-tuning (from the Natural model, Adam, slow start fast decay, round(E/8)
    epochs) with TRADES' attack and objective."""
    name = "trades-ft"
    label = "TRADES-FT"
    reference = "AFT's recipe (Jeddi et al. 2020) with the TRADES loss (Zhang et al. 2019)"
