"""OPC UA connection and node-address models."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from config.base import Frozen, SecretRef


class OpcUaConnection(Frozen):
    endpoint: str = Field(pattern=r"^opc\.tcp://", description="opc.tcp://host:port/path")
    security_policy: Literal["None", "Basic256Sha256"] = "None"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: Path | None = Field(
        default=None, description="client certificate (DER/PEM); generated when absent"
    )
    private_key: Path | None = None
    server_certificate: Path | None = None
    username: str | None = None
    password: SecretRef | None = None
    publishing_interval_ms: int = Field(default=500, ge=10)
    timeout_s: float = Field(default=4.0, gt=0)
    watchdog_s: float = Field(
        default=30.0, gt=0, description="a subscription silent this long is rebuilt"
    )
    history_backfill: bool = True

    @model_validator(mode="after")
    def _security(self) -> OpcUaConnection:
        if (self.security_policy == "None") != (self.security_mode == "None"):
            raise ValueError("security_policy and security_mode must both be None or both set")
        if (self.password is None) != (self.username is None):
            raise ValueError("username and password go together")
        return self


class OpcUaAddress(Frozen):
    node_id: str | None = Field(default=None, description="e.g. ns=2;s=CNC1.State")
    browse_path: str | None = Field(
        default=None, description="e.g. 0:Objects/2:CNC1/2:State, from the Objects folder"
    )
    mode: Literal["subscribe", "poll"] = "subscribe"
    sampling_ms: float | None = Field(default=None, ge=0)
    queue_size: int = Field(default=1, ge=1, le=10000)

    @model_validator(mode="after")
    def _one_address(self) -> OpcUaAddress:
        if (self.node_id is None) == (self.browse_path is None):
            raise ValueError("give exactly one of 'node_id' or 'browse_path'")
        return self
