"""``python -m feedbackgym.tui tui|play ...``: the UI's commands on their own."""

from __future__ import annotations

import argparse
import sys

from feedbackgym.envs.scenario import ScenarioError
from feedbackgym.tui.commands import add_parsers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m feedbackgym.tui")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ScenarioError, ValueError) as e:
        print(f"feedbackgym {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
