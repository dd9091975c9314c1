"""DDP: two gloo processes train the same weights as one process with the same global batch; a
run resumes under another world size with its global batch kept; what cannot continue exactly
is refused; SyncBatchNorm conversion keeps parameters and checkpoints as they were.

The multi-process runs go through torchrun in a subprocess (tests/distributed_run.py, CPU)."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from aft_fast import distributed
from aft_fast.distributed import BatchPlan, Dist
from aft_fast.errors import OptionError
from aft_fast.train.options import TrainOptions

SCRIPT = str(Path(__file__).with_name("distributed_run.py"))


def launch(processes: int, *args, expect: int = 0) -> str:
    head = [sys.executable, SCRIPT] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={processes}", SCRIPT]
    proc = subprocess.run(head + [str(a) for a in args], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == expect, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "last.pt", weights_only=True)["model"]


def assert_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


def differ(a: dict, b: dict) -> bool:
    return any(not torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5) for k in a)


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    """Rank r reads every 2nd sample of the one shuffled order, so the union of the ranks' batch
    i is the one-process batch i and DDP's averaged gradient is the one-process gradient."""
    out = launch(2, tmp_path / "two", 16, 1)
    assert "RESOLVED 2 16 8" in out  # world size, global batch, per process
    launch(1, tmp_path / "one", 16, 1)
    launch(1, tmp_path / "half", 8, 1)  # a control: another global batch
    two, one, half = (weights(tmp_path / n) for n in ("two", "one", "half"))
    assert_close(two, one)
    assert differ(one, half)  # the tolerance above tells batches apart


@pytest.mark.slow
def test_resume_under_another_world_size_keeps_the_global_batch(tmp_path):
    """Killed mid-epoch under 2 processes (after a --save-every checkpoint), resumed under 1:
    the same weights as an uninterrupted one-process run."""
    launch(1, tmp_path / "whole", 16, 2)
    # 4 batches an epoch: stop when batch 3 of epoch 2 is asked for; last.pt holds 2 of them.
    launch(2, tmp_path / "moved", 16, 2, "--save-every", 2, "--stop-after", 6,
           expect=1)  # torchrun reports its workers' failure with status 1
    ckpt = torch.load(tmp_path / "moved" / "last.pt", weights_only=True)
    assert ckpt["progress"]["epoch"] == 1 and ckpt["progress"]["batch"] == 2
    assert ckpt["config"]["resolved"]["batch_per_process"] == 8
    out = launch(1, tmp_path / "moved", 0, 2, "--resume")  # 0: no --global-batch given
    assert "RESOLVED 1 16 16" in out
    assert_close(weights(tmp_path / "moved"), weights(tmp_path / "whole"))
    # The resumed epoch's sums start from both old ranks' counts: its row is the one-process row.
    assert_rows_close(tmp_path / "moved", tmp_path / "whole")


