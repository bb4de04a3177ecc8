"""release_free_heap gives freed C heap back to the system (glibc): the resident size drops
after a burst of freed allocations that the heap could not shrink by itself."""

from __future__ import annotations

import ctypes.util

import pytest

from edge.memtrim import release_free_heap


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(ctypes.util.find_library("c") is None, reason="no C library found")
def test_freed_heap_goes_back() -> None:
    release_free_heap()
    # 80 MB of 4 KB blocks (glibc's heap, not Python's small-object arenas); every 32nd kept,
    # so the heap's top stays in use and free() alone cannot give the holes back
    blocks = [bytearray(4000) for _ in range(20_000)]
    kept = blocks[::32]
    del blocks
    before = _rss_kb()
    assert release_free_heap()
    after = _rss_kb()
    assert before - after > 30_000, (before, after)
    assert len(kept) == 625
