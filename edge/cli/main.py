"""Entry point of the ``shopfloor`` console script.

Each module named in :data:`COMMANDS` defines ``register(subparsers)``, which adds its
sub-command with ``set_defaults(func=handler)``; a handler takes the parsed arguments and
returns the exit code. Registering must stay argparse-level (``shopfloor --help`` and
``shopfloor config check`` run on small gateways): a command module imports its heavy modules
(asyncio, asyncua, pymodbus, paho, numpy, the store, the runtime) inside its handlers, or keeps
``register`` in a light module whose handler is :func:`edge.cli.lazy.handler`
(``"module:function"``, imported on the call); tests/edge/test_cli_startup.py checks it.
Packages above the edge layer (the gateway) add commands through the ``shopfloor.commands``
entry-point group, so that edge never imports them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

COMMANDS: tuple[str, ...] = (
    "edge.cli.config_cmd",
    "edge.cli.run",
    "edge.cli.tail",
    "edge.cli.sim",
    "edge.cli.demo_cmd",
    "edge.cli.probe",
    "edge.cli.kpi_cmd",
    "edge.cli.browse",
    "edge.cli.keys",
    "edge.cli.checkpoint",
    "edge.cli.outbox",
    "edge.cli.store_cmd",
    "edge.cli.witness",
    "edge.cli.export",
    "edge.cli.form",
    "edge.cli.verify",
)

Register = Callable[[Any], None]


def first_positional(argv: Sequence[str]) -> str | None:
    """The command word of a command line (the top-level parser has no option with a value);
    None when there is none or the top-level help comes first (it lists every command)."""
    for arg in argv:
        if arg in ("--", "-h", "--help"):
            return None
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command. Given the command line (``argv``), the commands of other
    packages (``shopfloor.commands`` entry points: the gateway's, which loads the config models
    and asyncio) are registered only when its command is not one of edge's own, so that
    ``shopfloor tail`` or ``config check`` on a small gateway does not pay for them."""
    parser = argparse.ArgumentParser(
        prog="shopfloor",
        description="Shop-floor data collector and evidence for 智能工厂梯度培育 applications.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        cast(Register, importlib.import_module(name).register)(sub)
    if argv is not None and first_positional(argv) in sub.choices:
        return parser
    from importlib.metadata import entry_points  # ~10 ms of imports: only when needed

    for ep in entry_points(group="shopfloor.commands"):
        cast(Register, ep.load())(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    func = cast(Callable[[argparse.Namespace], int], args.func)
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
