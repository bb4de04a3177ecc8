"""Per-device health as the collector sees it (recorded in the store).

Sources of each figure:

- ``connected``: the connector's ``Sink.link`` reports; the supervisor marks a failed
  connector's devices disconnected;
- ``samples``, ``last_sample_ts``, ``last_good_ts``: counted by the writer from what it takes off
  the queue (received samples, before change-based recording);
- ``errors``: ``Sink.error`` kinds, the supervisor's failure kinds (``link_lost``,
  ``crash:<Exception>``) and ``bad:<status>`` for every bad sample;
- ``restarts``: connector restarts by the supervisor;
- ``drops``: samples the queue dropped on overflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from connectors.base import Quality, Sample, now_ns
from edge.store.base import DeviceHealth


class HealthTracker:
    """Health of every device, updated from the event loop thread."""

    def __init__(self, devices: Iterable[str] = ()) -> None:
        self._h: dict[str, DeviceHealth] = {}
        for d in devices:
            self._get(d)

    def _get(self, device: str) -> DeviceHealth:
        h = self._h.get(device)
        if h is None:
            h = self._h[device] = DeviceHealth(device=device)
        return h

    def __contains__(self, device: str) -> bool:
        return device in self._h

    def get(self, device: str) -> DeviceHealth:
        return self._get(device)

    # -- Sink side ----------------------------------------------------------------------------

    def link(self, device: str, connected: bool) -> None:
        self._get(device).connected = connected

    def error(self, device: str, kind: str, n: int = 1) -> None:
        errors = self._get(device).errors
        errors[kind] = errors.get(kind, 0) + n

    # -- supervisor side ----------------------------------------------------------------------

    def connector_failed(self, devices: Iterable[str], kind: str) -> None:
        for d in devices:
            self.link(d, False)
            self.error(d, kind)

    def restarted(self, devices: Iterable[str]) -> None:
        for d in devices:
            self._get(d).restarts += 1

    # -- writer side --------------------------------------------------------------------------

    def observe(self, device: str, samples: Iterable[Sample]) -> None:
        """Count samples of one device taken off the queue."""
        h = self._get(device)
        n = 0
        last_ts = h.last_sample_ts
        last_good = h.last_good_ts
        for s in samples:
            n += 1
            ts = s.ts
            if last_ts is None or ts > last_ts:
                last_ts = ts
            if s.quality == Quality.GOOD:
                if last_good is None or ts > last_good:
                    last_good = ts
            elif s.quality == Quality.BAD:
                kind = f"bad:{s.status or 'unknown'}"
                h.errors[kind] = h.errors.get(kind, 0) + 1
        h.samples += n
        h.last_sample_ts = last_ts
        h.last_good_ts = last_good

    def set_drops(self, drops: Mapping[str, int]) -> None:
        for d, n in drops.items():
            self._get(d).drops = n

    def snapshot(self) -> list[DeviceHealth]:
        """Copies of every record, stamped now (safe to hand to another thread)."""
        ts = now_ns()
        return [
            replace(h, errors=dict(h.errors), extra=dict(h.extra), updated_ts=ts)
            for h in self._h.values()
        ]
