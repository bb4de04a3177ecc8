"""shopfloor and a peer gateway on the same Modbus TCP simulator: points per CPU-second.

One simulator process (``bench/fast_modbus_server.py``'s protocol code: function codes 3/4,
prebuilt answers) serves ``--devices`` units of 125 holding registers (100 units per TCP
port). Every register's value changes once a second (two prebuilt images, alternating), so a
gateway that reports on change delivers every poll. The simulator counts the requests and the
registers it answered: what any gateway *read*, whatever it then does with it.

* shopfloor: the real :class:`edge.runtime.Collector` with the defaults (SQLite store
  ``synchronous=FULL``, evidence ledger), one device per unit, 125 uint16 points
  (addresses 0-124, coalesced by the connector into one 125-register read per device and
  poll), every ``--interval-ms``; run in this process for ``--seconds`` after ``--warmup``.
  Figures: samples stored per second, the collector process's CPU-seconds (all threads), and
  points (stored) per CPU-second.
* a peer (optional): ``--peer-cmd 'CMD'`` is started with a shell after shopfloor's run (with
  ``{config}`` replaced by the directory of the configuration written by ``--tb-config``, and
  ``{port}`` by the first simulator port), or ``--peer-pid PID`` names one already running.
  Figures over the same window: registers the simulator answered per second, the peer's
  CPU-seconds (the process and its descendants, from /proc), and points (read) per
  CPU-second. ``--tb-config DIR`` writes a thingsboard-gateway 3.8 configuration for the same
  devices (``tb_gateway.json`` + ``modbus.json``: 125 ``16uint`` timeseries per device, poll
  period ``--interval-ms``, report strategy ON_RECEIVED) pointing at a private mosquitto
  that this script starts (``--tb-broker``) and on which it counts the telemetry data points
  the peer delivered (``v1/gateway/telemetry``).

    .venv/bin/python bench/bench_side_by_side.py --devices 100 --seconds 20
    .venv/bin/python bench/bench_side_by_side.py --devices 100 --seconds 20 \\
        --tb-config /tmp/tbcfg --tb-broker --peer-cmd 'cd {config} && \\
        TB_GW_CONFIG_DIR={config} /tmp/tbvenv/bin/python \\
        -c "from thingsboard_gateway.tb_gateway import daemon; daemon()"'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

REGISTERS = 125
UNITS_PER_PORT = 100
_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------- simulator
def simulator(ports: list[int], units: int, ready: Any, requests: Any, registers: Any) -> None:
    """Child process: the fast server's protocol with two images (values change every second)
    and counters of requests and registers answered (published every 0.2 s)."""
    import fast_modbus_server as fms

    images = [
        b"".join(struct.pack(">H", (a + k) & 0xFFFF) for a in range(REGISTERS)) for k in (0, 1)
    ]
    counts = [0, 0]

    class Counting(fms._Server):
        def data_received(self, data: bytes) -> None:
            self.image = images[int(time.time()) & 1]
            buf = self.buf + data if self.buf else data
            at, n = 0, len(buf)
            while n - at >= 12:
                *_h, length, _unit, fc, _addr, count = fms._HEAD.unpack_from(buf, at)
                at += 6 + length
                counts[0] += 1
                if fc in (3, 4):
                    counts[1] += count
            super().data_received(data)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers = [  # noqa: F841 (kept open until the process ends)
            await loop.create_server(lambda: Counting(images[0], UNITS_PER_PORT), "127.0.0.1", p)
            for p in ports
        ]
        ready.set()
        while True:
            await asyncio.sleep(0.2)
            requests.value, registers.value = counts

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    del units


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def where(ports: list[int], i: int) -> tuple[int, int]:
    """(port, unit) of device ``i`` (0-based)."""
    return ports[i // UNITS_PER_PORT], i % UNITS_PER_PORT + 1


# ---------------------------------------------------------------------------- shopfloor
def shopfloor_site(ports: list[int], devices: int, interval_ms: int, tmp: Path) -> Any:
    from config.models import SiteConfig

    devs = []
    for i in range(devices):
        port, unit = where(ports, i)
        devs.append(
            {
                "id": f"d{i:03d}",
                "name": f"device {i}",
                "modbus": {
                    "host": "127.0.0.1",
                    "port": port,
                    "unit": unit,
                    "poll_interval_ms": interval_ms,
                    "timeout_s": 5.0,
                },
                "points": [
                    {"id": f"r{a}", "datatype": "uint16", "modbus": {"address": a}}
                    for a in range(REGISTERS)
                ],
            }
        )
    return SiteConfig.model_validate(
        {
            "site": {"id": "side", "name": "side by side"},
            "devices": devs,
            "storage": {"kind": "sqlite", "path": str(tmp / "store.db")},
            "evidence": {"ledger_path": str(tmp / "ledger.db"), "key_dir": str(tmp / "keys")},
        }
    )


async def run_shopfloor(
    ports: list[int], devices: int, interval_ms: int, warmup: float, seconds: float, regs: Any
) -> dict[str, float]:
    from edge.runtime import Collector

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        col = Collector(shopfloor_site(ports, devices, interval_ms, tmp), evidence=True)
        stop = asyncio.Event()
        task = asyncio.create_task(col.run(stop))
        await col.ready.wait()
        await asyncio.sleep(warmup)
        assert col.writer is not None
        w = col.writer
        s0, r0, t0, c0 = w.acked_samples, regs.value, time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        s1, r1 = w.acked_samples, regs.value
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        stop.set()
        await task
    return {
        "stored_s": (s1 - s0) / elapsed,
        "read_s": (r1 - r0) / elapsed,
        "cpu_pct": cpu / elapsed * 100,
        "per_cpu_s": (s1 - s0) / max(cpu, 1e-9),
    }


# ---------------------------------------------------------------------------- peer
def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its live descendants, from /proc."""
    parent: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        p = int(entry.name)
        parent[p] = int(fields[1])
        times[p] = (int(fields[11]) + int(fields[12])) / _TCK
    tree = {pid}
    grew = True
    while grew:
        grew = False
        for p, pp in parent.items():
            if pp in tree and p not in tree:
                tree.add(p)
                grew = True
    return sum(times.get(p, 0.0) for p in tree)


