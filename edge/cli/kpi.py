"""``shopfloor kpi`` (before/after table, tiers, declared import), ``shopfloor import meters``.

shopfloor kpi -c SITE --baseline 2025-01-01..2025-12-31 --current 2026-01-01..2026-06-30
              [--lang en] [--csv F] [--xlsx F] [--json] [--notes]
              [--baseline-imported] [--current-imported] [--declared FILE ...]
shopfloor kpi tiers -c SITE [--at 2026-12-31] [--json]
shopfloor kpi import FILE.csv|xlsx [-c SITE]      validate declared figures and show them
shopfloor import meters FILE.csv -c SITE          historical meter data into the store
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from config.loader import ConfigError, load_site
from config.markers import IMPORT_END
from config.models import SiteConfig
from connectors.base import NAN, Quality, Sample
from edge.store.base import Batch, Store
from metrics.declared import DeclaredImportError, load_file, with_imports
from metrics.engine import compute_table
from metrics.evidence import canonical
from metrics.imports import (
    TS_MAX_NS,
    TS_MIN_NS,
    ImportedSeries,
    MeterImportError,
    parse_meter_csv,
)
from metrics.periods import PeriodError, day_start_ns, local_ns, parse_range, zone
from metrics.provenance import IMPORT_PREFIX, flag_mismatch
from metrics.series import SeriesReader
from metrics.table import fmt_value, tiers_text, to_csv, to_text, to_xlsx
from metrics.tiers import evaluate

EXIT_USAGE = 2
BATCH_SAMPLES = 5000


class _Fail(Exception):
    """A user-facing error: message printed, exit code 2."""


def _site(path: str, extra: list[str] | None = None) -> SiteConfig:
    try:
        site = load_site(path)
    except ConfigError as exc:
        raise _Fail("\n".join(f"error: {i}" for i in exc.issues)) from None
    try:
        return with_imports(site, [Path(p) for p in extra or []])
    except DeclaredImportError as exc:
        raise _Fail("\n".join(f"error: {i}" for i in exc.issues)) from None


@contextlib.contextmanager
def open_reader(site: SiteConfig) -> Iterator[SeriesReader]:
    """A reader of the site's store: read-only for SQLite (the collector may be writing)."""
    if site.storage.kind == "sqlite":
        from edge.store.sqlite import SqliteStore, StoreError

        try:
            store = SqliteStore.open_readonly(site.resolve(site.storage.path))
        except StoreError as exc:
            raise _Fail(f"error: {exc}") from None
        ledger = site.resolve(site.evidence.ledger_path)
        if ledger.exists():  # raw samples a retention pass removed are read from the ledger
            from edge.store.archive_reader import ArchiveReader

            reader = ArchiveReader(store, ledger)
            try:
                yield reader
            finally:
                reader.close()
            return
        try:
            yield store
        finally:
            store.close()
        return
    from edge.store.factory import open_store

    other = open_store(site)
    try:
        yield other
    finally:
        other.close()


def _table(args: argparse.Namespace) -> int:
    from edge.cli.kpi_machines import no_value_text, period_cmd

    one = period_cmd(args)  # --period / --machines: one period, per-machine figures
    if one is not None:
        return one
    if not args.config or not args.baseline or not args.current:
        raise _Fail("error: give -c SITE, --baseline FROM..TO and --current FROM..TO")
    site = _site(args.config, args.declared)
    tz = site.site.timezone
    try:
        baseline = parse_range(args.baseline, tz)
        current = parse_range(args.current, tz)
    except PeriodError as exc:
        raise _Fail(f"error: {exc}") from None
    with open_reader(site) as reader:
        for w in deprecated_flags(reader, site, baseline, current, args):
            print(f"warning: {w}", file=sys.stderr)
        table = compute_table(
            reader,
            site,
            baseline,
            current,
            baseline_imported=args.baseline_imported,
            current_imported=args.current_imported,
        )
    if args.csv:
        Path(args.csv).write_text(to_csv(table, args.lang), encoding="utf-8")
    if args.xlsx:
        Path(args.xlsx).write_bytes(to_xlsx(table, args.lang))
    if args.json:
        print(json.dumps(table.to_dict(), ensure_ascii=False, indent=2, allow_nan=False))
    else:
        sys.stdout.write(to_text(table, args.lang, notes=args.notes))
        if not args.notes:
            sys.stdout.write(no_value_text(table, args.lang))
        sys.stdout.write("\n" + tiers_text(table.tiers["current"], args.lang))
        for path in (args.csv, args.xlsx):
            if path:
                print(f"wrote {path}")
    return 0


