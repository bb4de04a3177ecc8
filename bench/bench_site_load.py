"""Loading a large site file: ``config.loader.load_site`` of ``--points`` Modbus points.

Writes a site file of ``--devices`` Modbus meters sharing the points evenly (uint16, one
register each, block style YAML as people write it) and times ``load_site`` (YAML parse with
the duplicate-key and depth checks, validation into ``SiteConfig``) ``--runs`` times; prints
the median wall and CPU time and whether libyaml's C loader was used.

    .venv/bin/python bench/bench_site_load.py --points 12500 --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config import loader


def site_text(points: int, devices: int) -> str:
    lines = ["site: {id: big, name: big}", "devices:"]
    per = points // devices
    for d in range(devices):
        lines += [
            f"  - id: m{d:03d}",
            f"    name: meter {d}",
            "    modbus:",
            "      host: 127.0.0.1",
            "      port: 5020",
            f"      unit: {d % 247 + 1}",
            "    points:",
        ]
        for a in range(per):
            lines += [
                f"      - id: r{a}",
                "        datatype: uint16",
                "        role: measurement",
                f"        modbus: {{address: {a}}}",
            ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--points", type=int, default=12_500)
    ap.add_argument("--devices", type=int, default=125)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "site.yaml"
        path.write_text(site_text(args.points, args.devices), encoding="utf-8")
        walls, cpus = [], []
        for _ in range(args.runs):
            t0, c0 = time.perf_counter(), time.process_time()
            site = loader.load_site(path)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        n = sum(len(d.points) for d in site.devices)
        c_loader = getattr(loader, "C_LOADER", False)
        print(
            f"load_site: {n:,} points, {path.stat().st_size:,} bytes; libyaml C loader "
            f"{'yes' if c_loader else 'no'}; median {statistics.median(walls):.3f} s wall "
            f"(min {min(walls):.3f}, max {max(walls):.3f}), {statistics.median(cpus):.3f} s CPU; "
            f"resident {_status('VmRSS'):.0f} MB with the site loaded, process peak "
            f"{_status('VmHWM'):.0f} MB"
        )


def _status(field: str) -> float:
    """A memory figure of this process in MB (``/proc/self/status``; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


if __name__ == "__main__":
    main()
