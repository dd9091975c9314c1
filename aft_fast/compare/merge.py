"""Rows of another comparison added to a committed table: a new method's row without rerunning
the others (their checkpoints may be long gone), only where both tables measured the same way.

Refused, naming what differs, unless the two documents have the same evaluation protocol, the
same test split (its SHA-256 hashes), the same reference-AutoAttack flag and the same budget and
training options (`MUST_AGREE`); a row key already in the table is refused too (no row is
silently replaced). Each added row group keeps its own command, commit, date and load in
`later_rows`, which table.md prints under the first command.
"""
from __future__ import annotations

from aft_fast.errors import OptionError

# What a row's numbers depend on besides its own recipe; the rest (out, report, methods,
# train_only, report_only, quiet, eval_batch_size) says how the command was run.
MUST_AGREE = ("data", "arch", "eps", "seeds", "epochs", "aft_epochs", "train_steps", "replays",
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
        keys = sorted(set(table[part]) | set(other[part]))
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
    have = {r["key"] for r in table["rows"]}
    clash = sorted({r["key"] for r in other["rows"]} & have)
    if clash:
        raise OptionError("other", f"rows {', '.join(clash)} are in the table already: remove "
                          "them from it first if the new ones should replace them")
    keys = list(dict.fromkeys(r["key"] for r in other["rows"]))
    recipes = {r["key"] for r in table["recipes"]}
    later = {"keys": keys, "command": other["command"], "commit": other["environment"]["commit"],
             "device": other["environment"]["device"], "torch": other["environment"]["torch"],
             "date_utc": other["date_utc"], "load_average": other["load_average"]}
    return {**table, "rows": table["rows"] + other["rows"],
            "recipes": table["recipes"] + [r for r in other["recipes"] if r["key"] not in recipes],
            "skipped": table["skipped"] + other["skipped"],
            "later_rows": table.get("later_rows", []) + [later]}


def _one(value):
    """One budget is written as E or [E] (a sweep's list of one): the same setting."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value
