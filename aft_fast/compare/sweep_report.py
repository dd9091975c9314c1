"""A budget sweep's outputs: table.md (the paper's setting, the Pareto frontier, one table per
budget, each seed), table.json (everything, with `summary` per budget) and pareto.png (robust
accuracy against passes per image and against device seconds, one line per method through its
budgets' means, each seed a point, the frontier marked). Points: `aft_fast.compare.sweep`."""
from __future__ import annotations

from aft_fast.compare import report, sweep
from aft_fast.compare.report import (NOT_RUN, _cost, _load, _passes, _pct, _seconds, aggregate,
                                     percent, test_split_section)
from aft_fast.io import atomic_write


def write(doc: dict, dest) -> None:
    report.write(doc, dest, summary=summary, render=markdown, draw=plot)


def budgets(rows: list[dict]) -> list[int]:
    return sorted({r["budget"] for r in rows})


def summary(rows: list[dict]) -> dict:
    return {"budgets": {b: aggregate([r for r in rows if r["budget"] == b]) for b in budgets(rows)},
            "frontier": sorted(sweep.frontier_points(rows)),
            "paper_setting": sorted(sweep.paper_points(rows))}


def checkpoint_of(rows: list[dict]) -> str:
    """Which checkpoint a row's seeds are: best.pt (its epoch, chosen on val) or last.pt."""
    if rows[0]["checkpoint_kind"] == "last":
        return "last.pt (epoch " + ", ".join(str(r["epochs_run"]) for r in rows) + ")"
    chosen = [r.get("best_epoch") for r in rows]
    if None in chosen:
        return "its own (pipeline)"
    return ("best.pt (epoch " + ", ".join(str(e + 1) for e in chosen) + " of "
            + ", ".join(str(r["epochs_run"]) for r in rows) + ", chosen on val)")


def _table(rows: list[dict], points: set | None = None) -> str:
    """The seeds' means of `rows` (one budget's, or the points named), parents from the same
    budget."""
    lines = ["| method | starts from | checkpoint | clean | PGD | AutoAttack | masking | "
             "passes / image | device s |", "|---|---|---|---:|---:|---:|---|---:|---:|"]
    for b in budgets(rows):
        at = [r for r in rows if r["budget"] == b]
        agg = aggregate(at)
        by_key = {a["key"]: a for a in agg}
        for a in agg:
            if points is not None and (b, a["key"]) not in points:
                continue
            seeds = [r for r in at if r["key"] == a["key"]]
            parent = by_key[a["parent"]]["label"] if a["parent"] in by_key else a["parent"]
            lines.append(f"| {a['label']} (E={b}) | {parent or 'scratch'} | {checkpoint_of(seeds)} "
                         f"| {_pct(a['clean_acc'])} | {_pct(a['pgd_acc'])} "
                         f"| {_pct(a['autoattack_acc'])} | {a['masking_pass']}/{len(seeds)} pass "
                         f"| {_cost(a, by_key)} | {_seconds(a, by_key)} |")
    return "\n".join(lines)


