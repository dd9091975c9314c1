"""The bad-input table (README.md, "Bad input"): every row is one user input that is checked, run
through the CLI (click's CliRunner) or the library, and the error it must give, naming the option.
Each fails before any training step. `python tests/test_bad_input.py` prints the table."""
from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
from click.testing import CliRunner

from aft_fast import distributed
from aft_fast.cli import main
from aft_fast.errors import OptionError
from aft_fast.train.options import TrainOptions
from aft_fast.train.run_dir import RunDir

DOC = Path(__file__).resolve().parents[1] / "README.md"
# Added to every `train` row unless the row gives the option: a tiny run in the test's folder.
QUICK = {"--method": "natural", "--data": "synthetic", "--epochs": "1", "--device": "cpu", "--out": "{tmp}/fresh"}


@dataclass(frozen=True)
class Row:
    typed: str                         # what the user gave (the table's first column)
    flag: str                          # the option the error names
    message: str                       # a piece of the message
    call: Callable[[Path], str]        # tmp folder -> the error text it produced
    area: str = "train"


def cli(*argv: str, quick: bool = True) -> Callable[[Path], str]:
    """Run `aft-fast ARGV` (+ a tiny synthetic setup); `{tmp}` in an argument is the test's
    folder. Returns click's error text; the command must fail as a usage error (status 2)."""
    def run(tmp: Path) -> str:
        args = list(argv)
        if quick and args[0] == "train":
            args += [x for k, v in QUICK.items() if k not in args for x in (k, v)] + ["--quiet"]
        args = [a.replace("{tmp}", str(tmp)) for a in args]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
        return " ".join(result.output.split())  # click wraps long messages
    return run


def lib(fn: Callable[[Path], object]) -> Callable[[Path], str]:
    """Call the library; it must raise OptionError. Returns '--flag: message'."""
    def run(tmp: Path) -> str:
        with pytest.raises(OptionError) as e:
            fn(tmp)
        return str(e.value)
    return run


# ------------------------------------------------------------------------------ fixtures
def _file(tmp: Path, name: str, text: str) -> Path:
    (tmp / name).write_text(text)
    return tmp / name


def _state_dict(tmp: Path, name: str, net: torch.nn.Module) -> str:
    torch.save(net.state_dict(), tmp / name)
    return str(tmp / name)


def _small_cnn(classes: int, channels: int = 3):
    from aft_fast.models import small_cnn
    return small_cnn(classes, channels)


def _checkpoint(tmp: Path, fmt: str) -> str:
    from aft_fast.io import save_torch
    save_torch({"format": fmt, "arch": "small_cnn"}, tmp / "ckpt.pt")
    return str(tmp / "ckpt.pt")


def _folder_without_images(root: Path) -> None:
    """An ImageNet-style folder (train/ and val/, two classes) whose class folders are empty."""
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)


def _plan(world: int, out_name: str = "run", **opts):
    """The batch plan of a run in the test folder's `out_name` under `world` processes."""
    return lambda tmp: distributed.plan_batch(TrainOptions(out=str(tmp / out_name), **opts),
                                              distributed.Dist(0, world))


def _half_torchrun_env(tmp: Path) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORLD_SIZE", "2")
        mp.delenv("RANK", raising=False)
        distributed.setup(torch.device("cpu"))


def _huge_class_map(tmp: Path) -> None:
    from aft_fast.data.class_map import load_class_map
    load_class_map(str(_file(tmp, "huge.json", '{"classes": {"a": 0}, "num_classes": 1000000000}')))


BOMB = "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9 if p else ['lol'] * 9)}]\n"
               for p, c in zip(["", *"abcdefg"], "abcdefgh"))


