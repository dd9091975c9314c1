"""``aft-fast analyze``: the AFT paper's analyses on your own runs, models and data.

    curves RUN_DIR...    overfitting curves (Figure 1) from run directories
    plateau              step-LR(i, γ) plateau sweep + AFT's schedule (Figure 4), resumable
    embedding CKPT...    LDA → PCA picture of penultimate features, clean | PGD (Figure 3)

Each writes OUT/NAME.png, OUT/NAME.csv and OUT/NAME.json (the JSON carries the command line and
the environment stamp).
"""
from __future__ import annotations

import shlex
import sys

import click

from aft_fast.commands.common import FRACTION, Group, config_option, device_option
from aft_fast.errors import OptionError


def _command_line() -> str:
    return shlex.join(["aft-fast", *sys.argv[1:]])


def _out_option(name: str):
    def wrap(f):
        f = click.option("--name", default=name, show_default=True,
                         help="File stem of the outputs: OUT/NAME.{png,csv,json}.")(f)
        return click.option("--out", default="analysis", show_default=True,
                            type=click.Path(file_okay=False), help="Folder for the outputs.")(f)
    return wrap


@click.group("analyze", cls=Group)  # library errors come out as click errors
def analyze_group():
    """The AFT paper's analyses: overfitting curves, the LR plateau study, the embedding picture."""


@analyze_group.command("curves")
@config_option
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--label", "labels", multiple=True,
              help="Legend label of each run, in order (default: directory name, method, schedule).")
@_out_option("curves")
def curves_command(run_dirs, labels, out, name):
    """Train robust, held-out clean and held-out robust accuracy per epoch, the robust
    generalisation gap (train robust − held-out robust) and the LR, for one or more runs.

    Reads only each run's metrics.jsonl, args.yaml and best.pt. The held-out split is the one the
    loop evaluated each epoch (val, held out from train, unless the run recorded test columns):
    per-epoch test accuracy cannot be recomputed, as a run keeps only last.pt and best.pt."""
    from aft_fast.analysis.curves import curve_table, plot_curves, read_run
    from aft_fast.analysis.output import output_paths, write_csv, write_result

    if labels and len(labels) != len(run_dirs):
        raise OptionError("label", f"give one per run ({len(run_dirs)}), or none; got "
                                   f"{len(labels)}")
    runs = [read_run(d, labels[k] if labels else None) for k, d in enumerate(run_dirs)]
    paths = output_paths(out, name)
    table = curve_table(runs)
    plot_curves(runs, paths["png"])
    write_csv(table, paths["csv"])
    write_result({"command": _command_line(), "runs": [
        {"run": str(r.run_dir), "label": r.label, "held_out_split": r.split,
         "best_epoch": None if r.best_epoch is None else r.best_epoch + 1,
         "settings": r.settings} for r in runs], "rows": table}, paths["json"])
    for r in runs:
        gaps = [g for g in r.gap() if g is not None]
        best = "-" if r.best_epoch is None else r.best_epoch + 1
        click.echo(f"{r.label}: {len(r.rows)} epochs, best.pt epoch {best}, robust gap "
                   + (f"{100 * gaps[0]:.1f} -> {100 * gaps[-1]:.1f} pp (max {100 * max(gaps):.1f})"
                      if gaps else "-") + f" [held out: {r.split}]")
    click.echo(f"wrote {paths['png']}, {paths['csv']}, {paths['json']}")


def _parse_plateaus(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in str(text).replace(",", " ").split()]
    except ValueError as exc:
        raise OptionError("plateaus", f"expected numbers separated by commas, like 1,2,5; got "
                                      f"{text!r}") from exc


@analyze_group.command("plateau")
@config_option
@click.option("--weights", required=True, type=click.Path(dir_okay=False),
              help="The pretrained model every run starts from (aft_fast checkpoint or state_dict).")
@click.option("--arch", default=None, help="Architecture (default: the checkpoint's).")
@click.option("--data", default=None, help="Data (default: the checkpoint's run's, else mnist5k).")
@click.option("--epochs", type=int, default=10, show_default=True, help="Epochs of every run.")
@click.option("--plateaus", default=None,
              help="Plateau lengths i, comma-separated (default: 6 values spread over 1..epochs).")
