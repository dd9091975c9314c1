"""Runs: the run directory, refusing to overwrite, errors naming the argument, DDP."""
import pytest
import torch

from aft_fast.errors import OptionError
from aft_fast.train.run import train


def test_refuses_to_overwrite_a_run(synthetic_opts, tmp_path):
    train(synthetic_opts(tmp_path, "run", method="natural", epochs=1))
    before = (tmp_path / "run" / "last.pt").read_bytes()
    with pytest.raises(OptionError, match="--resume to continue the run there, --overwrite"):
        train(synthetic_opts(tmp_path, "run", method="natural", epochs=1))
    assert (tmp_path / "run" / "last.pt").read_bytes() == before


def test_logs_every_n_steps_and_each_epoch(synthetic_opts, tmp_path, capsys):
    train(synthetic_opts(tmp_path, "run", method="pgd-at", epochs=1, quiet=False, log_every=2))
    out = capsys.readouterr().out
    # 4 batches, a line every 2 with loss, accuracy, LR, throughput and data time.
    assert "epoch 1 iter 2/4: loss" in out and "iter 4/4" in out and "img/s data" in out
    assert "epoch 1/1 [pgd-at] loss" in out and "val clean" in out


def test_non_empty_out_needs_overwrite_which_replaces_only_a_run(synthetic_opts, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OptionError, match=r"--out: .* is not empty \(notes.txt\)"):
        train(synthetic_opts(tmp_path, "run", method="natural", epochs=1))
    with pytest.raises(OptionError, match=r"--overwrite: .* holds no run"):
        train(synthetic_opts(tmp_path, "run", method="natural", epochs=1, overwrite=True))
    (out / "notes.txt").unlink()
    train(synthetic_opts(tmp_path, "run", method="natural", epochs=1))
    (out / "notes.txt").write_text("mine")
    train(synthetic_opts(tmp_path, "run", method="natural", epochs=1, overwrite=True))
    assert (out / "notes.txt").read_text() == "mine" and (out / "last.pt").exists()


