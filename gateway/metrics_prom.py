"""``/metrics`` in the Prometheus text format.

Collector figures come from the health records the collector writes into the store (never from
calling the collector): samples and samples/s per device and connector (protocol), drops,
reconnects (restarts), errors by kind, outbox backlog, connected. API latency is a histogram
filled by a middleware of this service. Each app has its own registry.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from config.models import SiteConfig
from edge.store.base import DeviceHealth

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# health ``extra`` fields exported per device: (key, family, metric name, help, scale)
_EXTRA_SERIES: tuple[
    tuple[str, type[CounterMetricFamily | GaugeMetricFamily], str, str, float], ...
] = (
    ("modbus_requests", CounterMetricFamily, "modbus_requests", "Modbus requests sent", 1.0),
    (
        "modbus_requests_per_s",
        GaugeMetricFamily,
        "modbus_requests_per_second",
        "Modbus requests per second between the two last health records",
        1.0,
    ),
    (
        "modbus_latency_ms",
        GaugeMetricFamily,
        "modbus_latency_seconds",
        "Mean Modbus response time between the two last health records",
        0.001,
    ),
    (
        "modbus_split_spans",
        GaugeMetricFamily,
        "modbus_split_spans",
        "Coalesced Modbus reads now read in parts (a refused register isolated)",
        1.0,
    ),
    (
        "modbus_refused_points",
        GaugeMetricFamily,
        "modbus_refused_points",
        "Modbus points refused on their own (exception 2), waiting for the retry",
        1.0,
    ),
    (
        "modbus_isolations",
        CounterMetricFamily,
        "modbus_isolations",
        "Refused coalesced Modbus reads isolated by halving",
        1.0,
    ),
    (
        "modbus_rejoins",
        CounterMetricFamily,
        "modbus_rejoins",
        "Split Modbus reads that were read whole again",
        1.0,
    ),
    (
        "modbus_skipped_polls",
        CounterMetricFamily,
        "modbus_skipped_polls",
        "Modbus poll slots skipped because a poll overran its interval",
        1.0,
    ),
    (
        "modbus_poll_period_ms",
        GaugeMetricFamily,
        "modbus_poll_period_seconds",
        "Actual mean time between Modbus polls between the two last health records",
        0.001,
    ),
)


class HealthCollector(Collector):
    def __init__(self, site: SiteConfig) -> None:
        self._site = site
        self._records: list[DeviceHealth] = []
        self._prev: dict[str, tuple[int, int]] = {}
        self._rate: dict[str, float] = {}
        self.store_ok = 0

    def _connector(self, device: str) -> str:
        try:
            return self._site.device(device).protocol or "import"
        except KeyError:
            return "unknown"

    def update(self, records: Sequence[DeviceHealth]) -> None:
        self._records = list(records)
        for h in records:
            prev = self._prev.get(h.device)
            if prev is not None and h.updated_ts > prev[1]:
                dt_s = (h.updated_ts - prev[1]) / 1e9
                self._rate[h.device] = max(0.0, (h.samples - prev[0]) / dt_s)
            if prev is None or h.updated_ts > prev[1]:
                self._prev[h.device] = (h.samples, h.updated_ts)

    def collect(self) -> Iterable[Metric]:
        labels = ["device", "connector"]
        samples = CounterMetricFamily(
            "shopfloor_device_samples", "Samples received per device", labels=labels
        )
        rate = GaugeMetricFamily(
            "shopfloor_device_samples_per_second",
            "Samples per second between the two last health records",
            labels=labels,
        )
        drops = CounterMetricFamily(
            "shopfloor_device_drops", "Samples dropped by the bounded queue", labels=labels
        )
        restarts = CounterMetricFamily(
            "shopfloor_device_reconnects", "Connector restarts (reconnects)", labels=labels
        )
        errors = CounterMetricFamily(
            "shopfloor_device_errors", "Errors by kind", labels=[*labels, "kind"]
        )
        connected = GaugeMetricFamily(
            "shopfloor_device_connected", "Link up (1) or down (0)", labels=labels
        )
        last = GaugeMetricFamily(
            "shopfloor_device_last_good_timestamp_seconds",
            "Time of the last good sample",
            labels=labels,
        )
        backlog = GaugeMetricFamily(
            "shopfloor_outbox_backlog",
            "Batches waiting for InfluxDB in the outbox",
            labels=labels,
        )
        for h in self._records:
            lv = [h.device, self._connector(h.device)]
            samples.add_metric(lv, h.samples)
            rate.add_metric(lv, self._rate.get(h.device, 0.0))
            drops.add_metric(lv, h.drops)
            restarts.add_metric(lv, h.restarts)
            connected.add_metric(lv, 1.0 if h.connected else 0.0)
            if h.last_good_ts is not None:
                last.add_metric(lv, h.last_good_ts / 1e9)
            for kind, n in sorted(h.errors.items()):
                errors.add_metric([*lv, kind], n)
            b = h.extra.get("outbox_backlog", h.extra.get("outbox_pending"))
            if isinstance(b, int | float):
                backlog.add_metric(lv, float(b))
        extras = [
            (key, family(f"shopfloor_{name}", text, labels=labels), scale)
            for key, family, name, text, scale in _EXTRA_SERIES
        ]
        for h in self._records:
            lv = [h.device, self._connector(h.device)]
            for key, fam, scale in extras:
                v = h.extra.get(key)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    fam.add_metric(lv, float(v) * scale)
        yield from (fam for _, fam, _ in extras)
        up = GaugeMetricFamily("shopfloor_store_readable", "The service can read the store")
        up.add_metric([], float(self.store_ok))
        yield from (samples, rate, drops, restarts, errors, connected, last, backlog, up)
        yield from storage_metrics(self._records)
        yield from retention_metrics(self._records)


STORAGE_ALARMS = ("budget_used", "budget_soon", "fs_low", "fs_soon")


def storage_metrics(records: Sequence[DeviceHealth]) -> list[Metric]:
    """The gateway's disk (``disk_*`` fields the collector adds to every health record, see
    edge.store.disk) from the newest record that has them; nothing when none has."""
    with_disk = [h for h in records if "disk_used_bytes" in h.extra]
    if not with_disk:
        return []
    x = max(with_disk, key=lambda h: h.updated_ts).extra
    inf = float("inf")

    def num(v: object) -> float | None:
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    out: list[Metric] = []
    for name, help_, value in (
        ("shopfloor_storage_used_bytes", "Bytes of the gateway's files", x.get("disk_used_bytes")),
        ("shopfloor_storage_budget_bytes", "runtime.disk.budget_mb", x.get("disk_budget_bytes")),
        (
            "shopfloor_storage_filesystem_free_bytes",
            "Free bytes on the file system of the gateway's files",
            x.get("disk_fs_free_bytes"),
        ),
        (
            "shopfloor_storage_growth_bytes_per_second",
            "Growth of the gateway's files over the growth window",
            x.get("disk_growth_bps"),
        ),
    ):
        v = num(value)
        if v is not None:
            g = GaugeMetricFamily(name, help_)
            g.add_metric([], v)
            out.append(g)
    ttf = GaugeMetricFamily(
        "shopfloor_storage_time_to_full_seconds",
        "Time until the budget or the disk is full at the current growth (+Inf: not growing)",
    )
    total_ttf = num(x.get("disk_time_to_full_s"))
    ttf.add_metric([], inf if total_ttf is None else total_ttf)
    out.append(ttf)
    alarms = set(x.get("disk_alarms") or ())
    alarm = GaugeMetricFamily(
        "shopfloor_storage_alarm", "A storage alarm is on (1) or off (0)", labels=["alarm"]
    )
    for a in STORAGE_ALARMS:
        alarm.add_metric([a], 1.0 if a in alarms else 0.0)
    out.append(alarm)
    comps = x.get("disk_components") or {}
    size = GaugeMetricFamily(
        "shopfloor_storage_component_bytes",
        "Bytes of one of the gateway's files (store, outbox, ledger) with its WAL",
        labels=["component"],
    )
    cttf = GaugeMetricFamily(
        "shopfloor_storage_component_time_to_full_seconds",
        "Room left divided by this component's growth (+Inf: not growing)",
        labels=["component"],
    )
    if isinstance(comps, dict):
        for cname, c in sorted(comps.items()):
            if not isinstance(c, dict):
                continue
            b = num(c.get("bytes"))
            if b is not None:
                size.add_metric([str(cname)], b)
            t = num(c.get("time_to_full_s"))
            cttf.add_metric([str(cname)], inf if t is None else t)
    out.extend((size, cttf))
    return out


class ApiMetrics:
    def __init__(self, site: SiteConfig) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "shopfloor_api_request_seconds",
            "API request latency",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.health = HealthCollector(site)
        self.registry.register(self.health)

    def observe(self, method: str, route: str, status: int, started: float) -> None:
        self.latency.labels(method, route, str(status)).observe(time.perf_counter() - started)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def retention_metrics(records: Sequence[DeviceHealth]) -> list[Metric]:
    """The embedded store's retention (``store_*`` fields the collector adds to every health
    record after a pass, see edge.store.retention) from the newest record that has them."""
    with_ret = [h for h in records if "store_retention_samples_removed" in h.extra]
    if not with_ret:
        return []
    x = max(with_ret, key=lambda h: h.updated_ts).extra
    out: list[Metric] = []
    for name, help_, key in (
        (
            "shopfloor_store_retention_samples_removed_total",
            "Raw samples removed from the store by retention passes (kept in the ledger)",
            "store_retention_samples_removed",
        ),
        (
            "shopfloor_store_retention_chunks_removed_total",
            "Chunk rows removed from the store by retention passes",
            "store_retention_chunks_removed",
        ),
        (
            "shopfloor_store_raw_horizon_seconds",
            "Every raw sample at or after this time (Unix s) is still in the store",
            "store_raw_horizon_ns",
        ),
    ):
        v = x.get(key)
        if isinstance(v, int) and not isinstance(v, bool):
            if name.endswith("_total"):
                c = CounterMetricFamily(name, help_)
                c.add_metric([], float(v))
                out.append(c)
                continue
            g = GaugeMetricFamily(name, help_)
            g.add_metric([], v / 1e9)
            out.append(g)
    return out
