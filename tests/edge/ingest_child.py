"""Child process of the kill -9 test: ingests samples through queue -> writer -> SqliteStore and
prints ``ack <source> <seq> <count>`` for every acknowledged batch (observer hook), flushed."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from connectors.base import Sample
from edge.queue import SampleQueue
from edge.store.base import Batch
from edge.store.sqlite import SqliteStore
from edge.writer import Writer


class Printer:
    def stored(self, batches: Sequence[Batch]) -> None:
        for b in batches:
            sys.stdout.write(f"ack {b.source} {b.seq} {len(b.samples)} {b.samples[-1].ts}\n")
        sys.stdout.flush()


async def main(path: str) -> None:
    store = SqliteStore(path)
    q = SampleQueue(1_000_000)
    w = Writer(store, q, observers=[Printer()], batch_max_samples=500, flush_interval_ms=5)
    task = asyncio.create_task(w.run())
    ts = 0
    start = store.last_seq("dev0")
    print(f"start {start}", flush=True)
    while True:  # until killed
        for _ in range(200):
            ts += 1
            for d in range(3):
                q.put(Sample(f"dev{d}", f"p{ts % 4}", ts, float(ts)))
        await asyncio.sleep(0.001)
        if task.done():
            task.result()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