DDP_SCRIPT = """
import sys, torch
import aft_fast.train.run as run
from aft_fast.train.options import TrainOptions
from aft_fast.train.run import train
real = run.make_loaders
run.make_loaders = lambda data, **kw: real(data, synthetic_shape=(1, 28, 28), synthetic_size=128, **kw)
s = train(TrainOptions(method=sys.argv[1], data="synthetic", arch="small_cnn", batch_size=32,
          epochs=1, eval_max_batches=1, eval_steps=2, steps=2, eps=0.1, quiet=True, device="cpu",
          replays=2 if sys.argv[1] == "free-at" else None, out=sys.argv[2]))
print("ROW", s["last"]["train_acc"], s["config"]["resolved"]["world_size"], flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("method", ["pgd-at", "free-at"])
def test_ddp_two_cpu_processes(tmp_path, method):
    import json
    import subprocess
    import sys

    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", str(script), method, str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("ROW")]
    # Both ranks finished with the same (all-reduced) metrics; only rank 0 wrote the run.
    assert len(rows) == 2 and rows[0] == rows[1] and rows[0][2] == "2"
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["config"]["resolved"]["world_size"] == 2
    assert json.loads((out / "metrics.jsonl").read_text())["epoch"] == 0


@pytest.mark.parametrize("kw,option,message", [
    (dict(method="magic"), "method", "must be one of"),
    (dict(eps=-0.1), "eps", "must be in \\[0, 1\\]"),
    (dict(method="aft"), "weights", "pass --weights PATH"),
    (dict(weights="/nonexistent.pt", method="aft"), "weights", "/nonexistent.pt: no such file"),
    (dict(data="/no/such/folder"), "data", "must be one of"),
    (dict(arch="resnet19"), "arch", "did you mean"),
    (dict(resume=True), "resume", "does not exist"),
    (dict(on_nonfinite="ignore"), "on_nonfinite", "must be one of stop, skip"),
    (dict(save_every=0), "save_every", "must be >= 1"),
])
def test_errors_name_the_argument(synthetic_opts, tmp_path, kw, option, message):
    with pytest.raises(OptionError, match=message) as err:
        train(synthetic_opts(tmp_path, "bad", **{"epochs": 1, "method": "natural", **kw}))
    assert err.value.option == option


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


def test_compile_runs_the_update_through_the_compiled_module(synthetic_opts, tmp_path,
                                                              monkeypatch):
    """`--compile` wraps the model like torch.compile does (an OptimizedModule has no len(), so
    it must never be truth-tested; that crashed on a GPU once). The compile itself is stubbed:
    what is checked is the plumbing, on CPU, in seconds."""
    import importlib

    import aft_fast.train.run as run

    class LikeOptimizedModule(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, x):
            self.calls += 1
            return self.inner(x)

        def __len__(self):
            raise TypeError(f"{type(self.inner).__name__} does not support len()")

    wrapped = []

    def fake_compile(module):
        wrapped.append(LikeOptimizedModule(module))
        return wrapped[-1]

    monkeypatch.setattr(run.torch, "compile", fake_compile)
    pgd_module = importlib.import_module("aft_fast.attacks.pgd")
    monkeypatch.setattr(pgd_module, "compiled_input_grad", pgd_module.input_grad)
    train(synthetic_opts(tmp_path, "run", method="pgd-at", epochs=1, compile=True))
    assert len(wrapped) == 1 and wrapped[0].calls >= 4  # one update per batch went through it


def no_step_taken(monkeypatch):
    """Make any training step fail the test: the error must come before the first one."""
    from aft_fast.train.update import Trainer

    def forbidden(*args, **kw):
        raise AssertionError("a training step ran before the error")

    monkeypatch.setattr(Trainer, "update", forbidden)


def test_unwritable_out_fails_before_any_work(synthetic_opts, tmp_path, monkeypatch):
    no_step_taken(monkeypatch)
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(OptionError, match="cannot write to") as err:
        train(synthetic_opts(tmp_path, "a_file/run", method="natural", epochs=1))
    assert err.value.option == "out"


def test_full_disk_fails_before_any_work(synthetic_opts, tmp_path, monkeypatch):
    from collections import namedtuple

    import aft_fast.train.run_dir as run_dir
    no_step_taken(monkeypatch)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(run_dir.shutil, "disk_usage", lambda p: usage(2**30, 2**30 - 2**20, 2**20))
    with pytest.raises(OptionError, match="1 MiB free; the run's checkpoints need about") as err:
        train(synthetic_opts(tmp_path, "run", method="natural", epochs=1))
    assert err.value.option == "out"


def test_image_size_the_model_cannot_take_fails_before_any_work(synthetic_opts, tmp_path,
                                                                monkeypatch):
    no_step_taken(monkeypatch)
    with pytest.raises(OptionError, match=r"small_cnn cannot take \(1, 32, 32\) images") as err:
        train(synthetic_opts(tmp_path, "run", method="natural", epochs=1, image_size=32))
    assert err.value.option == "image_size"


def test_per_epoch_evaluation_budget(synthetic_opts, tmp_path, capsys):
    from aft_fast.train.evaluation import eval_budget

    natural = eval_budget(adversarial=False, eps=0.1, steps=None, full=False, images=512)
    assert natural.attack is None and "clean accuracy only" in natural.describe()
    adversarial = eval_budget(adversarial=True, eps=0.1, steps=None, full=False, images=40)
    assert adversarial.attack.steps == 10 and adversarial.attack.alpha == pytest.approx(0.025)

    class Loader:
        batch_size = 32
    assert adversarial.batches(Loader()) == 2  # 40 images: two batches of 32
    full = eval_budget(adversarial=False, eps=0.1, steps=None, full=True, images=40)
    assert full.attack.steps == 20 and full.batches(Loader()) is None
    # The default cap: 512 images, at most 5% of the training split, at least 128.
    for train_size, images in [(None, 512), (10**6, 512), (3500, 175), (1000, 128)]:
        assert eval_budget(adversarial=True, eps=0.1, steps=None, full=False, images=None,
                           train_size=train_size).images == images
    shared = eval_budget(adversarial=True, eps=0.1, steps=None, full=False, images=512, world_size=4)
    assert shared.batches(Loader()) == 4  # 128 images on each of 4 ranks
    # A natural run measures clean accuracy only, and its log says what it measured.
    summary = train(synthetic_opts(tmp_path, "run", method="natural", epochs=1, quiet=False,
                                   eval_steps=None, eval_max_batches=None, eval_images=40))
    assert summary["last"]["val_robust_acc"] is None
    out = capsys.readouterr().out
    assert "per-epoch evaluation of val and train_eval: at most 40 images each; clean accuracy " \
           "only (--eval-full: the whole splits)" in out
