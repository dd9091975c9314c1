"""RiFT's three steps as runs that read and write OUT, each usable alone:

    mrc          → OUT/mrc.json (ranked), OUT/mrc.png
    finetune     → OUT/finetune/ (an ordinary training run: best.pt, metrics, plots)
    interpolate  → OUT/interpolation.json, OUT/alpha.png, OUT/rift.pt
    rift()       → all three, then OUT/summary.md and OUT/rift.json (each step's time)
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

from aft_fast.errors import OptionError
from aft_fast.io import write_json, write_text
from aft_fast.models import rebuild
from aft_fast.rift import plots
from aft_fast.rift.finetune import finetune
from aft_fast.rift.interpolate import choose_alpha, interpolate_state, score
from aft_fast.rift.mrc import adversarial_set, criticality, weight_modules
from aft_fast.rift.options import RiftOptions, check
from aft_fast.rift.source import at_checkpoint, loaders_for, open_checkpoint, refuse_to_replace
from aft_fast.runtime import environment, pick_device, synced_clock
from aft_fast.train.checkpoint import checkpoint_weights, load_checkpoint, save_checkpoint
from aft_fast.train.partial import find_submodule


def _say(opts: RiftOptions, text: str) -> None:
    if not opts.quiet:
        print(text, flush=True)


def _device(opts: RiftOptions):
    try:
        return pick_device(opts.device)
    except ValueError as exc:
        raise OptionError("device", str(exc).split(": ", 1)[-1]) from exc


def run_mrc(opts: RiftOptions) -> dict:
    """Step 1: MRC of every Conv2d/Linear weight on PGD examples of the training data."""
    check(opts, "mrc")
    out = Path(opts.out)
    refuse_to_replace([out / "mrc.json", out / "mrc.png"], opts.overwrite)
    ckpt, eps = at_checkpoint(opts)
    device = _device(opts)
    model = load_checkpoint(opts.checkpoint, device, trust_code=opts.trust_code)
    # train_eval: a fixed, unshuffled subset of the training images (never val or test).
    loaders = loaders_for(opts, ckpt, device, train_eval_size=opts.mrc_examples)
    t0 = synced_clock(device)
    x, y = adversarial_set(model, loaders.train_eval, eps, opts.attack_steps, opts.mrc_examples,
                           opts.seed)
    t_adv = synced_clock(device) - t0
    _say(opts, f"MRC: {len(y)} PGD-{opts.attack_steps} examples at eps {eps:.4g} ({t_adv:.1f}s)")
    rows = criticality(model, x, y, rho=opts.rho, steps=opts.mrc_steps, chunk=opts.mrc_batch_size,
                       activation_cache=opts.activation_cache,
                       progress=lambda r: _say(opts, f"  {r['module']:<24} MRC {r['mrc']:.4f} "
                                                     f"({r['seconds']:.2f}s)"))
    total = synced_clock(device) - t0
    order = weight_modules(model.model)
    report = {"checkpoint": opts.checkpoint, "arch": ckpt["arch"], "data": opts.data,
              "least_critical": rows[0]["module"], "most_critical": rows[-1]["module"],
              "ranked": rows,
              "settings": {"eps": eps, "rho": opts.rho, "examples": len(y),
                           "split": "train_eval (the first examples of the training split)",
                           "attack": f"PGD-{opts.attack_steps}, eval mode, alpha 2.5*eps/steps",
                           "attack_steps": opts.attack_steps, "ascent_steps": opts.mrc_steps,
                           "step": "2.5*rho*||w||/steps, normalised gradient, projected after "
                           "every step",
                           "activation_cache": opts.activation_cache},
              "cost": {"adversarial_examples_seconds": t_adv, "total_seconds": total,
                       "modules": len(rows),
                       "seconds_per_module": sum(r["seconds"] for r in rows) / len(rows),
                       "modules_run_from_cache": sum(r["activation_cache"] for r in rows)},
              "environment": environment(device)}
    write_json(report, out / "mrc.json")
    plots.plot_mrc(rows, order, out / "mrc.png",
                   f"Module robust criticality: {_short(ckpt['arch'])} on {opts.data}\n"
                   f"ρ = {opts.rho:g}, {len(y)} PGD-{opts.attack_steps} training examples, "
                   f"{opts.mrc_steps} ascent steps")
    _say(opts, f"MRC: least critical {rows[0]['module']}, most {rows[-1]['module']}; "
               f"{total:.1f}s → {out / 'mrc.json'}")
    return report


def least_critical(out: Path) -> str:
    """The least critical module recorded in OUT/mrc.json."""
    path = out / "mrc.json"
    if not path.is_file():
        raise OptionError("module", f"none given and {path} does not exist: run the mrc step "
                                    "first (same out) or name the module to fine-tune")
    return json.loads(path.read_text())["least_critical"]


def run_finetune(opts: RiftOptions) -> dict:
    """Step 2: fine-tune the least critical module (or `opts.module`) on clean training data."""
    check(opts, "finetune")
    out = Path(opts.out)
    ckpt, eps = at_checkpoint(opts)
    module = opts.module or least_critical(out)
    find_submodule(rebuild(ckpt, trust_code=opts.trust_code).model, module, option="module")
    _say(opts, f"fine-tuning {module} of {opts.checkpoint} ({opts.epochs} epochs, lr {opts.lr:g}, "
               f"BatchNorm statistics {opts.bn_stats})")
    summary = finetune(checkpoint=opts.checkpoint, ckpt=ckpt, module=module,
                       data=opts.data, out=out / "finetune", eps=eps, epochs=opts.epochs,
                       lr=opts.lr, momentum=opts.momentum, weight_decay=opts.weight_decay,
                       bn_stats=opts.bn_stats, amp=opts.amp,
                       channels_last=opts.channels_last, batch_size=opts.batch_size,
                       eval_batch_size=opts.eval_batch_size,
                       image_size=opts.image_size or ckpt.get("input_size"), loader=opts.loader,
                       workers=opts.workers, device=opts.device, seed=opts.seed,
                       overwrite=opts.overwrite, quiet=opts.quiet)
    return {"module": module, "run_dir": str(out / "finetune"), "best": summary["best"],
            "rows": summary["rows"]}


def run_interpolate(opts: RiftOptions) -> dict:
    """Step 3: score θ(α) on val for each α, keep the most accurate one that stays robust."""
    check(opts, "interpolate")
    out = Path(opts.out)
    refuse_to_replace([out / "rift.pt", out / "interpolation.json"], opts.overwrite)
    at_ckpt, eps = at_checkpoint(opts)
    ft_path = opts.finetuned or str(out / "finetune" / "best.pt")
    ft_ckpt = open_checkpoint(ft_path, option="finetuned")
    # the weights each checkpoint is evaluated with: the weight average when its run kept one
    at_weights, ft_weights = checkpoint_weights(at_ckpt), checkpoint_weights(ft_ckpt)
    if ft_ckpt["arch"] != at_ckpt["arch"] or ft_weights.keys() != at_weights.keys():
        raise OptionError("finetuned", f"{ft_path} holds a {ft_ckpt['arch']}, not the "
                                       f"{at_ckpt['arch']} of {opts.checkpoint}")
    device = _device(opts)
    model = load_checkpoint(opts.checkpoint, device, trust_code=opts.trust_code)
    loaders = loaders_for(opts, at_ckpt, device)
    alphas = sorted(set(float(a) for a in opts.alphas) | {0.0})  # the AT model: the reference
    batches = (None if opts.val_images is None
               else math.ceil(opts.val_images / opts.eval_batch_size))
    rows = score(model, at_weights, ft_weights, alphas, loaders.val, eps,
                 opts.eval_steps, opts.seed, max_batches=batches,
                 progress=lambda r: _say(opts, f"  α {r['alpha']:.2f}: val clean "
                                               f"{r['clean_acc']:.4f} robust {r['robust_acc']:.4f}"))
    reference = next(r for r in rows if r["alpha"] == 0.0)
    chosen = choose_alpha(rows, reference["robust_acc"], opts.tolerance)  # α = 0 always qualifies
    model.model.load_state_dict(interpolate_state(at_weights, ft_weights, chosen["alpha"]))
    config = {**(at_ckpt.get("config") or {}),
              "rift": {**_plain(opts), "eps": eps, "finetuned": ft_path, "alpha": chosen["alpha"],
                       "module": (ft_ckpt.get("config") or {}).get("train_only")}}
    save_checkpoint(out / "rift.pt", model=model, arch=at_ckpt["arch"],
                    num_classes=at_ckpt["num_classes"], input_size=at_ckpt["input_size"],
                    method="rift", config=config, epoch=at_ckpt.get("epoch", 0),
                    metrics={"val_clean_acc": chosen["clean_acc"],
                             "val_robust_acc": chosen["robust_acc"], "alpha": chosen["alpha"]})
    report = {"checkpoint": opts.checkpoint, "finetuned": ft_path, "eps": eps,
              "attack": f"PGD-{opts.eval_steps}, eval mode, alpha 2.5*eps/steps, seed {opts.seed}",
              "attack_steps": opts.eval_steps, "split": "val", "tolerance": opts.tolerance,
              "rule": "highest val clean accuracy with val robust accuracy >= AT's - tolerance; "
              "ties to the smaller alpha",
              "reference": reference, "chosen": chosen, "rows": rows,
              "environment": environment(device)}
    write_json(report, out / "interpolation.json")
    plots.plot_alpha(rows, chosen, reference["robust_acc"], opts.tolerance, out / "alpha.png",
                     f"RiFT interpolation: {_short(at_ckpt['arch'])} on {opts.data}\n"
                     f"{rows[0]['n']} val images, PGD-{opts.eval_steps} at ε = {eps:.4g}")
    _say(opts, f"chose α = {chosen['alpha']:g}: val clean {chosen['clean_acc']:.4f} "
               f"(AT {reference['clean_acc']:.4f}), robust {chosen['robust_acc']:.4f} "
               f"(AT {reference['robust_acc']:.4f}) → {out / 'rift.pt'}")
    return report


def _short(arch: str) -> str:
    """An import-path arch by its factory's name (package.module:factory → factory)."""
    return arch.rsplit(":", 1)[-1]


