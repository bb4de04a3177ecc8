"""A collector stand-in for the SIGKILL test: writes batches to an InfluxStore forever and prints
``ack <seq> <n>`` after each acknowledged ``write_batches`` (then flushes stdout).

usage: python -m tests.influx.ingest_child URL DATABASE OUTBOX SAMPLES_PER_BATCH
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from config.storage import InfluxStorage
from edge.store.influx.store import InfluxStore
from tests.influx.helpers import batch


def main() -> None:
    url, database, outbox, per_batch = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    cfg = InfluxStorage(
        url=url, database=database, outbox_path=outbox, replay_backoff_max_s=0.2, timeout_s=2.0
    )
    store = InfluxStore(cfg)
    seq = store.last_seq("kill")
    while True:
        seq += 1
        store.write_batches([batch("kill", seq, int(per_batch))])
        sys.stdout.write(f"ack {seq} {per_batch}\n")
        sys.stdout.flush()
        time.sleep(0.002)


if __name__ == "__main__":
    main()
