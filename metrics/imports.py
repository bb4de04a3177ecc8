"""Historical meter data (e.g. a baseline period recorded before the gateway existed).

CSV columns ``device,point,ts,value``: ``ts`` an ISO 8601 datetime (local time of the site when
it has no offset) or Unix seconds; ``value`` a number. Every row is checked against the site file
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
MAX_ISSUES = 50


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


def _ts(text: str, tz_name: str) -> int:
    try:
        secs = float(text)
    except ValueError:
        moment = dt.datetime.fromisoformat(text)
        return local_ns(moment, zone(tz_name))
    if not math.isfinite(secs):
        raise ValueError("not finite")
    return round(secs * NS_PER_S)


def parse_meter_csv(text: str, site: SiteConfig, where: str = "<csv>") -> list[ImportedSeries]:
    """Parse and validate; series in file order of first appearance, each sorted by time."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise MeterImportError([f"{where}:1: missing column(s) {', '.join(missing)}"])
    known = {(d.id, p.id) for d in site.devices for p in d.points}
    tz = site.site.timezone
    issues: list[str] = []
    data: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    for n, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        if not any(row.get(c) for c in COLUMNS):
            continue
        dev, pt = row.get("device", ""), row.get("point", "")
        if (dev, pt) not in known:
            issues.append(f"{where}:{n}: {dev}/{pt} is not a point of the site file")
        try:
            ts = _ts(row.get("ts", ""), tz)
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
