"""The durable local outbox of the InfluxDB store (SQLite, WAL).

A batch is acknowledged once its line protocol is committed here; the sender deletes it only when
InfluxDB has confirmed it. The same file keeps what the gateway needs while InfluxDB is away:
the per-source sequence numbers, the latest sample of every point, device health, the
quarantine of batches InfluxDB refused, and counters (sent, dropped, quarantined).

``synchronous=FULL`` by default: every commit is fsynced, so an acknowledged batch survives a
power cut of the gateway, not only a crash of the process (WAL with NORMAL only guarantees the
latter). The writer commits once per ``write_batches`` call (a few times a second), so the cost
is a few fsyncs per second. ``normal`` is available for slow storage (SD cards).

One connection guarded by a lock serves the writer thread, the sender thread and readers; the
lock is never held during network I/O. Pending counts live in the ``counters`` table and change
in the same transactions as the rows, so another process writing the same outbox (e.g.
``shopfloor kpi import`` next to the running collector) keeps them right; only the process
holding ``<outbox>.lock`` sends.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL, seq INTEGER NOT NULL, n INTEGER NOT NULL,
    first_ts INTEGER NOT NULL, last_ts INTEGER NOT NULL, created_ns INTEGER NOT NULL,
    lines BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine(
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL, seq INTEGER NOT NULL, n INTEGER NOT NULL,
    first_ts INTEGER NOT NULL, last_ts INTEGER NOT NULL, created_ns INTEGER NOT NULL,
    quarantined_ns INTEGER NOT NULL, status INTEGER, body TEXT NOT NULL, lines BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sources(source TEXT PRIMARY KEY, last_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS latest(
    device TEXT NOT NULL, point TEXT NOT NULL, ts INTEGER NOT NULL, value REAL,
    quality INTEGER NOT NULL, status TEXT NOT NULL, PRIMARY KEY(device, point)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS health(device TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

COUNTERS = (
    "sent_samples",
    "sent_batches",
    "dropped_samples",
    "dropped_batches",
    "quarantined_samples",
    "quarantined_batches",
)

DropPolicy = Literal["drop_oldest", "drop_newest"]


class OutboxError(RuntimeError):
    """The outbox file cannot be used (not an outbox, newer schema, unreadable)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One batch waiting in the outbox, encoded as line protocol."""

    source: str
    seq: int
    n: int
    first_ts: int
    last_ts: int
    lines: bytes


@dataclass(frozen=True, slots=True)
class Row:
    """An outbox row handed to the sender."""

    id: int
    source: str
    seq: int
    n: int
    first_ts: int
    last_ts: int
    created_ns: int
    lines: bytes


@dataclass(frozen=True, slots=True)
class Quarantined:
    id: int
    source: str
    seq: int
    n: int
    first_ts: int
    last_ts: int
    quarantined_ns: int
    status: int | None
    body: str


LatestRow = tuple[str, str, int, float, int, str]
"""(device, point, ts, value, quality, status)"""


class Outbox:
    def __init__(
        self,
        path: Path,
        *,
        max_samples: int,
        drop: DropPolicy = "drop_oldest",
        synchronous: Literal["full", "normal"] = "full",
    ) -> None:
        if max_samples < 1:
            raise ValueError("max_samples must be at least 1")
        self.path = path
        self.max_samples = max_samples
        self.drop = drop
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(path), check_same_thread=False, isolation_level=None, timeout=30.0
            )
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"cannot open the outbox {path}: {exc}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.executescript(_SCHEMA)
            self._check_version()
            self._db.execute("BEGIN IMMEDIATE")
            n, b = self._db.execute("SELECT COALESCE(SUM(n), 0), COUNT(*) FROM outbox").fetchone()
            self._db.executemany(
                "INSERT INTO counters(name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                [("pending_samples", n), ("pending_batches", b)],
            )
            self._db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise OutboxError(f"{path} is not a usable outbox: {exc}") from None
        self._inflight_max = 0
        self._closed = False
        self._lock_file: IO[bytes] | None = None

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO meta(key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
            )
        elif int(row[0]) > SCHEMA_VERSION:
            raise OutboxError(
                f"{self.path} has outbox schema {row[0]}, newer than this version "
                f"({SCHEMA_VERSION}); upgrade shopfloor"
            )

    # ---- writer side -------------------------------------------------------------------

    def append(
        self,
        entries: Sequence[Entry],
        seqs: dict[str, int],
        latest: Iterable[LatestRow],
    ) -> tuple[int, int]:
        """Commit ``entries`` (in order), the sources' new last sequence numbers and the latest
        samples in one transaction. Applies the drop policy when the outbox would exceed
        ``max_samples``; returns (samples dropped, batches dropped) by this call."""
        now = time.time_ns()
        with self._lock:
            self._ensure_open()
            incoming = sum(e.n for e in entries)
            keep: Sequence[Entry] = entries
            dropped_n = dropped_b = 0
            try:
                self._db.execute("BEGIN IMMEDIATE")
                pending = self._pending_now()[0]
                over = pending + incoming - self.max_samples
                if over > 0 and self.drop == "drop_oldest":
                    freed_n, freed_b = self._drop_oldest(over)
                    dropped_n += freed_n
                    dropped_b += freed_b
                    over -= freed_n
                if over > 0:
                    # drop_newest, or drop_oldest when even the new entries alone do not fit
                    keep_list: list[Entry] = []
                    room = self.max_samples - (pending - dropped_n)
                    ordered = entries if self.drop == "drop_newest" else list(reversed(entries))
                    for e in ordered:
                        if e.n <= room:
                            keep_list.append(e)
                            room -= e.n
                        else:
                            dropped_n += e.n
                            dropped_b += 1
                    if self.drop == "drop_oldest":
                        keep_list.reverse()
                    keep = keep_list
                self._db.executemany(
                    "INSERT INTO outbox(source, seq, n, first_ts, last_ts, created_ns, lines) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(e.source, e.seq, e.n, e.first_ts, e.last_ts, now, e.lines) for e in keep],
                )
                self._db.executemany(
                    "INSERT INTO sources(source, last_seq) VALUES (?, ?) "
                    "ON CONFLICT(source) DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)",
                    list(seqs.items()),
                )
                self._db.executemany(
                    "INSERT INTO latest(device, point, ts, value, quality, status) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(device, point) DO UPDATE SET "
                    "ts = excluded.ts, value = excluded.value, quality = excluded.quality, "
                    "status = excluded.status WHERE excluded.ts >= latest.ts",
                    list(latest),
                )
                kept_n = sum(e.n for e in keep)
                self._bump(
                    {
                        "dropped_samples": dropped_n,
                        "dropped_batches": dropped_b,
                        "pending_samples": kept_n - (dropped_n - (incoming - kept_n)),
                        "pending_batches": len(keep) - (dropped_b - (len(entries) - len(keep))),
                    }
                )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            return dropped_n, dropped_b

    def _pending_now(self) -> tuple[int, int]:
        rows = dict(
            self._db.execute(
                "SELECT name, value FROM counters "
                "WHERE name IN ('pending_samples', 'pending_batches')"
            ).fetchall()
        )
        return int(rows.get("pending_samples", 0)), int(rows.get("pending_batches", 0))

    def _drop_oldest(self, need: int) -> tuple[int, int]:
        """Delete the oldest rows not being sent until ``need`` samples are freed."""
        freed_n = freed_b = 0
        last_id = None
        cur = self._db.execute(
            "SELECT id, n FROM outbox WHERE id > ? ORDER BY id", (self._inflight_max,)
        )
        for row_id, n in cur:
            freed_n += n
            freed_b += 1
            last_id = row_id
            if freed_n >= need:
                break
        cur.close()
        if last_id is not None:
            self._db.execute(
                "DELETE FROM outbox WHERE id > ? AND id <= ?", (self._inflight_max, last_id)
            )
        return freed_n, freed_b

    def _bump(self, deltas: dict[str, int]) -> None:
        self._db.executemany(
            "INSERT INTO counters(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            [(k, v) for k, v in deltas.items() if v],
        )

    def write_health(self, records: Iterable[tuple[str, dict[str, Any]]]) -> None:
        with self._lock:
            self._ensure_open()
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO health(device, record) VALUES (?, ?) "
                    "ON CONFLICT(device) DO UPDATE SET record = excluded.record",
                    [(d, json.dumps(r, sort_keys=True)) for d, r in records],
                )

    # ---- sender side -------------------------------------------------------------------

    def peek(self, max_samples: int) -> list[Row]:
        """The oldest rows, up to ``max_samples`` samples (at least one row when any); they are
        marked in flight so the drop policy leaves them alone until ack/quarantine/release."""
        with self._lock:
            self._ensure_open()
            rows: list[Row] = []
            total = 0
            cur = self._db.execute(
                "SELECT id, source, seq, n, first_ts, last_ts, created_ns, lines "
                "FROM outbox ORDER BY id"
            )
            for r in cur:
                if rows and total + r[3] > max_samples:
                    break
                rows.append(Row(*r))
                total += r[3]
                if total >= max_samples:
                    break
            cur.close()
            self._inflight_max = rows[-1].id if rows else 0
            return rows

    def release(self) -> None:
        with self._lock:
            self._inflight_max = 0

    def ack(self, rows: Sequence[Row]) -> None:
        """InfluxDB confirmed these rows: delete them."""
        with self._lock:
            self._ensure_open()
            n = sum(r.n for r in rows)
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("DELETE FROM outbox WHERE id = ?", [(r.id,) for r in rows])
                self._bump(
                    {
                        "sent_samples": n,
                        "sent_batches": len(rows),
                        "pending_samples": -n,
                        "pending_batches": -len(rows),
                    }
                )
            if rows and rows[-1].id >= self._inflight_max:
                self._inflight_max = 0

    def quarantine(self, row: Row, status: int | None, body: str) -> None:
        """InfluxDB refused this row for good: move it to the quarantine table with the reason."""
        with self._lock:
            self._ensure_open()
            with self._db:
                self._db.execute("BEGIN")
                self._db.execute(
                    "INSERT INTO quarantine(source, seq, n, first_ts, last_ts, created_ns, "
                    "quarantined_ns, status, body, lines) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        row.source,
                        row.seq,
                        row.n,
                        row.first_ts,
                        row.last_ts,
                        row.created_ns,
                        time.time_ns(),
                        status,
                        body,
                        row.lines,
                    ),
                )
                self._db.execute("DELETE FROM outbox WHERE id = ?", (row.id,))
                self._bump(
                    {
                        "quarantined_samples": row.n,
                        "quarantined_batches": 1,
                        "pending_samples": -row.n,
                        "pending_batches": -1,
                    }
                )
            if row.id >= self._inflight_max:
                self._inflight_max = 0

    def requeue(self, ids: Sequence[int] | None = None) -> int:
        """Move quarantined batches (all, or those ``ids``) back to the end of the outbox, e.g.
        after fixing a field type conflict; returns how many moved. Not counted as drops."""
        with self._lock:
            self._ensure_open()
            sql = "SELECT id, source, seq, n, first_ts, last_ts, created_ns, lines FROM quarantine"
            if ids is None:
                rows = self._db.execute(sql + " ORDER BY id").fetchall()
            else:
                rows = [
                    r for i in ids for r in self._db.execute(sql + " WHERE id = ?", (i,)).fetchall()
                ]
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO outbox(source, seq, n, first_ts, last_ts, created_ns, lines) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [r[1:] for r in rows],
                )
                self._db.executemany("DELETE FROM quarantine WHERE id = ?", [(r[0],) for r in rows])
                self._bump(
                    {"pending_samples": sum(r[3] for r in rows), "pending_batches": len(rows)}
                )
            return len(rows)

    # ---- reads -------------------------------------------------------------------------

    def pending(self) -> tuple[int, int]:
        """(samples, batches) waiting for InfluxDB."""
        with self._lock:
            self._ensure_open()
            return self._pending_now()

    def oldest_created_ns(self) -> int | None:
        with self._lock:
            self._ensure_open()
            row = self._db.execute("SELECT created_ns FROM outbox ORDER BY id LIMIT 1").fetchone()
            return int(row[0]) if row else None

    def counters(self) -> dict[str, int]:
        with self._lock:
            self._ensure_open()
            found = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        return {k: int(found.get(k, 0)) for k in COUNTERS}

    def last_seq(self, source: str) -> int:
        with self._lock:
            self._ensure_open()
            row = self._db.execute(
                "SELECT last_seq FROM sources WHERE source = ?", (source,)
            ).fetchone()
            return int(row[0]) if row else 0

    def latest(self, device: str | None = None) -> list[LatestRow]:
        with self._lock:
            self._ensure_open()
            sql = "SELECT device, point, ts, value, quality, status FROM latest"
            if device is None:
                rows = self._db.execute(sql + " ORDER BY device, point").fetchall()
            else:
                rows = self._db.execute(
                    sql + " WHERE device = ? ORDER BY point", (device,)
                ).fetchall()
        return [
            (d, p, int(ts), float("nan") if v is None else float(v), int(q), s)
            for d, p, ts, v, q, s in rows
        ]

    def health(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            self._ensure_open()
            rows = self._db.execute("SELECT device, record FROM health ORDER BY device").fetchall()
        return [(d, json.loads(r)) for d, r in rows]

    def quarantined(self) -> list[Quarantined]:
        with self._lock:
            self._ensure_open()
            rows = self._db.execute(
                "SELECT id, source, seq, n, first_ts, last_ts, quarantined_ns, status, body "
                "FROM quarantine ORDER BY id"
            ).fetchall()
        return [Quarantined(*r) for r in rows]

    def quarantined_lines(self, qid: int) -> bytes | None:
        """The line protocol of quarantined batch ``qid`` (None when there is no such batch)."""
        with self._lock:
            self._ensure_open()
            row = self._db.execute("SELECT lines FROM quarantine WHERE id = ?", (qid,)).fetchone()
        return bytes(row[0]) if row else None

    def _ensure_open(self) -> None:
        if self._closed:
            raise OutboxError(f"the outbox {self.path} is closed")

    def try_lock_sender(self) -> bool:
        """Take the right to send this outbox (an exclusive lock on ``<outbox>.lock``). False when
        another process (the running collector) holds it: then it sends what this one writes."""
        if self._lock_file is not None:
            return True
        try:
            f = open(self.path.with_name(self.path.name + ".lock"), "ab")  # noqa: SIM115
        except OSError:
            return True  # no place for the lock file: act alone, as a single collector does
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            return False
        self._lock_file = f
        return True

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()
            if self._lock_file is not None:
                self._lock_file.close()  # releases the flock
                self._lock_file = None
