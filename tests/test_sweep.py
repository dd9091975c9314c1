"""The budget sweep of `aft-fast compare --epochs 4,8,...` and the per-epoch held-out curve of
`train --test-each-epoch`: rows per budget, the paper-length fine-tune from the same budget's
parent, the Pareto frontier, the plot, resume, the single-budget layout kept."""
import json

import pytest
import torch
import yaml
from test_compare import TINY_PROTOCOL, tiny_test_split  # noqa: F401 (a fixture)

from aft_fast.train.options import TrainOptions
from aft_fast.train.run import train

TINY = dict(data="synthetic", arch="small_cnn", batch_size=32, eval_max_batches=1, eval_steps=2,
            steps=2, eps=0.1, quiet=True, log_every=10**9, device="cpu", method="pgd-at",
            epochs=2)


def test_test_each_epoch_adds_the_test_columns_and_changes_no_weight(tmp_path, small_synthetic):
    from aft_fast.analysis.curves import read_run

    train(TrainOptions(out=str(tmp_path / "plain"), **TINY))
    train(TrainOptions(out=str(tmp_path / "test"), test_each_epoch=True, **TINY))
    rows = [json.loads(line) for line in (tmp_path / "test" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(0 <= r["test_robust_acc"] <= r["test_clean_acc"] <= 1
                                  for r in rows)
    plain = (tmp_path / "plain" / "metrics.jsonl").read_text()
    assert "test_robust_acc" not in plain
    # a reported column only: the same training (its PGD random starts do not shift the RNG)
    for name in ("last.pt", "best.pt"):
        a, b = (torch.load(tmp_path / run / name, weights_only=False)["model"]
                for run in ("plain", "test"))
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_run(tmp_path / "test").split == "test"  # the overfitting curves read it


def test_frontier_keeps_the_points_nothing_beats_in_cost_and_accuracy():
    from aft_fast.compare.sweep import frontier

    #        cheap+weak  dominated   better     same cost, worse  best    tie with 3rd
    points = [(1, 0.2), (2, 0.1), (2, 0.5), (2, 0.4), (8, 0.6), (4, 0.5)]
    assert frontier(points) == [True, False, True, False, True, False]
    assert frontier([(3, 0.5), (3, 0.5)]) == [True, True]  # equal points: neither beats the other


def _row(budget, key, passes, pgd, parent=None, seed=0, **kw):
    return {"budget": budget, "key": key, "passes_per_image": passes, "pgd_acc": pgd,
            "autoattack_acc": None, "parent": parent, "seed": seed, **kw}


def test_autoattack_points_are_each_rows_best_budget_the_frontier_and_the_papers_setting():
    from aft_fast.compare.sweep import autoattack_points

    rows = [_row(4, "natural", 4, 0.0), _row(8, "natural", 8, 0.0),
            _row(4, "pgd-at", 12, 0.5), _row(8, "pgd-at", 24, 0.45),
            _row(8, "pgd-at@last", 24, 0.40, checkpoint_kind="last"),
            _row(4, "aft", 4, 0.3, "natural"), _row(8, "aft", 4, 0.2, "natural"),
            _row(8, "aft@10", 40, 0.3, "natural", paper_length=True)]
    paper = {(8, "natural"), (8, "pgd-at"), (8, "pgd-at@last"), (8, "aft@10")}
    best = {(4, "natural"), (4, "pgd-at"), (4, "aft")}
    assert autoattack_points(rows, "best") == best | paper
    assert autoattack_points(rows, "frontier") == best | paper  # (4, natural), (4, aft), (4, pgd-at)
    assert autoattack_points(rows, "all") is None and autoattack_points(rows, "none") == set()


@pytest.mark.slow
def test_tiny_sweep_rows_per_budget_paper_rows_plot_resume_and_report_only(
        tmp_path, tiny_test_split, monkeypatch):
    from aft_fast.compare import CompareOptions, compare

    opts = dict(data="synthetic", eps=0.1, out=str(tmp_path / "sw"), epochs=(1, 2), train_steps=2,
                batch_size=64, val_images=16, methods=("natural", "pgd-at", "aft"), quiet=True,
                aa_points="none", test_each_epoch=True, eval_images=16, **TINY_PROTOCOL)
    out = tmp_path / "sw"
    doc = compare(CompareOptions(**opts), command="test")
    got = {(r["budget"], r["key"]): r for r in doc["rows"]}
    assert set(got) == {(b, k) for b in (1, 2) for k in ("natural", "pgd-at", "aft", "aft@10")} \
        | {(2, "natural@last"), (2, "pgd-at@last")}  # the longest budget's last epochs too
    for b in (1, 2):
        runs = out / "runs" / "seed0" / f"E{b}"
        ten = got[(b, "aft@10")]  # the paper's 10 epochs, from the Natural model of its budget
        args = yaml.safe_load((runs / "aft@10" / "args.yaml").read_text())
        assert ten["parent"] == "natural" and ten["epochs_run"] == 10 and ten["paper_length"]
        assert args["weights"] == str(runs / "natural" / "best.pt")
        assert ten["passes_per_image"] == 10 * 3 and got[(b, "aft")]["epochs_run"] == 1
        assert got[(b, "pgd-at")]["passes_per_image"] == b * 3
        metrics = (runs / "pgd-at" / "metrics.jsonl").read_text()
        assert metrics.count("test_robust_acc") == b
    last = got[(2, "pgd-at@last")]
    assert last["checkpoint"].endswith("E2/pgd-at/last.pt") and last["checkpoint_kind"] == "last"
    assert all(r["autoattack_acc"] is None for r in doc["rows"])  # --aa-points none
    for name in ("table.md", "table.json", "pareto.png"):
        assert (out / name).stat().st_size > 0
    table = (out / "table.md").read_text()
    assert "## Budget E = 1" in table and "## The paper's setting (E = 2)" in table
    assert "| AFT, 10 epochs (E=2) | Natural | best.pt" in table
    assert "| PGD AT (last epoch) (E=2) | scratch | last.pt (epoch 2) |" in table
    saved = json.loads((out / "table.json").read_text())
    assert set(saved["summary"]["budgets"]) == {"1", "2"}

    import aft_fast.compare.evaluation as evaluation
    import aft_fast.train.run as run

    def refuse(*a, **k):
        raise AssertionError("redone")

    monkeypatch.setattr(run, "train", refuse)  # resumed: every finished stage is reused
    monkeypatch.setattr(evaluation, "pgd_survivors", refuse)
    again = compare(CompareOptions(**opts), command="test")
    first, second = (json.loads(json.dumps(d["rows"], default=str)) for d in (doc, again))
    differ = [(a["key"], a["budget"], k, a.get(k), b.get(k)) for a, b in zip(first, second)
              for k in set(a) | set(b) if a.get(k) != b.get(k)]
    assert len(first) == len(second) and not differ  # the same rows (keys in any order)
    only = compare(CompareOptions(**opts, report_only=True), command="test")
    assert [(r["budget"], r["key"]) for r in only["rows"]] == list(got)


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist5k"])
def test_a_single_budget_table_keeps_its_layout(name):
    """The committed single-budget tables still render (--report-only rewrites them this way),
    each method's row as it was committed."""
    from pathlib import Path

    from aft_fast.compare import report

    folder = Path(__file__).parent.parent / "benchmarks" / "results" / "compare" / name
    doc = json.loads((folder / "table.json").read_text())
    assert not report.is_sweep(doc) and report.plot_name(doc) == "robust_vs_cost.png"
    rendered = report.markdown(doc)
    committed = [line for line in (folder / "table.md").read_text().splitlines()
                 if line.startswith("| ") and "scratch" in line or "| Natural |" in line]
    assert committed and all(line.rstrip("|").rstrip() in rendered for line in committed)


def test_cli_takes_a_budget_list_and_refuses_a_repeated_budget(monkeypatch):
    from click.testing import CliRunner

    import aft_fast.compare.runner as runner
    from aft_fast.cli import main
    from aft_fast.compare import CompareOptions
    from aft_fast.errors import OptionError

    seen = {}
    monkeypatch.setattr(runner, "compare", lambda opts, command: seen.update(opts=opts, cmd=command))
    result = CliRunner().invoke(main, ["compare", "--epochs", "4,8", "--aa-points", "frontier"])
    assert result.exit_code == 0, result.output
    assert seen["opts"].epochs == (4, 8) and seen["opts"].sweep
    assert "--epochs 4,8 --aa-points frontier" in seen["cmd"]
    assert CompareOptions(epochs=8).check().epochs == (8,)  # one budget, as the API took it
    with pytest.raises(OptionError, match="epochs.*given twice"):
        CompareOptions(epochs=(4, 4)).check()
    with pytest.raises(OptionError, match="aa.points"):
        CompareOptions(aa_points="some").check()
