"""Rows of another comparison added to a committed table: a new method's row without rerunning
the others (their checkpoints may be long gone), only where both tables measured the same way.

Refused, naming what differs, unless the two documents have the same evaluation protocol, the
same test split (its SHA-256 hashes), the same reference-AutoAttack flag and the same budget and
training options (`MUST_AGREE`); a row already in the table (the same method, seed and budget)
is refused too (no row is silently replaced). The seeds may differ: a method's seeds can be
measured by separate commands (one per core, or one per session, since runs/ does not outlive
a checkout) and joined here, but the joined table must have every method at every one of its
seeds (a method missing a seed is refused: join its other seeds' tables first). Each added row
group keeps its own command, commit, date and load in `later_rows`, which table.md prints under
the first command.
"""
from __future__ import annotations

from aft_fast.compare.report import is_sweep
from aft_fast.errors import OptionError

# What a row's numbers depend on besides its own recipe and seed; the rest (out, report,
# methods, train_only, report_only, quiet, eval_batch_size) says how the command was run.
MUST_AGREE = ("data", "arch", "eps", "epochs", "aft_epochs", "train_steps", "replays",
              "warmup_fraction", "batch_size", "train_images", "val_images", "eval_images",
              "pgd_steps", "pgd_restarts", "aa_steps", "aa_queries", "aa_targets", "aa_images",
              "mask_images")


def differences(table: dict, other: dict) -> list[str]:
    """What the two documents measured differently (empty: their rows can share one table)."""
    out = []
    for key in MUST_AGREE:
        a, b = (_one(d["options"].get(key)) for d in (table, other))
        if a != b:
            out.append(f"options.{key}: {a!r} vs {b!r}")
    for part in ("protocol", "test_split"):
        # the split's "order" is prose on how it is read (reworded as folders were
        # interleaved); its hashes, taken in that order, say whether it is the same
        keys = sorted((set(table[part]) | set(other[part])) - {"order"})
        out += [f"{part}.{k}: {table[part].get(k)!r} vs {other[part].get(k)!r}"
                for k in keys if table[part].get(k) != other[part].get(k)]
    if table["reference_autoattack"] != other["reference_autoattack"]:
        out.append("reference_autoattack differs")
    return out


def merge(table: dict, other: dict) -> dict:
    """`table` with `other`'s rows, recipes and skipped entries added (OptionError naming
    `other` if they cannot share a table; see the module docstring)."""
    diff = differences(table, other)
    if diff:
        raise OptionError("other", "these tables measured differently, their rows cannot share "
                          "one table: " + "; ".join(diff))
    sweep = is_sweep(table)
    have = {row_id(r, sweep) for r in table["rows"]}
    clash = sorted({_show(row_id(r, sweep)) for r in other["rows"] if row_id(r, sweep) in have})
    if clash:
        raise OptionError("other", f"rows {', '.join(clash)} are in the table already: remove "
                          "them from it first if the new ones should replace them")
    seeds = sorted(set(_seeds(table)) | set(_seeds(other)))
    rows = table["rows"] + other["rows"]
    gaps = missing(rows, seeds)
    if gaps:
        raise OptionError("other", f"the joined table would lack {', '.join(gaps)} (its seeds: "
                          f"{', '.join(map(str, seeds))}): join the tables of those methods' other "
                          "seeds first (merge one seed's table into the other's), then this one")
    recipes = {r["key"] for r in table["recipes"]}
    return {**table, "options": {**table["options"], "seeds": seeds}, "rows": rows,
            "recipes": table["recipes"] + [r for r in other["recipes"] if r["key"] not in recipes],
            "skipped": table["skipped"] + other["skipped"],
            "later_rows": table.get("later_rows", []) + [_own_rows(other)] + _added(other)}


def row_id(row: dict, sweep: bool) -> tuple:
    """What one row is: its method's key, its seed and, in a sweep, its budget (a single
    budget's rows may predate the budget field)."""
    return row["key"], row["seed"], row.get("budget") if sweep else None


def missing(rows: list[dict], seeds: list[int]) -> list[str]:
    """'KEY (seed S)' for each method that has no row at one of `seeds`."""
    have = {(r["key"], r["seed"]) for r in rows}
    keys = dict.fromkeys(r["key"] for r in rows)
    return [f"{k} (seed {s})" for k in keys for s in seeds if (k, s) not in have]


def _pairs(entry: dict, doc: dict) -> set:
    """(key, seed) of each row a `later_rows` entry of `doc` added."""
    return {(k, s) for k in entry["keys"] for s in entry.get("seeds", _seeds(doc))}


def _added(doc: dict) -> list[dict]:
    """`doc`'s own `later_rows` entries of rows it has (a copied table may carry others)."""
    rows = {(r["key"], r["seed"]) for r in doc["rows"]}
    return [g for g in doc.get("later_rows", []) if _pairs(g, doc) & rows]


def _own_rows(doc: dict) -> dict:
    """The `later_rows` entry of the rows `doc`'s own command measured (not those it had added)."""
    added = set().union(*(_pairs(g, doc) for g in doc.get("later_rows", [])))
    own = [r for r in doc["rows"] if (r["key"], r["seed"]) not in added]
    env = doc["environment"]
    return {"keys": list(dict.fromkeys(r["key"] for r in own)),
            "seeds": sorted({r["seed"] for r in own}), "command": doc["command"],
            "commit": env["commit"], "device": env["device"], "torch": env["torch"],
            "date_utc": doc["date_utc"], "load_average": doc["load_average"]}


def _seeds(doc: dict) -> list[int]:
    seeds = doc["options"]["seeds"]
    return list(seeds) if isinstance(seeds, (list, tuple)) else [seeds]


def _show(rid: tuple) -> str:
    key, seed, budget = rid
    return f"{key} (seed {seed}" + ("" if budget is None else f", budget {budget}") + ")"


def _one(value):
    """One budget is written as E or [E] (a sweep's list of one): the same setting."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value
