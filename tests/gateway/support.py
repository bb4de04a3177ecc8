"""A real gateway for the tests: a site file in a temp folder, a SQLite store filled through
edge's SqliteStore, users and tokens of every role, and ``shopfloor serve`` in a subprocess."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import yaml

from config.loader import load_site
from config.models import COUNTER_ROLES, SiteConfig
from connectors.base import Quality, Sample
from connectors.simulators.mtconnect import machine_state_code
from edge.store import keys
from edge.store.base import Batch, DeviceHealth
from edge.store.ledger import Ledger
from edge.store.sqlite import SqliteStore
from gateway.users import ROLES, UserDB
from tests.support.net import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "examples" / "demo.yaml"
PASSWORD = "correct horse battery"
S = 1_000_000_000
TZ = ZoneInfo("Asia/Shanghai")  # the demo site's zone
# The pinned "now" of the filled store: a Tuesday 10:30 in the demo site's day shift, so the two
# recorded hours lie inside planned time and every OEE component has a value (a fixture clock
# that follows the wall clock made the suite's verdict depend on the time of day).
PINNED_NOW = dt.datetime(2026, 3, 10, 10, 30, tzinfo=TZ)
PINNED_NOW_NS = int(PINNED_NOW.timestamp()) * S
PINNED_DAY = PINNED_NOW.date().isoformat()
# one good part every GOOD_EVERY_S and one scrap part per producing stretch, counted only while
# the machine produces: effectiveness (ideal cycle x parts / producing time) stays below 1 on
# every demo machine (45 s and 90 s ideal cycles, the MTConnect one too), whatever hours the
# fill covers
GOOD_EVERY_S = 180
SCRAP_AT_S = 300
FILL_STATES = ("producing", "setup", "idle", "down")


def write_site(folder: Path, **gateway: Any) -> Path:
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    data["storage"] = {"kind": "sqlite", "path": "store.db"}
    data["evidence"] = {"ledger_path": "ledger.db", "key_dir": "keys"}
    data["gateway"] = {"users_db": "users.db", **gateway}
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


class Writer:
    """Writes batches into the store the way the collector does (seq per source), and into
    the ledger next to it when there is one (the collector's BatchObserver)."""

    def __init__(self, path: Path) -> None:
        self.store = SqliteStore(path, synchronous="NORMAL")
        # the collector's store throttles its latest table to every 0.5 s; the tests write
        # one change at a time and want each one in the latest table at once
        self.store.latest_interval_s = 0.0
        ledger_path = path.parent / "ledger.db"
        self.ledger = Ledger(ledger_path, durable=False) if ledger_path.exists() else None

    def write(self, samples: list[Sample]) -> None:
        by_dev: dict[str, list[Sample]] = {}
        for s in samples:
            by_dev.setdefault(s.device, []).append(s)
        batches = [
            Batch(dev, self.store.last_seq(dev) + 1, tuple(sorted(ss, key=lambda s: s.ts)))
            for dev, ss in by_dev.items()
        ]
        self.store.write_batches(batches)
        if self.ledger is not None:
            self.ledger.stored(batches)

    def health(self, records: list[DeviceHealth]) -> None:
        self.store.write_health(records)

    def close(self) -> None:
        self.store.close()
        if self.ledger is not None:
            self.ledger.close()


def fill(site: SiteConfig, store_path: Path, now_ns: int) -> None:
    """Two hours of a small factory: CNC states/counters/power, meters, quality station."""
    folder = store_path.parent
    keys.init_key(folder / "keys", f"shopfloor.local/{site.site.id}")
    Ledger(folder / "ledger.db", durable=False).close()
    w = Writer(store_path)
    samples: list[Sample] = []
    start = now_ns - 2 * 3600 * S
    for i, dev in enumerate(site.devices):
        made = {"count_good": 0.0, "count_scrap": 0.0}
        for k in range(0, 7200, 60):
            ts = start + k * S + i * 1000
            state = (k // 600 + i) % 4  # 10 min each: producing, setup, idle, down
            if state == 0 and k % GOOD_EVERY_S == 0:
                made["count_good"] += 1
            if state == 0 and k % 600 == SCRAP_AT_S:
                made["count_scrap"] += 1
            for p in dev.points:
                if p.role == "state" and dev.mtconnect is not None:
                    # the agent's Execution/ControllerMode code of the same state
                    v = float(machine_state_code(FILL_STATES[state]))
                elif p.role == "state":
                    v = float(state)
                elif p.role in made:
                    v = made[p.role]
                elif p.role == "count_total" and dev.mtconnect is not None:  # PartCount ALL
                    v = made["count_good"] + made["count_scrap"]
                elif p.role in ("count_total", "count_rework"):  # the quality station
                    v = float(k // 60 * (1 if p.role == "count_total" else 0.1) // 1)
                elif p.role in COUNTER_ROLES:  # cumulative meters only go up
                    v = 1000.0 + k / 36.0
                else:
                    v = 10.0 + (k % 600) / 60.0
                samples.append(Sample(dev.id, p.id, ts, v))
    samples.append(
        Sample("cnc1", "spindle_kw", now_ns - S, float("nan"), Quality.BAD, "BadTimeout")
    )
    w.write(samples)
    w.health(
        [
            DeviceHealth(
                device=d.id,
                connected=d.id != "water1",
                last_good_ts=now_ns - S,
                last_sample_ts=now_ns - S,
                samples=1000 + i,
                errors={"timeout": 2} if d.id == "water1" else {},
                restarts=1 if d.id == "water1" else 0,
                drops=0,
                updated_ts=now_ns,
                extra={"outbox_backlog": 3} if d.id == "meter1" else {},
            )
            for i, d in enumerate(site.devices)
        ]
    )
    w.close()


@dataclass
class Gateway:
    url: str
    folder: Path
    site: SiteConfig
    site_path: Path
    store_path: Path
    proc: subprocess.Popen[bytes]
    tokens: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None

    def client(self, role: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0, **kw)

    def __repr__(self) -> str:
        return f"Gateway({self.url})"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8") if self.log_path else ""


def start_gateway(
    folder: Path,
    *,
    fill_store: bool = True,
    live_poll_ms: int = 100,
    now_ns: int = PINNED_NOW_NS,
    **gateway: Any,
) -> Gateway:
    site_path = write_site(folder, **gateway)
    site = load_site(site_path)
    store_path = folder / "store.db"
    if fill_store:
        fill(site, store_path, now_ns)
    users = UserDB(folder / "users.db")
    tokens: dict[str, str] = {}
    for role in ROLES:
        users.add_user(role, role, PASSWORD)
        tokens[role] = users.create_token(role, "tests")
    port = free_port()
    log_path = folder / "gateway.log"
    env = {**os.environ, "SHOPFLOOR_LIVE_POLL_MS": str(live_poll_ms), "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edge.cli.main",
                "serve",
                "-c",
                str(site_path),
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_port(port, timeout=30)
    except TimeoutError:
        proc.kill()
        proc.wait()
        raise RuntimeError("gateway did not start:\n" + log_path.read_text()) from None
    return Gateway(
        f"http://127.0.0.1:{port}", folder, site, site_path, store_path, proc, tokens, log_path
    )


def stop_gateway(gw: Gateway) -> None:
    gw.proc.terminate()
    try:
        gw.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        gw.proc.kill()
        gw.proc.wait()
