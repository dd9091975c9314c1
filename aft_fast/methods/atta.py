"""ATTA-k (Zheng et al. 2020, "Efficient Adversarial Training with Transferable Adversarial
Examples", CVPR; https://arxiv.org/abs/1912.11969; code: https://github.com/haizhongzheng/ATTA,
train_atta_cifar.py, adv_attack.py, adaptive_data_aug.py): adversarial examples transfer between
the models of successive epochs, so each training image keeps its perturbation δ from one epoch
to the next. A batch starts from its images' stored δ (no random start), runs k PGD steps and
stores the new δ back; a few steps a batch then accumulate into a strong attack over epochs.

As in its code: the attack runs with BatchNorm in eval mode (`get_adv_atta` calls
`model.eval()`), its steps project onto the ε-ball and [0, 1], the loss is cross-entropy on the
accumulated example (the code's "mat"; its TRADES variant is not built here); the store is
reset every R epochs (`--epochs-reset`: 10 on CIFAR, never on MNIST), at the start of each epoch
whose 1-based number is a multiple of R, as its `epoch % epochs_reset == 0`. The code starts
and resets at x + 0.001·N(0, 1); here at δ = 0 (the cross-entropy's gradient at x is not zero:
the noise changes nothing the first step needs). Default k = 1 (its ATTA-1, the paper's headline
setting). Step size: the code's at ε = 0.031 as a fraction of ε (k = 1: 0.015, 3: 0.01, 10:
0.007), otherwise min(ε/2, 2.5ε/k); its MNIST code's 0.01 at ε = 0.3 accumulates over 60 epochs,
too slowly for the budget rule's few epochs, so the small family takes the same rule.

Augmentation: the code keeps δ in the 4-pixel-padded image and crops and flips it with the image
(`atta_aug`, `inverse_atta_aug`); so does this buffer, from each batch's `Origin` (index, crop,
flip; `data.batches`): in-memory data is not augmented, the `small` preset says where it cropped
and flipped, `imagenet` (random-resized crops) and DALI are refused naming the option.

Memory: N × C × (H + 2p) × (W + 2p) × bytes per value (p: the padding, 4 for `small`, else 0),
on the training device: `--atta-storage fp32` 4 bytes, fp16 2, int8 1 (round(δ/ε·127): an error
of at most ε/254). CIFAR-10 (50,000 × 3 × 40 × 40): 960 MB / 480 MB / 240 MB. ImageNet-1k at
224 px without padding (1,281,167 × 3 × 224 × 224 = 1.93e11 values): 771 GB / 386 GB / 193 GB,
beyond any one GPU (a host- or disk-backed store would be needed; not built).
Under DDP every rank keeps the full store and the ranks exchange each step's new δ (all_gather),
since the sampler deals every epoch's images to the ranks anew; checkpoints hold it once.

Recipe: SGD 0.1, momentum 0.9, wd 2e-4, step decay, R = 10 (its CIFAR code); SGD 0.01,
momentum 0.9, R never (its MNIST code) for the small CNN. From scratch: E epochs under the budget
rule. Cost: k + 1 passes per image per epoch.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from aft_fast.attacks import pgd
from aft_fast.errors import check
from aft_fast.methods.base import Budget, Method, MethodOption
from aft_fast.train.update import batch_stats

CODE_EPS = 0.031  # the code's CIFAR ε, at which its step sizes are given
CODE_STEP = {1: 0.015, 3: 0.01, 10: 0.007}  # its data-config/cifar-atta-{k}-*.json
STORAGE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "int8": torch.int8}
INT8_LEVELS = 127  # int8 stores round(δ / ε · 127)


class DeltaStore:
    """One δ per training image, in the frame of its padded image, in the storage dtype."""

    def __init__(self, size: int, frame: tuple, storage: str, eps: float, device):
        self.values = torch.zeros(size, *frame, dtype=STORAGE_DTYPES[storage], device=device)
        self.scale = eps / INT8_LEVELS if storage == "int8" else 1.0

    def encode(self, delta: torch.Tensor) -> torch.Tensor:
        if self.values.dtype != torch.int8:
            return delta.to(self.values.dtype)
        return torch.round(delta / self.scale).clamp_(-INT8_LEVELS, INT8_LEVELS).to(torch.int8)

    def decode(self, stored: torch.Tensor) -> torch.Tensor:
        return stored.float() * self.scale if self.values.dtype == torch.int8 else stored.float()

    def read(self, origin, shape) -> torch.Tensor:
        return self.decode(self.values[placement(origin, shape)])

    def write(self, origin, delta: torch.Tensor) -> None:
        self.values[placement(origin, delta.shape)] = self.encode(delta)


def placement(origin, shape) -> tuple:
    """The advanced index of a batch's images in the store: image `index`, its crop's rows and
    columns in the padded frame, the columns reversed where it was flipped."""
    b, c, h, w = shape
    device = origin.index.device
    rows = torch.arange(h, device=device).expand(b, h)
    cols = torch.arange(w, device=device).expand(b, w)
    if origin.crop is not None:
        rows, cols = rows + origin.crop[:, :1], cols + origin.crop[:, 1:]
    if origin.flip is not None:
        cols = torch.where(origin.flip[:, None], cols.flip(1), cols)
    return (origin.index[:, None, None, None], torch.arange(c, device=device)[None, :, None, None],
            rows[:, None, :, None], cols[:, None, None, :])


class ATTA(Method):
    name = "atta"
    label = "ATTA"
    reference = ("Zheng et al. 2020; haizhongzheng/ATTA (δ kept per image across epochs, "
                 "k steps a batch, reset every R epochs)")
    optimizer, lr, schedule = "sgd", 0.1, "multistep"
    fixed_attack_steps = 1  # not PGD-k's --steps: its own k (attack_steps reads atta_k)
    needs_index = True
    same_state_on_every_rank = True  # the ranks exchange every new δ (see the docstring)
    options = (
        MethodOption("atta_k", int, 1, "ATTA: PGD steps per batch from the stored perturbation "
                     "(its ATTA-k; the code's configs: 1, 3, 10).", low=1),
        MethodOption("atta_reset", int, 10, "ATTA: reset the stored perturbations every R epochs "
                     "(0: never, as its MNIST code).", low=0),
        MethodOption("atta_storage", str, "fp32", "ATTA: storage of the per-image perturbation: "
                     "fp32, fp16 or int8 (round(δ/ε·127)); N×C×H×W×4, ×2 or ×1 bytes.",
                     choices=tuple(STORAGE_DTYPES)),
    )
    recipes = {"small": dict(optimizer="sgd", lr=0.01, schedule="multistep", weight_decay=0.0,
                             atta_reset=0),
               "cifar": dict(optimizer="sgd", lr=0.1, schedule="multistep", weight_decay=2e-4,
                             atta_reset=10)}
    imagenet_epochs = 90.0  # no ImageNet setting in the paper: the standard schedule

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.store: DeltaStore | None = None
        self.loaded: dict | None = None  # a checkpoint's store, placed at the next step
        self.epoch, self.reset_at = 0, 0  # the store was (re)set at the start of epoch reset_at

    def default_alpha(self, eps: float, steps: int) -> float:
        if self.atta_k in CODE_STEP:
            return eps * CODE_STEP[self.atta_k] / CODE_EPS
        return eps * min(0.5, 2.5 / self.atta_k)

    @property
    def attack_steps(self) -> int:
        return self.atta_k

    @classmethod
    def compare_train(cls, b: Budget) -> dict:
        return dict(super().compare_train(b), atta_k=1)

    @classmethod
    def compare_label(cls, b: Budget) -> str:
        return f"{cls.label}-1"

    def set_progress(self, t: float) -> None:
        super().set_progress(t)
        self.epoch = int(t)

    def perturb(self, trainer, x, y, start=None):
        return pgd(trainer.attack_model, x, y, self.attack_config(), start=start)

    def attack_config(self):
        return replace(super().attack_config(), steps=self.atta_k, random_start=False)

    def step(self, trainer, x, y, set_lr, origin=None):
        check(origin is not None, "method", "ATTA keeps a perturbation per training image: "
              "its step needs each image's Origin (the loader's ask_origin())")
        store = self._store(x, origin)
        start = x + store.read(origin, x.shape)
        x_adv = trainer.attack(lambda t, x_, y_: self.perturb(t, x_, y_, start), x, y)
        update = trainer.update(x_adv, y)
        with torch.no_grad():
            self._write(origin, x_adv - x)
        return batch_stats(update, y)

    def _store(self, x, origin) -> DeltaStore:
        """The store on x's device; made (zero) at the first batch or from a checkpoint, zeroed
        at the start of each R-th epoch."""
        if self.store is None:
            frame = (x.shape[1], x.shape[2] + 2 * origin.pad, x.shape[3] + 2 * origin.pad)
            self.store = DeltaStore(origin.size, frame, self.atta_storage, self.eps_target,
                                    x.device)
            if self.loaded is not None:
                check(self.loaded["values"].shape == self.store.values.shape, "resume",
                      f"the checkpoint's ATTA store is {tuple(self.loaded['values'].shape)}, "
                      f"this data gives {tuple(self.store.values.shape)}")
                self.store.values.copy_(self.loaded["values"])
                self.reset_at, self.loaded = self.loaded["reset_at"], None
        if self.atta_reset and (self.epoch + 1) % self.atta_reset == 0 and \
                self.reset_at != self.epoch:
            self.store.values.zero_()
            self.reset_at = self.epoch
        return self.store

    def _write(self, origin, delta) -> None:
        """Store the batch's new δ; under DDP every rank's, so each rank's store stays whole."""
        enc = self.store.encode(delta)
        placed = torch.cat([origin.index[:, None],
                            torch.zeros(len(delta), 2, dtype=torch.long, device=delta.device)
                            if origin.crop is None else origin.crop,
                            torch.zeros(len(delta), 1, dtype=torch.long, device=delta.device)
                            if origin.flip is None else origin.flip[:, None].long()], 1)
        placed, enc = all_ranks(placed), all_ranks(enc)
        where = type(origin)(placed[:, 0], origin.size, placed[:, 1:3], placed[:, 3].bool(),
                             origin.pad)
        self.store.values[placement(where, enc.shape)] = enc

    def state_dict(self) -> dict:
        if self.store is None:
            return dict(self.loaded) if self.loaded else {}
        return {"values": self.store.values.cpu(), "reset_at": self.reset_at}

    def load_state_dict(self, state: dict) -> None:
        self.store, self.loaded = None, (dict(state) if state.get("values") is not None else None)


def all_ranks(t: torch.Tensor) -> torch.Tensor:
    """`t` of every rank, rank after rank (the same batch size on every rank: the sampler pads)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)
