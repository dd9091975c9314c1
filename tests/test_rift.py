"""RiFT: module robust criticality, one-module fine-tuning, interpolation chosen on validation.

Tiny models and 1×28×28 synthetic data (128 images), so each test takes seconds."""
import json

import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import aft_fast.rift.mrc as mrc
from aft_fast.errors import OptionError
from aft_fast.models import Normalized
from aft_fast.rift import (RiftOptions, choose_alpha, criticality, interpolate_state, rift,
                           run_finetune, run_interpolate, run_mrc)
from aft_fast.rift.suffix import Split, trace
from aft_fast.train.options import TrainOptions
from aft_fast.train import export_torchvision, load_checkpoint
from aft_fast.train.run import train

TINY_DATA = dict(synthetic_shape=(1, 28, 28), synthetic_size=128)
FAST = dict(data="synthetic", device="cpu", quiet=True, mrc_examples=32, mrc_steps=3,
            attack_steps=2, epochs=1, eval_steps=1, alphas=(0.0, 0.5, 1.0), batch_size=32,
            eval_batch_size=64, trust_code=True)
ARCH = "test_rift:tiny_bn_net"  # this file's tiny_bn_net, by import path
MODULES = {"0", "3", "8"}


@pytest.fixture(autouse=True)
def tiny_synthetic(monkeypatch):
    import aft_fast.rift.source as source
    import aft_fast.train.run as run

    for module in (run, source):
        real = module.make_loaders
        monkeypatch.setattr(module, "make_loaders",
                            lambda data, _real=real, **kw: _real(data, **{**TINY_DATA, **kw}))


def _train(out, method="pgd-at", arch=ARCH, **kw):
    train(TrainOptions(method=method, arch=arch, data="synthetic", out=str(out), epochs=1,
                       batch_size=32, steps=2, eval_steps=1, eval_max_batches=1, eps=0.1,
                       quiet=True, log_every=10**9, device="cpu", **kw))
    return str(out / "best.pt")


