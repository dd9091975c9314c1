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
from aft_fast.data import make_loaders
from aft_fast.errors import OptionError
from aft_fast.fast_path import FastPath, resolve
from aft_fast.models import build, weights_path
from aft_fast.policy import OPTIMIZERS
from aft_fast.runtime import pick_device
from aft_fast.train.co_guard import DESCRIPTION as GUARD_DESCRIPTION
from aft_fast.train.ema import WeightAverage
from aft_fast.train.evaluation import eval_budget
from aft_fast.train.loop import LoopConfig, fit
from aft_fast.train.options import TrainOptions
from aft_fast.train.partial import freeze_batchnorm_stats, trainable_parameters
from aft_fast.train.pretrained_bn import warn_pretrained_batchnorm
from aft_fast.train.run_dir import RunDir, checkpoint_bytes
from aft_fast.train.same_run import check_same_run
from aft_fast.train.schedules import make_schedule
from aft_fast.train.state import TrainState
from aft_fast.train.update import Trainer

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(name: str, params, lr: float, momentum: float, weight_decay: float, *,
                   fused: bool = False):
    """`fused`: one kernel per step that can also skip it on the device (the non-finite `skip`
    policy uses its `found_inf` input)."""
    kw = {"fused": True} if fused else {}
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, **kw)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, **kw)
    raise OptionError("optimizer", f"must be one of {', '.join(OPTIMIZERS)}; got {name!r}")


def train(opts: TrainOptions) -> dict:
    """Run one training job; returns fit's summary plus the run directory."""
    opts.check()
    if opts.method_class().needs_weights and not opts.weights and not opts.allow_scratch:
        raise OptionError("weights", f"method {opts.method} fine-tunes a pretrained model: "
                          "pass --weights PATH (a local torchvision state_dict or an aft_fast "
                          "checkpoint), or --allow-scratch to fine-tune random weights anyway")
    if opts.weights and not os.path.isfile(weights_path(opts.arch, opts.weights)):  # before data
        raise OptionError("weights", f"{opts.weights}: no such file (a local torchvision "
                          "state_dict or an aft_fast checkpoint is expected)")
    seed_everything(opts.seed)
    dist, device = distributed.setup(pick_device(opts.device))
    try:  # a bad option found below must not leave a process group behind
        return _train(opts, dist, device)
    finally:
        distributed.teardown()


def _train(opts: TrainOptions, dist, device) -> dict:
    run_dir = RunDir(opts.out, is_main=dist.is_main)
    run_dir.prepare(resume=opts.resume, overwrite=opts.overwrite)  # before any data is read
    try:  # the run directory is locked from here on
        if opts.resume:  # every rank: all refuse together
            check_same_run(run_dir.load_last().get("config"), asdict(opts), opts.out)
        return _run(opts, dist, device, run_dir)
    finally:
        run_dir.unlock()


def _run(opts: TrainOptions, dist, device, run_dir: RunDir) -> dict:
    dist.barrier()
    plan = distributed.plan_batch(opts, dist)  # the global batch, kept by a resume
    if plan.note() and dist.is_main and not opts.quiet:
        print(plan.note(), flush=True)
    loaders = open_data(opts, device, batch_size=plan.per_process, rank=dist.rank,
                        world_size=dist.world_size)
    model = build_model(opts, loaders.spec, device)
    warn_pretrained_batchnorm(opts, model)
    fast = resolve(opts.amp, opts.channels_last, device, model)
    if fast.channels_last:  # the loaders hand out batches in the model's layout
        model = model.to(memory_format=torch.channels_last)
        for split in loaders[:4]:
            split.channels_last = True
    if dist.is_main and not opts.quiet:
        print(fast.describe(), flush=True)
    check_input_size(model, loaders.val, opts)
    state, epochs, config = _state(opts, model, device, dist, loaders.spec, plan, fast)
    if state.method.needs_index:  # before any data is read: a loader that cannot refuses
        loaders.train.ask_origin()
    config["resolved"]["augment"] = loaders.spec.augment
    state.guard = state.method.guard(opts.seed)
    if state.guard is not None:
        config["resolved"]["co_guard"] = GUARD_DESCRIPTION
    budget = eval_budget(adversarial=state.method.adversarial, eps=opts.eps,
                         steps=opts.eval_steps,
                         full=opts.eval_full, images=opts.eval_images,
                         train_size=loaders.spec.train_size, max_batches=opts.eval_max_batches,
                         world_size=dist.world_size, test=opts.test_each_epoch)
    config["resolved"]["eval"] = budget.describe()
    run_dir.check_space(checkpoint_bytes(model, state.optimizer, ema=state.ema is not None))
    run_dir.start(config, state.schedule)
    loop = LoopConfig(int(math.ceil(epochs)), budget, save_every=opts.save_every,
                      log_every=opts.log_every, quiet=opts.quiet, dist=dist,
                      tensorboard=opts.tensorboard)
    if dist.rank:  # after the model is built (DDP makes every rank start from rank 0's weights)
        seed_everything(distributed.rank_seed(opts.seed, dist.rank))
    summary = fit(state, loaders, run_dir, loop, resume=opts.resume)
    return {**summary, "run_dir": opts.out, "config": config}


