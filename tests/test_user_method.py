"""A method defined only in a test file (tests/user_methods.py), named by import path, runs
through `train`, `--resume` mid-epoch (bitwise), `compare` (its row, its cost) and `bench`, with
nothing edited in the package."""
import json

import pytest
import torch
from click.testing import CliRunner

from aft_fast.cli import main
from aft_fast.compare import CompareOptions, compare
from aft_fast.compare.recipes import plan
from aft_fast.errors import OptionError
from aft_fast.methods import get, make_method
from aft_fast.train.checkpoint import read_checkpoint
from aft_fast.train.options import TrainOptions
from aft_fast.train.preemption import Preempted
from aft_fast.train.run import train
from test_compare import TINY_PROTOCOL, tiny_test_split  # noqa: F401 (a fixture)
from test_preemption import rows, same_weights, signal_at_step

PATH = "user_methods:RampFGSM"


def test_import_path_gives_the_class_and_its_options():
    cls = get(PATH)
    assert cls.name == "ramp-fgsm" and [o.name for o in cls.options] == ["ramp", "smoothing"]
    m = make_method(PATH, eps=0.1, ramp=2)
    assert (m.ramp, m.smoothing, m.alpha) == (2, 0.1, pytest.approx(0.125))
    assert m.passes_per_epoch() == 2  # its one FGSM step + the update


@pytest.mark.parametrize("path, says", [
    ("user_methods:NotAMethod", "not a subclass of aft_fast.methods.Method"),
    ("user_methods:Missing", "has no attribute"),
    ("no_such_module:Thing", "no module named"),
    ("pgd", "must be one of natural, pgd-at"),
])
def test_bad_method_paths_are_refused_naming_the_option(path, says):
    with pytest.raises(OptionError, match=says) as err:
        TrainOptions(method=path).check()
    assert err.value.option == "method"


def test_a_zero_own_option_is_a_value_not_the_default():
    opts = TrainOptions(method="trades", beta=0.0).check()
    assert opts.method_kwargs() == {"beta": 0.0}


def test_own_options_go_to_their_method_only():
    opts = TrainOptions(method=PATH, method_options={"ramp": 3}).check()
    assert opts.method_kwargs() == {"ramp": 3}
    with pytest.raises(OptionError, match="no option 'beta'") as err:
        TrainOptions(method=PATH, method_options={"beta": 3}).check()
    assert err.value.option == "method_options"
    with pytest.raises(OptionError, match="is an option of trades, trades-ft"):
        TrainOptions(method=PATH, beta=3.0).check()
    with pytest.raises(OptionError, match="must be >= 1"):
        TrainOptions(method=PATH, method_options={"ramp": 0}).check()


def test_train_and_resume_mid_epoch_bitwise(synthetic_opts, tmp_path, monkeypatch):
    kw = dict(method=PATH, epochs=2, eps=0.1, method_options={"ramp": 6})
    train(synthetic_opts(tmp_path, "straight", **kw))
    with monkeypatch.context() as m:
        signal_at_step(m, 5)  # epoch 2, batch 2 of 4: the ramp (6 batches) is still running
        with pytest.raises(Preempted):
            train(synthetic_opts(tmp_path, "stopped", **kw))
    ckpt = read_checkpoint(tmp_path / "stopped" / "last.pt")
    assert ckpt["method"] == PATH and int(ckpt["method_state"]["batches"]) == 6
    assert ckpt["config"]["resolved"]["method_options"] == {"ramp": 6, "smoothing": 0.1}
    train(synthetic_opts(tmp_path, "stopped", resume=True, **kw))
    assert same_weights(tmp_path / "straight" / "last.pt", tmp_path / "stopped" / "last.pt")
    assert rows(tmp_path / "straight") == rows(tmp_path / "stopped")


def test_the_cli_trains_it_and_evaluates_its_checkpoint(small_synthetic, tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--method", PATH, "--data", "synthetic",
                                  "--epochs", "1", "--eps", "8/255", "--out", str(out),
                                  "--method-options", "{ramp: 2}", "--quiet"])
    assert r.exit_code == 0, r.output
    # Its checkpoint needs only the model to be read: the method's code is not imported.
    from aft_fast import load_checkpoint
    from aft_fast.evaluate import evaluate

    model = load_checkpoint(out / "best.pt")
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    report = evaluate(model, [(x, y)], eps=8 / 255, steps=2)
    assert 0 <= report["robust_acc"] <= report["clean_acc"] <= 1


def test_compare_gives_it_a_row_with_its_cost(tiny_test_split, tmp_path):
    recipes = {r.key: r for r in plan(arch="small_cnn", eps=0.1, epochs=2, train_steps=2,
                                      replays=None, aft_epochs=None, methods=("natural", PATH))}
    r = recipes["ramp-fgsm"]
    assert r.method == PATH and r.train["method"] == PATH and r.passes_per_epoch == 2
    doc = compare(CompareOptions(data="synthetic", eps=0.1, epochs=1, methods=("natural", PATH),
                                 out=str(tmp_path / "cmp"), batch_size=64, eval_images=32,
                                 quiet=True, **TINY_PROTOCOL))
    rows_ = {row["key"]: row for row in doc["rows"]}
    assert rows_["ramp-fgsm"]["passes_per_image"] == 2 and rows_["ramp-fgsm"]["label"] == "Ramp FGSM"
    table = json.loads((tmp_path / "cmp" / "table.json").read_text())
    assert any(row["key"] == "ramp-fgsm" for row in table["rows"])
    assert "Ramp FGSM" in (tmp_path / "cmp" / "table.md").read_text()


def test_bench_times_its_iteration():
    from aft_fast.perf.bench import run_bench
    from aft_fast.perf.workload import Workload

    w = Workload(arch="small_cnn", image_size=28, in_channels=1, batch=8, steps=2, eps=0.1,
                 device="cpu")
    result = run_bench(w, warmup=0, repeats=1, methods=("pgd-at", PATH), third_party=False)
    row = result["methods"][PATH]
    assert row["attack_steps"] == 1 and row["weight_updates_per_batch"] == 1
    assert row["epochs"] == 15.0 and row["median_s"] > 0
