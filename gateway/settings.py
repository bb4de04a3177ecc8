"""Settings of the service, derived from the site file (plus a few environment overrides).

Environment (all optional): ``SHOPFLOOR_COOKIE_SECURE=1`` marks cookies Secure (set it when the
service is reached over HTTPS), ``SHOPFLOOR_LIVE_POLL_MS`` the live poll interval,
``SHOPFLOOR_TRUST`` a trust.json used by the verify page instead of the gateway's own keys,
``SHOPFLOOR_LOG_LEVEL``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from config.models import SiteConfig


@dataclass(frozen=True)
class Settings:
    site: SiteConfig
    store_path: Path | None
    users_db: Path
    ledger_path: Path
    key_dir: Path
    max_upload_bytes: int
    session_ttl_s: int
    cookie_secure: bool = False
    live_poll_s: float = 0.25
    kpi_refresh_s: float = 15.0
    kpi_cache_s: float = 10.0
    readers: int = 4
    trust_file: Path | None = None
    log_level: str = "INFO"
    stream_max_s: float = 300.0

    @classmethod
    def from_site(cls, site: SiteConfig, **overrides: Any) -> Settings:
        store_path: Path | None
        if site.storage.kind == "sqlite":
            store_path = site.resolve(site.storage.path)
        elif site.storage.local_cache is not None:
            store_path = site.resolve(site.storage.local_cache)
        else:
            store_path = None
        env = os.environ
        trust = env.get("SHOPFLOOR_TRUST")
        base = cls(
            site=site,
            store_path=store_path,
            users_db=site.resolve(site.gateway.users_db),
            ledger_path=site.resolve(site.evidence.ledger_path),
            key_dir=site.resolve(site.evidence.key_dir),
            max_upload_bytes=site.gateway.max_upload_mb * 1024 * 1024,
            session_ttl_s=site.gateway.session_ttl_s,
            cookie_secure=env.get("SHOPFLOOR_COOKIE_SECURE", "") in ("1", "true", "yes"),
            live_poll_s=float(env.get("SHOPFLOOR_LIVE_POLL_MS", "250")) / 1000.0,
            trust_file=Path(trust) if trust else None,
            log_level=env.get("SHOPFLOOR_LOG_LEVEL", "INFO").upper(),
        )
        return replace(base, **overrides)
