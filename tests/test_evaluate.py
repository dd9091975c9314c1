"""`evaluate` / `accuracy` against a direct computation, and `aft-fast eval` end to end."""
import json
import re
import sys

import pytest
import torch
from click.testing import CliRunner

from aft_fast.attacks import AttackConfig, pgd
from aft_fast.cli import main
from aft_fast.errors import OptionError
from aft_fast.data.tensors import TensorBatches
from aft_fast.errors import parse_pixels
from aft_fast.evaluate import accuracy, evaluate
from aft_fast.models import build


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build("small_cnn", 10, in_channels=1)


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(40, 1, 28, 28, generator=g), torch.randint(0, 10, (40,), generator=g)


def loader(data, batch_size=16):
    return TensorBatches(*data, batch_size)


@pytest.mark.parametrize("text,value", [("8/255", 8 / 255), ("0.3", 0.3), (" 2 / 255 ", 2 / 255),
                                        (0.1, 0.1), (1, 1.0)])
def test_parse_pixels(text, value):
    assert parse_pixels(text) == pytest.approx(value)


@pytest.mark.parametrize("bad", ["eight", "8/0", "8/255/2", ""])
def test_parse_pixels_errors(bad):
    with pytest.raises(ValueError, match="fraction like 8/255"):
        parse_pixels(bad)


def test_pgd_evaluation_matches_a_direct_computation(net, data):
    net.train()  # evaluation must switch to eval mode and restore the flag
    result = evaluate(net, loader(data), eps=0.1, steps=3, restarts=2, seed=7)
    assert net.training
    net.eval()
    g = torch.Generator().manual_seed(7)
    clean = robust = 0
    cfg = AttackConfig(0.1, 2.5 * 0.1 / 3, 3, restarts=2)
    for x, y in loader(data):
        with torch.no_grad():
            ok = net(x).argmax(1) == y
            ok_adv = net(pgd(net, x, y, cfg, generator=g)).argmax(1) == y
        clean += int(ok.sum())
        robust += int((ok & ok_adv).sum())
    assert result["n"] == 40
    assert result["clean_acc"] == pytest.approx(clean / 40)
    assert result["robust_acc"] == pytest.approx(robust / 40)
    assert result["settings"] == {"eps": 0.1, "alpha": pytest.approx(2.5 * 0.1 / 3), "steps": 3,
                                  "restarts": 2, "random_start": True, "amp": "fp32",
                                  "bn_mode": "eval"}
    assert result["attack"] == "pgd" and result["seconds"] > 0
    assert "device" in result["environment"] and "torch" in result["environment"]


def test_eps_zero_gives_clean_and_none_gives_clean_only(net, data):
    zero = evaluate(net, loader(data), eps=0.0, steps=2)
    assert zero["robust_acc"] == zero["clean_acc"]
    none = evaluate(net, loader(data), attack="none", eps=0.0, max_batches=2)
    assert none["robust_acc"] is None and none["n"] == 32 and none["settings"] == {}


def test_max_batches_and_fractions(net, data):
    r = evaluate(net, loader(data), eps="8/255", alpha="2/255", steps=1, max_batches=1)
    assert r["n"] == 16 and r["settings"]["eps"] == pytest.approx(8 / 255)
    assert r["settings"]["alpha"] == pytest.approx(2 / 255)


@pytest.mark.parametrize("kwargs,option,message", [
    (dict(attack="fgsm", eps=0.1), "attack", "must be one of pgd, autoattack, none"),
    (dict(eps=-0.1), "eps", "must be in [0, 1]"),
    (dict(eps=8), "eps", "did you mean 8/255?"),
    (dict(eps=0.1, alpha=2), "alpha", "did you mean 2/255?"),
    (dict(eps=0.1, restarts=0), "restarts", "must be >= 1"),
    (dict(eps=0.1, steps=-1), "steps", "must be >= 0"),
    (dict(eps=0.1, max_batches=0), "max_batches", "must be >= 1"),
    (dict(eps=0.1, attack="autoattack", autoattack_queries=0), "aa_queries", "must be >= 1"),
])
def test_evaluate_errors_name_the_option(net, data, kwargs, option, message):
    with pytest.raises(OptionError, match=re.escape(message)) as info:
        evaluate(net, loader(data), **kwargs)
    assert info.value.option == option


