"""CPU per message of the MQTT connector's drain alone (decoding, columnar conversion, blocks).

No broker, no store: ``bench_sizing_protocols.py``'s MQTT site (one template device over
``factory/+/inspection``, 5 points and a payload timestamp) and ``mqtt_loadgen.py``'s
inspection document; ``--stations`` stations, their messages interleaved, put into the
connector's inbox ``--per-drain`` at a time and drained (``MqttConnector._drain``) into a sink
that only counts the blocks. Every station is seen once before the clock starts (its first
message takes the per-message path). Prints the event loop's CPU per message (the minimum of
``--repeats`` rounds of ``--drains`` drains) and the blocks handed per drain.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_mqtt_drain.py --per-drain 200 1400 5000

(At 50,000 msgs/s over 100 stations ``bench_sizing_protocols.py --protocol mqtt`` drained
about 1,400 messages per drain.)
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from bench import mqtt_loadgen as loadgen
from bench.bench_sizing_protocols import mqtt_site
from connectors.base import Sample, SampleBlock
from connectors.mqtt import MqttConnector, build

RECEIVED = 1_796_000_000_000_000_000
T0_MS = 1_796_000_000_000


class CountingSink:
    """Takes blocks and samples, keeps only their counts."""

    def __init__(self) -> None:
        self.blocks = 0
        self.rows = 0
        self.samples = 0

    def put(self, sample: Sample) -> None:
        self.samples += 1

    def put_many(self, samples: Iterable[Sample]) -> None:
        self.samples += sum(1 for _ in samples)

    def put_block(self, block: SampleBlock) -> None:
        self.blocks += 1
        self.rows += len(block)

    def link(self, device: str, connected: bool) -> None:
        pass

    def error(self, device: str, kind: str) -> None:
        raise AssertionError(f"{device}: {kind}")


def document(station: str, k: int) -> bytes:
    """The load generator's document of ``station`` at tick ``k`` (its marks filled in)."""
    doc = loadgen.document(station)
    return (
        doc.replace(loadgen._TS_MARK, str(T0_MS + k * 1000).encode())
        .replace(loadgen._IN_MARK, str(1_000_000_001 + k).encode())
        .replace(loadgen._PASS_MARK, str(1_000_000_000 + k).encode())
    )


def measure(per_drain: int, stations: int, drains: int, repeats: int) -> tuple[float, float]:
    """(us of CPU per message, blocks per drain)."""
    (conn,) = build(mqtt_site(1883, 1000, Path(tempfile.mkdtemp()), 0))
    assert isinstance(conn, MqttConnector)
    ticks = per_drain // stations + 1
    messages = [
        (f"factory/s{i}/inspection", document(f"s{i}", k), RECEIVED, False, 0)
        for k in range(1, ticks + 1)
        for i in range(stations)
    ][:per_drain]
    first = [
        (f"factory/s{i}/inspection", document(f"s{i}", 0), RECEIVED, False, 0)
        for i in range(stations)
    ]
    sink = CountingSink()

    async def run() -> float:
        conn._sink = sink
        conn._loop = asyncio.get_running_loop()
        conn._inbox.extend(first)
        conn._drain()
        best = float("inf")
        for _ in range(repeats):
            began = time.process_time()
            for _ in range(drains):
                conn._inbox.extend(messages)
                conn._drain()
            best = min(best, (time.process_time() - began) / (drains * per_drain))
        return best

    blocks0 = sink.blocks
    cpu = asyncio.run(run())
    return cpu * 1e6, (sink.blocks - blocks0) / (drains * repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-drain", type=int, nargs="+", default=[200, 1400, 5000])
    ap.add_argument("--stations", type=int, default=100)
    ap.add_argument("--drains", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    for per in args.per_drain:
        us, blocks = measure(per, args.stations, args.drains, args.repeats)
        print(
            f"{per:>6} messages per drain, {args.stations} stations: {us:.2f} us CPU per "
            f"message (min of {args.repeats}), {blocks:.0f} blocks per drain"
        )


if __name__ == "__main__":
    main()
