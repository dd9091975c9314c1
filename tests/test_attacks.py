"""Attack sanity on a small trained MNIST model: the properties any correct l∞ attack has."""
import pytest
import torch

from aft_fast.attacks import AttackConfig, fgsm_rs, pgd
from aft_fast.data import mnist5k
from helpers import train_small_cnn


@pytest.fixture(scope="module")
def model():
    return train_small_cnn()


@pytest.fixture(scope="module")
def batch():
    x, y = mnist5k("test")
    return x[:200].clone(), y[:200].clone()


def acc(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def test_model_is_trained(model, batch):
    assert acc(model, *batch) > 0.8


def test_eps_zero_gives_clean_accuracy(model, batch):
    x, y = batch
    x_adv = pgd(model, x, y, AttackConfig(0.0, 0.01, 10))
    assert torch.equal(x_adv, x)
    assert acc(model, x_adv, y) == acc(model, x, y)


def test_pgd_at_most_fgsm_at_most_clean(model, batch):
    x, y = batch
    eps = 0.15
    g = torch.Generator().manual_seed(0)
    fgsm = acc(model, fgsm_rs(model, x, y, eps, 1.25 * eps, generator=g), y)
    strong = acc(model, pgd(model, x, y, AttackConfig(eps, eps / 8, 40), generator=g), y)
    assert strong <= fgsm <= acc(model, x, y)
    assert strong < acc(model, x, y)  # the attack does something


def test_robust_accuracy_falls_with_eps_and_is_zero_at_one(model, batch):
    x, y = batch
    accs = [acc(model, pgd(model, x, y, AttackConfig(e, 2.5 * e / 20, 20),
                           generator=torch.Generator().manual_seed(1)), y)
            for e in (0.0, 0.05, 0.1, 0.2, 0.4, 1.0)]
    assert all(a >= b for a, b in zip(accs, accs[1:])), accs
    assert accs[-1] == 0.0


def test_result_in_ball_and_box_and_no_parameter_gradient(model, batch):
    x, y = batch
    for p in model.parameters():
        p.grad = None
    x_adv = pgd(model, x, y, AttackConfig(0.1, 0.02, 5, restarts=2))
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert all(p.grad is None for p in model.parameters())
    assert not x_adv.requires_grad


def test_restarts_never_worse_and_deterministic(model, batch):
    x, y = batch
    cfg1, cfg4 = AttackConfig(0.1, 0.025, 5), AttackConfig(0.1, 0.025, 5, restarts=4)
    one = acc(model, pgd(model, x, y, cfg1, generator=torch.Generator().manual_seed(3)), y)
    four = acc(model, pgd(model, x, y, cfg4, generator=torch.Generator().manual_seed(3)), y)
    assert four <= one
    a = pgd(model, x, y, cfg4, generator=torch.Generator().manual_seed(5))
    b = pgd(model, x, y, cfg4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_bn_mode_is_restored():
    from aft_fast.models import build
    net = build("preact_resnet18", 10)
    x, y = torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,))
    net.train()
    before = net.model.bn.running_mean.clone()
    pgd(net, x, y, AttackConfig(0.03, 0.01, 2))  # eval mode: running stats untouched
    assert net.training and torch.equal(net.model.bn.running_mean, before)
    pgd(net, x, y, AttackConfig(0.03, 0.01, 2, bn_mode="train"))
    assert net.training and not torch.equal(net.model.bn.running_mean, before)


def test_channels_last_and_bf16_autocast():
    from aft_fast.models import build
    net = build("resnet18", 10).to(memory_format=torch.channels_last).eval()
    x = torch.rand(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (2,))
    x_adv = pgd(net, x, y, AttackConfig(8 / 255, 2 / 255, 2, amp="bf16"))
    assert x_adv.dtype == torch.float32
    assert x_adv.is_contiguous(memory_format=torch.channels_last)
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6


@pytest.mark.parametrize("kwargs,message", [
    (dict(eps=-0.1, alpha=0.1, steps=1), "eps must be >= 0"),
    (dict(eps=0.1, alpha=-1, steps=1), "alpha must be >= 0"),
    (dict(eps=0.1, alpha=0.1, steps=1, restarts=0), "restarts must be >= 1"),
    (dict(eps=0.1, alpha=0.1, steps=1, amp="fp8"), "amp must be one of"),
    (dict(eps=0.1, alpha=0.1, steps=1, bn_mode="frozen"), "bn_mode must be"),
])
def test_attack_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AttackConfig(**kwargs)


def test_autoattack_small_settings_not_weaker_than_pgd(model, batch):
    pytest.importorskip("torchattacks")
    from aft_fast.attacks.autoattack import autoattack
    x, y = batch[0][:64], batch[1][:64]
    eps = 0.1
    aa = acc(model, autoattack(model, x, y, eps=eps, steps=10, queries=50), y)
    pgd_acc = acc(model, pgd(model, x, y, AttackConfig(eps, eps / 4, 10)), y)
    assert aa <= pgd_acc + 2 / 64  # AutoAttack starts with APGD-CE; allow 2 examples of noise
