"""Building the ``shopfloor`` parser stays argparse-level (fast ``--help`` on a small gateway).

Checked in a fresh interpreter (``sys.modules`` of this test process already holds everything).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import lazy
from edge.cli.main import build_parser, first_positional, main

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("asyncua", "pymodbus", "paho", "numpy", "fastapi")
# what edge's own commands must not load either (the gateway's entry point loads config/asyncio)
EDGE_HEAVY = (
    *HEAVY,
    "asyncio",
    "pydantic",
    "config",
    "cryptography",
    "edge.runtime",
    "edge.store.sqlite",
    "metrics.engine",
    "connectors.simulators",
    "importlib.metadata",
)


def _loaded_after(code: str) -> list[str]:
    probe = (
        f"import sys\n{code}\n"
        "import json\n"
        f"print(json.dumps(sorted(k for k in {list(EDGE_HEAVY)!r} if k in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_build_parser_imports_no_protocol_library_nor_numpy() -> None:
    loaded = _loaded_after("import edge.cli.main as m\nm.build_parser()")
    assert not [m for m in loaded if m in HEAVY], loaded


@pytest.mark.parametrize(
    "argv", [["tail", "--db", "x.db"], ["config", "check", "site.yaml"], ["demo", "-h"]]
)
def test_edge_command_line_loads_nothing_heavy(argv: list[str]) -> None:
    loaded = _loaded_after(f"import edge.cli.main as m\nm.build_parser({argv!r})")
    assert loaded == []


def _handlers(parser: argparse.ArgumentParser) -> list[object]:
    """Every ``func`` default of the parser and its sub-parsers."""
    found: list[object] = []
    func = parser.get_default("func")
    if func is not None:
        found.append(func)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _handlers(child)
    return found


def test_every_lazy_handler_names_a_function() -> None:
    handlers = _handlers(build_parser())
    lazies = [h for h in handlers if isinstance(h, lazy.LazyHandler)]
    assert {h.target for h in lazies} >= {"edge.cli.demo:_demo", "edge.cli.kpi:table_cmd"}
    for h in lazies:
        assert callable(lazy.resolve(h.target)), h.target
    assert all(callable(h) for h in handlers)


@pytest.mark.parametrize("target", ["edge.cli.demo", "edge.cli.demo:", ":main", ""])
def test_lazy_target_must_be_module_colon_function(target: str) -> None:
    with pytest.raises(ValueError, match=r"not 'package\.module:function'"):
        lazy.handler(target)
    with pytest.raises(ValueError, match=r"not 'package\.module:function'"):
        lazy.resolve(target)


def test_lazy_target_without_that_function() -> None:
    with pytest.raises(ValueError, match="has no function no_such_handler"):
        lazy.resolve("edge.cli.demo:no_such_handler")
    with pytest.raises(ValueError, match="has no function"):
        lazy.resolve("edge.cli.demo:SERVICE_STOP_S")  # a constant, not a function
    with pytest.raises(ModuleNotFoundError):
        lazy.resolve("edge.cli.no_such_module:main")


def test_lazy_handler_runs_its_target(capsys: pytest.CaptureFixture[str]) -> None:
    demo = ROOT / "config" / "examples" / "demo.yaml"
    assert main(["config", "check", str(demo)]) == 0
    assert "ok" in capsys.readouterr().out
    args = build_parser().parse_args(["kpi", "tiers", "-c", str(ROOT / "no-such-site.yaml")])
    assert isinstance(args.func, lazy.LazyHandler)
    assert args.func(args) == 2  # the kpi module loaded and reported the missing file
    assert "no-such-site.yaml" in capsys.readouterr().err


def test_first_positional() -> None:
    assert first_positional(["tail", "-n", "3"]) == "tail"
    assert first_positional(["-h"]) is None
    assert first_positional(["-h", "tail"]) is None  # top-level help: every command, gateway's too
    assert first_positional(["tail", "-h"]) == "tail"
    assert first_positional(["--", "tail"]) is None
    assert first_positional([]) is None


def test_gateway_commands_still_registered_for_help_and_their_own_lines() -> None:
    names = set(_subcommands(build_parser()))
    assert {"config", "tail", "demo", "kpi", "import"} <= names
    assert "serve" in names  # the gateway's entry point (shopfloor.commands)
    assert "serve" in _subcommands(build_parser(["serve", "-h"]))
    assert "serve" not in _subcommands(build_parser(["tail"]))
    assert "serve" in _subcommands(build_parser(["--help", "tail"]))


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return []
