"""The embedding picture (the paper's Figure 3): penultimate-layer features of a split, clean and
under PGD, reduced by LDA to c − 1 dimensions and then by PCA to 2.

Features are the input of the model's classifier head (the last `nn.Linear` with one output per
class), captured by a forward hook, so any architecture works. Per checkpoint, LDA and PCA are fit
on the clean features with their true labels; the adversarial features go through the same
projection, so the right-hand picture shows where the attack moves the examples in the clean
picture's coordinates.

Separation scores (so the comparison is not by eye only), per embedding, with the true labels:
- silhouette score of the 2-D points (Euclidean; -1..1, higher = classes more separate): what the
  picture shows;
- Fisher ratio in the (c − 1)-D LDA space: trace of the between-class scatter over trace of the
  within-class scatter (higher = more separate), independent of the PCA step.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from aft_fast.analysis.output import plt, save_figure
from aft_fast.attacks import AttackConfig, pgd
from aft_fast.errors import OptionError, check


def find_head(model: nn.Module, num_classes: int | None = None) -> nn.Linear:
    """The classifier: the last `nn.Linear` registered in `model` (with `num_classes` outputs
    when given)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)
               and (num_classes is None or m.out_features == num_classes)]
    if not linears:
        want = f" with {num_classes} outputs" if num_classes else ""
        raise OptionError("checkpoint", f"the model has no nn.Linear{want} to take the "
                                        "penultimate features from")
    return linears[-1]


