"""torch.distributed, the standard way: under `torchrun` (RANK / WORLD_SIZE / LOCAL_RANK in the
environment) a process group is created (nccl on CUDA, gloo on CPU), the model is wrapped in
DistributedDataParallel (BatchNorm layers optionally made SyncBatchNorm first), each rank reads
its own data shard, metrics are summed across ranks, and only rank 0 writes files and logs.

The global batch is what a run is: `--batch-size` per process, or `--global-batch` split over the
processes. `--resume` keeps the recorded global batch under any world size (the per-process batch
is recomputed), since rank r reads every world_size-th sample of one shuffled order (`Batches`),
so the union of the ranks' batch i is the one-process batch i. Each rank draws its own random
stream (`rank_seed`) and a checkpoint keeps every rank's stream, partial sums and method state,
so a resume under the same world size continues each rank exactly. What a new world size would
change is refused (`plan_batch`, `wrap`): a global batch the processes cannot split evenly, a
method's per-process state (Free AT's perturbation), BatchNorm statistics over a per-process
batch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn

from aft_fast.errors import OptionError


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            t = t.clone()
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def gather(self, obj) -> list | None:
        """Every rank's `obj` on rank 0 (None on the others, and in one process)."""
        if not self.enabled:
            return None
        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out


def rank_seed(seed: int, rank: int) -> int:
    """Rank r's random stream (random starts, augmentation): rank 0 keeps the run's seed, so it
    draws as one process would; every other rank draws its own."""
    return seed + 1_000_003 * rank


def _env_int(name: str, default: str | None = None) -> int:
    value = os.environ.get(name, default)
    if value is None:
        raise OptionError("device", f"WORLD_SIZE={os.environ['WORLD_SIZE']} is set but {name} is "
                          "not: launch the processes with torchrun, which sets RANK, LOCAL_RANK "
                          "and WORLD_SIZE together")
    try:
        return int(value)
    except ValueError:
        raise OptionError("device", f"environment variable {name}={value!r} is not an integer "
                          "(torchrun sets it)") from None


