"""Group view benchmark: the KPI table of ``shopfloor serve --group`` over N sites x D days.

Synthesizes N sites (the same device ids everywhere, their own site tag) into one private local
influxd (Debian's 1.x, started by the script): per site ``--machines`` key machines with a state
change every 5 minutes (producing 70 %, idle, setup, down), good and scrap counters read every
minute and every 10 minutes, and the collector's heartbeat every 10 s, over ``--days`` days in
UTC with two shifts (06:00-14:00, 14:00-22:00, a 30 min break in each). Then the group view's
service (:class:`gateway.group.GroupService`, as ``/api/v1/group/kpi`` runs it: every site's
``compute_period`` over the central reader filtered by its site, at most 4 at once, and the
group row) computes the period cold (no cache), ``--runs`` times.

usage: .venv/bin/python bench/bench_group.py [--sites 10] [--days 30] [--machines 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gzip
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.markers import HEARTBEAT_DEVICE, HEARTBEAT_POINT, HEARTBEAT_S
from gateway.group import GroupService, open_group
from tests.support.influxd import Influxd

S = 1_000_000_000
START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
STATE_MAP = {"0": "producing", "1": "setup", "2": "idle", "3": "down"}


def site_data(site_id: str, machines: int) -> dict[str, Any]:
    devices = []
    for m in range(machines):
        dev = f"cnc{m + 1}"
        devices.append(
            {
                "id": dev,
                "name": f"{dev} machining centre",
                "key_equipment": True,
                "control": "cnc",
                "ideal_cycle_s": 50.0,
                "opcua": {"endpoint": "opc.tcp://127.0.0.1:4840"},
                "points": [
                    {
                        "id": "state",
                        "role": "state",
                        "opcua": {"node_id": f"ns=2;s={dev}.s"},
                        "state_map": STATE_MAP,
                    },
                    {"id": "good", "role": "count_good", "opcua": {"node_id": f"ns=2;s={dev}.g"}},
                    {"id": "scrap", "role": "count_scrap", "opcua": {"node_id": f"ns=2;s={dev}.x"}},
                ],
            }
        )
    return {
        "version": 1,
        "site": {"id": site_id, "name": site_id, "timezone": "UTC"},
        "calendar": {
            "shifts": [
                {"name": "early", "start": "06:00", "end": "14:00"},
                {"name": "late", "start": "14:00", "end": "22:00"},
            ],
            "breaks": [
                {"name": "b1", "start": "10:00", "end": "10:30"},
                {"name": "b2", "start": "18:00", "end": "18:30"},
            ],
        },
        "devices": devices,
    }


def site_lines(site: str, machines: int, days: int, seed: int) -> list[bytes]:
    """Line protocol of one site, in chunks of about 100,000 lines."""
    rng = np.random.default_rng(seed)
    t0 = int(START.timestamp()) * S
    t1 = t0 + days * 86_400 * S + 3600 * S  # an hour past the period: data reach its end
    tag = f"samples,site={site},gateway={site}"
    lines: list[str] = []
    for m in range(machines):
        dev = f"cnc{m + 1}"
        ts = np.arange(t0, t1, 300 * S)
        states = rng.choice(4, size=ts.size, p=[0.7, 0.05, 0.2, 0.05])
        lines += [
            f"{tag},device={dev},point=state value={s}.0,quality=0i {t}"
            for t, s in zip(ts.tolist(), states.tolist(), strict=True)
        ]
        minutes = np.arange(t0, t1, 60 * S)
        good = np.cumsum(rng.integers(0, 2, size=minutes.size))
        lines += [
            f"{tag},device={dev},point=good value={g}.0,quality=0i {t}"
            for t, g in zip(minutes.tolist(), good.tolist(), strict=True)
        ]
        tens = minutes[::10]
        scrap = np.cumsum(rng.integers(0, 2, size=tens.size))
        lines += [
            f"{tag},device={dev},point=scrap value={x}.0,quality=0i {t}"
            for t, x in zip(tens.tolist(), scrap.tolist(), strict=True)
        ]
    hb = f"{tag},device={HEARTBEAT_DEVICE},point={HEARTBEAT_POINT} value=1.0,quality=0i "
    lines += [hb + str(t) for t in range(t0 - 3600 * S, t1, int(HEARTBEAT_S * S))]
    return ["\n".join(lines[i : i + 100_000]).encode() for i in range(0, len(lines), 100_000)]


def write(server: Influxd, db: str, chunks: list[bytes]) -> int:
    n = 0
    with httpx.Client(base_url=server.url, timeout=300) as c:
        for body in chunks:
            r = c.post(
                "/write",
                params={"db": db, "precision": "ns"},
                content=gzip.compress(body, 1),
                headers={"Content-Encoding": "gzip"},
            )
            if r.status_code != 204:
                raise SystemExit(f"influxd refused a write: {r.status_code} {r.text[:200]}")
            n += body.count(b"\n") + 1
    return n


async def _one_run(service: GroupService, period: str) -> tuple[dict[str, Any], float, float]:
    """The KPI table of ``period``, then what the page's device tables need (every site's
    devices with their newest values); the result and the seconds of each."""
    t = time.perf_counter()
    result = await service.kpi(period)
    kpi_s = time.perf_counter() - t
    t = time.perf_counter()
    await asyncio.gather(*(service.devices(gs.id) for gs in service.group.sites))
    return result, kpi_s, time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=10)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--machines", type=int, default=5, help="key machines per site")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    end = (START + dt.timedelta(days=args.days - 1)).date()
    period = f"{START.date().isoformat()}..{end.isoformat()}"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = Influxd(root=work / "influxd")
        server.start()
        try:
            db = server.create_database("central")
            t = time.monotonic()
            points = 0
            site_files = []
            for i in range(args.sites):
                sid = f"plant-{i:02d}"
                points += write(server, db, site_lines(sid, args.machines, args.days, i))
                path = work / f"{sid}.yaml"
                path.write_text(yaml.safe_dump(site_data(sid, args.machines)), encoding="utf-8")
                site_files.append(str(path))
            load_s = time.monotonic() - t
            (work / "tokens.txt").write_text("")
            group_file = work / "group.yaml"
            group_file.write_text(
                yaml.safe_dump(
                    {
                        "version": 1,
                        "group": {"id": "bench", "name": "bench"},
                        "sites": site_files,
                        "influxdb": {"url": server.url, "database": db, "timeout_s": 300},
                        "auth": {"tokens_file": "tokens.txt"},
                        "server": {"kpi_cache_s": 0},
                    }
                ),
                encoding="utf-8",
            )
            print(
                f"data: {args.sites} sites x {args.machines} machines x {args.days} days, "
                f"{points:,} points written in {load_s:.1f} s",
                flush=True,
            )
            group = open_group(str(group_file))
            times: list[float] = []
            live: list[float] = []
            result: dict[str, Any] = {}
            try:
                for _ in range(args.runs):
                    # a cold service each run: nothing cached
                    result, kpi_s, live_s = asyncio.run(_one_run(GroupService(group), period))
                    times.append(kpi_s)
                    live.append(live_s)
            finally:
                group.close()
        finally:
            server.stop()
    print(
        f"live values of every site's devices (newest point of every series): median "
        f"{statistics.median(live):.2f} s (runs {', '.join(f'{x:.2f}' for x in live)})"
    )
    g = result["group"]
    print(
        f"group KPI table {period}: median {statistics.median(times):.2f} s "
        f"(runs {', '.join(f'{x:.2f}' for x in times)}); group OEE {100 * g['oee']:.2f} % over "
        f"{g['machines']} machines of {g['sites']} sites "
        f"(PBT {g['times_s']['pbt'] / 3600:,.0f} h, APT {g['times_s']['apt'] / 3600:,.0f} h)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
