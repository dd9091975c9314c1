"""robustify's re-estimated BatchNorm statistics (`aft_fast.robustify.batchnorm`): the running
statistics become the plain average over adversarial examples made against the model as it was,
every other weight stays, the momentum is put back, and the checkpoint copy loads as any other."""
import torch
import torch.nn as nn

from aft_fast.attacks import AttackConfig, pgd
from aft_fast.models import Normalized
from aft_fast.robustify.batchnorm import reestimate, reestimated_checkpoint
from aft_fast.train.checkpoint import save_checkpoint

CFG = AttackConfig(eps=0.1, alpha=0.05, steps=2)


def net(bn_first: bool = True) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.BatchNorm2d(1, momentum=0.3)] if bn_first else []
    body = nn.Sequential(*layers, nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    model = Normalized(body, mean=(0.5,), std=(0.25,))
    with torch.no_grad():  # pretrained-looking statistics, far from what the data gives
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.fill_(3.0)
                m.running_var.fill_(7.0)
    return model.eval()


def batches(n: int = 3):
    g = torch.Generator().manual_seed(1)
    return [(torch.rand(8, 1, 10, 10, generator=g), torch.randint(0, 3, (8,), generator=g))
            for _ in range(n)]


def test_statistics_are_the_average_over_adversarial_examples_of_the_model_as_it_was():
    model, data = net(), batches()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # what the examples must be: PGD against the unchanged model, in order, from one seed
    reference = net()
    torch.manual_seed(5)
    advs = [pgd(reference, x, y, CFG) for x, y in data[:2]]
    torch.manual_seed(5)
    assert reestimate(model, data, CFG, batches=2) == 16
    first = model.model[0]  # normalises the adversarial images directly
    z = [(a - 0.5) / 0.25 for a in advs]
    torch.testing.assert_close(first.running_mean, torch.stack([v.mean() for v in z]).mean()
                               .reshape(1))
    torch.testing.assert_close(first.running_var, torch.stack([v.var() for v in z]).mean()
                               .reshape(1))
    assert first.momentum == 0.3 and not model.training
    after = model.state_dict()
    for k, v in before.items():
        moved = k.endswith(("running_mean", "running_var", "num_batches_tracked"))
        assert torch.equal(after[k], v) != moved, k


def test_a_network_without_batchnorm_is_left_alone():
    model = Normalized(nn.Sequential(nn.Flatten(), nn.Linear(100, 3)), mean=(0.5,), std=(0.25,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert reestimate(model, batches(), CFG, batches=2) == 0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_checkpoint_copy_holds_the_reestimated_model(tmp_path, monkeypatch):
    model = net(bn_first=False)
    src = tmp_path / "best.pt"
    save_checkpoint(src, model=model, arch="unused", num_classes=3, input_size=10, method="aft",
                    config={}, epoch=0)
    # a test-local net has no arch to rebuild it from: the loader hands it over
    import aft_fast.robustify.batchnorm as module

    loaded = net(bn_first=False)
    monkeypatch.setattr(module, "load_checkpoint", lambda *a, **k: loaded)
    torch.manual_seed(2)
    record = reestimated_checkpoint(src, tmp_path / "re.pt", batches(), CFG, batches=3)
    want = net(bn_first=False)
    torch.manual_seed(2)
    reestimate(want, batches(), CFG, batches=3)
    got = torch.load(tmp_path / "re.pt", weights_only=True)
    assert record == got["batchnorm_reestimated"] and record["images"] == 24
    assert got["ema"] is None and got["arch"] == "unused"
    for k, v in want.model.state_dict().items():
        assert torch.equal(got["model"][k], v), k
    assert not torch.equal(got["model"]["1.running_mean"],
                           torch.load(src, weights_only=True)["model"]["1.running_mean"])
