"""`fit`: the one training loop every method runs through, in the shape of timm's train.py.

    fit
     ├─ train_one_epoch   per batch: LR from the schedule (a function of fractional epochs),
     │                    `method.step`, on-device sums; a log line every --log-every steps,
     │                    last.pt every --save-every steps, SIGTERM/SIGINT → checkpoint and exit
     ├─ evaluate_epoch    clean (+ PGD) accuracy on val and train_eval within the budget, and
     │                    of the weight average (--ema) on val; a signal interrupts it between
     │                    batches (checkpoint, exit)
     └─ end_epoch         metrics row, co-guard, best.pt / last.pt, tables and plots (RunDir),
                          TensorBoard (`tensorboard.py`)

What a run keeps between steps is a `TrainState` (it writes and reads the checkpoint); the
non-finite policy is `nonfinite.py`, preemption `preemption.py`, the budget `evaluation.py`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from aft_fast.distributed import Dist
from aft_fast.evaluate import Interrupted
from aft_fast.train.evaluation import EvalBudget, evaluate_epoch
from aft_fast.train.checkpoint import rng_state, set_rng_state
from aft_fast.train.nonfinite import NonFiniteLoss
from aft_fast.train.preemption import Preempted, StopRequest
from aft_fast.train.run_dir import RunDir
from aft_fast.train.state import TrainState
from aft_fast.train.step_log import StepLog, say
from aft_fast.train.tensorboard import EpochBoard

ROW_KEYS = ("epoch", "lr", "train_loss", "train_acc", "train_clean_acc", "train_robust_acc",
            "val_clean_acc", "val_robust_acc", "epoch_seconds", "images_per_second",
            "attack_ms_per_iter", "eval_seconds")
EMA_KEYS = ("ema_val_clean_acc", "ema_val_robust_acc")  # the weight average's (--ema)
TEST_KEYS = ("test_clean_acc", "test_robust_acc")  # --test-each-epoch: reported, never chosen on


@dataclass
class LoopConfig:
    """How the loop runs (not what it trains)."""
    epochs: int
    budget: EvalBudget
    save_every: int | None = None  # steps between mid-epoch checkpoints
    log_every: int = 50
    quiet: bool = False
    tensorboard: bool = False  # RUN/tensorboard event files (train's --tensorboard)
    dist: Dist = field(default_factory=Dist)

    @property
    def show(self) -> bool:
        return not self.quiet and self.dist.is_main


def fit(state: TrainState, loaders, run_dir: RunDir, cfg: LoopConfig, *,
        resume: bool = False) -> dict:
    """Train `state` up to `cfg.epochs`; returns {"last": row, "best": best, "rows": rows}."""
    if resume:
        state.restore(run_dir.load_last())
        run_dir.write_rows(state.rows)  # the tables may lag behind last.pt after a kill
    else:
        save(state, run_dir, cfg)  # from the first step on, the run dir holds a resumable state
    say(cfg.show, cfg.budget.describe())
    board = EpochBoard(run_dir.path, cfg.tensorboard and cfg.dist.is_main, state.rows)
    keys = ROW_KEYS + (EMA_KEYS if state.ema else ()) + (TEST_KEYS if cfg.budget.test else ())
    with StopRequest() as stop, contextlib.closing(board):
        while state.epoch < cfg.epochs and not state.stopped:
            row = train_one_epoch(state, loaders.train, run_dir, cfg, stop)
            before = rng_state()
            try:
                row.update(evaluate(state, loaders, cfg, eval_stop(stop, cfg)))
            except Interrupted:  # the epoch's training is kept; a resume evaluates it again,
                set_rng_state(before)  # from the same random draws (PGD's random starts)
                preempt(state, run_dir, cfg, stop.signum, during=" (in its evaluation, redone "
                        "on resume)")
            end_epoch(state, {k: row[k] for k in keys}, run_dir, cfg)
            board.epoch(state.rows[-1])
            if state.epoch < cfg.epochs and stop.requested(cfg.dist):  # during end_epoch
                preempt(state, run_dir, cfg, stop.signum)
    return {"last": state.rows[-1] if state.rows else None, "best": state.best,
            "rows": state.rows}


def train_one_epoch(state: TrainState, loader, run_dir: RunDir, cfg: LoopConfig,
                    stop: StopRequest) -> dict:
    """The training part of the epoch's row, from `state.batch` (0, or a resumed position)."""
    epoch, trainer, n_batches = state.epoch, state.trainer, len(loader)
    state.n_batches = n_batches
    loader.set_epoch(epoch, start_batch=state.batch)
    if state.batch == 0 or state.sums is None:
        state.sums = state.new_sums()
    trainer.reset_attack_timer()
    log = StepLog(epoch=epoch, epochs=cfg.epochs, n_batches=n_batches, start_batch=state.batch,
                  name=state.method.name, device=trainer.device, log_every=cfg.log_every,
                  show=cfg.show, world_size=cfg.dist.world_size)
    for i, (x, y, *origin) in enumerate(loader, start=state.batch):
        log.batch_ready()
        if state.guard is not None:
            state.guard.observe(x, y)
        trainer.step_index, trainer.time_attack = epoch * n_batches + i, log.times_attack(i)
        # a method that keeps state per training image (needs_index) gets each image's Origin
        extra = {"origin": origin[0]} if origin else {}
        stats = state.method.step(trainer, x, y, lr_setter(state, i, n_batches), **extra)
        state.sums += torch.stack([torch.as_tensor(v, device=state.sums.device).double()
                                   for v in (stats.loss_sum, stats.correct, stats.n)])
        state.batch = i + 1
        log.step_done(len(y))
        if log.due(i):
            check_nonfinite(state, cfg)
            log.line(i, state.sums, state.optimizer.param_groups[0]["lr"])
        if cfg.save_every and (trainer.step_index + 1) % cfg.save_every == 0 and i + 1 < n_batches:
            save(state, run_dir, cfg)
        if stop.requested(cfg.dist, trainer.step_index):
            preempt(state, run_dir, cfg, stop.signum)
    seconds, images_per_second = log.finish()
    check_nonfinite(state, cfg)  # before minutes of evaluation on NaN weights
    loss_sum, correct, n = cfg.dist.sum(state.sums).tolist()
    return {"epoch": epoch, "lr": state.optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum / max(n, 1), "train_acc": correct / max(n, 1),
            "epoch_seconds": seconds, "images_per_second": images_per_second,
            "attack_ms_per_iter": trainer.attack_ms_per_iter()}


