"""What compare trusts from a results folder: a cached evaluation stage only where its seal
matches the checkpoint's weights and its protocol record (an edited one is evaluated again), and
a finished row's checkpoint in the folder it is in now (a copied or moved folder works)."""
import json
from pathlib import Path

import torch

from aft_fast.compare import CompareOptions, Protocol
from aft_fast.compare.recipes import plan


def _checkpoint(path: Path) -> Path:
    from aft_fast.models import build
    from aft_fast.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(path, model=build("small_cnn", 10, in_channels=1), arch="small_cnn",
                    num_classes=10, input_size=28, method="natural", config={}, epoch=0)
    return path


def test_a_hand_edited_cached_stage_is_evaluated_again(tmp_path):
    from aft_fast.compare.evaluation import evaluate_checkpoint

    ckpt = _checkpoint(tmp_path / "best.pt")
    x, y = torch.rand(16, 1, 28, 28), torch.arange(16) % 10
    p = Protocol(eps=0.1, pgd_steps=2, pgd_restarts=1, aa_steps=1, aa_queries=5, aa_targets=1,
                 mask_images=4, batch_size=8)
    cache = tmp_path / "evals" / "seed0" / "natural.pt"
    first = evaluate_checkpoint(ckpt, x, y, p, cache)
    assert first["clean_acc"] < 1
    state = torch.load(cache, weights_only=True)
    stages = state["stages"]
    assert stages["pgd"]["protocol"]["pgd_steps"] == 2  # each record names what it read
    stages["clean"]["correct"][:] = True  # a Natural row made 100% clean / 100% PGD
    for name in ("weak", "autoattack"):
        stages[name]["alive"][:] = True
    stages["pgd"]["history"] = [torch.ones(16, dtype=torch.bool)]
    torch.save(state, cache)
    said = []
    again = evaluate_checkpoint(ckpt, x, y, p, cache, say=said.append)
    assert again["clean_acc"] == first["clean_acc"] and again["pgd_acc"] == first["pgd_acc"]
    assert any("do not match the checkpoint's weights" in s for s in said), said


def test_a_cached_stage_that_contradicts_the_clean_stage_is_refused():
    from aft_fast.compare import eval_cache

    clean = torch.tensor([True, False, True])
    stages = {"clean": {"correct": clean}, "weak": {"alive": torch.tensor([True, True, False])}}
    for rec in stages.values():
        rec["seal"] = eval_cache.seal(rec, "w")  # resealed by someone who knows the rule
    kept, dropped = eval_cache.trusted_stages(stages, "w", 3)
    assert list(kept) == ["clean"] and dropped == ["weak"]  # image 1 fooled clean, alive attacked
    assert eval_cache.trusted_stages(stages, "other weights", 3)[0] == {}


def test_a_moved_comparison_folder_uses_its_own_checkpoints(tmp_path):
    """A finished row's compare_done.json names the checkpoint where it was trained; the copy
    uses the one next to it, and a child row still matches its moved parent (no retraining)."""
    from aft_fast.compare.runner import DONE, row_settings, train_row

    old, new = tmp_path / "old", tmp_path / "new"
    opts = CompareOptions(data="synthetic", epochs=1, out=str(new), report_only=True)
    rows = {r.key: r for r in plan(arch="small_cnn", eps=0.3, epochs=1, train_steps=2,
                                   replays=None, aft_epochs=None, methods=["natural", "aft"])}
    for key, parent in (("natural", None), ("aft", old / "runs/seed0/natural/best.pt")):
        run_dir = new / "runs" / "seed0" / key  # copied from old/ with its done file
        run_dir.mkdir(parents=True)
        (run_dir / DONE).write_text(json.dumps({
            "checkpoint": str(old / "runs" / "seed0" / key / "best.pt"), "epochs_run": 1,
            "settings": row_settings(rows[key], 0, str(parent) if parent else None, opts)}))
    natural = train_row(rows["natural"], 0, new / "runs/seed0/natural", None, opts)
    assert natural["checkpoint"] == str(new / "runs/seed0/natural/best.pt")
    aft = train_row(rows["aft"], 0, new / "runs/seed0/aft", natural["checkpoint"], opts)
    assert aft is not None and aft["checkpoint"] == str(new / "runs/seed0/aft/best.pt")
