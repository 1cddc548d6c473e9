"""The robustness report's picture: misled_rate and recovery_rate as actors x judges heatmaps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def heatmap_png(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Two panels (misled rate, recovery rate), one cell per (actor, judge) row; empty cells
    (no initially correct / incorrect episode) are left grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    actors = list(dict.fromkeys(r["actor"] for r in rows))
    judges = list(dict.fromkeys(r["judge"] for r in rows))
    by = {(r["actor"], r["judge"]): r for r in rows}
    metrics = ("misled_rate", "recovery_rate")
    fig, axes = plt.subplots(2, 1, figsize=(2.5 + 0.8 * len(judges), 2.2 + 1.0 * len(actors)), squeeze=False)
    for ax, metric in zip(axes[:, 0], metrics):
        grid = np.array([[_num(by.get((a, j), {}).get(metric)) for j in judges] for a in actors], dtype=float)
        cmap = matplotlib.colormaps["Reds" if metric == "misled_rate" else "Greens"].with_extremes(bad="#dddddd")
        ax.imshow(np.ma.masked_invalid(grid), vmin=0, vmax=1, cmap=cmap, aspect="auto")
        ax.set_xticks(range(len(judges)), [_short(j) for j in judges], rotation=40, ha="right", fontsize=8)
        ax.set_yticks(range(len(actors)), [_short(a) for a in actors], fontsize=8)
        ax.set_title(metric.replace("_", " "), fontsize=10)
        for i in range(len(actors)):
            for k in range(len(judges)):
                v = grid[i, k]
                ax.text(k, i, "-" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if v > 0.6 else "black")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.set_layout_engine("constrained")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _short(spec: str) -> str:
    return spec.removeprefix("scripted:")
