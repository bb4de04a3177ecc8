"""Arguments of ``shopfloor demo`` (the command itself is :mod:`edge.cli.demo`).

Kept apart so that building the parser does not import the simulators, the connectors and the
runtime: :mod:`edge.cli.demo` loads only when the demo runs.
"""

from __future__ import annotations

from typing import Any

from edge.cli.lazy import handler


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="simulated demo factory + collector (+ services) in one go")
    p.add_argument("--speed", type=float, default=60.0, help="factory clock speed (default 60)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--start",
        default=None,
        help="factory clock start, local ISO time (default: the most recent shift start)",
    )
    p.add_argument("--data", default="demo-data", help="folder of the store (default demo-data)")
    p.add_argument("--duration", type=float, default=None, help="stop after S wall seconds")
    p.add_argument("--history-days", type=int, default=7, help="baseline days to import (0: none)")
    p.add_argument("--no-services", action="store_true", help="do not start the gateway etc.")
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="dashboard port (default: the site's gateway.port, 8080 in the packaged demo)",
    )
    p.add_argument("-c", "--config", default=None, help="another site file (default: demo.yaml)")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=handler("edge.cli.demo:_demo"))
