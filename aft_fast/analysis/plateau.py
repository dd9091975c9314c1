"""The plateau study (the paper's Figure 4 and its step-LR(i, γ) discussion): fine-tune one
pretrained model with step-LR(i, γ) for several plateau lengths i and with AFT's slow start, fast
decay schedule; everything else equal (method, optimizer, peak LR, epochs, seed, initial weights).

The paper runs 6 values of i with γ = 0.5 but its text does not list them; the default here is 6
values spread evenly over [1, epochs] (i = epochs: one plateau, a constant LR).

Each run is an ordinary training run in `runs_dir/<name>/` followed by one evaluation of its final
weights (`last.pt`, the end of the schedule) on the test split, stored as `result.json` in the run
directory. A run with a `result.json` and the same settings is never redone; a run killed
mid-training is continued with `resume=True` (the loop's exact resume); a run directory with other
settings is refused, never overwritten.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from aft_fast.analysis.curves import best_epoch, schedule_curve
from aft_fast.analysis.output import percent_axis, plt, save_figure
from aft_fast.attacks import AttackConfig
from aft_fast.errors import OptionError, check
from aft_fast.evaluate import accuracy
from aft_fast.io import write_json
from aft_fast.policy import EVAL_STEPS, default_alpha
from aft_fast.train.options import TrainOptions

PAPER_RUNS, PAPER_GAMMA = 6, 0.5
AFT_SCHEDULE = "slow-start-fast-decay"
# What a sweep's run is: a finished run is reused, a killed one continued, only when these match
# (the options the sweep sets; the others keep defaults, which may move between versions).
EXPERIMENT_KEYS = ("method", "arch", "data", "weights", "epochs", "optimizer", "lr", "schedule",
                   "schedule_params", "eps", "alpha", "steps", "eval_steps", "eval_max_batches",
                   "batch_size", "seed")


def default_plateaus(epochs: int, n: int = PAPER_RUNS) -> list[int]:
    """`n` plateau lengths spread evenly over [1, epochs] (fewer when epochs < n)."""
    if epochs <= 1:
        return [1]
    return sorted({round(1 + k * (epochs - 1) / (n - 1)) for k in range(n)})


@dataclass
class SweepRun:
    name: str
    plateau: float | None  # None: AFT's schedule
    options: TrainOptions


def plan_sweep(base: TrainOptions, runs_dir, plateaus, gamma: float = PAPER_GAMMA,
               include_aft: bool = True) -> list[SweepRun]:
    """The runs of one sweep: step-LR(i, γ) for each i, then AFT's schedule."""
    check(base.epochs is not None and base.epochs >= 1, "epochs", "must be >= 1")
    check(base.weights is not None, "weights", "the sweep fine-tunes one pretrained model: pass "
          "its checkpoint or state_dict")
    check(0 < gamma < 1, "gamma", f"must be in (0, 1) (the LR is multiplied by it after each "
          f"plateau), got {gamma}")
    check(len(plateaus) > 0, "plateaus", "give at least one plateau length")
    for i in plateaus:
        check(0 < i <= base.epochs, "plateaus", f"each plateau length must be in (0, epochs = "
              f"{base.epochs:g}], got {i:g} (i = epochs already means one constant-LR plateau)")
    base.check()
    runs_dir = Path(runs_dir)
    runs = [SweepRun(f"step_i{i:g}", float(i), dataclasses.replace(
        base, schedule="step-lr", schedule_params={"every": float(i), "gamma": float(gamma)},
        out=str(runs_dir / f"step_i{i:g}"))) for i in sorted(set(plateaus))]
    if include_aft:
        runs.append(SweepRun("aft", None, dataclasses.replace(
            base, schedule=AFT_SCHEDULE, schedule_params=None, out=str(runs_dir / "aft"))))
    return runs


def _recorded_settings(run_dir: Path) -> dict | None:
    path = run_dir / "args.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else None


