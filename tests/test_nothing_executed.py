"""Nothing executed: every file the engine reads (checkpoints, --weights, compare's evaluation
cache, RiFT's and the analyses' inputs, --config) is read without running code, so a pickle or
YAML tag planted in a shared results folder never runs; and compare trusts a cached evaluation
only where it proves what it was computed from."""
import builtins
import re
from pathlib import Path

import pytest
import torch

PACKAGE = Path(__file__).resolve().parents[1] / "aft_fast"
# Calls that can run code found in a file.
UNSAFE = {r"weights_only\s*=\s*False": "torch.load that unpickles arbitrary objects",
          r"\bpickle\.loads?\(": "pickle.load",
          r"allow_pickle\s*=\s*True": "numpy.load of pickled objects",
          r"\byaml\.(unsafe_)?load\(": "yaml.load (not safe_load)",
          r"yaml\.(Unsafe|Full)?Loader\b": "a YAML loader that builds Python objects"}


def test_no_code_running_reader_in_the_package():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            found += [f"{path.relative_to(PACKAGE.parent)}:{n}: {what}"
                      for pattern, what in UNSAFE.items() if re.search(pattern, line)]
            if "torch.load(" in line and "weights_only=True" not in line:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{n}: torch.load without "
                             "weights_only=True on the same line")
    assert not found, "\n".join(found)


class Planted:
    """Unpickling this runs code: it writes the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",)


def plant(path: Path, marker: Path, inner: dict | None = None) -> Path:
    """A torch file at `path` whose loading with weights_only=False would run code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**(inner or {}), "payload": Planted(marker)}, path)
    return path


def _checkpoint(path: Path) -> Path:
    from aft_fast.models import build
    from aft_fast.train.checkpoint import save_checkpoint

    save_checkpoint(path, model=build("small_cnn", 10, in_channels=1), arch="small_cnn",
                    num_classes=10, input_size=28, method="natural", config={}, epoch=0)
    return path


def _tiny_protocol():
    from aft_fast.compare import Protocol

    return Protocol(eps=0.1, pgd_steps=2, pgd_restarts=1, aa_steps=1, aa_queries=5, aa_targets=1,
                    mask_images=4, batch_size=8)


def _compare_cache(tmp: Path, marker: Path) -> None:
    from aft_fast.compare.evaluation import evaluate_checkpoint, progress, stage_key

    ckpt = _checkpoint(tmp / "best.pt")
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8) % 10
    evals = tmp / "evals" / "seed0"
    plant(evals / "natural.pt", marker, {"checkpoint_sha256": "x", "stages": {}})
    plant(evals / "sibling.pt", marker, {"weights_sha256": "x", "stages": {}})
    p = _tiny_protocol()
    assert progress(evals / "natural.pt", p, 8) == "not started"
    out = evaluate_checkpoint(ckpt, x, y, p, evals / "natural.pt")
    assert 0 <= out["clean_acc"] <= 1
    assert stage_key(p, "clean")  # the cache now holds a plain, sealed evaluation
    torch.load(evals / "natural.pt", weights_only=True)


def _checkpoint_reader(tmp: Path, marker: Path) -> None:
    from aft_fast.errors import OptionError
    from aft_fast.models.weights import read_checkpoint

    with pytest.raises(OptionError, match="cannot be read as a checkpoint"):
        read_checkpoint(plant(tmp / "last.pt", marker, {"format": "aft_fast.checkpoint/1"}))


def _weights(tmp: Path, marker: Path) -> None:
    from aft_fast.errors import OptionError
    from aft_fast.models.weights import read_state_dict

    with pytest.raises(OptionError, match="weights_only=True"):
        read_state_dict(str(plant(tmp / "w.pt", marker)))


def _rift_mrc(tmp: Path, marker: Path) -> None:
    from aft_fast.rift.pipeline import least_critical

    plant(tmp / "mrc.json", marker)
    with pytest.raises(ValueError):  # JSON only: a pickle is not JSON
        least_critical(tmp)


def _analysis_curves(tmp: Path, marker: Path) -> None:
    from aft_fast.analysis.curves import best_epoch
    from aft_fast.errors import OptionError

    plant(tmp / "best.pt", marker, {"format": "aft_fast.checkpoint/1"})
    with pytest.raises(OptionError):
        best_epoch(tmp)


def _config_yaml(tmp: Path, marker: Path) -> None:
    from click.testing import CliRunner

    from aft_fast.cli import main

    (tmp / "run.yaml").write_text(
        f"epochs: !!python/object/apply:builtins.exec [\"open({str(marker)!r}, 'w').close()\"]\n")
    result = CliRunner().invoke(main, ["train", "--config", str(tmp / "run.yaml")])
    assert result.exit_code == 2 and "is not valid YAML" in result.output


READERS = {"compare's evaluation cache": _compare_cache, "a checkpoint": _checkpoint_reader,
           "--weights": _weights, "RiFT's mrc.json": _rift_mrc,
           "an analysis's checkpoint": _analysis_curves, "--config YAML": _config_yaml}


@pytest.mark.parametrize("kind", READERS)
def test_a_planted_payload_never_runs(kind, tmp_path):
    marker = tmp_path / "ran"
    READERS[kind](tmp_path, marker)
    assert not marker.exists(), f"reading {kind} ran the planted code"
