"""`fit`: the one training loop every method runs through.

Per iteration: the LR from the schedule (a function of fractional epochs), `method.step`.
Per epoch: train loss/accuracy, train robust accuracy on the fixed `train_eval` subset, clean and
PGD accuracy on `val` (never test), wall-clock, images/s and attack time per iteration, written as
a row of `metrics.jsonl` and `summary.csv`; `last.pt` (and `best.pt`, chosen on val) written
atomically; LR and accuracy plots. `resume=True` continues from `last.pt` exactly.
"""
from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from aft_fast.attacks import AttackConfig
from aft_fast.distributed import Dist
from aft_fast.evaluate import accuracy
from aft_fast.io import write_text
from aft_fast.runtime import synced_clock
from aft_fast.train.checkpoint import read_checkpoint, save_checkpoint, set_rng_state
from aft_fast.train.methods import Method, Trainer
from aft_fast.train.plots import plot_accuracy, plot_schedule

RUN_FILES = ("args.yaml", "metrics.jsonl", "summary.csv", "last.pt", "best.pt", "lr.png",
             "accuracy.png")


def prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Never clobber anything by accident: a non-empty run dir needs --resume or --overwrite, and
    --overwrite replaces only the run's own files."""
    if resume:
        if not (run_dir / "last.pt").is_file():
            raise FileNotFoundError(f"--resume: {run_dir / 'last.pt'} does not exist; start the run "
                                    "without --resume")
        return
    existing = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
    if existing and not overwrite:
        shown = ", ".join(existing[:5]) + (", ..." if len(existing) > 5 else "")
        raise FileExistsError(f"--out {run_dir} is not empty ({shown}); pass --resume to continue "
                              "the run there, --overwrite to replace its run files (other files "
                              "are kept), or another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    for f in RUN_FILES:  # --overwrite: no file of the old run may pass for one of the new run
        if (run_dir / f).exists():
            (run_dir / f).unlink()


def _write_tables(run_dir: Path, rows: list[dict]) -> None:
    write_text("".join(json.dumps(r) + "\n" for r in rows), run_dir / "metrics.jsonl")
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    write_text(buf.getvalue(), run_dir / "summary.csv")


def fit(method: Method, model: torch.nn.Module, loaders, *, arch: str, epochs: int, optimizer,
        schedule, run_dir, device: torch.device, eval_attack: AttackConfig, amp: str | None = None,
        channels_last: bool = False, resume: bool = False, overwrite: bool = False,
        log_every: int = 50, quiet: bool = False, eval_max_batches: int | None = None,
        co_guard: bool = False, dist: Dist | None = None, ddp_model=None,
        config: dict | None = None) -> dict:
    """Train `model` with `method`; returns the last epoch's metrics row (+ best)."""
    dist = dist or Dist()
    run_dir = Path(run_dir)
    if dist.is_main:
        prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    dist.barrier()
    # What the batches go through (DDP wrapper, compiled module). Never truth-tested: a compiled
    # module raises on len().
    net = ddp_model if ddp_model is not None else model
    # Attacks run on the plain (or compiled) module, weight updates through the DDP wrapper.
    trainer = Trainer(net, optimizer, amp, device, attack_model=model if dist.enabled else net)
    rows, best, start_epoch = [], None, 0
    if resume:
        ckpt = read_checkpoint(run_dir / "last.pt")
        model.model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            trainer.scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        method.load_state_dict(ckpt.get("method_state") or {})
        start_epoch, best = ckpt["epoch"] + 1, ckpt.get("best")
        if (run_dir / "metrics.jsonl").exists():
            rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
                    if line.strip() and json.loads(line)["epoch"] < start_epoch]
    if dist.is_main:
        write_text(yaml.safe_dump(config or {}, sort_keys=False), run_dir / "args.yaml")
        plot_schedule(schedule, run_dir / "lr.png")
    spec = loaders.spec
    meta = dict(arch=arch, num_classes=spec.num_classes, input_size=spec.image_size,
                method=method.name, config=config or {})
    select_key = "val_clean_acc" if method.name == "natural" else "val_robust_acc"
    n_batches = len(loaders.train)
    show_bar = not quiet and dist.is_main and sys.stderr.isatty()
    guard_batch = next(iter(loaders.val)) if co_guard else None
    guard_best = None
    # Attack timings synchronise the device: every iteration on CPU (free), a sample on GPUs.
    timed_every = 1 if device.type == "cpu" else max(1, min(log_every, 20))

    for epoch in range(start_epoch, epochs):
        loaders.train.set_epoch(epoch)
        sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss*n, correct, n
        trainer.attack_seconds, trainer.attack_calls = 0.0, 0
        data_time, t_epoch = 0.0, synced_clock(device)
        t_data = time.perf_counter()
        bar = tqdm(total=n_batches, desc=f"{method.name} epoch {epoch + 1}/{epochs}",
                   disable=not show_bar, leave=False)
        for i, (x, y) in enumerate(loaders.train):
            data_time += time.perf_counter() - t_data

            def set_lr(frac: float, i=i) -> None:
                lr = schedule(epoch + (i + frac) / n_batches)
                for group in optimizer.param_groups:
                    group["lr"] = lr

            set_lr(0.0)
            trainer.time_attack = i % timed_every == timed_every - 1 or i == n_batches - 1
            stats = method.step(trainer, x, y, set_lr)
            sums += torch.stack([stats.loss_sum.double(), stats.correct.double(),
                                 torch.tensor(float(stats.n), dtype=torch.float64, device=device)])
            if (i + 1) % log_every == 0 and dist.is_main and not quiet:
                s = sums.tolist()  # the one host sync of a log interval
                elapsed = synced_clock(device) - t_epoch
                msg = (f"loss {s[0] / s[2]:.4f} acc {s[1] / s[2]:.3f} "
                       f"lr {optimizer.param_groups[0]['lr']:.3g} "
                       f"{s[2] * dist.world_size / elapsed:.0f} img/s data {data_time:.1f}s")
                if show_bar:
                    bar.set_postfix_str(msg)
                else:
                    print(f"  epoch {epoch + 1} iter {i + 1}/{n_batches}: {msg}", flush=True)
            bar.update(1)
            t_data = time.perf_counter()
        bar.close()
        sums = dist.sum(sums)
        epoch_seconds = synced_clock(device) - t_epoch
        loss_sum, correct, n = sums.tolist()

        val = accuracy(model, loaders.val, cfg=eval_attack, max_batches=eval_max_batches,
                       reduce=dist.sum)
        train_rob = accuracy(model, loaders.train_eval, cfg=eval_attack,
                             max_batches=eval_max_batches, reduce=dist.sum)
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "train_loss": loss_sum / n,
               "train_acc": correct / n, "train_clean_acc": train_rob["clean_acc"],
               "train_robust_acc": train_rob["robust_acc"], "val_clean_acc": val["clean_acc"],
               "val_robust_acc": val["robust_acc"], "epoch_seconds": epoch_seconds,
               "images_per_second": n / epoch_seconds,
               "attack_ms_per_iter": (1e3 * trainer.attack_seconds / trainer.attack_calls
                                      if trainer.attack_calls else None),
               "eval_seconds": val["seconds"] + train_rob["seconds"]}
        rows.append(row)
        stop = False
        if guard_batch is not None:
            gx, gy = guard_batch
            g = accuracy(model, [(gx, gy)], cfg=eval_attack)["robust_acc"]
            row["guard_pgd_acc"] = g
            if guard_best is not None and g < 0.5 * guard_best[0]:
                # Catastrophic overfitting (Wong et al.): PGD accuracy collapsed while FGSM
                # training goes on. Roll back to the last good weights and stop.
                model.model.load_state_dict(guard_best[1])
                row["guard"] = f"rolled back: PGD acc {g:.3f} < half of {guard_best[0]:.3f}"
                stop = True
            elif guard_best is None or g >= guard_best[0]:
                guard_best = (g, {k: v.detach().clone() for k, v in model.model.state_dict().items()})
        improved = best is None or (row[select_key] or 0) >= best["value"]
        if improved:
            best = {"epoch": epoch, "metric": select_key, "value": row[select_key] or 0}
        if dist.is_main:
            common = dict(model=model, epoch=epoch, optimizer=optimizer, scaler=trainer.scaler,
                          schedule=schedule, metrics=row, best=best,
                          method_state=method.state_dict(), **meta)
            if improved:
                save_checkpoint(run_dir / "best.pt", **common)
            save_checkpoint(run_dir / "last.pt", **common)
            _write_tables(run_dir, rows)
            plot_accuracy(rows, run_dir / "accuracy.png")
            if not quiet:
                rob = row["val_robust_acc"]
                print(f"epoch {epoch + 1}/{epochs} [{method.name}] loss {row['train_loss']:.4f} "
                      f"train acc {row['train_acc']:.3f} | val clean {row['val_clean_acc']:.3f} "
                      f"robust {'-' if rob is None else f'{rob:.3f}'} | {epoch_seconds:.1f}s "
                      f"{row['images_per_second']:.0f} img/s", flush=True)
                if "guard" in row:
                    print(f"  co-guard: {row['guard']}; stopping", flush=True)
        if stop or not all(math.isfinite(v) for v in (row["train_loss"],)):
            break
    return {"last": rows[-1] if rows else None, "best": best, "rows": rows}
