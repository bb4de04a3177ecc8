"""Read-only access to one site's points in a shared (central) InfluxDB, for the group view.

No outbox, no local file, no sender: a :class:`CentralReader` only queries InfluxDB over
InfluxQL (1.x; 2.x through its v1 compatibility API with a DBRP mapping; 3.x), filtered by the
``site`` tag every gateway writes. Any number of readers (one per site) share one
:class:`~edge.store.influx.v1.V1Client`; several processes holding them agree, since all the
state is in InfluxDB.
"""

from __future__ import annotations

import math
from pathlib import Path

from config.group import CentralInflux
from connectors.base import Quality, Sample
from edge.store.base import DeviceHealth
from edge.store.influx import influxql, lineproto
from edge.store.influx.errors import InfluxError
from edge.store.influx.v1 import V1Client, tls_verify
from metrics.series import Series

_QUALITIES = {0: Quality.GOOD, 1: Quality.UNCERTAIN, 2: Quality.BAD}


def central_client(cfg: CentralInflux, ca_file: Path | None = None) -> V1Client:
    """A query client on the central InfluxDB (``/query`` of 1.x, of the 2.x v1 compatibility
    API, or of 3.x; the v2 API's bucket is the InfluxQL database)."""
    return V1Client(
        cfg.url,
        database=cfg.db,
        retention_policy=cfg.retention_policy,
        username=cfg.username,
        password=cfg.password.reveal() if cfg.password else None,
        token=cfg.token.reveal() if cfg.token else None,
        verify=tls_verify(cfg.url, ca_file if ca_file is not None else cfg.ca_file, cfg.verify_tls),
        timeout_s=cfg.timeout_s,
    )


class CentralReader:
    """``metrics.series.SeriesReader`` plus ``latest()``/``health()`` over the points tagged
    ``site`` in the central InfluxDB (points without a site tag are never read: in a shared
    store they belong to no site)."""

    def __init__(
        self,
        client: V1Client,
        site: str,
        *,
        measurement: str = "samples",
        retention_policy: str | None = None,
        chunk: int = 100_000,
    ) -> None:
        lineproto.check_tag_value("site", site)
        self._client = client
        self.site = site
        self._m = lineproto.check_measurement(measurement)
        self._rp = retention_policy
        self._chunk = chunk

    def _series(self, q: str) -> Series:
        try:
            return influxql.series_from_result(self._client.query(q))
        except (ValueError, TypeError, IndexError) as exc:
            raise InfluxError(
                f"unexpected InfluxQL answer from {self._client.url}: {exc}"
            ) from None

    def read(self, device: str, point: str, start: int, end: int, *, prior: bool = False) -> Series:
        """Samples of one point of the site with ``start <= ts < end``, in time order, read in
        chunks; ``prior`` prepends the last sample before ``start``."""
        if end < start:
            raise ValueError(f"read {device}/{point}: end {end} is before start {start}")
        lineproto.check_tag_value("device", device)
        lineproto.check_tag_value("point", point)
        parts: list[Series] = []
        if prior:
            q = influxql.select_prior(self._m, device, point, start, self._rp, self.site)
            parts.append(self._series(q))
        cursor = start
        while cursor < end:
            q = influxql.select_range(
                self._m, device, point, cursor, end, self._chunk, self._rp, self.site
            )
            part = self._series(q)
            parts.append(part)
            if len(part) < self._chunk:
                break
            cursor = int(part.ts[-1]) + 1
        return influxql.concat(parts)

    def latest(self, device: str | None = None) -> list[Sample]:
        """The newest sample of every point of the site (of ``device`` only, if given)."""
        q = influxql.select_latest(self._m, self._rp, self.site, device)
        try:
            rows = influxql.latest_from_result(self._client.query(q))
        except (ValueError, TypeError, KeyError) as exc:
            raise InfluxError(
                f"unexpected InfluxQL answer from {self._client.url}: {exc}"
            ) from None
        out: list[Sample] = []
        for dev, point, ts, value, quality, status in rows:
            v = float(value) if isinstance(value, int | float) else math.nan
            qual = (
                _QUALITIES.get(int(quality), Quality.BAD)
                if isinstance(quality, int | float)
                else Quality.GOOD
            )
            out.append(Sample(dev, point, ts, v, qual, str(status) if status else ""))
        return sorted(out, key=lambda s: (s.device, s.point))

    def health(self) -> list[DeviceHealth]:
        """Connection health lives on each site's gateway, not in the central store."""
        return []

    def close(self) -> None:
        """The client is shared by the readers of a group and closed by its owner."""
