"""Per-device health as the collector sees it (recorded in the store).

Sources of each figure:

- ``connected``: the connector's ``Sink.link`` reports; the supervisor marks a failed
  connector's devices disconnected;
- ``samples``, ``last_sample_ts``, ``last_good_ts``: counted by the writer from what it takes off
  the queue (received samples, before change-based recording; the supervisor's ``link_lost``
  markers are not counted);
- ``errors``: ``Sink.error`` kinds, the supervisor's failure kinds (``link_lost``,
  ``auth_failed``, ``crash:<Exception>``) and ``bad:<status>`` for every bad sample;
- ``restarts``: connector restarts by the supervisor;
- ``drops``: samples the queue dropped on overflow.

The writer counts a :class:`connectors.base.SampleBlock` with :meth:`HealthTracker.observe_block`
(a few numpy reductions per block; rows are visited only when some are bad).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from operator import attrgetter
from pathlib import Path

import numpy as np

from config.markers import is_marker
from connectors.base import Quality, Sample, SampleBlock, now_ns
from edge.store.base import DeviceHealth

_ts = attrgetter("ts")
_GOOD = int(Quality.GOOD)
_BAD = int(Quality.BAD)
_quality = attrgetter("quality")


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

    def observe(self, device: str, samples: Sequence[Sample]) -> None:
        """Count samples of one device taken off the queue."""
        if not samples:
            return
        quals = list(map(_quality, samples))
        if quals.count(Quality.GOOD) != len(quals):
            # outage markers (link_lost, gateway_down, auth_failed) are not readings of the
            # device (the outage is already counted as its error kind)
            real = [s for s in samples if s.quality != Quality.BAD or not is_marker(s.status)]
            if len(real) != len(samples):
                if not real:
                    return
                samples = real
                quals = list(map(_quality, samples))
        h = self._get(device)
        ts = list(map(_ts, samples))
        newest = max(ts)
        if h.last_sample_ts is None or newest > h.last_sample_ts:
            h.last_sample_ts = newest
        h.samples += len(ts)
        if quals.count(Quality.GOOD) == len(quals):
            good = newest
        else:
            good_ts = [t for t, q in zip(ts, quals, strict=True) if q == Quality.GOOD]
            good = max(good_ts) if good_ts else None
            errors = h.errors
            for s in samples:
                if s.quality == Quality.BAD:
                    kind = f"bad:{s.status or 'unknown'}"
                    errors[kind] = errors.get(kind, 0) + 1
        if good is not None and (h.last_good_ts is None or good > h.last_good_ts):
            h.last_good_ts = good

    def observe_block(self, block: SampleBlock) -> None:
        """:meth:`observe` of a block of one device: counted from its arrays (rows are read one
        by one only when some are bad, for their error kinds)."""
        n = len(block)
        if not n:
            return
        ts = block.ts
        quality = block.quality
        if not quality.any():  # all good (GOOD is 0): the usual poll
            h = self._get(block.device)
            newest = int(ts.max())
            if h.last_sample_ts is None or newest > h.last_sample_ts:
                h.last_sample_ts = newest
            h.samples += n
            if h.last_good_ts is None or newest > h.last_good_ts:
                h.last_good_ts = newest
            return
        bad_rows = np.flatnonzero(quality == _BAD).tolist()
        st = block.statuses
        kinds: list[str] = []
        real = None
        if bad_rows:
            statuses = [st[i] if st is not None else "" for i in bad_rows]
            # outage markers are not readings of the device (see :meth:`observe`)
            markers = [i for i, x in zip(bad_rows, statuses, strict=True) if is_marker(x)]
            if markers:
                if len(markers) == n:
                    return
                real = np.ones(n, dtype=bool)
                real[markers] = False
                ts, quality = ts[real], quality[real]
            kinds = [f"bad:{x or 'unknown'}" for x in statuses if not is_marker(x)]
        h = self._get(block.device)
        newest = int(ts.max())
        if h.last_sample_ts is None or newest > h.last_sample_ts:
            h.last_sample_ts = newest
        h.samples += int(ts.shape[0])
        good_ts = ts[quality == _GOOD]
        if good_ts.shape[0]:
            good = int(good_ts.max())
            if h.last_good_ts is None or good > h.last_good_ts:
                h.last_good_ts = good
        errors = h.errors
        for kind in kinds:
            errors[kind] = errors.get(kind, 0) + 1

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


def touch_alive(path: Path) -> None:
    """Set the modification time of ``path`` to now (created when missing): the collector's
    sign of life for a liveness probe (``runtime.alive_file``). A failure is logged, never
    raised (needs no free space when the file exists)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.utime(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        logging.getLogger("shopfloor.collector").warning("cannot touch %s: %s", path, exc)
