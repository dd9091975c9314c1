"""The CLI through click's CliRunner: a tiny run, eval on its checkpoint, schedule, info, errors."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from aft_fast.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    result = CliRunner().invoke(main, [
        "train", "--method", "natural", "--data", "mnist5k", "--epochs", "1", "--batch-size", "256",
        "--eval-max-batches", "1", "--eval-steps", "2", "--eps", "0.1", "--out", str(out),
        "--device", "cpu", "--quiet", "--optimizer", "adam", "--lr", "0.002"])
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_a_run(run_dir):
    for f in ("args.yaml", "metrics.jsonl", "summary.csv", "last.pt", "best.pt"):
        assert (run_dir / f).exists()
    row = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert row["epoch"] == 0 and row["train_acc"] > 0.2


def test_eval_table_and_json(run_dir, tmp_path):
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(main, [
        "eval", "--checkpoint", str(run_dir / "best.pt"), "--eps", "8/255", "--steps", "3",
        "--restarts", "2", "--max-batches", "1", "--batch-size", "100", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["settings"]["eps"] == pytest.approx(8 / 255) and report["n"] == 100
    assert report["robust_acc"] <= report["clean_acc"]
    assert "device" in report["environment"] and "| clean |" not in result.output.split("\n")[2]


def test_config_yaml_fills_defaults_and_flags_win(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("method: natural\nepochs: 1\neps: 0.1\nbatch-size: 512\neval_max_batches: 1\n"
                   "eval_steps: 1\nquiet: true\ndevice: cpu\n")
    out = tmp_path / "r"
    result = CliRunner().invoke(main, ["train", "--config", str(cfg), "--out", str(out), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    import yaml
    args = yaml.safe_load((out / "args.yaml").read_text())
    assert args["method"] == "natural" and args["batch_size"] == 512


def test_config_unknown_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("methd: natural\n")
    result = CliRunner().invoke(main, ["train", "--config", str(cfg)])
    assert result.exit_code != 0 and "unknown option(s) methd" in result.output


def test_schedule_plot(tmp_path):
    png = tmp_path / "lr.png"
    result = CliRunner().invoke(main, ["schedule", "step-lr", "--epochs", "10", "--lr", "0.1",
                                       "--params", "{every: 2, gamma: 0.5}", "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert png.stat().st_size > 1000 and "lr 0.05" in result.output


def test_wrong_class_count_names_the_fix(tmp_path):
    import torch

    from aft_fast.models import build
    torch.save(build("small_cnn", 5, in_channels=1).model.state_dict(), tmp_path / "five.pt")
    result = CliRunner().invoke(main, ["train", "--method", "aft", "--weights",
                                       str(tmp_path / "five.pt"), "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and "--replace-head" in result.output, result.output


def test_train_json_carries_the_environment(run_dir):
    # The module-scoped run wrote no JSON; a resume of the finished run (its own settings, from
    # its args.yaml) does no epochs.
    out = run_dir.parent / "summary.json"
    result = CliRunner().invoke(main, [
        "train", "--config", str(run_dir / "args.yaml"), "--out", str(run_dir), "--resume",
        "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert "device" in report["environment"] and report["best"]["epoch"] == 0


def test_info_lists_kernels(tmp_path):
    out = tmp_path / "info.json"
    result = CliRunner().invoke(main, ["info", "--json", str(out)])
    assert result.exit_code == 0
    build = json.loads(out.read_text())["build"]
    if build["compiled"]:
        assert "CPU kernels: yes" in result.output
        assert ("CUDA kernels: yes" in result.output) == build["cuda_kernels"]


CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def test_configs_exist():
    names = {p.name for p in CONFIGS}
    assert {"imagenet_resnet50_aft_eps2.yaml", "imagenet_resnet50_aft_eps4.yaml",
            "cifar10_wrn28_10_aft.yaml", "mnist5k_aft.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_loads_through_config_option(path):
    import yaml

    from aft_fast.commands.train import train_command
    from aft_fast.train.options import TrainOptions

    keys = {k.replace("-", "_") for k in yaml.safe_load(path.read_text())}
    assert keys <= TrainOptions.names(), keys - TrainOptions.names()
    # click resolves the file exactly as `aft-fast train --config PATH` would (without running).
    ctx = train_command.make_context("train", ["--config", str(path)])
    opts = TrainOptions(**{k: v for k, v in ctx.params.items() if k != "json_path"})
    assert opts.method == "aft" and opts.eps > 0 and opts.weights
    if "imagenet" in path.name:
        eps = 2 / 255 if "eps2" in path.name else 4 / 255
        assert opts.eps == pytest.approx(eps) and opts.arch == "resnet50"
        assert (opts.amp, opts.channels_last, opts.loader) == ("bf16", True, "dali")
        assert opts.schedule == "slow-start-fast-decay"
    if "cifar10" in path.name:
        assert opts.eps == pytest.approx(8 / 255) and opts.arch == "wrn28_10"


@pytest.mark.slow
@pytest.mark.fashion
def test_demo_runs_end_to_end_and_prints_the_table(tmp_path):
    out = tmp_path / "demo.json"
    result = CliRunner().invoke(main, [
        "demo", "--out", str(tmp_path / "runs"), "--pretrain-epochs", "1", "--aft-epochs", "1",
        "--steps", "1", "--train-images", "1000", "--test-images", "250", "--device", "cpu",
        "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "| natural |" in result.output and "| AFT (from natural) |" in result.output
    assert "both trained in fp32, " in result.output or "both trained in bf16, " in result.output
    rows = json.loads(out.read_text())["rows"]
    assert [r["model"] for r in rows] == ["natural", "AFT (from natural)"]
    assert all(0 <= r["pgd_acc"] <= r["clean_acc"] <= 1 and r["n"] == 250 for r in rows)


def test_a_runs_args_yaml_is_a_valid_config(tmp_path):
    """args.yaml records the resolved configuration; fed back with --config it reruns the job."""
    first_dir = tmp_path / "first"
    result = CliRunner().invoke(main, [
        "train", "--method", "natural", "--epochs", "1", "--batch-size", "512", "--eps", "0.1",
        "--eval-max-batches", "1", "--eval-steps", "1", "--device", "cpu", "--quiet",
        "--out", str(first_dir)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["train", "--config", str(first_dir / "args.yaml"),
                                       "--out", str(tmp_path / "again")])
    assert result.exit_code == 0, result.output
    import yaml
    first = yaml.safe_load((first_dir / "args.yaml").read_text())
    again = yaml.safe_load((tmp_path / "again" / "args.yaml").read_text())
    assert {k: v for k, v in first.items() if k != "out"} == {k: v for k, v in again.items() if k != "out"}


def test_every_command_reports_an_option_error_as_its_flag():
    import click

    from aft_fast.commands.common import Group
    from aft_fast.errors import OptionError

    @click.command("late")  # a command added later, by anyone, without a decorator
    def late():
        raise OptionError("batch_size", "must be >= 1, got 0")

    @click.group("nested")
    def nested():
        pass

    nested.add_command(click.command("inner")(lambda: (_ for _ in ()).throw(ValueError("plain"))))
    group = Group("g")
    group.add_command(late)
    group.add_command(nested)
    result = CliRunner().invoke(group, ["late"])
    assert result.exit_code == 2 and "Invalid value for --batch-size: must be >= 1" in result.output
    result = CliRunner().invoke(group, ["nested", "inner"])
    assert result.exit_code == 2 and "Error: plain" in result.output


def test_train_flags_are_the_options_fields_and_check_refuses_before_work():
    from dataclasses import fields

    from aft_fast.commands.train import train_command
    from aft_fast.errors import OptionError
    from aft_fast.train.options import TrainOptions

    assert {f.name for f in fields(TrainOptions)} <= {p.name for p in train_command.params}
    TrainOptions().check()  # the defaults are valid
    for bad in (dict(eps=2), dict(eval_batch_size=0), dict(method="natural", replays=2),
                dict(schedule="constant", schedule_params={"gamma": 0.5})):
        with pytest.raises(OptionError) as info:
            TrainOptions(**bad).check()
        assert info.value.option in bad
