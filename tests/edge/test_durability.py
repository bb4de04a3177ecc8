"""kill -9 mid-ingest: every batch the writer acknowledged is in the store after reopening,
and a restarted writer continues the sequence numbers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge.store.sqlite import SqliteStore

CHILD = Path(__file__).with_name("ingest_child.py")
ROOT = Path(__file__).resolve().parents[2]


def _run_and_kill(db: Path, min_acks: int) -> list[tuple[str, int, int, int]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(db)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    acks: list[tuple[str, int, int, int]] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    try:
        line = proc.stdout.readline()
        assert line.startswith("start"), line
        while len(acks) < min_acks and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            _, src, seq, n, last = line.split()
            acks.append((src, int(seq), int(n), int(last)))
        os.kill(proc.pid, signal.SIGKILL)  # mid-ingest: no chance to flush or close
        # acknowledgements printed before the kill landed count too
        rest, _ = proc.communicate(timeout=10)
        for line in rest.splitlines():
            if line.startswith("ack"):
                _, src, seq, n, last = line.split()
                acks.append((src, int(seq), int(n), int(last)))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(acks) >= min_acks, "the child acknowledged too little before the deadline"
    return acks


def test_kill_9_loses_no_acknowledged_batch(tmp_path: Path) -> None:
    db = tmp_path / "ingest.db"
    acks = _run_and_kill(db, 60)
    store = SqliteStore(db)
    try:
        stored = {(r[0], r[1]): r[4] for r in store.batch_records()}
        for src, seq, n, _last in acks:
            assert stored.get((src, seq)) == n, f"acknowledged batch {src}#{seq} missing"
        # per-source sequences are gap-free from 1
        for src in {a[0] for a in acks}:
            seqs = sorted(s for (s_src, s) in stored if s_src == src)
            assert seqs == list(range(1, len(seqs) + 1))
        # the samples themselves are readable
        total = sum(len(store.read("dev0", f"p{k}", 0, 2**62)) for k in range(4))
        assert total == sum(n for (s_src, _), n in stored.items() if s_src == "dev0")
        last_seq = store.last_seq("dev0")
    finally:
        store.close()
    # a second life continues the sequence numbers after the last stored one
    acks2 = _run_and_kill(db, 6)
    dev0 = sorted(seq for src, seq, _, _ in acks2 if src == "dev0")
    assert dev0[0] == last_seq + 1
