"""Additivity of the time model (issue 10): for any recording and any split point b in (a, c),
every extensive quantity over [a, b) plus [b, c) equals [a, c) exactly (in ns and in counts).

Recordings are drawn in two shapes, both following the marker contract (config/markers.py):

- live: the collector's heartbeat every 10 s up to "now" (H, possibly before c: the data
  horizon cuts there), change-only states with ``link_lost`` markers, some healed by a good sample
  at the marker's instant, counters with resets and markers, a polled meter, and gateway
  outages (no heartbeat, ``gateway_down`` markers 1 ns after the last heartbeat, nothing
  recorded in between);
- imported: change-only logs without heartbeat, closed by ``import_end`` markers at the file's
  end, computed with ``imported=True``.

The one documented exception is a split inside a gateway outage or after "now" (no heartbeat
at or just after b): the first part is then cut at the last instant the gateway knows it was
recording, so such splits are not drawn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from config.markers import HEARTBEAT, HEARTBEAT_S
from metrics.engine import PeriodResult, compute_period
from metrics.periods import parse_range
from metrics.recording import AFTER_NS
from metrics.timemodel import TIME_FIELDS
from tests.metrics.memreader import MemReader
from tests.metrics.sites import machine, site

S = 1_000_000_000
PERIOD = parse_range("2026-01-05..2026-01-05", "UTC")
A, C = PERIOD.start_ns, PERIOD.end_ns
SPAN_S = (C - A) // S
HB = int(HEARTBEAT_S) * S
METER = {
    "id": "em1",
    "name": "em1",
    "production": False,
    "modbus": {"host": "127.0.0.1", "port": 50201, "unit": 1},
    "points": [
        {
            "id": "kwh",
            "role": "energy_kwh",
            "datatype": "float32",
            "modbus": {"table": "holding", "address": 0},
        }
    ],
}
# m1 runs a product mix: PRU by the program in force at each count step (ISO 22400 PRU per
# product); program codes 1 and 2 have a PRU, 3 is in the enum without one, 9 is no text
M1 = machine("m1", ideal=None)
M1["points"].append(
    {
        "id": "program",
        "datatype": "text",
        "enum": {"P-100": 1, "P-200": 2, "P-300": 3},
        "opcua": {"node_id": "ns=2;s=m1.program"},
    }
)
M1["ideal_cycle"] = {"point": "program", "by": {"P-100": 30.0, "P-200": 75.0}}
SITE = site(
    [M1, machine("m2", ideal=45.0), METER],
    calendar={
        "shifts": [
            {"name": "a", "start": "06:00", "end": "14:00"},
            {"name": "b", "start": "22:00", "end": "02:00"},
        ],
        "breaks": [{"name": "meal", "start": "10:00", "end": "10:45"}],
        "planned_downtime": [
            {
                "start": "2026-01-05T15:00:00",
                "end": "2026-01-05T23:00:00",
                "reason": "pm",
                "devices": ["m2"],
            }
        ],
    },
    runtime={"heartbeat_s": 60},
)
TIMES = TIME_FIELDS[1:]  # every extensive time but the period length
POINTS = [("m1", "state"), ("m1", "program"), ("m1", "good"), ("m1", "scrap")]
POINTS += [("m2", "state"), ("m2", "good"), ("m2", "scrap"), ("em1", "kwh")]

secs = st.integers(-3 * 3600, SPAN_S + 3600)
# (second, kind): kind >= 0 a state value / counter increment, -1 a marker, -2 healed (a marker
# and a good sample at one instant, the good one stored first), -3 a counter reset
state_ev = st.lists(st.tuples(secs, st.sampled_from([0, 0, 1, 2, 3, 4, 9, -1, -2])), max_size=30)
program_ev = st.lists(
    st.tuples(secs, st.sampled_from([1, 1, 2, 2, 3, 9, -1, -2])), min_size=1, max_size=20
)
count_ev = st.lists(st.tuples(secs, st.sampled_from([0, 1, 3, 7, 20, -1, -2, -3])), max_size=30)


def _series(events: list[tuple[int, int]], counter: bool) -> list[tuple[int, float, int]]:
    """(ns, value, quality) rows in storage order."""
    rows: list[tuple[int, float, int]] = []
    value = 1000.0
    last = 0.0
    for sec, kind in sorted(events, key=lambda e: e[0]):
        t = A + sec * S
        if kind == -1:
            rows.append((t, float("nan"), 2))
            continue
        if counter:
            value = 2.0 if kind == -3 else value + max(kind, 0)
            good = value
        else:
            good = float(kind) if kind >= 0 else last
            last = good
        rows.append((t, good, 0))
        if kind == -2:
            rows.append((t, float("nan"), 2))  # the marker stored after its healing sample
    return rows


def _build(draw: Any) -> tuple[MemReader, bool, list[int]]:
    """A reader, whether the recording is imported, and the heartbeat instants (up to "now")."""
    imported = draw(st.booleans())
    events = {"state": state_ev, "program": program_ev}
    data = {
        key: _series(draw(events.get(key[1], count_ev)), key[1] not in events) for key in POINTS
    }
    meter = sorted(draw(st.sets(st.integers(-3 * 3600 // 60, (SPAN_S + 3600) // 60), max_size=40)))
    data[("em1", "kwh")] = [(A + m * 60 * S, float(1000 + 3 * i), 0) for i, m in enumerate(meter)]
    beats: list[int] = []
    if imported:
        end = A + draw(st.integers(0, SPAN_S + 3600)) * S  # the file's end
        for key, rows in data.items():
            data[key] = [r for r in rows if r[0] < end] + [(end, float("nan"), 2)]
    else:
        now = A + draw(st.integers(3600, SPAN_S + 3600)) * S // HB * HB
        outages = sorted(draw(st.lists(st.tuples(secs, st.integers(30, 7200)), max_size=3)))
        down = [(A + s0 * S, A + (s0 + d) * S) for s0, d in outages]
        beats = [
            t
            for t in range(A - 4 * 3600 * S, now + 1, HB)
            if not any(g0 <= t < g1 for g0, g1 in down)
        ]
        for key, rows in data.items():
            rows = [r for r in rows if r[0] <= now and not any(g0 <= r[0] < g1 for g0, g1 in down)]
            for g0, _g1 in down:  # gateway_down: 1 ns after the last heartbeat before the outage
                last_beat = max((b for b in beats if b < g0), default=None)
                if last_beat is not None and last_beat + 1 <= now:
                    rows.append((last_beat + 1, float("nan"), 2))
            data[key] = sorted(rows, key=lambda r: r[0])
    rd = MemReader()
    for (dev, pt), rows in data.items():
        rd.add(dev, pt, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    if beats:
        rd.add(*HEARTBEAT, beats, [1.0] * len(beats))
    return rd, imported, beats


def _ns(x: float) -> int:
    return round(x * S)


def _extensive(res: PeriodResult) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    for m in res.machines:
        for k in TIMES:
            out[f"{m['name']}.{k}"] = _ns(m["times_s"][k])
        for q in ("pq", "gq", "sq"):
            out[f"{m['name']}.{q}"] = m["quantities"][q]
        mix = m.get("product_mix")
        if mix is not None:
            out[f"{m['name']}.ideal_time_s"] = mix["ideal_time_s"]
            out[f"{m['name']}.unknown_units"] = mix["unknown_units"]
            for prog, row in mix["by_program"].items():
                out[f"{m['name']}.units.{prog}"] = row["units"]
    for key, c in res.counters.items():
        out[f"{key}.total"] = c["total"]
        out[f"{key}.unattributed"] = c["unattributed"]
        out[f"{key}.unattributed_steps"] = c["unattributed_steps"]
    out["electricity_kwh"] = res.energy["electricity_kwh"]
    return out


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
@given(st.data())
def test_split_adds_up_exactly(data: st.DataObject) -> None:
    rd, imported, beats = _build(data.draw)
    if not imported:
        assume(bool(beats) and beats[-1] > A + S)  # an outage up to "now" from before a
    last = SPAN_S - 1 if imported else min(SPAN_S - 1, (beats[-1] - A) // S)
    b = A + data.draw(st.integers(1, last), label="b") * S
    if not imported:
        hb = np.asarray(beats, dtype=np.int64)
        # the documented exception: no heartbeat at or just after b (inside a gateway outage)
        assume(bool(((hb >= b) & (hb < b + AFTER_NS)).any()))
    first, second = PERIOD.split(b)
    whole = _extensive(compute_period(rd, SITE, PERIOD, imported=imported))
    parts = [_extensive(compute_period(rd, SITE, p, imported=imported)) for p in (first, second)]
    for k, v in whole.items():
        assert parts[0][k] + parts[1][k] == v, (k, parts[0][k], parts[1][k], v)
