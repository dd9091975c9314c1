"""Overfitting curves (the paper's Figure 1) from what the training loop wrote, and nothing else:
`metrics.jsonl` (one row per epoch), `args.yaml` (the run's settings) and `best.pt` (its epoch).

The headline is the robust-generalisation gap per epoch: train robust accuracy (PGD on the fixed
`train_eval` subset of the training images) minus held-out robust accuracy. The paper's held-out
curves are on the test split; the loop evaluates each epoch on `val`, carved from the training
pool and never trained on, and keeps only `last.pt`/`best.pt`, so per-epoch test accuracy cannot
be recomputed afterwards. The curves use `test_*` columns when a run has them and `val_*`
otherwise, and every label says which split it is.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from aft_fast.analysis.output import percent_axis, plt, run_colors, save_figure

SPLIT_NAMES = {"test": "test", "val": "val (held out from train)"}


@dataclass
class RunCurves:
    run_dir: Path
    label: str
    split: str  # the held-out split the rows were evaluated on: "test" or "val"
    rows: list[dict]
    best_epoch: int | None
    settings: dict = field(default_factory=dict)

    def column(self, key: str) -> list:
        return [r.get(key) for r in self.rows]

    def held_out(self, kind: str) -> list:
        """Per-epoch held-out `kind` ("clean" or "robust") accuracy."""
        return self.column(f"{self.split}_{kind}_acc")

    def gap(self) -> list:
        """Train robust − held-out robust accuracy per epoch (None where either is missing)."""
        return [None if a is None or b is None else a - b
                for a, b in zip(self.column("train_robust_acc"), self.held_out("robust"))]


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} has no metrics.jsonl: pass the directory of a "
                                "training run (aft-fast train --out DIR)")
    by_epoch = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            by_epoch[row["epoch"]] = row  # a resumed run rewrites its rows; keep the latest
    if not by_epoch:
        raise ValueError(f"{path} has no rows yet: the run has not finished an epoch")
    return [by_epoch[e] for e in sorted(by_epoch)]


def best_epoch(run_dir: Path) -> int | None:
    """The epoch best.pt holds (None when the run has no best.pt)."""
    path = run_dir / "best.pt"
    if not path.is_file():
        return None
    from aft_fast.train.checkpoint import read_checkpoint

    return int(read_checkpoint(path)["epoch"])


def run_settings(run_dir: Path) -> dict:
    path = run_dir / "args.yaml"
    args = (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
    resolved = args.get("resolved") or {}
    return {"method": args.get("method"), "data": args.get("data"), "arch": args.get("arch"),
            "eps": args.get("eps"), "eval_steps": args.get("eval_steps"),
            "eval_max_batches": args.get("eval_max_batches"),
            "optimizer": resolved.get("optimizer", args.get("optimizer")),
            "schedule": resolved.get("schedule", args.get("schedule")),
            "lr": resolved.get("lr", args.get("lr")), "epochs": args.get("epochs"),
            "schedule_params": args.get("schedule_params"), "weights": args.get("weights")}


def read_run(run_dir, label: str | None = None) -> RunCurves:
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)
    split = "test" if any(r.get("test_robust_acc") is not None for r in rows) else "val"
    s = run_settings(run_dir)
    if label is None:
        label = run_dir.name + (f" ({s['method']}, {s['optimizer']} {s['schedule']})"
                                if s["method"] else "")
    return RunCurves(run_dir, label, split, rows, best_epoch(run_dir), s)


def schedule_curve(name: str, lr: float, epochs: float, params: dict | None = None,
                   end: float | None = None, points: int = 400) -> tuple[list, list]:
    """(epochs done, LR) sampled over [0, end] (default: the whole run); the last sample sits
    just before `end`, so it shows the LR of the last step rather than the one after it."""
    from aft_fast.train.schedules import make_schedule

    sched = make_schedule(name, lr, epochs, **(params or {}))
    end = epochs if end is None else end
    ts = [end * min(k / points, 1 - 1e-6) for k in range(points + 1)]
    return ts, [sched(t) for t in ts]


def lr_curve(run: RunCurves) -> tuple[list, list]:
    """The LR over training: the schedule args.yaml records, up to the epochs done, or, when it
    cannot be rebuilt, the per-epoch LR metrics.jsonl records at each epoch's end."""
    s = run.settings
    try:
        return schedule_curve(s["schedule"], s["lr"], s["epochs"], s["schedule_params"],
                              end=len(run.rows))
    except (TypeError, ValueError, KeyError):
        return [r["epoch"] + 1 for r in run.rows], run.column("lr")