def deprecated_flags(
    reader: object, site: SiteConfig, baseline: Any, current: Any, args: argparse.Namespace
) -> list[str]:
    """Warnings for the deprecated ``--baseline-imported`` / ``--current-imported`` flags:
    accepted so old scripts keep working; provenance comes from the recorded batches."""
    out: list[str] = []
    for name, period, flag in (
        ("baseline", baseline, args.baseline_imported),
        ("current", current, args.current_imported),
    ):
        if not flag:
            continue
        clash = flag_mismatch(reader, site, period, flag, name)
        out.append(
            clash
            or f"--{name}-imported is deprecated: provenance comes from the recorded batches "
            "(source import:<device>)"
        )
    return out


def _tiers(args: argparse.Namespace) -> int:
    site = _site(args.config)
    at = None
    if args.at:
        try:
            at = dt.date.fromisoformat(args.at)
        except ValueError:
            raise _Fail(f"error: --at {args.at!r} is not a date (YYYY-MM-DD)") from None
    rep = evaluate(site, at).to_dict()
    if args.json:
        print(json.dumps(rep, ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(tiers_text(rep))
    return 0


def _import_declared(args: argparse.Namespace) -> int:
    if args.config:
        _site(args.config)  # the site file must be valid too
    try:
        figs = load_file(Path(args.file))
    except DeclaredImportError as exc:
        raise _Fail("\n".join(f"error: {i}" for i in exc.issues)) from None
    for f in figs:
        print(
            f"{f.id:32} {fmt_value(f.value, f.unit):>12} {f.unit:6} "
            f"{f.period.start}..{f.period.end}  {f.source}"
        )
    print(
        f"{args.file}: {len(figs)} declared figures ok; list the file in declared.import_files "
        "or pass --declared to `shopfloor kpi`"
    )
    return 0


def file_end_ns(series: Sequence[ImportedSeries], end_ns: int | None = None) -> int:
    """Where an imported file's range ends: ``end_ns`` when given (it must lie after every
    timestamp of the file), else 1 ns after the file's latest timestamp (over every series)."""
    latest = max(int(s.ts[-1]) for s in series if len(s.ts))
    if end_ns is None:
        return latest + 1
    if end_ns <= latest:
        raise _Fail(
            f"error: --end is not after the file's latest timestamp "
            f"({fmt_ns(latest)}): the range would end before its data"
        )
    return end_ns


def import_batches(
    series: Sequence[ImportedSeries], end_ns: int, last_seq: Callable[[str], int]
) -> tuple[list[Batch], int, int]:
    """Imported series as batches with source ``import:<device>``; (batches, samples,
    ``import_end`` markers).

    Every imported (device, point) is closed by one bad sample (NaN, status ``import_end``,
    config.markers) at ``end_ns``, the end of the FILE's range (not of the series: a change-only
    state log whose last change lies before the file's end keeps its state until the end), so
    the KPI engine does not hold the last imported value across the gap to later data."""
    by_device: dict[str, list[Sample]] = {}
    markers = 0
    for s in series:
        lst = by_device.setdefault(s.device, [])
        ts = s.ts.tolist()
        lst.extend(
            Sample(s.device, s.point, int(t), float(v), Quality.GOOD, "")
            for t, v in zip(ts, s.values.tolist(), strict=True)
        )
        if ts:
            lst.append(Sample(s.device, s.point, end_ns, NAN, Quality.BAD, IMPORT_END))
            markers += 1
    batches: list[Batch] = []
    n_samples = 0
    for device, samples in by_device.items():
        samples.sort(key=lambda x: (x.ts, x.point))
        source = f"{IMPORT_PREFIX}{device}"
        seq = last_seq(source)
        for i in range(0, len(samples), BATCH_SAMPLES):
            seq += 1
            part = tuple(samples[i : i + BATCH_SAMPLES])
            batches.append(Batch(source, seq, part))
            n_samples += len(part)
    return batches, n_samples - markers, markers


def write_imported(
    store: Store, series: Sequence[ImportedSeries], end_ns: int | None = None
) -> tuple[int, int, int]:
    """Write imported series to ``store`` (see :func:`import_batches`); (batches, samples,
    markers)."""
    batches, n, m = import_batches(series, file_end_ns(series, end_ns), store.last_seq)
    store.write_batches(batches)
    return len(batches), n, m


def parse_instant(text: str, tz: str) -> int:
    """ns UTC of a date (start of that local day) or an ISO datetime (local when naive)."""
    t = text.strip()
    try:
        if len(t) == 10 and "T" not in t:
            return day_start_ns(dt.date.fromisoformat(t), zone(tz))
        return local_ns(dt.datetime.fromisoformat(t), zone(tz))
    except ValueError:
        raise PeriodError(f"{t!r} is not a date or datetime (YYYY-MM-DD[THH:MM[:SS]])") from None


def fmt_ns(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat()


def _import_meters(args: argparse.Namespace) -> int:
    site = _site(args.config)
    path = Path(args.file)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _Fail(f"error: {path}: cannot read ({exc})") from None
    try:
        series = parse_meter_csv(text, site, str(path))
    except MeterImportError as exc:
        raise _Fail("\n".join(f"error: {i}" for i in exc.issues)) from None
    end_ns = None
    if args.end:
        try:
            end_ns = parse_instant(args.end, site.site.timezone)
        except (PeriodError, OverflowError) as exc:
            raise _Fail(f"error: --end: {exc}") from None
        if not TS_MIN_NS <= end_ns <= TS_MAX_NS:
            raise _Fail(f"error: --end {args.end!r} lies outside 1678..2261 (the store's range)")
    end = file_end_ns(series, end_ns)
    ledger = _open_ledger(site)
    from edge.store.factory import open_store

    store = open_store(site)
    try:
        batches, ns, nm = import_batches(series, end, store.last_seq)
        store.write_batches(batches)
        if ledger is not None:
            from edge.store.ledger import LedgerError

            try:
                ledger.append_import(batches, import_fields(path.name, raw, series, end))
            except (LedgerError, sqlite3.Error) as exc:
                raise _Fail(
                    f"error: the batches are stored but not logged in the evidence ledger: {exc}"
                ) from None
    finally:
        store.close()
        if ledger is not None:
            ledger.close()
    where = "the store and the evidence ledger" if ledger is not None else "the store"
    print(
        f"{path}: imported {ns} samples of {len(series)} points in {len(batches)} batches "
        f"into {where} (source import:<device>, provenance imported), every point closed by "
        f"an import_end sample ({nm}) at the file's end {fmt_ns(end)}"
    )
    if ledger is not None:
        print(f"{path.name}: SHA-256 {canonical.sha256_hex(raw)} recorded in the ledger")
    return 0


def import_fields(
    name: str, raw: bytes, series: Sequence[ImportedSeries], end_ns: int
) -> dict[str, Any]:
    """The ``import`` leaf's own fields: file name (no folder), SHA-256 and size of the bytes
    imported, the range covered and the points imported."""
    return {
        "file": name,
        "sha256": canonical.sha256_hex(raw),
        "bytes": len(raw),
        "first_ts": str(min(int(s.ts[0]) for s in series if len(s.ts))),
        "end_ts": str(end_ns),
        "points": sorted(f"{s.device}/{s.point}" for s in series),
        "provenance": "imported",
    }


def _open_ledger(site: SiteConfig) -> Any:
    """The site's ledger when evidence is enabled (created when missing), else ``None``."""
    if not site.evidence.enabled:
        return None
    from edge.store.ledger import Ledger

    return Ledger(site.resolve(site.evidence.ledger_path))


def _run(func: Any) -> Any:
    def wrapped(args: argparse.Namespace) -> int:
        try:
            code: int = func(args)
            return code
        except _Fail as exc:
            print(str(exc), file=sys.stderr)
            return EXIT_USAGE

    return wrapped


# the handlers named by edge.cli.kpi_cmd (imported when a kpi/import command runs)
table_cmd = _run(_table)
tiers_cmd = _run(_tiers)
import_declared_cmd = _run(_import_declared)
import_meters_cmd = _run(_import_meters)
