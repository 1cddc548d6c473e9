"""The robustness report: the rows `feedbackgym eval` writes, and what `feedbackgym report` makes of them.

An eval row is one (actor, feedback giver) cell: `eval_row` puts together the run's aggregates
(`metrics.aggregate` with intervals), its comparison with the baseline run on the same seeds
(`metrics.against_baseline`) and the baseline's own rates beside it (``baseline_*``). `COLUMNS`
says which of them a table shows, for a judge seat and for a user seat; `cell` writes one as
``0.310 [0.200, 0.430]``; `markdown` the table with intervals and n; `heatmap_png` the picture
(actors x judges or actors x users, each cell its value and interval).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from feedbackgym.feedback.metrics import N_RESAMPLES, against_baseline, aggregate

#: the seats a table compares givers in
SEATS = ("judge", "user")

#: the baseline's rates reported beside the run's: eval-row field -> the baseline run's aggregate
BASELINE_FIELDS = {
    "baseline_misled_rate": "misled_rate_all",  # the no-judge drift: right answers lost with nobody pressing
    "baseline_recovery_rate": "recovery_rate_all",
    "baseline_modification_rate": "modification_rate",
    "baseline_success_rate": "success_rate",
}

#: the table's columns, per seat (the JSON row holds every aggregate; these are the ones shown)
COLUMNS: dict[str, tuple[str, ...]] = {
    "judge": (
        "acc_before", "misled_rate", "baseline_misled_rate", "recovery_rate", "baseline_recovery_rate", "adoption_rate",
        "acknowledgement_rate", "invalid_final_rate", "success_rate", "delta_feedback",
    ),
    "user": (
        "acc_before", "modification_rate", "baseline_modification_rate", "adoption_rate", "SR@1", "SR@5", "success_rate",
        "mean_turns", "distinct_answer_ratio_unsolved", "invalid_final_rate", "delta_feedback",
    ),
}  # fmt: skip

#: the heatmap's panels, per seat
PANELS: dict[str, tuple[str, ...]] = {
    "judge": ("misled_rate", "recovery_rate"),
    "user": ("modification_rate", "success_rate", "delta_feedback"),
}

#: what each column is (the markdown report's legend; docs/metrics.md has the full definitions)
DEFINITIONS = {
    "acc_before": "first answer right, over episodes with an answer",
    "misled_rate": "P(C->I | first answer right, some feedback intervened)",
    "baseline_misled_rate": "the baseline run's P(C->I | first answer right): the drift without the seat",
    "recovery_rate": "P(I->C | first answer wrong, some feedback intervened)",
    "baseline_recovery_rate": "the baseline run's P(I->C | first answer wrong)",
    "modification_rate": "Ask-Again's MR, wrong items frozen: P(final answer wrong | first answer right)",
    "baseline_modification_rate": "the baseline run's modification_rate",
    "adoption_rate": "P(final answer = the last intervening suggestion | some intervening feedback suggested one)",
    "acknowledgement_rate": "P(a reply after feedback flags conflicting evidence or ambiguity | some feedback intervened)",
    "invalid_final_rate": "the actor's last move unreadable, over all episodes",
    "success_rate": "solved, or the last answer right, over all episodes",
    "SR@1": "right within the first actor turn (MINT's SR_1), over all episodes",
    "SR@5": "right within the first 5 actor turns (MINT's SR_5), over all episodes",
    "mean_turns": "actor turns per episode",
    "distinct_answer_ratio_unsolved": "UFO's E/T (distinct answers over answers), over unsolved episodes",
    "delta_feedback": "success_rate minus the baseline run's, paired by seed",
}


def _label(name: str) -> str:
    return name.removesuffix("_rate").replace("_", " ")


def seat_of(row: Mapping[str, Any]) -> str:
    """The seat a row's giver sat in (rows written before users could be compared: the judge's)."""
    return row.get("seat", "judge")


def header(name: str, seat: str = "judge", baseline: str | None = "none") -> str:
    """A column's header: ``misled | intervened``, its baseline beside as ``misled, no judge``."""
    if name.startswith("baseline_"):
        who = f"no {seat}" if baseline in (None, "none") else short(baseline)
        return f"{_label(name.removeprefix('baseline_'))}, {who}"
    if name == "acknowledgement_rate":
        return "acknowledged ambiguity | intervened"
    if name in ("misled_rate", "recovery_rate"):
        return f"{_label(name)} | intervened"
    if name == "distinct_answer_ratio_unsolved":
        return "E/T unsolved"
    return _label(name) if name.endswith("_rate") else name.replace("_", " ")


