"""heal(): the value in force at an outage marker (connectors/opcua/history.py)."""

from __future__ import annotations

from config.models import Point
from connectors.base import Sample
from connectors.opcua.history import heal
from connectors.opcua.subscription import PointRef

S = 1_000_000_000


def _ref(marker: int, first: Sample | None) -> PointRef:
    ref = PointRef("m1", Point.model_validate({"id": "count"}))
    ref.markers = [marker]
    ref.first = first
    ref.first_ts = None if first is None else first.ts
    ref.since_value = 9.0  # known when the session began
    # what the connector holds once the session's first value came in
    ref.last_value = None if first is None else first.value
    return ref


def test_the_sessions_first_value_before_the_marker_is_the_value_in_force() -> None:
    """The marker (link_lost noticed late, or gateway_down at the last heartbeat) lies after the
    session's first value: the history window ends just before that value, so the value in
    force at the marker is the session's first value, not the last history value before it
    (seen end to end: a server restart noticed 4.5 s late healed with the previous count)."""
    first = Sample("m1", "count", 21 * S, 12.0)
    ref = _ref(23 * S + 101, first)
    history = [Sample("m1", "count", 19 * S, 10.0), Sample("m1", "count", 20 * S, 11.0)]
    out = heal(ref, history, 21 * S - 1000)
    assert [(s.ts, s.value) for s in out] == [(23 * S + 101, 12.0)]
    assert ref.markers == []


def test_a_marker_before_the_sessions_first_value_holds_the_history_value() -> None:
    first = Sample("m1", "count", 21 * S, 12.0)
    ref = _ref(19 * S + 500, first)
    history = [Sample("m1", "count", 19 * S, 10.0), Sample("m1", "count", 20 * S, 11.0)]
    out = heal(ref, history, 21 * S - 1000)
    assert [(s.ts, s.value) for s in out] == [(19 * S + 500, 10.0)]


def test_a_marker_before_any_history_value_holds_the_last_known_value() -> None:
    """Not the session's first value (newer than the marker), which the connector already
    holds as its latest value (seen end to end: a count of 12 healed in at a link_lost marker
    before the parts 10 and 11)."""
    ref = _ref(18 * S, Sample("m1", "count", 21 * S, 12.0))
    out = heal(ref, [Sample("m1", "count", 19 * S, 10.0)], 21 * S - 1000)
    assert [(s.ts, s.value) for s in out] == [(18 * S, 9.0)]
