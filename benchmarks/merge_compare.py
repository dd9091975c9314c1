"""Add the rows of another comparison's table.json to a committed table (`aft_fast.compare.merge`:
refused, naming the difference, unless both measured with the same options, protocol and test
split; no row is replaced; a method's seeds measured apart are joined first, one seed's table
into the other's), then rewrite table.json, table.md and the plot next to it.

    python benchmarks/merge_compare.py --table benchmarks/results/compare/fashion-mnist/table.json \
        --add runs/compare/fmnist10k-trades/report/table.json

Run `benchmarks/verify_compare.py --table ...` afterwards: the added rows' checkpoints are checked,
the others are taken from the earlier verify.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aft_fast.compare import report
from aft_fast.compare.merge import merge
from aft_fast.errors import OptionError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", required=True, help="the committed table.json rows are added to")
    p.add_argument("--add", required=True, help="the table.json whose rows are added")
    args = p.parse_args(argv)
    table = Path(args.table)
    docs = []
    for flag, path in (("--table", table), ("--add", Path(args.add))):
        try:
            docs.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            print(f"{flag} {path}: not a readable table.json ({exc})", file=sys.stderr)
            return 2
    try:
        merged = merge(*docs)
    except OptionError as exc:
        print(f"--add {args.add}: {exc.message}", file=sys.stderr)
        return 2
    report.write(merged, table.parent)
    added = sorted({f"{r['key']} (seed {r['seed']})" for r in docs[1]["rows"]})
    print(f"{table}: added {', '.join(added)} ({len(merged['rows'])} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
