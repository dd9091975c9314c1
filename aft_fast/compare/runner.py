"""`compare(opts)`: train every row (each seed), evaluate every model with one protocol, write
the table. Resumable: a finished training run or evaluation is never redone, a killed training
run resumes from its last.pt, a killed evaluation from its last finished stage."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from aft_fast.compare import report, sweep, sweep_report
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


def recipes_of(opts: CompareOptions, epochs: int) -> list[Recipe]:
    """The rows at budget `epochs` (in a sweep with the paper-length fine-tunes too)."""
    return plan(arch=opts.arch, eps=opts.eps, epochs=epochs, train_steps=opts.train_steps,
                replays=opts.replays, aft_epochs=opts.aft_epochs, methods=opts.methods,
                warmup_fraction=opts.warmup_fraction, ema_decay=opts.ema_decay,
                paper_length=opts.sweep)


def folder(opts: CompareOptions, kind: str, seed: int, budget: int) -> Path:
    """`runs/` or `evals/` of one seed and, in a sweep, one budget (seedS/E{budget}): a single
    budget keeps the layout it always had."""
    base = Path(opts.out) / kind / f"seed{seed}"
    return base / f"E{budget}" if opts.sweep else base


def budget_of(opts: CompareOptions, budget: int) -> dict:
    """A skipped row's budget, named in a sweep only (a single budget's entries as before)."""
    return {"budget": budget} if opts.sweep else {}


@dataclass
class Evaluator:
    """What evaluating a row needs: the test split, the protocol, the device, the options."""
    opts: CompareOptions
    p: Protocol
    x: object
    y: object
    device: object
    say: object

    def __call__(self, row: dict, skipped: list, *, autoattack: bool) -> dict | None:
        """`row` with its evaluation figures, or None (listed in `skipped`: not finished)."""
        seed, budget, key = row["seed"], row["budget"], row["key"]
        if not self.opts.report_only:
            self.say(f"[seed {seed}] {row['label']}: evaluating {row['checkpoint']}")
        state_path = folder(self.opts, "evals", seed, budget) / f"{key}.pt"
        scores = evaluate_checkpoint(row["checkpoint"], self.x, self.y, self.p, state_path,
                                     device=self.device, say=self.say, autoattack=autoattack,
                                     only_cached=self.opts.report_only)
        if scores is None:
            skipped.append({"key": key, "seed": seed, **budget_of(self.opts, budget),
                            "reason": "trained, evaluation not finished "
                                      f"({progress(state_path, self.p, len(self.y))})"})
            return None
        aa = "-" if scores["autoattack_acc"] is None else f"{scores['autoattack_acc']:.4f}"
        self.say(f"[seed {seed}] {row['label']}: clean {scores['clean_acc']:.4f} PGD "
                 f"{scores['pgd_acc']:.4f} AA {aa} masking "
                 f"{'pass' if scores['masking']['all'] else 'FAIL'}")
        return {**row, **scores}


def compare(opts: CompareOptions, command: str | None = None) -> dict:
    opts.check()
    say = (lambda s: None) if opts.quiet else (lambda s: print(s, flush=True))
    device = pick_device(opts.device)
    recipes = {budget: recipes_of(opts, budget) for budget in opts.epochs}
    p = protocol_of(opts)
    x, y, split = test_set(opts.data)
    evaluate = Evaluator(opts, p, x, y, device, say)
    train_size = opts.train_images or split["train_split_images"]
    doc = {"command": command or "aft-fast compare " + " ".join(sys.argv[1:]),
           "options": asdict(opts), "protocol": p.settings(),
           "reference_autoattack": p.reference_autoattack, "test_split": split,
           "recipes": [{**asdict(r), "budget": b} for b, rs in recipes.items() for r in rs],
           "skipped": [], "rows": [], "environment": environment(device)}
    dest = Path(opts.report or opts.out)
    results, skipped = doc["rows"], doc["skipped"]
    aa_everywhere = opts.aa_points == "all"
    for seed in opts.seeds:
        for budget in opts.epochs:
            for row in trained_rows(recipes[budget], seed, budget, opts, train_size, say, skipped):
                if opts.train_only:
                    continue
                row = evaluate(row, skipped, autoattack=aa_everywhere)
                if row is not None:
                    results.append(row)
                    _write(doc, dest)  # after every row: a partial table if the run is cut short
    chosen = None if opts.train_only else sweep.autoattack_points(results, opts.aa_points)
    for i, row in enumerate(results):  # AutoAttack on the points that matter (chosen on PGD)
        if chosen is not None and (row["budget"], row["key"]) in chosen:
            results[i] = evaluate(row, skipped, autoattack=True) or row
            _write(doc, dest)
    if results:
        _write(doc, dest)
        say(f"wrote {dest / 'table.md'}, table.json, {report.plot_name(doc)}")
    return doc


def trained_rows(recipes: list[Recipe], seed: int, budget: int, opts: CompareOptions,
                 train_size: int, say, skipped: list):
    """Train (or reuse) each row of one seed and budget, parents first; yield each trained row
    (no figures yet). At a sweep's longest budget each from-scratch row is yielded twice: at its
    best epoch on val (best.pt) and at its last (last.pt, key "name@last")."""
    runs, ckpts = folder(opts, "runs", seed, budget), {}
    longest = opts.sweep and budget == max(opts.epochs)
    for r in recipes:
        run_dir = runs / r.key
        if not opts.report_only:
            say(f"[seed {seed}] {r.label}: training ({r.epochs} epochs)")
        trained = train_row(r, seed, run_dir, ckpts.get(r.parent), opts)
        if trained is None:  # --report-only: the run has not finished
            reason = f"training not finished ({len(_read_rows(run_dir))} of {r.epochs} epochs)"
            if (run_dir / DONE).is_file():
                reason = "trained with other settings than this command's (run it to retrain)"
            skipped.append({"key": r.key, "seed": seed, **budget_of(opts, budget),
                            "reason": reason})
            continue
        ckpts[r.key] = trained["checkpoint"]
        row = {"seed": seed, "budget": budget, "key": r.key, "label": r.label, "parent": r.parent,
               "paper_length": bool(r.parent) and row_class(r.method).paper_epochs == r.epochs,
               **trained, "checkpoint_kind": "best",
               "passes_per_image": row_passes(r, run_dir, trained["epochs_run"], train_size)}
        yield row
        if longest and r.parent is None and (run_dir / "last.pt").is_file():
            yield {**row, "key": r.key + sweep.LAST, "label": f"{r.label} (last epoch)",
                   "checkpoint": str(run_dir / "last.pt"), "checkpoint_kind": "last"}


def _write(doc: dict, dest: Path) -> None:
    doc["date_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    doc["load_average"] = load_average()  # shared machines
    # a sweep: one table per budget, the paper's setting, the Pareto plot
    (sweep_report if report.is_sweep(doc) else report).write(doc, dest)


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
    if opts.test_each_epoch:  # recorded only when on: rows trained before it was one match
        settings["test_each_epoch"] = True
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
                             log_every=10**9, test_each_epoch=opts.test_each_epoch,
                             **train_fast_path(opts))
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
