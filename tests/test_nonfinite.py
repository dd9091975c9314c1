"""Non-finite losses: found at the step they appear (read later, without a sync per step),
`stop` names the step and keeps the checkpoints finite, `skip` leaves the update out exactly
(parameters, optimizer state, BatchNorm statistics) and counts it."""
import math

import pytest
import torch
import torch.nn as nn

from aft_fast.models import Normalized
from aft_fast.train.run import train
from aft_fast.train.checkpoint import read_checkpoint
from aft_fast.train.update import Trainer
from aft_fast.train.nonfinite import NonFiniteLoss, NonFiniteMonitor


class NaNAt:
    """A training loader whose batch at global step `step` holds a NaN pixel."""

    def __init__(self, inner, step: int):
        self.inner, self.step, self.epoch, self.start = inner, step, 0, 0

    def __len__(self):
        return len(self.inner)

    def set_epoch(self, epoch, start_batch=0):
        self.epoch, self.start = epoch, start_batch
        self.inner.set_epoch(epoch, start_batch)

    def __iter__(self):
        for i, (x, y) in enumerate(self.inner, start=self.start):
            if self.epoch * len(self) + i == self.step:
                x = x.clone()
                x[0, 0, 0, 0] = float("nan")
            yield x, y


@pytest.fixture
def nan_at_step_5(small_synthetic, monkeypatch):
    import aft_fast.train.run as run
    tiny = run.make_loaders

    def with_nan(data, **kw):
        loaders = tiny(data, **kw)
        return loaders._replace(train=NaNAt(loaders.train, 5))

    monkeypatch.setattr(run, "make_loaders", with_nan)


def finite(path) -> bool:
    return all(torch.isfinite(v).all() for v in read_checkpoint(path)["model"].values())


def test_stop_names_the_step_and_keeps_checkpoints_finite(nan_at_step_5, synthetic_opts,
                                                          tmp_path):
    opts = synthetic_opts(tmp_path, "run", method="natural", epochs=3)
    with pytest.raises(NonFiniteLoss, match=r"epoch 2, batch 2 \(global step 5") as err:
        train(opts)  # read at the end of epoch 2 (no log line in between), yet exact
    assert (err.value.step, err.value.epoch, err.value.batch) == (5, 1, 1)
    last = read_checkpoint(tmp_path / "run" / "last.pt")
    assert last["epoch"] == 0 and finite(tmp_path / "run" / "last.pt")  # epoch 2 never saved
    assert finite(tmp_path / "run" / "best.pt")


def test_cli_reports_the_step_without_a_traceback(nan_at_step_5, tmp_path):
    from click.testing import CliRunner

    from aft_fast.cli import main
    args = ["--data", "synthetic", "--arch", "small_cnn", "--batch-size", "32", "--eps", "0.1",
            "--eval-max-batches", "1", "--quiet", "--device", "cpu"]  # the tiny run of conftest
    result = CliRunner().invoke(main, ["train", *args, "--method", "natural", "--epochs", "3",
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert "global step 5" in result.output and "Traceback" not in result.output
    assert not isinstance(result.exception, NonFiniteLoss)  # converted, not raised through


def test_skip_leaves_the_batch_out_and_counts_it(nan_at_step_5, synthetic_opts, tmp_path):
    summary = train(synthetic_opts(tmp_path, "run", method="natural", epochs=2,
                                   on_nonfinite="skip"))
    assert [r["skipped_steps"] for r in summary["rows"]] == [0, 1]
    assert all(math.isfinite(r["train_loss"]) for r in summary["rows"])
    assert finite(tmp_path / "run" / "last.pt") and finite(tmp_path / "run" / "best.pt")


def bn_net():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 10))
    return Normalized(net, (0.5,), (0.25,))


@pytest.mark.parametrize("fused", [True, False])  # on the device / one host sync
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_skipped_update_changes_nothing(fused, opt):
    from aft_fast.train.run import make_optimizer
    model = bn_net()
    optimizer = make_optimizer(opt, model.parameters(), 0.1, 0.9, 5e-4, fused=fused)
    trainer = Trainer(model, optimizer, None, torch.device("cpu"), on_nonfinite="skip")
    x, y = torch.rand(8, 1, 6, 6), torch.randint(0, 10, (8,))
    trainer.update(x, y)  # a finite step first: optimizer state exists
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_before = {k: {n: t.clone() for n, t in s.items()} for k, s in optimizer.state.items()}
    x_bad = x.clone()
    x_bad[3, 0, 2, 2] = float("inf")
    trainer.step_index = 1
    u = trainer.update(x_bad, y)
    assert bool(u.bad)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # incl. BN stats
    assert all(torch.equal(t, opt_before[k][n]) for k, s in optimizer.state.items()
               for n, t in s.items())
    assert trainer.nonfinite.read() == (1, 1)
    trainer.step_index = 2
    assert not bool(trainer.update(x, y).bad)  # and training goes on
    assert not all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_monitor_records_the_first_bad_step_and_the_count():
    m = NonFiniteMonitor(torch.device("cpu"))
    for step, bad in enumerate([False, False, True, False, True]):
        m.record(torch.tensor(bad), step)
    assert m.read() == (2, 2)
    again = NonFiniteMonitor(torch.device("cpu"), "skip")
    again.load_state_dict(m.state_dict())
    assert again.read() == (2, 2) and again.skip