ROWS = [
    # ----------------------------------------------------------------- attack and method
    Row("--eps 8", "--eps", "must be in [0, 1] (pixel units of [0, 1] images), got 8; did you mean "
        "8/255?", cli("train", "--eps", "8")),
    Row("--eps -0.1", "--eps", "must be in [0, 1]", cli("train", "--eps", "-0.1")),
    Row("--eps 8/0", "--eps", "expected a number or a fraction like 8/255", cli("train", "--eps", "8/0")),
    Row("--alpha 2", "--alpha", "got 2; did you mean 2/255?", cli("train", "--alpha", "2")),
    Row("--steps -1", "--steps", "must be >= 0, got -1", cli("train", "--steps", "-1")),
    Row("--replays 4 with --method pgd-at", "--replays",
        "is an option of free-at; --method pgd-at does not take it",
        cli("train", "--method", "pgd-at", "--replays", "4")),
    Row("--alpha with --method natural", "--alpha", "natural runs no attack",
        cli("train", "--method", "natural", "--alpha", "0.01")),
    Row("--co-guard with --method pgd-at", "--co-guard",
        "is an option of fast-at; --method pgd-at does not take it",
        cli("train", "--method", "pgd-at", "--co-guard")),
    Row("--beta -1 with --method trades", "--beta", "must be >= 0",
        cli("train", "--method", "trades", "--beta", "-1")),
    Row("--method-options '{beta: 3}' with --method pgd-at", "--method-options",
        "method pgd-at has no option 'beta'",
        cli("train", "--method", "pgd-at", "--method-options", "{beta: 3}")),
    Row("--method magic", "--method", "must be one of natural, pgd-at",
        cli("train", "--method", "magic")),
    Row("--method mymodule:Missing (no such module)", "--method", "no module named 'mymodule'",
        cli("train", "--method", "mymodule:Missing")),
    Row("--method json:dumps (not a Method)", "--method",
        "not a subclass of aft_fast.methods.Method", cli("train", "--method", "json:dumps")),
    Row("--method aft without --weights", "--weights",
        "fine-tunes a pretrained model: pass --weights PATH",
        cli("train", "--method", "aft")),
    # ------------------------------------------------------------ batches and schedule
    Row("--batch-size 0", "--batch-size", "must be >= 1, got 0", cli("train", "--batch-size", "0")),
    Row("--global-batch 0", "--global-batch", "must be >= 1, got 0",
        cli("train", "--global-batch", "0")),
    Row("--global-batch 30 under 4 processes", "--global-batch",
        "a global batch of 30 does not split evenly over 4 processes", lib(_plan(4, global_batch=30))),
    Row("--epochs 0", "--epochs", "must be > 0, got 0", cli("train", "--epochs", "0")),
    Row("--lr -1", "--lr", "must be > 0, got -1", cli("train", "--lr", "-1")),
    Row("--schedule cosine", "--schedule", "'cosine' is not one of", cli("train", "--schedule", "cosine")),
    Row("--schedule-params '{gama: 0.5}' (a parameter the schedule does not take)",
        "--schedule-params", "do not fit schedule",
        cli("train", "--schedule", "step-lr", "--schedule-params", "{gama: 0.5}")),
    Row("--schedule-params 0.5 (not a mapping)", "--schedule-params", "expected a YAML mapping",
        cli("train", "--schedule-params", "0.5")),
    # ------------------------------------------------------------- option combinations
    Row("--resume with --overwrite", "--overwrite", "pass one of them",
        cli("train", "--resume", "--overwrite")),
    Row("--replace-head without --weights", "--replace-head", "pass --weights PATH as well",
        cli("train", "--replace-head")),
    Row("--sync-bn with --freeze-bn-stats", "--sync-bn", "nothing to synchronise",
        cli("train", "--sync-bn", "--freeze-bn-stats")),
    # ---------------------------------------------------------------------- config file
    Row("--config with a key that is not an option", "--config", "unknown option(s) epoch",
        cli("train", "--config", "{tmp}/c.yaml"), area="config"),
    Row("--config of a missing file", "--config", "no such file",
        cli("train", "--config", "{tmp}/missing.yaml"), area="config"),
    # ------------------------------------------------------------------ model, weights
    Row("--arch resnet19", "--arch", "'resnet19' is unknown", cli("train", "--arch", "resnet19")),
    Row("--arch pkg.mod:factory that does not exist", "--arch", "no module named 'no_such_pkg'",
        cli("train", "--arch", "no_such_pkg.models:net")),
    Row("--weights /nonexistent.pt", "--weights", "no such file",
        cli("train", "--weights", "/nonexistent.pt")),
    Row("--weights of another architecture", "--weights", "holds weights of another architecture",
        cli("train", "--arch", "preact_resnet18", "--weights",
            "{tmp}/small_cnn10.pt")),
    Row("--weights with another class count (without --replace-head)", "--weights",
        "a different number of classes); pass --replace-head",
        cli("train", "--arch", "small_cnn", "--weights", "{tmp}/small_cnn5.pt")),
    Row("an image size the model cannot take (small_cnn on 32x32)", "--image-size", "cannot take",
        cli("train", "--arch", "small_cnn", "--image-size", "32")),
    # ----------------------------------------------------------------------------- data
    Row("--data /no/such/folder", "--data", "must be one of", cli("train", "--data", "/no/such/folder")),
    Row("--data an empty folder", "--data", "missing train/ folder",
        cli("train", "--data", "{tmp}/empty")),
    Row("--data a folder whose class folders hold no images", "--data", "holds no images",
        cli("train", "--data", "{tmp}/no_images")),
    # ------------------------------------------------------------------- run directory
    Row("--resume with no run in --out", "--resume", "does not exist; start the run without --resume",
        cli("train", "--resume")),
    Row("--out of an existing run, without --resume/--overwrite", "--out", "is not empty",
        cli("train", "--out", "{tmp}/occupied")),
    Row("--out under a file (unwritable)", "--out", "cannot write to",
        cli("train", "--out", "{tmp}/c.yaml/run")),
    Row("--resume of a run whose last.pt is a newer format", "--resume",
        "has format 'aft_fast.checkpoint/99'", cli("train", "--resume", "--out", "{tmp}/newer")),
    Row("--resume under 3 processes of a run with global batch 16", "--resume",
        "does not split evenly over 3 processes: launch a number of processes that divides it",
        lib(_plan(3, resume=True))),
    Row("--out on a disk without room for the checkpoints", "--out", "MiB free; the run's "
        "checkpoints need about", lib(lambda tmp: RunDir(tmp, is_main=True).check_space(2**60))),
    Row("--save-every 0", "--save-every", "must be >= 1, got 0", cli("train", "--save-every", "0")),
    Row("--on-nonfinite ignore", "--on-nonfinite", "'ignore' is not one of 'stop', 'skip'",
        cli("train", "--on-nonfinite", "ignore")),
    Row("--train-only layer9 (no such submodule)", "--train-only", "the network has no submodule "
        "'layer9'", cli("train", "--arch", "preact_resnet18", "--train-only", "layer9")),
    # ---------------------------------------------------------------- device, processes
    Row("--device tpu", "--device", "is not a device", cli("train", "--device", "tpu")),
    Row("--amp fp8", "--amp", "'fp8' is not one of 'auto', 'none', 'bf16', 'fp16'", cli("train", "--amp", "fp8")),
    Row("--channels-last yes", "--channels-last", "'yes' is not one of 'auto', 'on', 'off'",
        cli("train", "--channels-last", "yes")),
    Row("WORLD_SIZE=2 set without RANK (not launched by torchrun)", "--device",
        "RANK is not: launch the processes with torchrun", lib(_half_torchrun_env)),
    Row("--sync-bn on CPU processes (gloo)", "--sync-bn", "SyncBatchNorm runs on GPUs only",
        lib(lambda tmp: distributed.wrap(torch.nn.BatchNorm2d(2), distributed.Dist(0, 2),
                                         torch.device("cpu"),
                                         distributed.BatchPlan(8, 16, 2, sync_bn=True)))),
    Row("--resume of a free-at run under another number of processes", "--resume",
        "carries per-process state", lib(_plan(2, resume=True, out_name="free_at"))),
    # --------------------------------------------------------------------------- eval
    Row("eval --checkpoint of a newer format", "--checkpoint", "upgrade aft_fast to load it",
        cli("eval", "--checkpoint", "{tmp}/newer/last.pt", "--eps", "0.1"), area="eval"),
    Row("eval --checkpoint of a plain state_dict", "--checkpoint", "not an aft_fast checkpoint",
        cli("eval", "--checkpoint", "{tmp}/small_cnn10.pt", "--eps", "0.1"), area="eval"),
    Row("eval --data with another class count than the checkpoint", "--data",
        "synthetic has 10 classes, the checkpoint 5",
        cli("eval", "--checkpoint", "{tmp}/five_classes.pt", "--data", "synthetic", "--eps", "0.1",
            "--device", "cpu"), area="eval"),
    Row("eval --restarts 0", "--restarts", "must be >= 1, got 0",
        cli("eval", "--checkpoint", "x.pt", "--eps", "0.1", "--restarts", "0"), area="eval"),
    Row("eval --eps 4", "--eps", "did you mean 4/255?",
        cli("eval", "--checkpoint", "x.pt", "--eps", "4"), area="eval"),
    Row("eval --aa-queries 0", "--aa-queries", "must be >= 1, got 0",
        cli("eval", "--checkpoint", "x.pt", "--eps", "0.1", "--aa-queries", "0"), area="eval"),
    Row("eval --max-batches 0", "--max-batches", "must be >= 1, got 0",
        cli("eval", "--checkpoint", "x.pt", "--eps", "0.1", "--max-batches", "0"), area="eval"),
    # ------------------------------------------------- the example, other commands
    Row("--schedule-params 'not yaml: [' (not YAML)", "--schedule-params",
        "expected a YAML mapping like '{every: 2, gamma: 0.5}'",
        cli("train", "--schedule-params", "not yaml: [")),
    Row("--config of a file that is not YAML", "--config", "is not valid YAML",
        cli("train", "--config", "{tmp}/broken.yaml")),
    Row("--optimizer rmsprop", "--optimizer", "'rmsprop' is not one of 'sgd', 'adam'",
        cli("train", "--optimizer", "rmsprop")),
    Row("--momentum -0.5", "--momentum", "must be >= 0", cli("train", "--momentum", "-0.5")),
    Row("--eval-batch-size 0", "--eval-batch-size", "must be >= 1, got 0",
        cli("train", "--eval-batch-size", "0")),
    Row("bench --steps 0", "--steps", "must be >= 1, got 0", cli("bench", "--steps", "0"),
        area="bench"),
    Row("bench --methods pgd-at,natural", "--methods",
        "natural runs no attack: bench times adversarial methods",
        cli("bench", "--methods", "pgd-at,natural"), area="bench"),
    Row("bench --epochs aft=0", "--epochs", "must be > 0", cli("bench", "--epochs", "aft=0"),
        area="bench"),
    Row("schedule cyclic --params '{every: 2}'", "--params",
        "do not fit schedule cyclic (cyclic() got an unexpected keyword argument 'every'); it "
        "takes peak_frac", cli("schedule", "cyclic", "--params", "{every: 2}"), area="schedule"),
    # ---------------------------------------------------------------------------- ops
    Row("torch.ops.aft_fast.pgd_step_(..., eps=-1, ...) (any op, any bad argument: 48 cases in "
        "tests/direct_op_cases.py)", "eps", "pgd_step_: eps must be a finite number >= 0, got -1",
        lambda tmp: _direct_op_error(), area="ops"),
    # ------------------------------------------ nothing lost, nothing silent (issue 23)
    Row("--overwrite of a folder that holds no run", "--overwrite",
        "holds no run (none of args.yaml, metrics.jsonl, last.pt)",
        cli("train", "--out", "{tmp}/occupied", "--overwrite")),
    Row("--out of a run another live process is running (its .lock)", "--out",
        "is in use by process", cli("train", "--out", "{tmp}/locked")),
    Row("--resume with another --eps than the run's", "--resume",
        "was started with other settings: --eps 0.2 (the run: 0.3)",
        cli("train", "--resume", "--out", "{tmp}/run", "--eps", "0.2", "--batch-size", "16")),
    Row("--epochs 0.5", "--epochs", "must be a whole number of epochs, got 0.5",
        cli("train", "--epochs", "0.5")),
    Row("--epochs inf", "--epochs", "must be a whole number of epochs, got inf",
        cli("train", "--epochs", "inf")),
    Row("--eps 0 with an adversarial --method", "--eps", "0 trains naturally and its robust "
        "accuracy would never be measured", cli("train", "--method", "pgd-at", "--eps", "0")),
    Row("--steps 0 with --method pgd-at", "--steps", "0 steps attack nothing",
        cli("train", "--method", "pgd-at", "--steps", "0")),
    Row("--image-size 64 with --data mnist5k", "--image-size", "is 28x28 built-in data",
        cli("train", "--data", "mnist5k", "--image-size", "64")),
    Row("--workers 1000", "--workers", "must be at most", cli("train", "--workers", "1000")),
    Row("--check-files deep", "--check-files", "'deep' is not one of 'bytes', 'decode', 'off'",
        cli("train", "--check-files", "deep")),
    Row("--seed -1", "--seed", "must be in [0, 2**32), got -1", cli("train", "--seed", "-1")),
    Row("--out ''", "--out", "is empty: name the run's folder", cli("train", "--out", "")),
    Row("--schedule-params '{gamma: 1e12}' (YAML reads 1e12 as text; the LR would explode)",
        "--schedule-params", "give a learning rate of 1e+12 at epoch 1",
        cli("train", "--schedule", "step-lr", "--schedule-params", "{gamma: 1e12}", "--lr",
            "1")),
    Row("--config of a YAML alias bomb (a few hundred bytes, billions of items)", "--config",
        "more than 20 aliases", cli("train", "--config", "{tmp}/bomb.yaml"), area="config"),
    Row("a class map with num_classes: 1000000000", "--class-map",
        "num_classes must be an integer in [1, 100000]", lib(_huge_class_map)),
    Row("--data a folder where an image name is a symlink to itself", "--data",
        "not readable files (a folder, or a broken or looping symlink)",
        cli("train", "--data", "{tmp}/looped")),
    Row("--weights with a NaN tensor", "--weights", "1 weight tensor(s) hold NaN or inf values",
        cli("train", "--arch", "small_cnn", "--weights", "{tmp}/nan_weights.pt")),
    Row("eval --checkpoint whose weights hold NaN", "--checkpoint", "hold NaN or inf values",
        cli("eval", "--checkpoint", "{tmp}/nan.pt", "--data", "synthetic", "--eps", "0.1",
            "--device", "cpu"), area="eval"),
    Row("compare --methods ','", "--methods", "names no method",
        cli("compare", "--methods", ","), area="compare"),
    Row("data make-folder --per-class 0", "--per-class", "must be >= 1, got 0",
        cli("data", "make-folder", "--per-class", "0", "--out", "{tmp}/folder"), area="data"),
]