def setup(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the process group torchrun describes; a single process otherwise."""
    world = _env_int("WORLD_SIZE", "1")
    if world <= 1:
        return Dist(), device
    rank, local = _env_int("RANK"), _env_int("LOCAL_RANK", "0")
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise OptionError("device", f"LOCAL_RANK={local} but this node sees "
                              f"{torch.cuda.device_count()} GPU(s): start at most that many "
                              "processes per node (torchrun --nproc-per-node)")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local), device


# ------------------------------------------------------------------------------- batch plan
@dataclass(frozen=True)
class BatchPlan:
    """How one run's global batch is split: `per_process` samples on each of `world_size`
    processes. `recorded_world`/`recorded_sync_bn`: those of the checkpoint a resume continues."""
    per_process: int
    global_batch: int
    world_size: int
    sync_bn: bool = False
    bn_frozen: bool = False
    recorded_world: int | None = None
    recorded_sync_bn: bool = False

    @property
    def world_changed(self) -> bool:
        return self.recorded_world is not None and self.recorded_world != self.world_size

    def note(self) -> str | None:
        """A line for the log when a resume runs under another world size."""
        if not self.world_changed:
            return None
        return (f"resume: {self.recorded_world} -> {self.world_size} processes, "
                f"{self.per_process} samples each (global batch {self.global_batch} kept)")


def _divisors(n: int, limit: int = 8) -> str:
    return ", ".join(str(k) for k in [k for k in range(1, n + 1) if n % k == 0][:limit])


def split_global_batch(global_batch: int, world_size: int, option: str = "global_batch") -> int:
    """Samples per process; `option` "resume": the global batch is the run's, not the user's."""
    if global_batch % world_size:
        fix = "" if option == "resume" else f"pass a multiple of {world_size}, or "
        raise OptionError(option, f"a global batch of {global_batch} does not split evenly over "
                          f"{world_size} processes: {fix}launch a number of processes that "
                          f"divides it ({_divisors(global_batch)}, ...)")
    return global_batch // world_size


def recorded_batch(config: dict) -> tuple[int, int, bool]:
    """(global batch, world size, sync_bn) a run's recorded configuration names. Runs written
    before the global batch was recorded: batch_size per process times the world size."""
    resolved = config.get("resolved") or {}
    world = int(resolved.get("world_size", 1))
    global_batch = resolved.get("global_batch") or int(config.get("batch_size", 0)) * world
    return int(global_batch), world, bool(config.get("sync_bn", False))


def plan_batch(opts, d: Dist) -> BatchPlan:
    """The batch plan of `opts` (a TrainOptions) under `d`. A fresh run: `global_batch` split
    over the processes, else `batch_size` per process. `--resume`: the global batch recorded in
    the run's last.pt, whatever the world size, and a refusal of what cannot continue exactly."""
    common = dict(world_size=d.world_size, sync_bn=bool(getattr(opts, "sync_bn", False)),
                  bn_frozen=bool(getattr(opts, "freeze_bn_stats", False)))
    wanted = getattr(opts, "global_batch", None)
    last = Path(opts.out) / "last.pt"
    if not (opts.resume and last.is_file()):  # a missing last.pt is reported by the run dir
        if wanted is None:
            return BatchPlan(opts.batch_size, opts.batch_size * d.world_size, **common)
        return BatchPlan(split_global_batch(wanted, d.world_size), wanted, **common)
    from aft_fast.models.weights import read_checkpoint

    ckpt = read_checkpoint(last, "resume")
    global_batch, world, sync_bn = recorded_batch(ckpt.get("config") or {})
    if wanted is not None and wanted != global_batch:
        raise OptionError("global_batch", f"the run in {opts.out} trains with a global batch of "
                          f"{global_batch}; a resumed run keeps it: drop --global-batch or pass "
                          f"{global_batch}")
    per_process = split_global_batch(global_batch, d.world_size, "resume")
    plan = BatchPlan(per_process, global_batch, recorded_world=world, recorded_sync_bn=sync_bn,
                     **common)
    state = ckpt.get("method_state") or {}
    if plan.world_changed and any(v is not None for v in state.values()):
        raise OptionError("resume", f"method {ckpt.get('method')} carries per-process state "
                          f"between batches ({', '.join(state)}), saved for {world} process(es) "
                          f"of {global_batch // world} samples: resume it with {world} "
                          "process(es)")
    return plan


# ---------------------------------------------------------------------------------- wrapping
def batchnorm_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _check_batchnorm(model: nn.Module, plan: BatchPlan, device: torch.device) -> None:
    if not plan.sync_bn and not plan.world_changed:
        return
    bns = batchnorm_layers(model)
    if plan.sync_bn and plan.world_size > 1 and device.type != "cuda" and bns:
        raise OptionError("sync_bn", "torch's SyncBatchNorm runs on GPUs only; on CPU "
                          "processes drop --sync-bn (or train on one process)")
    if plan.world_changed and bns and not plan.bn_frozen and not (
            plan.sync_bn and plan.recorded_sync_bn):
        raise OptionError("resume", f"the model's {len(bns)} BatchNorm layers compute batch "
                          f"statistics over each process's samples, so they would change from "
                          f"{plan.global_batch // plan.recorded_world} to {plan.per_process} "
                          f"samples: resume with {plan.recorded_world} process(es), or run with "
                          "--sync-bn from the start (statistics over the global batch at any "
                          "world size)")


def wrap(model: nn.Module, d: Dist, device: torch.device,
         plan: BatchPlan | None = None) -> nn.Module:
    """DistributedDataParallel around `model` (unchanged for one process). With `plan.sync_bn`,
    its BatchNorm layers first become SyncBatchNorm in place (same parameters and buffers, so the
    optimizer, the attacks and the checkpoints see the same tensors and state_dict keys)."""
    if plan is not None:
        _check_batchnorm(model, plan, device)
    if not d.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    if plan is not None and plan.sync_bn:
        convert_sync_batchnorm(model)
    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def convert_sync_batchnorm(model: nn.Module) -> int:
    """Replace every BatchNorm layer inside `model` by a SyncBatchNorm sharing its parameters,
    buffers and train/eval behaviour; returns how many. (torch's converter returns a new module
    for a top-level BatchNorm only; here the children are replaced in place.)"""
    count = 0
    for name, child in list(model.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(
                child, nn.SyncBatchNorm):
            sync = nn.SyncBatchNorm.convert_sync_batchnorm(child)
            if "train" in vars(child):  # a per-instance train() (e.g. frozen statistics) stays
                sync.train = vars(child)["train"].__func__.__get__(sync)
                sync.train(child.training)
            setattr(model, name, sync)
            count += 1
        else:
            count += convert_sync_batchnorm(child)
    return count


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
