"""The embedded store: SQLite in WAL mode, samples kept as column chunks.

Layout (one file):

- ``series(id, device, point)``: one small integer id per point;
- ``devices(device, max_span)``: the widest chunk (last_ts - first_ts) of each device, so range
  reads can bound their index scan;
- ``chunks(device, first_ts, last_ts, count, source, seq, sorted, sidx, sid, ts, val, qual,
  status)``:
  one row per (batch, device), i.e. one row per batch for the collector's batches: ``sid``
  uint32 series ids, ``ts`` int64, ``val`` float64 and ``qual`` uint8 little-endian numpy
  arrays as blobs in the batch's own sample order, ``status`` sparse (JSON ``[[index, status],
  ...]`` of the non-empty ones, or NULL), ``sorted`` 1 when ``ts`` is non-decreasing, ``sidx``
  the chunk's series index (uint32 quadruples ``sid, first, end, count`` sorted by ``sid``:
  the series' samples lie at positions ``first <= i < end``, ``count`` of them; placed before
  the blobs so that reading it does not walk their overflow pages; a store created before the
  index gets it as its last column by ``ALTER TABLE``, NULL in the rows written before, which
  are read the old way); indexed by
  (device, first_ts) and (source, seq). One row per batch rather than per (series, batch) keeps
  the insert cost per sample low when many points report a few samples each; :meth:`compact`
  later merges the small rows of settled data (the collector runs it every minute) so a year
  recorded at a 200 ms flush interval reads as few large rows, each holding its samples grouped
  by series (each series in time order, one contiguous range per series);
- ``batches(source, seq, first_ts, last_ts, count, written_ts)``: one row per acknowledged batch;
- ``latest(device, points)``: the newest sample of every point of a device (binary columns by
  series id, :mod:`edge.store.latest_row`; JSON text in files of schema 1), written with
  the batches at most every ``latest_interval_s`` (0.5 s; longer for a large table, so that
  rendering it takes at most 5 % of the time, up to 5 s) and on ``latest()``/``close()``;
- ``health(device, ...)``: the last health record of every device.

``read(device, point, ...)`` selects the series indexes of the device's chunks overlapping the
range, then fetches from the chunks holding the series only the byte ranges ``[first, end)`` of
its columns (``substr`` on the blobs, so the values of the device's other points are neither
read nor decoded), keeps the samples of the series (numpy mask, skipped when the range holds
only them), concatenates, stable-sorts only when out of order (late or backfilled data) and
trims to [start, end). A batch is one transaction; ``write_batches``
returns after COMMIT with ``synchronous=FULL`` (default), so an acknowledged batch survives
``kill -9`` (and power loss where the disk honours fsync). :meth:`SqliteStore.batch` returns a
stored batch with its samples in the order they were written. ``write_batch_columns(batches,
columns)`` is the same write from the writer's :class:`~metrics.evidence.canonical.SampleColumns`
(read once per write and shared with the evidence ledger) instead of the ``Sample`` objects.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from connectors.base import Quality, Sample, SampleBlock, now_ns
from edge.store import latest_row
from edge.store.base import Batch, DeviceHealth, Newest
from metrics.series import Series

if TYPE_CHECKING:  # the writer's columns (only their attributes are used here)
    from metrics.evidence.canonical import SampleColumns

SCHEMA_VERSION = 2  # 2: binary latest rows (edge.store.latest_row)
log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    point TEXT NOT NULL,
    UNIQUE (device, point)
);
CREATE TABLE IF NOT EXISTS devices (
    device TEXT PRIMARY KEY,
    max_span INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (
    device TEXT NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts INTEGER NOT NULL,
    count INTEGER NOT NULL,
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sorted INTEGER NOT NULL,
    sidx BLOB,
    sid BLOB NOT NULL,
    ts BLOB NOT NULL,
    val BLOB NOT NULL,
    qual BLOB NOT NULL,
    status TEXT
);
CREATE INDEX IF NOT EXISTS chunks_time ON chunks (device, first_ts);
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
    device TEXT PRIMARY KEY,
    points TEXT NOT NULL
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

_MINUTE_NS = 60 * 10**9
# per-minute aggregates of removed raw samples (created by the first retention pass): n samples,
# good of them usable (not bad, not NaN) with their min / max / sum and the last usable value
_MINUTES_SCHEMA = """
CREATE TABLE IF NOT EXISTS minutes (
    sid INTEGER NOT NULL,
    minute INTEGER NOT NULL,
    n INTEGER NOT NULL,
    good INTEGER NOT NULL,
    vmin REAL,
    vmax REAL,
    vsum REAL NOT NULL,
    last_ts INTEGER,
    last REAL,
    PRIMARY KEY (sid, minute)
) WITHOUT ROWID
"""
_MINUTES_UPSERT = (
    "INSERT INTO minutes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sid, minute) DO UPDATE "
    "SET n = n + excluded.n, good = good + excluded.good, "
    "vmin = CASE WHEN vmin IS NULL OR excluded.vmin < vmin THEN excluded.vmin ELSE vmin END, "
    "vmax = CASE WHEN vmax IS NULL OR excluded.vmax > vmax THEN excluded.vmax ELSE vmax END, "
    "vsum = vsum + excluded.vsum, "
    "last = CASE WHEN last_ts IS NULL OR excluded.last_ts >= last_ts THEN excluded.last "
    "ELSE last END, "
    "last_ts = CASE WHEN last_ts IS NULL OR excluded.last_ts >= last_ts THEN excluded.last_ts "
    "ELSE last_ts END"
)
_I64 = np.dtype("<i8")
_F64 = np.dtype("<f8")
_U8 = np.dtype("u1")
_U32 = np.dtype("<u4")
_first = itemgetter(0)
_ts = attrgetter("ts")
_val = attrgetter("value")
_qual = attrgetter("quality")
_status = attrgetter("status")

_CHUNK_INSERT = (
    "INSERT INTO chunks (device, first_ts, last_ts, count, source, seq, sorted, sid, ts, val, "
    "qual, status, sidx) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# points tuples whose series ids are cached (a site's reads: a few per device)
_SID_CACHE_MAX = 65536
# chunks per read query of series ranges (4 parameters each, below SQLite's variable limit)
_RANGES_PER_QUERY = 4000

# the latest table is written at most every latest_interval_s, and taking at most 1/20 of the
# time (a large table waits longer, up to LATEST_MAX_WAIT_S; latest() and close() always write)
LATEST_COST_SHARE = 20.0
LATEST_MAX_WAIT_S = 5.0

_QUALITY = {int(q): q for q in Quality}
# a point's latest entry by name (rows of older files): [ts, value or None, quality, status]
LatestEntry = latest_row.NamedEntry


def _sample_columns(blocks: Sequence[SampleBlock]) -> SampleColumns:
    """The columns of batches held as blocks (concatenated arrays, no sample objects)."""
    from metrics.evidence.canonical import SampleColumns

    return SampleColumns.of_blocks(blocks)


class _Columns(NamedTuple):
    """The columns ``_write_all`` stores: group ``i`` (one batch) is rows
    ``bounds[i]:bounds[i + 1]``; ``statuses`` is None when every status is empty."""

    bounds: Sequence[int]
    devices: list[str]
    points: list[str]
    ts: npt.NDArray[np.int64]
    val: npt.NDArray[np.float64]
    qual: npt.NDArray[np.uint8]
    statuses: list[str] | None

    @classmethod
    def of(cls, columns: SampleColumns) -> _Columns:
        """The writer's :class:`SampleColumns` as stored (little-endian, no copy when they
        already are)."""
        return cls(
            columns.bounds,
            columns.devices,
            columns.points,
            np.asarray(columns.ts, dtype=_I64),
            np.asarray(columns.values, dtype=_F64),
            np.asarray(columns.quality, dtype=_U8),
            columns.statuses if columns.statuses and any(columns.statuses) else None,
        )


_NewestUpdate = tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.uint8],
    dict[int, str],
]
_NO_TS = np.iinfo(np.int64).min


class _LatestColumns:
    """The newest sample of every series, indexed by series id: ``ts`` (``_NO_TS`` when
    unknown), ``val``, ``qual``, the non-empty ``status`` by id and ``dirty`` (changed since
    the latest table was last written). Updated with arrays on every write; the latest table
    is rendered from it only when it is written."""

    def __init__(self) -> None:
        self.ts = np.full(0, _NO_TS, dtype=np.int64)
        self.val = np.zeros(0, dtype=np.float64)
        self.qual = np.zeros(0, dtype=np.uint8)
        self.dirty = np.zeros(0, dtype=bool)
        self.status: dict[int, str] = {}

    def _grow(self, size: int) -> None:
        have = self.ts.shape[0]
        if size <= have:
            return
        size = max(size, 2 * have, 64)
        self.ts = np.concatenate((self.ts, np.full(size - have, _NO_TS, dtype=np.int64)))
        self.val = np.concatenate((self.val, np.zeros(size - have, dtype=np.float64)))
        self.qual = np.concatenate((self.qual, np.zeros(size - have, dtype=np.uint8)))
        self.dirty = np.concatenate((self.dirty, np.zeros(size - have, dtype=bool)))

    def load(self, sid: int, ts: int, value: float, quality: int, status: str) -> None:
        self._grow(sid + 1)
        self.ts[sid], self.val[sid], self.qual[sid] = ts, value, quality
        if status:
            self.status[sid] = status

    def load_columns(
        self,
        sids: npt.NDArray[np.int64],
        ts: npt.NDArray[np.int64],
        val: npt.NDArray[np.float64],
        qual: npt.NDArray[np.uint8],
        status: dict[int, str],
    ) -> None:
        """Set these series' newest samples (a stored latest row, at open)."""
        if sids.shape[0]:
            self._grow(int(sids.max()) + 1)
            self.ts[sids], self.val[sids], self.qual[sids] = ts, val, qual
        self.status.update(status)

    def update(
        self,
        sids: npt.NDArray[np.int64],
        ts: npt.NDArray[np.int64],
        val: npt.NDArray[np.float64],
        qual: npt.NDArray[np.uint8],
        status: dict[int, str],
    ) -> tuple[Any, ...]:
        """Take the newer of each series (a sample at the same time wins); returns what
        :meth:`restore` needs to undo it."""
        if sids.shape[0]:
            self._grow(int(sids.max()) + 1)
        newer = ts >= self.ts[sids]
        s = sids[newer]
        undo = (s, self.ts[s], self.val[s], self.qual[s], self.dirty[s], dict(self.status))
        self.ts[s], self.val[s], self.qual[s] = ts[newer], val[newer], qual[newer]
        self.dirty[s] = True
        if self.status:
            for k in s[np.isin(s, np.fromiter(self.status, dtype=np.int64))].tolist():
                del self.status[k]
        if status:
            taken = set(s.tolist()) if len(status) > 64 else None
            for k, text in status.items():
                if (k in taken) if taken is not None else bool((s == k).any()):
                    self.status[k] = text
        return undo

    def restore(self, undo: tuple[Any, ...]) -> None:
        s, ts, val, qual, dirty, status = undo
        self.ts[s], self.val[s], self.qual[s], self.dirty[s] = ts, val, qual, dirty
        self.status = status


