"""The automatic fast path against today's fp32 defaults and a plain-PyTorch loop, side by side.

    python benchmarks/fast_path.py --out benchmarks/results/fast_path_cpu.json

Training: one iteration (attack + weight update) of PGD AT, Fast AT and AFT, timed in interleaved
rounds, for the small CNN (1x28x28, batch 128) and PreAct ResNet-18 (3x32x32, batch 32 on a
CPU: fewer seconds per round), PGD-5 (the issue's setting), each method with the comparison's optimizer for that model family. Variants:
- fp32: the engine with `--amp none --channels-last off` (the defaults until now);
- auto: the engine with `--amp auto --channels-last auto`, resolved for this device;
- bf16+cl (PGD AT only, where auto did not pick it): the engine with `--amp bf16 --channels-last
  on` forced, what auto picks where bf16 is native; on a CPU without it, what emulation costs;
- plain: PGD AT / FGSM-RS and the update written as research code writes them, fp32, NCHW
  (`aft_fast.perf.plain_pgd`).
Seconds per epoch are the median iteration x the iterations of `--epoch-images` images.

Evaluation: PGD-50 (one restart) and reduced AutoAttack (10 iterations, 100 Square queries),
fp32, the NCHW model vs the channels_last one (`fast_path.for_evaluation`), on the same NCHW
images and starts, labels = the model's clean predictions (random weights; AutoAttack would skip
misclassified images): seconds and whether the robust predictions agree.

`--compile`: torch.compile (inductor) of the small CNN's PGD AT iteration: the first call
(compilation included) and the steady state, against eager.
"""
from __future__ import annotations

import argparse
import copy
import math
import time

import torch
import torch.nn.functional as F

from aft_fast import fast_path
from aft_fast.attacks import AttackConfig, pgd
from aft_fast.compare.recipes import BN_MODE, CIFAR_FAMILY, SMALL_FAMILY
from aft_fast.data.synthetic import synthetic
from aft_fast.io import write_json
from aft_fast.models import build
from aft_fast.perf.plain_pgd import plain_pgd
from aft_fast.perf.timing import time_interleaved
from aft_fast.runtime import environment, load_average
from aft_fast.train.update import Trainer, make_method
from aft_fast.train.run import make_optimizer

MODELS = {"small_cnn": (1, 28), "preact_resnet18": (3, 32)}
METHODS = ("pgd-at", "fast-at", "aft")


def _batch(arch: str, n: int, seed: int = 0):
    channels, side = MODELS[arch]
    return synthetic(n, (channels, side, side), 10, seed=seed)


def _recipe(arch: str, method: str) -> dict:
    return (SMALL_FAMILY if arch == "small_cnn" else CIFAR_FAMILY)[method]


def engine_step(model, method: str, recipe: dict, x, y, *, eps: float, steps: int,
                fast: fast_path.FastPath, compile: bool = False):
    """One training iteration of the engine under `fast` (its own copy of `model`)."""
    model = copy.deepcopy(model).to(memory_format=fast.memory_format)
    x = x.contiguous(memory_format=fast.memory_format)
    m = make_method(method, eps=eps, steps=steps, amp=fast.amp, bn_mode=BN_MODE[method],
                    compile=compile)
    opt = make_optimizer(recipe["optimizer"], model.parameters(), recipe["lr"], 0.9,
                         recipe.get("weight_decay", 5e-4))
    net = torch.compile(model) if compile else model
    trainer = Trainer(net, opt, fast.amp, x.device)
    return lambda: m.step(trainer, x, y, lambda frac: None)


def plain_step(model, method: str, recipe: dict, x, y, *, eps: float, steps: int):
    """The same iteration as research code writes it: fp32, NCHW, unfused attack, plain update."""
    model = copy.deepcopy(model)
    kw = {"lr": recipe["lr"]}
    if recipe["optimizer"] == "sgd":
        kw.update(momentum=0.9, weight_decay=recipe.get("weight_decay", 5e-4))
    opt = (torch.optim.SGD if recipe["optimizer"] == "sgd" else torch.optim.Adam)(
        model.parameters(), **kw)

    def fgsm_rs():  # locuslab/fast_adversarial: attack in train mode, alpha = 1.25 eps
        delta = torch.empty_like(x).uniform_(-eps, eps)
        delta = (torch.clamp(x + delta, 0, 1) - x).requires_grad_(True)
        F.cross_entropy(model(x + delta), y).backward()
        delta = torch.clamp(delta + 1.25 * eps * delta.grad.sign(), -eps, eps)
        return torch.clamp(x + delta, 0, 1).detach()

    def step():
        if method == "fast-at":
            model.train()
            x_adv = fgsm_rs()
        else:
            x_adv = plain_pgd(model, x, y, eps, 2.5 * eps / steps, steps)
        model.train()
        opt.zero_grad()
        F.cross_entropy(model(x_adv), y).backward()
        opt.step()

    return step


