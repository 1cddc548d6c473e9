"""Experiment logs: ``--report-to tensorboard|wandb|none`` of `feedbackgym train` and `feedbackgym eval`.

    feedbackgym train ppo --scenario guess_number --actor lm:models/gn --out runs/p --report-to tensorboard
    tensorboard --logdir runs/p/tensorboard
    feedbackgym eval judged_qa --actors scripted:sycophant --judges scripted:constructive,scripted:malicious \\
        --report-to tensorboard,wandb --log-dir runs/m

The names logged are the names of the files these commands write anyway, so a figure reads the
same in every place. `train` logs each line of ``metrics.jsonl`` at step = its ``iteration``
(a nested field as ``parent/child``: ``cost_s/collect``); `eval` logs each row of ``--json``
(one per actor x giver): TensorBoard gets one run per row, its metrics as scalars at step 0 and
the row's actor, giver, scenario and seed as hyper-parameters (the HParams tab is the eval matrix
as a table); wandb gets one run with the rows as a ``wandb.Table`` under ``eval``. An interval
``name_ci`` is logged as two scalars, ``name_ci/low`` and ``name_ci/high``; a metric with no value
(None: no eligible episode) is not logged at that step.

Where: TensorBoard event files under ``LOGDIR/tensorboard`` and wandb's files under ``LOGDIR/wandb``
(``LOGDIR`` is `train`'s ``--out``). wandb runs **offline** unless ``WANDB_MODE`` says otherwise
(nothing leaves the machine by default; ``wandb sync LOGDIR/wandb/offline-run-*`` uploads a run
later); the project is ``$WANDB_PROJECT`` or ``feedbackgym``, and wandb's host metrics sampling is off.

Resume: a resumed `train` first cuts ``metrics.jsonl`` back to its checkpoint and logs the
iterations after it again. TensorBoard is told to drop the events of those steps
(``purge_step``), so the curve shows each iteration once, as the uninterrupted run would; a
wandb run goes on under the same run id (kept in ``LOGDIR/wandb/run_id``) and wandb keeps the first
value it got for a step.

Backends are imported only when named (``pip install 'feedbackgym[report]'``); "none" logs nothing.
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: what ``--report-to`` takes (comma-separated), besides "none"
BACKENDS = ("tensorboard", "wandb")


class ReportError(ValueError):
    """A ``--report-to`` value that names no backend, or one whose package is missing."""


def parse_report_to(text: str | None) -> tuple[str, ...]:
    """The backends a ``--report-to`` value names, in order ("none" or "": none); an unknown name
    or a backend whose package is not installed raises `ReportError` saying what to do."""
    names = [p.strip() for p in (text or "").split(",") if p.strip()]
    if names == ["none"]:
        return ()
    bad = [n for n in names if n not in BACKENDS]
    if bad:
        raise ReportError(f"--report-to {text!r}: {', '.join(map(repr, bad))} is not a backend; expected 'none' or one or more "
                          f"of {', '.join(BACKENDS)}, comma-separated")  # fmt: skip
    for n in names:
        try:
            __import__(n)  # the backend's package has its name
        except ImportError:
            raise ReportError(f"--report-to {n}: the {n} package is not installed (pip install 'feedbackgym[report]')") from None
    return tuple(dict.fromkeys(names))


def scalars(line: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers of a metrics line or an eval row under their logged names: nested mappings
    joined with ``/``, a two-number list (an interval) as ``name/low`` and ``name/high``;
    strings, None and non-finite values are left out."""
    out: dict[str, float] = {}
    for k, v in line.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(scalars(v, f"{name}/"))
        elif isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            out.update(scalars({"low": v[0], "high": v[1]}, f"{name}/"))
        elif isinstance(v, (int, float)):  # a bool as 0 or 1
            if math.isfinite(float(v)):
                out[name] = float(v)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")[:80] or "_"


class Reporter:
    """The logs of one command: ``log(line, step)`` for a training line, ``rows(rows)`` for an
    evaluation; ``close()`` (or ``with``) flushes them. With no backend every call does nothing."""

    def __init__(self, backends: Iterable[str], log_dir: str | Path, name: str, config: Mapping[str, Any] | None = None,
                 resume_step: int | None = None):  # fmt: skip
        """``resume_step``: a resumed run's first step; TensorBoard drops what it held from there on."""
        self.backends = tuple(backends)
        self.log_dir, self.name, self.config = Path(log_dir), name, dict(config or {})
        self._tb = None
        self._wandb = None
        if "tensorboard" in self.backends:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.log_dir / "tensorboard"), purge_step=resume_step)
        if "wandb" in self.backends:
            self._wandb = self._wandb_run()

    def _wandb_run(self):
        import wandb

        folder = self.log_dir / "wandb"
        folder.mkdir(parents=True, exist_ok=True)
        id_file = folder / "run_id"
        run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:8]
        id_file.write_text(run_id + "\n")
        return wandb.init(
            project=os.environ.get("WANDB_PROJECT", "feedbackgym"), name=self.name, id=run_id, resume="allow",
            dir=str(self.log_dir), mode=os.environ.get("WANDB_MODE", "offline"), config=self.config,
            settings=wandb.Settings(x_disable_stats=True, save_code=False, silent=True),
        )  # fmt: skip

    def log(self, line: Mapping[str, Any], step: int) -> None:
        """One training line at ``step``."""
        values = scalars(line)
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, v, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(values, step=step)

    def rows(self, rows: list[Mapping[str, Any]], keys: Iterable[str] = ("actor", "seat", "judge", "user", "baseline", "scenario", "task", "seed")) -> None:
        """An evaluation's rows (one per actor x giver)."""
        keys = tuple(keys)
        if self._tb is not None:
            for k, row in enumerate(rows):
                hparams = {key: row[key] if isinstance(row[key], (int, float)) else str(row[key]) for key in keys if key in row}
                run = f"{k:03d}-" + _slug("-".join(str(row.get(key)) for key in ("actor", "judge", "user") if key in row))
                self._tb.add_hparams(hparams, scalars({k2: v for k2, v in row.items() if k2 not in keys}), run_name=run)
            self._tb.flush()
        if self._wandb is not None:
            import wandb

            columns = list(dict.fromkeys(c for row in rows for c in row))
            cell = lambda v: v if v is None or isinstance(v, (str, int, float, bool)) else json.dumps(v)  # noqa: E731
            self._wandb.log({"eval": wandb.Table(columns=columns, data=[[cell(row.get(c)) for c in columns] for row in rows])}, step=0)
            for row in rows:
                label = "/".join(str(row.get(key)) for key in ("actor", "judge", "user") if key in row)
                self._wandb.summary.update({f"{label}/{k}": v for k, v in scalars({k: v for k, v in row.items() if k not in keys}).items()})

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
