"""A small deterministic factory for the evidence tests: two CNC machines, a power meter, a
baseline day imported as history and a current day collected live, all written through the real
writer, SQLite store and ledger (the ledger is the writer's BatchObserver)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from config.loader import load_site_text
from config.markers import HEARTBEAT_DEVICE, HEARTBEAT_POINT, HEARTBEAT_S
from config.models import SiteConfig
from connectors.base import Sample
from edge.queue import SampleQueue
from edge.store import keys
from edge.store.ledger import EvidenceRecorder, Ledger
from edge.store.sqlite import SqliteStore
from edge.writer import Writer
from metrics.evidence import note, snapshot
from metrics.evidence.trust import Trust, TrustedKey, make_trust
from metrics.periods import TimeRange, parse_range

SITE_YAML = """
version: 1
site: {id: tiny, name: 小工厂 Tiny works, enterprise: 示例机械有限公司, timezone: Asia/Shanghai}
devices:
  - id: cnc1
    name: 1号车床 lathe 1
    key_equipment: true
    control: cnc
    ideal_cycle_s: 60
    rated_power_kw: 20
    opcua: {endpoint: "opc.tcp://127.0.0.1:48401/x"}
    points:
      - {id: state, role: state, datatype: int32, opcua: {node_id: "ns=2;s=c1.state"},
         state_map: {"0": producing, "1": setup, "2": idle, "3": down, "4": planned_stop}}
      - {id: good, role: count_good, datatype: uint32, opcua: {node_id: "ns=2;s=c1.good"}}
      - {id: scrap, role: count_scrap, datatype: uint32, opcua: {node_id: "ns=2;s=c1.scrap"}}
  - id: cnc2
    name: 2号车床 lathe 2
    key_equipment: true
    control: cnc
    ideal_cycle_s: 90
    rated_power_kw: 30
    opcua: {endpoint: "opc.tcp://127.0.0.1:48401/x"}
    points:
      - {id: state, role: state, datatype: int32, opcua: {node_id: "ns=2;s=c2.state"},
         state_map: {"0": producing, "1": setup, "2": idle, "3": down, "4": planned_stop}}
      - {id: good, role: count_good, datatype: uint32, opcua: {node_id: "ns=2;s=c2.good"}}
      - {id: scrap, role: count_scrap, datatype: uint32, opcua: {node_id: "ns=2;s=c2.scrap"}}
  - id: meter1
    name: 电能表 meter
    production: false
    modbus: {host: 127.0.0.1, port: 50201, unit: 1}
    points:
      - {id: energy, role: energy_kwh, unit: kWh, datatype: float32,
         modbus: {table: holding, address: 0, order: CDAB}}
declared:
  figures:
    - {id: output_value, value: 1860, unit: 万元, period: {start: "2026-01-01", end: "2026-01-31"},
       source: 2026年1月财务报表}
    - {id: output_value, value: 2140, unit: 万元, period: {start: "2026-03-01", end: "2026-03-31"},
       source: 2026年3月财务报表}
    - {id: headcount, value: 20, unit: 人, period: {start: "2026-01-01", end: "2026-12-31"},
       source: 人力资源台账}
