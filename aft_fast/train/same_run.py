"""What `--resume` may change. A resumed run continues the run in `--out`: every option that
defines what that run is (method, ε, LR, schedule, batch, data, subset, model, seed, per-epoch
evaluation that picks best.pt, ...) must be the one recorded in its last.pt, or the resume is
refused with the list of differences. Only how it runs, and how long, may differ:"""
from __future__ import annotations

from aft_fast.errors import OptionError

MAY_CHANGE = {
    "epochs": "more (or fewer) epochs: the schedule is a function of the fraction of the run",
    "device": "another device of the same kind of work (cpu, cuda:N)",
    "workers": "loader processes", "loader": "pytorch or dali: the same images",
    "check_files": "the pre-flight file check", "eval_batch_size": "evaluation batch size",
    "channels_last": "memory format", "compile": "torch.compile",
    "log_every": "logging", "quiet": "logging", "tensorboard": "logging",
    "save_every": "mid-epoch checkpoints",
    "on_nonfinite": "stop or skip after a non-finite loss (a run stopped by one may go on "
                    "skipping)",
    "weights": "read only when a run starts; a resumed run continues from last.pt's weights",
    "allow_scratch": "a permission, not a setting",
    "global_batch": "kept from the run's last.pt under any number of processes; a different "
                    "value is refused by `distributed.plan_batch`",
    "test_each_epoch": "a reported column; the training and best.pt are the same",
    "out": "the run's folder itself", "resume": "", "overwrite": "",
}


def differences(recorded: dict, options: dict) -> list[str]:
    """`--flag value (the run: value)` for each option that defines the run and differs; an
    option the recorded configuration predates is not compared."""
    def shown(v):
        return "default" if v is None else repr(v)

    return [f"--{k.replace('_', '-')} {shown(options[k])} (the run: {shown(recorded[k])})"
            for k in options if k not in MAY_CHANGE and k in recorded
            and options[k] != recorded[k]]


def check_same_run(recorded: dict, options: dict, out) -> None:
    """Refuse a resume whose options define another run than the one recorded."""
    diff = differences(recorded or {}, options)
    if diff:
        may = ", ".join(k.replace("_", "-") for k, why in MAY_CHANGE.items() if why)
        raise OptionError("resume", f"the run in {out} was started with other settings: "
                          f"{'; '.join(diff)}. A resumed run keeps what defines it: drop these "
                          "options or pass the run's values (its args.yaml), or start a new run "
                          f"in another --out (only these may differ: {may})")
