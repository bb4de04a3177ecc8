"""encode_sample_groups (columns read once for many batches, one-device fast path) gives the
same sfs1 bytes as encoding each batch on its own through encode_columns."""

from __future__ import annotations

import random

import numpy as np
import rfc8785

from connectors.base import Quality, Sample
from metrics.evidence import canonical


def _reference(samples: list[Sample]) -> tuple[bytes, int, int, int]:
    """Each batch alone, through the column encoder (no grouping, no fast path)."""
    ts = np.array([s.ts for s in samples], dtype=np.int64)
    data = canonical.encode_columns(
        [s.device for s in samples],
        [s.point for s in samples],
        ts,
        np.array([s.value for s in samples], dtype=np.float64),
        np.array([int(s.quality) for s in samples], dtype=np.uint8),
        [s.status for s in samples],
    )
    if not samples:
        return data, 0, 0, 0
    return data, int(ts.min()), int(ts.max()), len(samples)


def _random_group(rnd: random.Random) -> list[Sample]:
    devices = rnd.choice([["a"], ["a", "b"], ["é", "a", "Z"]])
    points = ["x", "y", "点", "x\x00", "X"][: rnd.randint(1, 5)]
    values = [1.0, float("nan"), -0.0, 1e300, float("inf"), -float("inf")]
    g = [
        Sample(
            rnd.choice(devices),
            rnd.choice(points),
            rnd.randint(-3, 3) * 10**18 if rnd.random() < 0.2 else rnd.randint(0, 4),
            rnd.choice(values) if rnd.random() < 0.4 else rnd.random(),
            rnd.choice(list(Quality)),
            rnd.choice(["", "", "", "BadTimeout", "状态"]),
        )
        for _ in range(rnd.choice([0, 1, 2, 3, 17, 60]))
    ]
    if rnd.random() < 0.4:
        g.sort(key=lambda s: (s.point, s.ts))
    return g


def test_groups_encode_like_each_batch_alone() -> None:
    rnd = random.Random(20261121)
    for _ in range(400):
        groups = [_random_group(rnd) for _ in range(rnd.randint(0, 6))]
        assert canonical.encode_sample_groups(groups) == [_reference(g) for g in groups]


def test_one_series_in_order_and_statuses_only_in_later_groups() -> None:
    one = [Sample("m", "p", t, float(t)) for t in range(5)]
    later = [Sample("m", "q", 9, 1.0, Quality.BAD, "link_lost"), Sample("m", "p", 3, 2.0)]
    got = canonical.encode_sample_groups([one, [], later])
    assert got == [_reference(one), _reference([]), _reference(later)]
    dec = canonical.decode_samples(got[2][0])
    assert dec.series == (("m", "p"), ("m", "q"))
    assert dec.statuses == {1: "link_lost"}  # moved with its sample by the canonical order
    assert canonical.encode_samples_range(later) == got[2]


def test_record_bytes_fast_path_is_rfc8785() -> None:
    records = [
        canonical.batch_record("机床-01", 7, 1, 2**62, 3, "ab" * 32),
        canonical.batch_record('q"\\\x01\u2028', 2**53 + 5, -1, 0, 0, "x"),  # unsafe int: slow path
        canonical.special_record("gap", 5, {"reason": "restart"}),
        {"v": 1, "kind": "batch", "é": "non-ASCII key", "a": 1},
    ]
    for rec in records:
        assert canonical.record_bytes(rec) == rfc8785.dumps(canonical.jsonable(rec))
