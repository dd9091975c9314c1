"""What robustify measures: the model as given on held-out training data (val: the same budget
and attack that score the probes), and a model on the test split the way a reviewer would
(compare's protocol: clean on the whole split, PGD-50 with restarts, AutoAttack at the
reference settings, the gradient-masking checks) plus accuracy against ε from 0 to 4ε."""
from __future__ import annotations

from aft_fast.compare.evaluation import evaluate_model
from aft_fast.compare.protocol import Protocol, correct, pgd_survivors
from aft_fast.evaluate import accuracy
from aft_fast.fast_path import for_evaluation
from aft_fast.train.evaluation import eval_budget

CURVE = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)  # the curve's radii, multiples of ε
CURVE_STEPS = 20
CURVE_IMAGES = 500  # at most: the first of the test images PGD-50 reads


def held_out(model, val, *, eps: float, steps: int | None, images: int) -> dict:
    """Clean and PGD accuracy on at most `images` val images, as a probe's run scores it."""
    budget = eval_budget(adversarial=True, eps=eps, steps=steps, full=False, images=images)
    got = accuracy(model, val, attack="pgd", cfg=budget.attack, max_batches=budget.batches(val))
    return {"clean": got["clean_acc"], "robust": got["robust_acc"], "n": got["n"],
            "attack": f"PGD-{budget.attack.steps}", "steps": budget.attack.steps,
            "seconds": got["seconds"]}


def protocol(*, eps: float, images: int, restarts: int, aa_images: int, batch_size: int,
             seed: int) -> Protocol:
    return Protocol(eps=eps, images=images, pgd_restarts=restarts, aa_images=aa_images,
                    mask_images=min(500, images), batch_size=batch_size, seed=seed)


def on_test(model, x, y, p: Protocol, *, say=lambda s: None) -> dict:
    """compare's evaluation of `model` on the test tensors, plus the ε curve."""
    model = for_evaluation(model.eval())
    scores = evaluate_model(model, x, y, p, say=say)
    scores["curve"] = curve(model, x, y, eps=p.eps, images=min(CURVE_IMAGES, len(y), p.images),
                            batch_size=p.batch_size, seed=p.seed)
    scores["protocol"] = p.settings()
    return scores


def curve(model, x, y, *, eps: float, images: int, batch_size: int, seed: int) -> dict:
    """PGD-20 accuracy at each radius of CURVE·ε (at 0: clean) on the first `images` images."""
    xs, ys = x[:images], y[:images]
    alive = correct(model, xs, ys, batch_size)
    points = []
    for k in CURVE:
        e = min(1.0, k * eps)
        left = alive if e == 0 else pgd_survivors(model, xs, ys, alive, eps=e, steps=CURVE_STEPS,
                                                  restarts=1, batch_size=batch_size,
                                                  seed=seed)[-1]
        points.append({"eps": e, "acc": float(left.float().mean()) if len(left) else 0.0})
    return {"points": points, "n": len(ys), "steps": CURVE_STEPS}