def tb_config(
    folder: Path,
    ports: list[int],
    devices: int,
    interval_ms: int,
    mqtt_port: int,
    block: bool = False,
) -> None:
    """A thingsboard-gateway 3.8 configuration for the same devices (see the docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "logs").mkdir(exist_ok=True)
    gateway = {
        "thingsboard": {
            "host": "127.0.0.1",
            "port": mqtt_port,
            "remoteShell": False,
            "remoteConfiguration": False,
            "statistics": {"enable": False, "statsSendPeriodInSeconds": 3600},
            "deviceFiltering": {"enable": False},
            "maxPayloadSizeBytes": 65536,
            "minPackSendDelayMS": 50,
            "minPackSizeToSend": 500,
            "checkConnectorsConfigurationInSeconds": 3600,
            "handleDeviceRenaming": False,
            "security": {"type": "accessToken", "accessToken": "bench"},
            "qos": 1,
            "reportStrategy": {"type": "ON_RECEIVED"},
            "checkingDeviceActivity": {"checkDeviceInactivity": False},
            "rateLimits": "0:0,",
            "dpRateLimits": "0:0,",
            "messagesRateLimits": "0:0,",
            "deviceMessagesRateLimits": "0:0,",
            "deviceRateLimits": "0:0,",
            "deviceDpRateLimits": "0:0,",
        },
        "storage": {"type": "memory", "read_records_count": 100, "max_records_count": 1000000},
        "grpc": {"enabled": False},
        "connectors": [{"type": "modbus", "name": "Modbus", "configuration": "modbus.json"}],
    }
    slaves = []
    for i in range(devices):
        port, unit = where(ports, i)
        slaves.append(
            {
                "host": "127.0.0.1",
                "port": port,
                "type": "tcp",
                "method": "socket",
                "unitId": unit,
                "deviceName": f"d{i:03d}",
                "deviceType": "default",
                "timeout": 5,
                "byteOrder": "BIG",
                "wordOrder": "BIG",
                "retries": 1,
                "pollPeriod": interval_ms,
                "connectAttemptTimeMs": 5000,
                "connectAttemptCount": 5,
                "waitAfterFailedAttemptsMs": 5000,
                "attributes": [],
                "timeseries": [
                    {
                        "tag": "block",
                        "type": "16uint",
                        "functionCode": 3,
                        "objectsCount": REGISTERS,
                        "address": 0,
                    }
                ]
                if block
                else [
                    {
                        "tag": f"r{a}",
                        "type": "16uint",
                        "functionCode": 3,
                        "objectsCount": 1,
                        "address": a,
                    }
                    for a in range(REGISTERS)
                ],
                "attributeUpdates": [],
                "rpc": [],
            }
        )
    (folder / "tb_gateway.json").write_text(json.dumps(gateway, indent=1))
    (folder / "modbus.json").write_text(json.dumps({"master": {"slaves": slaves}}, indent=1))
    logs = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"f": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "f",
                "filename": str(folder / "logs" / "tb.log"),
            }
        },
        "root": {"level": "WARNING", "handlers": ["file"]},
        # pymodbus 3.9 warns of a deprecation on every decoded value: not part of the load
        "loggers": {"pymodbus": {"level": "ERROR"}, "pymodbus.logging": {"level": "ERROR"}},
    }
    (folder / "logs.json").write_text(json.dumps(logs, indent=1))


class TelemetryCounter:
    """Counts the data points a ThingsBoard gateway publishes on ``v1/gateway/telemetry``."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.points = 0
        self.messages = 0
        self.topics: set[str] = set()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="side-by-side-counter")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe("#", 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        self.topics.add(msg.topic)
        if msg.topic != "v1/gateway/telemetry":
            return
        self.messages += 1
        with contextlib.suppress(ValueError, AttributeError):
            for entries in json.loads(msg.payload).values():
                for entry in entries if isinstance(entries, list) else [entries]:
                    values = entry.get("values", entry)
                    self.points += len(values)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def measure_peer(
    pid: int, warmup: float, seconds: float, regs: Any, reqs: Any, counter: TelemetryCounter | None
) -> dict[str, float]:
    time.sleep(warmup)
    c0, r0, q0, t0 = tree_cpu(pid), regs.value, reqs.value, time.perf_counter()
    p0 = counter.points if counter else 0
    time.sleep(seconds)
    c1, r1, q1, t1 = tree_cpu(pid), regs.value, reqs.value, time.perf_counter()
    p1 = counter.points if counter else 0
    elapsed, cpu = t1 - t0, c1 - c0
    return {
        "read_s": (r1 - r0) / elapsed,
        "requests_s": (q1 - q0) / elapsed,
        "delivered_s": (p1 - p0) / elapsed,
        "cpu_pct": cpu / elapsed * 100,
        "per_cpu_s": (r1 - r0) / max(cpu, 1e-9),
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--devices", type=int, default=100, help="units of 125 registers")
    ap.add_argument("--interval-ms", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--no-shopfloor", action="store_true")
    ap.add_argument("--peer-cmd", help="the peer gateway's command (shell; {config}, {port})")
    ap.add_argument("--peer-pid", type=int, help="a peer gateway already running")
    ap.add_argument("--peer-warmup", type=float, default=20.0)
    ap.add_argument("--tb-config", type=Path, help="write a thingsboard-gateway config here")
    ap.add_argument(
        "--tb-block",
        action="store_true",
        help="one 125-register timeseries per device (one read per poll) instead of 125 tags",
    )
    ap.add_argument(
        "--tb-broker", action="store_true", help="a private mosquitto for the peer (counted)"
    )
    args = ap.parse_args()
    nports = (args.devices + UNITS_PER_PORT - 1) // UNITS_PER_PORT
    ports = [free_port() for _ in range(nports)]
    offered = args.devices * REGISTERS * 1000 / args.interval_ms
    print(
        f"bench_side_by_side: {args.devices} devices x {REGISTERS} registers every "
        f"{args.interval_ms} ms = {offered:,.0f} points/s offered; simulator ports {ports}; "
        f"python {platform.python_version()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    reqs, regs = ctx.Value("q", 0, lock=False), ctx.Value("q", 0, lock=False)
    sim = ctx.Process(target=simulator, args=(ports, args.devices, ready, reqs, regs), daemon=True)
    sim.start()
    broker: Any = None
    loop: asyncio.AbstractEventLoop | None = None
    try:
        if not ready.wait(60):
            raise SystemExit("the simulator did not start")
        if not args.no_shopfloor:
            r = asyncio.run(
                run_shopfloor(
                    ports, args.devices, args.interval_ms, args.warmup, args.seconds, regs
                )
            )
            print(
                f"shopfloor: {r['stored_s']:,.0f} points/s stored "
                f"({r['stored_s'] / offered * 100:.0f} % of offered; simulator answered "
                f"{r['read_s']:,.0f} registers/s), CPU {r['cpu_pct']:.1f} % of a core = "
                f"{r['per_cpu_s']:,.0f} points per CPU-second; load {os.getloadavg()[0]:.2f}"
            )
        if args.peer_cmd is None and args.peer_pid is None:
            if args.tb_config:
                tb_config(
                    args.tb_config, ports, args.devices, args.interval_ms, 1883, args.tb_block
                )
                print(f"thingsboard-gateway configuration written to {args.tb_config}")
            return 0
        mqtt_port = 1883
        if args.tb_broker:
            from connectors.simulators.broker import MosquittoBroker

            loop = asyncio.new_event_loop()
            broker = MosquittoBroker()
            loop.run_until_complete(broker.start())
            mqtt_port = broker.port
        if args.tb_config:
            tb_config(
                args.tb_config, ports, args.devices, args.interval_ms, mqtt_port, args.tb_block
            )
        counter = TelemetryCounter(mqtt_port) if args.tb_broker else None
        proc: subprocess.Popen[bytes] | None = None
        pid = args.peer_pid
        if args.peer_cmd:
            cmd = args.peer_cmd.format(config=args.tb_config or "", port=ports[0])
            proc = subprocess.Popen(cmd, shell=True, start_new_session=True)
            pid = proc.pid
        assert pid is not None
        try:
            p = measure_peer(pid, args.peer_warmup, args.seconds, regs, reqs, counter)
        finally:
            if proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
            if counter is not None:
                counter.close()
                print(f"topics the peer published on: {sorted(counter.topics)}")
        print(
            f"peer: simulator answered {p['read_s']:,.0f} registers/s "
            f"({p['read_s'] / offered * 100:.0f} % of offered) in {p['requests_s']:,.0f} "
            f"requests/s; delivered {p['delivered_s']:,.0f} points/s"
            f"{' (telemetry counted on the broker)' if counter else ' (not counted)'}; CPU "
            f"{p['cpu_pct']:.1f} % of a core = {p['per_cpu_s']:,.0f} points (read) per "
            f"CPU-second; load {os.getloadavg()[0]:.2f}"
        )
        return 0
    finally:
        if broker is not None and loop is not None:
            loop.run_until_complete(broker.stop())
            loop.close()
        sim.terminate()
        sim.join(10)


if __name__ == "__main__":
    sys.exit(main())
