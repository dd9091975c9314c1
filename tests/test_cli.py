"""The CLI through click's CliRunner: a tiny run, eval on its checkpoint, schedule, info, errors."""
import json
import shlex
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


# Every user input the CLI checks before work: the command (FILES/ are made by `bad_files`), the
# flag the error names, and a fragment of its message. README's "Bad input" table lists these
# rows (`test_readme_bad_input_table_lists_the_tested_rows`).
BAD_INPUTS = [
    ("train --eps 2", "--eps", "did you mean 2/255?"),
    ("train --eps -0.1", "--eps", "must be in [0, 1]"),
    ("train --eps eight", "--eps", "a fraction like 8/255"),
    ("train --alpha 3", "--alpha", "did you mean 3/255?"),
    ("train --steps -1", "--steps", "must be >= 0"),
    ("train --batch-size 0", "--batch-size", "must be >= 1"),
    ("train --eval-batch-size 0", "--eval-batch-size", "must be >= 1"),
    ("train --epochs 0", "--epochs", "must be > 0"),
    ("train --lr 0", "--lr", "must be > 0"),
    ("train --momentum -0.5", "--momentum", "must be >= 0"),
    ("train --workers -1", "--workers", "must be >= 0"),
    ("train --log-every 0", "--log-every", "must be >= 1"),
    ("train --method magic", "--method", "is not one of"),
    ("train --optimizer rmsprop", "--optimizer", "is not one of"),
    ("train --amp fp8", "--amp", "is not one of"),
    ("train --schedule-params 'not yaml: ['", "--schedule-params", "expected a YAML mapping"),
    ("train --schedule multistep --schedule-params '{every: 2}'", "--schedule-params",
     "do not fit schedule multistep"),
    ("train --method natural --replays 4", "--replays", "only free-at replays each batch"),
    ("train --method pgd-at --co-guard", "--co-guard", "use it with --method fast-at"),
    ("train --method natural --alpha 0.01", "--alpha", "natural training runs no attack"),
    ("train --replace-head", "--replace-head", "pass --weights PATH as well"),
    ("train --resume --overwrite", "--overwrite", "pass one of them"),
    ("train --method aft", "--weights", "fine-tunes a pretrained model"),
    ("train --method aft --weights /no/such.pt", "--weights", "no such file"),
    ("train --method natural --data /no/such/folder", "--data", "must be one of"),
    ("train --method natural --device gpu", "--device", "is not a device"),
    ("train --config FILES/absent.yaml", "--config", "no such file"),
    ("train --config FILES/typo.yaml", "--config", "unknown option(s) methd"),
    ("train --config FILES/broken.yaml", "--config", "is not valid YAML"),
    ("eval --checkpoint FILES/absent.pt --eps 0.1", "--checkpoint", "no such file"),
    ("eval --checkpoint FILES/plain.pt --eps 0.1", "--checkpoint", "not an aft_fast checkpoint"),
    ("eval --checkpoint FILES/newer.pt --eps 0.1", "--checkpoint", "upgrade aft_fast to load it"),
    ("eval --checkpoint FILES/absent.pt --eps 8", "--eps", "did you mean 8/255?"),
    ("eval --checkpoint FILES/absent.pt --eps 0.1 --restarts 0", "--restarts", "must be >= 1"),
    ("eval --checkpoint FILES/absent.pt --eps 0.1 --aa-queries 0", "--aa-queries", "must be >= 1"),
    ("eval --checkpoint FILES/absent.pt --eps 0.1 --batch-size 0", "--batch-size", "must be >= 1"),
    ("bench --steps 0", "--steps", "must be >= 1"),
    ("bench --methods pgd-at,natural", "--methods", "must be one of pgd-at, free-at"),
    ("bench --epochs aft=0", "--epochs", "must be > 0"),
    ("schedule cyclic --params '{every: 2}'", "--params", "do not fit schedule cyclic"),
]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    import torch

    from aft_fast.models import build
    from aft_fast.models.weights import CHECKPOINT_FORMAT

    d = tmp_path_factory.mktemp("bad")
    (d / "typo.yaml").write_text("methd: natural\n")
    (d / "broken.yaml").write_text("eps: [0.1\n")
    state = build("small_cnn", 10, in_channels=1).model.state_dict()
    torch.save(state, d / "plain.pt")
    newer = CHECKPOINT_FORMAT.rsplit("/", 1)[0] + "/99"
    torch.save({"format": newer, "model": state}, d / "newer.pt")
    return d


@pytest.mark.parametrize("command, flag, message", BAD_INPUTS, ids=[r[0] for r in BAD_INPUTS])
def test_bad_input_is_refused_naming_its_flag(command, flag, message, bad_files, tmp_path):
    args = shlex.split(command.replace("FILES", str(bad_files)))
    if args[0] == "train":  # never the default runs/aft, should a row's check ever be lost
        args += ["--out", str(tmp_path / "run")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    error = result.output[result.output.index("Error:"):]
    assert flag in error and message in error, error
    assert not (tmp_path / "run" / "last.pt").exists()  # refused before training


def test_readme_bad_input_table_lists_the_tested_rows():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    rows = {line.split("`")[1] for line in readme.splitlines() if line.startswith("| `aft-fast ")}
    tested = {"aft-fast " + command.replace("FILES/", "") for command, _, _ in BAD_INPUTS}
    assert tested <= rows, f"README's bad-input table lacks: {sorted(tested - rows)}"


def test_wrong_class_count_names_the_fix(tmp_path):
    import torch

    from aft_fast.models import build
    torch.save(build("small_cnn", 5, in_channels=1).model.state_dict(), tmp_path / "five.pt")
    result = CliRunner().invoke(main, ["train", "--method", "aft", "--weights",
                                       str(tmp_path / "five.pt"), "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and "--replace-head" in result.output, result.output


def test_train_json_carries_the_environment(run_dir):
    # The module-scoped run wrote no JSON; a resume of the finished run does no epochs.
    out = run_dir.parent / "summary.json"
    result = CliRunner().invoke(main, [
        "train", "--method", "natural", "--data", "mnist5k", "--epochs", "1", "--out", str(run_dir),
        "--resume", "--device", "cpu", "--quiet", "--eval-max-batches", "1", "--json", str(out)])
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
    from aft_fast.train import TrainOptions

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
def test_demo_runs_end_to_end_and_prints_the_table(tmp_path):
    out = tmp_path / "demo.json"
    result = CliRunner().invoke(main, [
        "demo", "--out", str(tmp_path / "runs"), "--pretrain-epochs", "1", "--aft-epochs", "1",
        "--steps", "1", "--device", "cpu", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "| natural |" in result.output and "| AFT (from natural) |" in result.output
    rows = json.loads(out.read_text())["rows"]
    assert [r["model"] for r in rows] == ["natural", "AFT (from natural)"]
    assert all(0 <= r["pgd_acc"] <= r["clean_acc"] <= 1 and r["n"] == 1000 for r in rows)


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
