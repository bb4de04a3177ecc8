"""MTConnect connector (HTTP agent client): ``build(site)`` gives one connector per device."""

from __future__ import annotations

from pathlib import Path

from config.models import Device, SiteConfig
from connectors.base import Connector
from connectors.mtconnect.connector import MtconnectConnector

__all__ = ["MtconnectConnector", "build", "resume_path"]


def resume_path(site: SiteConfig, device: Device) -> Path:
    """The resume file of ``device`` (its ``resume_file``, else data/mtconnect-<id>.json)."""
    assert device.mtconnect is not None
    given = device.mtconnect.resume_file
    return site.resolve(
        given if given is not None else Path("data") / f"mtconnect-{device.id}.json"
    )


def build(site: SiteConfig) -> list[Connector]:
    seen: dict[Path, str] = {}
    out: list[Connector] = []
    for dev in site.devices:
        if dev.mtconnect is None:
            continue
        path = resume_path(site, dev)
        if path in seen:
            raise ValueError(f"devices {seen[path]} and {dev.id}: the same MTConnect resume_file")
        seen[path] = dev.id
        out.append(MtconnectConnector(dev, path))
    return out
