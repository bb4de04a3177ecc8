"""The outbox sender with a scripted writer (our own LineWriter contract, no network)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.store.influx.errors import (
    InfluxAuthError,
    InfluxError,
    InfluxRejected,
    InfluxUnavailable,
)
from edge.store.influx.outbox import Entry, Outbox
from edge.store.influx.sender import Sender
from tests.influx.helpers import wait_for


class ScriptedWriter:
    """Answers each write with the next scripted outcome (None = accepted) and records it."""

    def __init__(self, script: list[InfluxError | None]) -> None:
        self.script = script
        self.writes: list[tuple[bytes, str]] = []
        self.lock = threading.Lock()

    def write(self, lines: bytes) -> None:
        with self.lock:
            outcome = self.script.pop(0) if self.script else None
            self.writes.append((lines, "ok" if outcome is None else type(outcome).__name__))
        if outcome is not None:
            raise outcome

    def close(self) -> None:
        return


def entry(seq: int, n: int = 2) -> Entry:
    body = b"".join(b"m,device=d,point=p value=1.0 %d\n" % (seq * 100 + i) for i in range(n))
    return Entry("d", seq, n, seq * 100, seq * 100 + n - 1, body)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Outbox]:
    ob = Outbox(tmp_path / "o.db", max_samples=10_000)
    yield ob
    ob.close()


def run(box: Outbox, writer: ScriptedWriter, *, backoff_max: float = 0.2) -> Sender:
    sender = Sender(box, writer, max_samples=4, backoff_max_s=backoff_max)
    sender.start()
    return sender


def test_retries_the_same_rows_in_order_with_capped_backoff(box: Outbox) -> None:
    box.append([entry(1), entry(2), entry(3)], {"d": 3}, [])
    down = InfluxUnavailable("cannot reach InfluxDB")
    writer = ScriptedWriter([down, down, down, down, down])
    sender = run(box, writer, backoff_max=0.15)
    try:
        wait_for(lambda: box.pending() == (0, 0), what="drained")
        st = sender.status()
    finally:
        sender.stop()
    outcomes = [o for _, o in writer.writes]
    assert outcomes == ["InfluxUnavailable"] * 5 + ["ok", "ok"]
    first_group = writer.writes[0][0]
    assert all(w[0] == first_group for w in writer.writes[:6])  # the same rows every time
    assert first_group == entry(1).lines + entry(2).lines  # 4 samples per send, oldest first
    assert writer.writes[6][0] == entry(3).lines
    assert st.errors["unavailable"] == 5
    assert st.replay_rate_sps > 0
    assert st.last_error == ""


def test_backoff_doubles_up_to_the_cap(box: Outbox) -> None:
    box.append([entry(1)], {"d": 1}, [])
    writer = ScriptedWriter([InfluxAuthError("refused the credentials (401)", status=401)] * 100)
    sender = run(box, writer, backoff_max=0.4)
    try:
        wait_for(lambda: len(writer.writes) >= 5, what="five attempts")
        st = sender.status()
    finally:
        sender.stop()
    assert st.state == "auth_error"
    assert st.last_status == 401
    assert st.backoff_s == pytest.approx(0.4)
    assert box.pending() == (2, 1)  # kept, not quarantined
    assert box.quarantined() == []


def test_a_refused_group_is_split_and_only_the_bad_row_quarantined(box: Outbox) -> None:
    box.append([entry(1), entry(2)], {"d": 2}, [])
    conflict = InfluxRejected("rejected (400): field type conflict", status=400, body="conflict")
    writer = ScriptedWriter([conflict, None, conflict])
    sender = run(box, writer)
    try:
        wait_for(lambda: box.pending() == (0, 0), what="drained")
        st = sender.status()
    finally:
        sender.stop()
    assert [o for _, o in writer.writes] == ["InfluxRejected", "ok", "InfluxRejected"]
    assert [q.seq for q in box.quarantined()] == [2]
    assert box.quarantined()[0].body == "conflict"
    assert box.counters()["sent_samples"] == 2
    assert st.errors["rejected"] == 1


def test_an_unexpected_error_does_not_kill_the_sender(box: Outbox) -> None:
    class Boom(ScriptedWriter):
        def write(self, lines: bytes) -> None:
            if not self.writes:
                self.writes.append((lines, "boom"))
                raise RuntimeError("boom")
            super().write(lines)

    box.append([entry(1)], {"d": 1}, [])
    writer = Boom([])
    sender = run(box, writer)
    try:
        wait_for(lambda: box.pending() == (0, 0), what="drained")
        assert sender.alive
        assert sender.status().errors["unexpected"] == 1
    finally:
        sender.stop()
