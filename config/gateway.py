"""Gateway (FastAPI service) settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from config.base import Frozen


class GatewaySettings(Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    users_db: Path = Field(default=Path("data/users.db"), description="relative to site file")
    max_upload_mb: int = Field(default=200, ge=1)
    session_ttl_s: int = Field(default=8 * 3600, ge=60)