def markdown(doc: dict) -> str:
    rows, opts, p, env = doc["rows"], doc["options"], doc["protocol"], doc["environment"]
    pgd = f"PGD-{p['pgd_steps']}×{p['pgd_restarts']}"
    n_eval = rows[0]["n"] if rows else 0
    n_aa = max((r["autoattack_n"] for r in rows), default=0)
    front = sweep.means(rows)
    frontier = sorted(sweep.frontier_points(rows), key=lambda pt: front[pt][0])
    labels = {(r["budget"], r["key"]): r["label"] for r in rows}
    front_lines = "\n".join(f"| {labels[pt]} | {pt[0]} | {_passes(front[pt][0])} | "
                            f"{percent(front[pt][1])} |" for pt in frontier)
    per_seed = "\n".join(
        f"| {r['budget']} | {r['label']} | {r['seed']} | {percent(r['clean_acc'])} | "
        f"{percent(r['pgd_acc'])} | {percent(r['autoattack_acc'])} | "
        f"{percent(r['worst_case_acc'])} | {'pass' if r['masking']['all'] else 'FAIL'} | "
        f"{_passes(r['passes_per_image'])} | {r['train_seconds']:.0f} |" for r in rows)
    by_budget = "\n\n".join(f"## Budget E = {b}\n{_table([r for r in rows if r['budget'] == b])}"
                            for b in budgets(rows))
    longest = max(budgets(rows), default=None)
    skipped = "".join(f"\n- {s['key']} (seed {s.get('seed')}, E = {s.get('budget')}) not in the "
                      f"table: {s['reason']}." for s in doc["skipped"])
    return f"""# {opts['data']}, {opts['arch']}, l∞ ε = {opts['eps']:g}: budget sweep E = {', '.join(map(str, opts['epochs']))}

Command: `{doc['command']}`
Device: {env['device']}, torch {env['torch']}, commit {env['commit']}, {doc['date_utc']} UTC.
Seeds: {', '.join(map(str, opts['seeds']))} (mean ± sample sd over the seeds; each seed below).

Every from-scratch method runs E epochs of data at each budget E (Free AT E/m epochs × m); a
fine-tuning method runs round(E/8) epochs from the same budget's parent and, where its paper
names a length (`paper_epochs`), also that many (e.g. "AFT, 10 epochs"). Robust accuracy:
AutoAttack where it was run (`--aa-points {opts['aa_points']}`: {_aa_points(opts['aa_points'])};
{NOT_RUN} where not), else {pgd}. Clean: all {doc['test_split']['count']} test images; {pgd} and
the masking check: the first {n_eval}; AutoAttack: {f"the first {n_aa}" if n_aa else "none"}. Passes / image: the row's
own training (its parent's in parentheses, and in its own row); device s{_load(doc)}.

## The paper's setting (E = {longest})
Jeddi et al. 2020 compare PGD AT trained to full length, which overfits (Rice et al. 2020: its
best epoch on held-out data beats its last), with a 10-epoch adversarial fine-tune of a
converged natural model. Here: each from-scratch row at the longest budget at its best epoch on
the validation split (best.pt) and at its last epoch (last.pt), and the paper-length fine-tunes
from that budget's Natural model.

{_table(rows, sweep.paper_points(rows))}

## Pareto frontier
Robust accuracy (seeds' mean) against passes per image: no other point is as cheap and as
robust. The plot (`pareto.png`) draws every point, and the same against device seconds.

| method | E | passes / image | robust |
|---|---:|---:|---:|
{front_lines}

{by_budget}

## Per seed
| E | method | seed | clean | {pgd} | AutoAttack | worst of both | masking | passes / image | device s |
|---:|---|---:|---:|---:|---:|---:|---|---:|---:|
{per_seed}
{skipped}

{test_split_section(doc, n_eval, n_aa, "seed<S>/E<budget>/<method>")}"""


def _aa_points(mode: str) -> str:
    return {"all": "every point", "none": "no point",
            "best": "each row's best budget by PGD and the paper's setting",
            "frontier": "each row's best budget by PGD, the PGD frontier's points and the "
                        "paper's setting"}[mode]


def plot(doc: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc["rows"]
    opts = doc["options"]
    keys = list(dict.fromkeys(r["key"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    markers = "osD^v<>P*Xh"
    for ax, cost, xlabel in ((axes[0], "passes_per_image", "forward+backward passes per "
                              "training image (own training)"),
                             (axes[1], "train_seconds", "training device seconds (this device)")):
        means = sweep.means(rows, cost=cost)
        for i, key in enumerate(keys):
            mine = [r for r in rows if r["key"] == key]
            pts = sorted((means[(b, key)] for b in budgets(mine)))
            line, = ax.plot([c for c, _ in pts], [100 * a for _, a in pts], "-", alpha=0.6,
                            marker=markers[i % len(markers)], label=mine[0]["label"])
            aa = [r for r in mine if r["autoattack_acc"] is not None]
            for group, face in ((aa, line.get_color()), ([r for r in mine if r not in aa], "none")):
                ax.scatter([r[cost] for r in group], [100 * sweep.robust(r) for r in group],
                           s=18, facecolors=face, edgecolors=line.get_color(), zorder=3)
        front = sorted(means[pt] for pt in sweep.frontier_points(rows, cost=cost))
        ax.step([c for c, _ in front], [100 * a for _, a in front], where="post", color="k",
                lw=1, ls="--", label="Pareto frontier")
        ax.scatter([c for c, _ in front], [100 * a for _, a in front], s=110, facecolors="none",
                   edgecolors="k", zorder=4)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("robust accuracy (%): AutoAttack (filled) or PGD (hollow)")
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{opts['data']}, {opts['arch']}, ε = {opts['eps']:g}, budgets "
                 f"{', '.join(map(str, opts['epochs']))}: lines through the seeds' means, each "
                 "seed a small point, the frontier ringed", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
