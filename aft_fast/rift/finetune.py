"""Fine-tune one module of the AT model on clean training data, through the one training loop:
`train()` with method natural, the AT checkpoint's weights, `train_only=module`.

Defaults are the reference code's: SGD, momentum 0.9, weight decay 5e-4, LR 1e-3 for 10 epochs,
×0.1 at half. The epoch kept (best.pt) is the one with the best *validation* clean accuracy
(the reference picks it on the test set).

BatchNorm: by default (`bn_stats="frozen"`) every BatchNorm layer stays in eval mode, so the
rest of the network is exactly the function the AT model computes at test time and only the
chosen module changes; the interpolation then mixes that module alone. `bn_stats="train"` is the
reference's choice: BatchNorm in train mode, running statistics drifting toward the clean data.
"""
from __future__ import annotations

from pathlib import Path

from aft_fast.train.checkpoint import data_settings
from aft_fast.train.options import TrainOptions
from aft_fast.train.run import train

MILESTONE = 0.5  # the LR is multiplied by GAMMA at half the run
GAMMA = 0.1


def finetune_options(*, checkpoint: str, ckpt: dict, module: str, data: str, out: str | Path,
                     eps: float, epochs: int = 10, lr: float = 1e-3, momentum: float = 0.9,
                     weight_decay: float = 5e-4, bn_stats: str = "frozen", amp: str = "auto",
                     channels_last: str = "auto", batch_size: int = 128,
                     eval_batch_size: int | None = None,
                     image_size: int | None = None, loader: str = "pytorch", workers: int = 2,
                     device: str = "auto", seed: int = 0, overwrite: bool = False,
                     quiet: bool = False) -> TrainOptions:
    """The training run that fine-tunes `module` of `checkpoint` (`ckpt`: its contents): the same
    network, normalisation and data pipeline. Each epoch is scored on clean val images only (the
    criterion that picks the epoch; robustness is scored once per α in the interpolation step),
    so ε is recorded but runs no attack here."""
    return TrainOptions(method="natural", arch=ckpt["arch"], mean=ckpt["mean"], std=ckpt["std"],
                        data=data, out=str(out), weights=checkpoint, **data_settings(ckpt),
                        train_only=module, freeze_bn_stats=bn_stats == "frozen", epochs=epochs,
                        batch_size=batch_size, eval_batch_size=eval_batch_size, lr=lr,
                        optimizer="sgd", momentum=momentum, weight_decay=weight_decay,
                        schedule="multistep",
                        schedule_params={"milestones": [MILESTONE], "gamma": GAMMA}, eps=eps,
                        eval_steps=None, amp=amp, channels_last=channels_last,
                        image_size=image_size, loader=loader,
                        workers=workers, device=device, seed=seed, overwrite=overwrite,
                        quiet=quiet)


def finetune(**kwargs) -> dict:
    """Run the fine-tune (`finetune_options`' arguments); train()'s summary."""
    return train(finetune_options(**kwargs))
