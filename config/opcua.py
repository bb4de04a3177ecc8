"""OPC UA connection and node-address models."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from config.base import Frozen, SecretRef


class OpcUaConnection(Frozen):
    endpoint: str = Field(pattern=r"^opc\.tcp://", description="opc.tcp://host:port/path")
    security_policy: Literal[
        "None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"
    ] = "None"
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


_UINT32 = 2**32 - 1
_NS = r"(?:ns=(?P<ns>\d+)|nsu=[^;]+);"
_NODE_ID = re.compile(
    rf"^(?:{_NS})?(?:i=(?P<i>\d+)|s=.+|b=[A-Za-z0-9+/]+={{0,2}}"
    r"|g=[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$",
    re.DOTALL,
)
_SEGMENT = re.compile(r"^(?:(?P<ns>\d+):)?(?P<name>[^/]+)$")


def check_node_id(text: str) -> str:
    """OPC UA NodeId text (Part 6, 5.3.1.10): ``[ns=N;|nsu=URI;](i=|s=|g=|b=)ID``."""
    m = _NODE_ID.match(text)
    if m is None:
        raise ValueError(
            f"{text!r} is not a NodeId: write ns=<index>;i=<number> (or s=<string>, "
            "g=<guid>, b=<base64>), e.g. ns=2;s=CNC1.State"
        )
    if m.group("ns") is not None and int(m.group("ns")) > 65535:
        raise ValueError(f"{text!r}: namespace index above 65535")
    if m.group("i") is not None and int(m.group("i")) > _UINT32:
        raise ValueError(f"{text!r}: numeric identifier above 4294967295")
    return text


def check_browse_path(text: str) -> str:
    """A browse path from the Objects folder: ``0:Objects/2:CNC1/2:State`` (segments
    ``<namespace index>:<browse name>``, separated by ``/``)."""
    parts = text.strip().strip("/").split("/")
    if not text.strip().strip("/"):
        raise ValueError("empty browse path")
    for i, part in enumerate(parts):
        m = _SEGMENT.match(part)
        if m is None or not m.group("name").strip() or re.fullmatch(r"\d+:\s*", part):
            what = "an empty segment (//)" if not part else f"segment {part!r} has no name"
            raise ValueError(f"browse path {text!r}: {what}, e.g. 0:Objects/2:CNC1/2:State")
        if m.group("ns") is not None and int(m.group("ns")) > 65535:
            raise ValueError(f"browse path {text!r}: segment {i + 1} namespace index above 65535")
        if m.group("name") != m.group("name").strip():
            raise ValueError(f"browse path {text!r}: segment {part!r} has surrounding spaces")
    return text


_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")


def check_field(text: str) -> str:
    """A structure field, or a dotted path into nested structures: ``AccCount``,
    ``Unit.UnitId`` (the names of the DataType's definition, Part 3 5.8.3)."""
    if not _FIELD.match(text):
        raise ValueError(
            f"field {text!r}: write the structure's field name as the DataType defines it, "
            "dotted for a nested structure, e.g. AccCount or Unit.UnitId"
        )
    return text


class OpcUaAddress(Frozen):
    node_id: str | None = Field(default=None, description="e.g. ns=2;s=CNC1.State")
    browse_path: str | None = Field(
        default=None, description="e.g. 0:Objects/2:CNC1/2:State, from the Objects folder"
    )
    mode: Literal["subscribe", "poll"] = "subscribe"
    sampling_ms: float | None = Field(default=None, ge=0)
    queue_size: int = Field(default=1, ge=1, le=10000)
    field: str | None = Field(
        default=None,
        description="a field of the node's structure value, e.g. AccCount (dotted if nested)",
    )
    index: int | None = Field(
        default=None, ge=0, description="the array element at this 0-based position"
    )
    element: dict[str, int | str] | None = Field(
        default=None,
        description="the array element whose field has this value, e.g. {ID: 1}",
    )

    follow: str | None = Field(
        default=None,
        description="the variable holds a NodeId (e.g. the active job's): the point is the "
        "variable at this path from that node, e.g. 3:RunsCompleted (mode poll)",
    )

    @field_validator("node_id")
    @classmethod
    def _node_id(cls, value: str | None) -> str | None:
        return None if value is None else check_node_id(value)

    @field_validator("browse_path")
    @classmethod
    def _browse_path(cls, value: str | None) -> str | None:
        return None if value is None else check_browse_path(value)

    @model_validator(mode="after")
    def _one_address(self) -> OpcUaAddress:
        if (self.node_id is None) == (self.browse_path is None):
            raise ValueError("give exactly one of 'node_id' or 'browse_path'")
        if self.follow is not None and self.mode != "poll":
            raise ValueError(
                "a 'follow' point is polled (the followed node is looked up again when the "
                "pointer changes): add mode: poll"
            )
        if self.follow is not None and self.selects:
            raise ValueError("'follow' does not combine with field, index or element")
        if self.index is not None and self.element is not None:
            raise ValueError("give one of 'index' (position) or 'element' (by a field's value)")
        if self.element is not None and self.field is None:
            raise ValueError(
                "'element' picks a structure from an array: say which of its fields is the "
                "value, e.g. element: {ID: 1}, field: AccCount"
            )
        return self

    @field_validator("follow")
    @classmethod
    def _follow(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.strip().startswith("/") or value.split("/", 1)[0].endswith(":Objects"):
            raise ValueError(
                f"follow {value!r}: a path relative to the node the pointer names, "
                "e.g. 3:RunsCompleted"
            )
        check_browse_path(value)
        return value

    @field_validator("field")
    @classmethod
    def _field(cls, value: str | None) -> str | None:
        return None if value is None else check_field(value)

    @field_validator("element", mode="before")
    @classmethod
    def _element(cls, value: object) -> object:
        """Exactly one ``field: value``; a value YAML read as true/false is refused (the
        structures' identifiers are numbers or text)."""
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            raise ValueError(
                "element: one field and its value, e.g. {ID: 1} (the element whose ID is 1)"
            )
        [(key, wanted)] = value.items()
        check_field(str(key))
        if "." in str(key):
            raise ValueError(f"element: {key!r} must be a field of the element itself")
        if isinstance(wanted, bool) or not isinstance(wanted, int | str):
            raise ValueError(
                f"element: the value of {key!r} must be a number or a quoted text "
                "(YAML read yes/no/on/off as true/false: quote it)"
            )
        return {str(key): wanted}

    @property
    def selects(self) -> bool:
        """The point is a part of the node's value (a field, an array element)."""
        return self.field is not None or self.index is not None or self.element is not None
