"""Non-finite losses: found at the step where they appear, without a host sync per step.

Every weight update records on the device whether its loss (and, when skipping, its gradients)
was finite, and the first global step that was not. The loop reads that record when it logs,
before it writes a checkpoint and at the end of each epoch (one sync it makes anyway), so a
report names the exact step however late it is read. Policies (`--on-nonfinite`):

- ``stop`` (default): the run stops with `NonFiniteLoss` naming the step; no checkpoint is
  written after it, so `last.pt`/`best.pt` keep the last finite weights.
- ``skip``: the update of a non-finite batch is not applied (parameters, optimizer state and
  BatchNorm statistics stay as they were) and the batch is counted (`skipped_steps` in the
  metrics). With a fused optimizer (what `train` builds under skip) the skip happens on the
  device through the optimizer's `found_inf` input, as `torch.amp.GradScaler` does; any other
  optimizer needs one host sync per update to decide. Under fp16 the GradScaler also skips
  steps whose scaled gradients overflowed, as it always does (not counted: that is its normal
  loss-scale search).
"""
from __future__ import annotations

import torch

from aft_fast.errors import check_choice
from aft_fast.policy import NONFINITE_POLICIES


class NonFiniteLoss(RuntimeError):
    """The training loss (or, `what="weights"`, the weights) became NaN or infinite under
    `--on-nonfinite stop`. `step` is the global step (batch index over the whole run)."""

    def __init__(self, step: int, n_batches: int, count: int, what: str = "loss"):
        self.step, self.count, self.what = step, count, what
        self.epoch, self.batch = divmod(step, max(n_batches, 1))
        since = f"; {count} non-finite update(s) since" if count > 1 else ""
        super().__init__(
            f"non-finite training {what} at epoch {self.epoch + 1}, batch {self.batch + 1} "
            f"(global step {step}{since}). No checkpoint was written after it: last.pt holds "
            "the last finite weights. Lower --lr, try --amp none, or pass --on-nonfinite skip "
            "to skip such batches.")


class NonFiniteMonitor:
    """On-device record of non-finite updates: their count and the first global step."""

    def __init__(self, device: torch.device, policy: str = "stop"):
        check_choice("on_nonfinite", policy, NONFINITE_POLICIES)
        self.policy, self.device = policy, device
        self.first = torch.full((), -1, dtype=torch.int64, device=device)
        self.count = torch.zeros((), dtype=torch.int64, device=device)

    @property
    def skip(self) -> bool:
        return self.policy == "skip"

    def record(self, bad: torch.Tensor, step: int) -> None:
        """Note a 0-dim bool `bad` of global step `step` (device ops only)."""
        self.first = torch.where(bad & (self.first < 0), step, self.first)
        self.count += bad

    def read(self) -> tuple[int, int]:
        """(first bad global step or -1, number of bad updates): one host sync."""
        first, count = torch.stack([self.first, self.count]).tolist()
        return int(first), int(count)

    def state_dict(self) -> dict:
        first, count = self.read()
        return {"first": first, "count": count}

    def load_state_dict(self, state: dict) -> None:
        self.first.fill_(state.get("first", -1))
        self.count.fill_(state.get("count", 0))


def bad_update(loss: torch.Tensor, params, check_grads: bool) -> torch.Tensor:
    """0-dim bool on the device: the loss (or, with `check_grads`, a gradient) is not finite."""
    bad = ~torch.isfinite(loss.detach())
    if check_grads:
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            bad = bad | ~torch.isfinite(torch.nn.utils.get_total_norm(grads, float("inf")))
    return bad


class SkipGuard:
    """Skip mode's snapshot of what an update changes besides parameters and optimizer state:
    the module's buffers (BatchNorm statistics), restored where the update turns out bad."""

    def __init__(self, model: torch.nn.Module):
        self.buffers = [b for b in model.buffers()]
        self.saved = [b.clone() for b in self.buffers]

    def restore_if(self, bad: torch.Tensor) -> None:
        with torch.no_grad():
            for b, s in zip(self.buffers, self.saved):
                b.copy_(torch.where(bad, s, b))


def step_unless(optimizer, bad: torch.Tensor, scaler) -> None:
    """`scaler.step(optimizer)` unless `bad`: on the device when the optimizer takes a
    `found_inf` input (fused optimizers) or the scaler decides (fp16), else one host sync."""
    if scaler.is_enabled():  # the GradScaler skips non-finite gradients itself
        scaler.step(optimizer)
    elif getattr(optimizer, "_step_supports_amp_scaling", False):
        optimizer.grad_scale, optimizer.found_inf = None, bad.float()
        try:
            optimizer.step()
        finally:
            del optimizer.grad_scale, optimizer.found_inf
    elif not bad.item():
        optimizer.step()
