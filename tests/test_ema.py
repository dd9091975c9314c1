"""The weight average (`train --ema`): the references' warm-up, BatchNorm statistics copied from
the trained model, evaluated every epoch and chosen for best.pt, carried by checkpoints so a
mid-epoch resume is bitwise exact, and the weights every reader of a checkpoint gets (the raw
ones on request); compare's +ema rows."""
import json

import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

from aft_fast.compare import CompareOptions, compare
from aft_fast.compare.recipes import plan
from aft_fast.errors import OptionError
from aft_fast.models.normalize import Normalized
from aft_fast.models.weights import read_state_dict
from aft_fast.train import export_torchvision
from aft_fast.train.checkpoint import load_checkpoint, read_checkpoint, weights_digest
from aft_fast.train.ema import WeightAverage
from aft_fast.train.options import TrainOptions
from aft_fast.train.run import train
from test_compare import TINY_PROTOCOL, tiny_test_split  # noqa: F401 (a fixture)
from test_preemption import stop_then_resume

EMA = dict(method="pgd-at", steps=1, ema=0.9)


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_average_follows_the_references_warm_up_and_takes_the_batchnorm_statistics():
    net = Normalized(nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)), [0.5], [0.5])
    avg = WeightAverage(net, decay=0.15)
    weight, expected = net.model[0].weight, net.model[0].weight.detach().clone()
    # decay_t = min(τ, (1 + t) / (10 + t)): 0.1, then τ = 0.15 (2/11 is above it), then τ
    for t, decay in enumerate([0.1, 0.15, 0.15]):
        with torch.no_grad():
            weight.add_(1.0 + t)
        net.train()(torch.rand(4, 1, 3, 3))  # moves the running statistics
        avg.update()
        expected = decay * expected + (1 - decay) * weight.detach()
        assert torch.allclose(avg.model.model[0].weight, expected, atol=1e-6)
        bn, avg_bn = net.model[1], avg.model.model[1]
        assert torch.equal(avg_bn.running_mean, bn.running_mean)
        assert torch.equal(avg_bn.running_var, bn.running_var)
        assert int(avg_bn.num_batches_tracked) == t + 1
    assert avg.updates == 3 and not avg.model.training
    state = avg.state_dict()  # the plain network's keys, as a checkpoint's "model"
    assert set(state["model"]) == set(net.model.state_dict()) and state["updates"] == 3


@pytest.mark.parametrize("decay", [0.0, 1.0, 1.5])
def test_a_decay_outside_zero_one_is_refused_naming_the_option(decay):
    with pytest.raises(OptionError, match="^--ema: "):
        TrainOptions(ema=decay).check()
    with pytest.raises(OptionError, match="^--ema-decay: "):
        CompareOptions(ema_decay=decay).check()


def test_a_run_evaluates_the_average_picks_best_on_it_and_every_reader_gets_it(
        synthetic_opts, tmp_path, monkeypatch):
    summary = train(synthetic_opts(tmp_path, "run", epochs=1, **EMA))
    row = summary["rows"][0]
    assert row["ema_val_clean_acc"] is not None and row["ema_val_robust_acc"] is not None
    assert summary["best"]["metric"] == "ema_val_robust_acc"
    path = tmp_path / "run" / "best.pt"
    ckpt = read_checkpoint(path)
    average, trained = ckpt["ema"]["model"], ckpt["model"]
    assert ckpt["ema"]["updates"] == 4 and ckpt["ema"]["decay"] == 0.9  # 4 batches, 1 epoch
    assert not same_state(average, trained)
    # load_checkpoint, export, --weights and compare's digest read the average; raw on request
    assert same_state(load_checkpoint(path).model.state_dict(), average)
    assert same_state(load_checkpoint(path, raw=True).model.state_dict(), trained)
    assert same_state(torch.load(export_torchvision(path, tmp_path / "e.pt")), average)
    assert same_state(torch.load(export_torchvision(path, tmp_path / "r.pt", raw=True)), trained)
    assert same_state(read_state_dict(str(path)), average)
    assert weights_digest(ckpt) != weights_digest({**ckpt, "ema": None})
    # eval: the average by default, --raw-weights the trained weights, and it says which
    import aft_fast.data as data
    from aft_fast.cli import main

    real = data.make_loaders
    monkeypatch.setattr(data, "make_loaders", lambda d, **kw: real(
        d, synthetic_shape=(1, 28, 28), synthetic_size=128, **kw))
    for flags, weights in (([], "average"), (["--raw-weights"], "trained")):
        out = tmp_path / f"{weights}.json"
        result = CliRunner().invoke(main, ["eval", "--checkpoint", str(path), "--data", "synthetic",
                                           "--attack", "none", "--eps", "0.1", "--max-batches",
                                           "1", "--device", "cpu", "--json", str(out), *flags])
        assert result.exit_code == 0, result.output
        assert json.loads(out.read_text())["weights"] == weights


