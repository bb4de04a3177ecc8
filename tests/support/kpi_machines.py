"""A small hand-made recording with per-machine figures worked out by hand (UTC site).

Calendar: one shift 08:00-16:00 every day, lunch break 12:00-12:30 (planned downtime), so the
planned busy window of 2026-11-02 is 7.5 h. Machines are subscribed OPC UA points (values hold
until the next sample); every series gets a last sample at 23:00 and one after the day so the
data reach the period end, and the collector's heartbeat runs all day.

cnc1 (ideal 60 s/unit), states: setup from 07:00, producing 08:30, down 10:00, producing 10:30,
idle 14:00, down 14:30, producing 15:00, idle 16:00.
  in the window: ASUT 0.5 h (08:00-08:30); APT 1.5 + 3.0 (10:30-14:00 minus lunch) + 1.0 = 5.5 h;
  ADET 0.5 + 0.5 = 1.0 h in 2 failures; idle 0.5 h; PBT 7.5 h; offline 0; coverage 100 %.
  good 0 (08:30) -> 100 (10:00) -> 250 (14:00) -> 300 (15:00); scrap 0 (08:30) -> 20 (14:00):
  GQ 300, PQ 320.
  availability 5.5 / 7.5 = 73.3 %; effectiveness 60 x 320 / (5.5 x 3600) = 97.0 %;
  quality 300 / 320 = 93.8 %; OEE = 60 x 320 / (7.5 x 3600) x 0.9375 = 66.7 %;
  MTBF 5.5 / (2 + 1) = 1.83 h; MTTR 1.0 / 2 = 0.50 h.
cnc2 (no ideal_cycle_s): producing all day, link lost 12:30 until a good sample at 13:30:
  offline 1.0 h, APT 6.5 h, PBT 7.5 h, coverage 6.5 / 7.5 = 86.7 %, availability (offline
  excluded) 6.5 / 6.5 = 100.0 %; effectiveness and OEE: no ideal_cycle_s; good stays 50, so
  PQ 0 and no quality ratio; no failure, so no MTTR; MTBF 6.5 / 1 = 6.50 h.
oven (key equipment, a temperature only): no state point.
lathe9 (not key equipment, with a state point): not in the OEE.
fleet (cnc1 + cnc2): PBT 15 h, APT 12 h, offline 1 h, availability 12 / 14 = 85.7 %,
  effectiveness: cnc2 has no ideal_cycle_s.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from config.markers import HEARTBEAT_DEVICE, HEARTBEAT_POINT, HEARTBEAT_S, LINK_LOST
from connectors.base import NAN, Quality, Sample
from edge.store.base import Batch
from edge.store.sqlite import SqliteStore

DAY = "2026-11-02..2026-11-02"
EMPTY_DAY = "2026-11-20..2026-11-20"  # long after the recording: no data at all
S = 1_000_000_000
STATE_MAP = {"0": "producing", "1": "setup", "2": "idle", "3": "down", "4": "planned_stop"}
PRODUCING, SETUP, IDLE, DOWN = 0.0, 1.0, 2.0, 3.0


def _machine(dev_id: str, *, ideal: float | None, key: bool = True) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": dev_id,
        "name": f"{dev_id} lathe",
        "key_equipment": key,
        "control": "cnc",
        "opcua": {"endpoint": "opc.tcp://127.0.0.1:4841"},
        "points": [
            {
                "id": "state",
                "role": "state",
                "opcua": {"node_id": f"ns=2;s={dev_id}.s"},
                "state_map": STATE_MAP,
            },
            {"id": "good", "role": "count_good", "opcua": {"node_id": f"ns=2;s={dev_id}.g"}},
            {"id": "scrap", "role": "count_scrap", "opcua": {"node_id": f"ns=2;s={dev_id}.x"}},
        ],
    }
    if ideal is not None:
        d["ideal_cycle_s"] = ideal
    return d


def site_data() -> dict[str, Any]:
    oven = {
        "id": "oven",
        "name": "oven",
        "key_equipment": True,
        "control": "plc",
        "opcua": {"endpoint": "opc.tcp://127.0.0.1:4841"},
        "points": [
            {"id": "temp", "role": "measurement", "opcua": {"node_id": "ns=2;s=oven.t"}},
        ],
    }
    return {
        "version": 1,
        "site": {"id": "hand", "name": "hand-made", "timezone": "UTC"},
        "calendar": {
            "shifts": [{"name": "day", "start": "08:00", "end": "16:00"}],
            "breaks": [{"name": "lunch", "start": "12:00", "end": "12:30"}],
        },
        "devices": [
            _machine("cnc1", ideal=60.0),
            _machine("cnc2", ideal=None),
            oven,
            _machine("lathe9", ideal=60.0, key=False),
        ],
        "storage": {"kind": "sqlite", "path": "store.db"},
    }


def at(hh: int, mm: int = 0, day: int = 2) -> int:
    t = dt.datetime(2026, 11, day, hh, mm, tzinfo=dt.UTC)
    return int(t.timestamp()) * S


def samples(*, after_day: bool = True) -> list[Sample]:
    """The recording; ``after_day=False`` leaves out the samples after 2026-11-02 (a gateway
    then shows that day as the day of the newest data)."""
    out: list[Sample] = []

    def add(dev: str, point: str, when: int, v: float) -> None:
        out.append(Sample(dev, point, when, v))

    for hh, mm, v in (
        (7, 0, SETUP),
        (8, 30, PRODUCING),
        (10, 0, DOWN),
        (10, 30, PRODUCING),
        (14, 0, IDLE),
        (14, 30, DOWN),
        (15, 0, PRODUCING),
        (16, 0, IDLE),
        (23, 0, IDLE),
    ):
        add("cnc1", "state", at(hh, mm), v)
    # the counters' readings before the period (so their coverage is the whole day)
    for dev, good in (("cnc1", 0.0), ("cnc2", 50.0)):
        add(dev, "good", at(23, day=1), good)
        add(dev, "scrap", at(23, day=1), 0.0)
    for hh, mm, good, scrap in ((8, 30, 0, 0), (10, 0, 100, 0), (14, 0, 250, 20), (15, 0, 300, 20)):
        add("cnc1", "good", at(hh, mm), good)
        add("cnc1", "scrap", at(hh, mm), scrap)
    add("cnc2", "state", at(7), PRODUCING)
    out.append(Sample("cnc2", "state", at(12, 30), NAN, Quality.BAD, LINK_LOST))
    add("cnc2", "state", at(13, 30), PRODUCING)
    add("cnc2", "state", at(23), PRODUCING)
    for hh in (8, 15):
        add("cnc2", "good", at(hh, 30), 50.0)
        add("cnc2", "scrap", at(hh, 30), 0.0)
    for hh in range(7, 24):
        add("oven", "temp", at(hh), 400.0 + hh)
    add("lathe9", "state", at(7), PRODUCING)
    add("lathe9", "state", at(23), PRODUCING)
    hb = int(HEARTBEAT_S * S)
    out += [
        Sample(HEARTBEAT_DEVICE, HEARTBEAT_POINT, t, 1.0) for t in range(at(6), at(0, 0, 3), hb)
    ]
    if after_day:  # the collector kept recording (the data reach the period end)
        for dev, point, v in (("cnc1", "state", IDLE), ("cnc2", "state", PRODUCING)):
            add(dev, point, at(0, 5, day=3), v)
        out += [
            Sample(HEARTBEAT_DEVICE, HEARTBEAT_POINT, at(0, 0, 3) + k * hb, 1.0) for k in range(60)
        ]
    return out


def write_store(path: Path, *, after_day: bool = True) -> None:
    by_source: dict[str, list[Sample]] = {}
    for s in samples(after_day=after_day):
        by_source.setdefault(s.device, []).append(s)
    store = SqliteStore(path)
    try:
        store.write_batches(
            [
                Batch(dev, 1, tuple(sorted(ss, key=lambda s: (s.ts, s.point))))
                for dev, ss in by_source.items()
            ]
        )
    finally:
        store.close()


def write_site(folder: Path, *, after_day: bool = True, **extra: Any) -> Path:
    """The site file (store ``store.db`` beside it) with the recording written into the store;
    ``extra`` sections replace the site file's (e.g. ``kpi``, ``gateway``)."""
    data = site_data() | extra
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    write_store(folder / "store.db", after_day=after_day)
    return path
