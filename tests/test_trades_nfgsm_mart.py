"""TRADES, N-FGSM and MART against their reference code: TRADES' attack maximises the KL term
and its loss (and MART's) equals the reference formula; N-FGSM's noise, step and (no) clipping;
each trains."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from aft_fast.methods import METHODS, make_method
from aft_fast.methods.trades import kl_sum
from aft_fast.train.run import train
from aft_fast.train.update import Trainer
from test_methods import batch, tiny_net


def reference_trades_loss(model, x, x_adv, y, beta):
    """The loss as yaodongyu/TRADES' trades.py writes it (KLDivLoss summed, divided by B)."""
    criterion_kl = nn.KLDivLoss(reduction="sum")
    logits = model(x)
    robust = criterion_kl(F.log_softmax(model(x_adv), dim=1), F.softmax(model(x), dim=1))
    return F.cross_entropy(logits, y) + beta * robust / len(x)


def test_loss_equals_the_reference_formula():
    torch.manual_seed(0)
    model = tiny_net().train()
    x, y = batch()
    x_adv = (x + 0.05 * torch.rand_like(x)).clamp(0, 1)
    method = make_method("trades", eps=0.1, beta=3.0)
    loss, logits = method.loss(model, x_adv, y, x)
    torch.testing.assert_close(loss, reference_trades_loss(model, x, x_adv, y, 3.0))
    assert torch.equal(logits.argmax(1), model(x_adv).argmax(1))  # accuracy is on x_adv


def test_attack_raises_the_kl_term_inside_the_ball():
    torch.manual_seed(0)
    model = tiny_net()
    x, y = batch()
    trainer = Trainer(model, None, None, torch.device("cpu"))
    method = make_method("trades", eps=0.1, steps=5)
    x_adv = method.perturb(trainer, x, y)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    model.eval()
    with torch.no_grad():
        p = F.softmax(model(x), dim=1)
        start = (x + 0.001 * torch.rand_like(x).sign()).clamp(0, 1)
        assert kl_sum(model(x_adv), p) > 10 * kl_sum(model(start), p)


def test_update_takes_the_trades_loss_and_beta_matters():
    weights = {}
    for beta in (0.0, 6.0):
        torch.manual_seed(0)
        model = tiny_net()
        trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), None,
                          torch.device("cpu"))
        x, y = batch()
        make_method("trades", eps=0.1, steps=2, beta=beta).step(trainer, x, y, lambda f: None)
        weights[beta] = model.state_dict()["model.5.weight"].clone()
    assert not torch.equal(weights[0.0], weights[6.0])


def test_recipes_follow_the_reference_code():
    trades, ft = METHODS["trades"], METHODS["trades-ft"]
    assert trades.recipes["small"]["optimizer"] == "sgd" and trades.recipes["small"]["lr"] == 0.01
    assert trades.recipes["cifar"]["weight_decay"] == 2e-4 and trades.parent is None
    assert ft.parent == "natural" and ft.needs_weights and ft.schedule == "slow-start-fast-decay"
    assert make_method("trades", eps=0.1).beta == 6.0
    assert make_method("trades", eps=0.1, steps=5).passes_per_epoch() == 7


@pytest.mark.parametrize("name", ["trades", "trades-ft"])
def test_trains_one_epoch(synthetic_opts, tmp_path, name):
    summary = train(synthetic_opts(tmp_path, name, method=name, epochs=1, beta=2.0,
                                   allow_scratch=True))
    row = summary["last"]
    assert 0 <= row["val_robust_acc"] <= row["val_clean_acc"] <= 1
    assert summary["config"]["resolved"]["method_options"] == {"beta": 2.0}


# ------------------------------------------------------------------ N-FGSM and MART
def test_nfgsm_noise_step_and_no_projection():
    """Noise up to kε, one step of ε, kept in [0, 1], not clipped to the ε-ball (and clipped
    when asked), as pdejorge/N-FGSM."""
    torch.manual_seed(0)
    model = tiny_net()
    x = torch.full((16, 1, 8, 8), 0.5)
    y = torch.randint(0, 10, (16,))
    trainer = Trainer(model, None, None, torch.device("cpu"))
    free = make_method("n-fgsm", eps=0.1).perturb(trainer, x, y)
    d = (free - x).abs()
    assert d.max() > 0.1 + 1e-3 and d.max() <= 0.3 + 1e-6  # beyond ε, within kε + ε
    clipped = make_method("n-fgsm", eps=0.1, nfgsm_clip=1.0).perturb(trainer, x, y)
    assert (clipped - x).abs().max() <= 0.1 + 1e-6
    m = make_method("n-fgsm", eps=0.1)
    assert m.alpha == pytest.approx(0.1) and m.passes_per_epoch() == 2 and m.bn_mode == "train"


def reference_mart_loss(model, x, x_adv, y, beta):
    """The loss as YisenWang/MART's mart.py writes it."""
    kl = nn.KLDivLoss(reduction="none")
    logits, logits_adv = model(x), model(x_adv)
    adv_probs = F.softmax(logits_adv, dim=1)
    tmp1 = torch.argsort(adv_probs, dim=1)[:, -2:]
    new_y = torch.where(tmp1[:, -1] == y, tmp1[:, -2], tmp1[:, -1])
    loss_adv = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - adv_probs + 1e-12),
                                                           new_y)
    nat_probs = F.softmax(logits, dim=1)
    true_probs = torch.gather(nat_probs, 1, (y.unsqueeze(1)).long()).squeeze()
    loss_robust = (1.0 / len(x)) * torch.sum(
        torch.sum(kl(torch.log(adv_probs + 1e-12), nat_probs), dim=1) * (1.0000001 - true_probs))
    return loss_adv + float(beta) * loss_robust


def test_mart_loss_equals_the_reference_formula():
    torch.manual_seed(0)
    model = tiny_net().train()
    x, y = batch()
    x_adv = (x + 0.05 * torch.rand_like(x)).clamp(0, 1)
    loss, _ = make_method("mart", eps=0.1).loss(model, x_adv, y, x)
    torch.testing.assert_close(loss, reference_mart_loss(model, x, x_adv, y, 6.0))


@pytest.mark.parametrize("name", ["n-fgsm", "mart"])
def test_nfgsm_and_mart_train_one_epoch(synthetic_opts, tmp_path, name):
    row = train(synthetic_opts(tmp_path, name, method=name, epochs=1))["last"]
    assert 0 <= row["val_robust_acc"] <= row["val_clean_acc"] <= 1


@pytest.mark.parametrize("method", ["trades", "n-fgsm", "mart"])
def test_a_run_stopped_mid_epoch_resumes_bitwise(synthetic_opts, tmp_path, monkeypatch, method):
    from test_preemption import stop_then_resume

    at_stop = stop_then_resume(synthetic_opts, tmp_path, monkeypatch, method=method, epochs=2)
    assert at_stop["progress"]["batch"] == 2
