"""Sizing of the whole collector on Modbus TCP: points, interval, CPU %, memory, bytes/sample.

The real :class:`edge.runtime.Collector` (connectors, queue, recording, writer, SQLite store
with ``synchronous=FULL`` and the evidence ledger: the defaults) reads ``--points`` uint16
points (one register each, 1,000 per unit, 8 coalesced reads of 125 registers per unit and
poll) every ``--interval-ms`` from a simulator in a child process (its own core):
``bench/fast_modbus_server.py`` (default: prebuilt answers, so the gateway is what is
measured; one TCP port per ``--units-per-port`` units, one connector each) or ``--sim
pymodbus`` (the project's meter simulator, one port; it saturates first).
After a warm-up it measures, over ``--seconds``: the collector process's CPU-seconds (user +
system, all its threads) per stored sample and as % of one core, samples stored per second
(``writer.acked_samples``), the resident memory (max VmRSS; also per configured point above
the bare process with its libraries), and at the end the store and ledger bytes per stored
sample (after ``compact`` of the store), and the queue's drops in the measured window (those
of the start-up and warm-up, when the first writes create every series, apart). The process's
peak resident
memory so far (``VmHWM``, start-up included; cumulative over the runs of one invocation) is
printed per run: run one size per invocation for its peak.

``--workers N`` sets ``runtime.workers`` (connectors in N worker processes, edge.workers): the
CPU-seconds and resident memory are then summed over the collector and its workers.

``--ceiling`` polls back to back (interval 10 ms) and reports registers stored per second.
``--profile FILE`` writes a cProfile of the last run (``python -m pstats FILE``): the event loop
thread, plus the writer's store thread (``Writer._persist``) and the ledger's appender thread
(``Ledger._append_parts``) in ``FILE.store`` and ``FILE.ledger``.

    .venv/bin/python bench/bench_sizing.py --points 10000 50000 100000 --runs 3
    .venv/bin/python bench/bench_sizing.py --ceiling --points 100000 --runs 3
    .venv/bin/python bench/bench_sizing.py --ceiling --points 20000 --runs 3 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import importlib
import multiprocessing as mp
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.models import Device, SiteConfig
from edge.runtime import Collector

PER_UNIT = 1000
TRACE = [0]  # --tracemalloc: how many allocation sites to print (0: not traced)
THREADS = [False]  # --threads: print each thread's CPU over the window
BASE_MB = [0.0]  # the process's resident memory before any site (interpreter, libraries)


def make_site(
    ports: list[int],
    per_port: int,
    points: int,
    interval_ms: int,
    tmp: Path,
    switch_ms: float | None = None,
    workers: int = 0,
) -> SiteConfig:
    """The site, each device validated on its own: the plain dictionaries of one device at a
    time, as ``load_site`` of a site file does not hold them all either (a list of 100,000
    point dictionaries is ~100 MB of start-up peak that a collector never has)."""
    devices: list[Device] = []
    units = (points + PER_UNIT - 1) // PER_UNIT
    for u in range(1, units + 1):
        n = min(PER_UNIT, points - (u - 1) * PER_UNIT)
        devices.append(
            Device.model_validate(
                {
                    "id": f"m{u:03d}",
                    "name": f"meter {u}",
                    "modbus": {
                        "host": "127.0.0.1",
                        "port": ports[(u - 1) // per_port],
                        "unit": (u - 1) % per_port + 1,
                        "poll_interval_ms": interval_ms,
                        "timeout_s": 5.0,
                    },
                    "points": [
                        {"id": f"r{a}", "datatype": "uint16", "modbus": {"address": a}}
                        for a in range(n)
                    ],
                }
            )
        )
    return SiteConfig.model_validate(
        {
            "site": {"id": "sizing", "name": "sizing"},
            "devices": devices,
            "storage": {"kind": "sqlite", "path": str(tmp / "store.db")},
            "evidence": {"ledger_path": str(tmp / "ledger.db"), "key_dir": str(tmp / "keys")},
            "runtime": {"workers": workers}
            | ({} if switch_ms is None else {"gil_switch_ms": switch_ms}),
        }
    )


def serve_fast(ports: list[int], units: int, ready: Any) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fast_modbus_server import run

    run(ports, units, PER_UNIT, ready)


def serve(ports: list[int], units: int, ready: Any) -> None:
    """The simulator process: fixed registers (every sample is stored: no deadband)."""
    from connectors.simulators.meters import MeterServer, UnitImage

    async def main() -> None:
        images = {
            u: UnitImage(holding={a: a for a in range(PER_UNIT)}) for u in range(1, units + 1)
        }
        server = MeterServer(images, port=ports[0])
        await server.start()
        ready.send("ready")
        ready.close()
        await asyncio.Event().wait()

    asyncio.run(main())


def thread_profile(owner: Any, name: str) -> cProfile.Profile:
    """Profile every call of ``owner.name`` (a method run in its own thread)."""
    prof = cProfile.Profile()
    orig = getattr(owner, name)

    def wrapped(*args: Any, **kw: Any) -> Any:
        prof.enable()
        try:
            return orig(*args, **kw)
        finally:
            prof.disable()

    setattr(owner, name, wrapped)
    return prof


def rss_mb(field: str = "VmRSS") -> float:
    """The process's resident memory (``VmHWM``: its peak so far, start-up included)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def worker_pids(col: Collector) -> list[int]:
    from edge.workers import WorkerConnector

    sup = col.supervisor
    conns = sup.connectors if sup is not None else ()
    return [c.pid for c in conns if isinstance(c, WorkerConnector) and c.pid is not None]


