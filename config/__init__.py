"""Site configuration: frozen pydantic v2 models of one YAML site file, loader, JSON Schema.

This package imports nothing else of shopfloor (see the import-linter contracts).
"""

from config.loader import ConfigError, ConfigIssue, load_site, load_site_text
from config.models import Device, Point, SiteConfig

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "Device",
    "Point",
    "SiteConfig",
    "load_site",
    "load_site_text",
]
