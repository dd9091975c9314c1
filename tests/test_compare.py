"""`aft-fast compare`: the budget rule, the cost count, the masking check, and a tiny end-to-end
run that writes the table, JSON and plot and, run again, redoes nothing."""
import json

import pytest
import torch
import torch.nn as nn
import yaml

from aft_fast.compare import CompareOptions, Protocol, compare
from aft_fast.compare.evaluation import evaluate_model
from aft_fast.compare.recipes import plan
from aft_fast.errors import OptionError

TINY_PROTOCOL = dict(pgd_steps=3, pgd_restarts=2, aa_steps=2, aa_queries=10, aa_targets=1,
                     mask_images=8, eval_batch_size=64)


def epochs_of(epochs, replays, aft_epochs, arch="small_cnn"):
    return {r.key: r.epochs for r in plan(arch=arch, eps=0.1, epochs=epochs, train_steps=2,
                                          replays=replays, aft_epochs=aft_epochs)}


def test_budget_rule_free_at_rounds_half_up_and_fine_tuning_takes_an_eighth():
    assert epochs_of(8, 4, None) == {"natural": 8, "pgd-at": 8, "pgd-at+ema": 8, "fast-at": 8,
                                     "free-at": 2, "aft": 1, "aft+ema": 1, "trades": 8,
                                     "trades-ft": 1, "n-fgsm": 8, "mart": 8, "yopo": 2,
                                     "atta": 8, "rift": 1}
    assert epochs_of(10, 4, None)["free-at"] == 3  # 2.5 -> 3: total work 12 >= 10, stated
    assert epochs_of(2, 8, None)["free-at"] == 1  # never below one epoch
    assert epochs_of(24, 8, 5)["aft"] == 5
    assert epochs_of(16, None, None, arch="preact_resnet18")["free-at"] == 2  # CIFAR: m = 8


def test_recipes_follow_the_references():
    rs = {r.key: r for r in plan(arch="small_cnn", eps=0.1, epochs=8, train_steps=7,
                                 replays=None, aft_epochs=None)}
    assert rs["fast-at"].train["bn_mode"] == "train" and rs["fast-at"].train["co_guard"]
    assert rs["pgd-at"].train["bn_mode"] == "eval" and rs["pgd-at"].train["steps"] == 7
    assert rs["free-at"].train["replays"] == 4 and rs["free-at"].epochs == 2
    assert rs["aft"].parent == "natural" and rs["aft"].train["schedule"] == "slow-start-fast-decay"
    assert rs["rift"].parent == "pgd-at"
    cifar = {r.key: r for r in plan(arch="preact_resnet18", eps=8 / 255, epochs=16,
                                    train_steps=7, replays=None, aft_epochs=None)}
    assert cifar["free-at"].train["replays"] == 8 and cifar["free-at"].epochs == 2
    assert cifar["fast-at"].train["optimizer"] == "sgd"


def test_cost_counts_passes_per_training_image():
    cost = {r.key: r.passes_per_epoch for r in plan(arch="small_cnn", eps=0.1, epochs=8,
                                                     train_steps=7, replays=4, aft_epochs=None)}
    assert cost == {"natural": 1, "pgd-at": 8, "pgd-at+ema": 8, "free-at": 4, "fast-at": 2,
                    "aft": 8, "aft+ema": 8, "trades": 9, "trades-ft": 9, "n-fgsm": 2, "mart": 9,
                    "yopo": 6.2, "atta": 2, "rift": 1}


def test_rift_cost_counts_its_mrc_and_alpha_search(tmp_path):
    from aft_fast.compare.cost import row_passes
    from aft_fast.rift.method import RiFT
    from aft_fast.io import write_json

    write_json({"settings": {"examples": 512, "attack_steps": 10, "ascent_steps": 10},
                "cost": {"modules": 4}}, tmp_path / "mrc.json")
    write_json({"attack_steps": 10, "rows": [{"alpha": a / 10, "n": 5000} for a in range(11)]},
               tmp_path / "interpolation.json")
    # MRC: 512 x (10 PGD steps + 4 modules x 10 ascent steps); α search: 11 x 5000 x 10
    assert RiFT().extra_passes(tmp_path) == 512 * 50 + 550_000
    rift = next(r for r in plan(arch="small_cnn", eps=0.1, epochs=8, train_steps=5, replays=None,
                                aft_epochs=None) if r.key == "rift")
    assert row_passes(rift, tmp_path, 1, 10_000) == pytest.approx(1 + 57.56)


