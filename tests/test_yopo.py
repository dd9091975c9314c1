"""YOPO-m-n against its definition (Zhang et al. 2019): the costate is −∂L/∂(first layer's
output), the inner steps run only the first layer, m rounds make one weight update; it learns,
resumes bitwise mid-epoch, has a comparison row with its cost, and bench times it."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from click.testing import CliRunner

from aft_fast.attacks import AttackConfig, pgd
from aft_fast.cli import main
from aft_fast.compare.cost import row_passes
from aft_fast.compare.recipes import plan
from aft_fast.errors import OptionError
from aft_fast.methods import make_method
from aft_fast.methods.yopo import Costate, FIRST_LAYER_STEP, resolve_first_layer
from aft_fast.models import Normalized, build
from aft_fast.train.options import TrainOptions
from aft_fast.train.update import Trainer
from test_methods import batch, tiny_net
from test_preemption import stop_then_resume

CPU = torch.device("cpu")


def counter(counts: dict, key):
    """A forward hook that counts its module's calls in counts[key]."""
    def hook(*args):
        counts[key] += 1
    return hook


def sgd_trainer(model, lr=0.05):
    return Trainer(model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9), None, CPU)


def test_costate_is_minus_the_gradient_at_the_first_layer_output():
    """Through the real update path: in each round, p = −∂L/∂z at that round's input."""
    torch.manual_seed(0)
    model = tiny_net()
    trainer = sgd_trainer(model)
    x, y = batch()
    layer = resolve_first_layer(model, None)
    checked = []

    def next_input(u):
        p = costate.take()
        # autograd on a copy with the same weights (no step has been taken within the rounds)
        twin = copy.deepcopy(model).train()
        seen = []
        twin.model[0].register_forward_hook(lambda m, i, z: seen.append(z))
        loss = F.cross_entropy(twin(x_in), y)
        g, = torch.autograd.grad(loss, seen[0])
        torch.testing.assert_close(p, -g)
        checked.append(True)
        return x_in

    x_in = x.clone()
    with Costate(layer) as costate:
        trainer.update(x_in, y, rounds=3, next_input=next_input)
    assert len(checked) == 2  # between the 3 rounds


def test_an_inner_step_runs_only_the_first_layer_and_descends_the_hamiltonian():
    torch.manual_seed(0)
    model = tiny_net()
    trainer = sgd_trainer(model)
    method = make_method("yopo", eps=0.1)
    layer = method.first_layer_of(model)
    calls = {name: 0 for name, _ in model.model.named_modules() if name}
    for name, m in model.model.named_modules():
        if name:
            m.register_forward_hook(counter(calls, name))
    x, _ = batch()
    x_adv = x.clone()
    p = torch.randn(16, 4, 8, 8)
    method.inner_step(trainer, layer, x_adv, x, p)
    assert calls == {name: int(name == "0") for name in calls}  # model.0: the first conv
    # the step is −α·sign(∇ p·f0), projected onto the ε-ball and [0, 1]
    x_ref = x.clone().requires_grad_(True)
    h = (layer((x_ref - model.mean) / model.std) * p).sum()
    g, = torch.autograd.grad(h, x_ref)
    expect = torch.minimum(torch.maximum(x - 0.025 * g.sign(), x - 0.1), x + 0.1).clamp(0, 1)
    torch.testing.assert_close(x_adv, expect)


def test_one_batch_m_full_passes_one_update_inside_the_ball():
    torch.manual_seed(0)
    model = tiny_net()
    trainer = sgd_trainer(model)
    method = make_method("yopo", eps=0.1, yopo_m=3, yopo_n=2)
    calls = {"first": 0, "last": 0, "optimizer": 0}
    model.model[0].register_forward_hook(counter(calls, "first"))
    model.model[5].register_forward_hook(counter(calls, "last"))
    trainer.optimizer.register_step_pre_hook(counter(calls, "optimizer"))
    inputs = []
    model.register_forward_pre_hook(lambda m, i: inputs.append(i[0].detach().clone()))
    x, y = batch()
    stats = method.step(trainer, x, y, lambda f: None)
    assert calls == {"first": 3 + 2 * 2, "last": 3, "optimizer": 1}  # m + (m−1)·n, m, one step
    assert stats.n == 16 and torch.isfinite(stats.loss_sum)
    for x_in in inputs:
        assert (x_in - x).abs().max() <= 0.1 + 1e-6 and x_in.min() >= 0 and x_in.max() <= 1
    assert not torch.equal(inputs[0], inputs[-1])  # the perturbation moved between rounds


def test_first_layer_of_our_models_and_a_users():
    for arch, name in (("small_cnn", "0"), ("preact_resnet18", "conv1"), ("resnet18", "conv1")):
        model = build(arch, 10, in_channels=1 if arch == "small_cnn" else 3)
        assert resolve_first_layer(model, None) is dict(model.model.named_modules())[name]
    users = Normalized(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), (0.5,), (0.25,))
    assert resolve_first_layer(users, None) is users.model[1]
    assert resolve_first_layer(users, "1") is users.model[1]


