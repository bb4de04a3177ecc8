"""InfluxStore: the InfluxDB store with a durable local outbox.

``write_batches`` encodes the batches as line protocol and commits them to the SQLite outbox:
that is the acknowledgement. A sender thread owned by the store forwards the outbox to InfluxDB
in order (see :mod:`edge.store.influx.sender`). Reads for the KPI engine query InfluxDB by time
range; ``latest()``, ``last_seq()`` and ``health()`` come from the outbox file, so they work while
InfluxDB is away.

Health of the InfluxDB path is reported as one extra :class:`DeviceHealth` record with the
device id ``sink:influxdb`` (``:`` never occurs in a device id): ``connected`` is False while
InfluxDB does not accept writes, ``samples`` counts samples InfluxDB confirmed, ``drops`` samples
dropped by the outbox bound, ``errors`` the failures by kind (unavailable, auth, not_found,
rejected), and ``extra`` holds pending_samples, pending_batches, oldest_pending_age_s,
replay_rate_sps, quarantined_samples/batches, state, last_error and the rest of
:meth:`InfluxStore.status`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from config.storage import InfluxStorage
from connectors.base import Quality, Sample
from edge.store.base import Batch, DeviceHealth
from edge.store.influx import influxql, lineproto, retention
from edge.store.influx.errors import InfluxError, InfluxNotFound, InfluxUnavailable
from edge.store.influx.outbox import Entry, LatestRow, Outbox, Quarantined
from edge.store.influx.retention import RetentionCheck
from edge.store.influx.sender import LineWriter, Sender
from edge.store.influx.v1 import V1Client, tls_verify
from metrics.series import Series

SINK_HEALTH_ID = "sink:influxdb"

_PASSING = (None, 408, 429, 502, 503, 504)
"""Answers (None: no answer) after which the retention check is retried, not given up."""

log = logging.getLogger("shopfloor.influx")


class _SeriesSource(Protocol):
    def read_range(self, device: str, point: str, start: int, end: int, limit: int) -> Series: ...

    def read_prior(self, device: str, point: str, before: int) -> Series: ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class SiteFilter:
    """Which points reads return: those tagged ``site`` (None: every point, a store without an
    identity), and with ``untagged`` also those written without a site tag."""

    site: str | None
    untagged: bool = False


class _InfluxQLSource:
    def __init__(
        self,
        client: V1Client,
        measurement: str,
        retention_policy: str | None,
        where: SiteFilter = SiteFilter(None),
    ) -> None:
        self._client = client
        self._m = measurement
        self._rp = retention_policy
        self._w = where

    @property
    def client(self) -> V1Client:
        return self._client

    def read_range(self, device: str, point: str, start: int, end: int, limit: int) -> Series:
        q = influxql.select_range(
            self._m, device, point, start, end, limit, self._rp, self._w.site, self._w.untagged
        )
        return self._run(q)

    def read_prior(self, device: str, point: str, before: int) -> Series:
        q = influxql.select_prior(
            self._m, device, point, before, self._rp, self._w.site, self._w.untagged
        )
        return self._run(q)

    def _run(self, q: str) -> Series:
        series = self._client.query(q)
        try:
            return influxql.series_from_result(series)
        except (ValueError, TypeError, IndexError) as exc:
            raise InfluxError(
                f"unexpected InfluxQL answer from {self._client.url}: {exc}"
            ) from None

    def close(self) -> None:
        self._client.close()


class _FluxSource:
    def __init__(
        self, client: Any, bucket: str, measurement: str, where: SiteFilter = SiteFilter(None)
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._m = measurement
        self._w = where

    def read_range(self, device: str, point: str, start: int, end: int, limit: int) -> Series:
        from edge.store.influx import flux

        q = flux.select_range(
            self._bucket, self._m, device, point, start, end, limit, self._w.site, self._w.untagged
        )
        result: Series = self._client.flux(q)
        return result

    def read_prior(self, device: str, point: str, before: int) -> Series:
        from edge.store.influx import flux

        q = flux.select_prior(
            self._bucket, self._m, device, point, before, self._w.site, self._w.untagged
        )
        result: Series = self._client.flux(q)
        return result

    def close(self) -> None:
        """The client is closed by the store (it is shared with the writer)."""


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxStatus:
    """What the InfluxDB path is doing; also the ``extra`` of the ``sink:influxdb`` record."""

    state: str
    pending_samples: int
    pending_batches: int
    oldest_pending_age_s: float | None
    replay_rate_sps: float
    sent_samples: int
    sent_batches: int
    dropped_samples: int
    dropped_batches: int
    quarantined_samples: int
    quarantined_batches: int
    last_error: str
    last_status: int | None
    last_success_ns: int | None
    backoff_s: float
    errors: dict[str, int]
    outbox_max_samples: int
    outbox_drop: str


class _Tagging:
    """The sender's writer: puts the identity into lines an older version queued untagged."""

    def __init__(self, inner: LineWriter, measurement: str, identity: str) -> None:
        self._inner = inner
        self._m = measurement
        self._identity = identity

    def write(self, lines: bytes) -> None:
        self._inner.write(lineproto.add_identity(self._m, lines, self._identity))

    def close(self) -> None:
        self._inner.close()


