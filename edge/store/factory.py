"""Open the store a site file asks for."""

from __future__ import annotations

from config.models import SiteConfig
from edge.store.base import Store


def open_store(site: SiteConfig) -> Store:
    """The writable store of ``site.storage`` (the collector's; one writer per store)."""
    storage = site.storage
    if storage.kind == "sqlite":
        from edge.store.sqlite import SqliteStore

        return SqliteStore(site.resolve(storage.path), synchronous=storage.synchronous.upper())
    if storage.kind == "influxdb":
        from edge.store.influx import open_influx_store

        return open_influx_store(site)
    raise ValueError(f"unknown storage kind {storage.kind!r}: use 'sqlite' or 'influxdb'")