class StoreError(Exception):
    """The store cannot be used (wrong file, newer schema, read-only)."""


class BatchConflict(StoreError):
    """A batch with this (source, seq) is already stored (nothing was written)."""


class SqliteStore:
    """Store and SeriesReader over one SQLite file.

    Open it with ``SqliteStore(path)`` for the collector (the single writer) or
    :meth:`open_readonly` in other processes (the gateway, the KPI CLI). An instance may be
    shared between threads (a lock serialises its use); the collector's writer uses it from its
    one writer thread.
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
            self._db = sqlite3.connect(
                uri, uri=True, check_same_thread=False, timeout=10.0, isolation_level=None
            )
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, timeout=10.0, isolation_level=None
            )
        self._lock = threading.Lock()
        self._sids: dict[tuple[str, str], int] = {}
        self._psids: dict[str, dict[str, int]] = {}  # the same ids by device, then point
        self._names: dict[int, tuple[str, str]] = {}
        self._max_sid = 0  # max(self._names), kept as series are added (not a scan per write)
        self._sid_dev_table: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
        # series ids sorted by device, and where each device's run of them starts and ends
        self._by_dev: tuple[npt.NDArray[np.int64], list[int], npt.NDArray[np.int64]] | None = None
        self._dev_names: list[str] = []
        self._latest_written = 0.0
        self._latest_cost = 0.0  # seconds the last render and write of the latest table took
        # the newest sample of every series as columns indexed by series id (see _newest)
        self._lat = _LatestColumns()
        self.latest_interval_s = 0.5
        self._closed = False
        self._spans: dict[str, int] = {}
        self._added: list[tuple[str, str]] = []  # series ids added by the open transaction
        # series ids of blocks' points tuples, by the tuple's identity (see _block_sids)
        self._sid_cache: dict[int, tuple[tuple[str, ...], str, npt.NDArray[np.uint32]]] = {}
        # latest-table points without a series (not written by this code; kept as they are)
        self._latest_orphans: dict[str, dict[str, LatestEntry]] = {}
        self._has_sidx = False
        try:
            self._setup(synchronous)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{self.path}: not a shopfloor store ({exc})") from None
        except StoreError:
            self._db.close()
            raise

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
            self._has_sidx = self._chunks_have_sidx()
            return
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {synchronous}")
        # one transaction: a reader never sees a half-created schema
        db.executescript(
            "BEGIN IMMEDIATE;"
            + _SCHEMA
            + f"INSERT OR IGNORE INTO meta VALUES ('schema', '{SCHEMA_VERSION}'); COMMIT;"
        )
        row_v = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        self._check_version(int(row_v[0]))
        if not self._chunks_have_sidx():
            # a store written before the series index: new rows get one, old rows stay NULL
            db.execute("ALTER TABLE chunks ADD COLUMN sidx BLOB")
        self._has_sidx = True
        for sid, dev, pt in db.execute("SELECT id, device, point FROM series"):
            self._sids[(dev, pt)] = sid
            self._psids.setdefault(dev, {})[pt] = sid
            self._names[sid] = (dev, pt)
            self._max_sid = max(self._max_sid, sid)
        for dev, span in db.execute("SELECT device, max_span FROM devices"):
            self._spans[dev] = span
        for dev, points in db.execute("SELECT device, points FROM latest"):
            row = self._latest_row(dev, points)
            if row is None:
                continue
            self._lat.load_columns(row.sid, row.ts, row.val, row.qual, row.status)
            for point, entry in row.named.items():
                t, v, q, st = entry
                sid = self._sids.get((dev, point))
                if sid is not None:
                    self._lat.load(sid, int(t), float("nan") if v is None else float(v), q, st)
                else:
                    self._latest_orphans.setdefault(dev, {})[point] = entry
        self._lat.dirty[:] = False
        if int(row_v[0]) < SCHEMA_VERSION:
            # schema 2: latest rows are binary (edge.store.latest_row); older rows are read
            # as they are and rewritten when their device is next written
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))

    def _latest_row(self, device: str, stored: bytes | str) -> latest_row.LatestRow | None:
        """A latest row decoded; an unreadable row is logged and skipped (the chunks hold every
        sample: the row is only the newest of each, rewritten by the next write)."""
        try:
            return latest_row.decode(stored)
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning("%s: latest row of %s unreadable (%s); skipped", self.path, device, exc)
            return None

    def _chunks_have_sidx(self) -> bool:
        cols = {str(r[1]) for r in self._db.execute("PRAGMA table_info(chunks)")}
        return "sidx" in cols

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: store schema {version} is newer than this shopfloor "
                f"({SCHEMA_VERSION}); upgrade shopfloor"
            )

    # -- writing ------------------------------------------------------------------------------

    def _new_sid(self, key: tuple[str, str]) -> int:
        cur = self._db.execute(
            "INSERT INTO series (device, point) VALUES (?, ?) "
            "ON CONFLICT (device, point) DO UPDATE SET device = excluded.device RETURNING id",
            key,
        )
        sid = int(cur.fetchone()[0])
        self._sids[key] = sid
        self._psids.setdefault(key[0], {})[key[1]] = sid
        self._names[sid] = key
        self._max_sid = max(self._max_sid, sid)
        self._added.append(key)
        return sid

    def _new_sids(self, device: str, points: Sequence[str]) -> dict[str, int]:
        """Create the series of ``device`` among ``points`` that have no id yet (ids in order
        of first appearance, as :meth:`_new_sid` one by one would give); returns the device's
        point -> id map."""
        by_point = self._psids.setdefault(device, {})
        new = [p for p in dict.fromkeys(points) if p not in by_point]
        if not new:
            return by_point
        self._db.executemany(
            "INSERT INTO series (device, point) VALUES (?, ?) "
            "ON CONFLICT (device, point) DO NOTHING",
            [(device, p) for p in new],
        )
        wanted = set(new)
        for sid, point in self._db.execute(
            "SELECT id, point FROM series WHERE device = ?", (device,)
        ):
            if point in wanted:
                key = (device, point)
                self._sids[key] = sid
                by_point[point] = sid
                self._names[sid] = key
                self._max_sid = max(self._max_sid, sid)
                self._added.append(key)
        return by_point

    def write_batches(self, batches: Sequence[Batch]) -> None:
        """Store the batches in one transaction; durable when this returns."""
        if self._check_batches(batches):
            self._write(batches, None)

    def write_batch_columns(self, batches: Sequence[Batch], columns: SampleColumns) -> None:
        """:meth:`write_batches` with the samples' attributes already read into ``columns``
        (the writer reads them once per write call and hands the same columns to the
        ledger): same contract, same rows byte for byte, durable when this returns. The
        columns must be those of ``batches`` (group ``i`` holds ``batches[i].samples``), else
        ``ValueError`` and nothing is written. A subclass that overrides
        :meth:`write_batches` (a wrapper, a fault injector) keeps its override: the columns
        are then ignored and ``self.write_batches(batches)`` is called."""
        if type(self).write_batches is not SqliteStore.write_batches:
            self.write_batches(batches)
            return
        if not self._check_batches(batches):
            if columns.bounds[-1]:
                raise ValueError("the sample columns are not those of these batches")
            return
        if not columns.fits_counts([b.count for b in batches]):
            raise ValueError("the sample columns are not those of these batches (sizes differ)")
        self._write(batches, columns)

    def _check_batches(self, batches: Sequence[Batch]) -> bool:
        """Whether there is anything to write (errors for a read-only store, empty batches)."""
        if self.readonly:
            raise StoreError("store opened read-only")
        if not batches:
            return False
        for b in batches:
            if not b.count:
                raise ValueError(f"batch {b.source}#{b.seq} has no samples")
        return True

    def _write(self, batches: Sequence[Batch], columns: SampleColumns | None) -> None:
        """One transaction for the batches (the columns read off them, or given)."""
        if columns is None and all(b.columnar for b in batches):
            columns = _sample_columns([blk for b in batches if (blk := b.block) is not None])
        cols = self._columns(batches) if columns is None else _Columns.of(columns)
        with self._lock:
            db = self._db
            # undone on failure: the series ids and spans this transaction adds (no copy of
            # the maps, which hold every series: a copy per write was O(series))
            self._added = []
            spans_before = dict(self._spans)
            undo: Any = None
            db.execute("BEGIN IMMEDIATE")
            try:
                undo = self._lat.update(*self._write_all(batches, cols))
                flush = time.monotonic() - self._latest_written >= self._latest_wait()
                if flush:
                    began = time.perf_counter()
                    touched = self._latest_rows()
                    if touched:
                        self._write_latest(touched)
                    self._latest_cost = time.perf_counter() - began
                db.execute("COMMIT")
            except BaseException:
                # SQLite has already rolled back after some errors (SQLITE_FULL, SQLITE_IOERR):
                # a second ROLLBACK would raise and skip restoring the ids below
                if db.in_transaction:
                    db.execute("ROLLBACK")
                if undo is not None:
                    self._lat.restore(undo)
                for key in self._added:
                    sid_ = self._sids.pop(key, None)
                    if sid_ is not None:
                        self._names.pop(sid_, None)
                        self._psids.get(key[0], {}).pop(key[1], None)
                self._added = []
                self._sid_cache.clear()
                self._spans = spans_before
                # series ids of the undone transaction may come back for other series
                self._sid_dev_table = np.empty(0, dtype=np.int64)
                self._max_sid = max(self._names, default=0)
                raise
            if flush:
                self._lat.dirty[:] = False
                self._latest_written = time.monotonic()

    @staticmethod
    def _columns(batches: Sequence[Batch]) -> _Columns:
        """The columns of the batches' samples, read off the ``Sample`` objects."""
        samples: list[Sample] = []
        bounds = [0]
        for b in batches:
            samples.extend(b.samples)
            bounds.append(len(samples))
        n = len(samples)
        statuses = list(map(_status, samples))
        return _Columns(
            bounds,
            [s.device for s in samples],
            [s.point for s in samples],
            np.fromiter(map(_ts, samples), dtype=_I64, count=n),
            np.fromiter(map(_val, samples), dtype=_F64, count=n),
            np.fromiter(map(_qual, samples), dtype=_U8, count=n),
            statuses if any(statuses) else None,
        )

    def _latest_wait(self) -> float:
        """Seconds between two writes of the latest table: ``latest_interval_s``, stretched
        (up to ``LATEST_MAX_WAIT_S``) so that rendering it takes at most 1/``LATEST_COST_SHARE``
        of the time (100,000 points: about 0.1 s per render); 0 keeps 0 (every write)."""
        base = self.latest_interval_s
        if base <= 0:
            return base
        return max(base, min(self._latest_cost * LATEST_COST_SHARE, LATEST_MAX_WAIT_S))

    def flush_latest(self) -> None:
        """Write the latest values held back by the throttle (the writer calls this when a
        flush interval passed without samples, so a quiet store is never stale; a large
        latest table waits its stretched interval, see :meth:`_latest_wait`)."""
        with self._lock:
            if self._closed:
                return
            if (
                time.monotonic() - self._latest_written
                < self._latest_wait() - self.latest_interval_s
            ):
                return
            began = time.perf_counter()
            self._flush_latest()
            self._latest_cost = max(self._latest_cost, time.perf_counter() - began)

    def _flush_latest(self) -> None:
        """Write the latest values held back by the throttle (own transaction)."""
        if self.readonly or not self._lat.dirty.any():
            return
        db = self._db
        touched = self._latest_rows()
        db.execute("BEGIN IMMEDIATE")
        try:
            self._write_latest(touched)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._lat.dirty[:] = False
        self._latest_written = time.monotonic()

    def _latest_rows(self) -> dict[str, bytes]:
        """The latest table's new rows (:mod:`edge.store.latest_row`) of the devices with series
        written since the last flush: every point of such a device, straight from the columns
        (at most every ``latest_interval_s``; no per-series Python step)."""
        lat = self._lat
        changed = np.flatnonzero(lat.dirty)
        if not changed.shape[0]:
            return {}
        sid_dev = self._sid_dev()
        order, cuts = self._series_by_device()
        names = self._names
        status_by_dev: dict[int, dict[int, str]] = {}
        for k, text in lat.status.items():
            if k < sid_dev.shape[0]:
                status_by_dev.setdefault(int(sid_dev[k]), {})[k] = text
        out: dict[str, bytes] = {}
        for k in np.unique(sid_dev[changed]).tolist():
            sids = order[cuts[k] : cuts[k + 1]]
            sids = sids[lat.ts[sids] != _NO_TS]
            if not sids.shape[0]:
                continue
            device = names[int(sids[0])][0]
            psids = self._psids.get(device, {})
            named = {
                p: e for p, e in self._latest_orphans.get(device, {}).items() if p not in psids
            }
            out[device] = latest_row.encode(
                sids,
                lat.ts[sids],
                lat.val[sids],
                lat.qual[sids],
                status_by_dev.get(k, {}),
                named,
            )
        return out

    def _series_by_device(self) -> tuple[npt.NDArray[np.int64], list[int]]:
        """Series ids grouped by device index (``_sid_dev``): device ``k``'s ids are
        ``order[cuts[k]:cuts[k + 1]]`` (rebuilt with ``_sid_dev``)."""
        sid_dev = self._sid_dev()
        if self._by_dev is None or self._by_dev[2] is not sid_dev:
            order = np.argsort(sid_dev, kind="stable")
            counts = np.bincount(sid_dev[sid_dev >= 0], minlength=len(self._dev_names))
            unnamed = int((sid_dev < 0).sum())  # ids of no series sort first
            cuts = [unnamed, *(unnamed + np.cumsum(counts)).tolist()]
            self._by_dev = (order.astype(np.int64), cuts, sid_dev)
        return self._by_dev[0], self._by_dev[1]

    def _write_all(self, batches: Sequence[Batch], cols: _Columns) -> _NewestUpdate:
        """Insert the rows of every batch (columns built once for the whole call)."""
        db = self._db
        bounds, ts, val, qual = cols.bounds, cols.ts, cols.val, cols.qual
        devs, pts = cols.devices, cols.points
        sid = np.empty(len(pts), dtype=_U32)
        for i in range(len(bounds) - 1):
            a, z = bounds[i], bounds[i + 1]
            if a == z:
                continue
            d0 = devs[a]
            block = batches[i].block if batches[i].columnar else None
            if block is not None and block.device == d0:
                # a block (one device): series ids cached by its points tuple (the same
                # object every poll of the same reads)
                sid[a:z] = self._block_sids(d0, block.points)
                continue
            if devs[a:z].count(d0) == z - a:
                # one device (the collector's batches): one look-up per point; its new series
                # (a device's first write: up to thousands) created with one statement
                by_point = self._psids.get(d0)
                if by_point is None or not all(map(by_point.__contains__, pts[a:z])):
                    by_point = self._new_sids(d0, pts[a:z])
                sid[a:z] = list(map(by_point.__getitem__, pts[a:z]))
                continue
            sids_map = self._sids
            sid[a:z] = [
                sids_map[k] if k in sids_map else self._new_sid(k)
                for k in zip(devs[a:z], pts[a:z], strict=True)
            ]
        statuses = cols.statuses
        status_at = {i: st for i, st in enumerate(statuses) if st} if statuses else {}
        starts = np.array(bounds[:-1], dtype=np.int64)
        firsts = np.minimum.reduceat(ts, starts).tolist()
        lasts = np.maximum.reduceat(ts, starts).tolist()
        dev = self._sid_dev()[sid]
        dev_lo = np.minimum.reduceat(dev, starts).tolist()
        dev_hi = np.maximum.reduceat(dev, starts).tolist()
        dev_names = self._dev_names
        # out-of-order steps inside each batch
        steps = np.concatenate(([0], np.cumsum(ts[1:] < ts[:-1])))
        written = now_ns()
        batch_rows = []
        chunk_rows = []
        spans = self._spans
        span_updates: dict[str, int] = {}
        for i, b in enumerate(batches):
            a, z = bounds[i], bounds[i + 1]
            batch_rows.append((b.source, b.seq, firsts[i], lasts[i], z - a, written))
            one = dev_lo[i] == dev_hi[i]
            devices = [dev_names[dev_lo[i]]] if one else dict.fromkeys(devs[a:z])
            for device in devices:
                if one:
                    idx: Any = slice(a, z)
                    first, last = firsts[i], lasts[i]
                    is_sorted = bool(steps[z - 1] == steps[a])
                    st_rows = (
                        [[j - a, status_at[j]] for j in range(a, z) if j in status_at]
                        if status_at
                        else []
                    )
                    count = z - a
                else:
                    idx = a + np.flatnonzero(
                        np.fromiter((d == device for d in devs[a:z]), dtype=bool, count=z - a)
                    )
                    d_ts = ts[idx]
                    first, last = int(d_ts.min()), int(d_ts.max())
                    is_sorted = bool((d_ts[1:] >= d_ts[:-1]).all())
                    pos = idx.tolist()
                    st_rows = [[j, status_at[p]] for j, p in enumerate(pos) if p in status_at]
                    count = len(pos)
                span = last - first
                if span > max(spans.get(device, -1), span_updates.get(device, -1)):
                    span_updates[device] = span
                chunk_rows.append(
                    (
                        device,
                        first,
                        last,
                        count,
                        b.source,
                        b.seq,
                        int(is_sorted),
                        sid[idx].tobytes(),
                        ts[idx].tobytes(),
                        val[idx].tobytes(),
                        qual[idx].tobytes(),
                        json.dumps(st_rows, ensure_ascii=False) if st_rows else None,
                        series_index(sid[idx]),
                    )
                )
        db.execute("SAVEPOINT batch_rows")
        try:
            db.executemany("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)", batch_rows)
        except sqlite3.IntegrityError:
            db.execute("ROLLBACK TO batch_rows")
            raise BatchConflict(self._conflict(batches)) from None
        db.execute("RELEASE batch_rows")
        db.executemany(_CHUNK_INSERT, chunk_rows)
        if span_updates:
            db.executemany(
                "INSERT INTO devices VALUES (?, ?) ON CONFLICT (device) "
                "DO UPDATE SET max_span = excluded.max_span",
                list(span_updates.items()),
            )
            spans.update(span_updates)
        return self._newest(sid, ts, val, qual, status_at)

    def _block_sids(self, device: str, points: tuple[str, ...]) -> npt.NDArray[np.uint32]:
        """Series ids of a block's points (new series created), cached by the identity of the
        points tuple (cleared when a transaction is undone: its ids may be given again)."""
        got = self._sid_cache.get(id(points))
        if got is not None and got[0] is points and got[1] == device:
            return got[2]
        by_point = self._psids.get(device)
        if by_point is None or not all(map(by_point.__contains__, points)):
            by_point = self._new_sids(device, list(points))
        sids = np.fromiter(map(by_point.__getitem__, points), _U32, len(points))
        if len(self._sid_cache) >= _SID_CACHE_MAX:
            self._sid_cache.clear()
        self._sid_cache[id(points)] = (points, device, sids)
        return sids

    def _sid_dev(self) -> npt.NDArray[np.int64]:
        """Device index of every series id (rebuilt when series were added)."""
        if self._sid_dev_table.shape[0] <= self._max_sid:
            table = np.full(self._max_sid + 1, -1, dtype=np.int64)
            index: dict[str, int] = {}
            names: list[str] = []
            for sid, (device, _) in self._names.items():
                k = index.get(device)
                if k is None:
                    k = index[device] = len(names)
                    names.append(device)
                table[sid] = k
            self._sid_dev_table = table
            self._dev_names = names
        return self._sid_dev_table

    def _conflict(self, batches: Sequence[Batch]) -> str:
        seen: set[tuple[str, int]] = set()
        for b in batches:
            key = (b.source, b.seq)
            exists = self._db.execute(
                "SELECT 1 FROM batches WHERE source = ? AND seq = ?", key
            ).fetchone()
            if exists or key in seen:
                return f"batch {b.source}#{b.seq} is already stored"
            seen.add(key)
        return "a batch is already stored"

    @staticmethod
    def _newest(
        sid: npt.NDArray[np.uint32],
        ts: npt.NDArray[np.int64],
        val: npt.NDArray[np.float64],
        qual: npt.NDArray[np.uint8],
        status_at: dict[int, str],
    ) -> _NewestUpdate:
        """The newest sample of each series of these samples (the last written on equal
        timestamps), as columns: series ids, ts, values, qualities and the non-empty statuses
        by series id (no Python step per sample or per series)."""
        n = int(ts.shape[0])
        if n and bool((sid[1:] > sid[:-1]).all()):
            # one sample per series in series order (a poll of a device): nothing to sort
            sel: npt.NDArray[np.intp] = np.arange(n)
        else:
            order = np.lexsort((np.arange(n), ts, sid))  # by series, then time, write order
            sel = order[np.flatnonzero(np.append(sid[order][1:] != sid[order][:-1], True))]
        sids = sid[sel].astype(np.int64)
        st: dict[int, str] = {}
        if status_at:
            chosen = np.zeros(n, dtype=bool)
            chosen[sel] = True
            st = {int(sid[p]): text for p, text in status_at.items() if chosen[p]}
        return sids, ts[sel], val[sel], qual[sel], st

    def _write_latest(self, touched: dict[str, bytes]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO latest VALUES (?, ?)", touched.items())

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
                if self._db.in_transaction:  # a full disk: SQLite already rolled back
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
        """The newest sample of every point (of one device, or of all), by device and point."""
        sql = "SELECT device, points FROM latest"
        args: tuple[str, ...] = ()
        if device is not None:
            sql += " WHERE device = ?"
            args = (device,)
        with self._lock:
            self._flush_latest()
            rows = self._db.execute(sql + " ORDER BY device", args).fetchall()
            decoded = [(dev, self._latest_row(dev, points)) for dev, points in rows]
            names = self._series_names(
                [int(k) for _, r in decoded if r is not None for k in r.sid.tolist()]
            )
        out: list[Sample] = []
        nan = float("nan")
        for dev, row in decoded:
            if row is None:
                continue
            status = row.status
            items: list[tuple[str, int, float, int, str]] = []
            for k, t, v, q in zip(
                row.sid.tolist(), row.ts.tolist(), row.val.tolist(), row.qual.tolist(), strict=True
            ):
                name = names.get(k)
                if name is not None and name[0] == dev:
                    items.append((name[1], t, v, q, status.get(k, "") if status else ""))
            if row.named:
                have = {it[0] for it in items}
                items += [
                    (p, t, nan if v is None else v, q, st)
                    for p, (t, v, q, st) in row.named.items()
                    if p not in have
                ]
            items.sort(key=itemgetter(0))
            out += [Sample(dev, p, t, v, _QUALITY[q], st) for p, t, v, q, st in items]
        return out

    def _series_names(self, sids: list[int]) -> dict[int, tuple[str, str]]:
        """(device, point) of these series ids; a read-only view loads the series another
        process added since it last looked (ids only grow; committed series never change)."""
        names = self._names
        if self.readonly and any(k not in names for k in sids):
            rows = self._db.execute(
                "SELECT id, device, point FROM series WHERE id > ?",
                (self._max_sid if names else -1,),
            )
            for k, dev, pt in rows:
                names[int(k)] = (str(dev), str(pt))
                self._max_sid = max(self._max_sid, int(k))
        return names

    def series(self) -> list[tuple[str, str]]:
        """Every (device, point) with stored samples, sorted."""
        with self._lock:
            rows = self._db.execute("SELECT device, point FROM series ORDER BY device, point")
            return [(str(d), str(p)) for d, p in rows]

    def newest(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Newest]:
        """The newest stored sample and the newest good sample of each (device, point) of
        ``keys``, read from the chunks (not the ``latest`` table, which may lag a ``kill -9``
        by up to ``latest_interval_s``), imported batches (source ``import:...``) left out
        (once compacted with live ones, older than 10 minutes, they count).
        Walks each device's chunks from the newest start back until no earlier chunk can hold
        a later sample of a wanted series (a series never good reads the device to its start).
        """
        out: dict[tuple[str, str], Newest] = {}
        by_device: dict[str, list[tuple[str, str]]] = {}
        for k in keys:
            by_device.setdefault(k[0], []).append(k)
        with self._lock:
            for device, dkeys in by_device.items():
                out.update(self._newest_of(device, dkeys))
        return out

    def _newest_of(self, device: str, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Newest]:
        db = self._db
        sids = {self._sids[k]: k for k in keys if k in self._sids}
        if self.readonly:
            for k in keys:
                row = db.execute(
                    "SELECT id FROM series WHERE device = ? AND point = ?", k
                ).fetchone()
                if row is not None:
                    sids[int(row[0])] = k
        row = db.execute("SELECT max_span FROM devices WHERE device = ?", (device,)).fetchone()
        if not sids or row is None:
            return {}
        span = int(row[0])
        # per sid: (ts, rowid, pos, value, quality, status) of the newest / newest good
        last: dict[int, tuple[int, int, int, float, int, str]] = {}
        good: dict[int, tuple[int, int, int, float, int, str]] = {}
        wanted = np.array(sorted(sids), dtype=_U32)
        offset, page = 0, 64
        while True:
            rows = db.execute(
                "SELECT rowid, sid, ts, val, qual, status, source, first_ts FROM chunks "
                "WHERE device = ? AND source NOT LIKE 'import:%' "
                "ORDER BY first_ts DESC, rowid DESC LIMIT ? OFFSET ?",
                (device, page, offset),
            ).fetchall()
            if not rows:
                break
            offset += len(rows)
            for rowid, sidb, tsb, valb, qb, status, _, _ in rows:
                sid_arr = np.frombuffer(sidb, dtype=_U32)
                hit = np.flatnonzero(np.isin(sid_arr, wanted))
                if hit.shape[0] == 0:
                    continue
                ts = np.frombuffer(tsb, dtype=_I64)
                val = np.frombuffer(valb, dtype=_F64)
                qual = np.frombuffer(qb, dtype=_U8)
                st = {int(i): str(x) for i, x in json.loads(status)} if status else {}
                for i in hit.tolist():
                    cand = (int(ts[i]), int(rowid), i, float(val[i]), int(qual[i]), st.get(i, ""))
                    s_id = int(sid_arr[i])
                    cur = last.get(s_id)
                    if cur is None or cand[:3] > cur[:3]:
                        last[s_id] = cand
                    if cand[4] == Quality.GOOD:
                        cur = good.get(s_id)
                        if cur is None or cand[:3] > cur[:3]:
                            good[s_id] = cand
            bound = int(rows[-1][7])  # every chunk still to read starts at or before this
            if all(s in good and good[s][0] > bound + span for s in sids):
                break
            page = min(page * 4, 4096)

        def sample(k: tuple[str, str], c: tuple[int, int, int, float, int, str]) -> Sample:
            return Sample(k[0], k[1], c[0], c[3], Quality(c[4]), c[5])

        return {
            sids[s]: Newest(sample(sids[s], c), sample(sids[s], good[s]) if s in good else None)
            for s, c in last.items()
        }

    def read(self, device: str, point: str, start: int, end: int, *, prior: bool = False) -> Series:
        """Samples with ``start <= ts < end`` in time order (stable for equal timestamps:
        storage order); with ``prior`` the last sample before ``start`` is prepended."""
        with self._lock:
            db = self._db
            row = db.execute(
                "SELECT s.id, d.max_span FROM series s JOIN devices d ON d.device = s.device "
                "WHERE s.device = ? AND s.point = ?",
                (device, point),
            ).fetchone()
            if row is None:
                return Series.empty()
            sid, span = int(row[0]), int(row[1])
            where = (device, start - span, end, start)
            series = self._read_indexed(sid, where) if self._has_sidx else None
            if series is None:
                rows = db.execute(
                    "SELECT sid, ts, val, qual, sorted FROM chunks WHERE device = ? "
                    "AND first_ts >= ? AND first_ts < ? AND last_ts >= ? ORDER BY first_ts, rowid",
                    where,
                ).fetchall()
                series = _assemble(rows, sid)
            before: tuple[int, float, int] | None = None
            if prior:
                before = self._prior(device, sid, span, start, series)
        ts, val, q = series
        lo = int(np.searchsorted(ts, start, side="left"))
        hi = int(np.searchsorted(ts, end, side="left"))
        if before is not None:
            return Series(
                np.concatenate((np.array([before[0]], dtype=np.int64), ts[lo:hi])),
                np.concatenate((np.array([before[1]], dtype=np.float64), val[lo:hi])),
                np.concatenate((np.array([before[2]], dtype=np.uint8), q[lo:hi])),
            )
        return Series(ts[lo:hi], val[lo:hi], q[lo:hi])

    def _read_indexed(self, sid: int, where: tuple[str, int, int, int]) -> Series | None:
        """The samples of series ``sid`` in the chunks selected by ``where`` through the
        chunks' series indexes; None when a selected chunk has no index (an old row)."""
        db = self._db
        idx_rows = db.execute(
            "SELECT rowid, sidx FROM chunks WHERE device = ? "
            "AND first_ts >= ? AND first_ts < ? AND last_ts >= ? ORDER BY first_ts, rowid",
            where,
        ).fetchall()
        if not idx_rows:
            return Series.empty()
        blobs = [r[1] for r in idx_rows]
        if None in blobs:
            return None
        quads = np.frombuffer(b"".join(blobs), dtype=_U32).reshape(-1, 4)
        per_row = np.fromiter((len(b) // 16 for b in blobs), dtype=np.int64, count=len(blobs))
        hit = np.flatnonzero(quads[:, 0] == sid)
        if hit.shape[0] == 0:
            return Series.empty()
        row_of = np.repeat(np.arange(len(blobs), dtype=np.int64), per_row)[hit]
        first = quads[hit, 1].astype(np.int64)
        width = quads[hit, 2].astype(np.int64) - first
        mixed = bool((quads[hit, 3] != width).any())  # other series inside some ranges
        rowids = [int(idx_rows[i][0]) for i in row_of.tolist()]
        got_all: list[tuple[int, bytes | None, bytes, bytes, bytes]] = []
        f_list, w_list = first.tolist(), width.tolist()
        sid_col = "substr(c.sid, w.a * 4 + 1, w.n * 4)" if mixed else "NULL"
        for lo in range(0, len(rowids), _RANGES_PER_QUERY):
            part = range(lo, min(lo + _RANGES_PER_QUERY, len(rowids)))
            values = ", ".join(["(?, ?, ?, ?)"] * len(part))
            args: list[int] = []
            for k in part:
                args += (k, rowids[k], f_list[k], w_list[k])
            # no ORDER BY (it would make SQLite sort the blobs): ordered by k below
            got_all += db.execute(
                f"WITH w(k, r, a, n) AS (VALUES {values}) "
                f"SELECT w.k, {sid_col}, substr(c.ts, w.a * 8 + 1, w.n * 8), "
                "substr(c.val, w.a * 8 + 1, w.n * 8), substr(c.qual, w.a + 1, w.n) "
                "FROM w JOIN chunks c ON c.rowid = w.r",
                args,
            ).fetchall()
        got_all.sort(key=_first)
        # concatenate copies: writable arrays owning their memory
        ts = np.concatenate([np.frombuffer(r[2], dtype=_I64) for r in got_all])
        val = np.concatenate([np.frombuffer(r[3], dtype=_F64) for r in got_all])
        q = np.concatenate([np.frombuffer(r[4], dtype=_U8) for r in got_all])
        if mixed:
            mask = np.concatenate([np.frombuffer(r[1] or b"", dtype=_U32) for r in got_all]) == sid
            ts, val, q = ts[mask], val[mask], q[mask]
        if ts.shape[0] > 1 and not bool((ts[1:] >= ts[:-1]).all()):
            order = np.argsort(ts, kind="stable")
            ts, val, q = ts[order], val[order], q[order]
        return Series(ts, val, q)

    def _prior(
        self, device: str, sid: int, span: int, start: int, overlapping: Series
    ) -> tuple[int, float, int] | None:
        """The last sample before ``start``: from the overlapping chunks, or walking back
        through earlier chunks until no earlier chunk can hold a later one."""
        ts, val, q = overlapping
        best: tuple[int, float, int] | None = None
        lo = int(np.searchsorted(ts, start, side="left"))
        if lo > 0:
            best = (int(ts[lo - 1]), float(val[lo - 1]), int(q[lo - 1]))
        bound = start  # every chunk starting before this may hold a sample before start
        page = 64
        while True:
            if best is not None and bound + span <= best[0]:
                return best  # no earlier chunk ends after the candidate
            rows = self._db.execute(
                "SELECT sid, ts, val, qual, sorted, first_ts FROM chunks WHERE device = ? "
                "AND first_ts < ? ORDER BY first_ts DESC, rowid DESC LIMIT ?",
                (device, bound, page),
            ).fetchall()
            if not rows:
                return best
            got = _assemble([r[:5] for r in reversed(rows)], sid)
            n = int(np.searchsorted(got.ts, start, side="left"))
            if n:
                i = n - 1
                cand = (int(got.ts[i]), float(got.values[i]), int(got.quality[i]))
                if best is None or cand[0] > best[0]:
                    best = cand
            bound = int(rows[-1][5])
            page = min(page * 4, 4096)

    # -- compaction ---------------------------------------------------------------------------

    def compact(
        self,
        before_ns: int,
        *,
        small: int = 2000,
        max_samples: int = 50_000,
        max_span_ns: int = 3600 * 10**9,
        min_rows: int = 8,
    ) -> int:
        """Merge small chunks (fewer than ``small`` samples) that end before ``before_ns`` into
        chunks of at most ``max_samples`` samples spanning at most ``max_span_ns``, per device,
        so that a long recording at a short flush interval reads as few large rows. Samples,
        their order for equal timestamps, statuses, ``latest`` and the ``batches`` records are
        unchanged; merged chunks no longer name their batch (``batch()`` then returns None for
        those batches) and hold their samples grouped by series, each series in time order (so a
        read of one point fetches one contiguous range of a merged chunk). Returns the number
        of chunk rows removed."""
        if self.readonly:
            raise StoreError("store opened read-only")
        removed = 0
        with self._lock:
            devices = [
                str(r[0])
                for r in self._db.execute(
                    "SELECT device FROM chunks WHERE last_ts < ? AND count < ? AND seq > 0 "
                    "GROUP BY device HAVING COUNT(*) >= ?",
                    (before_ns, small, min_rows),
                )
            ]
            for device in devices:
                removed += self._compact_device(
                    device, before_ns, small, max_samples, max_span_ns, min_rows
                )
        return removed

    def _compact_device(
        self,
        device: str,
        before_ns: int,
        small: int,
        max_samples: int,
        max_span_ns: int,
        min_rows: int,
    ) -> int:
        db = self._db
        rows = db.execute(
            "SELECT rowid, first_ts, last_ts, count, sid, ts, val, qual, status FROM chunks "
            "WHERE device = ? AND last_ts < ? AND count < ? AND seq > 0 "
            "ORDER BY first_ts, rowid LIMIT 200000",
            (device, before_ns, small),
        ).fetchall()
        groups: list[list[Any]] = []
        cur: list[Any] = []
        n = 0
        for r in rows:
            if cur and (n + r[3] > max_samples or r[2] - cur[0][1] > max_span_ns):
                groups.append(cur)
                cur, n = [], 0
            cur.append(r)
            n += r[3]
        if cur:
            groups.append(cur)
        groups = [g for g in groups if len(g) >= min(min_rows, 2)]
        if not groups:
            return 0
        removed = 0
        db.execute("BEGIN IMMEDIATE")
        try:
            span = self._spans.get(device, 0)
            for g in groups:
                sid = np.concatenate([np.frombuffer(r[4], dtype=_U32) for r in g])
                ts = np.concatenate([np.frombuffer(r[5], dtype=_I64) for r in g])
                val = np.concatenate([np.frombuffer(r[6], dtype=_F64) for r in g])
                qual = np.concatenate([np.frombuffer(r[7], dtype=_U8) for r in g])
                statuses: dict[int, str] = {}
                offset = 0
                for r in g:
                    if r[8]:
                        for i, st in json.loads(r[8]):
                            statuses[offset + int(i)] = str(st)
                    offset += r[3]
                # grouped by series, each in time order (storage order kept for equal
                # timestamps): a read of one series then fetches one contiguous range
                by_time = np.argsort(ts, kind="stable")
                order = by_time[np.argsort(sid[by_time], kind="stable")]
                sid, ts, val, qual = sid[order], ts[order], val[order], qual[order]
                in_time = bool((ts[1:] >= ts[:-1]).all())
                where = {int(old): new for new, old in enumerate(order.tolist())}
                st_rows = sorted([where[i], st] for i, st in statuses.items())
                first, last = int(ts.min()), int(ts.max())
                span = max(span, last - first)
                db.execute(
                    _CHUNK_INSERT,
                    (
                        device,
                        first,
                        last,
                        int(ts.shape[0]),
                        "",
                        0,
                        int(in_time),
                        sid.tobytes(),
                        ts.tobytes(),
                        val.tobytes(),
                        qual.tobytes(),
                        json.dumps(st_rows, ensure_ascii=False) if st_rows else None,
                        series_index(sid),
                    ),
                )
                db.executemany("DELETE FROM chunks WHERE rowid = ?", [(r[0],) for r in g])
                removed += len(g) - 1
            if span > self._spans.get(device, -1):
                db.execute(
                    "INSERT INTO devices VALUES (?, ?) ON CONFLICT (device) "
                    "DO UPDATE SET max_span = excluded.max_span",
                    (device, span),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._spans[device] = max(span, self._spans.get(device, 0))
        return removed

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
            rows = self._db.execute("SELECT DISTINCT source FROM batches ORDER BY source")
            return [str(r[0]) for r in rows]

    def source_spans(self) -> list[tuple[str, int, int]]:
        """(source, first_ts of its first batch, last_ts of its last batch) of every source:
        a few primary-key look-ups per source, however many batches are stored."""
        out: list[tuple[str, int, int]] = []
        with self._lock:
            row = self._db.execute("SELECT MIN(source) FROM batches").fetchone()
            while row is not None and row[0] is not None:
                src = str(row[0])
                first = self._db.execute(
                    "SELECT first_ts FROM batches WHERE source = ? ORDER BY seq LIMIT 1", (src,)
                ).fetchone()
                last = self._db.execute(
                    "SELECT last_ts FROM batches WHERE source = ? ORDER BY seq DESC LIMIT 1",
                    (src,),
                ).fetchone()
                out.append((src, int(first[0]), int(last[0])))
                row = self._db.execute(
                    "SELECT MIN(source) FROM batches WHERE source > ?", (src,)
                ).fetchone()
        return out

    def batch(self, source: str, seq: int) -> Batch | None:
        """One stored batch, its samples in the order they were written."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sid, ts, val, qual, status FROM chunks "
                "WHERE source = ? AND seq = ? ORDER BY rowid",
                (source, seq),
            ).fetchall()
            names = {
                int(i): (str(d), str(p))
                for i, d, p in self._db.execute("SELECT id, device, point FROM series")
            }
        if not rows:
            return None
        samples: list[Sample] = []
        for sidb, tsb, valb, qb, st in rows:
            statuses = {int(i): str(x) for i, x in json.loads(st)} if st else {}
            for i, (s_id, t, v, q) in enumerate(
                zip(
                    np.frombuffer(sidb, dtype=_U32).tolist(),
                    np.frombuffer(tsb, dtype=_I64).tolist(),
                    np.frombuffer(valb, dtype=_F64).tolist(),
                    np.frombuffer(qb, dtype=_U8).tolist(),
                    strict=True,
                )
            ):
                dev, pt = names[s_id]
                samples.append(Sample(dev, pt, t, v, Quality(q), statuses.get(i, "")))
        return Batch(source, seq, tuple(samples))

    def batches_for(
        self, source: str, start: int | None = None, end: int | None = None
    ) -> Iterator[Batch]:
        """Stored batches of ``source`` overlapping [start, end), in sequence order."""
        for rec in self.batch_records(source, start, end):
            b = self.batch(rec[0], rec[1])
            if b is not None:
                yield b

    # -- retention (edge.store.retention drives these) -----------------------------------------

    def raw_horizon(self) -> int:
        """Every stored sample at or after this time is still here; older ones may have been
        removed by a retention pass (their samples are in the evidence ledger). 0 when none."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'raw_horizon'").fetchone()
        return int(row[0]) if row is not None else 0

    def retention_totals(self) -> dict[str, int]:
        """Counters of the retention passes so far (chunk rows and samples removed, passes)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM meta WHERE key LIKE 'retention_%'"
            ).fetchall()
        return {str(k): int(v) for k, v in rows}

    def chunks_before(self, before_ns: int, limit: int = 2000) -> list[tuple[Any, ...]]:
        """Up to ``limit`` chunk rows ending before ``before_ns``, oldest first: (rowid, device,
        first_ts, last_ts, count, sid, ts, val, qual)."""
        with self._lock:
            return self._db.execute(
                "SELECT rowid, device, first_ts, last_ts, count, sid, ts, val, qual FROM chunks "
                "WHERE last_ts < ? ORDER BY last_ts, rowid LIMIT ?",
                (before_ns, limit),
            ).fetchall()

    def oldest_chunk_ts(self) -> int | None:
        """The first timestamp of the oldest chunk row still stored (None when none)."""
        with self._lock:
            row = self._db.execute("SELECT MIN(first_ts) FROM chunks").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def count_before(self, before_ns: int) -> tuple[int, int]:
        """(chunk rows, samples) ending before ``before_ns``."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(count), 0) FROM chunks WHERE last_ts < ?",
                (before_ns,),
            ).fetchone()
        return int(row[0]), int(row[1])

    def _ensure_minutes(self) -> None:
        self._db.execute(_MINUTES_SCHEMA)

    def drop_chunks(
        self, rowids: Sequence[int], minutes: Sequence[tuple[Any, ...]], horizon: int
    ) -> int:
        """One transaction: merge ``minutes`` (sid, minute, n, good, min, max, sum, last_ts,
        last) into the per-minute aggregates, delete the chunk rows ``rowids`` and raise the raw
        horizon to ``horizon``. Returns the samples removed."""
        if self.readonly:
            raise StoreError("store opened read-only")
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                self._ensure_minutes()
                db.executemany(_MINUTES_UPSERT, minutes)
                removed = 0
                for lo in range(0, len(rowids), 500):
                    part = list(rowids[lo : lo + 500])
                    marks = ",".join("?" * len(part))
                    row = db.execute(
                        f"SELECT COALESCE(SUM(count), 0) FROM chunks WHERE rowid IN ({marks})",
                        part,
                    ).fetchone()
                    removed += int(row[0])
                    db.execute(f"DELETE FROM chunks WHERE rowid IN ({marks})", part)
                db.execute(
                    "INSERT INTO meta VALUES ('raw_horizon', ?) ON CONFLICT (key) DO UPDATE "
                    "SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                    (str(horizon),),
                )
                for key, add in (
                    ("retention_chunks_removed", len(rowids)),
                    ("retention_samples_removed", removed),
                ):
                    db.execute(
                        "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                        "SET value = CAST(value AS INTEGER) + CAST(excluded.value AS INTEGER)",
                        (key, str(add)),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return removed

    def series_id(self, device: str, point: str) -> int | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id FROM series WHERE device = ? AND point = ?", (device, point)
            ).fetchone()
        return int(row[0]) if row is not None else None

    def minutes(self, device: str, point: str, start: int, end: int) -> list[tuple[Any, ...]]:
        """Per-minute aggregates of one point with ``start <= minute start < end``, in time
        order: (minute start ns, n, good, min, max, sum, last_ts, last); [] when none."""
        sid = self.series_id(device, point)
        if sid is None:
            return []
        m0 = start // _MINUTE_NS
        m1 = -(-end // _MINUTE_NS)
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT minute, n, good, vmin, vmax, vsum, last_ts, last FROM minutes "
                    "WHERE sid = ? AND minute >= ? AND minute < ? ORDER BY minute",
                    (sid, m0, m1),
                ).fetchall()
            except sqlite3.OperationalError:  # no retention pass yet: no table
                return []
        return [(int(r[0]) * _MINUTE_NS, *r[1:]) for r in rows if start <= r[0] * _MINUTE_NS < end]

    def close(self) -> None:
        """Write held-back latest values and close (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._flush_latest()
            finally:
                self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def series_index(sids: npt.NDArray[np.uint32]) -> bytes:
    """The series index of a chunk's ``sid`` column: for each series (ascending id) its id,
    first position, end position (last + 1) and count, as little-endian uint32."""
    n = int(sids.shape[0])
    if n == 0:
        return b""
    s0 = sids[0]
    if bool((sids == s0).all()):
        return np.array([s0, 0, n, n], dtype=_U32).tobytes()
    if bool((sids[1:] > sids[:-1]).all()):
        # one sample per series, ascending (a poll of a device): nothing to sort
        pos = np.arange(n, dtype=_U32)
        return np.stack((sids, pos, pos + 1, np.ones(n, dtype=_U32)), axis=1).astype(_U32).tobytes()
    order = np.argsort(sids, kind="stable")
    ordered = sids[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    counts = np.diff(np.concatenate((starts, [n])))
    first = order[starts]
    last = order[starts + counts - 1]
    quads = np.stack((ordered[starts], first, last + 1, counts), axis=1)
    return np.ascontiguousarray(quads, dtype=_U32).tobytes()


def _assemble(rows: list[Any], sid: int) -> Series:
    """The samples of series ``sid`` in chunk rows (sid, ts, val, qual, sorted), in time order
    (stable: storage order for equal timestamps)."""
    ts_parts: list[npt.NDArray[np.int64]] = []
    val_parts: list[npt.NDArray[np.float64]] = []
    q_parts: list[npt.NDArray[np.uint8]] = []
    for sidb, tsb, valb, qb, _sorted in rows:
        sids = np.frombuffer(sidb, dtype=_U32)
        ts = np.frombuffer(tsb, dtype=_I64)
        val = np.frombuffer(valb, dtype=_F64)
        q = np.frombuffer(qb, dtype=_U8)
        mask = sids == sid
        if mask.all():
            ts_parts.append(ts)
            val_parts.append(val)
            q_parts.append(q)
        elif mask.any():
            ts_parts.append(ts[mask])
            val_parts.append(val[mask])
            q_parts.append(q[mask])
    if not ts_parts:
        return Series.empty()
    ts = np.concatenate(ts_parts)  # concatenate copies: writable, owns its memory
    val = np.concatenate(val_parts)
    q = np.concatenate(q_parts)
    if ts.shape[0] > 1 and not bool((ts[1:] >= ts[:-1]).all()):
        order = np.argsort(ts, kind="stable")
        ts, val, q = ts[order], val[order], q[order]
    return Series(ts, val, q)
