"""The report's four figures, drawn from report.json alone, as PNG bytes (the markdown links the
files, the HTML embeds them)."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# (report.json key under "test".{before,after}, label): the before/after bars
MEASURES = (("clean_acc", "clean"), ("pgd_acc", "PGD"), ("autoattack_acc", "AutoAttack"))


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def before_after(report: dict) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    width = 0.38
    for i, (when, color) in enumerate((("before", "tab:gray"), ("after", "tab:blue"))):
        scores = report["test"][when]
        xs = [j + (i - 0.5) * width for j in range(len(MEASURES))]
        bars = ax.bar(xs, [100 * scores[k] for k, _ in MEASURES], width, color=color, label=when)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(range(len(MEASURES)), [label for _, label in MEASURES])
    ax.set(ylabel="test accuracy (%)", ylim=(0, 105),
           title=f"Before and after (eps {report['threat']['eps_text']})")
    ax.legend(fontsize=8)
    return _png(fig)


def training(report: dict) -> bytes:
    rows = report["training"]["rows"]
    epochs = [r["epoch"] + 1 for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.4))
    left.plot(epochs, [r["train_loss"] for r in rows], marker="o")
    left.set(xlabel="epoch", ylabel="adversarial training loss", title="Training loss")
    for key, label in (("val_clean_acc", "held-out clean"), ("val_robust_acc", "held-out PGD")):
        right.plot(epochs, [100 * (r[key] or 0) for r in rows], marker="o", label=label)
    right.set(xlabel="epoch", ylabel="accuracy (%)", title="Held-out accuracy per epoch")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return _png(fig)


def eps_curve(report: dict) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for when, color in (("before", "tab:gray"), ("after", "tab:blue")):
        pts = report["test"][when]["curve"]["points"]
        ax.plot([255 * p["eps"] for p in pts], [100 * p["acc"] for p in pts], marker="o",
                color=color, label=when)
    ax.axvline(255 * report["threat"]["eps"], color="k", ls="--", lw=0.8, label="trained eps")
    n = report["test"]["after"]["curve"]["n"]
    ax.set(xlabel="eps (x/255)", ylabel="PGD-20 accuracy (%)",
           title=f"Accuracy against eps ({n} test images)", ylim=(0, 105))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def choices(report: dict) -> bytes:
    probes, round1 = report["choices"]["probes"], report["held_out_before"].get("steps", "?")
    fig, ax = plt.subplots(figsize=(7, 2.2 + 0.35 * len(probes)))
    names = [f"{p['name']}, {p['batches']} batches, PGD-{p.get('steps') or round1}"
             + (" (chosen)" if p["name"] == report["choices"]["chosen"] else "")
             + (" (collapsed)" if p["collapsed"] else "") for p in probes]
    ys = range(len(probes))
    ax.barh([y - 0.2 for y in ys], [100 * p["clean"] for p in probes], 0.4, label="clean",
            color="tab:gray")
    ax.barh([y + 0.2 for y in ys], [100 * p["robust"] for p in probes], 0.4,
            label="robust (its PGD)", color="tab:blue")
    ax.set_yticks(list(ys), names, fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="held-out accuracy after the probe (%)", title="Probes")
    ax.legend(fontsize=8)
    return _png(fig)


FIGURES = {"before_after": before_after, "training": training, "eps_curve": eps_curve,
           "choices": choices}
