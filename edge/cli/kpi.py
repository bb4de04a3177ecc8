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
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from config.loader import ConfigError, load_site
from config.models import SiteConfig
from connectors.base import NAN, Quality, Sample
from edge.store.base import Batch, Store
from metrics.declared import DeclaredImportError, load_file, with_imports
from metrics.engine import compute_table
from metrics.imports import MeterImportError, parse_meter_csv
from metrics.periods import PeriodError, parse_range
from metrics.series import SeriesReader
from metrics.table import fmt_value, tiers_text, to_csv, to_text, to_xlsx
from metrics.tiers import evaluate

EXIT_USAGE = 2
BATCH_SAMPLES = 5000
# the status of the sample closing each imported series (edge.runtime.IMPORT_END; not imported
# from there so `shopfloor import meters` does not load the collector)
IMPORT_END = "import_end"


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


def write_imported(store: Store, series: list[Any]) -> tuple[int, int, int]:
    """Write imported series as batches with source ``import:<device>``; (batches, samples,
    ``import_end`` markers).

    Each non-empty series ends with one bad sample (NaN, status ``import_end``, as
    ``edge.runtime.import_end_markers`` writes for the collector's imports) 1 ns after its last
    timestamp: after the imported range nothing is known, so the KPI engine does not hold the
    last imported state/value across the gap to later data."""
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
            lst.append(Sample(s.device, s.point, int(max(ts)) + 1, NAN, Quality.BAD, IMPORT_END))
            markers += 1
    batches: list[Batch] = []
    n_samples = 0
    for device, samples in by_device.items():
        samples.sort(key=lambda x: (x.ts, x.point))
        source = f"import:{device}"
        seq = store.last_seq(source)
        for i in range(0, len(samples), BATCH_SAMPLES):
            seq += 1
            part = tuple(samples[i : i + BATCH_SAMPLES])
            batches.append(Batch(source, seq, part))
            n_samples += len(part)
    store.write_batches(batches)
    return len(batches), n_samples - markers, markers


def _import_meters(args: argparse.Namespace) -> int:
    site = _site(args.config)
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _Fail(f"error: {path}: cannot read ({exc})") from None
    try:
        series = parse_meter_csv(text, site, str(path))
    except MeterImportError as exc:
        raise _Fail("\n".join(f"error: {i}" for i in exc.issues)) from None
    from edge.store.factory import open_store

    store = open_store(site)
    try:
        nb, ns, nm = write_imported(store, series)
    finally:
        store.close()
    print(
        f"{path}: imported {ns} samples of {len(series)} points in {nb} batches "
        f"(source import:<device>), each point closed by an import_end sample ({nm})"
    )
    return 0


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
