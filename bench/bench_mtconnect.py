"""MTConnect observations/s into the store: agent simulator (child process, real HTTP on
loopback) -> MtconnectConnector (sample?from=&count=) -> SampleQueue -> Writer -> SqliteStore
(WAL, synchronous FULL).

The agent holds ``--observations`` observations of a CNC making parts (per part: Execution
ACTIVE, a spindle speed, PartCount ALL and GOOD, Execution READY; five observations, each one
sample of a configured point). The connector starts with a resume file that points at the first
of them (the restart-after-an-outage case: the backlog is read back in sequence order, ``count``
observations per streamed part, or per request with ``--mode poll``) and the clock runs from the
connector's start until the store has acknowledged every sample. The gateway's CPU time (this
process: connector, queue, writer, SQLite) is counted over the same span; the agent's is not
(another process).

    .venv/bin/python bench/bench_mtconnect.py --runs 5 --observations 100000 --count 1000
    .venv/bin/python bench/bench_mtconnect.py --mode poll --runs 5 --observations 100000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.models import SiteConfig
from connectors.mtconnect import MtconnectConnector
from connectors.simulators.mtconnect import MtconnectAgent
from edge.queue import SampleQueue
from edge.store.sqlite import SqliteStore
from edge.writer import Writer

T0 = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z
PER_PART = 5
INSTANCE = 1_700_000_000


def site(url: str, count: int, resume: Path, streaming: bool = True) -> SiteConfig:
    points = [
        {"id": "state", "role": "state", "mtconnect": {"type": "EXECUTION"}},
        {
            "id": "total",
            "role": "count_total",
            "mtconnect": {"type": "PART_COUNT", "sub_type": "ALL"},
        },
        {
            "id": "good",
            "role": "count_good",
            "mtconnect": {"type": "PART_COUNT", "sub_type": "GOOD"},
        },
        {"id": "spindle", "mtconnect": {"data_item": "spindle"}},
    ]
    dev = {
        "id": "cnc1",
        "name": "cnc",
        "mtconnect": {
            "url": url,
            "device": "cnc1",
            "interval_ms": 10,
            "count": count,
            "streaming": streaming,
            "resume_file": str(resume),
        },
        "points": points,
    }
    return SiteConfig.model_validate({"site": {"id": "b", "name": "b"}, "devices": [dev]})


def _agent_process(n: int, port_out: Any, stop: Any) -> None:
    async def serve() -> None:
        agent = MtconnectAgent(buffer_size=n + 100, clock=lambda: T0, instance_id=INSTANCE)
        ts = T0
        parts = 0
        while agent.next_sequence - 9 < n:  # 8 UNAVAILABLE at start, then n observations
            parts += 1
            ts += 30_000_000_000
            agent.set("exec", "ACTIVE", ts)
            agent.set("spindle", 12000 + parts % 7, ts + 1_000_000_000)
            agent.set("pc_all", parts, ts + 29_000_000_000)
            agent.set("pc_good", parts, ts + 29_000_000_000)
            agent.set("exec", "READY", ts + 29_500_000_000)
        await agent.start()
        port_out.put(agent.port)
        await asyncio.to_thread(stop.wait)
        await agent.stop()

    asyncio.run(serve())


async def run_once(
    n: int, count: int, folder: Path, run: int, streaming: bool = True
) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    port_q = ctx.Queue()
    stop = ctx.Event()
    proc = ctx.Process(target=_agent_process, args=(n, port_q, stop))
    proc.start()
    store = SqliteStore(folder / f"bench-{run}.db")
    try:
        port = await asyncio.to_thread(port_q.get, True, 600)
        resume = folder / f"resume-{run}.json"
        resume.write_text(json.dumps({"instance_id": INSTANCE, "next": 9}))
        (dev,) = site(f"http://127.0.0.1:{port}", count, resume, streaming).devices
        conn = MtconnectConnector(dev, resume)
        queue = SampleQueue(2_000_000, "drop_newest")
        writer = Writer(store, queue, batch_max_samples=20_000, flush_interval_ms=50)
        cpu0 = time.process_time()
        start = time.perf_counter()
        writer_task = asyncio.create_task(writer.run())
        conn_task = asyncio.create_task(conn.run(queue))
        want = n  # one sample per observation
        deadline = time.monotonic() + 600
        while writer.acked_samples < want:
            if time.monotonic() > deadline or conn_task.done():
                if conn_task.done():
                    conn_task.result()
                raise RuntimeError(f"stalled: {conn.messages} observations read")
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        conn_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await conn_task
        queue.close()
        await writer_task
        await writer.close()
        return {
            "obs_per_s": n / elapsed,
            "elapsed_s": elapsed,
            "requests": float(conn.requests),
            "cpu_us_per_sample": cpu / writer.acked_samples * 1e6,
            "samples": float(writer.acked_samples),
        }
    finally:
        store.close()
        stop.set()
        await asyncio.to_thread(proc.join, 30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--observations", type=int, default=100_000)
    ap.add_argument("--count", type=int, default=1000, help="observations per sample request")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mode", choices=["stream", "poll"], default="stream")
    args = ap.parse_args()
    if args.observations % PER_PART:
        ap.error(f"--observations must be a multiple of {PER_PART}")
    print(
        f"# bench_mtconnect mode={args.mode} observations={args.observations} count={args.count} "
        f"| python {platform.python_version()} | {os.cpu_count()} cores | {platform.machine()} "
        "| agent: child process | nothing pinned"
    )
    rates: list[float] = []
    cpus: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-mtc-") as tmp:
        for run in range(args.runs):
            r = asyncio.run(
                run_once(args.observations, args.count, Path(tmp), run, args.mode == "stream")
            )
            rates.append(r["obs_per_s"])
            cpus.append(r["cpu_us_per_sample"])
            print(
                f"run {run + 1}: {r['obs_per_s']:,.0f} observations/s ({r['elapsed_s']:.2f} s, "
                f"{r['requests']:.0f} requests), {r['cpu_us_per_sample']:.1f} µs CPU per sample, "
                f"load {os.getloadavg()[0]:.1f}"
            )
    print(
        f"median: {statistics.median(rates):,.0f} observations/s "
        f"({min(rates):,.0f}-{max(rates):,.0f}), "
        f"{statistics.median(cpus):.1f} µs gateway CPU per sample ({min(cpus):.1f}-{max(cpus):.1f})"
    )


if __name__ == "__main__":
    main()
