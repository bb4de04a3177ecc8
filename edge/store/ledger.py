"""The evidence ledger: an append-only RFC 6962 Merkle log of stored batches, in SQLite.

Every acknowledged batch becomes one leaf whose bytes are the canonical batch record
(``metrics.evidence.canonical.batch_record``); the batch's canonical sample bytes (``sfs1``,
21 bytes a sample plus the series names, zlib level 1 unless ``compress=False``) are kept
beside it so a bundle can carry them. Special leaves record the configuration
in force (``config``: its canonical content, :mod:`metrics.evidence.configlog`), imported files
(``import``: name, SHA-256 and the batches they became), formula versions (``formula``), key
rotations (``key_rotation``), clock-sync state (``clock``) and gaps (``gap``: queue drops,
restarts, sequence gaps).

Appends store every completed perfect subtree hash (table ``nodes``), so an append costs
O(log n) hashes and a root or proof of any past size needs only O(log n) lookups. One SQLite
transaction per append group: after a crash the log holds either all of a group or none of it.
Checkpoints (C2SP signed notes) are kept in ``checkpoints`` with any witness cosignatures.

Off the ingest path (``background=True``, what the collector uses): :meth:`Ledger.stored` only
hands the acknowledged batches to the ledger's own thread (``shopfloor-ledger``) through a
bounded FIFO (``max_pending_samples``); the thread appends everything pending in one
transaction (larger groups, fewer fsyncs), in hand-off order. A writer finding the hand-off full
waits for room at most ``handoff_timeout_s``, then drops that hand-off and counts it
(:class:`HandoffStats`): the next batch of the source is logged after a ``seq_gap`` leaf, as
after a crash between the store's acknowledgement and the append (batches handed off but not yet
appended are lost with the process; the next run logs the jump as a ``seq_gap`` leaf).
Special leaves and checkpoints wait until what was handed off before them is appended, so the
log order stays the acknowledgement order; :meth:`Ledger.close` appends everything pending.
In background mode the stored copy of a batch's samples is written uncompressed and
compressed later by the ledger thread once no hand-off arrived for ``compress_idle_s``
(zlib is the largest single cost of an append): at sustained peak rates the copies stay raw
until the rate drops; a copy still raw at close or at a crash stays raw (it reads the same).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import logging
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.store.base import Batch
from metrics.evidence import canonical, configlog, merkle
from metrics.evidence.note import (
    Checkpoint,
    Signer,
    Verifier,
    merge_signatures,
    open_checkpoint,
    sign_checkpoint,
)

log = logging.getLogger("shopfloor.ledger")

Encoded = tuple[bytes, int, int, int]  # sfs1 bytes, first ts, last ts, count
# one hand-off: batches, their columns when the writer built them, samples, hand-off time
_Handoff = tuple[Sequence[Batch], "canonical.SampleColumns | None", int, int]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leaves (
    idx INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    source TEXT,
    seq INTEGER,
    first_ts INTEGER,
    last_ts INTEGER,
    count INTEGER,
    record BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS leaves_source ON leaves(source, seq);
CREATE INDEX IF NOT EXISTS leaves_time ON leaves(last_ts);
CREATE TABLE IF NOT EXISTS batch_data (idx INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    level INTEGER NOT NULL, i INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, i)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY, note TEXT NOT NULL, issued_ts INTEGER NOT NULL
);
"""


_RAW_MAGIC = b"SFS1"  # a stored copy starting so is uncompressed sfs1


class LedgerError(Exception):
    """The ledger cannot do what was asked (the message says why)."""


@dataclass
class HandoffStats:
    """Counters of the background hand-off (writer thread -> ledger thread)."""

    handoffs: int = 0  # calls of stored() accepted
    batches: int = 0  # batches accepted
    with_columns: int = 0  # hand-offs that came with the writer's columns
    appended_groups: int = 0  # transactions of the ledger thread
    waits: int = 0  # hand-offs that found the FIFO full and waited for room
    dropped_batches: int = 0  # given up after handoff_timeout_s (logged later as a seq_gap)
    dropped_samples: int = 0
    append_errors: int = 0  # groups whose transaction failed (rolled back, logged as a gap)
    max_pending_samples: int = 0  # high-water mark of samples waiting or being appended
    cpu_s: float = 0.0  # CPU time of the ledger thread's appends
    compressed_later: int = 0  # stored copies compressed while idle
    compressed_inline: int = 0  # stored copies compressed as appended (nothing else pending)