def thread_cpu_s() -> dict[str, float]:
    """CPU-seconds (user + system) of each thread of this process by its Python name (from
    /proc/self/task; threads of one name, the store's pool, summed; unnamed ones as 'other')."""
    import threading

    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        name = names.get(int(task), "other").rstrip("_0123456789")
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def proc_cpu_s(pids: list[int]) -> float:
    """CPU-seconds (user + system) of the processes ``pids`` (from /proc; 0 for one gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def proc_rss_mb(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) / 1024
        except FileNotFoundError:
            continue
    return total


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def one_run(
    ports: list[int],
    per_port: int,
    points: int,
    interval_ms: int,
    warmup: float,
    seconds: float,
    switch_ms: float | None,
    workers: int = 0,
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        site = make_site(ports, per_port, points, interval_ms, tmp, switch_ms, workers)
        col = Collector(site, evidence=True)
        stop = asyncio.Event()
        task = asyncio.create_task(col.run(stop))
        await col.ready.wait()
        assert col.writer is not None
        w = col.writer
        while w.acked_samples < points:  # noqa: ASYNC110 (worker processes take a moment)
            await asyncio.sleep(0.1)
        await asyncio.sleep(warmup)
        pids = worker_pids(col)
        s0, t0, c0 = w.acked_samples, time.perf_counter(), time.process_time()
        sys0 = os.times().system
        th0 = thread_cpu_s()
        d0 = col.queue.dropped  # drops of the start-up (first writes create every series)
        wc0 = proc_cpu_s(pids)
        rss = rss_mb() + proc_rss_mb(pids)
        end = t0 + seconds
        while time.perf_counter() < end:
            await asyncio.sleep(0.5)
            rss = max(rss, rss_mb() + proc_rss_mb(pids))
        s1, elapsed, cpu = w.acked_samples, time.perf_counter() - t0, time.process_time() - c0
        sys_s = os.times().system - sys0  # the kernel's share (sockets, fsync) of this process
        th1 = thread_cpu_s()
        threads_pct = {k: (v - th0.get(k, 0.0)) / elapsed * 100 for k, v in th1.items()}
        if THREADS[0]:
            busy = sorted(threads_pct.items(), key=lambda kv: -kv[1])
            print("  threads: " + ", ".join(f"{k} {v:.1f} %" for k, v in busy if v >= 0.05))
        cpu += proc_cpu_s(pids) - wc0
        if TRACE[0]:
            print_allocations(TRACE[0], points)
        drops = col.queue.dropped - d0
        drops_startup = d0
        stop.set()
        await task
        stored = w.acked_samples
        from edge.store.sqlite import SqliteStore

        with SqliteStore(tmp / "store.db") as st:
            st.compact(time.time_ns() + 10**12)
        store_b = dir_bytes(tmp / "store.db")
        ledger_b = dir_bytes(tmp / "ledger.db")
    n = s1 - s0
    return {
        "samples_s": n / elapsed,
        "cpu_pct": cpu / elapsed * 100,
        "cpu_us_per_sample": cpu / max(n, 1) * 1e6,
        "sys_pct": sys_s / max(cpu, 1e-9) * 100,
        "rss_mb": rss,
        "drops": drops,
        "drops_startup": drops_startup,
        "store_b": store_b / max(stored, 1),
        "ledger_b": ledger_b / max(stored, 1),
        "peak_mb": rss_mb("VmHWM"),
        # resident memory the collector adds to the bare interpreter and its libraries, per
        # configured point (the same per sample per interval: one sample a point a poll)
        "kb_per_point": (rss - BASE_MB[0]) * 1024 / points,
    }


def print_allocations(top: int, points: int) -> None:
    """The ``top`` places (file:line) holding the most live Python memory now, with bytes per
    configured point (``--tracemalloc``: started before the site is built)."""
    import tracemalloc

    snap = tracemalloc.take_snapshot()
    total = sum(st.size for st in snap.statistics("filename"))
    print(f"  tracemalloc: {total / 2**20:.1f} MB live ({total / points:.0f} B per point); top:")
    for st in snap.statistics("lineno")[:top]:
        frame = st.traceback[0]
        print(
            f"    {st.size / 2**20:7.1f} MB {st.size / points:6.0f} B/point {st.count:>9,} "
            f"blocks  {frame.filename.split('/site-packages/')[-1]}:{frame.lineno}"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--points", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    ap.add_argument("--interval-ms", type=int, default=1000)
    ap.add_argument("--ceiling", action="store_true", help="poll back to back (10 ms)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--switch-ms",
        type=float,
        help="runtime.gil_switch_ms (the collector's GIL hand-over), default: the setting's",
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=0,
        help="runtime.workers: connectors in this many worker processes (CPU and RSS summed)",
    )
    ap.add_argument("--sim", choices=("fast", "pymodbus"), default="fast")
    ap.add_argument("--units-per-port", type=int, default=10)
    ap.add_argument("--profile", type=Path, help="write a cProfile of the (last) run here")
    ap.add_argument(
        "--threads",
        action="store_true",
        help="print each thread's CPU (% of a core) over the window (event loop, store, ledger)",
    )
    ap.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="N",
        help="trace Python allocations (slow) and print the N largest live sites per run",
    )
    args = ap.parse_args()
    for mod in ("edge.store.ledger", "edge.store.sqlite"):  # libraries: part of the base
        importlib.import_module(mod)

    BASE_MB[0] = rss_mb()
    TRACE[0] = args.tracemalloc
    THREADS[0] = args.threads
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start()
    interval = 10 if args.ceiling else args.interval_ms
    units = (max(args.points) + PER_UNIT - 1) // PER_UNIT
    per_port = args.units_per_port if args.sim == "fast" else units
    ports = [free_port() for _ in range((units + per_port - 1) // per_port)]
    ctx = mp.get_context("spawn")
    ready, child_end = ctx.Pipe(duplex=False)
    target = serve_fast if args.sim == "fast" else serve
    proc = ctx.Process(target=target, args=(ports, min(units, per_port), child_end))
    proc.start()
    child_end.close()
    print(
        f"bench_sizing: Modbus TCP uint16 points, {PER_UNIT} per unit, {per_port} units per port "
        f"({args.sim} simulator), interval {interval} ms, "
        f"store + ledger (synchronous=FULL), gil_switch_ms {args.switch_ms or 'default'}, "
        f"workers {args.workers}; "
        f"python {platform.python_version()}, "
        f"{os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}"
    )
    try:
        if not ready.poll(120) or ready.recv() != "ready":
            raise SystemExit("the simulator did not start")
        for points in args.points:
            results = []
            for i in range(args.runs):
                prof = cProfile.Profile() if args.profile and i == args.runs - 1 else None
                if prof is not None:
                    from edge.store.ledger import Ledger
                    from edge.writer import Writer

                    threads = {
                        "store": thread_profile(Writer, "_persist"),
                        "ledger": thread_profile(Ledger, "_append_parts"),
                    }
                    prof.enable()
                r = asyncio.run(
                    one_run(
                        ports,
                        per_port,
                        points,
                        interval,
                        args.warmup,
                        args.seconds,
                        args.switch_ms,
                        args.workers,
                    )
                )
                if prof is not None:
                    prof.disable()
                    prof.dump_stats(str(args.profile))
                    for suffix, p in threads.items():
                        p.dump_stats(f"{args.profile}.{suffix}")
                results.append(r)
                print(
                    f"  {points:,} points run {i + 1}: {r['samples_s']:,.0f} samples/s stored, "
                    f"CPU {r['cpu_pct']:.1f} % of a core, {r['cpu_us_per_sample']:.2f} us CPU per "
                    f"sample ({r['sys_pct']:.0f} % in the kernel), RSS {r['rss_mb']:.0f} MB "
                    f"(process peak so far "
                    f"{r['peak_mb']:.0f} MB; {r['kb_per_point']:.2f} KB per point above the "
                    f"{BASE_MB[0]:.0f} MB of the bare process), drops {r['drops']:.0f} "
                    f"(start-up {r['drops_startup']:.0f}), store "
                    f"{r['store_b']:.1f} B/sample, ledger {r['ledger_b']:.1f} B/sample"
                )
            med = {k: statistics.median(r[k] for r in results) for k in results[0]}
            print(
                f"{points:,} points @ {interval} ms: median {med['samples_s']:,.0f} samples/s, "
                f"CPU {med['cpu_pct']:.1f} %, {med['cpu_us_per_sample']:.2f} us/sample "
                f"({med['sys_pct']:.0f} % kernel), RSS {med['rss_mb']:.0f} MB "
                f"({med['kb_per_point']:.2f} KB/point), "
                f"peak {med['peak_mb']:.0f} MB, store {med['store_b']:.1f} B/sample, "
                f"ledger {med['ledger_b']:.1f} B/sample; load {os.getloadavg()[0]:.2f}"
            )
    finally:
        proc.terminate()
        proc.join(10)
        with contextlib.suppress(Exception):
            ready.close()


if __name__ == "__main__":
    main()
