"""A subscription that turns notifications straight into samples, and knows when it last lived.

Subclasses asyncua's :class:`Subscription` only to replace its per-item callback path: a
publish response becomes one ``put_many`` of samples (fast for thousands of items), and every
publish response, keep-alives included, records the subscription as alive for the watchdog.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from asyncua import ua
from asyncua.client.ua_client import UaClient
from asyncua.common.subscription import Subscription

from config.models import Point
from connectors.base import Quality, Sample, Sink, now_ns
from connectors.opcua.convert import ns_of, sample_of
from connectors.opcua.select import Selector
from connectors.opcua.session import chunks

log = logging.getLogger("shopfloor.opcua")


@dataclass(slots=True)
class PointRef:
    """One configured point and where it lives on the server."""

    device: str
    point: Point
    node_id: ua.NodeId | None = None
    status: str = ""  # why the node could not be resolved
    eu_range: float | None = None
    first_ts: int | None = None  # first sample seen in the current session
    last_ts: int | None = None  # newest sample seen or stored (kept across sessions)
    last_value: float | None = None  # the good value in force at last_ts
    since: int | None = None  # last_ts when the current session began (the backfill's start)
    since_value: float | None = None  # last_value when the current session began
    historizing: bool = False
    # outage markers written for this point and not yet superseded by a good sample (ts)
    markers: list[int] = field(default_factory=list)
    pending_down: int | None = None  # the gateway_down marker to write unless restored
    first: Sample | None = None  # first good sample of the current session
    resent: Sample | None = None  # a stale re-sent value held back for the backfill
    handle: int = 0
    scale: float = field(init=False, default=1.0)
    offset: float = field(init=False, default=0.0)
    select: Selector | None = field(init=False, default=None)  # a field / element of the value

    def __post_init__(self) -> None:
        self.scale = self.point.scale
        self.offset = self.point.offset
        self.select = Selector.of(self.point.opcua)

    @property
    def key(self) -> tuple[str, str]:
        return (self.device, self.point.id)


class _NoHandler:
    """asyncua wants a handler object; ours is the subscription itself."""


class SampleSubscription(Subscription):  # type: ignore[misc]
    def __init__(
        self,
        uaclient: UaClient,
        params: ua.CreateSubscriptionParameters,
        sink: Sink,
        on_sample: Callable[[PointRef, Sample], Sample | None],
    ) -> None:
        super().__init__(uaclient, params, _NoHandler())
        self.sink = sink
        self.on_sample = on_sample
        self.refs: dict[int, PointRef] = {}
        self.last_alive = time.monotonic()
        self.lost: str | None = None
        self.notifications = 0

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        self.last_alive = time.monotonic()
        data = publish_result.NotificationMessage.NotificationData
        if not data:
            return
        now = now_ns()
        for notif in data:
            if isinstance(notif, ua.DataChangeNotification):
                items = notif.MonitoredItems
                out = notification_samples(items, self.refs, now, self.on_sample)
                self.notifications += len(items)
                if out:
                    self.sink.put_many(out)
            elif isinstance(notif, ua.StatusChangeNotification):
                status = notif.Status
                if not status.is_good():
                    self.lost = status.name
                    log.warning("subscription %s status %s", self.subscription_id, status.name)

    async def add_points(
        self, refs: Sequence[PointRef], publishing_ms: float, limit: int
    ) -> list[tuple[PointRef, ua.StatusCode]]:
        """Create monitored items (batched to MaxMonitoredItemsPerCall); returns failures."""
        failures: list[tuple[PointRef, ua.StatusCode]] = []
        for part in chunks(refs, limit):
            requests = [self._request(ref, publishing_ms) for ref in part]
            params = ua.CreateMonitoredItemsParameters()
            params.SubscriptionId = self.subscription_id
            params.ItemsToCreate = requests
            params.TimestampsToReturn = ua.TimestampsToReturn.Both
            for ref in part:
                self.refs[ref.handle] = ref
            results = await self.server.create_monitored_items(params)
            for ref, res in zip(part, results, strict=True):
                if not res.StatusCode.is_good():
                    del self.refs[ref.handle]
                    failures.append((ref, res.StatusCode))
        return failures

    def _request(self, ref: PointRef, publishing_ms: float) -> ua.MonitoredItemCreateRequest:
        addr = ref.point.opcua
        assert addr is not None
        assert ref.node_id is not None
        self._client_handle += 1
        ref.handle = self._client_handle
        rv = ua.ReadValueId()
        rv.NodeId = ref.node_id
        rv.AttributeId = ua.AttributeIds.Value
        mp = ua.MonitoringParameters()
        mp.ClientHandle = ref.handle
        if addr.sampling_ms is not None:
            mp.SamplingInterval = addr.sampling_ms
        elif ref.point.interval_ms is not None:
            mp.SamplingInterval = float(ref.point.interval_ms)
        else:
            mp.SamplingInterval = float(publishing_ms)
        mp.QueueSize = addr.queue_size
        mp.DiscardOldest = True
        flt = deadband_filter(ref)
        if flt is not None:
            mp.Filter = flt
        req = ua.MonitoredItemCreateRequest()
        req.ItemToMonitor = rv
        req.MonitoringMode = ua.MonitoringMode.Reporting
        req.RequestedParameters = mp
        return req


def notification_samples(
    items: Iterable[ua.MonitoredItemNotification],
    refs: Mapping[int, PointRef],
    now: int,
    keep: Callable[[PointRef, Sample], Sample | None],
) -> list[Sample]:
    """The samples of one DataChangeNotification's items, as ``keep`` returns them (None:
    dropped; it may also re-stamp one).

    Same samples as :func:`sample_of` item by item, with a fast path for the common case (good
    status, a plain float or int value, a source timestamp): the timestamp conversion is done
    once per distinct source timestamp of the notification (a scan stamps many items alike; a
    queue size above 1 interleaves a few scans) and the checks of the general path are
    skipped. Anything else goes through :func:`sample_of`.
    """
    out: list[Sample] = []
    append = out.append
    good = Quality.GOOD
    stamps: dict[object, int | None] = {}
    for item in items:
        ref = refs.get(item.ClientHandle)
        if ref is None:
            continue
        dv = item.Value
        code = dv.StatusCode_
        variant = dv.Value
        moment = dv.SourceTimestamp
        if (
            (code is None or code.value == 0)
            and variant is not None
            and moment is not None
            and type(raw := variant.Value) in _PLAIN
            and raw == raw  # NaN: the general path
            and ref.point.enum is None  # a text point: the general path (numbers refused)
            and ref.select is None  # a part of a structure or array: the general path
        ):
            try:
                ts = stamps[moment]
            except KeyError:
                ts = stamps[moment] = ns_of(moment)
            if ts is not None:
                value = float(raw)
                if ref.scale != 1.0 or ref.offset != 0.0:
                    value = value * ref.scale + ref.offset
                kept = keep(ref, Sample(ref.device, ref.point.id, ts, value, good, ""))
                if kept is not None:
                    append(kept)
                continue
        kept = keep(
            ref,
            sample_of(
                ref.device,
                ref.point.id,
                dv,
                now,
                ref.scale,
                ref.offset,
                enum=ref.point.enum,
                select=ref.select,
            ),
        )
        if kept is not None:
            append(kept)
    return out


_PLAIN = frozenset({float, int})


def deadband_filter(ref: PointRef) -> ua.DataChangeFilter | None:
    """The server-side DataChangeFilter of a point's deadband.

    A percent deadband needs the node's EURange: used as Percent when the server has one;
    otherwise it falls back to an absolute deadband of ``value% x deadband.range`` (from the
    site file), or to none, with a clear log line in both cases.
    """
    db = ref.point.deadband
    if db is None or db.value == 0:
        return None
    flt = ua.DataChangeFilter()
    flt.Trigger = ua.DataChangeTrigger.StatusValue
    if db.kind == "absolute":
        flt.DeadbandType = ua.DeadbandType.Absolute
        flt.DeadbandValue = db.value
        return flt
    if ref.eu_range is not None:
        flt.DeadbandType = ua.DeadbandType.Percent
        flt.DeadbandValue = db.value
        return flt
    if db.range is not None and math.isfinite(db.range):
        absolute = db.value / 100.0 * db.range
        log.warning(
            "%s/%s: the server gives no EURange for a percent deadband; using an absolute "
            "deadband of %g (%g%% of the configured range %g)",
            ref.device,
            ref.point.id,
            absolute,
            db.value,
            db.range,
        )
        flt.DeadbandType = ua.DeadbandType.Absolute
        flt.DeadbandValue = absolute
        return flt
    log.warning(
        "%s/%s: the server gives no EURange and the site file no deadband.range: percent "
        "deadband not applied (every change is delivered)",
        ref.device,
        ref.point.id,
    )
    return None


def subscription_params(publishing_ms: float, watchdog_s: float) -> ua.CreateSubscriptionParameters:
    """Keep-alives at least three times per watchdog period, so silence means trouble."""
    params = ua.CreateSubscriptionParameters()
    params.RequestedPublishingInterval = publishing_ms
    keepalive = max(1, int(watchdog_s * 1000.0 / 3.0 / max(publishing_ms, 1.0)))
    params.RequestedMaxKeepAliveCount = keepalive
    params.RequestedLifetimeCount = keepalive * 4
    params.MaxNotificationsPerPublish = 0
    params.PublishingEnabled = True
    params.Priority = 0
    return params