def open_data(opts: TrainOptions, device, *, batch_size: int | None = None, rank: int = 0,
              world_size: int = 1):
    """The run's loaders (train, train_eval, val, test) as `opts` asks for them."""
    return make_loaders(opts.data, batch_size=batch_size or opts.batch_size, loader=opts.loader,
                        image_size=opts.image_size, device=device, workers=opts.workers,
                        seed=opts.seed, rank=rank, world_size=world_size,
                        eval_batch_size=opts.eval_batch_size,
                        check_files=opts.check_files, augment=opts.augment,
                        class_map=opts.class_map, train_images=opts.train_images,
                        val_size=opts.val_images)


def build_model(opts: TrainOptions, spec, device) -> torch.nn.Module:
    """The network the run starts from (`opts.weights` loaded), on `device`."""
    return build(opts.arch, spec.num_classes, weights=opts.weights, in_channels=spec.channels,
                 replace_head=opts.replace_head, mean=opts.mean, std=opts.std).to(device)


def check_input_size(model, loader, opts: TrainOptions):
    """One forward of one batch before training: an image size the network cannot take fails
    here, naming the option. The global RNG is left as it was (a loader's iterator may draw
    from it)."""
    with torch.random.fork_rng(devices=[]):
        x, y = next(iter(loader))
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(x[:2])
    except RuntimeError as exc:
        option = "image_size" if opts.image_size or os.path.isdir(opts.data) else "arch"
        raise OptionError(option, f"{opts.arch} cannot take {tuple(x.shape[1:])} images "
                          f"({str(exc).splitlines()[0]}); pick another --image-size or "
                          "--arch") from None
    finally:
        model.train(was_training)


def _state(opts: TrainOptions, model, device, dist, spec, plan: distributed.BatchPlan,
           fast: FastPath):
    """The method, optimizer, schedule and Trainer of the run as a TrainState; epochs; config."""
    method = opts.method_class()(eps=opts.eps, alpha=opts.alpha, steps=opts.steps,
                                 amp=fast.amp, bn_mode=opts.bn_mode,
                                 eps_warmup_epochs=opts.eps_warmup_epochs, compile=opts.compile,
                                 **opts.method_kwargs())
    epochs = opts.epochs if opts.epochs is not None else method.default_epochs()
    params = trainable_parameters(model, opts.train_only)  # before DDP wraps the model
    if opts.freeze_bn_stats:
        freeze_batchnorm_stats(model)
    optimizer = make_optimizer(opts.optimizer or method.optimizer, params, opts.lr or method.lr,
                               opts.momentum, opts.weight_decay,
                               fused=opts.on_nonfinite == "skip")
    schedule = make_schedule(opts.schedule or method.schedule, opts.lr or method.lr, epochs,
                             **(opts.schedule_params or {}))
    # What the batches go through (DDP wrapper, compiled module): never truth-tested, a compiled
    # module raises on len(). Attacks run on the plain (or compiled) module.
    ddp = distributed.wrap(model, dist, device, plan)  # SyncBatchNorm with --sync-bn
    net = torch.compile(ddp) if opts.compile else ddp
    trainer = Trainer(net, optimizer, fast.amp, device,
                      attack_model=model if dist.enabled else net, on_nonfinite=opts.on_nonfinite,
                      ema=WeightAverage(model, opts.ema) if opts.ema else None)
    config = {**asdict(opts), "epochs": epochs, "resolved": {
        "optimizer": opts.optimizer or method.optimizer, "lr": opts.lr or method.lr,
        "schedule": schedule.name, **method.describe(), **fast.record(),
        "device": str(device), "world_size": dist.world_size,
        "global_batch": plan.global_batch, "batch_per_process": plan.per_process}}
    meta = dict(arch=opts.arch, num_classes=spec.num_classes, input_size=spec.image_size,
                method=opts.method, config=config)
    return TrainState(method, model, trainer, schedule, meta, dist=dist, seed=opts.seed), epochs, \
        config
