"""From options to a finished run: the one place the CLI, the demo and the MNIST reproduction
turn a configuration into data, model, method, optimizer, schedule and a call to `fit`."""
from __future__ import annotations

import math
import os
import random
from dataclasses import asdict

import numpy as np
import torch

from aft_fast import distributed
from aft_fast.attacks import AttackConfig
from aft_fast.errors import OptionError
from aft_fast.policy import OPTIMIZERS
from aft_fast.data import make_loaders
from aft_fast.models import build, weights_path
from aft_fast.runtime import pick_device
from aft_fast.train.loop import fit
from aft_fast.train.methods import METHODS, make_method
from aft_fast.train.options import TrainOptions
from aft_fast.train.schedules import make_schedule

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(name: str, params, lr: float, momentum: float, weight_decay: float):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise OptionError("optimizer", f"must be one of {', '.join(OPTIMIZERS)}; got {name!r}")


def train(opts: TrainOptions) -> dict:
    """Run one training job; returns fit's summary plus the run directory."""
    if opts.method not in METHODS:
        raise ValueError(f"--method must be one of {', '.join(METHODS)}; got {opts.method!r}")
    if opts.eps < 0:
        raise ValueError(f"--eps must be >= 0, got {opts.eps}")
    cls = METHODS[opts.method]
    if cls.needs_weights and not opts.weights and not opts.allow_scratch:
        raise ValueError(f"--method {opts.method} fine-tunes a pretrained model: pass --weights "
                         "PATH (a local torchvision state_dict or an aft_fast checkpoint), or "
                         "--allow-scratch to fine-tune random weights anyway")
    if opts.weights and not os.path.isfile(weights_path(opts.arch, opts.weights)):  # before data
        raise FileNotFoundError(f"--weights {opts.weights}: no such file (a local torchvision "
                                "state_dict or an aft_fast checkpoint is expected)")
    seed_everything(opts.seed)
    dist, device = distributed.setup(pick_device(opts.device))
    try:  # a bad option found below must not leave a process group behind
        return _train(opts, dist, device)
    finally:
        distributed.teardown()


def _train(opts: TrainOptions, dist, device) -> dict:
    loaders = make_loaders(opts.data, batch_size=opts.batch_size, loader=opts.loader,
                           image_size=opts.image_size, device=device, workers=opts.workers,
                           seed=opts.seed, rank=dist.rank, world_size=dist.world_size,
                           channels_last=opts.channels_last, eval_batch_size=opts.eval_batch_size,
                           check_files=opts.check_files)
    spec = loaders.spec
    model = build(opts.arch, spec.num_classes, weights=opts.weights, in_channels=spec.channels,
                  replace_head=opts.replace_head, mean=opts.mean, std=opts.std).to(device)
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)
    method = make_method(opts.method, eps=opts.eps, alpha=opts.alpha, steps=opts.steps,
                         amp=None if opts.amp == "none" else opts.amp, bn_mode=opts.bn_mode,
                         replays=opts.replays, compile=opts.compile)
    epochs = opts.epochs if opts.epochs is not None else method.epochs
    epochs = max(1, math.ceil(epochs / method.replays)) if opts.epochs is None else epochs
    optimizer = make_optimizer(opts.optimizer or method.optimizer, model.parameters(),
                               opts.lr or method.lr, opts.momentum, opts.weight_decay)
    schedule = make_schedule(opts.schedule or method.schedule, opts.lr or method.lr, epochs,
                             **(opts.schedule_params or {}))
    ddp = distributed.wrap(model, dist, device)
    net = torch.compile(ddp) if opts.compile else ddp
    eval_attack = AttackConfig(opts.eps, 2.5 * opts.eps / max(opts.eval_steps, 1), opts.eval_steps)
    config = {**asdict(opts), "epochs": epochs, "resolved": {
        "optimizer": opts.optimizer or method.optimizer, "lr": opts.lr or method.lr,
        "schedule": schedule.name, "alpha": method.alpha, "replays": method.replays,
        "device": str(device), "world_size": dist.world_size}}
    summary = fit(method, model, loaders, arch=opts.arch, epochs=int(math.ceil(epochs)),
                  optimizer=optimizer, schedule=schedule, run_dir=opts.out, device=device,
                  eval_attack=eval_attack, amp=None if opts.amp == "none" else opts.amp,
                  channels_last=opts.channels_last, resume=opts.resume,
                  overwrite=opts.overwrite, log_every=opts.log_every, quiet=opts.quiet,
                  eval_max_batches=opts.eval_max_batches, co_guard=opts.co_guard, dist=dist,
                  ddp_model=net, config=config)
    return {**summary, "run_dir": opts.out, "config": config}
