"""An independent check of a comparison table: what an outside evaluator would do.

It reads the Fashion-MNIST test split straight from the official idx files (not through
aft_fast.data), checks it against the SHA-256 the table recorded, loads every row's checkpoint
with the public `aft_fast.load_checkpoint`, attacks it with torchattacks' PGD (another
implementation than the engine's: same steps, step size and restarts, its own random starts) and
sets the robust accuracy next to the table's PGD figure on the same images.

    python benchmarks/verify_compare.py --table benchmarks/results/compare/fashion-mnist/table.json

Writes verify.json and verify.md next to the table. A row already in that verify.json with the
same checkpoint bytes (SHA-256) and the same attack is taken from it, not attacked again
(`--fresh` attacks every row); so is a row whose checkpoint is no longer on this machine (the
committed table outlives its runs folder), matched by its path.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

OFFICIAL = "/usr/share/datasets/fashion-mnist"


def read_idx(path: Path) -> np.ndarray:
    raw = gzip.open(path, "rb").read()
    ndim = raw[3]
    dims = np.frombuffer(raw[4:4 + 4 * ndim], dtype=">i4")
    return np.frombuffer(raw[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def fashion_mnist_test(folder: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = read_idx(Path(folder) / "t10k-images-idx3-ubyte.gz")
    y = read_idx(Path(folder) / "t10k-labels-idx1-ubyte.gz")
    images = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1).contiguous()
    return images, torch.from_numpy(y.astype(np.int64))


def sha256(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


def robust_mask(model, x, y, *, eps: float, steps: int, restarts: int, seed: int) -> torch.Tensor:
    """Correct under every one of `restarts` torchattacks PGD runs (and clean)."""
    import torchattacks

    alive = model(x).argmax(1) == y
    for r in range(restarts):
        torch.manual_seed(seed + r)
        attack = torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / steps, steps=steps,
                                  random_start=True)
        with torch.enable_grad():
            x_adv = attack(x, y)
        alive &= model(x_adv).argmax(1) == y
    return alive


def checked_before(path: Path) -> list[dict]:
    """The rows of an earlier verify.json that carry their checkpoint's SHA-256 and attack."""
    if not path.is_file():
        return []
    return [r for r in json.loads(path.read_text())["rows"]
            if "checkpoint_sha256" in r and "attack" in r]


def earlier_check(before: list[dict], row: dict, n: int, attack: dict) -> dict | None:
    """The earlier verify row of this table row, or None: matched by the checkpoint's bytes
    (SHA-256) while the checkpoint is here; by its path when it is not (a table kept after its
    runs folder was deleted: its rows are not attacked again, and cannot be)."""
    same_attack = [r for r in before if r["n"] == n and r["attack"] == attack]
    path = Path(row["checkpoint"])
    if path.is_file():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return next((r for r in same_attack if r["checkpoint_sha256"] == digest), None)
    found = next((r for r in same_attack if r["checkpoint"] == row["checkpoint"]), None)
    if found is None:
        raise SystemExit(f"--table: row {row['label']} seed {row['seed']}: its checkpoint "
                         f"{path} is not here and no earlier verify.json row covers it; run "
                         "the check where the comparison's runs folder is")
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", required=True, help="table.json of `aft-fast compare`")
    ap.add_argument("--data-dir", default=os.environ.get("AFT_FAST_FASHION_MNIST", OFFICIAL))
    ap.add_argument("--images", type=int, default=None,
                    help="First N test images (default: AutoAttack's images of the table)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--fresh", action="store_true", help="Ignore the verify.json already there")
    args = ap.parse_args()
    from aft_fast import load_checkpoint

    table_path = Path(args.table)
    doc = json.loads(table_path.read_text())
    split, protocol = doc["test_split"], doc["protocol"]
    if split["data"] != "fashion-mnist":
        raise SystemExit(f"--table: this check reads Fashion-MNIST; the table is on {split['data']}")
    x, y = fashion_mnist_test(args.data_dir)
    same = {"labels": sha256(y) == split["labels_sha256"],
            "images": sha256(x) == split["images_sha256"]}
    if not all(same.values()):
        raise SystemExit(f"the test split differs from the table's record: {same}")
    attack = {"eps": protocol["eps"], "steps": protocol["pgd_steps"],
              "restarts": protocol["pgd_restarts"], "seed": args.seed}
    before = [] if args.fresh else checked_before(table_path.parent / "verify.json")
    out = []
    for row in doc["rows"]:
        n = args.images or row.get("autoattack_n", row["n"])
        table_pgd = row.get("pgd_acc_autoattack_images") if n == row.get("autoattack_n") else (
            row["pgd_acc"] if n == row["n"] else None)
        done = earlier_check(before, row, n, attack)
        digest = done["checkpoint_sha256"] if done else \
            hashlib.sha256(Path(row["checkpoint"]).read_bytes()).hexdigest()
        if done is None:
            model = load_checkpoint(row["checkpoint"]).eval()
            t0 = time.perf_counter()
            with torch.no_grad():  # the attack enables gradients for itself
                mask = robust_mask(model, x[:n], y[:n], eps=attack["eps"],
                                   steps=attack["steps"], restarts=attack["restarts"],
                                   seed=args.seed)
            done = {"independent_pgd_acc": float(mask.float().mean()),
                    "seconds": round(time.perf_counter() - t0, 1)}
        out.append({"method": row["label"], "seed": row["seed"], "checkpoint": row["checkpoint"],
                    "checkpoint_sha256": digest, "n": n, "attack": attack,
                    "independent_pgd_acc": done["independent_pgd_acc"], "table_pgd_acc": table_pgd,
                    "table_autoattack_acc": row["autoattack_acc"], "seconds": done["seconds"]})
        print(out[-1], flush=True)
    steps, restarts = protocol["pgd_steps"], protocol["pgd_restarts"]
    lines = [f"# Independent check of `{table_path}`", "",
             f"Test split read from the official idx files in `{args.data_dir}`: labels and images "
             "match the table's SHA-256. Each checkpoint loaded with `aft_fast.load_checkpoint`; "
             f"torchattacks {__import__('torchattacks').__version__} PGD-{steps}, α = 2.5ε/{steps}, "
             f"{restarts} random starts (its own, seed {args.seed}), worst case per image, fp32, "
             "eval mode. A row whose checkpoint bytes (SHA-256) and attack an earlier check "
             "already covered is taken from its verify.json (matched by path where the "
             "checkpoint is no longer on the machine).", "",
             "| method | seed | images | table: PGD (engine) | independent: PGD (torchattacks) | "
             "difference (points) | table: AutoAttack |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in out:
        diff = "-" if r["table_pgd_acc"] is None else \
            f"{100 * (r['independent_pgd_acc'] - r['table_pgd_acc']):+.1f}"
        tp = "-" if r["table_pgd_acc"] is None else f"{100 * r['table_pgd_acc']:.1f}"
        lines.append(f"| {r['method']} | {r['seed']} | {r['n']} | {tp} | "
                     f"{100 * r['independent_pgd_acc']:.1f} | {diff} | "
                     f"{100 * r['table_autoattack_acc']:.1f} |")
    (table_path.parent / "verify.json").write_text(json.dumps(
        {"command": "python benchmarks/verify_compare.py --table " + str(table_path),
         "rows": out}, indent=1))
    (table_path.parent / "verify.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
