"""Checkpoints: one file, written atomically, exact resume, load_checkpoint and export round trips."""
import pytest
import torch

import aft_fast
from aft_fast.errors import OptionError
from aft_fast.models import build
from aft_fast.train import export_torchvision
from aft_fast.train.run import train
from aft_fast.train.checkpoint import read_checkpoint

CONTRACT_KEYS = {"format", "arch", "num_classes", "in_channels", "input_size", "mean", "std",
                 "model", "method", "config", "epoch", "optimizer", "scaler", "schedule", "rng",
                 "metrics"}


@pytest.mark.parametrize("method", ["pgd-at", "free-at"])
def test_resume_is_exact(synthetic_opts, tmp_path, monkeypatch, method):
    kw = dict(method=method, epochs=2, steps=1, replays=2 if method == "free-at" else None)
    straight = train(synthetic_opts(tmp_path, "straight", **kw))
    # A run killed right after its first epoch's checkpoint...
    import aft_fast.train.run_dir as run_dir

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(run_dir, "plot_accuracy", killed)
        with pytest.raises(KeyboardInterrupt):
            train(synthetic_opts(tmp_path, "resumed", **kw))
    assert read_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 0
    # ... and resumed: bit-identical weights, optimizer state and (Free AT) perturbation.
    resumed = train(synthetic_opts(tmp_path, "resumed", resume=True, **kw))
    a = read_checkpoint(tmp_path / "straight" / "last.pt")
    b = read_checkpoint(tmp_path / "resumed" / "last.pt")
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["momentum_buffer"], sb[i]["momentum_buffer"]) for i in sa)
    if method == "free-at":
        assert torch.equal(a["method_state"]["delta"], b["method_state"]["delta"])
    assert len(resumed["rows"]) == 2 and straight["last"]["epoch"] == resumed["last"]["epoch"] == 1
    assert [r["epoch"] for r in resumed["rows"]] == [0, 1]


def test_checkpoint_holds_the_contract_keys(synthetic_opts, tmp_path):
    train(synthetic_opts(tmp_path, "run", method="natural", epochs=1))
    ckpt = read_checkpoint(tmp_path / "run" / "last.pt")
    assert CONTRACT_KEYS <= set(ckpt)
    assert ckpt["format"] == "aft_fast.checkpoint/1" and ckpt["method"] == "natural"
    assert (ckpt["arch"], ckpt["num_classes"], ckpt["in_channels"], ckpt["input_size"]) == (
        "small_cnn", 10, 1, 28)
    assert ckpt["config"]["method"] == "natural" and ckpt["schedule"]["name"] == "multistep"
    assert {"torch", "numpy", "python"} <= set(ckpt["rng"])


def test_load_checkpoint_round_trip_and_export(synthetic_opts, tmp_path):
    train(synthetic_opts(tmp_path, "run", method="natural", epochs=1))
    model = aft_fast.load_checkpoint(tmp_path / "run" / "best.pt")
    assert not model.training
    x = torch.rand(3, 1, 28, 28)
    state = read_checkpoint(tmp_path / "run" / "best.pt")["model"]
    again = build("small_cnn", 10, in_channels=1)
    again.model.load_state_dict(state)
    assert torch.equal(model(x), again.eval()(x))
    out = export_torchvision(tmp_path / "run" / "best.pt", tmp_path / "plain.pt")
    plain = torch.load(out, weights_only=True)
    assert set(plain) == set(state) and all(torch.equal(plain[k], state[k]) for k in state)
    # Both files are accepted as --weights.
    for weights in (out, str(tmp_path / "run" / "best.pt")):
        rebuilt = build("small_cnn", 10, in_channels=1, weights=weights).eval()
        assert torch.equal(rebuilt(x), model(x))


def test_read_checkpoint_errors(tmp_path):
    with pytest.raises(OptionError, match="no such file"):
        read_checkpoint(tmp_path / "missing.pt")
    torch.save({"state_dict": {}}, tmp_path / "plain.pt")
    with pytest.raises(OptionError, match="not an aft_fast checkpoint"):
        aft_fast.load_checkpoint(tmp_path / "plain.pt")
    torch.save({"format": "aft_fast.checkpoint/2"}, tmp_path / "newer.pt")
    with pytest.raises(OptionError, match="upgrade aft_fast") as err:
        read_checkpoint(tmp_path / "newer.pt", option="resume")
    assert err.value.option == "resume"
    (tmp_path / "torn.pt").write_bytes(b"PK\x03\x04 not a whole file")
    with pytest.raises(OptionError, match="cannot be read as a checkpoint"):
        read_checkpoint(tmp_path / "torn.pt")


def test_atomic_checkpoint_keeps_previous_file_on_failure(tmp_path, monkeypatch):
    from aft_fast import io
    target = tmp_path / "last.pt"
    io.save_torch({"a": torch.ones(2)}, target)

    def broken(obj, f):
        f.write(b"partial")
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(RuntimeError):
        io.save_torch({"a": torch.zeros(2)}, target)
    assert torch.equal(torch.load(target, weights_only=True)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_failed_epoch_checkpoint_leaves_the_last_good_one(synthetic_opts, tmp_path,
                                                             monkeypatch):
    train(synthetic_opts(tmp_path, "run", method="natural", epochs=1))
    before = (tmp_path / "run" / "last.pt").read_bytes()

    def broken(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        train(synthetic_opts(tmp_path, "run", method="natural", epochs=2, resume=True))
    assert (tmp_path / "run" / "last.pt").read_bytes() == before
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]
