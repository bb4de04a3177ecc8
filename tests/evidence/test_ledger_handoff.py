"""The ledger's background hand-off: order across the thread, flush on close, specials and
checkpoints after earlier hand-offs, a full hand-off (wait, then drop, counted, logged as a
seq_gap), a crash with hand-offs pending (logged as a gap leaf), bad arguments."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from connectors.base import Quality, Sample
from edge.queue import SampleQueue
from edge.store.base import Batch
from edge.store.ledger import Ledger, LedgerError
from edge.store.sqlite import SqliteStore
from edge.writer import Writer
from metrics.evidence import canonical, merkle, note
from tests.support.ledger import stalled


def _batch(source: str, seq: int, n: int = 3) -> Batch:
    return Batch(
        source, seq, tuple(Sample(source, f"p{i % 2}", seq * 1000 + i, float(i)) for i in range(n))
    )


def _records(led: Ledger) -> list[dict[str, object]]:
    return [canonical.parse_canonical(lf.record, "leaf") for lf in led.leaves()]


def test_handoffs_are_appended_in_order_and_flushed_on_close(tmp_path: Path) -> None:
    batches = [_batch(src, seq) for seq in range(1, 41) for src in ("a", "b", "c")]
    led = Ledger(tmp_path / "bg.db", durable=False, background=True)
    assert led.background
    for i in range(0, len(batches), 3):
        led.stored(batches[i : i + 3])
    led.close()  # appends everything pending before closing
    with Ledger(tmp_path / "sync.db", durable=False) as ref:
        for i in range(0, len(batches), 3):
            ref.stored(batches[i : i + 3])
        with Ledger.open_readonly(tmp_path / "bg.db") as bg:
            assert [(lf.source, lf.seq) for lf in bg.leaves()] == [
                (b.source, b.seq) for b in batches
            ]
            assert bg.root() == ref.root()  # the same leaves, byte for byte
            assert bg.batch_data(5) == ref.batch_data(5)
    assert led.handoff.handoffs == 40
    assert led.handoff.batches == 120
    assert 1 <= led.handoff.appended_groups <= 40
    assert led.handoff.dropped_batches == led.handoff.append_errors == 0


def test_special_leaves_and_checkpoints_wait_for_earlier_handoffs(tmp_path: Path) -> None:
    signer = note.Signer.generate("log")
    with Ledger(tmp_path / "l.db", durable=False, background=True) as led:
        with stalled(led, 0.3):
            led.stored([_batch("a", 1), _batch("a", 2)])
            assert led.pending_samples() == 6
            led.append_special("gap", {"reason": "queue_drops", "source": "a", "dropped": 2})
        assert [r["kind"] for r in _records(led)] == ["batch", "batch", "gap"]
        with stalled(led, 0.2):
            led.stored([_batch("a", 3)])
            text = led.issue_checkpoint(signer, "log")
        cp, _, _ = note.open_checkpoint(text, [signer.verifier])
        assert cp.size == 4 == led.size  # the checkpoint covers the batch handed off before it
        assert led.flush(1.0)
        assert led.pending_samples() == 0


def test_full_handoff_waits_then_drops_and_the_jump_is_a_seq_gap(tmp_path: Path) -> None:
    with Ledger(
        tmp_path / "l.db",
        durable=False,
        background=True,
        max_pending_samples=3,
        handoff_timeout_s=0.05,
    ) as led:
        with stalled(led, 0.4):
            led.stored([_batch("a", 1)])  # 3 samples: the FIFO is full
            t = time.monotonic()
            led.stored([_batch("a", 2)])  # waits 50 ms for room, then gives up
            waited = time.monotonic() - t
        assert 0.04 <= waited < 0.35
        assert led.handoff.waits == 1
        assert (led.handoff.dropped_batches, led.handoff.dropped_samples) == (1, 3)
        led.stored([_batch("a", 3)])
        assert led.flush(5.0)
        recs = _records(led)
        assert [(r["kind"], r.get("seq")) for r in recs] == [
            ("batch", 1),
            ("gap", None),
            ("batch", 3),
        ]
        assert (recs[1]["reason"], recs[1]["from_seq"], recs[1]["to_seq"]) == ("seq_gap", 2, 2)


def test_crash_with_handoffs_pending_is_logged_as_a_gap(tmp_path: Path) -> None:
    """SIGKILL while acknowledged batches wait in the hand-off: they are not in the log, and
    the next batch of their source is logged after a seq_gap leaf naming them."""
    path = tmp_path / "c.db"
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parents[2])!r})
        from connectors.base import Quality, Sample
        from edge.store.base import Batch
        from edge.store.ledger import Ledger
        def b(seq):
            return Batch("a", seq, tuple(Sample("a", "p", seq * 10 + i, 1.0) for i in range(5)))
        led = Ledger({str(path)!r}, background=True)
        led.stored([b(1)])
        assert led.flush(10)
        with led._lock:  # the ledger thread cannot append any more
            led.stored([b(2)])
            led.stored([b(3)])
            print("handed", led.pending_samples(), flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().split() == ["handed", "10"]
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    with Ledger(path) as led:
        assert [(lf.kind, lf.seq) for lf in led.leaves()] == [("batch", 1)]
        led.append_batches([Batch("a", 4, (Sample("a", "p", 40, 1.0),))])
        recs = _records(led)
        assert [r["kind"] for r in recs] == ["batch", "gap", "batch"]
        assert (recs[1]["reason"], recs[1]["from_seq"], recs[1]["to_seq"]) == ("seq_gap", 2, 3)
        assert led.root() == merkle.root_of([lf.hash for lf in led.leaves()])


async def test_writer_with_background_ledger_logs_every_acknowledged_batch(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "s.db", synchronous="NORMAL")
    led = Ledger(tmp_path / "l.db", durable=False, background=True)
    q = SampleQueue(100_000)
    w = Writer(store, q, observers=[led], batch_max_samples=500, flush_interval_ms=10)
    try:
        task = asyncio.create_task(w.run())
        for k in range(20):
            q.put_many(
                Sample(f"d{i % 4}", f"p{i % 3}", k * 10_000 + i, float(i)) for i in range(300)
            )
            await asyncio.sleep(0)
        q.close()
        await task
        assert await asyncio.to_thread(led.flush, 10.0)
        stored = store.batch_records()
        logged = {(lf.source, lf.seq): lf for lf in led.leaves(kind="batch")}
        assert len(stored) == len(logged) == w.acked_batches
        for source, seq, *_ in stored:
            b = store.batch(source, seq)
            assert b is not None
            rec = canonical.parse_canonical(logged[(source, seq)].record, "leaf")
            assert rec["samples_sha256"] == canonical.sha256_hex(
                canonical.encode_samples(b.samples)
            )
        for src in ("d0", "d1", "d2", "d3"):  # per source in sequence order, no gap
            assert [lf.seq for lf in led.leaves(source=src)] == list(
                range(1, store.last_seq(src) + 1)
            )
        assert not led.leaves(kind="gap")
    finally:
        await w.close()
        led.close()


def test_bad_arguments_and_use_after_close(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_pending_samples"):
        Ledger(tmp_path / "a.db", background=True, max_pending_samples=0)
    with pytest.raises(ValueError, match="handoff_timeout_s"):
        Ledger(tmp_path / "a.db", background=True, handoff_timeout_s=-1)
    Ledger(tmp_path / "a.db").close()
    with pytest.raises(LedgerError, match="read-only"):
        Ledger(tmp_path / "a.db", readonly=True, background=True)
    led = Ledger(tmp_path / "b.db", durable=False, background=True)
    led.close()
    with pytest.raises(LedgerError, match="closed"):
        led.stored([_batch("a", 1)])


class ColumnStore(SqliteStore):
    """The embedded store plus the writer's columns hook (``write_batch_columns``): records
    whether the columns it got are those of the batches, then stores the batches."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, synchronous="NORMAL")
        self.column_calls = 0
        self.mismatches: list[str] = []

    def write_batch_columns(
        self, batches: Sequence[Batch], columns: canonical.SampleColumns
    ) -> None:
        ref = canonical.SampleColumns.of([b.samples for b in batches])
        same = (
            columns.bounds == ref.bounds
            and columns.devices == ref.devices
            and columns.points == ref.points
            and np.array_equal(columns.ts, ref.ts)
            and np.array_equal(columns.values, ref.values, equal_nan=True)
            and np.array_equal(columns.quality, ref.quality)
            and columns.statuses == ref.statuses
        )
        if not same:
            self.mismatches.append(f"{batches[0].source}#{batches[0].seq}")
        self.column_calls += 1
        self.write_batches(batches)