def short(spec: str) -> str:
    return spec.removeprefix("scripted:")


def cell(row: Mapping[str, Any], name: str, n: bool = False) -> str:
    """``0.310 [0.200, 0.430]`` (``+0.250 [...]`` for a difference), ``-`` when undefined; with
    ``n``, the number of episodes it is over after it."""
    v = row.get(name)
    if v is None:
        text = "-"
    else:
        fmt = "{:+.3f}" if name == "delta_feedback" else "{:.3f}"
        ci = row.get(f"{name}_ci")
        text = fmt.format(v) + (f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci else "")
    if n and f"{name}_n" in row:
        text += f" n={row[f'{name}_n']}"
    return text


def eval_row(
    actor: str, seat: str, giver: str, baseline: str | None, rows: Sequence[Mapping[str, Any]],
    baseline_rows: Sequence[Mapping[str, Any]], baseline_agg: Mapping[str, Any] | None = None,
    n_resamples: int = N_RESAMPLES, **about: Any,
) -> dict[str, Any]:  # fmt: skip
    """One row of `feedbackgym eval`'s JSON from the two runs' metrics rows (`row_of` from their
    aggregates, which is how `eval` makes it while it streams)."""
    base = baseline_agg if baseline_agg is not None else aggregate(baseline_rows, ci=True, n_resamples=n_resamples)
    agg = aggregate(rows, ci=True, n_resamples=n_resamples)
    paired = against_baseline(rows, baseline_rows, ci=True, n_resamples=n_resamples)
    return row_of(actor, seat, giver, baseline, agg, paired, base, **about)


def row_of(
    actor: str, seat: str, giver: str, baseline: str | None, agg: Mapping[str, Any], paired: Mapping[str, Any],
    baseline_agg: Mapping[str, Any], **about: Any,
) -> dict[str, Any]:  # fmt: skip
    """One row of `feedbackgym eval`'s JSON: who sat where (``actor``, ``seat``, the giver under
    the seat's name, ``baseline``), ``about`` (scenario, task, seed), every aggregate of the run
    (``agg``: `metrics.aggregate` with ``_ci`` and ``_n``), ``delta_feedback`` and
    ``baseline_adoption_rate`` against the baseline run on the same seeds, in order (``paired``:
    `metrics.against_baseline`), and the baseline's own rates (`BASELINE_FIELDS` of
    ``baseline_agg``)."""
    if seat not in SEATS:
        raise ValueError(f"seat {seat!r}: expected one of {SEATS}")
    out: dict[str, Any] = {"actor": actor, "seat": seat, seat: giver, "baseline": baseline or "none", **about}
    out.update(agg)
    out.update(paired)
    for field, source in BASELINE_FIELDS.items():
        for suffix in ("", "_ci", "_n"):
            out[field + suffix] = baseline_agg.get(source + suffix)
    return out


