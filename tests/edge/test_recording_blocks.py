"""The recorder's block path (issue 16) keeps exactly the rows the per-sample path keeps:
random polls of a read plan (absolute, percent and percent-of-range deadbands, heartbeats,
points without a rule, NaN and infinities, bad and uncertain rows, statuses, time going
back), compared with :meth:`Recorder.filter` on the same rows."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from config.models import Deadband
from connectors.base import Quality, SampleBlock
from edge.recording import Recorder, rule_for

VALUES = [0.0, 0.05, 0.1, 0.5, 1.0, 1.05, 10.0, -3.0, math.nan, math.inf]


def _recorders(rng: random.Random, points: tuple[str, ...]) -> tuple[Recorder, Recorder]:
    rules = {}
    for i, p in enumerate(points):
        kind = "abs" if i == 0 else rng.choice(["none", "abs", "pct", "range", "zero"])
        if kind == "abs":
            rules[("d", p)] = rule_for(Deadband(kind="absolute", value=0.1), rng.choice([5.0, 1e9]))
        elif kind == "pct":
            rules[("d", p)] = rule_for(Deadband(kind="percent", value=10.0), 5.0)
        elif kind == "range":
            rules[("d", p)] = rule_for(Deadband(kind="percent", value=1.0, range=100.0), 5.0)
        elif kind == "zero":
            rules[("d", p)] = rule_for(Deadband(kind="absolute", value=0.0), 5.0)
    rules[("other", "x")] = rule_for(Deadband(kind="absolute", value=1.0), 5.0)
    return Recorder(dict(rules)), Recorder(dict(rules))


@pytest.mark.parametrize("seed", range(10))
def test_block_path_equals_per_sample_path(seed: int) -> None:
    rng = random.Random(seed)
    plan = tuple(f"p{i}" for i in range(rng.randint(1, 12)))
    by_block, by_sample = _recorders(rng, plan)
    t = 0
    for _ in range(80):
        t += rng.choice([1, 2, 3]) * 10**9 if rng.random() < 0.9 else -(10**9)
        n = len(plan)
        statuses = None
        if rng.random() < 0.1:
            statuses = tuple(rng.choice(["", "timeout"]) for _ in range(n))
        points = plan if rng.random() < 0.9 else plan + plan[:1]  # sometimes a repeated point
        n = len(points)
        if statuses is not None:
            statuses = statuses[:n] + ("",) * (n - len(statuses))
        block = SampleBlock(
            "d",
            points,
            np.full(n, t, dtype=np.int64),
            np.array([rng.choice(VALUES) for _ in range(n)]),
            np.array([rng.choice([0, 0, 0, 0, 1, 2]) for _ in range(n)], dtype=np.uint8),
            statuses,
        )
        got = by_block.filter_block(block)
        want = by_sample.filter(block.samples())
        rows = got.samples() if got is not None else []
        assert [(s.point, s.ts, repr(s.value), s.quality, s.status) for s in rows] == [
            (s.point, s.ts, repr(s.value), s.quality, s.status) for s in want
        ]
    assert (by_block.seen, by_block.kept) == (by_sample.seen, by_sample.kept)
    assert by_block.kept < by_block.seen  # the deadbands did drop rows


def test_a_plain_poll_takes_the_array_path() -> None:
    rec = Recorder({("d", "a"): rule_for(Deadband(kind="absolute", value=1.0), 60.0)})
    pts = ("a", "b")

    def poll(t: int, a: float) -> SampleBlock:
        return SampleBlock(
            "d",
            pts,
            np.array([t, t], dtype=np.int64),
            np.array([a, 7.0]),
            np.zeros(2, dtype=np.uint8),
        )

    assert rec._keep_columns(poll(1, 0.0)) is not None
    kept = rec.filter_block(poll(2, 0.5))  # within the deadband: a left out, b kept
    assert kept is not None
    assert kept.points == ("b",)
    kept = rec.filter_block(poll(3, 1.5))
    assert kept is not None
    assert kept.points == pts
    assert (
        rec.filter_block(
            SampleBlock(
                "d",
                ("a",),
                np.array([4]),
                np.array([1.5]),
                np.array([int(Quality.GOOD)], dtype=np.uint8),
            )
        )
        is None
    )
