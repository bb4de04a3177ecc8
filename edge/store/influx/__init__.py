"""The InfluxDB store: line protocol over the v1 or v2 API, behind a durable SQLite outbox.

Import :class:`edge.store.influx.store.InfluxStore` (or :func:`open_influx_store`); the v2 API
module (and so influxdb-client) is only imported when the site file asks for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config.models import SiteConfig
    from edge.store.influx.store import InfluxStore


def open_influx_store(site: SiteConfig) -> InfluxStore:
    """The store of ``site.storage`` (an InfluxStorage), paths resolved against the site file;
    every point tagged with the site id and the gateway id (``storage.gateway``, default the
    site id)."""
    from config.storage import InfluxStorage
    from edge.store.influx.store import InfluxStore

    cfg = site.storage
    if not isinstance(cfg, InfluxStorage):
        raise TypeError(f"storage kind {cfg.kind!r} is not influxdb")
    return InfluxStore(
        cfg,
        site=site.site.id,
        gateway=cfg.gateway or site.site.id,
        outbox_path=site.resolve(cfg.outbox_path),
        ca_file=site.resolve(cfg.ca_file) if cfg.ca_file else None,
        local_cache=site.resolve(cfg.local_cache) if cfg.local_cache else None,
    )