def test_accuracy_autoattack_takes_eps_from_the_config(net, data):
    pytest.importorskip("torchattacks")
    r = accuracy(net, loader(data, 8), attack="autoattack", cfg=AttackConfig(0.05, 0.01, 1),
                 max_batches=1, autoattack_kwargs={"steps": 2, "queries": 5})
    assert r["n"] == 8 and r["robust_acc"] <= r["clean_acc"]
    with pytest.raises(ValueError, match="needs eps"):
        accuracy(net, loader(data), attack="autoattack")


# ------------------------------------------------------------------------------------------ CLI
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, net):
    from aft_fast.train.checkpoint import save_checkpoint
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, model=net, arch="small_cnn", num_classes=10, input_size=28,
                    method="natural", config={}, epoch=0)
    return str(path)


def run(*args):
    return CliRunner().invoke(main, ["eval", *args])


def test_eval_command_pgd_table_and_json(checkpoint, tmp_path):
    out = tmp_path / "eval.json"
    r = run("--checkpoint", checkpoint, "--eps", "8/255", "--steps", "2", "--restarts", "2",
            "--batch-size", "20", "--max-batches", "1", "--device", "cpu", "--json", str(out))
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    assert report["n"] == 20 and report["attack"] == "pgd" and report["arch"] == "small_cnn"
    assert report["settings"]["eps"] == pytest.approx(8 / 255) and report["settings"]["restarts"] == 2
    assert report["robust_acc"] <= report["clean_acc"]
    assert report["environment"]["device_type"] == "cpu"
    assert "| clean | robust |" in r.output and "PGD-2, 2 restart(s)" in r.output


def test_eval_command_none_and_reduced_autoattack(checkpoint, tmp_path):
    r = run("--checkpoint", checkpoint, "--eps", "0", "--attack", "none", "--batch-size", "10",
            "--max-batches", "1", "--split", "val")
    assert r.exit_code == 0, r.output
    assert "| val | 10 |" in r.output
    pytest.importorskip("torchattacks")
    out = tmp_path / "aa.json"
    r = run("--checkpoint", checkpoint, "--eps", "0.1", "--attack", "autoattack", "--aa-steps", "2",
            "--aa-queries", "5", "--batch-size", "8", "--max-batches", "1", "--json", str(out))
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    assert report["settings"]["reference_settings"] is False and "reduced" in r.output


@pytest.mark.parametrize("args,message", [
    (["--eps", "-1"], "Invalid value for --eps"),
    (["--eps", "2"], "did you mean 2/255?"),
    (["--eps", "0.1", "--aa-steps", "0"], "Invalid value for --aa-steps"),
    (["--eps", "0.1", "--batch-size", "0"], "Invalid value for --batch-size"),
    (["--eps", "0.1", "--max-batches", "0"], "Invalid value for --max-batches"),
    (["--eps", "0.1", "--device", "gpu"], "Invalid value for --device"),
    (["--eps", "eight"], "fraction like 8/255"),
    (["--eps", "0.1", "--restarts", "0"], "Invalid value for --restarts"),
    (["--eps", "0.1", "--steps", "-2"], "Invalid value for --steps"),
    (["--eps", "0.1", "--attack", "fgsm"], "Invalid value for '--attack'"),
    (["--eps", "0.1", "--data", "/no/such/folder"], "Invalid value for --data"),
    (["--eps", "0.1", "--data", "synthetic"], "3-channel images, the checkpoint's model takes 1"),
])
def test_eval_command_errors(checkpoint, args, message):
    r = run("--checkpoint", checkpoint, *args)
    assert r.exit_code != 0 and message in r.output, r.output


def test_eval_command_bad_checkpoint(tmp_path):
    r = run("--checkpoint", str(tmp_path / "none.pt"), "--eps", "0.1")
    assert r.exit_code != 0 and "Invalid value for --checkpoint" in r.output and "no such file" in r.output
    plain = tmp_path / "plain.pt"
    torch.save(build("small_cnn", 10, in_channels=1).model.state_dict(), plain)
    r = run("--checkpoint", str(plain), "--eps", "0.1")
    assert r.exit_code != 0 and "not an aft_fast checkpoint" in r.output


def test_eval_command_without_torchattacks(checkpoint, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchattacks", None)
    r = run("--checkpoint", checkpoint, "--eps", "0.1", "--attack", "autoattack", "--max-batches", "1",
            "--batch-size", "4")
    assert r.exit_code != 0 and "pip install 'aft_fast[eval]'" in r.output


def test_eval_command_refuses_bad_options_before_loading_anything(tmp_path):
    r = run("--checkpoint", str(tmp_path / "absent.pt"), "--eps", "2", "--data", "/no/such/folder")
    assert r.exit_code == 2 and "Invalid value for --eps" in r.output, r.output
