"""ISO 22400-2 time model: calendar -> POT and planned downtime, state series -> machine times.

The written model is docs/kpi.md, "时间模型 / Time model"; the series come from
:func:`metrics.recording.read_period` (reads, markers, data horizon), counters are
:mod:`metrics.counters`.

- POT (planned operation time): the calendar's shifts minus holidays (around the clock when no
  shift is configured), inside the period.
- Calendar planned downtime: breaks and one-off planned downtime entries, inside POT.
- The planned busy window ``W = POT - calendar planned downtime`` (cut at the data horizon); PBT =
  W minus the time the machine reports ``planned_stop``.
- APT / ASUT / idle / ADET / offline: time in each state inside W. The state at an instant is the
  latest sample at or before it (a good sample winning over a marker at its instant, ordered so by
  :func:`metrics.recording.good_wins`); it holds until the next sample, but at most ``stale_ns``
  (polled points; the ``kpi.max_hold_s`` cap for unmarked data): after that the machine is
  ``offline`` (no data) until the next sample; a bad-quality sample (a marker: link lost, gateway
  down, import end, or a read error) is ``offline`` until the next good sample, and so is a raw
  value the state map does not know. Offline time stays inside PBT here (``MachineTimes.pbt``);
  whether OEE's availability uses PBT or PBT - offline is ``kpi.oee_offline`` (:mod:`metrics.oee`);
  it is always reported as coverage.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from config.calendar import Calendar
from config.models import STATE_CODES
from metrics.intervals import IntervalSet
from metrics.periods import day_start_ns, local_ns, zone
from metrics.series import QUALITY_BAD, Series

I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]

PRODUCING = STATE_CODES["producing"]
SETUP = STATE_CODES["setup"]
IDLE = STATE_CODES["idle"]
DOWN = STATE_CODES["down"]
PLANNED_STOP = STATE_CODES["planned_stop"]
OFFLINE = STATE_CODES["offline"]
N_STATES = len(STATE_CODES)


@dataclass(frozen=True)
class CalendarWindows:
    """The calendar of one device over a period."""

    pot: IntervalSet
    planned_downtime: IntervalSet  # breaks and planned downtime entries, inside POT
    window: IntervalSet  # POT - planned_downtime: where PBT can be

    @property
    def pot_ns(self) -> int:
        return self.pot.total

    @property
    def planned_downtime_ns(self) -> int:
        return self.planned_downtime.total


def _daily(
    start_t: dt.time,
    end_t: dt.time,
    weekdays: tuple[int, ...],
    days: list[dt.date],
    skip: frozenset[dt.date],
    tz_name: str,
) -> list[tuple[int, int]]:
    tz = zone(tz_name)
    out: list[tuple[int, int]] = []
    for day in days:
        if day.isoweekday() not in weekdays or day in skip:
            continue
        end_day = day if end_t > start_t else day + dt.timedelta(days=1)
        out.append(
            (
                local_ns(dt.datetime.combine(day, start_t), tz),
                local_ns(dt.datetime.combine(end_day, end_t), tz),
            )
        )
    return out


def _days(start: int, end: int, tz_name: str) -> list[dt.date]:
    tz = zone(tz_name)
    first = dt.datetime.fromtimestamp(start / 1e9, tz).date() - dt.timedelta(days=1)
    last = dt.datetime.fromtimestamp((end - 1) / 1e9, tz).date()
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def site_windows(calendar: Calendar, tz: str, start: int, end: int) -> CalendarWindows:
    """The calendar windows shared by every device (without device-specific downtime)."""
    return device_windows(calendar, tz, start, end, device=None)


def device_windows(
    calendar: Calendar, tz: str, start: int, end: int, device: str | None
) -> CalendarWindows:
    days = _days(start, end, tz)
    holidays = frozenset(calendar.holidays)
    zi = zone(tz)
    if calendar.shifts:
        pot_pairs: list[tuple[int, int]] = []
        for shift in calendar.shifts:
            pot_pairs += _daily(shift.start, shift.end, shift.weekdays, days, holidays, tz)
        pot = IntervalSet.of(pot_pairs)
    else:
        pot = IntervalSet.of([(start, end)]).subtract(
            IntervalSet.of(
                (day_start_ns(h, zi), day_start_ns(h + dt.timedelta(days=1), zi)) for h in holidays
            )
        )
    pot = pot.clip(start, end)
    pdt_pairs: list[tuple[int, int]] = []
    for brk in calendar.breaks:
        pdt_pairs += _daily(brk.start, brk.end, brk.weekdays, days, frozenset(), tz)
    for entry in calendar.planned_downtime:
        if entry.devices is None or (device is not None and device in entry.devices):
            pdt_pairs.append((local_ns(entry.start, zi), local_ns(entry.end, zi)))
    pdt = IntervalSet.of(pdt_pairs).clip(start, end).intersect(pot)
    return CalendarWindows(pot, pdt, pot.subtract(pdt))


@dataclass(frozen=True)
class Timeline:
    """Contiguous segments ``[starts, ends)`` covering the period, each with a state code."""

    starts: I64
    ends: I64
    codes: I8
    unmapped: int  # samples whose raw value the state map does not know (counted offline)
    bad: int  # bad-quality samples (counted offline)
    samples: int


def state_codes(series: Series, state_map: dict[str, str]) -> tuple[I8, int, int]:
    """Machine state code of every sample; bad, NaN or unmapped samples are offline."""
    keys: list[float] = []
    vals: list[int] = []
    for raw, state in state_map.items():
        try:
            keys.append(float(raw))
        except ValueError:
            continue  # a non-numeric key can never match a stored float value
        vals.append(STATE_CODES[state])
    order = np.argsort(np.array(keys, dtype=np.float64), kind="stable")
    k = np.array(keys, dtype=np.float64)[order]
    m = np.array(vals, dtype=np.int8)[order]
    v = series.values
    codes = np.full(v.shape, OFFLINE, dtype=np.int8)
    bad = (series.quality == QUALITY_BAD) | ~np.isfinite(v)
    if k.size:
        idx = np.searchsorted(k, v)
        idx_c = np.minimum(idx, k.size - 1)
        hit = (k[idx_c] == v) & ~bad
        codes[hit] = m[idx_c[hit]]
        unmapped = int((~hit & ~bad).sum())
    else:
        unmapped = int((~bad).sum())
    return codes, unmapped, int(bad.sum())


def timeline(
    series: Series, state_map: dict[str, str], start: int, end: int, stale_ns: int
) -> Timeline:
    """Segments of machine states over ``[start, end)`` (series read with ``prior=True``)."""
    ts = series.ts
    if ts.size == 0 or ts[0] >= end:
        return Timeline(
            np.array([start], np.int64),
            np.array([end], np.int64),
            np.array([OFFLINE], np.int8),
            0,
            0,
            0,
        )
    codes, unmapped, bad = state_codes(series, state_map)
    nxt = np.empty_like(ts)
    nxt[:-1] = ts[1:]
    nxt[-1] = max(end, int(ts[-1]))
    held_end = np.minimum(nxt, ts + stale_ns)
    # interleave: held segment of sample i, then its offline tail (possibly empty)
    s = np.empty(2 * ts.size + 1, np.int64)
    e = np.empty(2 * ts.size + 1, np.int64)
    c = np.empty(2 * ts.size + 1, np.int8)
    s[0], e[0], c[0] = start, int(ts[0]), OFFLINE  # before the first sample: no data
    s[1::2], e[1::2], c[1::2] = ts, held_end, codes
    s[2::2], e[2::2], c[2::2] = held_end, nxt, OFFLINE
    s = np.clip(s, start, end)
    e = np.clip(e, start, end)
    keep = e > s
    return Timeline(s[keep], e[keep], c[keep], unmapped, bad, int(ts.size))


@dataclass(frozen=True)
class MachineTimes:
    """ISO 22400 times of one machine over one period, in ns."""

    period: int
    pot: int
    planned_downtime: int  # calendar planned downtime inside POT
    window: int  # POT - calendar planned downtime
    planned_stop: int  # planned_stop state inside the window
    pbt: int
    apt: int
    asut: int
    idle: int
    adet: int
    offline: int
    producing_total: int  # producing anywhere in the period (production efficiency)
    failures: int  # down episodes with time inside the window
    unmapped: int
    bad: int
    samples: int

    @property
    def covered(self) -> int:
        return self.window - self.offline


#: the extensive ISO 22400 times of :class:`MachineTimes` (ns; summed over machines and split
#: periods), in report order
TIME_FIELDS = (
    "period",
    "pot",
    "planned_downtime",
    "window",
    "planned_stop",
    "pbt",
    "apt",
    "asut",
    "idle",
    "adet",
    "offline",
    "producing_total",
)


def machine_times(tl: Timeline, win: CalendarWindows, period_ns: int) -> MachineTimes:
    w = win.window.measure_in(tl.starts, tl.ends)
    by_code = [int(w[tl.codes == code].sum()) for code in range(N_STATES)]
    producing = tl.codes == PRODUCING
    producing_total = int((tl.ends[producing] - tl.starts[producing]).sum())
    # down episodes: runs of contiguous down segments
    down = tl.codes == DOWN
    failures = 0
    if down.any():
        idx = np.flatnonzero(down)
        contiguous = np.zeros(idx.size, dtype=bool)
        contiguous[1:] = (idx[1:] == idx[:-1] + 1) & (tl.starts[idx[1:]] == tl.ends[idx[:-1]])
        firsts = np.flatnonzero(~contiguous)
        per_episode = np.add.reduceat(w[idx], firsts)
        failures = int((per_episode > 0).sum())
    window = win.window.total
    return MachineTimes(
        period=period_ns,
        pot=win.pot_ns,
        planned_downtime=win.planned_downtime_ns,
        window=window,
        planned_stop=by_code[PLANNED_STOP],
        pbt=window - by_code[PLANNED_STOP],
        apt=by_code[PRODUCING],
        asut=by_code[SETUP],
        idle=by_code[IDLE],
        adet=by_code[DOWN],
        offline=by_code[OFFLINE],
        producing_total=producing_total,
        failures=failures,
        unmapped=tl.unmapped,
        bad=tl.bad,
        samples=tl.samples,
    )


def presence(series: Series, start: int, end: int, stale_ns: int) -> IntervalSet:
    """Where a point has good data: each good sample covers until the next sample or staleness."""
    ts = series.ts
    if ts.size == 0:
        return IntervalSet.empty()
    nxt = np.empty_like(ts)
    nxt[:-1] = ts[1:]
    nxt[-1] = max(end, int(ts[-1]))
    good = (series.quality != QUALITY_BAD) & np.isfinite(series.values)
    s = np.clip(ts[good], start, end)
    e = np.clip(np.minimum(nxt, ts + stale_ns)[good], start, end)
    return IntervalSet.from_arrays(s, e)


def level_set(series: Series, start: int, end: int, stale_ns: int, on: float = 0.5) -> IntervalSet:
    """Where a step signal (e.g. ``apc_mode``) is on (> ``on``) with good, fresh data."""
    ts = series.ts
    if ts.size == 0:
        return IntervalSet.empty()
    nxt = np.empty_like(ts)
    nxt[:-1] = ts[1:]
    nxt[-1] = max(end, int(ts[-1]))
    sel = (series.quality != QUALITY_BAD) & np.isfinite(series.values) & (series.values > on)
    s = np.clip(ts[sel], start, end)
    e = np.clip(np.minimum(nxt, ts + stale_ns)[sel], start, end)
    return IntervalSet.from_arrays(s, e)


def state_set(tl: Timeline, code: int) -> IntervalSet:
    sel = tl.codes == code
    return IntervalSet.from_arrays(tl.starts[sel], tl.ends[sel])


UNKNOWN = N_STATES  # code of a raw value the state map does not know (counted offline)


def _lut_codes(series: Series, state_map: dict[str, str]) -> tuple[I8, int, int]:
    """State code of every sample by table lookup when the raw values are small integers (the
    usual case: enumerated PLC states); unknown values get :data:`UNKNOWN`, bad and non-finite
    samples ``offline``. Falls back to :func:`state_codes` otherwise.

    Returns the codes (which may contain :data:`UNKNOWN`), the unmapped count and the bad count.
    """
    keys: dict[int, int] = {}
    for raw, state in state_map.items():
        try:
            f = float(raw)
        except ValueError:
            continue
        if not f.is_integer() or not 0 <= f < 4096:
            return state_codes(series, state_map)
        keys[int(f)] = STATE_CODES[state]
    v = series.values
    if not keys or v.size == 0:
        return state_codes(series, state_map)
    size = max(keys) + 1
    lut = np.full(size + 1, UNKNOWN, dtype=np.int8)  # last slot: out of range / not integral
    for k, c in keys.items():
        lut[k] = c
    with np.errstate(invalid="ignore"):
        vi = v.astype(np.int64)  # NaN/inf/huge give garbage that the checks below reject
    if not (np.array_equal(vi, v) and int(vi.min()) >= 0 and int(vi.max()) < size):
        ok = (vi == v) & (vi >= 0) & (vi < size)
        vi = np.where(ok, vi, size)
    codes = lut[vi]
    bad = series.quality == QUALITY_BAD
    nonfinite = ~np.isfinite(v) if not np.isfinite(v.sum()) else None
    if nonfinite is not None:
        bad = bad | nonfinite
    bad_n = int(np.count_nonzero(bad))
    if bad_n:
        codes[bad] = OFFLINE
    unmapped = int(np.count_nonzero(codes == UNKNOWN))
    return codes, unmapped, bad_n


def fast_times(
    series: Series,
    state_map: dict[str, str],
    start: int,
    end: int,
    stale_ns: int,
    win: CalendarWindows,
) -> MachineTimes:
    """:func:`machine_times` of :func:`timeline`, computed without building the interleaved
    timeline: one segment per sample ``[ts_i, min(ts_{i+1}, ts_i + stale))``; its state and
    whether it starts inside the window give one key per segment, and a single weighted
    ``bincount`` gives the time per state inside and outside the window. The few segments that
    cross a window boundary are then moved to their exact in-window measure."""
    ts = series.ts
    window = win.window
    wtotal = window.total
    if ts.size == 0 or ts[0] >= end:
        return machine_times(timeline(series, state_map, start, end, stale_ns), win, end - start)
    codes, unmapped, bad = _lut_codes(series, state_map)
    n = ts.size
    held = ts + stale_ns
    np.minimum(held[:-1], ts[1:], out=held[:-1])
    if held[-1] > end:
        held[-1] = end
    a = ts  # segment starts; the prior sample's segment really starts at ``start``: only its
    # length is corrected (window measures never count time before the period)
    if held[0] < start:
        held[0] = start
    length = held - a
    if a[0] < start:
        length[0] = held[0] - start
    # in-window indicator of each segment start: runs of True between the positions of the
    # window's starts and ends among the sorted segment starts
    ps = np.searchsorted(a, window.starts, side="left")
    pe = np.searchsorted(a, window.ends, side="left")
    edges = np.empty(2 * ps.size + 2, dtype=np.int64)
    edges[0] = 0
    edges[1:-1:2] = ps
    edges[2:-1:2] = pe
    edges[-1] = n
    flags = np.zeros(edges.size - 1, dtype=np.int8)
    flags[1::2] = N_STATES + 1
    key = np.repeat(flags, np.diff(edges))
    key += codes  # state + (N_STATES + 1 if the segment starts inside the window)
    nb = N_STATES + 1
    sums = np.bincount(key, weights=length, minlength=2 * nb)
    in_win = sums[nb:].copy()
    total = sums[:nb] + sums[nb:]
    # segments crossing a window boundary: move them to their exact in-window measure
    bounds = np.concatenate([window.starts, window.ends])
    j = np.searchsorted(a, bounds, side="right") - 1
    ok = j >= 0
    j, b = j[ok], bounds[ok]
    cross = np.unique(j[(a[j] < b) & (held[j] > b)])
    w_cross = np.zeros(0, dtype=np.int64)
    if cross.size:
        w_cross = window.measure_in(a[cross], held[cross])
        counted = np.where(key[cross] >= nb, length[cross], 0)
        np.add.at(in_win, codes[cross], (w_cross - counted).astype(np.float64))
    t = [int(x) for x in np.rint(in_win)]
    t[OFFLINE] += t[UNKNOWN]
    # offline: before the first sample and stale tails
    gaps = np.flatnonzero(held[:-1] < ts[1:])
    off_a = [start] if ts[0] > start else []
    off_b = [int(ts[0])] if ts[0] > start else []
    if held[-1] < end:
        off_a.append(int(held[-1]))
        off_b.append(end)
    t[OFFLINE] += int(
        window.measure_in(
            np.array(off_a + held[gaps].tolist(), dtype=np.int64),
            np.array(off_b + ts[gaps + 1].tolist(), dtype=np.int64),
        ).sum()
    )
    producing_total = int(np.rint(total[PRODUCING]))
    # down episodes: runs of down segments not broken by another state or a gap (segments of
    # zero length, e.g. two samples with one timestamp, do not count, as in :func:`timeline`)
    idx = np.flatnonzero(codes == DOWN)
    failures = 0
    if idx.size:
        d_len = length[idx]
        keep = d_len > 0
        if not keep.all():
            idx, d_len = idx[keep], d_len[keep]
        if idx.size:
            zero = np.flatnonzero(length == 0)
            rank = idx - np.searchsorted(zero, idx) if zero.size else idx
            w_idx = np.where(key[idx] >= nb, d_len, 0)
            if cross.size:
                pos = np.searchsorted(idx, cross)
                hit = pos < idx.size
                hit[hit] = idx[pos[hit]] == cross[hit]
                w_idx[pos[hit]] = w_cross[hit]
            cont = np.zeros(idx.size, dtype=bool)
            cont[1:] = (rank[1:] == rank[:-1] + 1) & (held[idx[:-1]] == a[idx[1:]])
            firsts = np.flatnonzero(~cont)
            per_episode = np.add.reduceat(w_idx, firsts)
            failures = int((per_episode > 0).sum())
    return MachineTimes(
        period=end - start,
        pot=win.pot_ns,
        planned_downtime=win.planned_downtime_ns,
        window=wtotal,
        planned_stop=t[PLANNED_STOP],
        pbt=wtotal - t[PLANNED_STOP],
        apt=t[PRODUCING],
        asut=t[SETUP],
        idle=t[IDLE],
        adet=t[DOWN],
        offline=t[OFFLINE],
        producing_total=producing_total,
        failures=failures,
        unmapped=unmapped,
        bad=bad,
        samples=int(n),
    )