def evaluate(state: TrainState, loaders, cfg: LoopConfig, stop) -> dict:
    """The epoch's evaluation: the weights on val and train_eval, their average (--ema) on val."""
    row = evaluate_epoch(state.model, loaders, cfg.budget, cfg.dist.sum, stop=stop)
    if state.ema is not None:
        avg = evaluate_epoch(state.ema.model, loaders, cfg.budget, cfg.dist.sum, stop=stop,
                             train_eval=False)
        row.update(ema_val_clean_acc=avg["val_clean_acc"], ema_val_robust_acc=avg["val_robust_acc"],
                   eval_seconds=row["eval_seconds"] + avg["eval_seconds"])
    return row


def eval_stop(stop: StopRequest, cfg: LoopConfig):
    """What the evaluation asks before each batch: a signal stops it at once. Under DDP the
    ranks' shards may differ by a batch, so they agree only after it (no collective inside)."""
    return None if cfg.dist.enabled else (lambda i: stop.requested(cfg.dist))


def lr_setter(state: TrainState, i: int, n_batches: int):
    """Set the LR for batch `i` now; the returned `set_lr(frac)` moves it within the batch
    (Free AT's replays)."""
    def set_lr(frac: float) -> None:
        t = state.epoch + (i + frac) / n_batches
        state.method.set_progress(t)  # the ε warm-up, where the method reads ε each step
        lr = state.schedule(t)
        for group in state.optimizer.param_groups:
            group["lr"] = lr

    set_lr(0.0)
    return set_lr


