"""Shared pieces of the InfluxDB store tests."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config.storage import InfluxStorage
from connectors.base import Quality, Sample
from edge.store.base import Batch
from edge.store.influx.store import InfluxStore

WEEK_2020 = 1_577_836_800_000_000_000  # 2020-01-01T00:00:00Z
YEAR_2021 = 1_609_459_200_000_000_000  # 2021-01-01T00:00:00Z


def storage(url: str, database: str, tmp: Path, **kw: Any) -> InfluxStorage:
    base: dict[str, Any] = {
        "kind": "influxdb",
        "url": url,
        "database": database,
        "outbox_path": tmp / f"outbox-{database}.db",
        "replay_backoff_max_s": 0.2,
        "timeout_s": 3.0,
    }
    base.update(kw)
    return InfluxStorage.model_validate(base)


def batch(source: str, seq: int, n: int, *, base: int = YEAR_2021, point: str = "p") -> Batch:
    """``n`` good samples of ``source``/``point``, timestamps ``base + seq * 1e6 + i`` (ns)."""
    return Batch(
        source,
        seq,
        tuple(
            Sample(source, point, base + seq * 1_000_000 + i, float(seq * 1000 + i))
            for i in range(n)
        ),
    )


def wait_for(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def drained(store: InfluxStore, timeout: float = 15.0) -> None:
    assert store.wait_drained(timeout), f"outbox not drained: {store.status()}"


def same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


__all__ = ["Quality", "Sample"]