@pytest.fixture(scope="module")
def at_checkpoint(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        import aft_fast.train.run as run

        real = run.make_loaders
        mp.setattr(run, "make_loaders", lambda data, **kw: real(data, **{**TINY_DATA, **kw}))
        return _train(tmp_path_factory.mktemp("at"))


# --- MRC -------------------------------------------------------------------------------------

class ThreePaths(nn.Module):
    """logits = main(x) + 0.1·minor(x) + 0·dead(x): `dead` cannot matter, `main` carries it."""

    def __init__(self):
        super().__init__()
        self.flat = nn.Flatten()
        self.main, self.minor, self.dead = (nn.Linear(16, 5) for _ in range(3))

    def forward(self, x):
        f = self.flat(x)
        return self.main(f) + 0.1 * self.minor(f) + 0.0 * self.dead(f)


class Residual(nn.Module):
    """A skip connection over two convolutions: the cut must cache the shortcut too."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 1, 3, padding=1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc((self.conv2(torch.relu(self.conv1(x))) + x).flatten(1))


def tiny_bn_net(num_classes=10, in_channels=1):
    """A BatchNorm network small enough for seconds-long runs (built as `test_rift:tiny_bn_net`)."""
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, num_classes))


def _wrap(net):
    return Normalized(net, (0.0,), (1.0,)).eval()


def test_mrc_ranks_a_dead_module_lowest_and_the_carrying_module_highest():
    model = _wrap(ThreePaths())
    x = torch.rand(64, 1, 4, 4)
    y = model(x).argmax(1)
    rows = criticality(model, x, y, rho=0.5, steps=5)
    assert [r["module"] for r in rows] == ["dead", "minor", "main"]
    assert rows[0]["mrc"] == 0 and rows[1]["mrc"] > 0 and rows[2]["mrc"] > 5 * rows[1]["mrc"]
    assert [r["rank"] for r in rows] == [0, 1, 2]


def test_the_activation_cache_runs_the_same_network_and_gives_the_same_mrc():
    model = _wrap(Residual())
    x, y = torch.rand(16, 1, 4, 4), torch.randint(0, 5, (16,))
    traced = trace(model)
    for name in mrc.weight_modules(model.model):
        split = Split(traced, "model." + name)
        assert torch.equal(split.suffix(*split.cache(x)), model(x))
    assert len(Split(traced, "model.conv2").frontier) == 2  # conv2's input and the skip
    cached = {r["module"]: r for r in criticality(model, x, y, steps=3)}
    full = {r["module"]: r for r in criticality(model, x, y, steps=3, activation_cache=False)}
    assert all(cached[n]["activation_cache"] and not full[n]["activation_cache"] for n in cached)
    for name in cached:
        assert cached[name]["mrc"] == pytest.approx(full[name]["mrc"], rel=1e-4, abs=1e-6)


def test_every_perturbation_stays_in_the_ball_and_the_weights_are_restored(monkeypatch):
    model = _wrap(Residual())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    real = mrc.project_

    def checked(delta, radius):
        out = real(delta, radius)
        seen.append(float(out.norm()) / radius)
        return out

    monkeypatch.setattr(mrc, "project_", checked)
    x, y = torch.rand(16, 1, 4, 4), torch.randint(0, 5, (16,))
    # One step of 2.5·radius: the projection must pull it back.
    rows = criticality(model, x, y, rho=0.1, steps=1) + criticality(model, x, y, rho=0.3, steps=4)
    assert len(seen) == 3 * 5 and max(seen) <= 1 + 1e-6 and max(seen) > 0.99
    assert all(r["delta_norm"] <= r["radius"] * (1 + 1e-6) for r in rows)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# --- interpolation ---------------------------------------------------------------------------

def test_alpha_0_and_1_reproduce_the_endpoints_exactly():
    at, ft = tiny_bn_net().state_dict(), tiny_bn_net().state_dict()
    ft = {k: v + 1 if v.is_floating_point() else v + 7 for k, v in ft.items()}
    for alpha, want in ((0.0, at), (1.0, ft)):
        got = interpolate_state(at, ft, alpha)
        assert all(torch.equal(got[k], want[k]) and got[k].dtype == want[k].dtype for k in at)
    half = interpolate_state(at, ft, 0.5)
    k = "8.weight"
    assert torch.allclose(half[k], (at[k] + ft[k]) / 2)
    tracked = next(k for k in at if k.endswith("num_batches_tracked"))
    assert half[tracked].dtype == torch.int64


def test_the_chosen_alpha_is_the_most_accurate_within_the_tolerance():
    rows = [{"alpha": 0.0, "clean_acc": 0.80, "robust_acc": 0.500},
            {"alpha": 0.3, "clean_acc": 0.82, "robust_acc": 0.497},
            {"alpha": 0.6, "clean_acc": 0.84, "robust_acc": 0.490},
            {"alpha": 1.0, "clean_acc": 0.86, "robust_acc": 0.30}]
    assert choose_alpha(rows, 0.5, 0.005)["alpha"] == 0.3
    assert choose_alpha(rows, 0.5, 0.010)["alpha"] == 0.6
    assert choose_alpha(rows, 0.5, 0.0)["alpha"] == 0.0
    tie = rows + [{"alpha": 0.4, "clean_acc": 0.82, "robust_acc": 0.50}]
    assert choose_alpha(tie, 0.5, 0.005)["alpha"] == 0.3  # a tie goes to the smaller α


# --- fine-tuning -----------------------------------------------------------------------------

def _changed(a: dict, b: dict) -> set:
    return {k for k in a if not torch.equal(a[k], b[k])}


def test_finetune_changes_the_chosen_module_only(tmp_path, at_checkpoint):
    out = tmp_path / "rift"
    result = run_finetune(RiftOptions(checkpoint=at_checkpoint, out=str(out), module="8", **FAST))
    before = torch.load(at_checkpoint, weights_only=True)["model"]
    after = torch.load(out / "finetune" / "best.pt", weights_only=True)
    # BatchNorm statistics frozen by default: nothing but the module changes.
    assert result["module"] == "8" and _changed(before, after["model"]) == {"8.weight", "8.bias"}
    assert after["config"]["train_only"] == "8" and after["config"]["optimizer"] == "sgd"


@pytest.mark.parametrize("bn_stats", ["frozen", "train"])
def test_batchnorm_statistics_stay_or_drift_as_asked(tmp_path, bn_stats):
    at = _train(tmp_path / "at")
    out = tmp_path / "rift"
    module = "3"
    run_finetune(RiftOptions(checkpoint=at, out=str(out), module=module, bn_stats=bn_stats,
                             **FAST))
    before = torch.load(at, weights_only=True)["model"]
    after = torch.load(out / "finetune" / "best.pt", weights_only=True)["model"]
    changed = _changed(before, after)
    stats = {k for k in changed if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    assert changed - stats == {f"{module}.weight", f"{module}.bias"}
    assert (stats == set()) if bn_stats == "frozen" else len(stats) == 3 * 2


# --- the whole run, the CLI and bad inputs ---------------------------------------------------

def test_rift_end_to_end_writes_an_ordinary_checkpoint(tmp_path, at_checkpoint):
    out = tmp_path / "rift"
    summary = rift(RiftOptions(checkpoint=at_checkpoint, out=str(out), tolerance=0.0, **FAST))
    for f in ("mrc.json", "mrc.png", "finetune/best.pt", "interpolation.json", "alpha.png",
              "rift.pt", "summary.md", "rift.json"):
        assert (out / f).is_file(), f
    ranked = json.loads((out / "mrc.json").read_text())
    assert summary["module"] == ranked["least_critical"] == ranked["ranked"][0]["module"]
    assert {r["module"] for r in ranked["ranked"]} == MODULES
    report = json.loads((out / "interpolation.json").read_text())
    assert report["chosen"]["robust_acc"] >= report["reference"]["robust_acc"]  # tolerance 0
    ckpt = torch.load(out / "rift.pt", weights_only=True)
    assert ckpt["method"] == "rift" and ckpt["config"]["eps"] == 0.1
    assert ckpt["config"]["rift"]["alpha"] == summary["alpha"]
    model = load_checkpoint(out / "rift.pt", trust_code=True)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    exported = torch.load(export_torchvision(out / "rift.pt", tmp_path / "plain.pt"),
                          weights_only=True)
    assert all(torch.equal(exported[k], v) for k, v in model.model.state_dict().items())


def test_cli_runs_each_step_alone(tmp_path, at_checkpoint):
    from aft_fast.commands.rift import rift_group

    out = str(tmp_path / "rift")
    args = ["--checkpoint", at_checkpoint, "--data", "synthetic", "--out", out, "--device", "cpu",
            "--quiet", "--eval-batch-size", "64", "--batch-size", "32", "--trust-code"]
    runner = CliRunner()
    r = runner.invoke(rift_group, ["mrc", *args, "--mrc-examples", "16", "--mrc-steps", "2",
                                   "--attack-steps", "1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(rift_group, ["finetune", *args, "--epochs", "1", "--eval-steps", "1"])
    assert r.exit_code == 0, r.output
    config = tmp_path / "rift.yaml"
    config.write_text("alphas: [0, 1]\neval_steps: 1\nrho: 0.2\n")  # rho: another step's option
    r = runner.invoke(rift_group, ["interpolate", "--config", str(config), *args])
    assert r.exit_code == 0, r.output
    assert [row["alpha"] for row in json.loads((tmp_path / "rift" / "interpolation.json")
                                               .read_text())["rows"]] == [0.0, 1.0]
    r = runner.invoke(rift_group, ["mrc", *args])  # its outputs exist: refuses to replace them
    assert r.exit_code != 0 and "--out" in r.output and "overwrite" in r.output
    r = runner.invoke(rift_group, ["interpolate", *args, "--alphas", ""])
    assert r.exit_code != 0 and "--alphas" in r.output and "empty" in r.output


@pytest.mark.parametrize("field, value, step", [
    ("module", "layer9.conv", run_finetune), ("rho", 0.0, run_mrc), ("rho", -1.0, run_mrc),
    ("alphas", (), run_interpolate), ("alphas", (0.5, 2.0), run_interpolate),
    ("tolerance", -0.1, run_interpolate), ("checkpoint", "missing.pt", run_mrc)])
def test_bad_inputs_name_the_option(tmp_path, at_checkpoint, field, value, step):
    opts = RiftOptions(**{**FAST, "checkpoint": at_checkpoint, "out": str(tmp_path), field: value})
    with pytest.raises(OptionError) as info:
        step(opts)
    assert info.value.option == field


def test_a_naturally_trained_checkpoint_is_allowed_with_a_warning(tmp_path):
    natural = _train(tmp_path / "nat", method="natural")
    with pytest.warns(UserWarning, match="natural, not adversarially"):
        report = run_mrc(RiftOptions(checkpoint=natural, out=str(tmp_path / "rift"), **FAST))
    assert report["least_critical"] in MODULES
