"""The embedded store: SQLite in WAL mode, samples kept as column chunks.

Layout (one file):

- ``series(id, device, point, max_span)``: one row per point; ``max_span`` is the widest chunk
  (last_ts - first_ts) of the series so range reads can bound their index scan;
- ``chunks(series_id, first_ts, last_ts, count, source, seq, ts, val, qual, status, sorted)``: one
  row per (series, batch): ``ts`` int64, ``val`` float64 and ``qual`` uint8 little-endian numpy
  arrays as blobs, ``status`` sparse (JSON ``[[index, status], ...]`` of the non-empty ones, or
  NULL), ``sorted`` 1 when ``ts`` is non-decreasing; indexed by (series_id, first_ts) and
  (series_id, last_ts);
- ``batches(source, seq, first_ts, last_ts, count, written_ts)``: one row per acknowledged batch;
- ``latest(device, point, ts, value, quality, status)``: the newest sample per point;
- ``health(device, ...)``: the last health record of every device.

A batch is one transaction; ``write_batches`` returns after COMMIT with ``synchronous=FULL``, so an
acknowledged batch survives ``kill -9`` (and power loss where the disk honours fsync).

The samples of a batch are grouped by point (first appearance order, original order inside a
point); :meth:`SqliteStore.batch` returns them in that order, which is the order the writer hands
to the store and to its observers.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from connectors.base import Quality, Sample, now_ns
from edge.store.base import Batch, DeviceHealth
from metrics.series import Series

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    point TEXT NOT NULL,
    max_span INTEGER NOT NULL DEFAULT 0,
    UNIQUE (device, point)
);
CREATE TABLE IF NOT EXISTS chunks (
    series_id INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    count INTEGER NOT NULL,
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sorted INTEGER NOT NULL,
    ts BLOB NOT NULL,
    val BLOB NOT NULL,
    qual BLOB NOT NULL,
    status TEXT
);
CREATE INDEX IF NOT EXISTS chunks_first ON chunks (series_id, first_ts);
CREATE INDEX IF NOT EXISTS chunks_last ON chunks (series_id, last_ts);
CREATE INDEX IF NOT EXISTS chunks_batch ON chunks (source, seq);
CREATE TABLE IF NOT EXISTS batches (
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    count INTEGER NOT NULL,
    written_ts INTEGER NOT NULL,
    PRIMARY KEY (source, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest (
    device TEXT NOT NULL,
    point TEXT NOT NULL,
    ts INTEGER NOT NULL,
    value REAL,
    quality INTEGER NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (device, point)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS health (
    device TEXT PRIMARY KEY,
    connected INTEGER NOT NULL,
    last_good_ts INTEGER,
    last_sample_ts INTEGER,
    samples INTEGER NOT NULL,
    errors TEXT NOT NULL,
    restarts INTEGER NOT NULL,
    drops INTEGER NOT NULL,
    updated_ts INTEGER NOT NULL,
    extra TEXT NOT NULL
);
"""

_I64 = np.dtype("<i8")
_F64 = np.dtype("<f8")
_U8 = np.dtype("u1")


class StoreError(Exception):
    """The store cannot be used (wrong file, newer schema, read-only)."""


class BatchConflict(StoreError):
    """A batch with this (source, seq) is already stored (nothing was written)."""


def _as_sample(device: str, point: str, ts: int, value: float | None, q: int, st: str) -> Sample:
    return Sample(device, point, ts, float("nan") if value is None else value, Quality(q), st)


