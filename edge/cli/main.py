"""Entry point of the ``shopfloor`` console script.

Each module named in :data:`COMMANDS` defines ``register(subparsers)``, which adds its
sub-command with ``set_defaults(func=handler)``; a handler takes the parsed arguments and
returns the exit code. Packages above the edge layer (the gateway) add commands through the
``shopfloor.commands`` entry-point group, so that edge never imports them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any, cast

COMMANDS: tuple[str, ...] = (
    "edge.cli.config_cmd",
    "edge.cli.run",
    "edge.cli.tail",
    "edge.cli.sim",
    "edge.cli.demo",
    "edge.cli.probe",
    "edge.cli.kpi",
    "edge.cli.browse",
    "edge.cli.keys",
    "edge.cli.checkpoint",
    "edge.cli.witness",
    "edge.cli.export",
    "edge.cli.verify",
)

Register = Callable[[Any], None]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shopfloor",
        description="Shop-floor data collector and evidence for 智能工厂梯度培育 applications.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        cast(Register, importlib.import_module(name).register)(sub)
    for ep in entry_points(group="shopfloor.commands"):
        cast(Register, ep.load())(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = cast(Callable[[argparse.Namespace], int], args.func)
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