class Plain:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def stored(self, batches: Sequence[Batch]) -> None:
        self.seen += [(b.source, b.seq) for b in batches]


async def test_writer_hands_the_columns_it_read_once_to_store_and_ledger(tmp_path: Path) -> None:
    store = ColumnStore(tmp_path / "s.db")
    led = Ledger(tmp_path / "l.db", durable=False, background=True)
    plain = Plain()
    q = SampleQueue(10_000)
    w = Writer(store, q, observers=[led, plain], batch_max_samples=200, flush_interval_ms=10)
    try:
        task = asyncio.create_task(w.run())
        for k in range(5):
            q.put_many(
                Sample(
                    f"d{i % 3}",
                    f"p{i % 4}",
                    k * 1000 + i,
                    float(i),
                    Quality(i % 3),
                    "BadTimeout" if i % 7 == 0 else "",
                )
                for i in range(150)
            )
            await asyncio.sleep(0)
        q.close()
        await task
        assert await asyncio.to_thread(led.flush, 10.0)
        assert store.column_calls >= 1
        assert store.mismatches == []
        assert led.handoff.with_columns == led.handoff.handoffs == store.column_calls
        stored = [(r[0], r[1]) for r in store.batch_records()]
        assert sorted(plain.seen) == sorted(stored)  # plain observers still get stored()
        for lf in led.leaves(kind="batch"):
            assert lf.source is not None
            assert lf.seq is not None
            b = store.batch(lf.source, lf.seq)
            assert b is not None
            rec = canonical.parse_canonical(lf.record, "leaf")
            assert rec["samples_sha256"] == canonical.sha256_hex(
                canonical.encode_samples(b.samples)
            )
        assert len(led.leaves(kind="batch")) == len(stored)
    finally:
        await w.close()
        led.close()