def end_epoch(state: TrainState, row: dict, run_dir: RunDir, cfg: LoopConfig) -> None:
    """Co-guard, best choice, the checkpoints (best.pt before last.pt before the tables, so
    best.pt is never older than the metrics say), the epoch's summary line."""
    if state.trainer.nonfinite.skip:
        skipped = check_nonfinite(state, cfg)
        row["skipped_steps"] = skipped - sum(r.get("skipped_steps", 0) for r in state.rows)
    if state.guard is not None and state.guard.check(state.model, row, row["epoch"],
                                                       reduce=cfg.dist.sum):
        state.stopped = row["guard"]
    # best.pt is chosen on the weights that are evaluated: the average when there is one
    key = ("ema_" if state.ema else "") + ("val_robust_acc" if state.method.adversarial
                                           else "val_clean_acc")
    improved = state.best is None or (row[key] or 0) >= state.best["value"]
    if improved:
        state.best = {"epoch": row["epoch"], "metric": key, "value": row[key] or 0}
    state.rows.append(row)
    state.epoch, state.batch, state.sums = state.epoch + 1, 0, None
    save(state, run_dir, cfg, best=improved)
    run_dir.write_rows(state.rows)
    say(cfg.show, epoch_line(state, row, cfg.epochs))


def epoch_line(state: TrainState, row: dict, epochs: int) -> str:
    rob = row["val_robust_acc"]
    line = (f"epoch {row['epoch'] + 1}/{epochs} [{state.method.name}] loss "
            f"{row['train_loss']:.4f} train acc {row['train_acc']:.3f} | val clean "
            f"{row['val_clean_acc']:.3f} robust {'-' if rob is None else f'{rob:.3f}'} | "
            f"{row['epoch_seconds']:.1f}s {row['images_per_second']:.0f} img/s, eval "
            f"{row['eval_seconds']:.1f}s")
    if "ema_val_clean_acc" in row:
        rob = row["ema_val_robust_acc"]
        line += (f" | average: val clean {row['ema_val_clean_acc']:.3f} robust "
                 f"{'-' if rob is None else f'{rob:.3f}'}")
    if row.get("skipped_steps"):
        line += f" | {row['skipped_steps']} non-finite batch(es) skipped"
    if "guard" in row:
        line += f"\n  co-guard: {row['guard']}; stopping"
    return line


def check_nonfinite(state: TrainState, cfg: LoopConfig) -> int:
    """Read the on-device record (one sync; all ranks at the same step). Under `stop`, a
    non-finite loss ends the run naming its step; returns the count of non-finite updates."""
    monitor = state.trainer.nonfinite
    first, count = monitor.read()
    if cfg.dist.enabled:
        count = int(cfg.dist.sum(torch.tensor([count], device=monitor.first.device)).item())
    if count and not monitor.skip:
        step = first if first >= 0 else state.trainer.step_index  # first: on another rank
        raise NonFiniteLoss(step, state.n_batches, count)
    return count


def save(state: TrainState, run_dir: RunDir, cfg: LoopConfig, *, best: bool = False) -> None:
    """Write last.pt (and best.pt) unless the weights went non-finite: NaN never overwrites a
    checkpoint."""
    check_nonfinite(state, cfg)
    finite = torch.stack([torch.isfinite(t).all() for t in state.model.model.state_dict().values()
                          if t.is_floating_point()]).all()
    if not bool(finite):
        raise NonFiniteLoss(state.trainer.step_index, state.n_batches, 0, what="weights")
    run_dir.save(state.checkpoint(), best=best)


def preempt(state: TrainState, run_dir: RunDir, cfg: LoopConfig, signum: int,
            during: str = "") -> None:
    """Checkpoint the position after the step just done and exit with 128 + signum."""
    save(state, run_dir, cfg)
    say(cfg.dist.is_main, f"stopped by signal {signum} at epoch {state.epoch + 1}, batch "
        f"{state.batch}{during}: {run_dir.last} resumes the run exactly (--resume)")
    raise Preempted(signum, run_dir.last)