def _direct_op_error() -> str:
    from aft_fast import ops
    if not ops.has_compiled_ops():
        pytest.skip("compiled ops not built")
    x = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError) as e:
        torch.ops.aft_fast.pgd_step_(x.clone(), x, x, -1.0, 0.1, 0.0, 1.0)
    return str(e.value)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """What the rows refer to: a config with a typo, weights files, folders, runs."""
    from aft_fast.io import save_torch
    from aft_fast.models.weights import CHECKPOINT_FORMAT

    _file(tmp_path, "c.yaml", "epoch: 3\n")
    _file(tmp_path, "broken.yaml", "eps: [0.1\n")
    _file(tmp_path, "bomb.yaml", BOMB)
    _folder_without_images(tmp_path / "looped")
    os.symlink("loop.jpg", tmp_path / "looped" / "train" / "a" / "loop.jpg")
    (tmp_path / "locked").mkdir()  # held by a live process of this host: the test's parent
    (tmp_path / "locked" / ".lock").write_text(json.dumps(
        {"pid": os.getppid(), "host": socket.gethostname(), "since": "now"}))
    _state_dict(tmp_path, "small_cnn10.pt", _small_cnn(10))
    _state_dict(tmp_path, "small_cnn5.pt", _small_cnn(5))
    (tmp_path / "empty").mkdir()
    _folder_without_images(tmp_path / "no_images")
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "notes.txt").write_text("mine")
    _checkpoint(tmp_path, "aft_fast.checkpoint/99")
    (tmp_path / "newer").mkdir()
    (tmp_path / "ckpt.pt").rename(tmp_path / "newer" / "last.pt")
    for name, method, state in (("run", "natural", {}),
                                ("free_at", "free-at", {"delta": torch.zeros(16, 3, 8, 8)})):
        save_torch({"format": CHECKPOINT_FORMAT, "method": method, "method_state": state,
                    "config": {"batch_size": 16, "eps": 0.3, "resolved": {"world_size": 1}}},
                   tmp_path / name / "last.pt")
    from aft_fast.models import build
    from aft_fast.train.checkpoint import save_checkpoint
    save_checkpoint(tmp_path / "five_classes.pt", model=build("small_cnn", 5, in_channels=3),
                    arch="small_cnn", num_classes=5, input_size=32, method="natural", config={},
                    epoch=0)
    nan = _small_cnn(10)
    with torch.no_grad():
        next(nan.parameters())[0] = float("nan")
    _state_dict(tmp_path, "nan_weights.pt", nan)
    model = build("small_cnn", 10, in_channels=3)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    save_checkpoint(tmp_path / "nan.pt", model=model, arch="small_cnn", num_classes=10,
                    input_size=32, method="natural", config={}, epoch=0)
    return tmp_path


def test_the_table_has_at_least_25_rows():
    assert len(ROWS) >= 25


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.typed[:40])
def test_bad_input_gives_its_error(row: Row, workdir: Path):
    text = row.call(workdir)
    assert row.flag in text, text
    assert row.message in text, text


def table() -> str:
    lines = ["| input | option named | error (a piece of it) |", "|---|---|---|"]
    for r in ROWS:
        cells = [r.typed, f"`{r.flag}`", r.message]
        lines.append("| " + " | ".join(c.replace("|", r"\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def test_docs_table_lists_every_row():
    """README.md holds this module's table (regenerate: python tests/test_bad_input.py)."""
    assert table() in DOC.read_text()


if __name__ == "__main__":
    sys.stdout.write(table())