@click.option("--gamma", type=float, default=0.5, show_default=True, help="step-LR's γ.")
@click.option("--aft/--no-aft", "include_aft", default=True, show_default=True,
              help="Also run AFT's slow-start-fast-decay schedule.")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Peak LR of every run.")
@click.option("--eps", type=FRACTION, required=True, help="l∞ radius (pixel units; 8/255 ok).")
@click.option("--steps", type=int, default=10, show_default=True, help="Training PGD steps.")
@click.option("--eval-steps", type=int, default=20, show_default=True,
              help="PGD steps of the per-epoch and final evaluations.")
@click.option("--eval-max-batches", type=int, default=None,
              help="Per-epoch evaluation: at most this many batches (val and train subset).")
@click.option("--test-max-batches", type=int, default=None,
              help="Final test evaluation: at most this many batches (default: the whole split).")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed for every run.")
@click.option("--runs", "runs_dir", default="runs/plateau", show_default=True,
              type=click.Path(file_okay=False), help="Folder of the sweep's run directories.")
@click.option("--resume", is_flag=True, help="Continue runs that were killed mid-training.")
@device_option
@_out_option("plateau")
def plateau_command(weights, arch, data, epochs, plateaus, gamma, include_aft, optimizer, lr, eps,
                    steps, eval_steps, eval_max_batches, test_max_batches, batch_size, seed,
                    runs_dir, resume, device, out, name):
    """Fine-tune one pretrained model with step-LR(i, γ) for several plateau lengths i and with
    AFT's schedule (same method, optimizer, peak LR, seed and initial weights); plot final train
    robust, test clean and test robust accuracy against i, and the per-epoch curves.

    Finished runs are skipped; a killed run continues with --resume."""
    from aft_fast.analysis.output import output_paths, write_csv, write_result
    from aft_fast.analysis.plateau import (default_plateaus, epoch_table, plan_sweep, plot_sweep,
                                           run_sweep, summary_table)
    from aft_fast.train.options import TrainOptions

    arch, data = _checkpoint_defaults(weights, arch, data)
    values = _parse_plateaus(plateaus) or default_plateaus(epochs)
    base = TrainOptions(method="aft", arch=arch, data=data, weights=weights, epochs=epochs,
                        optimizer=optimizer, lr=lr, eps=eps, steps=steps, eval_steps=eval_steps,
                        eval_max_batches=eval_max_batches, batch_size=batch_size, seed=seed,
                        device=device, quiet=True, log_every=10**9)
    runs = plan_sweep(base, runs_dir, values, gamma, include_aft)
    results = run_sweep(runs, resume=resume, test_max_batches=test_max_batches, log=click.echo)
    paths = output_paths(out, name)
    title = (f"Plateau study: {arch} on {data}, every run fine-tuned from {weights} with the "
             f"same seed\n{optimizer}, peak LR {lr:g}, {epochs} epochs of PGD-{steps} at ε = "
             f"{eps:.3g}: step-LR(i, {gamma:g}) vs AFT's slow start, fast decay; accuracies "
             f"under PGD-{eval_steps}")
    plot_sweep(results, paths["png"], title=title)
    summary = summary_table(results)
    write_csv(summary, paths["csv"])
    write_csv(epoch_table(results), paths["csv"].with_name(f"{name}_epochs.csv"))
    write_result({"command": _command_line(), "settings": {
        "weights": weights, "arch": arch, "data": data, "epochs": epochs, "gamma": gamma,
        "plateaus": values, "optimizer": optimizer, "lr": lr, "eps": eps, "steps": steps,
        "eval_steps": eval_steps, "eval_max_batches": eval_max_batches,
        "test_max_batches": test_max_batches, "seed": seed}, "summary": summary,
        "runs": results}, paths["json"], device=_device(device))
    for row in summary:
        click.echo(f"{row['run']:>10}: train robust {_pct(row['train_robust_acc'])}  test clean "
                   f"{_pct(row['test_clean_acc'])}  test robust {_pct(row['test_robust_acc'])}")
    click.echo(f"wrote {paths['png']}, {paths['csv']}, {paths['json']}")


