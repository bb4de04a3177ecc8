"""Sparkplug B (MQTT) host-application connection and metric address models.

A device of the site file is one Sparkplug *edge node* (``device_id`` absent: the node's own
metrics, NBIRTH/NDATA) or one Sparkplug *device* of an edge node (DBIRTH/DDATA), in one group.
Its points name the metrics of the birth certificate.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from config.base import Frozen, SecretRef
from config.mqtt import MqttTls

#: characters a Sparkplug B topic element may not contain (spec 1.0/3.0: '+', '/', '#')
_ID = r"^[^+/#\s]+$"


class SparkplugConnection(Frozen):
    host: str
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str | None = None
    username: str | None = None
    password: SecretRef | None = None
    tls: MqttTls | None = None
    keepalive_s: int = Field(default=30, ge=5)
    group_id: str = Field(pattern=_ID)
    edge_node_id: str = Field(pattern=_ID)
    device_id: str | None = Field(default=None, pattern=_ID, description="absent: node metrics")
    host_id: str | None = Field(
        default=None,
        pattern=_ID,
        description="primary host id: publish spBv1.0/STATE/<host_id> (online/offline)",
    )
    rebirth: bool = Field(
        default=True, description="ask the edge node for a rebirth (NCMD) on a sequence gap"
    )
    connect_timeout_s: float = Field(default=10.0, gt=0)
    reconnect_delay_s: float = Field(default=1.0, gt=0)
    reconnect_max_delay_s: float = Field(default=30.0, gt=0)
    reconnect_timeout_s: float = Field(default=120.0, gt=0)
    max_payload_bytes: int = Field(default=1_048_576, ge=16)

    @model_validator(mode="after")
    def _check(self) -> SparkplugConnection:
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")
        if self.reconnect_max_delay_s < self.reconnect_delay_s:
            raise ValueError("reconnect_max_delay_s must be >= reconnect_delay_s")
        if self.tls is not None and (self.tls.cert_file is None) != (self.tls.key_file is None):
            raise ValueError("tls: give both cert_file and key_file for a client certificate")
        return self


class SparkplugAddress(Frozen):
    metric: str = Field(min_length=1, description="metric name of the birth certificate")
