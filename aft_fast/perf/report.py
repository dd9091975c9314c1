"""Writers for bench and profile results: a printed table, markdown, and a PNG bar chart. Every
file goes through `aft_fast.io` (atomic)."""
from __future__ import annotations

from aft_fast.io import atomic_write, write_text

ATTACK_LABELS = {"floor": "floor: forward + input backward (1 step)",
                 "engine": "engine: aft_fast.attacks.pgd",
                 "plain": "plain research code (aft_fast/perf/plain_pgd.py)",
                 "torchattacks": "torchattacks.PGD"}


def _ms(s: float) -> str:
    return f"{s * 1000:.1f}"


def attack_table(result: dict) -> list[list[str]]:
    steps = result["settings"]["steps"]
    rows = [["PGD loop", f"ms / PGD-{steps}", "ms / step", "images/s", "× plain", "over floor"]]
    for name, r in result["attack"].items():
        rows.append([ATTACK_LABELS.get(name, name), "—" if name == "floor" else _ms(r["median_s"]),
                     _ms(r["per_step_s"]), f"{r['images_per_s']:.0f}", f"{r['x_vs_plain']:.2f}×",
                     "—" if name == "floor" else f"{r['overhead_vs_floor_pct']:+.0f}%"])
    return rows


def method_table(result: dict) -> list[list[str]]:
    s = result["settings"]
    rows = [["method", "ms / iteration", "images/s", "weight updates", "epochs", "projected hours"]]
    for name, r in result["methods"].items():
        epochs = f"{r['epochs']:g}" + (f" (/{r['weight_updates_per_batch']} = {r['passes_over_data']:g} passes)"
                                       if r["weight_updates_per_batch"] > 1 else "")
        rows.append([name, _ms(r["median_s"]), f"{r['images_per_s']:.0f}",
                     str(r["weight_updates_per_batch"]), epochs, f"{r['projected_hours']:.1f}"])
    if len(rows) > 1:
        rows.append([f"(projection: epochs × {s['dataset_size']:,} images / batch {s['batch']} × "
                     "ms per iteration)", "", "", "", "", ""])
    return rows


def format_text(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows if len(r) > i) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                               enumerate(zip(r, widths))).rstrip() for r in rows)


def format_markdown(rows: list[list[str]]) -> str:
    head, *body = rows
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body if any(r[1:])]
    notes = [r[0] for r in body if not any(r[1:])]
    return "\n".join(lines + ([""] + notes if notes else []))


def bench_summary_line(result: dict) -> str:
    s, env = result["settings"], result["environment"]
    amp = s["amp"] or "fp32"
    layout = "channels_last" if s["channels_last"] else "NCHW"
    if s.get("compile"):
        layout += " torch.compile"
    return (f"{env['device']}, torch {env['torch']}, commit {env['commit']}; {s['arch']} "
            f"{s['image_size']}×{s['image_size']}, batch {s['batch']}, PGD-{s['steps']} "
            f"(eps {s['eps']:.4g}, alpha {s['alpha']:.4g}), engine {amp} {layout}; median of "
            f"{s['repeats']} interleaved rounds after {s['warmup']} warm-up")


def bench_markdown(result: dict, command: str | None = None) -> str:
    lines = [f"# aft-fast bench — {result['environment']['device']}", ""]
    if command:
        lines += [f"Command: `{command}`  ", ""]
    lines += [bench_summary_line(result) + ".", ""]
    load = result.get("load_average")
    if load:
        lines += [f"Machine load average (1 min) at start / end: {load[0]:.2f} / {load[1]:.2f} "
                  "(other jobs share these cores: compare figures within this run only).", ""]
    lines += [f"**Engine speedup over the plain reference: {result['speedup']:.2f}×** (medians; "
              f"{result['speedup_min']:.2f}× from the fastest rounds)"
              + (f"; over torchattacks: {result['speedup_torchattacks']:.2f}×"
                 if result.get("speedup_torchattacks") else ""), "",
              format_markdown(attack_table(result)), ""]
    if result["methods"]:
        lines += ["## Training iteration per method", "", format_markdown(method_table(result)), "",
                  f"The projection scales the iteration measured here ({result['settings']['arch']} at "
                  f"{result['settings']['image_size']} px, PGD-{result['settings']['steps']} for PGD AT "
                  "and AFT) to a full run's number of images; for an ImageNet figure measure "
                  "`--arch resnet50 --image-size 224`. Epoch counts are assumptions (see "
                  "each method's `imagenet_epochs` in `aft_fast/methods/`), override with `--epochs METHOD=N`.", ""]
    return "\n".join(lines)


def write_bench_plot(result: dict, path) -> None:
    """Two bar charts: ms per attack step (vs the floor) and projected hours per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if result["methods"] else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 3.8), squeeze=False)
    ax = axes[0][0]
    names = list(result["attack"])
    vals = [result["attack"][n]["per_step_s"] * 1000 for n in names]
    colors = ["#999999" if n == "floor" else "#1f77b4" if n == "engine" else "#ff7f0e" for n in names]
    ax.bar(names, vals, color=colors)
    for i, v in enumerate(vals):
        ax.text(i, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
    ax.set(ylabel="ms per PGD step", title=f"PGD loop, engine {result['speedup']:.2f}× plain")
    if result["methods"]:
        ax2 = axes[0][1]
        m = list(result["methods"])
        hours = [result["methods"][n]["projected_hours"] for n in m]
        ax2.bar(m, hours, color="#2ca02c")
        for i, v in enumerate(hours):
            ax2.text(i, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
        ax2.set(ylabel="hours", title="projected full run (ImageNet-size epochs)")
        ax2.tick_params(axis="x", labelrotation=30)  # ten method names do not fit side by side
    s = result["settings"]
    fig.suptitle(f"{s['arch']} {s['image_size']}px batch {s['batch']} — "
                 f"{result['environment']['device']}", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def write_markdown(text: str, path) -> None:
    write_text(text if text.endswith("\n") else text + "\n", path)
