"""The protocols' tables on one actor (default: the embedded SmolLM2-135M) over the arithmetic
family, the task a small model knows the answers to: every table is one `feedbackgym eval`
command, printed as it runs and written with `feedbackgym report` (JSON, markdown, heatmap).

    python benchmarks/protocol_tables.py                          # every table, 200 episodes a cell
    python benchmarks/protocol_tables.py --tables askagain,mint --episodes 50
    python benchmarks/protocol_tables.py --actor openai:qwen2.5-0.5b-instruct   # a served model (OPENAI_BASE_URL)

Tables (`--tables`): ``judges`` (the nine WAFER-QA judges and no judge), ``askagain`` (closed, open,
leading, progressive; the baseline is the same actor asked nothing), ``mint`` (textual and binary
feedback; the baseline is MINT's own "Your answer is wrong." with no feedback), ``ufo`` (unary
"try again"; the baseline is no user), ``friction`` (Feedback Friction's diagnosing hints, with
and without the tried-options list; the baseline is the unary user's bare "try again", the
content of the paper's default binary-only feedback, "Your answer was incorrect").
Each command's wall time goes to ``timings.json`` beside the tables.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from feedbackgym.cli import main

JUDGES = ",".join(
    [f"scripted:{i}-{k}" for i in ("constructive", "hypercritical", "malicious") for k in ("none", "parametric", "grounded")]
    + ["none"]
)
#: table -> (output name, scenario, seat flag, givers, baseline); a giver keeps the params its
#: scenario gives it (mint_binary's user is MINT's in its binary form)
TABLES: dict[str, list[tuple[str, str, str, str, str]]] = {
    "judges": [("judges", "arithmetic", "--judges", JUDGES, "none")],
    "askagain": [
        (f"askagain_{form}", f"askagain_{form}", "--users", "scripted:askagain", "none")
        for form in ("closed", "open", "leading", "progressive")
    ],
    "mint": [(name, name, "--users", "scripted:mint", "scripted:mint-none") for name in ("mint_textual", "mint_binary")],
    "ufo": [("ufo", "ufo", "--users", "scripted:unary", "none")],
    "friction": [
        (name, name, "--users", "scripted:friction", "scripted:unary") for name in ("feedback_friction", "feedback_friction_tried")
    ],
}


def commands(actor: str, episodes: int, seed: int, out: Path, tables: list[str]) -> list[tuple[str, list[str]]]:
    """(output name, `feedbackgym eval` argv) for each table asked for."""
    cmds = []
    for table in tables:
        for name, scenario, flag, givers, baseline in TABLES[table]:
            argv = ["eval", scenario, "--actors", actor, flag, givers, "--baseline", baseline,
                    "--episodes", str(episodes), "--seed", str(seed), "--json", str(out / f"{name}.json"), "--quiet"]  # fmt: skip
            if scenario != "arithmetic":
                argv[2:2] = ["--task", "arithmetic"]
            cmds.append((name, argv))
    return cmds


def run(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--actor", default="lm:smollm2")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tables", default=",".join(TABLES), help=f"comma-separated, of {', '.join(TABLES)}")
    p.add_argument("--out", type=Path, default=Path("docs/results/smollm2"))
    args = p.parse_args(argv)
    tables = [t for t in args.tables.split(",") if t]
    unknown = set(tables) - set(TABLES)
    if unknown:
        p.error(f"unknown tables {sorted(unknown)}; expected some of {', '.join(TABLES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    timings_path = args.out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    for name, cmd in commands(args.actor, args.episodes, args.seed, args.out, tables):
        print("$ feedbackgym " + shlex.join(cmd), flush=True)
        start = time.perf_counter()
        if main(cmd) != 0:
            raise SystemExit(f"feedbackgym {cmd[0]} {cmd[1]} failed")
        timings[name] = {"wall_s": round(time.perf_counter() - start, 1), "command": "feedbackgym " + shlex.join(cmd)}
        main(["report", str(args.out / f"{name}.json")])
        timings_path.write_text(json.dumps(timings, indent=2, sort_keys=True) + "\n")
        print(f"{name}: {timings[name]['wall_s']} s", flush=True)
    return timings


if __name__ == "__main__":
    run()