class PenultimateFeatures:
    """Records the input of the classifier head on the forwards run through `__call__` only (not
    on the attack's forwards, whose graphs it would otherwise keep alive)."""

    def __init__(self, model: nn.Module, num_classes: int | None = None):
        self.model, self.last = model, None
        self._recording = False
        self._hook = find_head(model, num_classes).register_forward_hook(self._record)

    def _record(self, module, inputs, output):
        if self._recording:
            self.last = inputs[0].detach().flatten(1).float().cpu()

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features [N, d] on the CPU, predicted classes)."""
        self._recording = True
        try:
            pred = self.model(x).argmax(1).cpu()
        finally:
            self._recording = False
        return self.last, pred

    def remove(self) -> None:
        self._hook.remove()


def collect_features(model: nn.Module, loader, attack: AttackConfig | None, *,
                     max_images: int | None = None, num_classes: int | None = None,
                     generator: torch.Generator | None = None) -> dict:
    """{"labels", "clean", "adv", "clean_pred", "adv_pred"}: penultimate features [N, d] (numpy)
    of the first `max_images` of `loader`, clean and after `attack` (no "adv" when None)."""
    model.eval()
    features = PenultimateFeatures(model, num_classes)
    out = {k: [] for k in ("labels", "clean", "adv", "clean_pred", "adv_pred")}
    seen = 0
    try:
        for x, y in loader:
            if max_images is not None:
                if seen >= max_images:
                    break
                x, y = x[:max_images - seen], y[:max_images - seen]
            seen += len(y)
            out["labels"].append(y.cpu())
            f, pred = features(x)
            out["clean"].append(f)
            out["clean_pred"].append(pred)
            if attack is not None:
                f, pred = features(pgd(model, x, y, attack, generator=generator))
                out["adv"].append(f)
                out["adv_pred"].append(pred)
    finally:
        features.remove()
    return {k: torch.cat(v).numpy() for k, v in out.items() if v}


@dataclass
class Projection:
    """LDA (fit with labels) to c − 1 dims, then PCA to 2, both fit on the same features."""
    lda: object
    pca: object

    def lda_space(self, features: np.ndarray) -> np.ndarray:
        return self.lda.transform(features)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return self.pca.transform(self.lda.transform(features))


def fit_lda_pca(features: np.ndarray, labels: np.ndarray, num_classes: int) -> Projection:
    """Refuses what LDA to c − 1 dims cannot serve: c < 3 (c − 1 < 2 leaves nothing for PCA to
    reduce), a class with no example, features narrower than c − 1."""
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    check(num_classes >= 3, "checkpoint", f"the model has {num_classes} classes; the LDA → PCA "
          "picture needs at least 3 (LDA gives c − 1 dimensions, PCA then reduces them to 2)")
    present = set(np.unique(labels).tolist())
    missing = [c for c in range(num_classes) if c not in present]
    check(not missing, "split", f"class(es) {', '.join(map(str, missing[:10]))} have no example "
          f"among the {len(labels)} images used; LDA needs every class: use more images or "
          "another split")
    check(features.shape[1] >= num_classes - 1, "checkpoint",
          f"the penultimate layer has {features.shape[1]} features, fewer than c − 1 = "
          f"{num_classes - 1}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "variables are collinear" on low-rank features
        lda = LinearDiscriminantAnalysis(n_components=num_classes - 1).fit(features, labels)
        pca = PCA(n_components=2, random_state=0).fit(lda.transform(features))
    return Projection(lda, pca)


def silhouette(points: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(points, labels, metric="euclidean"))


def fisher_ratio(z: np.ndarray, labels: np.ndarray) -> float:
    """trace(S_between) / trace(S_within) of the points `z`."""
    mean = z.mean(0)
    between = within = 0.0
    for c in np.unique(labels):
        zc = z[labels == c]
        between += len(zc) * float(((zc.mean(0) - mean) ** 2).sum())
        within += float(((zc - zc.mean(0)) ** 2).sum())
    return between / max(within, 1e-12)


def embed(feats: dict, num_classes: int) -> dict:
    """2-D points and scores of the clean (and adversarial) features of one checkpoint."""
    proj = fit_lda_pca(feats["clean"], feats["labels"], num_classes)
    y = feats["labels"]
    out = {}
    for kind in ("clean", "adv"):
        if kind not in feats:
            continue
        points = proj(feats[kind])
        out[kind] = {"points": points, "silhouette": silhouette(points, y),
                     "fisher_lda": fisher_ratio(proj.lda_space(feats[kind]), y),
                     "accuracy": float((feats[f"{kind}_pred"] == y).mean())}
    return out


def plot_embeddings(panels: list[dict], class_names: list[str], path, *, title: str = "") -> None:
    """One row per checkpoint: clean | adversarial, coloured by true class, shared limits per row."""
    n = len(panels)
    kinds = [k for k in ("clean", "adv") if k in panels[0]["embedding"]]
    fig, axes = plt.subplots(n, len(kinds), figsize=(5.2 * len(kinds) + 1.6, 4.4 * n),
                             squeeze=False)
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for row, panel in zip(axes, panels):
        emb, y = panel["embedding"], panel["labels"]
        allp = np.concatenate([emb[k]["points"] for k in kinds])
        lo, hi = np.percentile(allp, 0.5, axis=0), np.percentile(allp, 99.5, axis=0)
        pad = 0.05 * (hi - lo)
        for ax, kind in zip(row, kinds):
            e = emb[kind]
            for c, name in enumerate(class_names):
                m = y == c
                ax.scatter(e["points"][m, 0], e["points"][m, 1], s=5, alpha=0.6,
                           color=cmap(c % cmap.N), label=name, rasterized=True)
            what = "clean" if kind == "clean" else f"PGD ({panel['attack']})"
            ax.set_title(f"{panel['label']}: {what}\naccuracy {100 * e['accuracy']:.1f}%, "
                         f"silhouette {e['silhouette']:.2f}, Fisher (LDA space) {e['fisher_lda']:.2f}")
            ax.set(xlim=(lo[0] - pad[0], hi[0] + pad[0]), ylim=(lo[1] - pad[1], hi[1] + pad[1]),
                   xlabel="component 1 (LDA → PCA of the clean features, unitless)",
                   ylabel="component 2 (unitless)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, title="true class", loc="center right", markerscale=3)
    if title:
        fig.suptitle(title)
    save_figure(fig, path, rect=(0, 0, 1 - 1.4 / fig.get_figwidth(), 1))


def _default_eps(ckpts: list[dict]) -> float:
    """The training ε of the first checkpoint that records adversarial training."""
    from aft_fast.train.checkpoint import trained_adversarially

    for ckpt in ckpts:
        config = ckpt.get("config") or {}
        if trained_adversarially(ckpt) and config.get("eps") is not None:
            return float(config["eps"])
    raise OptionError("eps", "no checkpoint records an adversarial training ε: pass one")


def embed_checkpoints(paths: list[str], labels: list[str] | None, *, data: str, split: str = "test",
                      max_images: int | None = 1000, eps: float | None = None, steps: int = 20,
                      alpha: float | None = None, batch_size: int = 250, seed: int = 0,
                      device="cpu", trust_code: bool = False) -> tuple[list[dict], dict]:
    """The embedding of each checkpoint's penultimate features (clean and PGD) on the same images:
    (panels for `plot_embeddings`, what was run)."""
    from aft_fast import load_checkpoint
    from aft_fast.data import make_loaders
    from aft_fast.policy import default_alpha
    from aft_fast.train.checkpoint import read_checkpoint

    check(max_images is None or max_images >= 1, "max_images", f"must be >= 1, got {max_images}")
    check(steps >= 1, "steps", f"must be >= 1, got {steps}")
    ckpts = [read_checkpoint(p) for p in paths]
    eps = _default_eps(ckpts) if eps is None else eps
    check(eps > 0, "eps", f"must be > 0, got {eps}")
    attack = AttackConfig(eps, default_alpha(eps, steps) if alpha is None else alpha, steps)
    loaders = make_loaders(data, batch_size=batch_size, device=device, seed=seed,
                           image_size=ckpts[0].get("input_size"), check_files=False)
    spec = loaders.spec
    for p, c in zip(paths, ckpts):
        check(c["num_classes"] == spec.num_classes, "checkpoint", f"{p} has {c['num_classes']} "
              f"classes, {data} has {spec.num_classes}")
    check(spec.num_classes >= 3, "checkpoint", f"the models have {spec.num_classes} classes; the "
          "LDA → PCA picture needs at least 3")
    panels = []
    for k, (p, c) in enumerate(zip(paths, ckpts)):
        label = labels[k] if labels else f"{c.get('method')}: {Path(p).parent.name}/{Path(p).name}"
        feats = collect_features(load_checkpoint(p, device, trust_code=trust_code), getattr(loaders, split), attack,
                                 max_images=max_images, num_classes=spec.num_classes,
                                 generator=torch.Generator().manual_seed(seed))
        panels.append({"checkpoint": str(p), "label": label, "labels": feats["labels"],
                       "attack": f"{steps} steps, ε = {eps:.3g}",
                       "embedding": embed(feats, spec.num_classes)})
    n = len(panels[0]["labels"])
    info = {"data": data, "split": split, "n": n, "class_names": list(spec.class_names),
            "attack": {"eps": eps, "alpha": attack.alpha, "steps": steps, "seed": seed},
            "title": f"Penultimate features of {n} {data} {split} images, LDA → PCA "
                     f"(fit on clean features per model); PGD-{steps}, ε = {eps:.3g}"}
    return panels, info
