"""MQTT connection and topic/payload mapping models."""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from config.base import Frozen, SecretRef


class MqttTls(Frozen):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = Field(default=False, description="skip host-name check (test benches only)")


class MqttConnection(Frozen):
    host: str
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str | None = None
    clean_session: bool = Field(default=False, description="False keeps a persistent session")
    qos: Literal[0, 1] = 1
    keepalive_s: int = Field(default=30, ge=5)
    username: str | None = None
    password: SecretRef | None = None
    tls: MqttTls | None = None
    max_payload_bytes: int = Field(default=65536, ge=16)
    topic_device_level: int | None = Field(
        default=None,
        ge=0,
        description="topic level (0-based) that names the device when points use wildcards",
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, description="first connection")
    reconnect_delay_s: float = Field(default=1.0, gt=0, description="first retry after a loss")
    reconnect_max_delay_s: float = Field(default=30.0, gt=0, description="cap of the backoff")
    reconnect_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="link down this long -> ConnectorError (the supervisor restarts the connector)",
    )
    timezone: str | None = Field(
        default=None,
        description="IANA zone of naive ISO 8601 payload times (no offset); default: the site's",
    )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _auth(self) -> MqttConnection:
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")
        if self.reconnect_max_delay_s < self.reconnect_delay_s:
            raise ValueError("reconnect_max_delay_s must be >= reconnect_delay_s")
        if self.tls is not None and (self.tls.cert_file is None) != (self.tls.key_file is None):
            raise ValueError("tls: give both cert_file and key_file for a client certificate")
        return self


def topic_filter_problem(topic: str) -> str | None:
    """Why ``topic`` is not a valid MQTT topic filter (None when it is)."""
    if "\x00" in topic:
        return "a topic filter may not contain NUL"
    if len(topic.encode("utf-8")) > 65535:
        return "a topic filter is at most 65535 bytes"
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be a whole level and the last one"
        if "+" in level and level != "+":
            return "'+' must be a whole level"
    return None


class MqttAddress(Frozen):
    topic: str = Field(min_length=1, description="topic filter; + and # allowed")
    pointer: str | None = Field(
        default=None,
        description="RFC 6901 JSON pointer into the payload; absent = plain numeric payload",
    )
    ts_pointer: str | None = Field(default=None, description="JSON pointer of a timestamp field")
    ts_format: Literal["epoch_s", "epoch_ms", "epoch_ns", "iso8601"] = "epoch_ms"

    @model_validator(mode="after")
    def _pointers(self) -> MqttAddress:
        problem = topic_filter_problem(self.topic)
        if problem is not None:
            raise ValueError(f"topic {self.topic!r}: {problem}")
        for p in (self.pointer, self.ts_pointer):
            if p is not None and p != "" and not p.startswith("/"):
                raise ValueError(f"JSON pointer {p!r} must start with '/'")
        return self