@analyze_group.command("embedding")
@config_option
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--label", "labels", multiple=True,
              help="Row label of each checkpoint, in order (default: its method and folder).")
@click.option("--data", default=None, help="Data (default: the first checkpoint's run's).")
@click.option("--split", type=click.Choice(["test", "val", "train_eval"]), default="test",
              show_default=True, help="Which images to embed.")
@click.option("--max-images", type=int, default=1000, show_default=True,
              help="Embed the first N images of the split.")
@click.option("--eps", type=FRACTION, default=None,
              help="PGD radius (default: the training eps of the first checkpoint not trained "
                   "naturally).")
@click.option("--steps", type=int, default=20, show_default=True, help="PGD steps.")
@click.option("--alpha", type=FRACTION, default=None, help="PGD step (default 2.5·eps/steps).")
@click.option("--batch-size", type=int, default=250, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds PGD's random starts.")
@click.option("--trust-code", is_flag=True,
              help="Import the model code a checkpoint names (--arch package.module:factory).")
@device_option
@_out_option("embedding")
def embedding_command(checkpoints, labels, data, split, max_images, eps, steps, alpha, batch_size,
                      seed, trust_code, device, out, name):
    """Penultimate-layer features (the classifier head's input) of clean and PGD images, LDA to
    c − 1 dimensions then PCA to 2, one row per checkpoint; prints each embedding's separation
    (silhouette of the 2-D points, Fisher ratio in LDA space; true labels)."""
    from aft_fast.analysis.embedding import embed_checkpoints, plot_embeddings
    from aft_fast.analysis.output import output_paths, write_csv, write_result

    if labels and len(labels) != len(checkpoints):
        raise OptionError("label", f"give one per checkpoint ({len(checkpoints)}), or none; "
                                   f"got {len(labels)}")
    _, data = _checkpoint_defaults(checkpoints[0], "-", data)
    panels, info = embed_checkpoints(
        checkpoints, labels or None, data=data, split=split, max_images=max_images, eps=eps,
        steps=steps, alpha=alpha, batch_size=batch_size, seed=seed, device=_device(device),
        trust_code=trust_code)
    paths = output_paths(out, name)
    plot_embeddings(panels, info["class_names"], paths["png"], title=info["title"])
    scores = [{"checkpoint": p["checkpoint"], "label": p["label"], "kind": kind,
               **{k: v for k, v in p["embedding"][kind].items() if k != "points"}}
              for p in panels for kind in p["embedding"]]
    write_csv(scores, paths["csv"])
    write_result({"command": _command_line(), **{k: v for k, v in info.items()},
                  "score": "silhouette: 2-D LDA→PCA points, true labels, Euclidean; fisher_lda:"
                           " trace(S_b)/trace(S_w) in the (c−1)-D LDA space",
                  "scores": scores}, paths["json"], device=_device(device))
    for s in scores:
        click.echo(f"{s['label']:>24} {s['kind']:>5}: accuracy {_pct(s['accuracy'])}  silhouette "
                   f"{s['silhouette']:+.3f}  Fisher (LDA space) {s['fisher_lda']:.3f}")
    click.echo(f"wrote {paths['png']}, {paths['csv']}, {paths['json']}")


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:5.1f}%"


def _device(name: str):
    from aft_fast.runtime import pick_device

    try:
        return pick_device(name)
    except ValueError as exc:
        raise OptionError("device", str(exc)) from exc


def _checkpoint_defaults(path: str, arch: str | None, data: str | None) -> tuple[str, str]:
    """Architecture and data a checkpoint's run used, where the user gave none."""
    if arch is not None and data is not None:
        return arch, data
    from aft_fast.train.checkpoint import read_checkpoint

    try:
        ckpt = read_checkpoint(path)
    except ValueError:  # a plain state_dict: nothing recorded
        ckpt = {}
    except FileNotFoundError as exc:
        raise OptionError("checkpoint" if arch == "-" else "weights", f"{path}: no such file") \
            from exc
    if arch is None and "arch" not in ckpt:
        raise OptionError("arch", f"{path} does not record its architecture: pass it")
    return (arch or ckpt["arch"]), (data or (ckpt.get("config") or {}).get("data") or "mnist5k")