def test_options_refuse_a_child_without_its_parent():
    with pytest.raises(OptionError) as err:
        CompareOptions(methods=("pgd-at", "aft")).check()
    assert err.value.option == "methods"


class Bands(nn.Module):
    """Class k = images whose row k is brighter (0.6 on 0.4): logit k is row k's mean
    brightness, an informative gradient everywhere (a flip needs ε > 0.1). `masked` puts a
    zero-gradient quantiser in front: the classic gradient masking."""

    def __init__(self, masked: bool = False):
        super().__init__()
        self.masked = masked
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        if self.masked:
            x = torch.round(x * 255) / 255  # zero gradient almost everywhere
        return self.scale * x.mean(dim=(1, 3))


def _band_data(n=40):
    y = torch.arange(n) % 10
    x = torch.full((n, 1, 10, 10), 0.4)
    x[torch.arange(n), 0, y] = 0.6
    return x, y


@pytest.mark.parametrize("masked", [False, True])
def test_masking_check_flags_a_zero_gradient_model_and_passes_a_normal_one(masked):
    x, y = _band_data()
    p = Protocol(eps=0.03, **{k: v for k, v in TINY_PROTOCOL.items() if k != "eval_batch_size"},
                 weak_steps=2, mask_steps=10)
    out = evaluate_model(Bands(masked), x, y, p)
    assert out["clean_acc"] == 1.0 and out["pgd_acc"] == 1.0  # robust at ε = 0.03 either way
    assert out["masking"]["falls_to_zero"]["pass"] is not masked
    assert out["masking"]["all"] is not masked
    sweep = {row["eps"]: row["acc"] for row in out["eps_sweep"]}
    assert list(sweep) == [0.03, 0.06, 0.12, 0.24, 0.48, 0.5]
    assert sweep[0.12] == (1.0 if masked else 0.0)  # the gradient finds the flip; noise cannot


def test_raising_aa_images_attacks_only_new_images_and_a_new_setting_redoes_only_its_stage(
        monkeypatch, tmp_path):
    import aft_fast.compare.evaluation as evaluation

    x, y = _band_data()
    x[::3] = 0.48 + (x[::3] - 0.4) / 0.2 * 0.04  # every third image low-contrast: fooled
    attacked, pgd_calls = [], []
    real_aa, real_pgd = evaluation.autoattack_survivors, evaluation.pgd_survivors
    def recording_aa(m, xs, ys, alive, p, counts):
        attacked.extend(alive.nonzero().flatten().tolist())
        return real_aa(m, xs, ys, alive, p, counts)

    monkeypatch.setattr(evaluation, "autoattack_survivors", recording_aa)
    monkeypatch.setattr(evaluation, "pgd_survivors", lambda *a, **k: (
        pgd_calls.append(k["steps"]) or real_pgd(*a, **k)))
    tiny = {k: v for k, v in TINY_PROTOCOL.items() if k != "eval_batch_size"}
    p = Protocol(eps=0.03, **tiny, weak_steps=2, mask_steps=10, aa_images=10, batch_size=4)
    state = {}
    first = evaluation.evaluate_model(Bands(), x, y, p, state=state)
    assert sorted(attacked) == list(range(10)) and first["autoattack_n"] == 10
    attacked.clear(), pgd_calls.clear()
    wider = Protocol(**{**p.settings(), "aa_images": 25, "mask_steps": 11})
    torch.save(state, tmp_path / "state.pt")  # what --report-only says of it under `wider`
    assert evaluation.progress(tmp_path / "state.pt", wider, len(y)) == (
        "stages done: clean, weak, pgd; left: autoattack, sweep; clean accuracy 100.00% (whole "
        "test split); AutoAttack 10 of 25 candidates in the first 25 images")
    second = evaluation.evaluate_model(Bands(), x, y, wider, state=state)
    assert sorted(attacked) == list(range(10, 25))  # only the new images
    assert set(pgd_calls) == {11}  # clean, weak PGD and PGD reused; the sweep redone
    assert second["autoattack_n"] == 25 and second["autoattack_candidates"] == 25
    fresh = evaluation.evaluate_model(Bands(), x, y, wider)
    assert fresh["autoattack_acc"] == second["autoattack_acc"]
    assert fresh["autoattack_fooled_by_part"] == second["autoattack_fooled_by_part"]
    attacked.clear()
    fewer = Protocol(**{**wider.settings(), "aa_images": 5})  # answered by the larger record
    out = evaluation.evaluate_model(Bands(), x, y, fewer, state=state)
    assert attacked == [] and out["autoattack_n"] == 5
    assert len(state["stages"]["autoattack"]["alive"]) == 25  # the larger record is kept
    assert out["autoattack_fooled_by_part"] is None  # kept for the whole record only
    assert out["autoattack_acc"] == pytest.approx(3 / 5)  # images 0 and 3 fooled
    assert second["autoattack_acc"] == pytest.approx(16 / 25)


