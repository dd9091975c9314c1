"""`aft-fast analyze`: curves read what the loop writes, the plateau sweep skips finished runs and
resumes killed ones, LDA → PCA gives 2-D points and refuses what it cannot picture."""
import csv
import json
import os
import signal

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from aft_fast.analysis.embedding import PenultimateFeatures, find_head, fit_lda_pca
from aft_fast.analysis.plateau import default_plateaus
from aft_fast.commands.analyze import analyze_group
from aft_fast.errors import OptionError
from aft_fast.train.options import TrainOptions
from aft_fast.train.run import train

TINY = dict(data="synthetic", arch="small_cnn", batch_size=32, eval_max_batches=1, eval_steps=2,
            steps=2, eps=0.1, quiet=True, log_every=10**9, device="cpu")


@pytest.fixture(autouse=True)
def small_synthetic(monkeypatch):
    """128 one-channel 28×28 synthetic images (4 batches), for training and for the analyses."""
    import aft_fast.data
    import aft_fast.train.run as run

    real = aft_fast.data.make_loaders

    def tiny(data, **kw):
        return real(data, synthetic_shape=(1, 28, 28), synthetic_size=128, **kw)

    monkeypatch.setattr(run, "make_loaders", tiny)
    monkeypatch.setattr(aft_fast.data, "make_loaders", tiny)


def tiny_run(tmp_path, name, **kw):
    opts = TrainOptions(out=str(tmp_path / name), **{**TINY, **kw})
    train(opts)
    return tmp_path / name


def invoke(*args):
    result = CliRunner().invoke(analyze_group, [str(a) for a in args])
    return result


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_curves_read_the_metrics_the_loop_writes(tmp_path):
    nat = tiny_run(tmp_path, "natural", method="natural", epochs=2)
    adv = tiny_run(tmp_path, "pgd", method="pgd-at", epochs=2, weights=str(nat / "last.pt"))
    result = invoke("curves", nat, adv, "--label", "nat", "--label", "pgd", "--out",
                    tmp_path / "an")
    assert result.exit_code == 0, result.output
    for ext in ("png", "csv", "json"):
        assert (tmp_path / "an" / f"curves.{ext}").stat().st_size > 0
    rows = read_csv(tmp_path / "an" / "curves.csv")
    assert [(r["label"], r["epoch"]) for r in rows] == [("nat", "1"), ("nat", "2"), ("pgd", "1"),
                                                        ("pgd", "2")]
    metrics = [json.loads(line) for line in (adv / "metrics.jsonl").read_text().splitlines()]
    best = torch.load(adv / "best.pt", weights_only=True)["epoch"]
    for row, m in zip(rows[2:], metrics):
        assert row["held_out_split"] == "val"  # the loop's per-epoch split, labelled as such
        assert float(row["train_robust_acc"]) == pytest.approx(m["train_robust_acc"])
        assert float(row["held_out_robust_acc"]) == pytest.approx(m["val_robust_acc"])
        assert float(row["robust_gap"]) == pytest.approx(m["train_robust_acc"] - m["val_robust_acc"])
        assert (row["best_pt"] == "True") == (m["epoch"] == best)


def test_curves_refuse_a_directory_that_is_not_a_run(tmp_path):
    result = invoke("curves", tmp_path, "--out", tmp_path / "an")
    assert result.exit_code == 2 and "no metrics.jsonl" in result.output


def test_default_plateaus_spread_over_the_run():
    assert default_plateaus(6) == [1, 2, 3, 4, 5, 6]
    assert default_plateaus(10) == [1, 3, 5, 6, 8, 10]
    assert default_plateaus(3) == [1, 2, 3]


@pytest.mark.slow  # four tiny runs, one interrupted and resumed
def test_plateau_sweep_skips_finished_runs_and_resumes_killed_ones(tmp_path, monkeypatch):
    nat = tiny_run(tmp_path, "natural", method="natural", epochs=1)
    args = ["plateau", "--weights", nat / "last.pt", "--data", "synthetic", "--epochs", 2,
            "--plateaus", "1,2", "--eps", 0.1, "--steps", 1, "--eval-steps", 1,
            "--eval-max-batches", 1, "--test-max-batches", 1, "--batch-size", 32,
            "--device", "cpu", "--runs", tmp_path / "sweep", "--out", tmp_path / "an"]

    # Stop step_i2 like Ctrl-C would, once, after its first epoch's metrics are written.
    from aft_fast.train.run_dir import RunDir
    real_write, fired = RunDir.write_rows, []

    def interrupted_after_first_epoch(self, rows):
        real_write(self, rows)
        if self.path.name == "step_i2" and len(rows) == 1 and not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGINT)  # the loop checkpoints after the next step

    monkeypatch.setattr(RunDir, "write_rows", interrupted_after_first_epoch)
    killed = invoke(*args)
    assert killed.exit_code == 128 + signal.SIGINT, killed.output
    monkeypatch.setattr(RunDir, "write_rows", real_write)

    refused = invoke(*args)
    assert refused.exit_code == 2 and "--resume" in refused.output and "1 of 2 epochs" in refused.output

    resumed = invoke(*args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "step_i1: finished earlier, skipped" in resumed.output
    assert "step_i2: continuing (1 of 2 epochs done)" in resumed.output
    assert "aft: training" in resumed.output
    summary = read_csv(tmp_path / "an" / "plateau.csv")
    assert [r["run"] for r in summary] == ["step_i1", "step_i2", "aft"]
    assert (tmp_path / "an" / "plateau.png").stat().st_size > 0
    epochs = read_csv(tmp_path / "an" / "plateau_epochs.csv")
    assert [r["epoch"] for r in epochs if r["run"] == "step_i2"] == ["1", "2"]

    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "sweep").glob("*/last.pt")}
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    assert again.output.count("finished earlier, skipped") == 3
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "sweep").glob("*/last.pt")}


