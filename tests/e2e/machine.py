"""The scripted machine of the end-to-end test and its hand working (tests/e2e/README.md).

One cycle lasts ``CYCLE_NS`` = 6 s, offsets from the cycle start ``c``:

====================  ==========================================
``c + 0 s``           State = 0 (producing)
``c + 1, 2, 3 s``     Count += 1 (three parts, read inside producing)
``c + 4 s``           State = 1 (setup)
``c + 5 s``           State = 3 (down)
====================  ==========================================

``ideal_cycle_s`` = 1 s, no shifts (the calendar is around the clock), only ``count_total``:

- APT = 4 s, ASUT = 1 s, ADET = 1 s, PBT = 6 s, PQ = GQ = 3;
- availability = 4 / 6, effectiveness = 1 s x 3 / 4 s = 0.75, quality = 1;
- OEE = 4/6 x 0.75 x 1 = 0.5 exactly, coverage 1.

When part of a cycle is offline (an outage the device's history could not give back), the hand
working is the same interval arithmetic on the covered time (``kpi.oee_offline: exclude``):
each state's time is its scripted interval minus the offline intervals, PBT_covered = 6 s -
offline, and a counter step whose two stored readings enclose a marker is unattributed (its
parts are in no cycle's PQ): :func:`hand`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from metrics.series import QUALITY_BAD, Series

S = 1_000_000_000
CYCLE_NS = 6 * S
IDEAL_S = 1.0
PRODUCING, SETUP, DOWN = 0, 1, 3
STATE_MAP = {"0": "producing", "1": "setup", "2": "idle", "3": "down"}
#: (offset in the cycle, point, value or count step)
CYCLE: tuple[tuple[int, str, int], ...] = (
    (0, "State", PRODUCING),
    (1 * S, "Count", 1),
    (2 * S, "Count", 1),
    (3 * S, "Count", 1),
    (4 * S, "State", SETUP),
    (5 * S, "State", DOWN),
)
#: the scripted state intervals of a cycle (offsets): producing, setup, down
SEGMENTS: tuple[tuple[str, int, int], ...] = (
    ("apt", 0, 4 * S),
    ("asut", 4 * S, 5 * S),
    ("adet", 5 * S, 6 * S),
)


def events(base: int, cycles: int) -> list[tuple[int, str, int]]:
    """(source ns, point, new value) of ``cycles`` cycles from ``base`` (the counter as its
    cumulative value), closed by State = producing at the end of the last cycle (so that a
    sample lies at every cycle end)."""
    out: list[tuple[int, str, int]] = []
    count = 0
    for k in range(cycles):
        c = base + k * CYCLE_NS
        for off, name, v in CYCLE:
            if name == "Count":
                count += v
                out.append((c + off, name, count))
            else:
                out.append((c + off, name, v))
    out.append((base + cycles * CYCLE_NS, "State", PRODUCING))
    return out


def scripted(evts: Sequence[tuple[int, str, int]], name: str, t: int, initial: int) -> int:
    """The script's value of ``name`` in force at ``t``."""
    v = initial
    for ts, n, value in evts:
        if ts > t:
            break
        if n == name:
            v = value
    return v


def offline_intervals(series: Series) -> list[tuple[int, int]]:
    """``[marker, next good sample)`` for every marker not healed by a good sample at its
    instant (the end is ``2**62`` when no good sample follows)."""
    ts, q = series.ts.tolist(), series.quality.tolist()
    good = sorted(t for t, x in zip(ts, q, strict=True) if x != QUALITY_BAD)
    out: list[tuple[int, int]] = []
    for t, x in zip(ts, q, strict=True):
        if x != QUALITY_BAD or t in good:
            continue
        after = [g for g in good if g > t]
        out.append((t, after[0] if after else 2**62))
    merged: list[tuple[int, int]] = []
    for a, b in sorted(out):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def lumps(series: Series) -> list[tuple[int, int]]:
    """``(t_prev, t_next]`` of every counter step whose two good readings enclose a marker
    strictly (unattributed)."""
    ts, q = series.ts.tolist(), series.quality.tolist()
    goods = [(t, i) for i, (t, x) in enumerate(zip(ts, q, strict=True)) if x != QUALITY_BAD]
    marks = [t for t, x in zip(ts, q, strict=True) if x == QUALITY_BAD]
    out = []
    for (t0, _), (t1, _) in itertools.pairwise(goods):
        if any(t0 < m < t1 for m in marks):
            out.append((t0, t1))
    return out


def _overlap(a: int, b: int, intervals: Sequence[tuple[int, int]]) -> int:
    return sum(max(0, min(b, y) - max(a, x)) for x, y in intervals)


@dataclass(frozen=True)
class Hand:
    apt: int
    asut: int
    adet: int
    offline: int
    pq: int
    unattributed: int = 0  # parts of the steps across an outage read in this cycle

    @property
    def coverage(self) -> float:
        return (CYCLE_NS - self.offline) / CYCLE_NS

    @property
    def oee(self) -> float | None:
        """availability x effectiveness x quality over the covered time (offline excluded);
        no value when no part is placed in the cycle (quality GQ / PQ is 0 / 0)."""
        if self.pq == 0:
            return None
        pbt_covered = CYCLE_NS - self.offline
        availability = self.apt / pbt_covered
        effectiveness = IDEAL_S * S * self.pq / self.apt
        return availability * effectiveness * 1.0


def hand(
    base: int,
    k: int,
    parts: Sequence[int],
    offline: Sequence[tuple[int, int]] = (),
    unattributed: Sequence[tuple[int, int]] = (),
) -> Hand:
    """Cycle ``k``'s figures by hand: the scripted state intervals minus ``offline``, the parts
    (their instants) read in ``(c, c + 6 s]`` outside every unattributed step."""
    c = base + k * CYCLE_NS
    times = {n: (b - a) - _overlap(c + a, c + b, offline) for n, a, b in SEGMENTS}
    off = _overlap(c, c + CYCLE_NS, offline)
    pq = sum(
        1 for p in parts if c < p <= c + CYCLE_NS and not any(x < p <= y for x, y in unattributed)
    )
    # an unattributed step is reported in the cycle of its later reading
    lost = sum(1 for x, y in unattributed if c < y <= c + CYCLE_NS for p in parts if x < p <= y)
    return Hand(times["apt"], times["asut"], times["adet"], off, pq, lost)


def good_values(series: Series) -> list[tuple[int, float]]:
    keep = series.quality != QUALITY_BAD
    return list(zip(series.ts[keep].tolist(), series.values[keep].tolist(), strict=True))
