"""`compare(opts)`: train every row (each seed), evaluate every model with one protocol, write
the table. Resumable: a finished training run or evaluation is never redone, a killed training
run resumes from its last.pt, a killed evaluation from its last finished stage."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from aft_fast.compare import report
from aft_fast.compare.cost import row_passes
from aft_fast.compare.evaluation import evaluate_checkpoint, progress
from aft_fast.compare.options import CompareOptions
from aft_fast.compare.protocol import Protocol, test_set
from aft_fast.compare.recipes import Recipe, plan, row_class
from aft_fast.fast_path import channels_last_setting, trained_in
from aft_fast.io import write_json
from aft_fast.runtime import environment, load_average, pick_device
from aft_fast.train.co_guard import DESCRIPTION as GUARD_DESCRIPTION

DONE = "compare_done.json"


def protocol_of(opts: CompareOptions) -> Protocol:
    return Protocol(eps=opts.eps, images=opts.eval_images, pgd_steps=opts.pgd_steps,
                    pgd_restarts=opts.pgd_restarts, aa_steps=opts.aa_steps,
                    aa_queries=opts.aa_queries, aa_targets=opts.aa_targets,
                    aa_images=opts.aa_images, mask_images=opts.mask_images, batch_size=opts.eval_batch_size)


def recipes_of(opts: CompareOptions) -> list[Recipe]:
    return plan(arch=opts.arch, eps=opts.eps, epochs=opts.epochs, train_steps=opts.train_steps,
                replays=opts.replays, aft_epochs=opts.aft_epochs, methods=opts.methods,
                warmup_fraction=opts.warmup_fraction, ema_decay=opts.ema_decay)


def compare(opts: CompareOptions, command: str | None = None) -> dict:
    opts.check()
    out = Path(opts.out)
    say = (lambda s: None) if opts.quiet else (lambda s: print(s, flush=True))
    device = pick_device(opts.device)
    recipes = recipes_of(opts)
    p = protocol_of(opts)
    x, y, split = test_set(opts.data)
    train_size = opts.train_images or split["train_split_images"]
    skipped = []
    doc = {"command": command or "aft-fast compare " + " ".join(sys.argv[1:]),
           "options": asdict(opts), "protocol": p.settings(),
           "reference_autoattack": p.reference_autoattack, "test_split": split,
           "recipes": [asdict(r) for r in recipes], "skipped": skipped, "rows": [],
           "environment": environment(device)}
    dest = Path(opts.report or out)
    results = doc["rows"]
    for seed in opts.seeds:
        ckpts = {}
        for r in recipes:
            run_dir = out / "runs" / f"seed{seed}" / r.key
            parent = ckpts.get(r.parent)
            if not opts.report_only:
                say(f"[seed {seed}] {r.label}: training ({r.epochs} epochs)")
            trained = train_row(r, seed, run_dir, parent, opts)
            if trained is None:  # --report-only: the run has not finished
                reason = (f"training not finished ({len(_read_rows(run_dir))} of {r.epochs} "
                          "epochs)")
                if (run_dir / DONE).is_file():
                    reason = "trained with other settings than this command's (run it to retrain)"
                doc["skipped"].append({"key": r.key, "seed": seed, "reason": reason})
                continue
            ckpts[r.key] = trained["checkpoint"]
            trained = {**trained, "passes_per_image": row_passes(r, run_dir, trained["epochs_run"],
                                                                 train_size)}
            if opts.train_only:
                continue
            if not opts.report_only:
                say(f"[seed {seed}] {r.label}: evaluating {trained['checkpoint']}")
            state_path = out / "evals" / f"seed{seed}" / f"{r.key}.pt"
            scores = evaluate_checkpoint(trained["checkpoint"], x, y, p, state_path,
                                         device=device, say=say, only_cached=opts.report_only)
            if scores is None:
                doc["skipped"].append({"key": r.key, "seed": seed, "reason": "trained, evaluation "
                                       f"not finished ({progress(state_path, p, len(y))})"})
                continue
            results.append({"seed": seed, "key": r.key, "label": r.label, "parent": r.parent,
                            **trained, **scores})
            say(f"[seed {seed}] {r.label}: clean {scores['clean_acc']:.4f} PGD "
                f"{scores['pgd_acc']:.4f} AA {scores['autoattack_acc']:.4f} masking "
                f"{'pass' if scores['masking']['all'] else 'FAIL'}")
            _write(doc, dest)  # after every row: a partial table if the run is cut short
    if results:
        _write(doc, dest)
        say(f"wrote {dest / 'table.md'}, table.json, robust_vs_cost.png")
    return doc


def _write(doc: dict, dest: Path) -> None:
    doc["date_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    doc["load_average"] = load_average()  # shared machines
    report.write(doc, dest)


def _read_rows(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def row_settings(r: Recipe, seed: int, parent: str | None, opts) -> dict:
    """What a row's training depends on, as recorded in its compare_done.json."""
    settings = json.loads(json.dumps({**r.train, "epochs": r.epochs, "data": opts.data,
                                      "arch": opts.arch, "seed": seed, "parent": parent,
                                      "batch_size": opts.batch_size,
                                      "train_images": opts.train_images,
                                      "val_images": opts.val_images,
                                      **train_fast_path(opts)}, default=str))
    if r.train.get("co_guard"):  # a changed rule retrains the row
        settings["co_guard_rule"] = GUARD_DESCRIPTION
    return settings