def _plain(opts: RiftOptions) -> dict:
    d = dataclasses.asdict(opts)
    d["alphas"] = list(d["alphas"])
    return d


def rift(opts: RiftOptions) -> dict:
    """MRC, fine-tune, interpolate; writes OUT/summary.md and OUT/rift.json."""
    check(opts, "mrc", "finetune", "interpolate")
    if opts.finetuned is not None:
        raise OptionError("finetuned", "is for the interpolate step alone; the full run "
                                       "interpolates toward its own fine-tune")
    times, results = {}, {}
    for name, step in (("mrc", run_mrc), ("finetune", run_finetune),
                       ("interpolate", run_interpolate)):
        start = time.perf_counter()
        results[name] = step(opts)
        times[name] = time.perf_counter() - start
    summary = {"times_seconds": times, "module": results["finetune"]["module"],
               "module_from": "given" if opts.module else "least critical",
               "finetune_best": results["finetune"]["best"],
               "alpha": results["interpolate"]["chosen"]["alpha"],
               "reference": results["interpolate"]["reference"],
               "chosen": results["interpolate"]["chosen"],
               "mrc_cost": results["mrc"]["cost"], "options": _plain(opts),
               "environment": results["interpolate"]["environment"]}
    out = Path(opts.out)
    write_json(summary, out / "rift.json")
    write_text(summary_table(summary), out / "summary.md")
    _say(opts, summary_table(summary))
    return summary


def summary_table(s: dict) -> str:
    ref, ch, t = s["reference"], s["chosen"], s["times_seconds"]
    pct = lambda v: f"{100 * v:.2f}%"  # noqa: E731
    return (f"RiFT: fine-tuned `{s['module']}` ({s['module_from']}), best epoch "
            f"{s['finetune_best']['epoch'] + 1}, chosen α = {ch['alpha']:g}\n\n"
            f"| model (val split) | clean | robust |\n|---|---:|---:|\n"
            f"| AT | {pct(ref['clean_acc'])} | {pct(ref['robust_acc'])} |\n"
            f"| RiFT (α = {ch['alpha']:g}) | {pct(ch['clean_acc'])} | {pct(ch['robust_acc'])} |\n\n"
            f"| step | seconds |\n|---|---:|\n"
            + "".join(f"| {k} | {v:.1f} |\n" for k, v in t.items())
            + f"| total | {sum(t.values()):.1f} |\n")
