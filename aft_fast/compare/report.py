"""The comparison's outputs: table.md (the paper's Table 1 layout: clean, PGD, AutoAttack,
adversarial-training cost; mean ± sd over seeds, then each seed), table.json (everything) and
robust_vs_cost.png (AutoAttack accuracy against training cost)."""
from __future__ import annotations

import statistics
from pathlib import Path

from aft_fast.compare.sweep import robust
from aft_fast.fast_path import NOT_RECORDED
from aft_fast.io import atomic_write, write_json, write_text

METRICS = ("clean_acc", "pgd_acc", "autoattack_acc", "worst_case_acc")
NOT_RUN = "–"  # a figure not computed (AutoAttack outside a sweep's --aa-points)


def percent(value: float | None) -> str:
    return NOT_RUN if value is None else f"{100 * value:.2f}"


def is_sweep(doc: dict) -> bool:
    """Whether `doc` is a budget sweep (several budgets; a single one may be written as an int)."""
    epochs = doc["options"]["epochs"]
    return isinstance(epochs, (list, tuple)) and len(epochs) > 1


def _seed_note(group: dict, opts: dict) -> str:
    """' (seed S)' when a `later_rows` group added fewer seeds than the table has."""
    seeds = group.get("seeds")
    if not seeds or list(seeds) == list(opts["seeds"]):
        return ""
    return f" (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})"


def plot_name(doc: dict) -> str:
    return "pareto.png" if is_sweep(doc) else "robust_vs_cost.png"


def aggregate(rows: list[dict]) -> list[dict]:
    """One entry per method (in row order): mean, sd and per-seed values of each metric."""
    keys = list(dict.fromkeys(r["key"] for r in rows))
    out = []
    for key in keys:
        rs = [r for r in rows if r["key"] == key]
        agg = {"key": key, "label": rs[0]["label"], "parent": rs[0]["parent"],
               "seeds": [r["seed"] for r in rs],
               "masking_pass": sum(r["masking"]["all"] for r in rs),
               "train_seconds": statistics.fmean(r["train_seconds"] for r in rs),
               "passes_per_image": statistics.fmean(r["passes_per_image"] for r in rs),
               "epochs_run": [r["epochs_run"] for r in rs],
               "stopped_early": [r["stopped_early"] for r in rs],
               "trained_under": sorted({r.get("trained_under", NOT_RECORDED) for r in rs})}
        for m in METRICS:
            vals = [r[m] for r in rs]
            agg[m] = None if None in vals else {  # None: not run (a sweep's --aa-points)
                "mean": statistics.fmean(vals),
                "sd": statistics.stdev(vals) if len(vals) > 1 else None, "values": vals}
        out.append(agg)
    return out


def _pct(stat: dict | None) -> str:
    if stat is None:
        return NOT_RUN
    s = f"{100 * stat['mean']:.2f}"
    return s + (f" ± {100 * stat['sd']:.2f}" if stat["sd"] is not None else "")


def _passes(value: float) -> str:
    return f"{round(value, 1):g}"


def _cost(a: dict, by_key: dict) -> str:
    text = _passes(a["passes_per_image"])
    if a["parent"] in by_key:
        parent = by_key[a["parent"]]
        text += f" (+{_passes(parent['passes_per_image'])} {parent['label']})"
    return text


def _seconds(a: dict, by_key: dict) -> str:
    text = f"{a['train_seconds']:.0f}"
    if a["parent"] in by_key:
        text += f" (+{by_key[a['parent']]['train_seconds']:.0f})"
    return text


