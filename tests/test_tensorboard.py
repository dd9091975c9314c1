"""TensorBoard event files of a training run: each finished epoch's metrics row (LR, attack ms
per iteration, accuracies) read back as scalars, equal to metrics.jsonl also after a kill and a
resume; --no-tensorboard writes none; without the package a run warns once and trains on."""
import json
import sys
import warnings

import pytest

import aft_fast.train.tensorboard as board
from aft_fast.train.run import train


def scalars(run) -> dict:
    """{tag: [(step, value), ...]} of the run's event files, as TensorBoard reads them."""
    pytest.importorskip("tensorboard", reason="needs the tensorboard package (pip install "
                        "'.[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / board.FOLDER))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_every_epoch_row_is_read_back_once_also_after_a_kill_and_resume(synthetic_opts, tmp_path,
                                                                         monkeypatch):
    kw = dict(method="pgd-at", steps=1, epochs=2)
    import aft_fast.train.run_dir as run_dir

    def killed(*args, **kwargs):  # after epoch 1's checkpoint, before its tables and board
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(run_dir, "plot_accuracy", killed)
        with pytest.raises(KeyboardInterrupt):
            train(synthetic_opts(tmp_path, "run", **kw))
    train(synthetic_opts(tmp_path, "run", resume=True, **kw))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    got = scalars(tmp_path / "run")
    for key in ("lr", "train_loss", "val_clean_acc", "val_robust_acc", "attack_ms_per_iter"):
        assert [step for step, _ in got[key]] == [1, 2], key  # each epoch once
        assert [value for _, value in got[key]] == pytest.approx([r[key] for r in rows]), key


def test_off_writes_nothing_and_a_missing_package_warns_once(synthetic_opts, tmp_path,
                                                             monkeypatch):
    train(synthetic_opts(tmp_path, "off", method="natural", epochs=1, tensorboard=False))
    assert not (tmp_path / "off" / board.FOLDER).exists()
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    monkeypatch.setattr(board, "_warned", False)
    with pytest.warns(UserWarning, match="tensorboard package is not installed"):
        train(synthetic_opts(tmp_path, "a", method="natural", epochs=1))
    with warnings.catch_warnings(record=True) as seen:  # a second run does not repeat it
        warnings.simplefilter("always")
        train(synthetic_opts(tmp_path, "b", method="natural", epochs=1))
    assert not [w for w in seen if "tensorboard" in str(w.message)]
    assert (tmp_path / "b" / "last.pt").is_file() and not (tmp_path / "b" / board.FOLDER).exists()
