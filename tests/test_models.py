"""Model registry, the normalisation wrapper, and reading local weights (round trips and the
error messages a user sees when a file does not fit)."""
import pytest
import torch
import torch.nn as nn

from aft_fast.errors import OptionError
from aft_fast.models import Normalized, build, list_archs, read_state_dict, unwrap
from aft_fast.models.normalize import CIFAR10, IMAGENET, MNIST


def test_list_archs_has_ours_and_torchvision():
    archs = list_archs()
    for name in ("small_cnn", "preact_resnet18", "wrn28_10", "wrn34_10", "resnet18", "resnet50",
                 "wide_resnet50_2", "vit_b_16"):
        assert name in archs


@pytest.mark.parametrize("arch,channels,size,default", [
    ("small_cnn", 1, 28, MNIST), ("preact_resnet18", 3, 32, CIFAR10), ("resnet18", 3, 32, IMAGENET),
])
def test_build_forward_and_default_normalisation(arch, channels, size, default):
    net = build(arch, 7, in_channels=channels).eval()
    assert isinstance(net, Normalized)
    assert net(torch.rand(2, channels, size, size)).shape == (2, 7)
    assert net.mean.shape == net.std.shape == (1, channels, 1, 1)
    assert torch.allclose(net.mean.flatten(), torch.tensor(default[0]))
    assert torch.allclose(net.std.flatten(), torch.tensor(default[1]))


def test_wide_resnets_follow_the_papers():
    wrn = build("wrn28_10", 10)
    blocks = [m for m in wrn.modules() if hasattr(m, "dropout")]
    assert len(blocks) == 12 and all(b.dropout == 0.3 for b in blocks)  # AFT's CIFAR setting
    assert len([m for m in build("wrn34_10", 10).modules() if hasattr(m, "dropout")]) == 15


def test_small_cnn_is_two_conv_two_linear():
    net = build("small_cnn", 10, in_channels=1).model
    kinds = [type(m) for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert kinds == [nn.Conv2d, nn.Conv2d, nn.Linear, nn.Linear]


def test_normalized_forward_is_model_of_standardised_input():
    inner = nn.Conv2d(3, 2, 1)
    net = Normalized(inner, (0.5, 0.4, 0.3), (0.2, 0.25, 0.5))
    x = torch.rand(2, 3, 4, 4)
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1), torch.tensor([0.2, 0.25, 0.5]).view(1, 3, 1, 1)
    assert torch.allclose(net(x), inner((x - mean) / std))
    assert net.model is inner and set(dict(net.named_buffers())) == {"mean", "std"}
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a bf16 input stays bf16 into the network
        assert net(x.bfloat16()).dtype == torch.bfloat16


def test_mean_std_override_and_errors():
    net = build("small_cnn", 10, in_channels=1, mean=(0.5,), std=(0.25,))
    assert net.mean.item() == 0.5 and net.std.item() == 0.25
    assert build("resnet18", 10, mean=0.5, std=0.5).mean.flatten().tolist() == [0.5] * 3
    with pytest.raises(OptionError, match="--mean: must have 1 or 3 values"):
        build("resnet18", 10, mean=(0.1, 0.2), std=(1.0, 1.0))
    with pytest.raises(OptionError, match="--std: must be > 0"):
        Normalized(nn.Identity(), (0.0,), (0.0,))


def test_unknown_arch_names_the_option_and_close_matches():
    with pytest.raises(OptionError, match=r"--arch: 'resnet_18' is unknown; did you mean .*resnet18"):
        build("resnet_18", 10)
    with pytest.raises(OptionError, match="--arch: resnet18 takes 3-channel images"):
        build("resnet18", 10, in_channels=1)
    with pytest.raises(ValueError, match="num_classes"):
        build("small_cnn", 0, in_channels=1)


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "ddp", "checkpoint"])
def test_weights_round_trip(tmp_path, wrap):
    torch.manual_seed(1)
    src = build("small_cnn", 10, in_channels=1)
    state = src.model.state_dict()
    obj = {"plain": state, "state_dict": {"state_dict": state, "epoch": 3},
           "model": {"model": state}, "ddp": {f"module.{k}": v for k, v in state.items()},
           "checkpoint": {"format": "aft_fast.checkpoint/1", "arch": "small_cnn", "model": state}}[wrap]
    path = tmp_path / "w.pt"
    torch.save(obj, path)
    assert set(read_state_dict(str(path))) == set(state)
    torch.manual_seed(2)
    loaded = build("small_cnn", 10, in_channels=1, weights=str(path))
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(loaded(x), src(x))


def test_weights_errors_name_the_option_and_the_fix(tmp_path):
    with pytest.raises(OptionError, match="--weights: .*no such file"):
        build("small_cnn", 10, in_channels=1, weights=str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable torch file"):
        build("small_cnn", 10, in_channels=1, weights=str(tmp_path / "junk.pt"))
    torch.save(build("preact_resnet18", 10).model.state_dict(), tmp_path / "preact.pt")
    with pytest.raises(OptionError, match=r"another architecture than arch small_cnn: 8 of the "
                       r"model's keys are not in the file \(first: 0.weight, 0.bias, 3.weight"):
        build("small_cnn", 10, in_channels=1, weights=str(tmp_path / "preact.pt"))
    torch.save({"lr": 0.1}, tmp_path / "notstate.pt")
    with pytest.raises(ValueError, match="expected a state_dict of tensors"):
        build("small_cnn", 10, in_channels=1, weights=str(tmp_path / "notstate.pt"))


def test_class_count_mismatch_and_replace_head(tmp_path):
    torch.manual_seed(0)
    src = build("resnet18", 1000)
    path = tmp_path / "imagenet.pt"
    torch.save(src.model.state_dict(), path)
    with pytest.raises(ValueError, match="pass --replace-head to re-initialise the classifier for 10 classes"):
        build("resnet18", 10, weights=str(path))
    new = build("resnet18", 10, weights=str(path), replace_head=True)
    assert torch.equal(new.model.conv1.weight, src.model.conv1.weight)
    assert torch.equal(new.model.layer4[1].bn2.running_var, src.model.layer4[1].bn2.running_var)
    assert new.model.fc.weight.shape == (10, 512)


def test_replace_head_touches_only_the_last_linear(tmp_path):
    # MobileNetV3's (like VGG's) "classifier" holds two Linear layers: only the last is the head.
    torch.manual_seed(0)
    src = build("mobilenet_v3_small", 1000)
    path = tmp_path / "mobilenet.pt"
    torch.save(src.model.state_dict(), path)
    new = build("mobilenet_v3_small", 5, weights=str(path), replace_head=True)
    assert torch.equal(new.model.classifier[0].weight, src.model.classifier[0].weight)
    assert new.model.classifier[3].weight.shape == (5, 1024)


def test_unwrap_finds_the_normalized_model():
    net = build("small_cnn", 10, in_channels=1)

    class Wrapper(nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    assert unwrap(Wrapper(net)) is net and unwrap(net) is net
