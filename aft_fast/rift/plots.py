"""RiFT's two figures: MRC per module (mrc.png) and accuracy against α (alpha.png)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_mrc(rows: list[dict], order: list[str], path, title: str) -> None:
    """Horizontal bars in network order (input at the top); the least critical module marked."""
    by_name = {r["module"]: r for r in rows}
    names = [n for n in order if n in by_name]
    least = min(rows, key=lambda r: r["mrc"])["module"]
    fig, ax = plt.subplots(figsize=(7.5, 2.2 + 0.28 * len(names)))
    colors = ["tab:orange" if n == least else "tab:blue" for n in names]
    ax.barh(range(len(names)), [by_name[n]["mrc"] for n in names], color=colors)
    labels = [f"{n} ({by_name[n]['type']}, {by_name[n]['params']:,} w)" for n in names]
    ax.set_yticks(range(len(names)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="MRC: rise of the robust cross-entropy (nats) under the worst ‖Δw‖ ≤ ρ‖w‖",
           ylabel="module (network order)")
    ax.set_title(title, fontsize=10)
    ax.bar_label(ax.containers[0], fmt="%.3g", fontsize=7, padding=2)
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color="tab:orange")],
              labels=[f"least critical: {least}"], loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_alpha(rows: list[dict], chosen: dict, reference_robust: float, tolerance: float,
               path, title: str) -> None:
    """Validation clean and robust accuracy (%) against α, the robustness floor, the chosen α."""
    alphas = [r["alpha"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(alphas, [100 * r["clean_acc"] for r in rows], marker="o", label="val clean")
    ax.plot(alphas, [100 * r["robust_acc"] for r in rows], marker="s", label="val robust (PGD)")
    ax.axhline(100 * (reference_robust - tolerance), color="gray", ls="--",
               label=f"robust floor: AT − {100 * tolerance:g} points")
    if chosen is not None:
        ax.axvline(chosen["alpha"], color="tab:red", ls=":", label=f"chosen α = {chosen['alpha']:g}")
    ax.set(xlabel="α  (0 = AT model, 1 = fine-tuned model)", ylabel="accuracy on val (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