def rows(run_dir: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_rows_close(a: Path, b: Path) -> None:
    for ra, rb in zip(rows(a), rows(b), strict=True):
        for k in ("train_loss", "train_acc"):
            assert ra[k] == pytest.approx(rb[k], rel=1e-5), (ra["epoch"], k)


@pytest.mark.slow
def test_two_process_free_at_resumes_every_ranks_state(tmp_path):
    """Free AT carries a perturbation per process: killed mid-epoch and resumed under the same
    two processes, every rank continues its own (and its own partial sums and random stream)."""
    launch(2, tmp_path / "whole", 16, 2, "--method", "free-at")
    launch(2, tmp_path / "cut", 16, 2, "--method", "free-at", "--save-every", 2,
           "--stop-after", 6, expect=1)
    ckpt = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    ranks = ckpt["progress"]["ranks"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["method_state"]["delta"],
                                                ranks[1]["method_state"]["delta"])
    # rank 0's perturbation (the top-level method_state) is stored once, not twice
    top, own = ckpt["method_state"]["delta"], ranks[0]["method_state"]["delta"]
    assert top.untyped_storage().data_ptr() == own.untyped_storage().data_ptr()
    assert not torch.equal(ranks[0]["rng"]["torch"], ranks[1]["rng"]["torch"])  # own streams
    launch(2, tmp_path / "cut", 16, 2, "--method", "free-at", "--resume")
    assert_close(weights(tmp_path / "cut"), weights(tmp_path / "whole"))
    assert_rows_close(tmp_path / "cut", tmp_path / "whole")


# ------------------------------------------------------------------- refusals (no processes)
def recorded_run(tmp_path, world=1, batch_size=16, method="natural", method_state=None):
    """A run directory whose last.pt records `world` processes of `batch_size` samples (only
    the keys a resume plan reads; the loop's own checks read the rest)."""
    from aft_fast.io import save_torch
    from aft_fast.models.weights import CHECKPOINT_FORMAT

    out = tmp_path / "run"
    save_torch({"format": CHECKPOINT_FORMAT, "method": method,
                "config": {"batch_size": batch_size, "resolved": {"world_size": world}},
                "method_state": method_state or {}}, out / "last.pt")
    return TrainOptions(out=str(out), resume=True, method=method)


def test_resume_plan_keeps_the_global_batch_or_refuses(tmp_path):
    opts = recorded_run(tmp_path, world=2, batch_size=8)  # recorded before global_batch was
    plan = distributed.plan_batch(opts, Dist(0, 4))
    assert (plan.per_process, plan.global_batch, plan.recorded_world) == (4, 16, 2)
    assert "2 -> 4 processes, 4 samples each (global batch 16 kept)" in plan.note()
    assert distributed.plan_batch(opts, Dist(0, 2)).note() is None
    with pytest.raises(OptionError, match="global batch of 16 does not split evenly over 3 "
                                          "processes.*1, 2, 4, 8, 16") as e:
        distributed.plan_batch(opts, Dist(0, 3))
    assert e.value.option == "resume"
    opts.global_batch = 32
    with pytest.raises(OptionError, match="keeps it: drop --global-batch or pass 16"):
        distributed.plan_batch(opts, Dist(0, 2))


def test_resume_refuses_per_process_method_state_under_another_world_size(tmp_path):
    opts = recorded_run(tmp_path, method="free-at",
                        method_state={"delta": torch.zeros(16, 1, 28, 28)})
    assert distributed.plan_batch(opts, Dist(0, 1)).per_process == 16  # same world: fine
    with pytest.raises(OptionError, match="free-at carries per-process state.*resume it with 1 "
                                          "process"):
        distributed.plan_batch(opts, Dist(0, 2))


def test_fresh_run_splits_the_global_batch():
    opts = TrainOptions(batch_size=32, out="/nonexistent/run")
    assert distributed.plan_batch(opts, Dist(0, 4)).global_batch == 128  # --batch-size per process
    opts.global_batch = 96
    assert distributed.plan_batch(opts, Dist(1, 4)).per_process == 24
    with pytest.raises(OptionError, match="96 does not split evenly over 5 processes") as e:
        distributed.plan_batch(opts, Dist(0, 5))
    assert e.value.flag == "--global-batch"


def bn_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4)))


def test_batchnorm_under_another_world_size_needs_sync_bn_from_the_start():
    changed = dict(per_process=16, global_batch=16, world_size=1, recorded_world=2)  # 2 -> 1
    with pytest.raises(OptionError, match="2 BatchNorm layers.*from 8 to 16 samples"):
        distributed.wrap(bn_net(), Dist(), torch.device("cpu"), BatchPlan(**changed))
    # Frozen statistics, or SyncBatchNorm in both runs: the same function at any world size.
    distributed.wrap(bn_net(), Dist(), torch.device("cpu"), BatchPlan(**changed, bn_frozen=True))
    distributed.wrap(bn_net(), Dist(), torch.device("cpu"),
                     BatchPlan(**changed, sync_bn=True, recorded_sync_bn=True))
    # No BatchNorm at all: nothing per process.
    distributed.wrap(nn.Linear(2, 2), Dist(), torch.device("cpu"), BatchPlan(**changed))


def test_sync_bn_on_cpu_processes_is_refused_before_any_work():
    plan = BatchPlan(8, 16, world_size=2, sync_bn=True)
    with pytest.raises(OptionError, match="SyncBatchNorm runs on GPUs only") as e:
        distributed.wrap(bn_net(), Dist(0, 2), torch.device("cpu"), plan)
    assert e.value.option == "sync_bn"


def test_sync_bn_conversion_keeps_parameters_buffers_and_frozen_layers():
    from aft_fast.train.partial import freeze_batchnorm_stats

    net = bn_net()
    freeze_batchnorm_stats(net[3])  # the inner block's BatchNorm stays in eval mode
    params, keys = list(net.parameters()), list(net.state_dict())
    buffers = [b.data_ptr() for b in net.buffers()]
    assert distributed.convert_sync_batchnorm(net) == 2
    assert isinstance(net[1], nn.SyncBatchNorm) and isinstance(net[3][1], nn.SyncBatchNorm)
    assert all(p is q for p, q in zip(params, net.parameters()))  # the optimizer's tensors
    assert [b.data_ptr() for b in net.buffers()] == buffers and list(net.state_dict()) == keys
    net.train()
    assert net[1].training and not net[3][1].training


def test_sync_bn_and_frozen_statistics_is_a_bad_combination():
    with pytest.raises(OptionError, match="nothing to synchronise") as e:
        TrainOptions(sync_bn=True, freeze_bn_stats=True).check()
    assert e.value.option == "sync_bn"


def test_half_set_torchrun_environment_is_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(OptionError, match="RANK is not: launch the processes with torchrun"):
        distributed.setup(torch.device("cpu"))
