"""Every method end to end on tiny data; exact resume; checkpoints; errors."""
import pytest
import torch

from aft_fast.train import METHODS, TrainOptions, load_checkpoint, train
from aft_fast.train.checkpoint import export_torchvision, read_checkpoint

TINY = dict(data="synthetic", arch="small_cnn", batch_size=32, eval_max_batches=1, eval_steps=2,
            steps=2, eps=0.1, quiet=True, log_every=10**9, device="cpu")


def synthetic_opts(tmp_path, name, **kw):
    # 1-channel 28×28 synthetic data, so small_cnn fits; 128 samples = 4 batches.
    return TrainOptions(out=str(tmp_path / name), **{**TINY, **kw})


@pytest.fixture(autouse=True)
def small_synthetic(monkeypatch):
    import aft_fast.train.run as run
    real = run.make_loaders

    def tiny(data, **kw):
        return real(data, synthetic_shape=(1, 28, 28), synthetic_size=128, **kw)

    monkeypatch.setattr(run, "make_loaders", tiny)


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_runs_one_epoch(tmp_path, method):
    opts = synthetic_opts(tmp_path, method, method=method, epochs=1, replays=2,
                          allow_scratch=True)
    summary = train(opts)
    row = summary["last"]
    assert row["epoch"] == 0 and 0 <= row["train_acc"] <= 1
    assert 0 <= row["val_robust_acc"] <= row["val_clean_acc"] <= 1
    for f in ("args.yaml", "metrics.jsonl", "summary.csv", "last.pt", "best.pt", "lr.png", "accuracy.png"):
        assert (tmp_path / method / f).exists(), f
    ckpt = read_checkpoint(tmp_path / method / "last.pt")
    assert ckpt["method"] == method and ckpt["arch"] == "small_cnn" and ckpt["num_classes"] == 10


def test_resume_is_exact(tmp_path, monkeypatch):
    straight = train(synthetic_opts(tmp_path, "straight", method="pgd-at", epochs=2))
    # A run killed right after its first epoch's checkpoint...
    import aft_fast.train.loop as loop

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(loop, "plot_accuracy", killed)
        with pytest.raises(KeyboardInterrupt):
            train(synthetic_opts(tmp_path, "resumed", method="pgd-at", epochs=2))
    assert read_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 0
    # ... and resumed.
    resumed = train(synthetic_opts(tmp_path, "resumed", method="pgd-at", epochs=2, resume=True))
    a = read_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    b = read_checkpoint(tmp_path / "resumed" / "last.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert len(resumed["rows"]) == 2 and straight["last"]["epoch"] == resumed["last"]["epoch"] == 1


def test_load_checkpoint_round_trip_and_export(tmp_path):
    train(synthetic_opts(tmp_path, "run", method="natural", epochs=1))
    model = load_checkpoint(tmp_path / "run" / "best.pt")
    assert not model.training
    x = torch.rand(3, 1, 28, 28)
    state = read_checkpoint(tmp_path / "run" / "best.pt")["model"]
    from aft_fast.models import build
    again = build("small_cnn", 10, in_channels=1)
    again.model.load_state_dict(state)
    assert torch.equal(model(x), again.eval()(x))
    out = export_torchvision(tmp_path / "run" / "best.pt", tmp_path / "plain.pt")
    plain = torch.load(out, weights_only=True)
    assert set(plain) == set(state)
    # The exported file is accepted as --weights.
    assert build("small_cnn", 10, in_channels=1, weights=out) is not None


def test_refuses_to_overwrite_a_run(tmp_path):
    train(synthetic_opts(tmp_path, "run", method="natural", epochs=1))
    before = (tmp_path / "run" / "last.pt").read_bytes()
    with pytest.raises(FileExistsError, match="--resume to continue it, --overwrite"):
        train(synthetic_opts(tmp_path, "run", method="natural", epochs=1))
    assert (tmp_path / "run" / "last.pt").read_bytes() == before


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


@pytest.mark.parametrize("kw,exc,message", [
    (dict(method="magic"), ValueError, "--method must be one of"),
    (dict(eps=-0.1), ValueError, "--eps must be >= 0"),
    (dict(method="aft"), ValueError, "pass --weights PATH"),
    (dict(weights="/nonexistent.pt", method="aft"), FileNotFoundError, "--weights /nonexistent.pt"),
    (dict(data="/no/such/folder"), ValueError, "--data must be one of"),
    (dict(arch="resnet19"), ValueError, "did you mean"),
    (dict(resume=True), FileNotFoundError, "--resume"),
])
def test_errors_name_the_argument(tmp_path, kw, exc, message):
    with pytest.raises(exc, match=message):
        train(synthetic_opts(tmp_path, "bad", **{"epochs": 1, "method": "natural", **kw}))


def test_wrong_class_count_needs_replace_head(tmp_path):
    from aft_fast.io import save_torch
    from aft_fast.models import build
    net = build("small_cnn", 5, in_channels=1)
    save_torch(net.model.state_dict(), tmp_path / "five.pt")
    with pytest.raises(ValueError, match="pass --replace-head"):
        build("small_cnn", 10, in_channels=1, weights=str(tmp_path / "five.pt"))
    ten = build("small_cnn", 10, in_channels=1, weights=str(tmp_path / "five.pt"), replace_head=True)
    assert torch.equal(ten.model[0].weight, net.model[0].weight)
    assert ten.model[-1].out_features == 10
