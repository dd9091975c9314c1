"""Rows of another comparison added to a committed table (`compare/merge.py`): only where both
measured alike, never replacing a row, and the added rows' own command shown in table.md."""
import copy
import json
from pathlib import Path

import pytest

from aft_fast.compare import report
from aft_fast.compare.merge import merge
from aft_fast.errors import OptionError

TABLE = Path(__file__).resolve().parents[1] / "benchmarks/results/compare/fashion-mnist/table.json"


@pytest.fixture
def pair():
    table = json.loads(TABLE.read_text())
    other = copy.deepcopy(table)
    other["rows"] = [{**r, "key": "new-" + r["key"], "label": "New " + r["label"]}
                     for r in other["rows"] if r["key"] == "pgd-at"]
    other["recipes"] = [{**r, "key": "new-pgd-at"} for r in other["recipes"]
                        if r["key"] == "pgd-at"]
    other["command"] = "aft-fast compare --methods new-pgd-at (test)"
    other["environment"] = {**other["environment"], "commit": "abc123"}
    other["options"]["out"] = "elsewhere"  # how it was run: may differ
    other["options"]["epochs"] = [table["options"]["epochs"]]  # today's form of one budget
    return table, other


def test_rows_are_added_with_their_own_command(pair, tmp_path):
    table, other = pair
    merged = merge(table, other)
    assert len(merged["rows"]) == len(table["rows"]) + 2
    assert [r["key"] for r in merged["recipes"]][-1] == "new-pgd-at"
    assert merged["later_rows"][-1]["keys"] == ["new-pgd-at"]
    assert merged["later_rows"][:-1] == table.get("later_rows", [])  # earlier additions kept
    report.write(merged, tmp_path)
    md = (tmp_path / "table.md").read_text()
    assert "New PGD AT: added later" in md and "--methods new-pgd-at (test)" in md
    assert "commit abc123" in md and md.count("| New PGD AT | scratch |") == 1  # one summary row
    assert md.count("| New PGD AT | ") == 3  # and one per seed
    summary = json.loads((tmp_path / "table.json").read_text())["summary"]
    assert summary[-1]["key"] == "new-pgd-at"
    assert summary[-1]["pgd_acc"] == next(s for s in table["summary"]
                                          if s["key"] == "pgd-at")["pgd_acc"]


@pytest.mark.parametrize("change, named", [
    (lambda d: d["protocol"].update(pgd_restarts=1), "protocol.pgd_restarts"),
    (lambda d: d["options"].update(train_images=5000), "options.train_images"),
    (lambda d: d["test_split"].update(labels_sha256="0" * 64), "test_split.labels_sha256"),
    (lambda d: d.update(reference_autoattack=False), "reference_autoattack"),
])
def test_a_table_measured_differently_is_refused_naming_the_difference(pair, change, named):
    table, other = pair
    change(other)
    with pytest.raises(OptionError, match=named) as err:
        merge(table, other)
    assert err.value.option == "other"


def test_the_split_is_compared_by_its_hashes_not_its_prose(pair):
    table, other = pair
    other["test_split"]["order"] = "reworded"
    assert len(merge(table, other)["rows"]) == len(table["rows"]) + 2


def test_a_row_already_in_the_table_is_never_replaced(pair):
    table, _ = pair
    with pytest.raises(OptionError, match="in the table already"):
        merge(table, copy.deepcopy(table))


def one_seed(doc, seed, key="new-pgd-at"):
    """`doc` as a command of one seed would have written it."""
    part = copy.deepcopy(doc)
    part["rows"] = [r for r in part["rows"] if r["seed"] == seed]
    part["options"]["seeds"] = [seed]
    part["command"] = f"aft-fast compare --methods {key} --seeds {seed} (test)"
    part["later_rows"] = []
    return part


def test_a_methods_seeds_measured_apart_are_joined_then_added(pair, tmp_path):
    table, other = pair
    first, second = one_seed(other, 0), one_seed(other, 1)
    with pytest.raises(OptionError, match=r"new-pgd-at \(seed 1\)") as err:
        merge(table, first)  # the table would show the method at one seed of two
    assert "other seeds first" in err.value.message
    joined = merge(first, second)
    assert joined["options"]["seeds"] == [0, 1] and len(joined["rows"]) == 2
    merged = merge(table, joined)
    assert len(merged["rows"]) == len(table["rows"]) + 2
    # each seed keeps the command that measured it
    assert [(g["keys"], g["seeds"], g["command"].endswith(f"--seeds {s} (test)"))
            for s, g in enumerate(merged["later_rows"][-2:])] == [
        (["new-pgd-at"], [0], True), (["new-pgd-at"], [1], True)]
    report.write(merged, tmp_path)
    md = (tmp_path / "table.md").read_text()
    assert "New PGD AT (seed 0): added later" in md and "New PGD AT (seed 1): added later" in md
    with pytest.raises(OptionError, match=r"new-pgd-at \(seed 1\) are in the table already"):
        merge(joined, second)