def _load(doc: dict) -> str:
    """Where the seconds were measured: each row's training machine and its load then (rows
    trained before runs recorded it: the load when this report was written)."""
    stamps = [r["trained_on"] for r in doc["rows"] if r.get("trained_on")]
    devices = sorted({s["device"] for s in stamps})
    where = f"; trained on {', '.join(devices)}" if devices and devices != [
        doc["environment"]["device"]] else ""
    cpu = [s for s in stamps if s.get("device_type") == "cpu"]
    if cpu:
        five = [s["load_average_end"][1] for s in cpu]
        threads = sorted({s["cpu_threads"] for s in cpu})
        return (f"{where} (the CPU's 5-min load average at the end of each CPU training run: "
                f"{min(five):g} to {max(five):g}, on {'/'.join(map(str, threads))} threads: a "
                "load above the threads means a shared machine, whose seconds are inflated by an "
                "unknown, varying factor; compare the passes)")
    load = doc.get("load_average")
    if stamps or not load or doc["environment"].get("device_type") != "cpu":
        return where
    return (f" (the CPU's load average was {load[0]:g} / {load[1]:g} / {load[2]:g} over 1 / 5 / 15 "
            f"min when this report was written, on {doc['environment'].get('cpu_threads')} "
            "threads, not recorded by the runs themselves: seconds taken on a shared machine are "
            "inflated by an unknown, varying factor; compare the passes)")


def _aa_cost(doc: dict) -> str:
    """Why AutoAttack ran on fewer images than PGD: its measured cost."""
    rows = [r for r in doc["rows"] if r.get("autoattack_n", r["n"]) < r["n"]]
    if not rows:
        return ""
    per_image = [r["seconds"]["autoattack"] / max(1, r["autoattack_candidates"]) for r in rows]
    return (f"; AutoAttack took a median {statistics.median(per_image):.1f} s per attacked image "
            "(correct clean) here, hence fewer images")


