"""The methods, one batch at a time on a tiny net, and each method end to end for one epoch."""
import pytest
import torch
import torch.nn as nn

from aft_fast.data.batches import Origin
from aft_fast.errors import OptionError
from aft_fast.models import Normalized
from aft_fast.methods import METHODS, make_method
from aft_fast.train.run import train
from aft_fast.train.update import Trainer


def tiny_net():
    # BatchNorm included: the attack's BN mode must not disturb the weight update.
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 10))
    return Normalized(net, (0.5,), (0.25,))


def batch(n=16):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def own(name, **kw):
    """`kw` less the own options of other methods (Free AT's replays goes to Free AT only)."""
    others = {o.name for cls in METHODS.values() for o in cls.options}
    mine = {o.name for o in METHODS[name].options}
    return {k: v for k, v in kw.items() if k in mine or k not in others}


def one_step(name, amp=None, channels_last=False, **kw):
    torch.manual_seed(0)  # same weights and random starts on every call
    model = tiny_net()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, opt, amp, torch.device("cpu"))
    method = make_method(name, eps=0.1, steps=2, amp=amp, **own(name, **kw))
    x, y = batch()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    lrs = []
    extra = {"origin": Origin.whole_batch(len(y))} if method.needs_index else {}  # ATTA
    stats = method.step(trainer, x, y, lambda frac: lrs.append(frac), **extra)
    return model, before, method, stats, lrs


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("amp", [None, "bf16", "fp16"])
def test_step_updates_weights_and_returns_device_sums(name, amp):
    model, before, _, stats, _ = one_step(name, amp=amp, replays=2)
    assert isinstance(stats.loss_sum, torch.Tensor) and isinstance(stats.correct, torch.Tensor)
    assert torch.isfinite(stats.loss_sum) and 0 <= stats.correct.item() <= stats.n == 16
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert "model.0.weight" in changed and "model.5.weight" in changed
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_channels_last_step_matches_contiguous():
    a, _, _, sa, _ = one_step("pgd-at")
    b, _, _, sb, _ = one_step("pgd-at", channels_last=True)
    torch.testing.assert_close(sa.loss_sum, sb.loss_sum, rtol=1e-4, atol=1e-5)
    for k, v in a.state_dict().items():
        torch.testing.assert_close(v, b.state_dict()[k], rtol=1e-4, atol=1e-5)


def test_registry_is_derived_from_the_method_modules():
    from aft_fast import methods
    from aft_fast.train.options import TrainOptions

    assert tuple(METHODS) == methods.NAMES == tuple(m.name for m in methods.BUILTIN)
    assert methods.ADVERSARIAL == tuple(n for n in methods.NAMES if n != "natural")
    # every built-in method's own option is a training option, with its declared help
    fields = {f.name: f for f in __import__("dataclasses").fields(TrainOptions)}
    for cls in methods.BUILTIN:
        for o in cls.options:
            assert fields[o.name].metadata["help"] == o.help


def test_defaults_follow_the_papers():
    assert (METHODS["natural"].optimizer, METHODS["natural"].schedule) == ("sgd", "multistep")
    aft = METHODS["aft"]
    assert (aft.optimizer, aft.schedule, aft.epochs, aft.needs_weights) == (
        "adam", "slow-start-fast-decay", 10, True)
    fast = make_method("fast-at", eps=0.2)
    assert fast.alpha == pytest.approx(0.25) and fast.schedule == "cyclic"
    free = make_method("free-at", eps=0.2)
    assert free.alpha == pytest.approx(0.2) and free.replays == 8
    assert make_method("pgd-at", eps=0.3, steps=10).alpha == pytest.approx(0.075)


def test_free_at_replays_and_persistent_delta():
    model, _, method, _, lrs = one_step("free-at", replays=3)
    assert lrs == pytest.approx([0, 1 / 3, 2 / 3])  # the LR advances within the batch
    delta = method.delta
    x, _ = batch()
    assert delta.abs().max() <= 0.1 + 1e-6 and delta.abs().max() > 0  # updated, inside the ball
    assert ((x + delta) >= -1e-6).all() and ((x + delta) <= 1 + 1e-6).all()
    # A smaller last batch keeps using (and updating) the first rows of the same delta.
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), None, torch.device("cpu"))
    kept = delta[8:].clone()
    method.step(trainer, x[:8], torch.zeros(8, dtype=torch.long), lambda f: None)
    assert method.delta.shape[0] == 16 and torch.equal(method.delta[8:], kept)
    state = method.state_dict()
    fresh = make_method("free-at", eps=0.1)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.delta, method.delta)


def test_bad_method_arguments():
    with pytest.raises(OptionError, match="--method: must be one of"):
        make_method("no-such-method")
    with pytest.raises(OptionError, match="--replays: must be >= 1"):
        make_method("free-at", replays=0)
    with pytest.raises(OptionError, match="--amp: must be one of"):
        Trainer(tiny_net(), None, "fp8", torch.device("cpu"))


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_runs_one_epoch(synthetic_opts, tmp_path, method):
    summary = train(synthetic_opts(tmp_path, method, method=method, epochs=1,
                                   allow_scratch=True, **own(method, replays=2)))
    row = summary["last"]
    assert row["epoch"] == 0 and 0 <= row["train_acc"] <= 1
    assert 0 <= row["val_robust_acc"] <= row["val_clean_acc"] <= 1
    assert row["epoch_seconds"] > 0 and row["images_per_second"] > 0
    # timed where the attack is a pass of its own (not Natural's, Free AT's or YOPO's)
    assert (row["attack_ms_per_iter"] is None) == (not METHODS[method].separate_attack)
    for f in ("args.yaml", "metrics.jsonl", "summary.csv", "last.pt", "best.pt", "lr.png",
              "accuracy.png"):
        assert (tmp_path / method / f).exists(), f