def test_plateau_sweep_refuses_a_run_with_other_settings(tmp_path):
    nat = tiny_run(tmp_path, "natural", method="natural", epochs=1)
    args = ["plateau", "--weights", nat / "last.pt", "--data", "synthetic", "--epochs", 1,
            "--plateaus", "1", "--no-aft", "--eps", 0.1, "--steps", 1, "--eval-steps", 1,
            "--eval-max-batches", 1, "--test-max-batches", 1, "--batch-size", 32,
            "--device", "cpu", "--runs", tmp_path / "sweep", "--out", tmp_path / "an"]
    assert invoke(*args).exit_code == 0
    other = invoke(*[a if a != 0.1 else 0.2 for a in args])
    assert other.exit_code == 2 and "other settings" in other.output and "eps" in other.output


def blobs(num_classes, per_class=30, dim=8, seed=0):
    g = np.random.default_rng(seed)
    centres = g.normal(scale=5.0, size=(num_classes, dim))
    x = np.concatenate([c + g.normal(size=(per_class, dim)) for c in centres])
    return x, np.repeat(np.arange(num_classes), per_class)


@pytest.mark.parametrize("c", [3, 5, 10])
def test_lda_pca_gives_2d_points_for_c_classes(c):
    x, y = blobs(c, dim=max(12, c))
    proj = fit_lda_pca(x, y, c)
    assert proj.lda_space(x).shape == (len(y), c - 1)
    assert proj(x).shape == (len(y), 2) and np.isfinite(proj(x)).all()


def test_lda_pca_refuses_fewer_than_3_classes_and_a_missing_class():
    x, y = blobs(2)
    with pytest.raises(OptionError, match="needs at least 3") as exc:
        fit_lda_pca(x, y, 2)
    assert exc.value.option == "checkpoint"
    x, y = blobs(4)
    keep = y != 2
    with pytest.raises(OptionError, match="class\\(es\\) 2 have no example") as exc:
        fit_lda_pca(x[keep], y[keep], 4)
    assert exc.value.option == "split"


def test_penultimate_features_are_the_heads_input():
    from aft_fast.models import build

    model = build("small_cnn", 10, in_channels=1).eval()
    head = find_head(model, 10)
    assert head is model.model[-1]
    feats = PenultimateFeatures(model, 10)
    x = torch.rand(5, 1, 28, 28)
    f, pred = feats(x)
    feats.remove()
    assert f.shape == (5, 1024)
    assert torch.allclose(head(f), model(x), atol=1e-5) and torch.equal(pred, model(x).argmax(1))


def test_embedding_command_draws_one_row_per_checkpoint(tmp_path):
    nat = tiny_run(tmp_path, "natural", method="natural", epochs=1)
    adv = tiny_run(tmp_path, "aft", method="aft", epochs=1, weights=str(nat / "last.pt"))
    common = ["--data", "synthetic", "--steps", 2, "--device", "cpu", "--out", tmp_path / "an"]
    result = invoke("embedding", nat / "last.pt", adv / "last.pt", "--split", "train_eval",
                    *common)
    assert result.exit_code == 0, result.output
    scores = read_csv(tmp_path / "an" / "embedding.csv")
    assert [(s["label"].split(":")[0], s["kind"]) for s in scores] == [
        ("natural", "clean"), ("natural", "adv"), ("aft", "clean"), ("aft", "adv")]
    assert all(-1 <= float(s["silhouette"]) <= 1 for s in scores)
    report = json.loads((tmp_path / "an" / "embedding.json").read_text())
    assert report["n"] == 128 and report["attack"]["eps"] == pytest.approx(0.1)  # aft's eps
    # The synthetic val split has 16 images, none of classes 1, 2 and 9.
    refused = invoke("embedding", nat / "last.pt", "--split", "val", "--eps", 0.1, *common)
    assert refused.exit_code == 2 and "--split" in refused.output
    assert "class(es) 1, 2, 9 have no example among the 16 images" in refused.output
