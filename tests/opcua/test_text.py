"""A ``datatype: text`` point (config.textmap) from a real asyncua server's String node into a
temporary store: each program name is stored as its enum code, a name not in the enum as a bad
sample ``unknown_text`` that costs no other sample; then the product-mix KPI reads it back."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from asyncua import ua

from config.loader import load_site_text
from config.models import SiteConfig
from config.textmap import UNKNOWN_TEXT
from edge.runtime import Collector
from edge.store.sqlite import SqliteStore
from metrics.engine import compute_period
from metrics.periods import parse_range
from tests.opcua.helpers import PlainServer
from tests.support.net import free_port

pytestmark = pytest.mark.asyncio

S = 1_000_000_000
T0 = dt.datetime(2025, 1, 6, 8, 0, tzinfo=dt.UTC)
T0_NS = int(T0.timestamp()) * S
GATEWAY_NS = T0_NS + 4 * 3600 * S


class TextServer(PlainServer):
    VARS: ClassVar[dict[str, tuple[Any, ua.VariantType]]] = {
        **PlainServer.VARS,
        "Program": ("P-100", ua.VariantType.String),
    }


def _site(tmp_path: Path, endpoint: str) -> SiteConfig:
    doc = {
        "version": 1,
        "site": {"id": "t", "name": "test", "timezone": "UTC"},
        "runtime": {"flush_interval_ms": 20, "health_interval_s": 0.1},
        "storage": {"kind": "sqlite", "path": "store.db"},
        "kpi": {"stale_after_s": 86400},
        "devices": [
            {
                "id": "m1",
                "name": "m1",
                "key_equipment": True,
                "ideal_cycle": {"point": "program", "by": {"P-100": 30, "P-200": 60}},
                "opcua": {"endpoint": endpoint, "publishing_interval_ms": 50},
                "points": [
                    {
                        "id": "program",
                        "datatype": "text",
                        "enum": {"P-100": 1, "P-200": 2},
                        "opcua": {"node_id": "ns=2;s=Plant.Program"},
                    },
                    {
                        "id": "state",
                        "role": "state",
                        "state_map": {"0": "producing"},
                        "opcua": {"node_id": "ns=2;s=Plant.Status"},
                    },
                    {
                        "id": "count",
                        "role": "count_total",
                        "datatype": "uint32",
                        "opcua": {"node_id": "ns=2;s=Plant.Count"},
                    },
                ],
            }
        ],
    }
    return load_site_text(yaml.safe_dump(doc)).with_source_dir(tmp_path)


def _stored(db: Path, point: str) -> list[tuple[int, float, int, str]]:
    """(ts, value, quality, status) of every stored sample of m1/point, in storage order."""
    if not db.exists():
        return []
    ro = SqliteStore.open_readonly(db)
    try:
        out: list[tuple[int, float, int, str]] = []
        for source, seq, *_ in ro.batch_records():
            if source != "m1":
                continue
            batch = ro.batch(source, seq)
            assert batch is not None
            out += [
                (s.ts, s.value, int(s.quality), s.status) for s in batch.samples if s.point == point
            ]
        return out
    finally:
        ro.close()


async def _until(cond: Callable[[], bool], within: float = 15.0, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_string_program_is_stored_as_its_code_and_an_unknown_one_is_bad(
    tmp_path: Path,
) -> None:
    server = TextServer(free_port())
    await server.start()
    db = tmp_path / "store.db"
    try:
        at = [T0 + dt.timedelta(hours=h) for h in range(4)]
        await server.write("Status", 0, source=at[0])
        await server.write("Count", 0, source=at[0])
        await server.write("Program", "P-100", source=at[0])
        site = _site(tmp_path, server.endpoint)
        stop = asyncio.Event()
        col = Collector(site, evidence=False, time_ns=lambda: GATEWAY_NS)
        task = asyncio.create_task(col.run(stop))
        try:
            await _until(lambda: len(_stored(db, "program")) >= 1, what="the first program")
            await server.write("Count", 100, source=at[1])
            await server.write("Program", "P-200  ", source=at[1])  # a padded PLC string
            await _until(lambda: len(_stored(db, "program")) >= 2, what="P-200")
            await server.write("Count", 160, source=at[2])
            await server.write("Program", "P-999", source=at[2])  # not in the enum
            await _until(lambda: len(_stored(db, "program")) >= 3, what="the unknown text")
            await server.write("Count", 190, source=at[3])
            await server.write("Program", "P-100", source=at[3])
            await _until(
                lambda: len(_stored(db, "program")) >= 4 and len(_stored(db, "count")) >= 4,
                what="the last values",
            )
        finally:
            stop.set()
            await task
    finally:
        await server.stop()
    program = _stored(db, "program")
    assert [(t, v, q, st) for t, v, q, st in program if not math.isnan(v)] == [
        (T0_NS, 1.0, 0, ""),
        (T0_NS + 3600 * S, 2.0, 0, ""),
        (T0_NS + 3 * 3600 * S, 1.0, 0, ""),
    ]
    unknown = [p for p in program if math.isnan(p[1])]
    assert [(t, q, st) for t, _v, q, st in unknown] == [(T0_NS + 2 * 3600 * S, 2, UNKNOWN_TEXT)]
    # the unknown text cost no other sample
    assert [v for _t, v, _q, _s in _stored(db, "count")] == [0.0, 100.0, 160.0, 190.0]

    # the product-mix effectiveness from the store: 100 units under P-100 (30 s), 60 under
    # P-200 (60 s), 30 while the program was unknown (reported, no ideal time)
    ro = SqliteStore.open_readonly(db)
    try:
        period = parse_range("2025-01-06T08:00..2025-01-06T11:00", "UTC")
        res = compute_period(ro, site, period).to_dict()
    finally:
        ro.close()
    (m1,) = res["machines"]
    mix = m1["product_mix"]
    assert mix["by_program"]["P-100"]["units"] == 100
    assert mix["by_program"]["P-200"]["units"] == 60
    assert mix["unknown_units"] == 30
    assert mix["ideal_time_s"] == 100 * 30 + 60 * 60
    assert m1["effectiveness"] == pytest.approx((100 * 30 + 60 * 60) / (3 * 3600))
    assert any("30 units counted while program" in f for f in m1["flags"])
    assert {"device": "m1", "point": "program"}.items() <= next(
        r for r in res["reads"] if r["point"] == "program"
    ).items()