def test_free_at_divides_default_epochs_by_replays(synthetic_opts, tmp_path, monkeypatch):
    import aft_fast.train.run as run
    seen = {}
    monkeypatch.setattr(run, "fit", lambda state, loaders, run_dir, loop, **kw:
                        seen.update(epochs=loop.epochs) or {"last": None, "best": None, "rows": []})
    train(synthetic_opts(tmp_path, "free", method="free-at", replays=4))
    assert seen["epochs"] == 3  # ceil(10 / 4): same number of weight updates as 10 epochs


def test_co_guard_rolls_back_when_pgd_accuracy_collapses(synthetic_opts, tmp_path,
                                                          monkeypatch):
    import aft_fast.train.co_guard as co_guard
    import aft_fast.train.run_dir as run_dir
    real, guard_values = co_guard.accuracy, iter([0.8, 0.1, 0.1])
    saved = []

    def fake(model, loader, **kw):
        result = real(model, loader, **kw)
        result["robust_acc"] = next(guard_values)
        return result

    def record(path, *, model, epoch, **kw):
        saved.append((path.name, epoch, {k: v.clone() for k, v in model.model.state_dict().items()}))
        return real_save(path, model=model, epoch=epoch, **kw)

    real_save = run_dir.save_checkpoint
    monkeypatch.setattr(co_guard, "accuracy", fake)
    monkeypatch.setattr(run_dir, "save_checkpoint", record)
    opts = synthetic_opts(tmp_path, "fast", method="fast-at", epochs=3, co_guard=True)
    summary = train(opts)
    rows = summary["rows"]
    assert len(rows) == 2 and rows[1]["guard"].startswith("rolled back")
    first = [s for name, e, s in saved if name == "last.pt" and e == 0][0]
    last = [s for name, e, s in saved if name == "last.pt"][-1]
    assert all(torch.equal(first[k], last[k]) for k in first)  # the epoch-0 weights came back
    # The stop is part of the run's state: a resume does not train on.
    opts.resume = True
    assert len(train(opts)["rows"]) == 2


def test_co_guard_checks_each_epochs_first_training_batch_like_fast_adversarial(
        synthetic_opts, tmp_path, monkeypatch):
    import aft_fast.train.co_guard as co_guard

    real, seen = co_guard.accuracy, []

    def record(model, loader, cfg, **kw):
        (x, y), = loader
        seen.append((x.clone(), y.clone(), cfg.steps, cfg.alpha / cfg.eps))
        return real(model, loader, cfg=cfg, **kw)

    firsts, real_observe = [], co_guard.COGuard.observe

    def observe(self, x, y):  # the loop shows the guard every training batch
        if self.batch is None:
            firsts.append((x.clone(), y.clone()))
        real_observe(self, x, y)

    monkeypatch.setattr(co_guard.COGuard, "observe", observe)
    monkeypatch.setattr(co_guard, "accuracy", record)
    train(synthetic_opts(tmp_path, "fast", method="fast-at", epochs=2, co_guard=True))
    assert len(seen) == 2 and [s[2:] for s in seen] == [(5, 0.25), (5, 0.25)]
    for (x, y, *_), (fx, fy) in zip(seen, firsts):  # the epoch's first training batch
        assert torch.equal(x, fx) and torch.equal(y, fy)
    assert not torch.equal(seen[0][0], seen[1][0])  # a new batch each epoch (shuffled)
    # Measuring draws from the guard's own generator: the same run without it trains the same.
    from aft_fast import load_checkpoint

    train(synthetic_opts(tmp_path, "plain", method="fast-at", epochs=2))
    a, b = (load_checkpoint(tmp_path / name / "last.pt").state_dict() for name in ("fast", "plain"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_co_guard_stops_on_a_drop_of_more_than_0_2_not_less(monkeypatch):
    import aft_fast.train.co_guard as co_guard

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = nn.Linear(4, 3)

        def forward(self, x):
            return self.model(x)

    values = iter([0.9, 0.75, 0.5])
    monkeypatch.setattr(co_guard, "accuracy", lambda *a, **k: {"robust_acc": next(values)})
    guard, net, weights = co_guard.COGuard(co_guard.guard_attack(0.1)), Net(), []
    for epoch in range(3):
        guard.observe(torch.rand(8, 4), torch.zeros(8, dtype=torch.long))
        weights.append(net.model.weight.detach().clone())
        row = {}
        if guard.check(net, row, epoch):
            break
        with torch.no_grad():
            net.model.weight.add_(1.0)  # the next epoch's training
    assert epoch == 2  # 0.9 -> 0.75 was no collapse
    assert "0.500 < 0.750 - 0.2" in row["guard"]
    assert torch.equal(net.model.weight, weights[1])  # the previous epoch's weights are back


@pytest.mark.parametrize("name", ["pgd-at", "aft", "fast-at"])
def test_compile_reaches_the_training_attack(name, monkeypatch):
    import importlib

    pgd_module = importlib.import_module("aft_fast.attacks.pgd")  # the package re-exports pgd()
    seen, real = [], pgd_module._run_once

    def recording_run_once(model, x, y, cfg, *args):
        seen.append(cfg.compile)
        return real(model, x, y, cfg, *args)

    monkeypatch.setattr(pgd_module, "_run_once", recording_run_once)
    monkeypatch.setattr(pgd_module, "compiled_input_grad", pgd_module.input_grad)  # no compile wait
    one_step(name, compile=True)
    assert seen == [True]
