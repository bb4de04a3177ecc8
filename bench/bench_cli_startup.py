"""Start-up cost of the ``shopfloor`` command: ``--help``, ``tail --help`` and ``config check``.

Runs each command ``--runs`` times in a fresh interpreter (``python -m edge.cli.main ...``,
the same code the console script runs) and prints the median, min and max wall time and CPU
time (user + system of the child, from ``getrusage``). ``--root DIR`` runs the tree at DIR
instead of this one (``PYTHONPATH=DIR``; e.g. a ``git archive`` of an older commit, to compare
before/after on the same machine). ``--parser-only`` adds a run of ``build_parser()`` alone with
the modules it leaves loaded (asyncua, pymodbus, paho, numpy, fastapi, asyncio, pydantic).

    .venv/bin/python bench/bench_cli_startup.py [--runs 15] [--root DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
HEAVY = ("asyncua", "pymodbus", "paho", "numpy", "fastapi", "asyncio", "pydantic", "config")


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, int]:
    """(wall s, CPU s, exit code) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.returncode


def line(name: str, walls: list[float], cpus: list[float]) -> str:
    return (
        f"{name:<32} wall median {statistics.median(walls) * 1000:7.0f} ms "
        f"(min {min(walls) * 1000:5.0f}, max {max(walls) * 1000:5.0f})   "
        f"CPU median {statistics.median(cpus) * 1000:6.0f} ms "
        f"(min {min(cpus) * 1000:5.0f}, max {max(cpus) * 1000:5.0f})"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--root", type=Path, default=HERE, help="tree to run (default: this one)")
    args = ap.parse_args()
    root: Path = args.root.resolve()
    env = dict(os.environ, PYTHONPATH=str(root))
    py = sys.executable
    demo = root / "config" / "examples" / "demo.yaml"
    commands = {
        "python -c pass (interpreter)": [py, "-c", "pass"],
        "shopfloor --help": [py, "-m", "edge.cli.main", "--help"],
        "shopfloor tail --help": [py, "-m", "edge.cli.main", "tail", "--help"],
        "shopfloor config check demo": [py, "-m", "edge.cli.main", "config", "check", str(demo)],
        "build_parser() only": [
            py,
            "-c",
            "import edge.cli.main as m; m.build_parser()",
        ],
    }
    print(
        f"# {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, tree {root}, {args.runs} runs"
    )
    for name, cmd in commands.items():
        walls: list[float] = []
        cpus: list[float] = []
        for _ in range(args.runs):
            wall, cpu, code = timed(cmd, env, root)
            if code != 0:
                print(f"{name}: exit code {code}", file=sys.stderr)
                return 1
            walls.append(wall)
            cpus.append(cpu)
        print(line(name, walls, cpus), flush=True)
    probe = (
        "import sys, edge.cli.main as m; m.build_parser(); "
        f"print(' '.join(k for k in {HEAVY!r} if k in sys.modules) or '-')"
    )
    out = subprocess.run(
        [py, "-c", probe], env=env, cwd=root, capture_output=True, text=True, check=True
    )
    print(f"modules loaded by build_parser(): {out.stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
