"""Nothing lost: a refused --overwrite keeps the old run; a run's args.yaml repeats the run
without replacing it; a run directory is locked by the process running it; --resume refuses
options that would make it another run; a full disk is one line and last.pt survives."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from aft_fast.errors import OptionError
from aft_fast.train.run import train
from aft_fast.train.checkpoint import read_checkpoint


def _small_cnn_weights(path):
    from aft_fast.models import small_cnn
    torch.save(small_cnn(10, 1).state_dict(), path)
    return str(path)


def test_a_refused_overwrite_keeps_the_old_run(synthetic_opts, tmp_path):
    train(synthetic_opts(tmp_path, "run", method="natural", epochs=1))
    before = {f: (tmp_path / "run" / f).read_bytes() for f in ("last.pt", "args.yaml")}
    weights = _small_cnn_weights(tmp_path / "small_cnn.pt")
    with pytest.raises(OptionError, match="another architecture"):  # found after the data is read
        train(synthetic_opts(tmp_path, "run", method="natural", epochs=1, overwrite=True,
                             arch="preact_resnet18", weights=weights))
    assert {f: (tmp_path / "run" / f).read_bytes() for f in before} == before
    assert not (tmp_path / "run" / ".lock").exists()


def test_config_of_a_runs_args_yaml_repeats_it_elsewhere(synthetic_opts, tmp_path, monkeypatch):
    from aft_fast.cli import main

    train(synthetic_opts(tmp_path, "run", method="natural", epochs=1))
    train(synthetic_opts(tmp_path, "run", method="natural", epochs=1, overwrite=True))
    before = (tmp_path / "run" / "last.pt").read_bytes()
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["train", "--config", "run/args.yaml", "--out", "again"])
    assert result.exit_code == 0, result.output
    assert "its out, overwrite not replayed" in result.output
    assert (tmp_path / "run" / "last.pt").read_bytes() == before  # the run is untouched
    assert (tmp_path / "again" / "last.pt").is_file()
    result = CliRunner().invoke(main, ["train", "--config", "run/args.yaml"])  # no --out:
    assert (tmp_path / "run" / "last.pt").read_bytes() == before  # the default, not the run


def test_a_run_directory_is_locked_by_a_live_process_and_freed_by_a_dead_one(synthetic_opts,
                                                                             tmp_path, capsys):
    train(synthetic_opts(tmp_path, "run", method="natural", epochs=1))
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lock = {"pid": holder.pid, "host": socket.gethostname(), "since": "then"}
        (tmp_path / "run" / ".lock").write_text(json.dumps(lock))
        for kw in ({"overwrite": True}, {"resume": True, "epochs": 2}):
            with pytest.raises(OptionError, match=f"in use by process {holder.pid} on "):
                train(synthetic_opts(tmp_path, "run", method="natural", **{"epochs": 1, **kw}))
        assert read_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 0
    finally:
        holder.kill()
        holder.wait()
    train(synthetic_opts(tmp_path, "run", method="natural", epochs=2, resume=True))  # crashed
    assert f"(pid {holder.pid}, since then) is gone" in capsys.readouterr().out
    assert not (tmp_path / "run" / ".lock").exists()
    (tmp_path / "run" / ".lock").write_text(json.dumps({**lock, "host": "elsewhere"}))
    with pytest.raises(OptionError, match="if that process is gone, delete .*\\.lock"):
        train(synthetic_opts(tmp_path, "run", method="natural", epochs=3, resume=True))


def test_resume_refuses_options_that_make_another_run(synthetic_opts, tmp_path):
    train(synthetic_opts(tmp_path, "run", method="pgd-at", epochs=1))
    with pytest.raises(OptionError) as err:
        train(synthetic_opts(tmp_path, "run", method="fast-at", eps=0.2, lr=0.5, epochs=2,
                             train_images=64, resume=True))
    text = str(err.value)
    assert text.startswith("--resume: the run in ")
    for piece in ("--method 'fast-at' (the run: 'pgd-at')", "--eps 0.2 (the run: 0.1)",
                  "--lr 0.5 (the run: default)", "--train-images 64 (the run: default)"):
        assert piece in text, text
    assert read_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 0
    # how it runs and how long may change
    train(synthetic_opts(tmp_path, "run", method="pgd-at", epochs=2, workers=0, log_every=7,
                         resume=True))
    assert read_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1


def test_a_full_disk_mid_run_is_one_line_and_last_pt_survives(small_synthetic, tmp_path,
                                                              monkeypatch):
    import aft_fast.io as io
    from aft_fast.cli import main

    real, writes = io.tempfile.mkstemp, []

    def full_after_the_first_epoch(prefix, suffix, dir):
        writes.append(prefix)
        if prefix == ".last.pt." and writes.count(prefix) >= 3:  # the start, epoch 1, then full
            return os.open("/dev/full", os.O_WRONLY), str(tmp_path / "never.tmp")
        return real(prefix=prefix, suffix=suffix, dir=dir)

    monkeypatch.setattr(io.tempfile, "mkstemp", full_after_the_first_epoch)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "train", "--method", "natural", "--data", "synthetic", "--epochs", "2", "--batch-size",
        "32", "--eval-max-batches", "1", "--device", "cpu", "--quiet", "--out", str(out)])
    assert result.exit_code == 1, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"{out} is full: last.pt could not be written" in lines[0], lines
    assert "--resume" in lines[0]
    assert read_checkpoint(out / "last.pt")["epoch"] == 0  # the previous last.pt
    assert not (out / ".lock").exists()
