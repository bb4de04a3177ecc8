"""The durable SQLite outbox on its own (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.store.influx.outbox import Entry, Outbox, OutboxError


def entry(source: str, seq: int, n: int) -> Entry:
    lines = b"".join(
        b"m,device=%s,point=p value=1.0 %d\n" % (source.encode(), seq * 1000 + i) for i in range(n)
    )
    return Entry(source, seq, n, seq * 1000, seq * 1000 + n - 1, lines)


@pytest.fixture
def box(tmp_path: Path) -> Outbox:
    ob = Outbox(tmp_path / "outbox.db", max_samples=1000)
    yield ob  # type: ignore[misc]
    ob.close()


def test_rows_come_out_in_order_and_ack_deletes(box: Outbox) -> None:
    box.append([entry("a", 1, 10), entry("b", 1, 20)], {"a": 1, "b": 1}, [])
    box.append([entry("a", 2, 30)], {"a": 2}, [])
    assert box.pending() == (60, 3)
    rows = box.peek(25)
    assert [(r.source, r.seq) for r in rows] == [("a", 1)]  # 10 + 20 > 25: stop before b
    rows = box.peek(1000)
    assert [(r.source, r.seq) for r in rows] == [("a", 1), ("b", 1), ("a", 2)]
    box.ack(rows[:2])
    assert box.pending() == (30, 1)
    assert [(r.source, r.seq) for r in box.peek(1000)] == [("a", 2)]
    assert box.counters()["sent_samples"] == 30
    assert box.counters()["sent_batches"] == 2


def test_a_row_bigger_than_the_send_size_still_goes_alone(box: Outbox) -> None:
    box.append([entry("a", 1, 50)], {"a": 1}, [])
    assert [r.n for r in box.peek(10)] == [50]


def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    ob = Outbox(path, max_samples=1000)
    ob.append([entry("a", 1, 5), entry("a", 2, 5)], {"a": 2}, [("a", "p", 5, 1.5, 0, "")])
    ob.close()
    ob = Outbox(path, max_samples=1000)
    try:
        assert ob.pending() == (10, 2)
        assert ob.last_seq("a") == 2
        assert ob.last_seq("nobody") == 0
        assert ob.latest() == [("a", "p", 5, 1.5, 0, "")]
        assert [r.seq for r in ob.peek(100)] == [1, 2]
        assert ob.peek(100)[0].lines == entry("a", 1, 5).lines
    finally:
        ob.close()


def test_last_seq_never_goes_back(box: Outbox) -> None:
    box.append([], {"a": 5}, [])
    box.append([], {"a": 3}, [])
    assert box.last_seq("a") == 5


def test_latest_keeps_newest(box: Outbox) -> None:
    box.append([], {}, [("d", "p", 10, 1.0, 0, "")])
    box.append([], {}, [("d", "p", 5, 2.0, 0, "")])  # older: ignored
    box.append([], {}, [("d", "q", 7, float("nan"), 2, "timeout")])
    rows = box.latest("d")
    assert rows[0] == ("d", "p", 10, 1.0, 0, "")
    assert rows[1][:3] == ("d", "q", 7)
    assert rows[1][3] != rows[1][3]  # NaN stays NaN
    assert rows[1][4:] == (2, "timeout")


def test_drop_oldest_when_full(box: Outbox) -> None:
    box.append([entry("a", i, 300) for i in (1, 2, 3)], {"a": 3}, [])
    dropped = box.append([entry("a", 4, 300)], {"a": 4}, [])
    assert dropped == (300, 1)
    assert [r.seq for r in box.peek(10_000)] == [2, 3, 4]
    assert box.pending() == (900, 3)
    c = box.counters()
    assert (c["dropped_samples"], c["dropped_batches"]) == (300, 1)


def test_drop_oldest_spares_rows_in_flight(box: Outbox) -> None:
    box.append([entry("a", i, 300) for i in (1, 2, 3)], {"a": 3}, [])
    inflight = box.peek(300)
    assert [r.seq for r in inflight] == [1]
    box.append([entry("a", 4, 300)], {"a": 4}, [])
    box.release()
    assert [r.seq for r in box.peek(10_000)] == [1, 3, 4]


def test_drop_oldest_when_one_call_is_bigger_than_the_outbox(box: Outbox) -> None:
    box.append([entry("a", 1, 100)], {"a": 1}, [])
    dropped = box.append([entry("b", i, 400) for i in (1, 2, 3)], {"b": 3}, [])
    assert dropped == (500, 2)  # a#1 and b#1 go, the newest 800 stay
    assert [(r.source, r.seq) for r in box.peek(10_000)] == [("b", 2), ("b", 3)]
    assert box.pending() == (800, 2)
    assert box.last_seq("b") == 3


def test_drop_newest_when_full(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", max_samples=1000, drop="drop_newest")
    try:
        ob.append([entry("a", i, 300) for i in (1, 2, 3)], {"a": 3}, [])
        assert ob.append([entry("a", 4, 300), entry("a", 5, 100)], {"a": 5}, []) == (300, 1)
        assert [r.seq for r in ob.peek(10_000)] == [1, 2, 3, 5]
        assert ob.last_seq("a") == 5  # the sequence moves on: the gap is explicit
        assert ob.counters()["dropped_samples"] == 300
        assert ob.pending() == (1000, 4)
    finally:
        ob.close()


def test_quarantine_moves_the_row_with_its_reason(box: Outbox) -> None:
    box.append([entry("a", 1, 10), entry("a", 2, 10)], {"a": 2}, [])
    first = box.peek(10)[0]
    box.quarantine(first, 400, '{"error":"field type conflict"}')
    assert [r.seq for r in box.peek(100)] == [2]
    q = box.quarantined()
    assert [(x.source, x.seq, x.n, x.status) for x in q] == [("a", 1, 10, 400)]
    assert "field type conflict" in q[0].body
    c = box.counters()
    assert (c["quarantined_samples"], c["quarantined_batches"]) == (10, 1)
    assert box.pending() == (10, 1)


def test_requeue_quarantined(box: Outbox) -> None:
    box.append([entry("a", 1, 10), entry("a", 2, 10), entry("a", 3, 10)], {"a": 3}, [])
    rows = box.peek(30)
    box.quarantine(rows[0], 400, "conflict")
    box.quarantine(rows[1], 400, "conflict")
    box.release()
    assert box.pending() == (10, 1)
    qid = box.quarantined()[1].id
    assert box.requeue([qid]) == 1
    assert [r.seq for r in box.peek(100)] == [3, 2]
    assert box.requeue() == 1
    assert box.quarantined() == []
    assert box.pending() == (30, 3)
    assert box.requeue() == 0


def test_two_handles_on_one_file_share_counts_and_the_send_lock(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    one = Outbox(path, max_samples=1000)
    two = Outbox(path, max_samples=1000)
    try:
        assert one.try_lock_sender() is True
        assert two.try_lock_sender() is False
        two.append([entry("import:a", 1, 40)], {"import:a": 1}, [])
        assert one.pending() == (40, 1)
        one.ack(one.peek(100))
        assert two.pending() == (0, 0)
        assert two.counters()["sent_samples"] == 40
        one.close()
        assert two.try_lock_sender() is True  # released with the first handle
    finally:
        one.close()
        two.close()


def test_health_records_round_trip(box: Outbox) -> None:
    box.write_health([("cnc1", {"device": "cnc1", "samples": 3})])
    box.write_health([("cnc1", {"device": "cnc1", "samples": 4})])
    assert box.health() == [("cnc1", {"device": "cnc1", "samples": 4})]


def test_oldest_created(box: Outbox) -> None:
    assert box.oldest_created_ns() is None
    box.append([entry("a", 1, 1)], {"a": 1}, [])
    assert box.oldest_created_ns() is not None


def test_not_an_outbox_file(tmp_path: Path) -> None:
    bad = tmp_path / "junk.db"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(OutboxError, match="not a usable outbox"):
        Outbox(bad, max_samples=1000)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    ob = Outbox(path, max_samples=1000)
    ob._db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    ob.close()
    with pytest.raises(OutboxError, match="newer than this version"):
        Outbox(path, max_samples=1000)


def test_closed_outbox_says_so(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", max_samples=1000)
    ob.close()
    with pytest.raises(OutboxError, match="closed"):
        ob.peek(1)


def test_bad_bound() -> None:
    with pytest.raises(ValueError, match="max_samples"):
        Outbox(Path("/nonexistent/x.db"), max_samples=0)
