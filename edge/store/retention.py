"""The storage lifecycle of the embedded store: raw samples leave once the ledger holds them.

A retention pass (``storage.raw_retention_days``; nothing is ever removed when it is unset or
when no evidence ledger is configured) works out a *horizon* and removes the store's chunk rows
that end before it, after folding their samples into per-minute aggregates (table ``minutes``:
count, usable count, min, max, sum, last per series per minute) kept for the dashboard's long
ranges. The horizon is the earlier of

- the retention cut-off (``now - raw_retention_days``), and
- the first sample time of the oldest store batch the ledger does not hold identically (same
  source, sequence number, first and last timestamp and sample count; imported batches
  included).

Every sample of a removed chunk is then in a logged batch: a sample at ``t`` belongs to a batch
whose first timestamp is ``<= t < horizon``, and every such batch is logged. The store records
the horizon (``meta.raw_horizon``, never lowered): samples at or after it are all still in the
store, older ones are read back from the ledger (:mod:`edge.store.archive_reader`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.store.ledger import Ledger
from edge.store.sqlite import SqliteStore

DAY_NS = 86400 * 10**9
MINUTE_NS = 60 * 10**9
_QUALITY_BAD = 2


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What a pass did (or, dry run, would do)."""

    horizon: int  # raw samples before this time may be gone (0: nothing removable)
    cutoff: int  # now - raw_retention_days
    blocked_by: tuple[str, int] | None  # the oldest unlogged store batch, when it limits
    chunks_removed: int
    samples_removed: int
    dry_run: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "horizon": self.horizon,
            "cutoff": self.cutoff,
            "blocked_by": list(self.blocked_by) if self.blocked_by else None,
            "chunks_removed": self.chunks_removed,
            "samples_removed": self.samples_removed,
            "dry_run": self.dry_run,
        }


def logged_horizon(store: SqliteStore, ledger: Ledger, cutoff: int) -> tuple[int, Any]:
    """The earlier of ``cutoff`` and the first timestamp of the oldest store batch (starting
    before ``cutoff``) that the ledger does not hold identically; with that batch or None.
    Only batches that may still have samples in the store are looked at: those ending at or
    after the oldest stored chunk's first timestamp (an older batch has none left)."""
    oldest = store.oldest_chunk_ts()
    if oldest is None or oldest >= cutoff:
        return cutoff, None
    logged = {
        (str(lf.source), int(lf.seq or 0)): (lf.first_ts, lf.last_ts, lf.count)
        for lf in ledger.leaves(kind="batch", overlapping=(oldest, cutoff))
    }
    horizon, blocked = cutoff, None
    for source, seq, first, last, count, _w in store.batch_records(start=oldest, end=cutoff):
        if logged.get((source, seq)) != (first, last, count) and first < horizon:
            horizon, blocked = first, (source, seq)
    return horizon, blocked


def minute_aggregates(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Per (series, minute) aggregates of chunk rows (rowid, device, first_ts, last_ts, count,
    sid, ts, val, qual): (sid, minute, n, good, min, max, sum, last_ts, last), with min / max /
    sum / last over the usable samples (not bad, not NaN; None when there are none)."""
    if not rows:
        return []
    sid = np.concatenate([np.frombuffer(r[5], dtype="<u4") for r in rows]).astype(np.int64)
    ts = np.concatenate([np.frombuffer(r[6], dtype="<i8") for r in rows])
    val = np.concatenate([np.frombuffer(r[7], dtype="<f8") for r in rows])
    q = np.concatenate([np.frombuffer(r[8], dtype="u1") for r in rows])
    minute = ts // MINUTE_NS
    order = np.lexsort((ts, minute, sid))  # stable: storage order kept for equal timestamps
    sid, minute, ts, val, q = sid[order], minute[order], ts[order], val[order], q[order]
    new = np.concatenate(([True], (sid[1:] != sid[:-1]) | (minute[1:] != minute[:-1])))
    starts = np.flatnonzero(new)
    group = np.cumsum(new) - 1
    k = starts.shape[0]
    n = np.bincount(group, minlength=k)
    usable = (q != _QUALITY_BAD) & ~np.isnan(val)
    ug, uv, ut = group[usable], val[usable], ts[usable]
    good = np.bincount(ug, minlength=k)
    vmin = np.full(k, np.inf)
    vmax = np.full(k, -np.inf)
    np.minimum.at(vmin, ug, uv)
    np.maximum.at(vmax, ug, uv)
    vsum = np.bincount(ug, weights=uv, minlength=k)
    last = np.full(k, np.nan)
    last_ts = np.full(k, -1, dtype=np.int64)
    if ug.size:
        rev = ug[::-1]
        uniq, first_in_rev = np.unique(rev, return_index=True)
        last[uniq] = uv[::-1][first_in_rev]
        last_ts[uniq] = ut[::-1][first_in_rev]
    cols = zip(
        sid[starts].tolist(),
        minute[starts].tolist(),
        n.tolist(),
        good.tolist(),
        vmin.tolist(),
        vmax.tolist(),
        vsum.tolist(),
        last_ts.tolist(),
        last.tolist(),
        strict=True,
    )
    return [r if r[3] else (r[0], r[1], r[2], 0, None, None, r[6], None, None) for r in cols]


def retain(
    store: SqliteStore,
    ledger: Ledger | None,
    retention_days: float | None,
    *,
    now_ns: int | None = None,
    dry_run: bool = False,
    rows_per_step: int = 2000,
) -> RetentionResult:
    """One retention pass (see the module text). Nothing is removed without a ledger or a
    retention time; each step (at most ``rows_per_step`` chunk rows) is one transaction."""
    now = time.time_ns() if now_ns is None else now_ns
    if ledger is None or retention_days is None:
        return RetentionResult(0, 0, None, 0, 0, dry_run)
    cutoff = now - int(retention_days * DAY_NS)
    horizon, blocked = logged_horizon(store, ledger, cutoff)
    if dry_run:
        chunks, samples = store.count_before(horizon)
        return RetentionResult(horizon, cutoff, blocked, chunks, samples, True)
    chunks = samples = 0
    while True:
        rows = store.chunks_before(horizon, rows_per_step)
        if not rows:
            break
        samples += store.drop_chunks([int(r[0]) for r in rows], minute_aggregates(rows), horizon)
        chunks += len(rows)
    return RetentionResult(horizon, cutoff, blocked, chunks, samples, False)