def _check_same_settings(run: SweepRun, recorded: dict | None) -> None:
    if recorded is None:
        return
    wanted = {k: getattr(run.options, k) for k in EXPERIMENT_KEYS}
    diffs = [f"{k}: {recorded.get(k)!r} there, {v!r} now" for k, v in wanted.items()
             if recorded.get(k) != v]
    check(not diffs, "runs", f"{run.options.out} holds a run with other settings "
          f"({'; '.join(diffs[:4])}); use another runs directory or delete that run")


def _trained_epochs(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return 0
    return len({json.loads(line)["epoch"] for line in path.read_text().splitlines() if line.strip()})


def _final_test(opts: TrainOptions, test_max_batches: int | None) -> dict:
    """Clean and PGD accuracy of the run's final weights on the test split (the loop's own
    per-epoch attack: PGD-eval_steps, α = 2.5 ε / steps, fp32, eval mode)."""
    from aft_fast import load_checkpoint
    from aft_fast.data import make_loaders
    from aft_fast.fast_path import for_evaluation
    from aft_fast.runtime import pick_device

    device = pick_device(opts.device)
    model = for_evaluation(load_checkpoint(Path(opts.out) / "last.pt", device))
    test = make_loaders(opts.data, batch_size=opts.eval_batch_size or opts.batch_size,
                        image_size=opts.image_size, device=device, workers=opts.workers,
                        seed=opts.seed, check_files=False).test
    steps = EVAL_STEPS if opts.eval_steps is None else opts.eval_steps
    cfg = AttackConfig(opts.eps, default_alpha(opts.eps, steps), steps)
    r = accuracy(model, test, cfg=cfg, max_batches=test_max_batches,
                 generator=torch.Generator().manual_seed(opts.seed))
    return {"test_clean_acc": r["clean_acc"], "test_robust_acc": r["robust_acc"], "test_n": r["n"]}


def run_one(run: SweepRun, *, resume: bool, test_max_batches: int | None, log=print) -> dict:
    """Train (or continue) one run of the sweep and evaluate it; a finished run is read back."""
    from aft_fast.train.run import train

    run_dir = Path(run.options.out)
    done = run_dir / "result.json"
    _check_same_settings(run, _recorded_settings(run_dir))
    if done.is_file():
        result = json.loads(done.read_text())
        if result.get("test_max_batches") == test_max_batches:
            log(f"{run.name}: finished earlier, skipped ({done})")
            return result
    epochs = int(math.ceil(run.options.epochs))
    trained = _trained_epochs(run_dir)
    if trained < epochs:
        started = run_dir.is_dir() and any(run_dir.iterdir())
        if started and not resume:
            raise OptionError("resume", f"{run_dir} holds an unfinished run ({trained} of {epochs} "
                                        "epochs): pass resume to continue it")
        can_resume = started and (run_dir / "last.pt").is_file()
        log(f"{run.name}: {'continuing' if can_resume else 'training'} "
            f"({trained} of {epochs} epochs done)")
        train(dataclasses.replace(run.options, resume=can_resume, overwrite=not can_resume))
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
            if line.strip()]
    args = yaml.safe_load((run_dir / "args.yaml").read_text())
    result = {"name": run.name, "plateau": run.plateau, "schedule": run.options.schedule,
              "schedule_params": run.options.schedule_params, "epochs": args["epochs"],
              "lr": args["resolved"]["lr"], "optimizer": args["resolved"]["optimizer"],
              "final": rows[-1], "best_epoch": best_epoch(run_dir),
              **_final_test(run.options, test_max_batches), "test_max_batches": test_max_batches,
              "rows": [{k: r.get(k) for k in ("epoch", "lr", "train_robust_acc", "val_clean_acc",
                                              "val_robust_acc")} for r in rows]}
    write_json(result, done)
    log(f"{run.name}: test clean {result['test_clean_acc']:.3f} robust "
        f"{result['test_robust_acc']:.3f} (n = {result['test_n']})")
    return result


def run_sweep(runs: list[SweepRun], *, resume: bool = False, test_max_batches: int | None = None,
              log=print) -> list[dict]:
    return [run_one(r, resume=resume, test_max_batches=test_max_batches, log=log) for r in runs]


