"""Ledger test helpers shared by the edge and evidence tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from edge.store.ledger import Ledger


@contextmanager
def stalled(led: Ledger, seconds: float) -> Iterator[None]:
    """Hold the ledger's lock from another thread for ``seconds`` (as when its fsync stalls):
    the ledger thread cannot append meanwhile."""
    held = threading.Event()

    def hold() -> None:
        with led._lock:
            held.set()
            time.sleep(seconds)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(5)
    try:
        yield
    finally:
        t.join()