def train_section(arch: str, args, progress) -> dict:
    torch.manual_seed(0)
    model = build(arch, 10, in_channels=MODELS[arch][0])
    batch = args.batch if arch == "small_cnn" else args.resnet_batch
    x, y = _batch(arch, batch)
    auto = fast_path.resolve("auto", "auto", "cpu", model)
    forced = fast_path.FastPath("bf16", True)
    fp32 = fast_path.FastPath(None, False)
    iterations = math.ceil(args.epoch_images / batch)
    repeats = args.repeats if arch == "small_cnn" else args.resnet_repeats
    out = {"auto_resolved": auto.describe(), "batch": batch, "iterations_per_epoch": iterations,
           "methods": {}}
    for method in METHODS:
        recipe = _recipe(arch, method)
        kw = dict(eps=args.eps, steps=args.steps)
        variants = {"fp32": engine_step(model, method, recipe, x, y, fast=fp32, **kw),
                    "auto": engine_step(model, method, recipe, x, y, fast=auto, **kw),
                    "plain": plain_step(model, method, recipe, x, y, **kw)}
        if method in args.bf16_methods.split(",") and auto != forced:  # what auto did not pick
            variants["bf16+cl"] = engine_step(model, method, recipe, x, y, fast=forced, **kw)
        progress(f"{arch} {method}: {', '.join(variants)}")
        load = load_average()
        times = time_interleaved(variants, "cpu", warmup=1, repeats=repeats)
        rows = {k: {**t.as_dict(), "epoch_s": t.median * iterations} for k, t in times.items()}
        for k in rows:
            rows[k]["x_vs_fp32"] = rows["fp32"]["median_s"] / rows[k]["median_s"]
            rows[k]["x_vs_plain"] = rows["plain"]["median_s"] / rows[k]["median_s"]
        out["methods"][method] = {"recipe": recipe, "load_average_start": load,
                                  "load_average_end": load_average(), "variants": rows}
        progress("  " + ", ".join(f"{k} {r['epoch_s']:.1f} s/epoch" for k, r in rows.items()))
    return out


def eval_section(arch: str, args, progress) -> dict:
    """PGD-50 and reduced AutoAttack in fp32: the NCHW model against the channels_last one
    (`fast_path.for_evaluation`), the same NCHW images and random starts."""
    from aft_fast.attacks.autoattack import autoattack

    torch.manual_seed(0)
    models = {"fp32 contiguous": build(arch, 10, in_channels=MODELS[arch][0]).eval()}
    models["fp32 channels_last"] = fast_path.for_evaluation(copy.deepcopy(models["fp32 contiguous"]))
    n = args.eval_images if arch == "small_cnn" else args.resnet_eval_images
    x, _ = _batch(arch, n, seed=1)
    with torch.no_grad():  # labels = the clean predictions: every image is attacked in full
        y = models["fp32 contiguous"](x).argmax(1)  # (AutoAttack skips misclassified ones)
    cfg = AttackConfig(args.eps, 2.5 * args.eps / 50, 50)
    aa = dict(eps=args.eps, steps=args.aa_steps, queries=args.aa_queries, seed=0)
    attacks = {"pgd50": lambda m, n=n: pgd(m, x[:n], y[:n], cfg,
                                            generator=torch.Generator().manual_seed(0)),
               "autoattack_reduced": lambda m, n=n: autoattack(m, x[:n], y[:n], **aa)}
    out = {"settings": {"pgd": "PGD-50, alpha 2.5 eps/50, one random start", "autoattack": aa}}
    for name, attack in attacks.items():
        progress(f"{arch} eval {name}")
        for m in models.values():  # imports and lazy set-up, on 2 images, before timing
            attack(m, 2)
        adv = {}
        variants = {k: (lambda k=k, m=m: adv.__setitem__(k, attack(m))) for k, m in models.items()}
        times = time_interleaved(variants, "cpu", warmup=0, repeats=args.eval_repeats
                                 if arch == "small_cnn" else args.resnet_eval_repeats)
        with torch.no_grad():
            pred = {k: m(adv[k]).argmax(1) for k, m in models.items()}
        a, b = pred.values()
        rows = {k: t.as_dict() for k, t in times.items()}
        speedup = rows["fp32 contiguous"]["median_s"] / rows["fp32 channels_last"]["median_s"]
        out[name] = {"images": n, "variants": rows, "x_channels_last_vs_contiguous": speedup,
                     "same_predictions": int((a == b).sum()),
                     "robust": {k: int((p == y).sum()) for k, p in pred.items()},
                     "max_abs_diff_adversarial": (adv["fp32 contiguous"] -
                                                  adv["fp32 channels_last"]).abs().max().item(),
                     "load_average_end": load_average()}
        progress(f"  {speedup:.2f}x, {out[name]['same_predictions']}/{n} same predictions")
    return out