def test_columns_that_are_not_the_batches_are_refused(tmp_path: Path) -> None:
    cols = canonical.SampleColumns.of([_batch("a", 1).samples])
    with Ledger(tmp_path / "l.db", durable=False, background=True) as led:
        with pytest.raises(ValueError, match="not those of these batches"):
            led.stored([_batch("a", 1, n=4)], cols)
        led.stored_columns([_batch("a", 1)], cols)
        assert led.flush(5.0)
        assert led.handoff.with_columns == 1
    with pytest.raises(ValueError, match="sizes differ"):
        canonical.encode_sample_groups([[], _batch("a", 1).samples], cols)


def test_stored_copies_are_compressed_as_appended_when_the_thread_keeps_up(
    tmp_path: Path,
) -> None:
    batches = [_batch("a", seq, n=200) for seq in range(1, 31)]
    with Ledger(tmp_path / "l.db", durable=False, background=True, compress_idle_s=60) as led:
        led.stored(batches)
        assert led.flush(5.0)
        raw = [bytes(r[0]) for r in led._db.execute("SELECT data FROM batch_data ORDER BY idx")]
        assert len(raw) == 30
        assert all(r[:4] != b"SFS1" for r in raw)  # zlib at once: one write each
        assert led.handoff.compressed_inline == 30
        assert led.handoff.compressed_later == 0
        for lf, b in zip(led.leaves(kind="batch"), batches, strict=True):
            assert led.batch_data(lf.idx) == canonical.encode_samples(b.samples)


def _behind(led: Ledger, batches: list[Batch]) -> None:
    """Hand batches off one group each while the ledger thread is held (it falls behind)."""
    with led._lock:  # the appender waits for it: hand-offs queue up
        for b in batches:
            led.stored([b])
    assert led.flush(5.0)


def test_stored_copies_are_written_raw_when_behind_and_compressed_when_idle(
    tmp_path: Path,
) -> None:
    batches = [_batch("a", seq, n=200) for seq in range(1, 81)]
    with Ledger(
        tmp_path / "l.db",
        durable=False,
        background=True,
        compress_idle_s=0.05,
        group_max_samples=1,
    ) as led:
        _behind(led, batches[:30])
        led.append_special("clock", {"synchronised": True})  # a leaf without samples between
        _behind(led, batches[30:])
        behind = 80 - led.handoff.compressed_inline
        assert behind >= 60  # all but the last of each run (and one taken before the hold)
        deadline = time.monotonic() + 10
        while led.handoff.compressed_later < behind and time.monotonic() < deadline:
            time.sleep(0.02)
        assert led.handoff.compressed_later == behind  # more than one round of 64
        raw = [bytes(r[0]) for r in led._db.execute("SELECT data FROM batch_data ORDER BY idx")]
        assert len(raw) == 80
        assert all(r[:4] != b"SFS1" for r in raw)  # zlib now
        assert sum(map(len, raw)) < 80 * 200 * 21 / 2
        logged = led.leaves(kind="batch")
        for lf, b in zip(logged, batches, strict=True):
            assert led.batch_data(lf.idx) == canonical.encode_samples(b.samples)
    with Ledger(
        tmp_path / "r.db", durable=False, background=True, compress_idle_s=60, group_max_samples=1
    ) as led:
        _behind(led, batches[:3])
        # not idle long enough yet: the copies appended behind are still raw, and read the same
        stored = [bytes(r[0])[:4] for r in led._db.execute("SELECT data FROM batch_data")]
        assert stored.count(b"SFS1") == 3 - led.handoff.compressed_inline >= 1
        for i in range(3):
            assert led.batch_data(i) == canonical.encode_samples(batches[i].samples)
        assert led.handoff.compressed_later == 0
