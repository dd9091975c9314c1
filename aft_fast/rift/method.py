"""RiFT as a row of `compare` (Zhu et al. 2023, "Improving Generalization of Adversarial Training
via Robust Critical Fine-Tuning"; code: microsoft/robustlearn, RiFT): not a training method of
`train` but a pipeline on top of the PGD AT model (MRC, clean fine-tuning of one module, α
interpolation; `aft_fast.rift.pipeline`).

Cost: 1 pass per image per fine-tuning epoch, plus its searches: MRC (PGD on its examples, then
per module the weight-ascent steps on them, counted as full passes) and the α search (PGD on the
validation images for every α), read from the run's mrc.json and interpolation.json and divided
by the training images.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from aft_fast.methods.base import Method


class RiFT(Method):
    name = "rift"
    label = "RiFT"
    reference = "Zhu et al. 2023 (MRC, clean fine-tuning of one module, interpolation)"
    trains = False  # its own pipeline (aft-fast rift), not a `train --method`
    parent = "pgd-at"

    def extra_passes(self, run_dir) -> float:
        """MRC's and the α search's passes, from the run's records."""
        run_dir = Path(run_dir)
        mrc = json.loads((run_dir / "mrc.json").read_text())
        interp = json.loads((run_dir / "interpolation.json").read_text())
        m = mrc["settings"]
        mrc_passes = m["examples"] * (m["attack_steps"] + mrc["cost"]["modules"] * m["ascent_steps"])
        return mrc_passes + sum(row["n"] * interp["attack_steps"] for row in interp["rows"])

    @classmethod
    def training_run(cls, run_dir):
        return Path(run_dir) / "finetune"

    @classmethod
    def compare_train(cls, b) -> dict:
        return {}

    @classmethod
    def compare_run(cls, epochs: int, seed: int, run_dir: Path, parent: str, opts) -> dict:
        """Its row of `compare` from the PGD AT model (not resumable inside: a killed RiFT
        starts again)."""
        from aft_fast.rift.options import RiftOptions
        from aft_fast.rift.pipeline import rift

        t0 = time.perf_counter()
        rift(RiftOptions(checkpoint=parent, data=opts.data, out=str(run_dir), seed=seed,
                         epochs=epochs, device=opts.device, batch_size=opts.batch_size,
                         val_images=opts.val_images, overwrite=True, quiet=True,
                         amp=opts.amp, channels_last=opts.channels_last))
        seconds = time.perf_counter() - t0
        path = run_dir / "finetune" / "metrics.jsonl"
        rows = path.read_text().splitlines() if path.is_file() else []
        return {"checkpoint": str(run_dir / "rift.pt"), "epochs_run": len(rows) or epochs,
                "train_seconds": seconds, "stopped_early": None, "best_epoch": None,
                "seconds_note": "RiFT's whole pipeline (MRC, fine-tuning, α search), wall-clock"}
