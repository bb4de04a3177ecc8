"""Change-based recording: deadband (absolute, percent of range, percent of value) + heartbeat."""

from __future__ import annotations

import math

from config.models import Deadband
from connectors.base import Quality, Sample
from edge.recording import Recorder, Rule, rule_for, rules_of

S = 1_000_000_000


def run(rule: Rule, values: list[tuple[float, float]], **kw: object) -> list[float]:
    """Feed (t_seconds, value) samples; return the t of those kept."""
    rec = Recorder({("d", "p"): rule})
    out = rec.filter(Sample("d", "p", int(t * S), v) for t, v in values)
    return [x.ts / S for x in out]


def test_absolute_deadband_compares_with_last_kept_value() -> None:
    rule = rule_for(Deadband(kind="absolute", value=1.0), heartbeat_s=1000)
    # slow drift: 0.4 per step never moves 1.0 from the previous sample, but does from the kept one
    kept = run(rule, [(0, 10.0), (1, 10.4), (2, 10.8), (3, 11.2), (4, 11.3), (5, 9.9)])
    assert kept == [0, 3, 5]


def test_exactly_the_deadband_is_not_a_change() -> None:
    rule = rule_for(Deadband(kind="absolute", value=0.5), heartbeat_s=1000)
    assert run(rule, [(0, 1.0), (1, 1.5), (2, 1.51)]) == [0, 2]


def test_percent_of_range() -> None:
    rule = rule_for(Deadband(kind="percent", value=2, range=500), heartbeat_s=1000)
    assert rule.threshold == 10.0
    assert run(rule, [(0, 100.0), (1, 109.0), (2, 111.0)]) == [0, 2]


def test_percent_of_last_value_without_range() -> None:
    rule = rule_for(Deadband(kind="percent", value=10), heartbeat_s=1000)
    assert run(rule, [(0, 100.0), (1, 109.0), (2, 111.0), (3, 121.0), (4, 122.2)]) == [0, 2, 4]


def test_heartbeat_keeps_a_quiet_point_alive() -> None:
    rule = rule_for(Deadband(kind="absolute", value=5), heartbeat_s=10)
    kept = run(rule, [(t, 1.0) for t in range(0, 31, 2)])
    assert kept == [0, 10, 20, 30]


def test_zero_deadband_keeps_every_change_only() -> None:
    rule = rule_for(Deadband(kind="absolute", value=0), heartbeat_s=1000)
    assert run(rule, [(0, 1.0), (1, 1.0), (2, 2.0), (3, 2.0)]) == [0, 2]


def test_quality_status_and_bad_samples_are_always_kept() -> None:
    rule = rule_for(Deadband(kind="absolute", value=100), heartbeat_s=1000)
    rec = Recorder({("d", "p"): rule})
    seq = [
        Sample("d", "p", 0, 1.0),
        Sample("d", "p", 1, 1.0, Quality.UNCERTAIN),  # quality changed
        Sample("d", "p", 2, 1.0, Quality.UNCERTAIN),  # nothing changed
        Sample("d", "p", 3, math.nan, Quality.BAD, "timeout"),
        Sample("d", "p", 4, math.nan, Quality.BAD, "timeout"),  # bad: always kept
        Sample("d", "p", 5, 1.0),  # back to good
        Sample("d", "p", 6, 1.0, Quality.GOOD, "clamped"),  # status changed
        Sample("d", "p", 7, 1.0, Quality.GOOD, "clamped"),
    ]
    assert [x.ts for x in rec.filter(seq)] == [0, 1, 3, 4, 5, 6]
    assert (rec.seen, rec.kept) == (8, 6)


def test_points_without_deadband_and_per_point_heartbeat(tmp_path: object) -> None:
    from config.loader import load_site_text

    site = load_site_text(
        """
site: {id: s, name: S}
runtime: {heartbeat_s: 100}
devices:
  - id: m
    name: M
    modbus: {host: 127.0.0.1, port: 1502, unit: 1}
    points:
      - {id: a, modbus: {address: 0}, deadband: {value: 1}}
      - {id: b, modbus: {address: 2}, deadband: {value: 1}, heartbeat_s: 5}
      - {id: c, modbus: {address: 4}}
"""
    )
    rules = rules_of(site)
    assert rules[("m", "a")].heartbeat_ns == 100 * S
    assert rules[("m", "b")].heartbeat_ns == 5 * S
    assert ("m", "c") not in rules
    rec = Recorder(rules)
    samples = [Sample("m", p, t * S, 0.0) for t in range(0, 12, 3) for p in "abc"]
    kept = rec.filter(samples)
    assert [(x.point, x.ts // S) for x in kept] == [
        ("a", 0),
        ("b", 0),
        ("c", 0),
        ("c", 3),
        ("b", 6),
        ("c", 6),
        ("c", 9),
    ]


def test_filter_agrees_with_keep_one_by_one() -> None:
    """The inlined batch filter and the one-sample rule decide the same (random sequences)."""
    import random

    rng = random.Random(5)
    rules = {
        ("d", "abs"): rule_for(Deadband(kind="absolute", value=1.0), heartbeat_s=20),
        ("d", "pct"): rule_for(Deadband(kind="percent", value=5), heartbeat_s=7),
        ("d", "zero"): rule_for(Deadband(kind="absolute", value=0), heartbeat_s=1000),
    }
    samples = []
    for i in range(3000):
        point = rng.choice(["abs", "pct", "zero", "free"])
        q = rng.choice([Quality.GOOD] * 8 + [Quality.UNCERTAIN, Quality.BAD])
        v = math.nan if q == Quality.BAD or rng.random() < 0.02 else round(rng.gauss(50, 2), 1)
        ts = i * S // 2 - (S if rng.random() < 0.01 else 0)
        samples.append(Sample("d", point, ts, v, q, rng.choice(["", "", "", "x"])))
    one = Recorder(rules)
    expected = [s for s in samples if one.keep(s)]
    got = Recorder(rules).filter(samples)
    assert got == expected
    assert 0 < len(got) < len(samples)