@pytest.fixture
def tiny_test_split(small_synthetic, monkeypatch):
    import aft_fast.data as data

    real = data.make_loaders
    monkeypatch.setattr(data, "make_loaders", lambda d, **kw: real(
        d, synthetic_shape=(1, 28, 28), synthetic_size=128, **kw))


@pytest.mark.slow
def test_tiny_compare_writes_the_table_and_a_second_run_redoes_nothing(tmp_path, tiny_test_split,
                                                                       monkeypatch):
    opts = dict(data="synthetic", eps=0.1, out=str(tmp_path / "cmp"), epochs=1, train_steps=2,
                batch_size=64, val_images=16, methods=("natural", "pgd-at", "aft"), quiet=True,
                aa_images=10, **TINY_PROTOCOL)
    out = tmp_path / "cmp"
    trained = compare(CompareOptions(**opts, train_only=True), command="test")
    assert trained["rows"] == [] and not (out / "evals").exists()
    assert (out / "runs" / "seed0" / "aft" / "compare_done.json").is_file()
    import aft_fast.train.run as run

    with monkeypatch.context() as m:  # the evaluating run reuses every trained model
        m.setattr(run, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
        doc = compare(CompareOptions(**opts), command="test")
    for name in ("table.md", "table.json", "robust_vs_cost.png"):
        assert (out / name).is_file()
    rows = {r["key"]: r for r in doc["rows"]}
    assert set(rows) == {"natural", "pgd-at", "aft"}
    assert rows["pgd-at"]["passes_per_image"] == 3 and rows["natural"]["passes_per_image"] == 1
    args = yaml.safe_load((out / "runs" / "seed0" / "pgd-at" / "args.yaml").read_text())
    assert args["eps_warmup_epochs"] == 0.25 and args["resolved"]["bn_mode"] == "eval"
    assert all(r["autoattack_acc"] <= r["clean_acc_attacked_subset"] for r in rows.values())
    assert all(r["autoattack_n"] == 10 and r["n"] == 16 for r in rows.values())
    for r in rows.values():  # AutoAttack's images are PGD's first 10: the check compares those
        check = r["masking"]["autoattack_le_pgd"]
        assert check["pass"] == (r["autoattack_acc"] <= r["pgd_acc_autoattack_images"] + 0.005)
    table = (out / "table.md").read_text()
    assert "| AFT | Natural |" in table and "masking" in table
    # each row states the precision and memory format it trained in (auto, resolved)
    from aft_fast.fast_path import recorded_fast_path
    assert args["amp"] == "auto" and rows["pgd-at"]["trained_under"] == recorded_fast_path(args)
    assert f"| {recorded_fast_path(args)} |" in table and "trained in" in table
    # the seconds' machine and load are the training runs', recorded when each finished
    stamp = json.loads((out / "runs" / "seed0" / "aft" / "compare_done.json").read_text())
    assert stamp["trained_on"]["device_type"] == "cpu" and \
        len(stamp["trained_on"]["load_average_end"]) == 3
    assert "load average at the end of each CPU training run" in table
    assert "when this report was written" not in table
    assert doc["test_split"]["count"] == 16 and len(doc["test_split"]["labels_sha256"]) == 64

    def refuse(*a, **k):
        raise AssertionError("redone")

    import aft_fast.compare.evaluation as evaluation

    monkeypatch.setattr(run, "train", refuse)
    monkeypatch.setattr(evaluation, "pgd_survivors", refuse)
    monkeypatch.setattr(evaluation, "autoattack_survivors", refuse)
    again = compare(CompareOptions(**opts), command="test")
    assert json.loads(json.dumps(again["rows"], default=str)) == \
        json.loads(json.dumps(doc["rows"], default=str))
    # --report-only: a row never trained is listed as not finished, nothing is computed
    partial = compare(CompareOptions(**{**opts, "methods": ("natural", "fast-at", "aft"),
                                        "report_only": True}), command="test")
    assert [r["key"] for r in partial["rows"]] == ["natural", "aft"]
    assert {"key": "fast-at", "seed": 0, "reason": "training not finished (0 of 1 epochs)"} \
        in partial["skipped"]


def test_cli_takes_seed_lists_and_records_the_command(monkeypatch):
    from click.testing import CliRunner

    import aft_fast.compare.runner as runner
    from aft_fast.cli import main

    seen = {}
    monkeypatch.setattr(runner, "compare", lambda opts, command: seen.update(opts=opts, cmd=command))
    result = CliRunner().invoke(main, ["compare", "--data", "mnist5k", "--eps", "8/255",
                                       "--seeds", "0,1", "--methods", "natural,aft"])
    assert result.exit_code == 0, result.output
    assert seen["opts"].seeds == (0, 1) and seen["opts"].methods == ("natural", "aft")
    assert seen["cmd"] == "aft-fast compare --data mnist5k --eps 8/255 --seeds 0,1 " \
                         "--methods natural,aft"


def test_method_defaults_follow_the_reference_code_and_eps_warms_up():
    from aft_fast.methods import make_method

    assert make_method("fast-at", eps=0.1).bn_mode == "train"  # fast_adversarial
    assert make_method("free-at", eps=0.1).bn_mode == "train"
    assert make_method("pgd-at", eps=0.1).bn_mode == "eval"  # MadryLab/robustness
    assert make_method("fast-at", eps=0.1, bn_mode="eval").bn_mode == "eval"
    m = make_method("pgd-at", eps=0.1, steps=5, eps_warmup_epochs=2)
    m.set_progress(0.5)
    assert m.eps == pytest.approx(0.025) and m.alpha == pytest.approx(0.0125)
    m.set_progress(3.0)
    assert m.eps == pytest.approx(0.1) and m.alpha == pytest.approx(0.05)


def _saved_small_cnn(path, seed, **meta):
    from aft_fast.models import build
    from aft_fast.train.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    model = build("small_cnn", 10, in_channels=1, **meta)
    save_checkpoint(path, model=model, arch="small_cnn", num_classes=10, input_size=28,
                    method=str(path.stem), config={"path": str(path)}, epoch=seed + 1)
    return path


def test_a_row_with_its_parents_weights_shares_the_parents_evaluation(tmp_path, monkeypatch):
    """RiFT's α search may keep α = 0: the PGD AT model, in another file. Its evaluation is the
    parent's, not computed twice; a model with other weights or another normalisation is not."""
    import aft_fast.compare.evaluation as evaluation
    from aft_fast.models.weights import read_checkpoint
    from aft_fast.train.checkpoint import weights_digest

    parent = _saved_small_cnn(tmp_path / "pgd-at.pt", seed=0)
    torch.manual_seed(0)
    twin = tmp_path / "rift.pt"  # same weights; other method, config and epoch in the file
    torch.save({**read_checkpoint(parent), "method": "rift", "config": {"alpha": 0.0},
                "epoch": 9}, twin)
    other = _saved_small_cnn(tmp_path / "other.pt", seed=1)
    renormed = _saved_small_cnn(tmp_path / "renormed.pt", seed=0, mean=0.5, std=0.5)
    digests = {p.stem: weights_digest(read_checkpoint(p))
               for p in (parent, twin, other, renormed)}
    assert digests["pgd-at"] == digests["rift"]
    assert len({digests["pgd-at"], digests["other"], digests["renormed"]}) == 3

    x, y = torch.rand(12, 1, 28, 28), torch.arange(12) % 10
    p = Protocol(eps=0.1, **{k: v for k, v in TINY_PROTOCOL.items() if k != "eval_batch_size"},
                 batch_size=4)
    evals = tmp_path / "evals" / "seed0"
    first = evaluation.evaluate_checkpoint(parent, x, y, p, evals / "pgd-at.pt")
    assert first["shared_with"] is None

    def refuse(*a, **k):
        raise AssertionError("computed again")

    monkeypatch.setattr(evaluation, "pgd_survivors", refuse)
    monkeypatch.setattr(evaluation, "autoattack_survivors", refuse)
    monkeypatch.setattr(evaluation, "correct", refuse)
    said = []
    second = evaluation.evaluate_checkpoint(twin, x, y, p, evals / "rift.pt", say=said.append)
    assert second == {**first, "shared_with": "pgd-at"}
    assert said == ["    same weights as pgd-at: its evaluation is shared"]
    for path in (other, renormed):
        with pytest.raises(AssertionError, match="computed again"):
            evaluation.evaluate_checkpoint(path, x, y, p, evals / f"{path.stem}.pt")


def test_the_seconds_footnote_names_the_training_runs_load_not_the_reports():
    from aft_fast.compare.report import _load

    cpu = {"device": "CPU x86_64 (2 threads)", "device_type": "cpu", "cpu_threads": 2}
    doc = {"environment": cpu, "load_average": [9.0, 9.0, 9.0], "rows": [
        {"trained_on": {**cpu, "load_average_end": [2.0, 1.5, 1.0]}},
        {"trained_on": {**cpu, "load_average_end": [3.0, 4.5, 1.0]}}]}
    text = _load(doc)
    assert "1.5 to 4.5, on 2 threads" in text and "9" not in text and "trained on" not in text
    gpu = {"device": "NVIDIA H100", "device_type": "cuda", "cpu_threads": 16}
    doc["rows"] = [{"trained_on": {**gpu, "load_average_end": [1.0, 1.0, 1.0]}}]
    assert _load(doc) == "; trained on NVIDIA H100"  # a GPU's seconds do not depend on the load
    doc["rows"] = [{}]  # runs finished before they recorded it: the report's own, said so
    assert "9 / 9 / 9" in _load(doc) and "when this report was written" in _load(doc)


def test_rows_recorded_before_the_fast_path_count_as_fp32(tmp_path):
    """A finished row whose settings predate --amp/--channels-last trained in fp32, contiguous:
    reused under --amp none --channels-last off, retrained (here: not finished) under auto."""
    from aft_fast.compare.recipes import plan
    from aft_fast.compare.runner import DONE, train_row

    r = next(x for x in plan(arch="small_cnn", eps=0.1, epochs=1, train_steps=2, replays=None,
                             aft_epochs=None, methods=("natural",)))
    run_dir = tmp_path / "natural"
    run_dir.mkdir()
    base = CompareOptions(data="synthetic", eps=0.1, epochs=1, train_steps=2, report_only=True)
    old = CompareOptions(**{**base.__dict__, "amp": "none", "channels_last": "off"}).check()
    settings = {**r.train, "epochs": r.epochs, "data": "synthetic", "arch": "small_cnn",
                "seed": 0, "parent": None, "batch_size": 128, "train_images": None,
                "val_images": None}
    (run_dir / DONE).write_text(json.dumps({"checkpoint": "x.pt", "settings": settings}))
    (run_dir / "args.yaml").write_text("amp: none\nchannels_last: false\n")
    reused = train_row(r, 0, run_dir, None, old)
    # the checkpoint of the row's own folder (a moved comparison folder uses its own)
    assert reused["checkpoint"] == str(run_dir / "x.pt")
    assert reused["trained_under"] == "fp32, contiguous"
    assert train_row(r, 0, run_dir, None, base.check()) is None