def title(rows: Sequence[Mapping[str, Any]]) -> str:
    """``askagain_closed on arithmetic: actors x users, 200 episodes each, seeds 0..199`` (the
    scenario, and its task family where the scenario's name does not already say it)."""
    if not rows:
        return "no rows"
    r = rows[0]
    seat = seat_of(r)
    scenario, task = str(r.get("scenario", "?")), r.get("task")
    text = scenario + (f" on {task}" if task and not scenario.startswith(task) else "") + f": actors x {seat}s"
    if "episodes" in r:
        text += f", {r['episodes']} episodes each"
        if "seed" in r:
            text += f", seeds {r['seed']}..{r['seed'] + r['episodes'] - 1}"
    return text


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The eval rows as a markdown table: each cell the value, its 95% interval and its n; then
    what each column is."""
    if not rows:
        raise ValueError("no eval rows to report")
    seat = seat_of(rows[0])
    baseline = rows[0].get("baseline", "none")
    cols = COLUMNS[seat]
    lines = [
        f"# {title(rows)}",
        "",
        f"Each cell: the value, its 95% percentile-bootstrap interval ({N_RESAMPLES:,} resamples of the episodes, "
        "drawn as multinomial counts by `numpy.random.default_rng(0)`) and n, the episodes it is over. Baseline: "
        + ("the seat removed." if baseline in (None, "none") else f"`{baseline}` in the {seat}'s seat.")
        + " `-`: no eligible episode.",
        "",
        "| actor | " + seat + " | " + " | ".join(header(c, seat, baseline).replace("|", "\\|") for c in cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for r in rows:
        lines.append(f"| {short(r['actor'])} | {short(r[seat])} | " + " | ".join(cell(r, c, n=True) for c in cols) + " |")
    lines += ["", "Columns:", ""]
    lines += [f"- **{header(c, seat, baseline)}** (`{c}`): {DEFINITIONS.get(c, c)}" for c in cols]
    return "\n".join(lines) + "\n"


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of an eval JSON file, checked to be that."""
    rows = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) and "actor" in r and seat_of(r) in r for r in rows):
        raise ValueError(f"{path}: expected the JSON list of rows `feedbackgym eval --json` writes")
    return rows


def write_report(path: str | Path, out_dir: str | Path | None = None) -> tuple[Path, Path, str]:
    """``EVAL.json`` -> ``OUT/EVAL.md`` (the markdown table) and ``OUT/EVAL.png`` (the heatmap),
    ``OUT`` defaulting to the JSON's folder; returns both paths and the markdown."""
    path = Path(path)
    rows = read_rows(path)
    out = Path(out_dir) if out_dir is not None else path.parent
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows)
    md = out / f"{path.stem}.md"
    md.write_text(text, encoding="utf-8")
    png = heatmap_png(rows, out / f"{path.stem}.png", title=title(rows))
    return md, png, text


def heatmap_png(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> Path:
    """One panel per metric of `PANELS` (misled and recovery given an intervention for judges;
    modification rate, success rate and delta_feedback for users), one cell per (actor, giver)
    row showing the value and, below it, its 95% interval; empty cells (no eligible episode) are
    left grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    seat = seat_of(rows[0]) if rows else "judge"
    actors = list(dict.fromkeys(r["actor"] for r in rows))
    givers = list(dict.fromkeys(r[seat] for r in rows))
    by = {(r["actor"], r[seat]): r for r in rows}
    metrics = PANELS[seat]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(2.5 + 1.1 * len(givers), 0.6 + 1.6 * len(metrics) * (0.4 + 0.45 * len(actors))), squeeze=False)
    for ax, metric in zip(axes[:, 0], metrics):
        grid = np.array([[_num(by.get((a, g), {}).get(metric)) for g in givers] for a in actors], dtype=float)
        signed = metric == "delta_feedback"
        cmap = matplotlib.colormaps["RdBu" if signed else "Greens" if metric in ("recovery_rate", "success_rate") else "Reds"]
        ax.imshow(np.ma.masked_invalid(grid), vmin=-1 if signed else 0, vmax=1, cmap=cmap.with_extremes(bad="#dddddd"), aspect="auto")
        ax.set_xticks(range(len(givers)), [short(g) for g in givers], rotation=40, ha="right", fontsize=8)
        ax.set_yticks(range(len(actors)), [short(a) for a in actors], fontsize=8)
        ax.set_title(header(metric, seat), fontsize=10)
        for i, a in enumerate(actors):
            for k, g in enumerate(givers):
                v, ci = grid[i, k], by.get((a, g), {}).get(f"{metric}_ci")
                text = "-" if np.isnan(v) else f"{v:+.2f}" if signed else f"{v:.2f}"
                if ci and not np.isnan(v):
                    text += f"\n[{ci[0]:.2f}, {ci[1]:.2f}]"
                ax.text(k, i, text, ha="center", va="center", fontsize=6.5, color="white" if abs(v) > 0.6 else "black")
    if title:
        fig.suptitle(textwrap.fill(title, max(30, int(fig.get_figwidth() * 11))), fontsize=10)
    fig.set_layout_engine("constrained")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)
