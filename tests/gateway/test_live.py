"""The live stream: a snapshot on connect, then each change written to the store."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx

from connectors.base import Sample
from edge.store.base import DeviceHealth
from tests.gateway.support import Gateway, Writer


def _events(resp: httpx.Response) -> Iterator[tuple[str, dict[str, object]]]:
    event = "message"
    for line in resp.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, json.loads(line[6:])
            event = "message"


def test_live_pushes_snapshot_then_changes(gw: Gateway) -> None:
    with (
        gw.client("viewer") as c,
        c.stream("GET", "/api/v1/live", timeout=httpx.Timeout(10.0)) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = _events(resp)
        kind, snap = next(events)
        assert kind == "snapshot"
        assert any(s["device"] == "cnc2" for s in snap["samples"])  # type: ignore[attr-defined]
        w = Writer(gw.store_path)
        try:
            ts = time.time_ns()
            w.write([Sample("cnc2", "state", ts, 3.0), Sample("cnc2", "good", ts, 4242.0)])
            w.health([DeviceHealth(device="cnc2", connected=False, updated_ts=ts, samples=7)])
        finally:
            w.close()
        written = time.monotonic()
        seen: dict[str, object] = {}
        health: dict[str, object] = {}
        for kind, data in events:
            if kind == "latest":
                for s in data["samples"]:  # type: ignore[attr-defined]
                    if s["device"] == "cnc2" and s["ts"] == ts:
                        seen[s["point"]] = s
            elif kind == "health":
                for h in data["devices"]:  # type: ignore[attr-defined]
                    if h["device"] == "cnc2" and h["samples"] == 7:
                        health = h
            if len(seen) == 2 and health:
                break
            assert time.monotonic() - written < 8, "no live update after 8 s"
    assert seen["state"]["state"] == "down"  # type: ignore[index]
    assert seen["good"]["value"] == 4242.0  # type: ignore[index]
    assert health["connected"] is False
    assert health["samples"] == 7