def test_one_step_on_preact_resnet18():
    torch.manual_seed(0)
    model = build("preact_resnet18", 10)
    method = make_method("yopo", eps=8 / 255, yopo_m=2, yopo_n=1)
    stats = method.step(sgd_trainer(model), torch.rand(4, 3, 32, 32),
                        torch.randint(0, 10, (4,)), lambda f: None)
    assert method.alpha == pytest.approx(2 / 255) and torch.isfinite(stats.loss_sum)


def test_unknown_first_layer_is_named_with_the_candidates():
    model = build("preact_resnet18", 10)
    with pytest.raises(OptionError, match=r"no submodule 'conv0'.*candidates conv1, ") as err:
        make_method("yopo", eps=0.1, first_layer="conv0").first_layer_of(model)
    assert err.value.option == "first_layer"
    no_layer = Normalized(nn.Sequential(nn.Flatten()), (0.5,), (0.25,))
    with pytest.raises(OptionError, match="no Conv2d or Linear"):
        resolve_first_layer(no_layer, None)


def test_options_are_checked_and_refused_for_other_methods():
    opts = TrainOptions(method="yopo", yopo_m=2, yopo_n=4, first_layer="conv1").check()
    assert opts.method_kwargs() == {"yopo_m": 2, "yopo_n": 4, "first_layer": "conv1"}
    with pytest.raises(OptionError, match="must be >= 1") as err:
        TrainOptions(method="yopo", yopo_m=0).check()
    assert err.value.option == "yopo_m"
    with pytest.raises(OptionError, match="is an option of yopo") as err:
        TrainOptions(method="pgd-at", first_layer="conv1").check()
    assert err.value.option == "first_layer"


def two_bright_classes(n, g):
    """Class 0 around 0.3, class 1 around 0.7 (noise ±0.15): robustly separable at ε = 0.1."""
    y = torch.randint(0, 2, (n,), generator=g)
    noise = 0.3 * (torch.rand(n, 1, 8, 8, generator=g) - 0.5)
    x = 0.3 + 0.4 * y.float()[:, None, None, None] + noise
    return x.clamp(0, 1), y


def test_it_learns_robustly_on_a_tiny_task():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = tiny_net()
    trainer = sgd_trainer(model, lr=0.01)
    method = make_method("yopo", eps=0.1, yopo_m=3, yopo_n=2)
    for _ in range(30):
        method.step(trainer, *two_bright_classes(32, g), lambda f: None)
    x, y = two_bright_classes(256, g)
    model.eval()
    x_adv = pgd(model, x, y, AttackConfig(eps=0.1, alpha=0.025, steps=10))
    with torch.no_grad():
        robust = (model(x_adv).argmax(1) == y).float().mean().item()
    assert robust > 0.8  # the majority class: about 0.5


def test_train_and_resume_mid_epoch_bitwise(synthetic_opts, tmp_path, monkeypatch):
    ckpt = stop_then_resume(synthetic_opts, tmp_path, monkeypatch, method="yopo", epochs=2,
                            yopo_m=2, yopo_n=2)
    assert ckpt["progress"]["batch"] == 2 and ckpt["config"]["resolved"]["method_options"] == {
        "yopo_m": 2, "yopo_n": 2, "first_layer": None}


def test_compare_row_and_cost(tmp_path):
    recipes = {r.key: r for r in plan(arch="small_cnn", eps=0.1, epochs=10, train_steps=7,
                                      replays=None, aft_epochs=None, methods=("natural", "yopo"))}
    r = recipes["yopo"]
    assert r.label == "YOPO-5-3" and r.epochs == 2  # E / m
    assert r.train["lr"] == pytest.approx(0.01 / 5) and r.train["optimizer"] == "sgd"
    assert r.passes_per_epoch == pytest.approx(5 + 4 * 3 * FIRST_LAYER_STEP)
    assert row_passes(r, tmp_path, 2, 1000) == pytest.approx(2 * r.passes_per_epoch)
    cifar = plan(arch="preact_resnet18", eps=8 / 255, epochs=36, train_steps=10, replays=None,
                 aft_epochs=None, methods=("yopo",))[0]
    assert cifar.train["lr"] == pytest.approx(0.2 / 5) and cifar.epochs == 7


def test_bench_times_it_and_methods_lists_it():
    from aft_fast.perf.bench import run_bench
    from aft_fast.perf.workload import Workload

    w = Workload(arch="small_cnn", image_size=28, in_channels=1, batch=8, steps=2, eps=0.1,
                 device="cpu")
    row = run_bench(w, warmup=0, repeats=1, methods=("yopo",), third_party=False)["methods"]["yopo"]
    assert row["attack_steps"] == 12 and row["weight_updates_per_batch"] == 1
    assert row["epochs"] == 18.0 and row["median_s"] > 0
    out = CliRunner().invoke(main, ["methods", "yopo"]).output
    assert "YOPO" in out and "--yopo-m (default 5)" in out and "--first-layer" in out