def curve_table(runs: list[RunCurves]) -> list[dict]:
    """One row per (run, epoch): the numbers behind the figure."""
    table = []
    for run in runs:
        for row, gap in zip(run.rows, run.gap()):
            table.append({"run": str(run.run_dir), "label": run.label, "epoch": row["epoch"] + 1,
                          "lr": row.get("lr"), "train_robust_acc": row.get("train_robust_acc"),
                          "held_out_split": run.split,
                          "held_out_clean_acc": row.get(f"{run.split}_clean_acc"),
                          "held_out_robust_acc": row.get(f"{run.split}_robust_acc"),
                          "robust_gap": gap, "best_pt": row["epoch"] == run.best_epoch})
    return table


def _attack_text(settings: dict) -> str:
    if settings.get("eps") is None:
        return "PGD"
    return f"PGD-{settings.get('eval_steps')}, ε = {settings['eps']:.3g}"


def plot_curves(runs: list[RunCurves], path) -> None:
    """Top: the gap per epoch (the headline). Bottom: the three accuracies, LR on a second axis.
    Colour = run; line style = quantity; a star marks the epoch best.pt came from."""
    colors = run_colors(len(runs))
    fig, (ax_gap, ax_acc) = plt.subplots(2, 1, figsize=(9, 8.5), sharex=True,
                                         gridspec_kw={"height_ratios": [1, 1.5]})
    ax_lr = ax_acc.twinx()
    ax_lr.grid(False)
    splits = sorted({SPLIT_NAMES[r.split] for r in runs})
    attacks = sorted({_attack_text(r.settings) for r in runs})
    for run, color in zip(runs, colors):
        epochs = [r["epoch"] + 1 for r in run.rows]
        ax_gap.plot(epochs, run.gap(), marker="o", color=color, label=run.label)
        ax_acc.plot(epochs, run.column("train_robust_acc"), "-", marker="o", ms=3, color=color)
        ax_acc.plot(epochs, run.held_out("clean"), "--", marker="s", ms=3, color=color)
        ax_acc.plot(epochs, run.held_out("robust"), ":", marker="^", ms=3, color=color)
        ts, lrs = lr_curve(run)
        ax_lr.plot(ts, lrs, color=color, alpha=0.35, lw=3)
        if run.best_epoch is not None:
            i = {r["epoch"]: i for i, r in enumerate(run.rows)}.get(run.best_epoch)
            gap = run.gap()
            if i is not None and gap[i] is not None:
                ax_gap.plot(epochs[i], gap[i], "*", ms=16, color=color, mec="black")
            ax_acc.axvline(run.best_epoch + 1, color=color, ls="-.", lw=1, alpha=0.7)
    ax_gap.axhline(0, color="grey", lw=0.8)
    percent_axis(ax_gap, "train robust − held-out robust\n(percentage points)", points=True)
    ax_gap.set_title(f"Robust generalisation gap per epoch: train robust − held-out robust "
                     f"accuracy\n({', '.join(attacks)}; held out: {', '.join(splits)}; "
                     f"★ = the epoch best.pt came from)")
    ax_gap.legend(loc="best")
    percent_axis(ax_acc, "accuracy (%)")
    ax_acc.set_ylim(-0.02, 1.02)
    ax_acc.set_xlabel("epoch (accuracies: at the end of the epoch)")
    ax_acc.set_title("Accuracy per epoch (colour = run as above); LR on the right axis")
    lrs = [v for run in runs for v in lr_curve(run)[1] if v]
    if lrs and max(lrs) / min(lrs) > 20:
        ax_lr.set_yscale("log")
    ax_lr.set_ylabel("learning rate (thick pale lines)")
    held = splits[0] if len(splits) == 1 else "held-out"
    styles = [plt.Line2D([], [], color="black", ls="-", marker="o", ms=3, label="train robust"),
              plt.Line2D([], [], color="black", ls="--", marker="s", ms=3, label=f"{held} clean"),
              plt.Line2D([], [], color="black", ls=":", marker="^", ms=3, label=f"{held} robust"),
              plt.Line2D([], [], color="grey", lw=3, alpha=0.35, label="learning rate"),
              plt.Line2D([], [], color="black", ls="-.", lw=1, label="best.pt epoch")]
    ax_acc.legend(handles=styles, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=5,
                  fontsize=8)
    ax_acc.xaxis.get_major_locator().set_params(integer=True)
    save_figure(fig, path)
