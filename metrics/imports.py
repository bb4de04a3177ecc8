"""Historical meter data (e.g. a baseline period recorded before the gateway existed).

CSV columns ``device,point,ts,value`` (the time column may be headed ``timestamp`` instead of
``ts``; no other column): ``ts`` an ISO 8601 datetime (local time of the site when it has no
offset) or Unix seconds between 1678 and 2261 (the store's int64 nanosecond range, with margin);
``value`` a number. Every row is checked against the site file
(the device and the point must exist); the whole file is rejected with every problem listed
(file:line) when any row is bad, so nothing is half-imported. The edge side writes the result as
batches with source ``import:<device>``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from config.models import SiteConfig
from metrics.periods import NS_PER_S, local_ns, zone

COLUMNS = ("device", "point", "ts", "value")
TS_ALIASES = ("ts", "timestamp")
MAX_ISSUES = 50
# times are int64 nanoseconds (1677-09-21 .. 2262-04-11 UTC); whole years inside, with margin
TS_MIN_NS = int(dt.datetime(1678, 1, 1, tzinfo=dt.UTC).timestamp()) * NS_PER_S
TS_MAX_NS = int(dt.datetime(2262, 1, 1, tzinfo=dt.UTC).timestamp()) * NS_PER_S


class MeterImportError(ValueError):
    def __init__(self, issues: list[str]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(self.issues))


@dataclass(frozen=True)
class ImportedSeries:
    device: str
    point: str
    ts: npt.NDArray[np.int64]  # sorted
    values: npt.NDArray[np.float64]


class _OutOfRange(ValueError):
    """A timestamp outside what int64 nanoseconds hold (1678-2261)."""


def _ts(text: str, tz_name: str) -> int:
    try:
        secs = float(text)
    except ValueError:
        moment = dt.datetime.fromisoformat(text)
        try:
            ns = local_ns(moment, zone(tz_name))
        except OverflowError:  # e.g. 0001-01-01 east of UTC
            raise _OutOfRange(text) from None
    else:
        if not math.isfinite(secs):
            raise ValueError("not finite") from None
        ns = round(secs * NS_PER_S)
    if not TS_MIN_NS <= ns < TS_MAX_NS:
        raise _OutOfRange(text)
    return ns


def _header(fields: list[str], where: str) -> tuple[str, ...]:
    """The file's columns, with the time column renamed ``ts``; every header problem listed."""
    header = tuple(h.strip() for h in fields)
    issues: list[str] = []
    extra = [h for h in header if h not in COLUMNS and h not in TS_ALIASES]
    if extra:
        issues.append(
            f"{where}:1: unknown column(s) {', '.join(repr(h) for h in extra)} "
            f"(the columns are device,point,ts,value; ts may be headed timestamp)"
        )
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        issues.append(f"{where}:1: column(s) {', '.join(dup)} appear more than once")
    if all(a in header for a in TS_ALIASES):
        issues.append(f"{where}:1: both ts and timestamp columns: keep one")
    named = ["ts" if h in TS_ALIASES else h for h in header]
    missing = [c for c in COLUMNS if c not in named]
    if missing:
        issues.append(f"{where}:1: missing column(s) {', '.join(missing)}")
    if issues:
        raise MeterImportError(issues)
    return tuple(named)


def parse_meter_csv(text: str, site: SiteConfig, where: str = "<csv>") -> list[ImportedSeries]:
    """Parse and validate; series in file order of first appearance, each sorted by time."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        first = next(reader, None)
    except csv.Error as exc:
        raise MeterImportError([f"{where}:1: {exc}"]) from None
    header = _header(first or [], where)
    known = {(d.id, p.id) for d in site.devices for p in d.points}
    tz = site.site.timezone
    issues: list[str] = []
    data: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    while True:
        try:
            fields = next(reader, None)
        except csv.Error as exc:
            issues.append(f"{where}:{reader.line_num}: {exc}")
            break
        if fields is None:
            break
        n = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            issues.append(
                f"{where}:{n}: {len(fields)} fields, the header has {len(header)} "
                f"({','.join(header)})"
            )
            if len(issues) >= MAX_ISSUES:
                issues.append(f"{where}: stopped after {MAX_ISSUES} problems")
                break
            continue
        row = {k: v.strip() for k, v in zip(header, fields, strict=True)}
        dev, pt = row.get("device", ""), row.get("point", "")
        if (dev, pt) not in known:
            issues.append(f"{where}:{n}: {dev}/{pt} is not a point of the site file")
        try:
            ts = _ts(row.get("ts", ""), tz)
        except _OutOfRange:
            issues.append(
                f"{where}:{n}: ts {row.get('ts', '')!r} lies outside 1678..2261 "
                f"(the store's nanosecond time range)"
            )
            ts = None
        except ValueError:
            issues.append(f"{where}:{n}: ts {row.get('ts', '')!r} is not ISO 8601 or Unix seconds")
            ts = None
        try:
            value = float(row.get("value", ""))
            if not math.isfinite(value):
                raise ValueError
        except ValueError:
            issues.append(f"{where}:{n}: value {row.get('value', '')!r} is not a finite number")
            value = None
        if len(issues) >= MAX_ISSUES:
            issues.append(f"{where}: stopped after {MAX_ISSUES} problems")
            break
        if ts is None or value is None or (dev, pt) not in known:
            continue
        lst = data.setdefault((dev, pt), ([], []))
        lst[0].append(ts)
        lst[1].append(value)
    if issues:
        raise MeterImportError(issues)
    if not data:
        raise MeterImportError([f"{where}: no rows"])
    out: list[ImportedSeries] = []
    for (dev, pt), (tss, vals) in data.items():
        t = np.asarray(tss, dtype=np.int64)
        v = np.asarray(vals, dtype=np.float64)
        order = np.argsort(t, kind="stable")
        out.append(ImportedSeries(dev, pt, t[order], v[order]))
    return out
