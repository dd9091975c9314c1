"""Gradient-masking checks (Athalye et al. 2018; Carlini et al. 2019, "On evaluating adversarial
robustness"): a model whose gradients are informative shows

- accuracy falling to ~0 as ε grows (at ε = 0.5 every pixel can reach mid-grey; beyond it a
  random start alone is near-uniform noise, which fools any model and proves nothing);
- accuracy never rising when the attack gets more steps or more restarts;
- AutoAttack (with its black-box Square part) never above PGD.

Each check is pass/fail with its numbers; `tolerance` absorbs the sampling noise of a random
start (a stronger attack may come out that much above a weaker one).
"""
from __future__ import annotations

NEAR_ZERO = 0.02  # "~0": accuracy at the sweep's largest ε (0.5) at most this


def checks(*, sweep: list[tuple[float, float]], weak: float, pgd_first: float,
           pgd_restarts: list[float], autoattack: float | None, tolerance: float,
           weak_steps: int, pgd_steps: int, pgd_autoattack_images: float) -> dict:
    """{name: {"pass": bool, "detail": str}} plus "all": whether every check passed.
    `pgd_autoattack_images`: PGD's accuracy on AutoAttack's images (AutoAttack may run on the
    first few of PGD's: the comparison must be on the same images)."""
    out = {}
    accs = [a for _, a in sweep]
    rising = [(sweep[i][0], sweep[i + 1][0]) for i in range(len(accs) - 1)
              if accs[i + 1] > accs[i] + tolerance]
    out["falls_to_zero"] = {
        "pass": accs[-1] <= NEAR_ZERO and not rising,
        "detail": ", ".join(f"ε={e:g}: {100 * a:.1f}%" for e, a in sweep)
                  + (f"; rises between {rising}" if rising else "")
                  + f" (pass: ≤ {100 * NEAR_ZERO:g}% at ε={sweep[-1][0]:g}, never rising)"}
    seq = [weak, pgd_first, *pgd_restarts[1:]]
    names = [f"PGD-{weak_steps}", f"PGD-{pgd_steps}"] + [f"PGD-{pgd_steps}×{r + 1}"
                                                        for r in range(1, len(pgd_restarts))]
    up = [f"{names[i]}→{names[i + 1]}" for i in range(len(seq) - 1) if seq[i + 1] > seq[i] + tolerance]
    out["stronger_never_higher"] = {
        "pass": not up,
        "detail": ", ".join(f"{n}: {100 * a:.2f}%" for n, a in zip(names, seq))
                  + (f"; rises at {up}" if up else "")}
    if autoattack is not None:
        out["autoattack_le_pgd"] = {
            "pass": autoattack <= pgd_autoattack_images + tolerance,
            "detail": f"AutoAttack {100 * autoattack:.2f}% vs PGD-{pgd_steps}×{len(pgd_restarts)} "
                      f"{100 * pgd_autoattack_images:.2f}% on the same images"}
    out["all"] = all(c["pass"] for c in out.values())
    return out