def train_row(r: Recipe, seed: int, run_dir: Path, parent: str | None, opts) -> dict:
    """Train one row (or reuse the finished run of the same settings); returns checkpoint,
    epochs run, cost."""
    done = run_dir / DONE
    settings = row_settings(r, seed, parent, opts)
    cls = row_class(r.method or r.key)
    fresh = False
    if done.is_file():
        info = json.loads(done.read_text())
        # rows trained before the fast path was an option trained in fp32, contiguous
        if _portable({**FP32_SETTINGS, **info.get("settings", {})}) == _portable(settings):
            # the checkpoint of this folder, wherever it was when the row was trained
            return {"trained_under": trained_in(cls.training_run(run_dir)), **info,
                    "checkpoint": str(run_dir / Path(info["checkpoint"]).name)}
        fresh = True  # the recipe or budget changed: train again from scratch
    if opts.report_only:
        return None
    if not cls.trains:  # a pipeline of its own (RiFT)
        info = cls.compare_run(r.epochs, seed, run_dir, parent, opts)
    else:
        from aft_fast.train.options import TrainOptions
        from aft_fast.train.run import train

        resume = not fresh and (run_dir / "last.pt").is_file() and _same_run(run_dir, settings)
        extra = {k: v for k, v in (("eval_images", opts.val_images),
                                   ("train_images", opts.train_images)) if v}
        topts = TrainOptions(**r.train, **extra, data=opts.data, arch=opts.arch, seed=seed,
                             out=str(run_dir), batch_size=opts.batch_size, device=opts.device,
                             weights=parent, resume=resume, overwrite=not resume, quiet=True,
                             log_every=10**9, **train_fast_path(opts))
        train(topts)
        rows = _read_rows(run_dir)
        info = {"checkpoint": str(run_dir / "best.pt"), "epochs_run": len(rows),
                "train_seconds": sum(row.get("epoch_seconds") or 0.0 for row in rows),
                "stopped_early": next((row["guard"] for row in rows if "guard" in row), None),
                "best_epoch": _best_epoch(run_dir)}
    info["settings"] = settings
    info["trained_under"] = trained_in(cls.training_run(run_dir))
    # where its seconds were measured: the report may be written later, elsewhere
    info["trained_on"] = {**environment(pick_device(opts.device)),
                          "load_average_end": load_average()}
    write_json(info, done)
    return info


def _portable(settings):
    """Settings as compared across a moved or copied comparison folder: the parent's checkpoint
    by its place in the folder (runs/seedS/KEY/best.pt), not by the path it had."""
    if not isinstance(settings, dict) or not settings.get("parent"):
        return settings
    return {**settings, "parent": "/".join(Path(settings["parent"]).parts[-4:])}


FP32_SETTINGS = {"amp": "none", "channels_last": "off"}  # the former fixed training precision


def train_fast_path(opts: CompareOptions) -> dict:
    """The training rows' precision and memory format settings (evaluation is fp32 regardless)."""
    return {"amp": opts.amp, "channels_last": opts.channels_last}


def _same_run(run_dir: Path, settings: dict) -> bool:
    """Whether the unfinished run in `run_dir` was started with these settings (its args.yaml):
    only then is it resumed; otherwise it is trained again from scratch."""
    import yaml

    try:
        recorded = yaml.safe_load((run_dir / "args.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False
    keys = [k for k in settings if k not in ("parent", "val_images", "co_guard_rule")]
    rule = recorded.get("resolved", {}).get("co_guard")
    recorded = {**FP32_SETTINGS, **recorded}
    recorded["channels_last"] = channels_last_setting(recorded["channels_last"])
    same = all(recorded.get(k) == settings[k] for k in keys)
    return same and rule == settings.get("co_guard_rule")


def _best_epoch(run_dir: Path):
    from aft_fast.train.checkpoint import read_checkpoint

    try:
        return read_checkpoint(run_dir / "best.pt").get("epoch")
    except (FileNotFoundError, ValueError):
        return None
