"""Preemption and crashes: SIGTERM/SIGINT checkpoint mid-epoch and exit 128 + signal; --save-every;
kill -9 at random moments never leaves the run without a loadable checkpoint, and --resume ends
bitwise equal to an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from aft_fast.train.run import train
from aft_fast.train.checkpoint import read_checkpoint
from aft_fast.train.preemption import Preempted, StopRequest

TIMING = {"epoch_seconds", "images_per_second", "attack_ms_per_iter", "eval_seconds"}


def same_weights(a: Path, b: Path) -> bool:
    ka, kb = read_checkpoint(a)["model"], read_checkpoint(b)["model"]
    return ka.keys() == kb.keys() and all(torch.equal(ka[k], kb[k]) for k in ka)


def rows(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def stop_then_resume(synthetic_opts, tmp_path, monkeypatch, *, at_step=5, **kw) -> dict:
    """Train `kw` straight through (tmp_path/straight) and again stopped by SIGTERM during
    global step `at_step` (default: epoch 2, batch 2 of 4) then resumed (tmp_path/stopped);
    asserts both end bitwise alike (weights, metrics rows). Returns the stopped run's last.pt
    as it was at the stop."""
    train(synthetic_opts(tmp_path, "straight", **kw))
    with monkeypatch.context() as m:
        signal_at_step(m, at_step)
        with pytest.raises(Preempted):
            train(synthetic_opts(tmp_path, "stopped", **kw))
    at_stop = read_checkpoint(tmp_path / "stopped" / "last.pt")
    train(synthetic_opts(tmp_path, "stopped", resume=True, **kw))
    assert same_weights(tmp_path / "straight" / "last.pt", tmp_path / "stopped" / "last.pt")
    assert rows(tmp_path / "straight") == rows(tmp_path / "stopped")
    return at_stop


def signal_at_step(monkeypatch, step: int, signum=signal.SIGTERM):
    """Send `signum` to this process while the training step `step` (global) runs."""
    from aft_fast.train.update import Trainer
    real, seen = Trainer.update, [0]

    def update(self, *args, **kw):
        if self.step_index == step and not seen[0]:
            seen[0] = 1
            os.kill(os.getpid(), signum)
        return real(self, *args, **kw)

    monkeypatch.setattr(Trainer, "update", update)


@pytest.mark.parametrize("method", ["pgd-at", "free-at"])
def test_sigterm_checkpoints_mid_epoch_and_resumes_exactly(synthetic_opts, tmp_path, monkeypatch,
                                                           method):
    kw = dict(method=method, epochs=2, steps=1, replays=2 if method == "free-at" else None)
    train(synthetic_opts(tmp_path, "straight", **kw))
    with monkeypatch.context() as m:
        signal_at_step(m, 5)  # epoch 2, batch 2 of 4
        with pytest.raises(Preempted) as stop:
            train(synthetic_opts(tmp_path, "stopped", **kw))
    assert stop.value.code == 128 + signal.SIGTERM == 143
    ckpt = read_checkpoint(tmp_path / "stopped" / "last.pt")
    assert (ckpt["progress"]["epoch"], ckpt["progress"]["batch"], ckpt["epoch"]) == (1, 2, 0)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone again
    summary = train(synthetic_opts(tmp_path, "stopped", resume=True, **kw))
    assert same_weights(tmp_path / "straight" / "last.pt", tmp_path / "stopped" / "last.pt")
    assert rows(tmp_path / "straight") == rows(tmp_path / "stopped")  # the resumed epoch's row too
    assert [r["epoch"] for r in summary["rows"]] == [0, 1]


def test_sigterm_during_evaluation_interrupts_it_and_the_resume_redoes_it(synthetic_opts,
                                                                          tmp_path, monkeypatch):
    """A scheduler's SIGKILL follows SIGTERM within its grace period: the evaluation stops before
    its next batch, last.pt holds the epoch's training, and --resume evaluates it again."""
    import aft_fast.train.loop as loop
    from aft_fast.evaluate import accuracy
    real, batches = loop.evaluate_epoch, []

    def signalled(*args, stop=None, **kw):
        def asked(i):
            batches.append(i)
            if len(batches) == 2:  # asked before batch 0, then inside its attack (first step)
                os.kill(os.getpid(), signal.SIGTERM)
            return stop(i)
        return real(*args, stop=asked, **kw)

    kw = dict(method="pgd-at", epochs=2, eval_max_batches=3, steps=1)
    train(synthetic_opts(tmp_path, "straight", **kw))
    with monkeypatch.context() as m:
        m.setattr(loop, "evaluate_epoch", signalled)
        with pytest.raises(Preempted):
            train(synthetic_opts(tmp_path, "run", **kw))
    assert len(batches) == 2  # not the attack's remaining steps, nor the remaining batches
    ckpt = read_checkpoint(tmp_path / "run" / "last.pt")
    assert (ckpt["progress"]["epoch"], ckpt["progress"]["batch"], ckpt["epoch"]) == (0, 4, -1)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # no row of a half evaluation
    assert accuracy  # the interruption is accuracy()'s `stop`
    train(synthetic_opts(tmp_path, "run", resume=True, **kw))
    assert same_weights(tmp_path / "straight" / "last.pt", tmp_path / "run" / "last.pt")
    assert rows(tmp_path / "straight") == rows(tmp_path / "run")