class SqliteStore:
    """Store and SeriesReader over one SQLite file.

    Open it with ``SqliteStore(path)`` for the collector (the single writer) or
    :meth:`open_readonly` in other processes (the gateway, the KPI CLI). One instance is used
    from one thread at a time; writers use it from the writer's thread only.
    """

    def __init__(
        self, path: str | Path, *, readonly: bool = False, synchronous: str = "FULL"
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        if readonly:
            if not self.path.exists():
                raise StoreError(f"no store at {self.path}")
            uri = f"file:{self.path.resolve()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=10.0)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, timeout=10.0, isolation_level=None
            )
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], int] = {}
        self._spans: dict[int, int] = {}
        try:
            self._setup(synchronous)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{self.path}: not a shopfloor store ({exc})") from None

    @classmethod
    def open_readonly(cls, path: str | Path) -> SqliteStore:
        """A read-only view of a store another process writes (WAL lets both run)."""
        return cls(path, readonly=True)

    def _setup(self, synchronous: str) -> None:
        db = self._db
        db.execute("PRAGMA busy_timeout = 10000")
        if self.readonly:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None:
                raise StoreError(f"{self.path}: not a shopfloor store")
            self._check_version(int(row[0]))
            return
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {synchronous}")
        # one transaction: a reader never sees a half-created schema
        db.executescript(
            "BEGIN IMMEDIATE;"
            + _SCHEMA
            + f"INSERT OR IGNORE INTO meta VALUES ('schema', '{SCHEMA_VERSION}'); COMMIT;"
        )
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        self._check_version(int(row[0]))
        for sid, dev, pt, span in db.execute("SELECT id, device, point, max_span FROM series"):
            self._series[(dev, pt)] = sid
            self._spans[sid] = span

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: store schema {version} is newer than this shopfloor "
                f"({SCHEMA_VERSION}); upgrade shopfloor"
            )

    # -- writing ------------------------------------------------------------------------------

    def _series_id(self, device: str, point: str) -> int:
        key = (device, point)
        sid = self._series.get(key)
        if sid is None:
            cur = self._db.execute(
                "INSERT INTO series (device, point) VALUES (?, ?) "
                "ON CONFLICT (device, point) DO UPDATE SET device = excluded.device "
                "RETURNING id",
                key,
            )
            sid = int(cur.fetchone()[0])
            self._series[key] = sid
            self._spans.setdefault(sid, 0)
        return sid

    def write_batches(self, batches: Sequence[Batch]) -> None:
        """Store the batches in one transaction; durable when this returns."""
        if self.readonly:
            raise StoreError("store opened read-only")
        if not batches:
            return
        with self._lock:
            db = self._db
            spans_before = dict(self._spans)
            series_before = dict(self._series)
            db.execute("BEGIN IMMEDIATE")
            try:
                for b in batches:
                    self._write_one(b)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                self._spans = spans_before
                self._series = series_before
                raise

    def _write_one(self, batch: Batch) -> None:
        db = self._db
        samples = batch.samples
        if not samples:
            raise ValueError(f"batch {batch.source}#{batch.seq} has no samples")
        groups: dict[tuple[str, str], list[Sample]] = {}
        for s in samples:
            key = (s.device, s.point)
            g = groups.get(key)
            if g is None:
                groups[key] = [s]
            else:
                g.append(s)
        written = now_ns()
        first_all = last_all = samples[0].ts
        chunk_rows = []
        latest_rows = []
        for (device, point), g in groups.items():
            n = len(g)
            ts = np.fromiter((s.ts for s in g), dtype=_I64, count=n)
            val = np.fromiter((s.value for s in g), dtype=_F64, count=n)
            qual = np.fromiter((s.quality for s in g), dtype=_U8, count=n)
            status = [[i, s.status] for i, s in enumerate(g) if s.status]
            is_sorted = n < 2 or bool(np.all(ts[1:] >= ts[:-1]))
            if is_sorted:
                first, last = int(ts[0]), int(ts[-1])
                newest = g[-1]
            else:
                first, last = int(ts.min()), int(ts.max())
                newest = g[int(np.flatnonzero(ts == last)[-1])]
            first_all = min(first_all, first)
            last_all = max(last_all, last)
            sid = self._series_id(device, point)
            if last - first > self._spans[sid]:
                self._spans[sid] = last - first
                db.execute("UPDATE series SET max_span = ? WHERE id = ?", (last - first, sid))
            chunk_rows.append(
                (
                    sid,
                    first,
                    last,
                    n,
                    batch.source,
                    batch.seq,
                    int(is_sorted),
                    ts.tobytes(),
                    val.tobytes(),
                    qual.tobytes(),
                    json.dumps(status, ensure_ascii=False) if status else None,
                )
            )
            value = newest.value
            latest_rows.append(
                (
                    device,
                    point,
                    newest.ts,
                    None if value != value else value,
                    int(newest.quality),
                    newest.status,
                )
            )
        try:
            db.execute(
                "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)",
                (batch.source, batch.seq, first_all, last_all, len(samples), written),
            )
        except sqlite3.IntegrityError:
            raise BatchConflict(f"batch {batch.source}#{batch.seq} is already stored") from None
        db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", chunk_rows)
        db.executemany(
            "INSERT INTO latest VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device, point) DO UPDATE "
            "SET ts = excluded.ts, value = excluded.value, quality = excluded.quality, "
            "status = excluded.status WHERE excluded.ts >= latest.ts",
            latest_rows,
        )

    def last_seq(self, source: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT MAX(seq) FROM batches WHERE source = ?", (source,)
            ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def write_health(self, records: Sequence[DeviceHealth]) -> None:
        if self.readonly:
            raise StoreError("store opened read-only")
        rows = [
            (
                h.device,
                int(h.connected),
                h.last_good_ts,
                h.last_sample_ts,
                h.samples,
                json.dumps(h.errors, ensure_ascii=False, sort_keys=True),
                h.restarts,
                h.drops,
                h.updated_ts or now_ns(),
                json.dumps(h.extra, ensure_ascii=False, sort_keys=True, default=str),
            )
            for h in records
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO health VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- reading ------------------------------------------------------------------------------

    def health(self) -> list[DeviceHealth]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM health ORDER BY device").fetchall()
        return [
            DeviceHealth(
                device=r[0],
                connected=bool(r[1]),
                last_good_ts=r[2],
                last_sample_ts=r[3],
                samples=r[4],
                errors=json.loads(r[5]),
                restarts=r[6],
                drops=r[7],
                updated_ts=r[8],
                extra=json.loads(r[9]),
            )
            for r in rows
        ]

    def latest(self, device: str | None = None) -> list[Sample]:
        sql = "SELECT device, point, ts, value, quality, status FROM latest"
        args: tuple[str, ...] = ()
        if device is not None:
            sql += " WHERE device = ?"
            args = (device,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY device, point", args).fetchall()
        return [_as_sample(*r) for r in rows]

    def series(self) -> list[tuple[str, str]]:
        """Every (device, point) with stored samples, sorted."""
        with self._lock:
            rows = self._db.execute("SELECT device, point FROM series ORDER BY device, point")
            return [(str(d), str(p)) for d, p in rows]

    def _lookup(self, device: str, point: str) -> tuple[int, int] | None:
        row = self._db.execute(
            "SELECT id, max_span FROM series WHERE device = ? AND point = ?", (device, point)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def read(self, device: str, point: str, start: int, end: int, *, prior: bool = False) -> Series:
        """Samples with ``start <= ts < end`` in time order (stable for equal timestamps:
        storage order); with ``prior`` the last sample before ``start`` is prepended."""
        with self._lock:
            found = self._lookup(device, point)
            if found is None:
                return Series.empty()
            sid, span = found
            rows = self._db.execute(
                "SELECT ts, val, qual, sorted, first_ts FROM chunks WHERE series_id = ? "
                "AND first_ts >= ? AND first_ts < ? AND last_ts >= ? ORDER BY first_ts, rowid",
                (sid, start - span, end, start),
            ).fetchall()
            before: tuple[Any, ...] | None = None
            if prior:
                before = self._db.execute(
                    "SELECT ts, val, qual, sorted, first_ts FROM chunks WHERE series_id = ? "
                    "AND last_ts < ? ORDER BY last_ts DESC, rowid DESC LIMIT 1",
                    (sid, start),
                ).fetchone()
        return _assemble(rows, before, start, end, prior)

    # -- batches ------------------------------------------------------------------------------

    def batch_records(
        self, source: str | None = None, start: int | None = None, end: int | None = None
    ) -> list[tuple[str, int, int, int, int, int]]:
        """(source, seq, first_ts, last_ts, count, written_ts) of stored batches overlapping
        [start, end), by source and seq."""
        sql = "SELECT source, seq, first_ts, last_ts, count, written_ts FROM batches WHERE 1"
        args: list[Any] = []
        if source is not None:
            sql += " AND source = ?"
            args.append(source)
        if end is not None:
            sql += " AND first_ts < ?"
            args.append(end)
        if start is not None:
            sql += " AND last_ts >= ?"
            args.append(start)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY source, seq", args).fetchall()
        return [(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows]

    def sources(self) -> list[str]:
        with self._lock:
            return [str(r[0]) for r in self._db.execute("SELECT DISTINCT source FROM batches")]

    def batch(self, source: str, seq: int) -> Batch | None:
        """One stored batch, samples grouped by point as written."""
        with self._lock:
            rows = self._db.execute(
                "SELECT s.device, s.point, c.ts, c.val, c.qual, c.status FROM chunks c "
                "JOIN series s ON s.id = c.series_id WHERE c.source = ? AND c.seq = ? "
                "ORDER BY c.rowid",
                (source, seq),
            ).fetchall()
        if not rows:
            return None
        samples: list[Sample] = []
        for device, point, tsb, valb, qb, st in rows:
            ts = np.frombuffer(tsb, dtype=_I64)
            val = np.frombuffer(valb, dtype=_F64)
            qual = np.frombuffer(qb, dtype=_U8)
            statuses = dict(json.loads(st)) if st else {}
            for i in range(ts.shape[0]):
                samples.append(
                    Sample(
                        device,
                        point,
                        int(ts[i]),
                        float(val[i]),
                        Quality(int(qual[i])),
                        statuses.get(i, ""),
                    )
                )
        return Batch(source, seq, tuple(samples))

    def batches_for(
        self, source: str, start: int | None = None, end: int | None = None
    ) -> Iterator[Batch]:
        """Stored batches of ``source`` overlapping [start, end), in sequence order."""
        for rec in self.batch_records(source, start, end):
            b = self.batch(rec[0], rec[1])
            if b is not None:
                yield b

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _assemble(
    rows: list[Any], before: tuple[Any, ...] | None, start: int, end: int, prior: bool
) -> Series:
    ts_parts: list[npt.NDArray[np.int64]] = []
    val_parts: list[npt.NDArray[np.float64]] = []
    q_parts: list[npt.NDArray[np.uint8]] = []
    in_order = True
    for tsb, valb, qb, srt, _first in rows:
        ts_parts.append(np.frombuffer(tsb, dtype=_I64))
        val_parts.append(np.frombuffer(valb, dtype=_F64))
        q_parts.append(np.frombuffer(qb, dtype=_U8))
        if not srt:
            in_order = False
    if len(ts_parts) == 1:
        ts, val, q = ts_parts[0], val_parts[0], q_parts[0]
    elif ts_parts:
        ts = np.concatenate(ts_parts)
        val = np.concatenate(val_parts)
        q = np.concatenate(q_parts)
    else:
        ts = np.empty(0, dtype=np.int64)
        val = np.empty(0, dtype=np.float64)
        q = np.empty(0, dtype=np.uint8)
    if in_order and ts.shape[0] > 1 and not bool(np.all(ts[1:] >= ts[:-1])):
        in_order = False
    if not in_order:
        order = np.argsort(ts, kind="stable")
        ts, val, q = ts[order], val[order], q[order]
    lo = int(np.searchsorted(ts, start, side="left"))
    hi = int(np.searchsorted(ts, end, side="left"))
    prior_ts: int | None = None
    prior_val = 0.0
    prior_q = 0
    if prior:
        if lo > 0:
            prior_ts, prior_val, prior_q = int(ts[lo - 1]), float(val[lo - 1]), int(q[lo - 1])
        if before is not None:
            bts = np.frombuffer(before[0], dtype=_I64)
            bval = np.frombuffer(before[1], dtype=_F64)
            bq = np.frombuffer(before[2], dtype=_U8)
            i = int(np.flatnonzero(bts == bts.max())[-1])
            if prior_ts is None or int(bts[i]) > prior_ts:
                prior_ts, prior_val, prior_q = int(bts[i]), float(bval[i]), int(bq[i])
    ts, val, q = ts[lo:hi], val[lo:hi], q[lo:hi]
    if prior_ts is not None:
        ts = np.concatenate((np.array([prior_ts], dtype=np.int64), ts))
        val = np.concatenate((np.array([prior_val], dtype=np.float64), val))
        q = np.concatenate((np.array([prior_q], dtype=np.uint8), q))
    elif not ts.flags.writeable:
        # own the memory (frombuffer views are read-only and tied to the row bytes)
        ts, val, q = ts.copy(), val.copy(), q.copy()
    return Series(ts, val, q)
