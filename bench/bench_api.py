"""API latency under 50 concurrent clients on loopback (httpx async).

A real `shopfloor serve` process reads a real SQLite store holding the demo factory's points
(two hours at one sample a minute per point, plus health records). 50 clients send requests
back to back for a fixed time on: /healthz (no login, no store: the cost of the HTTP stack and
of the client itself, for comparison), the latest values, the history of one point (300 buckets),
and the before/after KPI table (cached by the service for 10 s; its cold time is reported
apart). Prints p50 / p99 / max latency and requests per second.

    .venv/bin/python bench/bench_api.py [--clients 50] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import platform
import statistics
import sys
import tempfile
import time
import zoneinfo
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.gateway.support import start_gateway, stop_gateway


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def load(url: str, token: str, path: str, clients: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=60
    ) as c:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                r = await c.get(path)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(clients)))
    if errors:
        raise SystemExit(f"{path}: {errors} requests failed")
    return latencies


def report(name: str, lat: list[float], seconds: float) -> None:
    ms = [x * 1000 for x in lat]
    print(
        f"{name:<28} n={len(ms):6d}  {len(ms) / seconds:7.0f} req/s  "
        f"p50 {statistics.median(ms):7.1f} ms  p99 {pct(ms, 99):7.1f} ms  max {max(ms):7.1f} ms"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    print(
        f"machine: {platform.machine()}, python {platform.python_version()}, "
        f"{len(__import__('os').sched_getaffinity(0))} cores"
    )
    with tempfile.TemporaryDirectory() as tmp:
        gw = start_gateway(Path(tmp))
        try:
            token = gw.tokens["viewer"]
            today = dt.datetime.now(zoneinfo.ZoneInfo("Asia/Shanghai")).date()
            table = f"/api/v1/table?baseline=2025-01-01..2025-12-31&current={today}..{today}"
            with httpx.Client(
                base_url=gw.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
            ) as c:
                t0 = time.perf_counter()
                assert c.get(table).status_code == 200
                cold = time.perf_counter() - t0
                c.get("/api/v1/latest")  # warm the readers
            print(f"KPI table, cold (one client, computed): {cold * 1000:.0f} ms")
            for name, path in (
                ("healthz (baseline)", "/healthz"),
                ("latest values", "/api/v1/latest"),
                ("history 300 buckets", "/api/v1/history?device=cnc1&point=spindle_kw"),
                ("KPI table (cached 10 s)", table),
            ):
                lat = asyncio.run(load(gw.url, token, path, args.clients, args.seconds))
                report(f"{name} x{args.clients}", lat, args.seconds)
        finally:
            stop_gateway(gw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
