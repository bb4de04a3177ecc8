"""``shopfloor tail``: the newest sample of every point (and the devices' health)."""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import math
import sys
import time
import zoneinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.cli.run import load_or_report

if TYPE_CHECKING:
    from config.models import SiteConfig
    from connectors.base import Sample
    from edge.store.base import DeviceHealth

# the store loads in the handler: registering the command stays argparse-level (fast --help)

DEFAULT_DB = Path("data/shopfloor.db")


def fmt_ts(ts: int | None, tz: dt.tzinfo) -> str:
    if ts is None:
        return "-"
    t = dt.datetime.fromtimestamp(ts / 1e9, tz)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def fmt_value(v: float, *, full: bool = False) -> str:
    """Six significant digits, or with ``full`` every digit of the stored float: the shortest
    text that reads back to the same value, written out without e-notation."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    if full:
        return format(decimal.Decimal(repr(v)), "f")
    return f"{v:.6g}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain text table (width by character count; CJK text may look wider)."""
    widths = [len(h) for h in headers]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


class Names:
    """Device and point names of the site file, shown as ``name (id)``; raw ids without a site
    file, for series the file does not know, and when the name is the id."""

    def __init__(self, site: SiteConfig | None = None) -> None:
        self.devices: dict[str, str] = {}
        self.points: dict[tuple[str, str], str] = {}
        self.enums: dict[tuple[str, str], dict[str, int]] = {}
        for d in site.devices if site is not None else ():
            self.devices[d.id] = d.name
            for p in d.points:
                if p.enum:
                    self.enums[(d.id, p.id)] = p.enum
                if p.name:
                    self.points[(d.id, p.id)] = p.name

    @staticmethod
    def _label(name: str | None, raw: str) -> str:
        return f"{name} ({raw})" if name and name != raw else raw

    def device(self, device: str) -> str:
        return self._label(self.devices.get(device), device)

    def point(self, device: str, point: str) -> str:
        return self._label(self.points.get((device, point)), point)

    def value(self, s: Sample, *, full: bool = False) -> str:
        """The stored value, or the text of a datatype text point's code (config.textmap)."""
        enum = self.enums.get((s.device, s.point))
        if enum is None:  # no text point: keep `tail --db` free of the config package
            return fmt_value(s.value, full=full)
        from config.textmap import code_text

        text = code_text(enum, s.value)
        return fmt_value(s.value, full=full) if text is None else text


def latest_table(
    samples: list[Sample],
    tz: dt.tzinfo,
    n: int | None,
    *,
    full: bool = False,
    names: Names | None = None,
) -> str:
    nm = names or Names()
    rows = sorted(samples, key=lambda s: s.ts, reverse=True)
    if n is not None:
        rows = rows[:n]
    rows.sort(key=lambda s: (s.device, s.point))
    return table(
        ["设备 device", "点 point", "时间 time", "值 value", "质量 quality", "状态 status"],
        [
            [
                nm.device(s.device),
                nm.point(s.device, s.point),
                fmt_ts(s.ts, tz),
                nm.value(s, full=full),
                s.quality.text,
                s.status,
            ]
            for s in rows
        ],
    )


def health_table(records: list[DeviceHealth], tz: dt.tzinfo, names: Names | None = None) -> str:
    nm = names or Names()
    return table(
        [
            "设备 device",
            "连接 connected",
            "最近正常 last good",
            "样本 samples",
            "重启 restarts",
            "丢弃 drops",
            "错误 errors",
        ],
        [
            [
                nm.device(h.device),
                "yes 是" if h.connected else "no 否",
                fmt_ts(h.last_good_ts, tz),
                str(h.samples),
                str(h.restarts),
                str(h.drops),
                ", ".join(f"{k}={v}" for k, v in sorted(h.errors.items())) or "-",
            ]
            for h in records
        ],
    )


def _db_and_tz(args: argparse.Namespace) -> tuple[Path, dt.tzinfo, Names] | None:
    site: SiteConfig | None = None
    if args.config:
        site = load_or_report(args.config, check_secrets=False)
        if site is None:
            return None
    if args.db:
        db = Path(args.db)
    elif site is not None:
        if site.storage.kind != "sqlite":
            print(
                f"error: tail reads the embedded store; this site stores to {site.storage.kind}"
                " (give --db for its local cache)",
                file=sys.stderr,
            )
            return None
        db = site.resolve(site.storage.path)
    else:
        db = DEFAULT_DB
    tz: dt.tzinfo = zoneinfo.ZoneInfo(site.site.timezone) if site else dt.UTC
    return db, tz, Names(site)


def _tail(args: argparse.Namespace) -> int:
    if args.n is not None and args.n < 1:
        print("error: -n must be at least 1", file=sys.stderr)
        return 2
    found = _db_and_tz(args)
    if found is None:
        return 2
    db, tz, names = found
    from edge.store.sqlite import SqliteStore, StoreError

    try:
        store = SqliteStore.open_readonly(db)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        while True:
            samples = store.latest(args.device)
            if args.device and not samples:
                print(f"no samples for device {args.device!r} in {db}", file=sys.stderr)
            out = latest_table(samples, tz, args.n, full=args.full, names=names)
            if args.health:
                recs = [h for h in store.health() if not args.device or h.device == args.device]
                out += "\n\n" + health_table(recs, tz, names)
            print(out, flush=True)
            if not args.follow:
                return 0 if samples or not args.device else 1
            time.sleep(args.interval)
            print(flush=True)
    except KeyboardInterrupt:
        return 0
    finally:
        store.close()


def register(sub: Any) -> None:
    p = sub.add_parser("tail", help="show the newest sample of every point")
    p.add_argument("-c", "--config", help="site file (its storage.path is read)")
    p.add_argument("--db", help=f"SQLite store to read (default: the site's, else {DEFAULT_DB})")
    p.add_argument("--device", help="only this device")
    p.add_argument("-n", type=int, default=None, help="only the N most recent points")
    p.add_argument("--health", action="store_true", help="also show device health")
    p.add_argument(
        "--full",
        action="store_true",
        help="values with every stored digit (default: 6 significant digits)",
    )
    p.add_argument("-f", "--follow", action="store_true", help="repeat every --interval s")
    p.add_argument("--interval", type=float, default=2.0)
    p.set_defaults(func=_tail)