def markdown(doc: dict) -> str:
    agg = aggregate(doc["rows"])
    by_key = {a["key"]: a for a in agg}
    p, opts, env, split = doc["protocol"], doc["options"], doc["environment"], doc["test_split"]
    n_seeds = len(opts["seeds"])
    pgd = f"PGD-{p['pgd_steps']}×{p['pgd_restarts']}"
    aa = "AutoAttack" if doc["reference_autoattack"] else "AutoAttack (reduced*)"
    n_eval = doc["rows"][0]["n"] if doc["rows"] else 0
    n_aa = doc["rows"][0].get("autoattack_n", n_eval) if doc["rows"] else 0
    head_pgd, head_aa = (pgd, aa) if n_aa == n_eval else (f"{pgd} ({n_eval} images)",
                                                          f"{aa} (first {n_aa})")
    head = (f"| method | starts from | clean | {head_pgd} | {head_aa} | masking check | AT passes / image "
            f"| AT device s | epochs | trained in |\n|---|---|---:|---:|---:|---|---:|---:|---|---|")
    lines = []
    for a in agg:
        masking = f"{a['masking_pass']}/{len(a['seeds'])} pass"
        epochs = ", ".join(str(e) for e in a["epochs_run"])
        if any(a["stopped_early"]):
            epochs += " (early stop)"
        parent = by_key[a["parent"]]["label"] if a["parent"] in by_key else a["parent"]
        lines.append(f"| {a['label']} | {parent or 'scratch'} "
                     f"| {_pct(a['clean_acc'])} | {_pct(a['pgd_acc'])} | {_pct(a['autoattack_acc'])} "
                     f"| {masking} | {_cost(a, by_key)} | {_seconds(a, by_key)} | {epochs} "
                     f"| {' / '.join(a['trained_under'])} |")
    per_seed = ["| method | seed | clean | " + pgd + f" | {pgd} on AutoAttack's images | "
                "AutoAttack | worst of both | masking (falls to 0 / stronger never higher / "
                "AA ≤ PGD) | passes / image | device s |",
                "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in doc["rows"]:
        m = r["masking"]
        flags = " / ".join("pass" if m[c]["pass"] else "FAIL" for c in
                           ("falls_to_zero", "stronger_never_higher", "autoattack_le_pgd") if c in m)
        per_seed.append(f"| {r['label']} | {r['seed']} | {100 * r['clean_acc']:.2f} | "
                        f"{100 * r['pgd_acc']:.2f} | "
                        f"{percent(r.get('pgd_acc_autoattack_images', r['pgd_acc']))} | "
                        f"{percent(r['autoattack_acc'])} | "
                        f"{percent(r['worst_case_acc'])} | {flags} | "
                        f"{_passes(r['passes_per_image'])} | "
                        f"{r['train_seconds']:.0f} |")
    labels = {r["key"]: r["label"] for r in doc["rows"]}
    shared = "".join(f"\n\n{r['label']}, seed {r['seed']}: the same weights as "
                     f"{labels.get(r['shared_with'], r['shared_with'])} (same seed), so its "
                     "evaluation is that row's, computed once." for r in doc["rows"]
                     if r.get("shared_with"))
    reduced = "" if doc["reference_autoattack"] else (
        f"\n\n\\* AutoAttack reduced from the reference (APGD-CE/APGD-T/FAB-T 100 iterations, 9 "
        f"targets, Square 5,000 queries) to {p['aa_steps']} iterations, {p['aa_targets']} targets, "
        f"{p['aa_queries']} Square queries: it is not standard AutoAttack.")
    recipes = "\n".join(
        f"- {r['label']}: {r['epochs']} epochs"
        + (f", {', '.join(f'{k}={v}' for k, v in r['train'].items() if k not in ('method', 'epochs', 'eps'))}"
           if r["train"] else "") + f". {r['source']}." for r in doc["recipes"])
    partial = ("  \nWritten with `--report-only` from the rows this command had finished (those not "
               "in the table are listed under the recipes; run the command again to finish them)."
               if opts.get("report_only") and any("seed" in s for s in doc["skipped"]) else "")
    skipped = "".join(f"\n- {s['key']}{' (seed %d)' % s['seed'] if 'seed' in s else ''} not in "
                      f"the table: {s['reason']}." for s in doc["skipped"])
    later = "".join(
        f"\n{', '.join(labels[k] for k in g['keys'])}{_seed_note(g, opts)}: added later (`compare/merge.py`, the same "
        f"options, protocol and test split) from `{g['command']}`; {g['device']}, torch "
        f"{g['torch']}, commit {g['commit']}, {g['date_utc']} UTC"
        + (f", load {' / '.join(f'{v:g}' for v in g['load_average'])}" if g["load_average"]
           else "") + "."
        for g in doc.get("later_rows", []))
    return f"""# {opts['data']}, {opts['arch']}, l∞ ε = {opts['eps']:g}: method comparison

Command: `{doc['command']}`{partial}
Device: {env['device']}, torch {env['torch']}, commit {env['commit']}, {doc['date_utc']} UTC.{later}
Seeds: {', '.join(map(str, opts['seeds']))} (mean ± sample sd over the {n_seeds} seed(s); each seed below).

{head}
{chr(10).join(lines)}

Clean: all {split['count']} test images. {pgd} (α = 2.5ε/{p['pgd_steps']}, random starts)
and the masking check: the first {n_eval} test images; {aa} and "worst of both": the first
{n_aa} of them{_aa_cost(doc)}. All evaluation in fp32 (convolutional networks in
channels_last), model in eval mode; an example is robust only if it is correct clean and
attacked. Trained in: the precision and memory format of the row's training (`--amp`,
`--channels-last`; auto picks them for the device, see `aft_fast/fast_path.py`). AT passes / image: forward+backward passes per
training image of the adversarial (or natural) training, counted from the recipe and the epochs
run (see `aft_fast/compare/cost.py`); AT device s: seconds of training on this device, per-epoch
validation excluded{_load(doc)}. AFT's figures are its fine-tuning only, RiFT's its whole
pipeline (MRC, fine-tuning, and the α search's PGD on the validation images); the parent model's
cost is in parentheses (and in its own row).{reduced}

## Per seed
{chr(10).join(per_seed)}{shared}

Masking check (per model): accuracy under PGD-{p['mask_steps']} at ε·2^i, up to 0.5, falls to ≤ 2%
and never rises (first {p['mask_images']} images); PGD-{p['weak_steps']} ≥ PGD-{p['pgd_steps']} ≥
each added restart; AutoAttack ≤ PGD on the same images; tolerance {100 * p['tolerance']:g} points. Worst of both:
robust under PGD and AutoAttack.

## Budget rule and recipes
Training data: {opts['data']} training split{f", its fixed first-{opts['train_images']} subset (TrainOptions.train_images)" if opts.get('train_images') else ""}.
Every from-scratch method sees the training data E = {_one_budget(opts)} times (Free AT: E/m epochs
× m replays, rounded half up, ≥ 1); AFT fine-tunes the Natural model for A epochs (default
round(E/8), ≥ 1: the paper's claim is AFT at 1/8-1/10 of PGD AT's cost), RiFT the PGD AT model
for A epochs; their parents' cost is shown separately. Model selection: each run's best.pt,
chosen on the validation split (robust accuracy; clean for Natural), never on test.
{recipes}{skipped}

{test_split_section(doc, n_eval, n_aa, "seed<S>/<method>")}"""


def _one_budget(opts: dict) -> int:
    e = opts["epochs"]
    return e[0] if isinstance(e, (list, tuple)) else e


def test_split_section(doc: dict, n_eval: int, n_aa: int, run_path: str) -> str:
    split, out = doc["test_split"], doc["options"]["out"]
    return f"""## Test split (for an independent evaluation)
`{split['data']}`, split `{split['split']}`, {split['count']} images; order: {split['order']}.
PGD used indices 0..{n_eval - 1}, AutoAttack {f"0..{n_aa - 1}" if n_aa else "none"}. SHA-256 of the labels tensor (int64):
`{split['labels_sha256']}`; of the images tensor (float32 in [0, 1], N×C×H×W):
`{split['images_sha256']}`. Checkpoints: `{out}/runs/{run_path}/best.pt`
(`rift.pt` for RiFT); load with `aft_fast.load_checkpoint(path)`.
"""


def write(doc: dict, dest, *, summary=aggregate, render=None, draw=None) -> None:
    """table.json (with `summary(rows)`), table.md (`render`) and the plot (`draw`); the
    defaults are one budget's, a sweep passes its own (`sweep_report.write`)."""
    dest = Path(dest)
    doc = {**doc, "summary": summary(doc["rows"])}
    write_json(doc, dest / "table.json")
    write_text((render or markdown)(doc), dest / "table.md")
    (draw or plot)(doc, dest / plot_name(doc))


def plot(doc: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    agg = aggregate(doc["rows"])
    by_key = {a["key"]: a for a in agg}
    opts = doc["options"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    markers = "osD^v<>P*"
    aa = "AutoAttack" if doc["reference_autoattack"] else "AutoAttack (reduced)"
    for ax, cost_key, xlabel in (
            (axes[0], "passes_per_image", "training cost: forward+backward passes per training image"),
            (axes[1], "train_seconds", "training cost: device seconds (this device)")):
        for i, a in enumerate(agg):
            rows = [r for r in doc["rows"] if r["key"] == a["key"]]
            xs = [r[cost_key] for r in rows]
            ys = [100 * robust(r) for r in rows]
            line = ax.scatter(xs, ys, marker=markers[i % len(markers)], s=55, label=a["label"],
                              zorder=3)
            if a["parent"] in by_key:  # the same model with its parent's cost added
                total = [x + by_key[a["parent"]][cost_key] for x in xs]
                ax.scatter(total, ys, marker=markers[i % len(markers)], s=55,
                           facecolors="none", edgecolors=line.get_facecolor(), zorder=3,
                           label=f"{a['label']} incl. {by_key[a['parent']]['label']}")
        ax.set_xscale("log")  # ticks at 1, 2, 5 × 10^k, written plainly (no crowded minor labels)
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_ylim(0, min(100, 10 + max(100 * robust(r) for r in doc["rows"])))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{aa} accuracy (%)" if all(r["autoattack_acc"] is not None for r in
                      doc["rows"]) else f"{aa} where run, else PGD (%)")
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize=8, loc="best")
    fig.suptitle(f"{opts['data']}, {opts['arch']}, ε = {opts['eps']:g}: robust accuracy vs "
                 f"training cost (each point one seed)", fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
