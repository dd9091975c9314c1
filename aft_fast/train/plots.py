"""PNG plots of a run: learning rate and clean/robust accuracy per epoch."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_schedule(schedule, path, points: int = 400) -> None:
    ts = [schedule.epochs * i / points for i in range(points + 1)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(ts, [schedule(t) for t in ts])
    ax.set(xlabel="epoch", ylabel="learning rate", title=f"{schedule.name} (lr {schedule.lr:g})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_accuracy(rows: list[dict], path) -> None:
    epochs = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, label in [("val_clean_acc", "val clean"), ("val_robust_acc", "val robust"),
                       ("train_robust_acc", "train robust"), ("train_acc", "train (method's inputs)")]:
        vals = [r.get(key) for r in rows]
        if any(v is not None for v in vals):
            ax.plot(epochs, vals, marker="o", label=label)
    ax.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
