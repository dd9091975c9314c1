"""What every analysis writes: one figure style, PNG/CSV/JSON written atomically, JSON stamped
with the environment (`aft_fast.runtime.environment`)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

from aft_fast.io import atomic_write, write_json, write_text  # noqa: E402
from aft_fast.runtime import environment  # noqa: E402

plt.rcParams.update({"font.size": 10, "axes.titlesize": 10.5, "axes.grid": True,
                     "grid.alpha": 0.3, "legend.fontsize": 8.5, "legend.framealpha": 0.85})


def percent_axis(ax, label: str, *, points: bool = False) -> None:
    """Accuracies are stored as fractions and shown as percent on the y axis (as many decimals
    as the range needs); `points`: a difference of accuracies, in percentage points."""
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, symbol="" if points else "%"))
    ax.set_ylabel(label)


def run_colors(n: int) -> list:
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def save_figure(fig, path, rect=(0, 0, 1, 1)) -> Path:
    """Lay out (within `rect`, leaving room for a figure legend and a suptitle) and write the
    PNG atomically."""
    if fig.get_suptitle():
        lines = fig.get_suptitle().count("\n") + 1
        rect = (*rect[:3], min(rect[3], 1 - (0.05 + 0.2 * lines) / fig.get_figheight()))
    fig.tight_layout(rect=rect)
    out = atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=130))
    plt.close(fig)
    return out


def write_csv(rows: list[dict], path) -> Path:
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    return write_text(buf.getvalue(), path)


def write_result(result: dict, path, device="cpu") -> Path:
    return write_json({**result, "environment": environment(device)}, path)


def output_paths(out_dir, name: str) -> dict[str, Path]:
    """{png, csv, json} paths of one analysis: `out_dir/name.{png,csv,json}`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {ext: out / f"{name}.{ext}" for ext in ("png", "csv", "json")}