def test_cli_exits_with_130_on_sigint_and_a_second_sigint_interrupts(synthetic_opts, tmp_path,
                                                                     monkeypatch):
    from aft_fast.cli import main

    signal_at_step(monkeypatch, 1, signal.SIGINT)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "train", "--method", "natural", "--data", "synthetic", "--epochs", "1", "--batch-size",
        "32", "--eval-max-batches", "1", "--device", "cpu", "--quiet", "--out", str(out)])
    assert result.exit_code == 130, result.output
    assert read_checkpoint(out / "last.pt")["progress"]["batch"] == 2
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_save_every_writes_resumable_mid_epoch_checkpoints(synthetic_opts, tmp_path, monkeypatch):
    import aft_fast.train.run_dir as run_dir
    positions = []
    real = run_dir.save_checkpoint

    def record(path, **kw):
        positions.append((path.name, kw["progress"]["epoch"], kw["progress"]["batch"]))
        return real(path, **kw)

    monkeypatch.setattr(run_dir, "save_checkpoint", record)
    train(synthetic_opts(tmp_path, "run", method="natural", epochs=2, save_every=3))
    # The start, steps 3 and 6 (global) mid-epoch, and each epoch's end (best.pt, last.pt).
    assert [p for p in positions if p[0] == "last.pt"] == [
        ("last.pt", 0, 0), ("last.pt", 0, 3), ("last.pt", 1, 0), ("last.pt", 1, 2),
        ("last.pt", 2, 0)]


def test_resume_cleans_temporaries_of_a_killed_write(synthetic_opts, tmp_path):
    train(synthetic_opts(tmp_path, "run", method="natural", epochs=1))
    (tmp_path / "run" / ".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    train(synthetic_opts(tmp_path, "run", method="natural", epochs=2, resume=True))
    assert not list((tmp_path / "run").glob(".*.tmp"))


@pytest.mark.slow
def test_kill_9_at_20_random_moments(tmp_path):
    """A run killed with SIGKILL at 20 random moments (start-up, steps, checkpoint writes,
    evaluation, tables) and resumed each time ends with the weights of an uninterrupted run."""
    harness = Path(__file__).with_name("kill_harness.py")
    proc = subprocess.run([sys.executable, str(harness), str(tmp_path), "20", "7"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["final"] == 0 and len(report["statuses"]) == 20
    assert sum(s == -signal.SIGKILL for s in report["statuses"]) >= 15  # killed, not finished
    had_checkpoint = False
    for k in range(20):
        snap = tmp_path / "kills" / str(k)
        if not (snap / "last.pt").exists():
            assert not had_checkpoint, f"kill {k}: last.pt disappeared"
            continue
        had_checkpoint = True
        last = read_checkpoint(snap / "last.pt")  # never torn
        if (snap / "metrics.jsonl").exists():
            table = [json.loads(line) for line in (snap / "metrics.jsonl").read_text().splitlines()]
            assert last["epoch"] >= table[-1]["epoch"], k  # the tables never run ahead
            best_row = max(reversed(table), key=lambda r: r["val_robust_acc"])  # latest of ties
            assert read_checkpoint(snap / "best.pt")["best"]["epoch"] >= best_row["epoch"], k
    assert had_checkpoint
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert same_weights(straight / "last.pt", killed / "last.pt")
    assert same_weights(straight / "best.pt", killed / "best.pt")
    assert rows(straight) == rows(killed)
    assert not list(killed.glob(".*.tmp"))
