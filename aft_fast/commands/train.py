"""``aft-fast train``: every field of `TrainOptions` is a flag; `--config` YAML fills defaults."""
from __future__ import annotations

import click

from aft_fast.commands.common import (FAST_PATH_FLAGS, FAST_PATH_HELP, FAST_PATH_TYPES, FRACTION,
                                     config_option, json_option, options_from_dataclass)
from aft_fast.io import write_json
from aft_fast.policy import (AUGMENTS, BN_MODES, LOADERS, METHOD_NAMES,
                             NONFINITE_POLICIES, OPTIMIZERS)
from aft_fast.runtime import environment
from aft_fast.train.run import TrainOptions, train
from aft_fast.train.schedules import SCHEDULES

HELP = {
    "method": "Training method.",
    "arch": "Model architecture: ours (small_cnn, preact_resnet18, wrn28_10, wrn34_10), "
            "efficientnet_lite0, a torchvision or timm name (timm/NAME), or package.module:factory "
            "for your own nn.Module; `aft-fast models` lists them.",
    "mean": "Normalisation mean inside the model, one value or one per channel (0.5 or "
            "0.485,0.456,0.406; default: the arch's).",
    "std": "Normalisation std inside the model, like --mean (default: the arch's).",
    "data": "mnist5k, fashion-mnist, synthetic, or an ImageNet-style folder (train/<class>/*, "
            "val/<class>/*).",
    "out": "Run directory (args.yaml, metrics.jsonl, summary.csv, last.pt, best.pt, plots).",
    "weights": "Local weights to start from: a state_dict (module./_orig_mod. prefixes and "
               "state_dict/model wrappers are fine, .safetensors too) or an aft_fast checkpoint; "
               "`pretrained`: the file a packaged example ships (efficientnet_lite0).",
    "replace_head": "Re-initialise the classifier when --weights has another class count.",
    "allow_scratch": "Let aft run without --weights (fine-tuning random weights).",
    "train_only": "Train only this submodule's parameters (a name such as layer4.1.conv2 or 7; "
                  "the rest frozen), as RiFT does.",
    "global_batch": "Samples per step over all processes, split evenly among them (instead of "
                    "--batch-size per process); --resume keeps a run's global batch under any "
                    "number of processes.",
    "sync_bn": "DDP on GPUs: BatchNorm statistics over the global batch (SyncBatchNorm).",
    "freeze_bn_stats": "Keep BatchNorm layers in eval mode while training (running statistics "
                       "unchanged).",
    "epochs": "Passes over the training data (default: the method's; Free AT's default is "
              "divided by --replays, as each batch is replayed m times).",
    "lr": "Peak/base learning rate (default: the method's).",
    "optimizer": "sgd or adam (default: the method's).",
    "schedule": f"LR schedule: {', '.join(SCHEDULES)} (default: the method's).",
    "schedule_params": "YAML mapping of schedule parameters, e.g. '{every: 2, gamma: 0.5}'.",
    "eps": "l∞ radius in pixel units of [0,1] images; fractions like 8/255 accepted.",
    "alpha": "Attack step size (default: 2.5·eps/steps; Fast AT 1.25·eps; Free AT eps).",
    "steps": "PGD steps of the training attack.",
    "replays": "Free AT: replays per batch (m).",
    "eval_steps": "PGD steps of the per-epoch evaluation (default: 10 for adversarial methods, "
                  "0 = clean accuracy only for natural; 20 with --eval-full).",
    "eval_max_batches": "Evaluate at most this many batches per epoch (faster).",
    "eval_images": "Per-epoch evaluation: at most this many images of val and of train_eval "
                   "(default: 512, at most 5% of the training split, at least 128).",
    "eval_full": "Evaluate the whole val split and train_eval subset each epoch (PGD-20 unless "
                 "--eval-steps), instead of the budget.",
    "save_every": "Also write last.pt every N training steps (resumes mid-epoch exactly).",
    "on_nonfinite": "A NaN/inf training loss: stop (naming the step; checkpoints keep the last "
                    "finite weights) or skip that batch's update and count it.",
    "bn_mode": "BatchNorm mode during the training attack: eval or train (default: the "
               "method's reference code: train for fast-at and free-at, eval otherwise).",
    "eps_warmup_epochs": "Grow eps (and alpha) linearly from 0 over the first N epochs (0: off).",
    "compile": "torch.compile the weight update and the attack's forward + input backward.",
    "loader": "pytorch or dali (image folders).",
    "image_size": "Image side: folders' train crop / val centre crop (default: the images' own side "
                  "up to 64 px, else 224), synthetic data's side (default 32); (fashion-)mnist "
                  "is always 28.",
    "augment": "Folder augmentation: imagenet (random-resized crop + flip / resize + centre crop), "
               "small (4-px padded random crop + flip / as is), none (default: small for images "
               "of at most 64 px, else imagenet).",
    "train_images": "Train on a fixed subset of this many training images (the same for every "
                    "--seed; val and test unchanged): quick runs.",
    "class_map": "Folder classes -> the pretrained model's output indices: a JSON {class: index} "
                 "file, a class-list file (one a line), or a packaged map (imagenette).",
    "check_files": "Check image files' first/last bytes before training (refuses corrupt folders).",
    "co_guard": "Fast AT: after each epoch PGD-5 on its first training batch; a drop of more than 0.2 "
                "below the last epoch's stops the run on that epoch's weights (fast_adversarial).",
    "resume": "Continue the run in --out from last.pt, exactly.",
    "overwrite": "Replace a run already in --out.",
}
CHOICES = {"method": METHOD_NAMES, "bn_mode": BN_MODES, "optimizer": OPTIMIZERS,
           "schedule": SCHEDULES, "loader": LOADERS, "augment": AUGMENTS,
           "on_nonfinite": NONFINITE_POLICIES}


@click.command("train")
@config_option
@options_from_dataclass(TrainOptions, help={**HELP, **FAST_PATH_HELP}, choices=CHOICES,
                        types={"eps": FRACTION, "alpha": FRACTION, **FAST_PATH_TYPES},
                        flag_values=FAST_PATH_FLAGS)
@json_option
def train_command(json_path, **kwargs):
    """Train or fine-tune a model (natural, PGD AT, Free AT, Fast AT, AFT)."""
    summary = train(TrainOptions(**kwargs).check())
    if json_path:
        write_json({**summary, "environment": environment(summary["config"]["resolved"]["device"])},
                   json_path)
    best = summary["best"]
    click.echo(f"done: {summary['run_dir']} (best {best['metric']} {best['value']:.4f} at epoch "
               f"{best['epoch'] + 1})")