class InfluxStore:
    """``edge.store.base.Store`` and ``metrics.series.SeriesReader`` on InfluxDB.

    ``site`` (the site file's ``site.id``) and ``gateway`` (``storage.gateway``, default the
    site id) are written as tags on every point, and reads return only the points of ``site``
    (plus untagged ones with ``read_untagged``). ``site=None`` writes and reads untagged points:
    only for tools on a single-site database, never the collector (``open_influx_store``
    always passes the site).
    """

    def __init__(
        self,
        cfg: InfluxStorage,
        *,
        site: str | None = None,
        gateway: str | None = None,
        outbox_path: Path | None = None,
        ca_file: Path | None = None,
        local_cache: Path | None = None,
        start_sender: bool = True,
    ) -> None:
        self.cfg = cfg
        self.measurement = lineproto.check_measurement(cfg.measurement)
        self.site = site
        self.gateway = (gateway or cfg.gateway or site) if site is not None else None
        self.identity = (
            lineproto.identity_tags(site, self.gateway)
            if site is not None and self.gateway is not None
            else ""
        )
        where = SiteFilter(site, cfg.read_untagged)
        self.retention_check: RetentionCheck | None = None
        password = cfg.password.reveal() if cfg.password else None
        token = cfg.token.reveal() if cfg.token else None
        ca = ca_file if ca_file is not None else cfg.ca_file
        self._outbox = Outbox(
            outbox_path or cfg.outbox_path,
            max_samples=cfg.outbox_max_samples,
            drop=cfg.outbox_drop,
            synchronous=cfg.outbox_synchronous,
        )
        self._v2: Any = None
        try:
            writer: LineWriter
            if cfg.api == "v1":
                assert cfg.database is not None
                verify = tls_verify(cfg.url, ca, cfg.verify_tls)
                common: dict[str, Any] = {
                    "database": cfg.database,
                    "retention_policy": cfg.retention_policy,
                    "username": cfg.username,
                    "password": password,
                    "token": token,
                    "verify": verify,
                    "timeout_s": cfg.timeout_s,
                }
                writer = V1Client(cfg.url, **common)
                self._source: _SeriesSource = _InfluxQLSource(
                    V1Client(cfg.url, **common), self.measurement, cfg.retention_policy, where
                )
            else:
                from edge.store.influx.v2 import V2Client

                assert cfg.bucket is not None
                assert cfg.org is not None
                assert token is not None
                self._v2 = V2Client(
                    cfg.url,
                    token=token,
                    org=cfg.org,
                    bucket=cfg.bucket,
                    verify_tls=cfg.verify_tls,
                    ca_file=ca,
                    timeout_s=cfg.timeout_s,
                )
                writer = self._v2
                if cfg.v2_reads == "flux":
                    self._source = _FluxSource(self._v2, cfg.bucket, self.measurement, where)
                else:
                    self._source = _InfluxQLSource(
                        V1Client(
                            cfg.url,
                            database=cfg.bucket,
                            retention_policy=cfg.retention_policy,
                            token=token,
                            verify=tls_verify(cfg.url, ca, cfg.verify_tls),
                            timeout_s=cfg.timeout_s,
                        ),
                        self.measurement,
                        cfg.retention_policy,
                        where,
                    )
        except BaseException:
            self._outbox.close()
            raise
        self._writer = writer
        self._cache: Any = None
        cache_path = local_cache if local_cache is not None else cfg.local_cache
        if cache_path is not None:
            from edge.store.sqlite import SqliteStore

            try:
                self._cache = SqliteStore(cache_path)
            except BaseException:
                self._source.close()
                writer.close()
                self._outbox.close()
                raise
        self._sender = Sender(
            self._outbox,
            _Tagging(writer, self.measurement, self.identity) if self.identity else writer,
            max_samples=cfg.batch_max_samples,
            backoff_max_s=cfg.replay_backoff_max_s,
            precheck=self.check_retention,
        )
        self._closed = False
        self._passive = False
        if start_sender:
            if self._outbox.try_lock_sender():
                self._sender.start()
            else:
                self._passive = True
                log.info(
                    "influx: another process sends the outbox %s; this one only adds to it",
                    self._outbox.path,
                )

    # ---- Store: writes -----------------------------------------------------------------

    def write_batches(self, batches: Sequence[Batch]) -> None:
        """Commit the batches to the outbox (the acknowledgement) and wake the sender.

        Every batch is validated and encoded first: a sample that cannot be written (empty or
        malformed device/point name, non-numeric value, non-int timestamp) raises
        :class:`lineproto.LineProtocolError` and nothing of the call is stored.
        """
        self._check_open()
        entries: list[Entry] = []
        seqs: dict[str, int] = {}
        newest: dict[tuple[str, str], Sample] = {}
        for b in batches:
            if not b.source:
                raise lineproto.LineProtocolError("batch without a source")
            if not isinstance(b.seq, int) or b.seq < 1:
                raise lineproto.LineProtocolError(f"batch {b.source}: bad sequence {b.seq!r}")
            seqs[b.source] = max(seqs.get(b.source, 0), b.seq)
            if not b.samples:
                continue
            lines = lineproto.encode(self.measurement, b.samples, self.identity)
            entries.append(
                Entry(b.source, b.seq, len(b.samples), int(b.first_ts), int(b.last_ts), lines)
            )
            for s in b.samples:
                key = (s.device, s.point)
                cur = newest.get(key)
                if cur is None or s.ts >= cur.ts:
                    newest[key] = s
        latest: list[LatestRow] = [
            (s.device, s.point, int(s.ts), _sql_float(s.value), int(s.quality), s.status or "")
            for s in newest.values()
        ]
        if self._cache is not None:
            self._write_cache([b for b in batches if b.samples])
        self._outbox.append(entries, seqs, latest)
        self._sender.wake()

    def _write_cache(self, batches: list[Batch]) -> None:
        """Also store the batches in the embedded SQLite copy (``local_cache``). A batch the
        copy already holds (a retried call whose outbox commit failed) is skipped."""
        from edge.store.sqlite import BatchConflict

        try:
            self._cache.write_batches(batches)
        except BatchConflict:
            for b in batches:
                try:
                    self._cache.write_batches([b])
                except BatchConflict:
                    continue

    def last_seq(self, source: str) -> int:
        self._check_open()
        return self._outbox.last_seq(source)

    def write_health(self, records: Sequence[DeviceHealth]) -> None:
        self._check_open()
        self._outbox.write_health((r.device, dataclasses.asdict(r)) for r in records)
        if self._cache is not None:
            self._cache.write_health([*records, self.sink_health()])

    # ---- Store: reads ------------------------------------------------------------------

    def health(self) -> list[DeviceHealth]:
        """The devices' records (as written by the collector) and the ``sink:influxdb`` one."""
        self._check_open()
        out = [DeviceHealth(**rec) for _, rec in self._outbox.health()]
        out.append(self.sink_health())
        return out

    def sink_health(self) -> DeviceHealth:
        st = self.status()
        return DeviceHealth(
            device=SINK_HEALTH_ID,
            connected=st.state in ("idle", "sending"),
            last_good_ts=st.last_success_ns,
            last_sample_ts=st.last_success_ns,
            samples=st.sent_samples,
            errors=dict(st.errors),
            restarts=0,
            drops=st.dropped_samples,
            updated_ts=time.time_ns(),
            extra=dataclasses.asdict(st),
        )

    def status(self) -> OutboxStatus:
        self._check_open()
        pending_n, pending_b = self._outbox.pending()
        oldest = self._outbox.oldest_created_ns()
        counters = self._outbox.counters()
        sender = self._sender.status()
        state = sender.state
        if self._passive:
            state = "passive"
        elif state == "idle" and pending_n and not self._sender.alive:
            state = "stopped"
        return OutboxStatus(
            state=state,
            pending_samples=pending_n,
            pending_batches=pending_b,
            oldest_pending_age_s=(time.time_ns() - oldest) / 1e9 if oldest is not None else None,
            replay_rate_sps=round(sender.replay_rate_sps, 1),
            sent_samples=counters["sent_samples"],
            sent_batches=counters["sent_batches"],
            dropped_samples=counters["dropped_samples"],
            dropped_batches=counters["dropped_batches"],
            quarantined_samples=counters["quarantined_samples"],
            quarantined_batches=counters["quarantined_batches"],
            last_error=sender.last_error,
            last_status=sender.last_status,
            last_success_ns=sender.last_success_ns,
            backoff_s=sender.backoff_s,
            errors=sender.errors,
            outbox_max_samples=self.cfg.outbox_max_samples,
            outbox_drop=self.cfg.outbox_drop,
        )

    def check_retention(self) -> RetentionCheck:
        """Read (on 1.x create when missing) the retention InfluxDB applies and compare it with
        ``storage.retention``; logged once. The sender runs it before its first write.

        Raises :class:`InfluxError` when InfluxDB cannot answer (retried) and
        :class:`InfluxRetentionError` for a mismatch with ``strict``.
        """
        cfg = self.cfg
        check: RetentionCheck | None = None
        error: InfluxError | None = None
        try:
            if isinstance(self._source, _InfluxQLSource) and cfg.api == "v1":
                assert cfg.database is not None
                check = retention.check_v1(
                    self._source.client, cfg.database, cfg.retention_policy, cfg.retention
                )
            elif cfg.api == "v2" and cfg.v2_reads == "flux":
                check = retention.check_v2(self._v2, cfg.retention)
            else:
                error = InfluxError(
                    "InfluxDB 3.x (v2 API with InfluxQL reads) sets retention on the database; "
                    "check it with the influxdb3 CLI"
                )
        except InfluxNotFound:
            raise  # no such database/bucket: writes fail too; retried with them
        except InfluxUnavailable as exc:
            if exc.status in _PASSING:
                raise
            error = exc
        except InfluxError as exc:  # no right to read the policies, no such API
            error = exc
        self.retention_check = retention.settle(check, error, cfg.retention)
        return self.retention_check

    def quarantined(self) -> list[Quarantined]:
        """Batches InfluxDB refused, with the status and body of its answer."""
        self._check_open()
        return self._outbox.quarantined()

    def requeue_quarantined(self, ids: Sequence[int] | None = None) -> int:
        """Send quarantined batches (all, or those ``ids``) again, after fixing the cause."""
        self._check_open()
        moved = self._outbox.requeue(ids)
        self._sender.wake()
        return moved

    def latest(self, device: str | None = None) -> list[Sample]:
        self._check_open()
        return [
            Sample(d, p, ts, v, Quality(q), st)
            for d, p, ts, v, q, st in self._outbox.latest(device)
        ]

    def series(self) -> list[tuple[str, str]]:
        """Every (device, point) this gateway has written."""
        return [(d, p) for d, p, *_ in self._outbox.latest()]

    def read(self, device: str, point: str, start: int, end: int, *, prior: bool = False) -> Series:
        """Samples of one point with ``start <= ts < end`` from InfluxDB, in time order, read in
        chunks of ``read_chunk_points``; ``prior`` prepends the last sample before ``start``.
        With ``reads: local_cache`` they come from the embedded copy instead.

        Raises :class:`InfluxError` (with the reason) when InfluxDB cannot answer. Samples still
        waiting in the outbox are not included: see ``status().pending_samples``.
        """
        self._check_open()
        if end < start:
            raise ValueError(f"read {device}/{point}: end {end} is before start {start}")
        if self.cfg.reads == "local_cache" and self._cache is not None:
            cached: Series = self._cache.read(device, point, start, end, prior=prior)
            return cached
        lineproto.check_tag_value("device", device)
        lineproto.check_tag_value("point", point)
        parts: list[Series] = []
        if prior:
            parts.append(self._source.read_prior(device, point, start))
        chunk = self.cfg.read_chunk_points
        cursor = start
        while cursor < end:
            part = self._source.read_range(device, point, cursor, end, chunk)
            parts.append(part)
            if len(part) < chunk:
                break
            cursor = int(part.ts[-1]) + 1
        return influxql.concat(parts)

    # ---- lifecycle ---------------------------------------------------------------------

    def wait_drained(self, timeout: float) -> bool:
        """Wait until the outbox is empty (True) or ``timeout`` seconds passed (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if self._outbox.pending()[0] == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def close(self, drain_s: float = 2.0) -> None:
        """Stop the sender (after up to ``drain_s`` seconds of sending what is pending while
        InfluxDB accepts writes) and close everything. Rows not sent stay in the outbox and are
        sent by the next run."""
        if self._closed:
            return
        deadline = time.monotonic() + drain_s
        while (
            self._sender.alive
            and self._outbox.pending()[0]
            and self._sender.status().state in ("idle", "sending")
            and time.monotonic() < deadline
        ):
            time.sleep(0.01)
        self._closed = True
        self._sender.stop(timeout=self.cfg.timeout_s + 5)
        try:
            self._source.close()
            self._writer.close()
            if self._cache is not None:
                self._cache.close()
        finally:
            self._outbox.close()

    def _check_open(self) -> None:
        if self._closed:
            raise InfluxError("the InfluxDB store is closed")

    def __enter__(self) -> InfluxStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sql_float(value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v