"""

BASELINE = "2026-01-05..2026-01-05"
CURRENT = "2026-03-02..2026-03-02"
STEP_S = 300
CONFIG_TS = 1_773_532_800 * 10**9  # 2026-03-15T00:00:00Z: after both periods


def site() -> SiteConfig:
    return load_site_text(SITE_YAML, "tiny.yaml")


def periods(s: SiteConfig) -> tuple[TimeRange, TimeRange]:
    return parse_range(BASELINE, s.site.timezone), parse_range(CURRENT, s.site.timezone)


def generate(seed: int, start_ns: int, end_ns: int, quality: float) -> Iterator[Sample]:
    """States every 5 min, counters and the meter as they move; ``quality`` = good share."""
    rnd = random.Random(seed)
    good = {"cnc1": 1000.0, "cnc2": 500.0}
    scrap = {"cnc1": 10.0, "cnc2": 5.0}
    kwh = 12345.0
    t = start_ns - 600 * 10**9  # a little before the period: values in force at its start
    while t < end_ns + 600 * 10**9:
        for dev, cycle in (("cnc1", 60), ("cnc2", 90)):
            st = rnd.choices([0, 1, 2, 3], weights=[80, 5, 10, 5])[0]
            yield Sample(dev, "state", t, float(st))
            if st == 0:
                expect = STEP_S / cycle
                if expect >= 2:
                    made = max(0, int(expect) - rnd.randint(0, 2))
                else:
                    made = int(rnd.random() < expect * 0.9)
                bad = sum(1 for _ in range(made) if rnd.random() > quality)
                good[dev] += made - bad
                scrap[dev] += bad
                yield Sample(dev, "good", t + 1, good[dev])
                if bad:
                    yield Sample(dev, "scrap", t + 2, scrap[dev])
        kwh += rnd.uniform(1.0, 3.5) * STEP_S / 300
        yield Sample("meter1", "energy", t + 3, round(kwh, 3))
        t += STEP_S * 10**9


@dataclass
class Built:
    site: SiteConfig
    store_path: Path
    ledger_path: Path
    key_dir: Path
    signer: note.Signer
    witness: note.Signer
    trust: Trust
    baseline: TimeRange
    current: TimeRange


async def _ingest(site_: SiteConfig, store: SqliteStore, ledger: Ledger, live: list[Sample],
                  history: list[Sample]) -> None:  # fmt: skip
    queue = SampleQueue(100_000, "drop_oldest")
    writer = Writer(store, queue, observers=[ledger], batch_max_samples=500, flush_interval_ms=5)
    try:
        await writer.write_import(history, batch_size=400)
        task = asyncio.create_task(writer.run())
        queue.put_many(live)
        queue.close()
        await task
    finally:
        await writer.close()


def build(tmp: Path, *, seed: int = 7) -> Built:
    s = site()
    base, cur = periods(s)
    kd = tmp / "keys"
    signer = keys.init_key(kd, "shopfloor.local/tiny")
    witness = note.Signer.generate("regulator.example/w1", note.ALG_COSIGNATURE_V1)
    store_path, ledger_path = tmp / "store.db", tmp / "ledger.db"
    store = SqliteStore(store_path, synchronous="NORMAL")
    ledger = Ledger(ledger_path, durable=False)
    rec = EvidenceRecorder(ledger, signer, "shopfloor.local/tiny")
    # the configuration recorded at a pinned time after the data (as a collector started then)
    rec.start(snapshot.site_json(s), {"oee": 1}, now_ns=CONFIG_TS)
    history = list(generate(seed, base.start_ns, base.end_ns, quality=0.95))
    live = list(generate(seed + 1, cur.start_ns, cur.end_ns, quality=0.98))
    # the collector's heartbeat from before the current day until a minute after it (the data
    # horizon: the recording reaches the period end, and the bundle must prove it)
    hb_ns = int(HEARTBEAT_S * 10**9)
    live += [
        Sample(HEARTBEAT_DEVICE, HEARTBEAT_POINT, t, 1.0)
        for t in range(cur.start_ns - 600 * 10**9, cur.end_ns + 60 * 10**9, hb_ns)
    ]
    asyncio.run(_ingest(s, store, ledger, live, history))
    cp = rec.checkpoint()
    assert cp is not None
    ledger.add_cosigned(note.cosign(cp, witness, int(cur.end_ns // 10**9) + 3600),
                        signer.verifier)  # fmt: skip
    ledger.close()
    trust = make_trust(
        [TrustedKey("gateway", signer.verifier), TrustedKey("witness", witness.verifier)]
    )
    return Built(s, store_path, ledger_path, kd, signer, witness, trust, base, cur)


def generate_for_site(
    site_: SiteConfig, seed: int, start_ns: int, end_ns: int, step_s: int = 60
) -> Iterator[Sample]:
    """Plausible samples for every point of any site, driven by the points' roles."""
    rnd = random.Random(seed)
    totals: dict[tuple[str, str], float] = {}
    t = start_ns - 600 * 10**9
    while t < end_ns:
        for dev in site_.devices:
            producing = rnd.random() < 0.8
            rate = step_s / (dev.ideal_cycle_s or 30.0) * 0.85  # below the ideal rate
            made = int(rate) + int(rnd.random() < rate - int(rate)) if producing else 0
            bad = 1 if made and rnd.random() < 0.05 else 0
            for k, pt in enumerate(dev.points):
                key = (dev.id, pt.id)
                ts = t + k
                if pt.role == "state":
                    code = 0 if producing else rnd.choice([1, 2, 3])
                    yield Sample(dev.id, pt.id, ts, float(code))
                    continue
                if pt.role in ("count_good", "count_total", "count_scrap", "count_rework"):
                    inc = {"count_good": made - bad, "count_total": made,
                           "count_scrap": bad, "count_rework": 0}[pt.role]  # fmt: skip
                elif pt.role in ("energy_kwh", "water_fresh_m3", "water_reused_m3"):
                    inc = rnd.uniform(0.1, 0.5) * step_s / 60
                elif pt.role == "apc_mode":
                    yield Sample(dev.id, pt.id, ts, float(rnd.random() < 0.7))
                    continue
                else:
                    yield Sample(dev.id, pt.id, ts, round(rnd.uniform(5, 15), 3))
                    continue
                totals[key] = totals.get(key, 100.0) + inc
                yield Sample(dev.id, pt.id, ts, round(totals[key], 3))
        t += step_s * 10**9


def ingest(site_: SiteConfig, store: SqliteStore, ledger: Ledger, live: list[Sample],
           history: list[Sample]) -> None:  # fmt: skip
    asyncio.run(_ingest(site_, store, ledger, live, history))
