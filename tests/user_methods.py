"""A method written outside the package, as a user would (`--method user_methods:RampFGSM`;
pytest puts tests/ on the path). Not a test module. It uses every part of the contract: its own
option, its own loss, a state carried between batches that changes the training (so a resume
that lost it would not be exact), and its own cost rule."""
import torch
import torch.nn.functional as F

from aft_fast.attacks import fgsm_rs
from aft_fast.methods import Method, MethodOption


class RampFGSM(Method):
    """FGSM from a random start whose radius ramps from 0 to ε over `ramp` batches, trained with
    a label-smoothed cross-entropy."""
    name = "ramp-fgsm"
    label = "Ramp FGSM"
    reference = "a test method (tests/user_methods.py)"
    optimizer, lr, schedule, epochs = "adam", 1e-3, "multistep", 2
    options = (MethodOption("ramp", int, 4, "batches over which ε ramps up", low=1),
               MethodOption("smoothing", float, 0.1, "label smoothing of the loss", low=0.0))
    recipes = {"small": dict(optimizer="adam", lr=1e-3, schedule="multistep"),
               "cifar": dict(optimizer="sgd", lr=0.1, schedule="multistep")}
    imagenet_epochs = 15.0
    fixed_attack_steps, alpha_per_eps = 1, 1.25  # one FGSM step of 1.25ε

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches = torch.zeros((), dtype=torch.long)

    def perturb(self, trainer, x, y):
        f = min(1.0, (int(self.batches) + 1) / self.ramp)
        self.batches += 1
        return fgsm_rs(trainer.attack_model, x, y, self.eps * f, self.alpha * f, amp=self.amp,
                       bn_mode=self.bn_mode)

    def loss(self, model, x_adv, y, x):
        logits = model(x_adv)
        return F.cross_entropy(logits.float(), y, label_smoothing=self.smoothing), logits

    def state_dict(self):
        return {"batches": self.batches.clone()}

    def load_state_dict(self, state):
        self.batches = state.get("batches", torch.zeros((), dtype=torch.long)).clone()


class NotAMethod:
    name = "nope"
