"""Evidence settings: the ledger and its signed checkpoints."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from config.base import Frozen


class EvidenceSettings(Frozen):
    enabled: bool = True
    ledger_path: Path = Field(default=Path("data/ledger.db"), description="relative to site file")
    key_dir: Path = Field(default=Path("keys"), description="0700 directory of the signing key")
    origin: str | None = Field(
        default=None, description="checkpoint origin line; default shopfloor.local/<site id>"
    )
    checkpoint_interval_s: float = Field(default=60.0, gt=0)