def summary_table(results: list[dict]) -> list[dict]:
    """One row per run: final train robust (train_eval subset), test clean and test robust."""
    out = []
    for r in results:
        f = r["final"]
        out.append({"run": r["name"], "schedule": r["schedule"], "plateau_i": r["plateau"],
                    "gamma": (r["schedule_params"] or {}).get("gamma"),
                    "train_robust_acc": f.get("train_robust_acc"),
                    "test_clean_acc": r["test_clean_acc"], "test_robust_acc": r["test_robust_acc"],
                    "robust_gap": None if f.get("train_robust_acc") is None else
                    f["train_robust_acc"] - r["test_robust_acc"],
                    "val_robust_acc_final": f.get("val_robust_acc"), "test_n": r["test_n"],
                    "best_pt_epoch": None if r["best_epoch"] is None else r["best_epoch"] + 1})
    return out


def epoch_table(results: list[dict]) -> list[dict]:
    return [{"run": r["name"], "plateau_i": r["plateau"], **row, "epoch": row["epoch"] + 1}
            for r in results for row in r["rows"]]


def plot_sweep(results: list[dict], path, *, title: str = "") -> None:
    """Top row, against i: final train robust, test clean, test robust (AFT: a dashed line).
    Bottom row, per epoch: the LR, train robust and val robust of every run."""
    steps = sorted((r for r in results if r["plateau"] is not None), key=lambda r: r["plateau"])
    aft = next((r for r in results if r["plateau"] is None), None)
    cmap = plt.get_cmap("viridis")
    colors = {r["name"]: cmap(k / max(len(steps) - 1, 1) * 0.9) for k, r in enumerate(steps)}
    if aft is not None:
        colors[aft["name"]] = "crimson"
    fig, axes = plt.subplots(2, 3, figsize=(14, 8.5))
    top = [("train robust (final epoch, train subset)", lambda r: r["final"].get("train_robust_acc")),
           ("test clean (final weights)", lambda r: r["test_clean_acc"]),
           ("test robust (final weights)", lambda r: r["test_robust_acc"])]
    xs = [r["plateau"] for r in steps]
    for ax, (what, get), letter in zip(axes[0], top, "abc"):
        if steps:
            gamma = steps[0]["schedule_params"]["gamma"]
            ax.plot(xs, [get(r) for r in steps], "o-", color="tab:blue",
                    label=f"step-LR(i, {gamma:g})")
        if aft is not None:
            ax.axhline(get(aft), color=colors[aft["name"]], ls="--", label="AFT slow start, fast decay")
        ax.set_xlabel("plateau length i (epochs)")
        ax.set_xticks(xs)
        percent_axis(ax, "accuracy (%)")
        ax.set_title(f"({letter}) {what}")
        ax.legend(loc="best")
    for r in steps + ([aft] if aft else []):
        label = "AFT" if r["plateau"] is None else f"i = {r['plateau']:g}"
        epochs = [row["epoch"] + 1 for row in r["rows"]]
        ts, lrs = schedule_curve(r["schedule"], r["lr"], r["epochs"], r["schedule_params"])
        axes[1, 0].plot(ts, lrs, color=colors[r["name"]], label=label)
        axes[1, 1].plot(epochs, [row["train_robust_acc"] for row in r["rows"]], "o-", ms=3,
                        color=colors[r["name"]], label=label)
        axes[1, 2].plot(epochs, [row["val_robust_acc"] for row in r["rows"]], "o-", ms=3,
                        color=colors[r["name"]], label=label)
    axes[1, 0].set(yscale="log", xlabel="epoch", ylabel="learning rate",
                   title="(d) the schedules compared")
    for ax, what, letter in ((axes[1, 1], "train robust per epoch (train subset)", "e"),
                             (axes[1, 2], "val robust per epoch (held out from train)", "f")):
        ax.set_xlabel("epoch (end of)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        percent_axis(ax, "accuracy (%)")
        ax.set_title(f"({letter}) {what}")
    for ax in axes[1]:
        ax.legend(loc="best", ncol=2)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
