"""kill -9 of the collector (QoS 1, persistent session): no acknowledged message is lost and
none is stored twice (redelivered messages are recognised against the store).

Messages come from two independent publishers: paho, and mosquitto's own ``mosquitto_pub``.
The collector runs in a child process (tests/mqtt/kill_child.py) with a writer that waits up to
5 s for a fuller batch: a gateway that acknowledged on hand-over would lose what it held in
memory at the kill; this one acknowledges only what is stored. With connector worker processes
(runtime.workers: 2) the worker holds the broker link and acknowledges only what the collector
reports stored, and killing the collector ends its workers (no orphan keeps the session).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.base import Quality
from edge.store.sqlite import SqliteStore
from tests.mqtt.helpers import publisher
from tests.support.mosquitto import Mosquitto, mosquitto_binary

pytestmark = pytest.mark.skipif(
    mosquitto_binary() is None or shutil.which("mosquitto_pub") is None,
    reason="mosquitto and mosquitto_pub (Debian packages mosquitto, mosquitto-clients) needed",
)

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_796_000_000_000  # epoch ms of message 0 (fixed: no dependence on today's date)


def _doc(i: int) -> str:
    return json.dumps({"n": i, "ts": T0 + i})


def _child(port: int, db: Path, workers: int = 0) -> tuple[subprocess.Popen[str], list[int]]:
    """The collector process and its worker processes' pids."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.mqtt.kill_child",
            str(port),
            "t-kill9",
            str(db),
            str(workers),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line[:1] == ["up"], f"collector did not start: {line!r}"
    return proc, [int(p) for p in line[1:]]


def _gone(pid: int) -> bool:
    """The process has exited (no longer exists, or a zombie waiting for its reaper)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except FileNotFoundError:
        return True


def _all_gone(pids: list[int], within_s: float = 30.0) -> bool:
    deadline = time.monotonic() + within_s
    while not all(map(_gone, pids)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def mq(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "mq").start()
    yield broker
    broker.stop()


def _mosquitto_pub(port: int, lines: list[str]) -> None:
    """One mosquitto_pub process publishing each line as a QoS 1 message (waits for it)."""
    subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", "k/k1/n", "-l"],
        input="\n".join(lines) + "\n",
        text=True,
        check=True,
        timeout=60,
    )


def _stored(db: Path) -> list[tuple[int, float]]:
    store = SqliteStore(db, readonly=True)
    try:
        s = store.read("k1", "n", 0, 2**62)
    finally:
        store.close()
    good = s.quality == int(Quality.GOOD)
    return list(zip(s.ts[good].tolist(), s.values[good].tolist(), strict=True))


@pytest.mark.parametrize("workers", [0, 2])
def test_kill_9_loses_no_acknowledged_message_and_stores_none_twice(
    mq: Mosquitto, tmp_path: Path, workers: int
) -> None:
    db = tmp_path / "store.db"
    n_first, n_second = 400, 200
    proc, pids = _child(mq.port, db, workers)
    assert len(pids) == (1 if workers else 0)  # one broker connection: one worker
    try:
        with publisher(mq.port) as pub:  # paho: each publish waits for the broker's PUBACK
            for i in range(n_first // 2):
                pub("k/k1/n", _doc(i), 1)
        _mosquitto_pub(mq.port, [_doc(i) for i in range(n_first // 2, n_first)])
        os.kill(proc.pid, signal.SIGKILL)  # everything is at the broker; part of it delivered
        proc.wait(10)
        assert _all_gone(pids), "a worker outlived its killed collector"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    # published while the collector is dead: kept by the broker in the persistent session
    _mosquitto_pub(mq.port, [_doc(i) for i in range(n_first, n_first + n_second)])
    total = n_first + n_second
    proc, pids = _child(mq.port, db, workers)
    try:
        deadline = time.monotonic() + 30
        while len({ts for ts, _ in _stored(db)}) < total and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        assert _all_gone(pids), "a worker outlived its collector"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    stored = _stored(db)
    expected = [((T0 + i) * 1_000_000, float(i)) for i in range(total)]
    assert sorted(set(stored)) == expected, "a message acknowledged to the broker was lost"
    assert len(stored) == total, f"{len(stored) - total} messages stored twice"