def test_a_mid_epoch_resume_with_the_average_is_bitwise_exact(synthetic_opts, tmp_path,
                                                              monkeypatch):
    kw = dict(epochs=2, **EMA)
    at_stop = stop_then_resume(synthetic_opts, tmp_path, monkeypatch, **kw)  # rows: ema_val_* too
    assert at_stop["ema"]["updates"] == 6
    a, b = (read_checkpoint(tmp_path / run / "last.pt") for run in ("straight", "stopped"))
    assert same_state(a["ema"]["model"], b["ema"]["model"]) and b["ema"]["updates"] == 8
    with pytest.raises(OptionError, match="--ema 0.99 \\(the run: 0.9\\)"):
        train(synthetic_opts(tmp_path, "stopped", resume=True, **{**kw, "ema": 0.99}))


def test_the_ema_rows_are_their_methods_recipe_and_cost_with_a_weight_average():
    recipes = {r.key: r for r in plan(arch="small_cnn", eps=0.1, epochs=8, train_steps=3,
                                      replays=None, aft_epochs=None, ema_decay=0.99)}
    assert {k for k in recipes if k.endswith("+ema")} == {"pgd-at+ema", "aft+ema"}
    for base in ("pgd-at", "aft"):
        r, plain = recipes[base + "+ema"], recipes[base]
        assert r.train == {**plain.train, "ema": 0.99} and r.train["method"] == base
        assert (r.parent, r.epochs, r.passes_per_epoch) == (plain.parent, plain.epochs, 4)
        assert r.label == plain.label + " + EMA"


def test_compare_trains_and_evaluates_an_ema_row_and_lists_an_unfinished_one(tiny_test_split,
                                                                              tmp_path):
    opts = dict(data="synthetic", eps=0.1, epochs=1, train_steps=2, batch_size=64,
                eval_images=32, out=str(tmp_path / "cmp"), quiet=True, **TINY_PROTOCOL)
    doc = compare(CompareOptions(methods=("pgd-at+ema",), **opts), command="test")
    row = doc["rows"][0]
    assert (row["key"], row["label"], row["passes_per_image"]) == ("pgd-at+ema", "PGD AT + EMA", 3)
    ckpt = read_checkpoint(row["checkpoint"])
    assert ckpt["method"] == "pgd-at" and ckpt["ema"]["decay"] == 0.995  # --ema-decay's default
    assert "PGD AT + EMA" in (tmp_path / "cmp" / "table.md").read_text()
    # --report-only: a +ema row never trained is listed as not finished
    partial = compare(CompareOptions(methods=("natural", "aft+ema"), report_only=True, **opts),
                      command="test")
    assert {(s["key"], s["reason"]) for s in partial["skipped"]} == {
        ("natural", "training not finished (0 of 1 epochs)"),
        ("aft+ema", "training not finished (0 of 1 epochs)")}