def compile_section(args, progress) -> dict:
    """Inductor on the small CNN's PGD AT iteration: first call (compiling) and steady state."""
    torch.manual_seed(0)
    model = build("small_cnn", 10, in_channels=1)
    x, y = _batch("small_cnn", args.batch)
    recipe = _recipe("small_cnn", "pgd-at")
    auto = fast_path.resolve("auto", "auto", "cpu", model)
    kw = dict(eps=args.eps, steps=args.steps, fast=auto)
    eager = engine_step(model, "pgd-at", recipe, x, y, **kw)
    compiled = engine_step(model, "pgd-at", recipe, x, y, compile=True, **kw)
    progress("compile: first call")
    t0 = time.perf_counter()
    compiled()
    first = time.perf_counter() - t0
    times = time_interleaved({"eager": eager, "compiled": compiled}, "cpu", warmup=2,
                             repeats=args.repeats)
    saved = times["eager"].median - times["compiled"].median
    return {"first_call_s": first, "eager": times["eager"].as_dict(),
            "compiled": times["compiled"].as_dict(),
            "x_vs_eager": times["eager"].median / times["compiled"].median,
            "iterations_to_repay_compilation": (first - times["compiled"].median) / saved
            if saved > 0 else None, "load_average_end": load_average()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/fast_path_cpu.json")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--epoch-images", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--resnet-repeats", type=int, default=2)
    ap.add_argument("--resnet-batch", type=int, default=32)
    ap.add_argument("--bf16-methods", default="pgd-at",
                    help="methods also timed with bf16 + channels_last forced")
    ap.add_argument("--eval-images", type=int, default=128)
    ap.add_argument("--resnet-eval-images", type=int, default=32)
    ap.add_argument("--eval-repeats", type=int, default=2)
    ap.add_argument("--resnet-eval-repeats", type=int, default=1)
    ap.add_argument("--aa-steps", type=int, default=10)
    ap.add_argument("--aa-queries", type=int, default=100)
    ap.add_argument("--models", default="small_cnn,preact_resnet18")
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()

    def progress(msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    doc = {"kind": "aft_fast.fast_path_bench/1", "environment": environment("cpu"),
           "cpu_native_bf16": fast_path.cpu_native_bf16(),
           "cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "settings": vars(args), "load_average_start": load_average(),
           "timing": "median of interleaved rounds (perf_counter), one warm-up call each",
           "train": {}, "eval": {}}
    for arch in filter(None, args.models.split(",")):  # --models '': --compile alone
        doc["train"][arch] = train_section(arch, args, progress)
        write_json(doc, args.out)
        if not args.skip_eval:
            doc["eval"][arch] = eval_section(arch, args, progress)
            write_json(doc, args.out)
    if args.compile:
        doc["compile"] = compile_section(args, progress)
    doc["load_average_end"] = load_average()
    write_json(doc, args.out)
    progress(f"wrote {args.out}")


if __name__ == "__main__":
    main()
