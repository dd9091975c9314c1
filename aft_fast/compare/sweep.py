"""A budget sweep's points (`compare --epochs 4,8,16,32`): which points are on the Pareto
frontier of robust accuracy against cost, which matter enough for AutoAttack (`--aa-points`),
and which make the AFT paper's setting.

A point is one row key at one budget (its seeds averaged). Its robust accuracy is AutoAttack's
where that was run, else PGD's; its cost is the row's own passes per training image (a
fine-tune's parent is not counted: the AFT paper's accounting, the table shows the parent apart).

The paper's setting (Jeddi et al. 2020 against full-length PGD AT, Rice et al. 2020's early
stopping) is the longest budget's from-scratch rows, each at its best epoch on the validation
split (best.pt) and at its last epoch (last.pt, key "name@last"), and the fine-tuning rows of the
paper's length (Method.paper_epochs, "aft@10") from that budget's parent.
"""
from __future__ import annotations

import statistics

LAST = "@last"  # the key suffix of a row evaluated at its last epoch (last.pt)


def robust(row: dict) -> float:
    """AutoAttack accuracy where it was run, else PGD's."""
    aa = row.get("autoattack_acc")
    return row["pgd_acc"] if aa is None else aa


def frontier(points: list[tuple[float, float]]) -> list[bool]:
    """For each (cost, accuracy): whether no other point costs at most as much and is at least
    as accurate, strictly better in one of the two (Pareto-optimal)."""
    return [not any(c2 <= c and a2 >= a and (c2 < c or a2 > a) for c2, a2 in points)
            for c, a in points]


def means(rows: list[dict], metric=robust,
          cost: str = "passes_per_image") -> dict[tuple, tuple[float, float]]:
    """{(budget, key): (mean `cost`, mean `metric`)} over the seeds, in row order."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["budget"], r["key"]), []).append(r)
    return {point: (statistics.fmean(r[cost] for r in rs),
                    statistics.fmean(metric(r) for r in rs)) for point, rs in groups.items()}


def frontier_points(rows: list[dict], metric=robust, cost: str = "passes_per_image") -> set[tuple]:
    """The (budget, key) points on the frontier of the seeds' means."""
    m = means(rows, metric, cost)
    return {p for p, on in zip(m, frontier(list(m.values()))) if on}


def best_points(rows: list[dict], metric=robust) -> set[tuple]:
    """Each row key's budget of highest mean `metric` (the first such budget on a tie)."""
    best: dict[str, tuple] = {}
    for (budget, key), (_, acc) in means(rows, metric).items():
        if key not in best or acc > best[key][1]:
            best[key] = (budget, acc)
    return {(budget, key) for key, (budget, _) in best.items()}


def paper_points(rows: list[dict]) -> set[tuple]:
    """The paper's setting: the longest budget's from-scratch rows (best.pt and last.pt) and
    its paper-length fine-tunes."""
    if not rows:
        return set()
    longest = max(r["budget"] for r in rows)
    return {(r["budget"], r["key"]) for r in rows if r["budget"] == longest
            and (r["parent"] is None or r.get("paper_length"))}


def autoattack_points(rows: list[dict], mode: str) -> set[tuple] | None:
    """The points `--aa-points mode` evaluates with AutoAttack, chosen on PGD (None: all)."""
    if mode == "all":
        return None
    if mode == "none":
        return set()
    pgd = (lambda r: r["pgd_acc"])
    chosen = best_points(rows, pgd) | paper_points(rows)
    return chosen | frontier_points(rows, pgd) if mode == "frontier" else chosen