@dataclass(frozen=True)
class Leaf:
    idx: int
    kind: str
    source: str | None
    seq: int | None
    first_ts: int | None
    last_ts: int | None
    count: int | None
    record: bytes
    hash: bytes


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    note: str
    issued_ts: int

    def checkpoint(self) -> Checkpoint:
        cut = self.note.rfind("\n\n")
        return Checkpoint.parse_text(self.note[: cut + 1])


def clock_synchronised() -> bool | None:
    """Whether the kernel says the system clock is NTP-synchronised (Linux adjtimex);
    ``None`` when it cannot tell."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return bool(state != 5)  # TIME_ERROR: clock not synchronised


class Ledger:
    """The Merkle log of one gateway. Thread-safe (one lock); usable as a BatchObserver."""

    def __init__(
        self,
        path: str | Path,
        *,
        readonly: bool = False,
        durable: bool = True,
        compress: bool = True,
        background: bool = False,
        max_pending_samples: int = 200_000,
        handoff_timeout_s: float = 10.0,
        group_max_samples: int = 250_000,
        compress_idle_s: float = 0.1,
    ) -> None:
        if background and readonly:
            raise LedgerError("a read-only ledger cannot append in the background")
        if max_pending_samples < 1 or group_max_samples < 1 or handoff_timeout_s < 0:
            raise ValueError(
                "max_pending_samples and group_max_samples must be at least 1, "
                "handoff_timeout_s not negative"
            )
        self.path = Path(path)
        self.compress = compress
        self.max_pending_samples = max_pending_samples
        self.handoff_timeout_s = handoff_timeout_s
        self.group_max_samples = group_max_samples
        self.compress_idle_s = compress_idle_s
        # leaves [lo, hi) may have a raw stored copy (appends only grow idx: two ints suffice)
        self._raw_lo = self._raw_hi = 0
        self.handoff = HandoffStats()
        if readonly:
            uri = f"file:{self.path}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
        self.readonly = readonly
        self._lock = threading.RLock()
        self._load()
        # the background hand-off: FIFO of (batches, samples, hand-off time)
        self._cond = threading.Condition(threading.Lock())
        self._pending: collections.deque[_Handoff] = collections.deque()
        self._pending_samples = 0  # waiting or being appended
        self._handed = 0  # hand-offs accepted
        self._done = 0  # hand-offs appended (or failed)
        self._stopping = False
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(
                target=self._run_appender, name="shopfloor-ledger", daemon=True
            )
            self._thread.start()

    @classmethod
    def open_readonly(cls, path: str | Path) -> Ledger:
        if not Path(path).exists():
            raise LedgerError(f"no ledger at {path}")
        return cls(path, readonly=True)

    def _load(self) -> None:
        row = self._db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM leaves").fetchone()
        self._size = int(row[0])
        self._frontier: dict[int, bytes] = {}
        for level, i in merkle.perfect_subtrees(0, self._size):
            self._frontier[level] = self._node(level, i)
        self._last_seq = {
            str(s): int(q)
            for s, q in self._db.execute(
                "SELECT source, MAX(seq) FROM leaves WHERE kind='batch' GROUP BY source"
            )
        }

    def close(self) -> None:
        """Append everything handed off (background mode), stop the thread, close the file."""
        thread = self._thread
        if thread is not None:
            with self._cond:
                self._stopping = True
                self._cond.notify_all()
            if thread is not threading.current_thread():
                thread.join()
        with self._lock:
            self._db.close()

    @property
    def background(self) -> bool:
        return self._thread is not None

    # --- background hand-off ------------------------------------------------------------

    def stored(
        self, batches: Sequence[Batch], columns: canonical.SampleColumns | None = None
    ) -> None:
        """BatchObserver hook: called by the writer once the store acknowledged. Appends now,
        or in background mode hands the batches to the ledger thread (see the module doc).
        ``columns`` (the batches' samples as columns, built once by the writer) saves reading
        the samples again."""
        if columns is not None and not columns.fits_counts([b.count for b in batches]):
            raise ValueError("the sample columns are not those of these batches")
        if self._thread is None:
            self._wait_handoffs()
            self._append_batches(batches, None, self._encode(batches, columns))
            return
        n = sum(b.count for b in batches)
        st = self.handoff
        with self._cond:
            if self._stopping:
                raise LedgerError("the ledger is closed: acknowledged batches were not logged")
            limit = self.max_pending_samples
            if self._pending_samples and self._pending_samples + n > limit:
                st.waits += 1
                deadline = time.monotonic() + self.handoff_timeout_s
                while self._pending_samples and self._pending_samples + n > limit:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._stopping:
                        st.dropped_batches += len(batches)
                        st.dropped_samples += n
                        log.error(
                            "evidence: the ledger fell %.1f s behind; %d acknowledged batches "
                            "are not logged (the next batch of each source is logged after a "
                            "seq_gap leaf)",
                            self.handoff_timeout_s,
                            len(batches),
                        )
                        return
                    self._cond.wait(left)
            self._pending.append((batches, columns, n, time.time_ns()))
            self._pending_samples += n
            self._handed += 1
            st.handoffs += 1
            st.batches += len(batches)
            st.with_columns += columns is not None
            st.max_pending_samples = max(st.max_pending_samples, self._pending_samples)
            self._cond.notify_all()

    def stored_columns(self, batches: Sequence[Batch], columns: canonical.SampleColumns) -> None:
        """The writer's hook when it built the columns of ``batches`` (see :meth:`stored`)."""
        self.stored(batches, columns)

    @staticmethod
    def _encode(batches: Sequence[Batch], columns: canonical.SampleColumns | None) -> list[Encoded]:
        if columns is None and batches and all(b.columnar for b in batches):
            blocks = [blk for b in batches if (blk := b.block) is not None]
            columns = canonical.SampleColumns.of_blocks(blocks)
        if columns is not None:
            return canonical.encode_column_groups(columns)
        return canonical.encode_sample_groups([b.samples for b in batches])

    def pending_samples(self) -> int:
        """Samples handed off and not yet appended (background mode)."""
        with self._cond:
            return self._pending_samples

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every hand-off made before this call is appended (background mode);
        ``False`` when ``timeout_s`` passed first. Immediate without a background thread."""
        if self._thread is None or threading.current_thread() is self._thread:
            return True
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            target = self._handed
            while self._done < target:
                if not self._thread.is_alive():
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _run_appender(self) -> None:
        """(The ledger thread) append pending hand-offs in order, many per transaction;
        compress the stored copies when idle."""
        while True:
            parts = self._next_parts()
            if parts is None:
                return  # stopping and drained
            if parts:
                self._append_parts(parts)
                continue
            try:
                self._compress_some()
            except Exception:
                self._raw_lo = self._raw_hi  # those copies stay raw (they read the same)
                log.exception("evidence: cannot compress stored samples in the ledger")

    def _next_parts(self) -> list[_Handoff] | None:
        """Wait for hand-offs and take them (up to ``group_max_samples``); ``[]`` when idle
        for ``compress_idle_s`` with stored copies to compress; ``None`` when stopping and
        everything was appended."""
        cond = self._cond
        with cond:
            while not self._pending:
                if self._stopping:
                    return None
                if self._raw_lo < self._raw_hi and self.compress:
                    since = time.monotonic()
                    cond.wait(self.compress_idle_s)
                    waited = time.monotonic() - since
                    if not self._pending and not self._stopping and waited >= self.compress_idle_s:
                        return []
                else:
                    cond.wait()
            parts: list[_Handoff] = []
            taken = 0
            while self._pending and (not parts or taken < self.group_max_samples):
                parts.append(self._pending.popleft())
                taken += parts[-1][2]
            return parts

    def _append_parts(self, parts: list[_Handoff]) -> None:
        cpu0 = time.thread_time()
        group: list[Batch] = []
        try:
            encoded: list[Encoded] = []
            for batches, columns, _, _ in parts:
                group.extend(batches)
                encoded += self._encode(batches, columns)
            # nothing else waiting: compress the stored copies now (one write each); behind:
            # store them raw and compress when idle (the hand-off keeps up at the ceiling)
            with self._cond:
                inline = not self._pending
            self._append_batches(group, parts[0][3], encoded, compress_now=inline)
            self.handoff.appended_groups += 1
        except Exception:
            # rolled back: these batches are not logged; the next batch of each source is
            # logged after a seq_gap leaf
            self.handoff.append_errors += 1
            log.exception("evidence: cannot append %d batches to the ledger", len(group))
        finally:
            self.handoff.cpu_s += time.thread_time() - cpu0
            with self._cond:
                self._pending_samples -= sum(p[2] for p in parts)
                self._done += len(parts)
                self._cond.notify_all()

    def _wait_handoffs(self) -> None:
        """Before a special leaf or a checkpoint: what was handed off before comes first."""
        if not self.flush(self.handoff_timeout_s):
            log.warning("evidence: the ledger thread is behind; appending out of turn")

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ------------------------------------------------------------------------

    @property
    def size(self) -> int:
        with self._lock:
            if self.readonly:
                self._load()
            return self._size

    def last_seq(self, source: str) -> int:
        with self._lock:
            return self._last_seq.get(source, 0)

    def _node(self, level: int, i: int) -> bytes:
        row = self._db.execute(
            "SELECT hash FROM nodes WHERE level=? AND i=?", (level, i)
        ).fetchone()
        if row is None:
            raise LedgerError(f"ledger is missing subtree ({level}, {i}): the file is damaged")
        return bytes(row[0])

    def _range_hash(self, lo: int, hi: int) -> bytes:
        return merkle.fold_subtrees(
            [self._node(lv, i) for lv, i in merkle.perfect_subtrees(lo, hi)]
        )

    def root(self, size: int | None = None) -> bytes:
        with self._lock:
            n = self.size if size is None else size
            if n > self._size:
                raise LedgerError(f"the log has {self._size} leaves, not {n}")
            return self._range_hash(0, n)

    def inclusion_proof(self, idx: int, size: int) -> list[bytes]:
        with self._lock:
            if size > self.size:
                raise LedgerError(f"the log has {self._size} leaves, not {size}")
            return merkle.inclusion_proof(self._range_hash, idx, size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        with self._lock:
            if size2 > self.size:
                raise LedgerError(f"the log has {self._size} leaves, not {size2}")
            return merkle.consistency_proof(self._range_hash, size1, size2)

    @staticmethod
    def _leaf(row: Sequence[Any]) -> Leaf:
        return Leaf(
            int(row[0]),
            str(row[1]),
            row[2],
            row[3],
            row[4],
            row[5],
            row[6],
            bytes(row[7]),
            bytes(row[8]),
        )

    _COLS = "idx, kind, source, seq, first_ts, last_ts, count, record, hash"

    def leaf(self, idx: int) -> Leaf:
        with self._lock:
            row = self._db.execute(
                f"SELECT {self._COLS} FROM leaves WHERE idx=?", (idx,)
            ).fetchone()
        if row is None:
            raise LedgerError(f"no leaf {idx}")
        return self._leaf(row)

    def leaves(
        self,
        *,
        kind: str | None = None,
        source: str | None = None,
        overlapping: tuple[int, int] | None = None,
        upto: int | None = None,
    ) -> list[Leaf]:
        """Leaves in log order, filtered; ``overlapping=(start, end)`` keeps batch leaves
        whose samples touch ``[start, end)`` and special leaves whose ``ts`` falls in it."""
        sql = f"SELECT {self._COLS} FROM leaves WHERE 1=1"
        args: list[Any] = []
        if kind is not None:
            sql += " AND kind=?"
            args.append(kind)
        if source is not None:
            sql += " AND source=?"
            args.append(source)
        if overlapping is not None:
            sql += " AND last_ts>=? AND first_ts<?"
            args += [overlapping[0], overlapping[1]]
        if upto is not None:
            sql += " AND idx<?"
            args.append(upto)
        sql += " ORDER BY idx"
        with self._lock:
            return [self._leaf(r) for r in self._db.execute(sql, args)]

    def sources(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT source FROM leaves WHERE kind='batch' ORDER BY source"
            ).fetchall()
        return [str(r[0]) for r in rows]

    def batch_data(self, idx: int) -> bytes:
        with self._lock:
            row = self._db.execute("SELECT data FROM batch_data WHERE idx=?", (idx,)).fetchone()
        if row is None:
            raise LedgerError(f"leaf {idx} has no stored samples")
        raw = bytes(row[0])
        return raw if raw[:4] == b"SFS1" else zlib.decompress(raw)

    # --- appending ----------------------------------------------------------------------

    def _append(
        self,
        items: Sequence[tuple[Mapping[str, Any], bytes | None]],
        *,
        compress_now: bool = False,
    ) -> list[int]:
        """Append records (and their sample bytes) in one transaction; return their indexes.
        The stored copies are compressed now without a background thread or with
        ``compress_now``, else stored raw and compressed when the thread is idle."""
        if self.readonly:
            raise LedgerError("the ledger is open read-only")
        zip_now = self.compress and (not self._thread or compress_now)
        if zip_now:  # zlib outside the lock
            items = [(rec, None if d is None else zlib.compress(d, 1)) for rec, d in items]
        with self._lock:
            frontier = dict(self._frontier)
            size = self._size
            last_seq = dict(self._last_seq)
            out: list[int] = []
            try:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM leaves").fetchone()
                if int(row[0]) != size:  # another process appended (e.g. 'keys rotate')
                    self._load()
                    frontier, size, last_seq = (
                        dict(self._frontier),
                        self._size,
                        dict(self._last_seq),
                    )
                leaf_rows: list[tuple[Any, ...]] = []
                data_rows: list[tuple[int, bytes]] = []
                raw_rows: list[int] = []  # indexes of copies stored raw (compressed later)
                nodes: list[tuple[int, int, bytes]] = []
                for rec, data in items:
                    raw = canonical.record_bytes(rec)
                    h = merkle.leaf_hash(raw)
                    idx = size
                    is_batch = rec["kind"] == "batch"
                    leaf_rows.append(
                        (
                            idx,
                            rec["kind"],
                            rec.get("source"),
                            rec.get("seq"),
                            int(rec["first_ts"] if is_batch else rec["ts"]),
                            int(rec["last_ts"] if is_batch else rec["ts"]),
                            rec.get("count"),
                            raw,
                            h,
                        ),
                    )
                    if data is not None:
                        if not zip_now:
                            raw_rows.append(idx)
                        data_rows.append((idx, data))
                    nodes.append((0, idx, h))
                    level, j, acc = 0, idx, h
                    while j & 1:
                        acc = merkle.node_hash(frontier.pop(level), acc)
                        level += 1
                        j >>= 1
                        nodes.append((level, j, acc))
                    frontier[level] = acc
                    if is_batch:
                        last_seq[str(rec["source"])] = int(rec["seq"])
                    size += 1
                    out.append(idx)
                self._db.executemany("INSERT INTO leaves VALUES (?,?,?,?,?,?,?,?,?)", leaf_rows)
                self._db.executemany("INSERT INTO batch_data VALUES (?,?)", data_rows)
                self._db.executemany("INSERT INTO nodes VALUES (?,?,?)", nodes)
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            self._frontier, self._size, self._last_seq = frontier, size, last_seq
            if self._thread is not None and self.compress and raw_rows:
                if self._raw_lo == self._raw_hi:
                    self._raw_lo = raw_rows[0]
                self._raw_hi = raw_rows[-1] + 1
            self.handoff.compressed_inline += len(data_rows) - len(raw_rows) if zip_now else 0
            return out

    def _compress_some(self, limit: int = 64) -> int:
        """(The ledger thread, when idle) compress up to ``limit`` stored copies written raw;
        returns how many. zlib runs outside the lock; one transaction for the updates."""
        with self._lock:
            lo = self._raw_lo
            hi = min(self._raw_hi, lo + limit)
            if lo >= hi:
                return 0
            rows = self._db.execute(
                "SELECT idx, data FROM batch_data WHERE idx >= ? AND idx < ?", (lo, hi)
            ).fetchall()
        done = [(zlib.compress(bytes(d), 1), int(i)) for i, d in rows if bytes(d[:4]) == _RAW_MAGIC]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("UPDATE batch_data SET data=? WHERE idx=?", done)
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            self._raw_lo = max(self._raw_lo, hi)
        self.handoff.compressed_later += len(done)
        return len(done)

    def _batch_items(
        self, batches: Sequence[Batch], now_ns: int, encoded: Sequence[Encoded] | None = None
    ) -> list[tuple[Mapping[str, Any], bytes | None]]:
        """Leaf records (and sample bytes) of ``batches``; ``encoded[i]`` when given is the
        :func:`canonical.encode_sample_groups` result of ``batches[i]``."""
        items: list[tuple[Mapping[str, Any], bytes | None] | Batch] = []
        last = dict(self._last_seq)
        logged: list[Batch] = []  # their samples are encoded together below
        chosen: list[Encoded] = []
        for k, b in enumerate(batches):
            if not b.count:
                continue
            prev = last.get(b.source, 0)
            if b.seq <= prev:
                items.append(
                    (
                        canonical.special_record(
                            "gap",
                            now_ns,
                            {"reason": "duplicate_seq", "source": b.source, "seq": b.seq},
                        ),
                        None,
                    )
                )
                continue
            if b.seq != prev + 1:
                items.append(
                    (
                        canonical.special_record(
                            "gap",
                            now_ns,
                            {
                                "reason": "seq_gap" if prev else "unlogged",
                                "source": b.source,
                                "from_seq": prev + 1,
                                "to_seq": b.seq - 1,
                            },
                        ),
                        None,
                    )
                )
            logged.append(b)
            if encoded is not None:
                chosen.append(encoded[k])
            items.append(b)
            last[b.source] = b.seq
        if encoded is None:
            chosen = self._encode(logged, None)
        it = iter(chosen)
        out: list[tuple[Mapping[str, Any], bytes | None]] = []
        for item in items:
            if isinstance(item, Batch):
                data, t_first, t_last, n = next(it)
                rec = canonical.batch_record(
                    item.source, item.seq, t_first, t_last, n, canonical.sha256_hex(data)
                )
                out.append((rec, data))
            else:
                out.append(item)
        return out

    def append_batches(self, batches: Sequence[Batch], now_ns: int | None = None) -> list[int]:
        """Log acknowledged batches (one transaction). A batch whose sequence number is not
        the next one of its source gets a ``gap`` leaf before it; a replayed sequence number
        is not logged again but recorded as a ``gap`` leaf with reason ``duplicate_seq``.
        In background mode, batches handed off earlier are appended first."""
        self._wait_handoffs()
        return self._append_batches(batches, now_ns)

    def _append_batches(
        self,
        batches: Sequence[Batch],
        now_ns: int | None = None,
        encoded: Sequence[Encoded] | None = None,
        *,
        compress_now: bool = False,
    ) -> list[int]:
        with self._lock:
            if not self.readonly:
                row = self._db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM leaves").fetchone()
                if int(row[0]) != self._size:
                    self._load()
            items = self._batch_items(batches, now_ns or time.time_ns(), encoded)
            return self._append(items, compress_now=compress_now)

    def append_import(
        self, batches: Sequence[Batch], fields: Mapping[str, Any], now_ns: int | None = None
    ) -> list[int]:
        """Log imported batches and, after them, one ``import`` leaf with ``fields`` (the file's
        name and SHA-256) plus the sequence range of every source logged: one transaction, so
        the log never holds the batches without the record of where they came from."""
        self._wait_handoffs()
        now = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            items = self._batch_items(batches, now)
            ranges: dict[str, list[int]] = {}
            for rec, _ in items:
                if rec["kind"] == "batch":
                    r = ranges.setdefault(str(rec["source"]), [int(rec["seq"]), int(rec["seq"])])
                    r[1] = int(rec["seq"])
            if not ranges:
                raise LedgerError("nothing to log: every imported batch is already in the log")
            info = {**fields, "batches": dict(sorted(ranges.items()))}
            items.append((canonical.special_record("import", now, info), None))
            return self._append(items)

    def append_special(self, kind: str, fields: Mapping[str, Any], ts: int | None = None) -> int:
        rec = canonical.special_record(kind, time.time_ns() if ts is None else ts, fields)
        self._wait_handoffs()
        return self._append([(rec, None)])[0]

    def latest_special(self, kind: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT record FROM leaves WHERE kind=? ORDER BY idx DESC LIMIT 1", (kind,)
            ).fetchone()
        if row is None:
            return None
        rec: dict[str, Any] = canonical.parse_canonical(bytes(row[0]), "leaf record")
        return rec

    # --- checkpoints --------------------------------------------------------------------

    def issue_checkpoint(self, signer: Signer, origin: str, now_s: int | None = None) -> str:
        """Sign a checkpoint of the current size (kept; an existing one of the same size with
        its cosignatures is returned instead). In background mode, what was handed off
        before this call is appended first."""
        self._wait_handoffs()
        with self._lock:
            size = self.size
            have = self.checkpoint(size)
            if have is not None and have.checkpoint().origin == origin:
                try:
                    open_checkpoint(have.note, [signer.verifier])
                    return have.note
                except ValueError:
                    pass  # signed by an earlier key: sign again with the current one
            t = int(time.time()) if now_s is None else now_s
            cp = Checkpoint(origin, size, self.root(size), (f"time {t}",))
            note = sign_checkpoint(cp, signer)
            self._db.execute(
                "INSERT OR REPLACE INTO checkpoints VALUES (?,?,?)", (size, note, time.time_ns())
            )
            return note

    def checkpoint(self, size: int) -> StoredCheckpoint | None:
        with self._lock:
            row = self._db.execute(
                "SELECT size, note, issued_ts FROM checkpoints WHERE size=?", (size,)
            ).fetchone()
        return StoredCheckpoint(int(row[0]), str(row[1]), int(row[2])) if row else None

    def checkpoints(self) -> list[StoredCheckpoint]:
        with self._lock:
            rows = self._db.execute(
                "SELECT size, note, issued_ts FROM checkpoints ORDER BY size"
            ).fetchall()
        return [StoredCheckpoint(int(r[0]), str(r[1]), int(r[2])) for r in rows]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        cps = self.checkpoints()
        return cps[-1] if cps else None

    def add_cosigned(self, note: str, log_key: Verifier) -> StoredCheckpoint:
        """Merge the witness signatures of ``note`` (a checkpoint this log signed)."""
        cp, _, _ = open_checkpoint(note, [log_key])
        with self._lock:
            have = self.checkpoint(cp.size)
            if have is None:
                raise LedgerError(f"this log issued no checkpoint of size {cp.size}")
            if cp.root != self.root(cp.size):
                raise LedgerError("the cosigned checkpoint's root is not this log's")
            merged = merge_signatures(have.note, note)
            self._db.execute("UPDATE checkpoints SET note=? WHERE size=?", (merged, cp.size))
            return StoredCheckpoint(cp.size, merged, have.issued_ts)

    def iter_batch_data(self, idxs: Iterable[int]) -> Iterator[tuple[int, bytes]]:
        for i in idxs:
            yield i, self.batch_data(i)

    def newest_sample_ts(self, since_idx: int = 0) -> dict[str, int]:
        """Per source, the newest sample timestamp of the batches logged at or after leaf
        ``since_idx`` (what was handed off before the call is appended first)."""
        self._wait_handoffs()
        with self._lock:
            rows = self._db.execute(
                "SELECT source, MAX(last_ts) FROM leaves WHERE idx >= ? AND kind = 'batch' "
                "GROUP BY source",
                (since_idx,),
            ).fetchall()
        return {str(src): int(ts) for src, ts in rows}


CLOCK_AHEAD_TOLERANCE_S = 2.0
"""A device whose newest timestamp is ahead of the gateway's clock by more than this (seconds)
is recorded in the ``clock`` leaf (``devices_ahead_s``): the gateway's clock and the device's
disagree, which the reviewer of an air-gapped site needs to know."""


class EvidenceRecorder:
    """What the collector runs when ``site.evidence.enabled``: logs every acknowledged batch,
    records the start state (site file hash, formula versions, clock sync), gaps (queue drops,
    restarts) and issues checkpoints."""

    def __init__(self, ledger: Ledger, signer: Signer | None, origin: str) -> None:
        self.ledger = ledger
        self.signer = signer
        self.origin = origin
        self._drops: dict[str, int] = {}
        self._clock: bool | None = None
        self._ahead: dict[str, int] = {}
        self._clock_since = ledger.size  # devices are compared on what is logged from now on

    def stored(self, batches: Sequence[Batch]) -> None:
        self.ledger.stored(batches)

    def stored_columns(self, batches: Sequence[Batch], columns: canonical.SampleColumns) -> None:
        """The writer's hook when it built the columns once for the store and the ledger."""
        self.ledger.stored(batches, columns)

    def start(
        self, config: Mapping[str, Any], formulas: Mapping[str, int], now_ns: int | None = None
    ) -> None:
        """Leaves at start: the configuration in force (its canonical content, see
        :mod:`metrics.evidence.configlog`, when it differs from the last one recorded),
        formula versions (when they changed), a restart gap and the clock-sync state."""
        now = time.time_ns() if now_ns is None else now_ns
        record_config(self.ledger, config, cause="start", now_ns=now)
        last_f = self.ledger.latest_special("formula")
        want = {k: int(v) for k, v in sorted(formulas.items())}
        if last_f is None or last_f.get("formulas") != want:
            self.ledger.append_special("formula", {"formulas": want}, now)
        if self.ledger.size > 0 and self.ledger.sources():
            self.ledger.append_special("gap", {"reason": "restart"}, now)
        self.check_clock(force=True)

    def check_clock(self, *, force: bool = False) -> None:
        """A ``clock`` leaf when forced, when the clock's synchronisation state changed, or
        when the devices found ahead of the gateway's clock changed (``devices_ahead_s``:
        per live source, how far its newest timestamp since the last check is ahead of the
        gateway's clock, when more than :data:`CLOCK_AHEAD_TOLERANCE_S`; a change of less
        than the tolerance is not recorded again)."""
        state = clock_synchronised()
        now = time.time_ns()
        ahead = self._devices_ahead(now)
        if force or state != self._clock or ahead is not None:
            self._clock = state
            if ahead is not None:
                self._ahead = ahead
            fields: dict[str, Any] = {"synchronised": "unknown" if state is None else state}
            if self._ahead:
                fields["devices_ahead_s"] = dict(sorted(self._ahead.items()))
            self.ledger.append_special("clock", fields, now)

    def _devices_ahead(self, now: int) -> dict[str, int] | None:
        """The new ``devices_ahead_s`` when it differs from the recorded one by more than the
        tolerance (a source without new batches keeps its recorded figure), else None."""
        newest = self.ledger.newest_sample_ts(self._clock_since)
        self._clock_since = self.ledger.size
        want = dict(self._ahead)
        for src, ts in newest.items():
            if src.startswith("import:"):
                continue  # imported history carries the past's timestamps
            lead = (ts - now) / 1e9
            if lead > CLOCK_AHEAD_TOLERANCE_S:
                want[src] = round(lead)
            else:
                want.pop(src, None)
        same = want.keys() == self._ahead.keys() and all(
            abs(want[k] - self._ahead[k]) <= CLOCK_AHEAD_TOLERANCE_S for k in want
        )
        return None if same else want

    def note_drops(self, drops: Mapping[str, int]) -> None:
        """Record queue drops per device since the last call as ``gap`` leaves."""
        for dev, total in sorted(drops.items()):
            before = self._drops.get(dev, 0)
            if total > before:
                self.ledger.append_special(
                    "gap", {"reason": "queue_drops", "source": dev, "dropped": total - before}
                )
            self._drops[dev] = total

    def checkpoint(self) -> str | None:
        if self.signer is None:
            return None
        self.check_clock()
        return self.ledger.issue_checkpoint(self.signer, self.origin)


def config_leaves(ledger: Ledger, upto: int | None = None) -> list[configlog.ConfigLeaf]:
    """Every ``config`` leaf of the log (up to ``upto``), parsed."""
    out = []
    for lf in ledger.leaves(kind="config", upto=upto):
        rec = canonical.parse_canonical(lf.record, f"leaf {lf.idx}")
        out.append(configlog.parse_leaf(lf.idx, rec))
    return out


def latest_config(ledger: Ledger) -> configlog.ConfigLeaf | None:
    """The configuration recorded last (by log order)."""
    rec = ledger.latest_special("config")
    if rec is None:
        return None
    last = ledger.leaves(kind="config")[-1]
    return configlog.parse_leaf(last.idx, rec)


def record_config(
    ledger: Ledger,
    config: Mapping[str, Any],
    *,
    cause: str,
    reason: str = "",
    effective_ns: int | None = None,
    now_ns: int | None = None,
) -> int | None:
    """Append a ``config`` leaf for ``config`` (canonical content) unless it is what the log
    holds last and no ``effective_ns`` re-classifies history; the new leaf's index or None."""
    now = time.time_ns() if now_ns is None else now_ns
    last = latest_config(ledger)
    sha = configlog.content_sha256(config)
    if effective_ns is None and last is not None and last.sha256 == sha:
        return None
    fields = configlog.leaf_fields(
        config, cause=cause, effective_ns=now if effective_ns is None else effective_ns,
        reason=reason, previous=None if last is None else last.index,
    )  # fmt: skip
    return ledger.append_special("config", fields, now)


def formula_versions() -> dict[str, int]:
    """Formula id -> version of every KPI of the catalogue (recorded in ``formula`` leaves)."""
    from metrics.catalogue import CATALOGUE

    return {k.formula_id: k.formula_version for k in CATALOGUE}


def open_evidence(site: Any) -> EvidenceRecorder:
    """The evidence recorder of a site: its ledger, its signing key when there is one (without
    one, batches are still logged but no checkpoint is issued), start leaves written."""
    from config.models import SiteConfig
    from edge.store.keys import KeyDirError, load_key

    assert isinstance(site, SiteConfig)
    ev = site.evidence
    # appends run on the ledger's own thread, off the writer's path (see the module doc)
    ledger = Ledger(site.resolve(ev.ledger_path), background=True)
    signer: Signer | None
    try:
        signer = load_key(site.resolve(ev.key_dir))
    except KeyDirError as exc:
        log.warning("evidence: %s; batches are logged, no checkpoint is issued", exc)
        signer = None
    origin = ev.origin or f"shopfloor.local/{site.site.id}"
    rec = EvidenceRecorder(ledger, signer, origin)
    try:
        rec.start(configlog.config_content(site), formula_versions())
    except BaseException:
        ledger.close()
        raise
    return rec


async def checkpoint_loop(
    rec: EvidenceRecorder, interval_s: float, drops: Callable[[], Mapping[str, int]]
) -> None:
    """Every ``interval_s``: record queue drops as gap leaves and issue a checkpoint (in a
    worker thread: signing and SQLite never block the event loop)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(rec.note_drops, dict(drops()))
            await asyncio.to_thread(rec.checkpoint)
        except (sqlite3.Error, LedgerError, OSError) as exc:
            log.error("evidence: cannot issue a checkpoint: %s", exc)
