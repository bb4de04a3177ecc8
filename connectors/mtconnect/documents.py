"""Pure parsing of MTConnect agent responses (MTConnectDevices, MTConnectStreams,
MTConnectError), any schema version 1.1 - 2.x (the namespace is ignored, names are not).

A malformed document raises :class:`DocumentError` with one line saying what is wrong.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from dataclasses import dataclass

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_OBSERVATION_GROUPS = frozenset({"Samples", "Events"})


class DocumentError(ValueError):
    """The agent's answer is not an MTConnect document this client understands."""


@dataclass(frozen=True, slots=True)
class Header:
    instance_id: int
    first_sequence: int
    next_sequence: int
    last_sequence: int


@dataclass(frozen=True, slots=True)
class DataItem:
    id: str
    type: str  # e.g. EXECUTION, PART_COUNT (the probe's attribute, upper case)
    sub_type: str | None
    category: str  # SAMPLE, EVENT, CONDITION
    component_id: str
    component_name: str | None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    uuid: str | None
    items: tuple[DataItem, ...]


@dataclass(frozen=True, slots=True)
class Observation:
    item: str  # dataItemId
    sequence: int
    ts: int  # ns UTC
    value: str  # the element text, stripped (e.g. "ACTIVE", "12", "UNAVAILABLE")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _root(body: bytes) -> ET.Element:
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise DocumentError(f"not XML: {exc}") from None


def _int(elem: ET.Element, name: str) -> int:
    text = elem.get(name)
    if text is None:
        raise DocumentError(f"<{_local(elem.tag)}> has no {name}")
    try:
        return int(text)
    except ValueError:
        raise DocumentError(f"<{_local(elem.tag)}> {name}={text!r} is not an integer") from None


def parse_ts(text: str) -> int:
    """Nanoseconds UTC of an MTConnect timestamp (``2026-12-04T08:00:00.123456Z``; MTConnect
    times are UTC, a missing zone is read as UTC)."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise DocumentError(f"timestamp {text!r} is not ISO 8601") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def check_error(root: ET.Element) -> None:
    """Raise :class:`AgentError` when ``root`` is an MTConnectError document."""
    if _local(root.tag) != "MTConnectError":
        return
    codes = []
    for elem in root.iter():
        if _local(elem.tag) == "Error":
            codes.append((elem.get("errorCode") or "UNKNOWN", (elem.text or "").strip()))
    code, text = codes[0] if codes else ("UNKNOWN", "")
    raise AgentError(code, text)


class AgentError(Exception):
    """The agent answered with an MTConnectError (e.g. OUT_OF_RANGE for a stale ``from``)."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}" if text else code)
        self.code = code


def _header(root: ET.Element) -> Header:
    for elem in root:
        if _local(elem.tag) == "Header":
            return Header(
                instance_id=_int(elem, "instanceId"),
                first_sequence=_int(elem, "firstSequence"),
                next_sequence=_int(elem, "nextSequence"),
                last_sequence=_int(elem, "lastSequence"),
            )
    raise DocumentError(f"<{_local(root.tag)}> has no Header")


def parse_probe(body: bytes) -> tuple[Header, list[Device]]:
    """The devices of a probe response with their data items."""
    root = _root(body)
    check_error(root)
    if _local(root.tag) != "MTConnectDevices":
        raise DocumentError(f"expected MTConnectDevices, got <{_local(root.tag)}>")
    header = Header(
        instance_id=_int(_find_header(root), "instanceId"),
        first_sequence=0,
        next_sequence=0,
        last_sequence=0,
    )
    devices: list[Device] = []
    for dev in root.iter():
        if _local(dev.tag) != "Device":
            continue
        items: list[DataItem] = []
        _collect(dev, dev.get("id") or "", dev.get("name"), items)
        devices.append(Device(name=dev.get("name") or "", uuid=dev.get("uuid"), items=tuple(items)))
    return header, devices


def _find_header(root: ET.Element) -> ET.Element:
    for elem in root:
        if _local(elem.tag) == "Header":
            return elem
    raise DocumentError(f"<{_local(root.tag)}> has no Header")


def _collect(comp: ET.Element, comp_id: str, comp_name: str | None, out: list[DataItem]) -> None:
    """The data items of ``comp`` and of its sub-components (depth first)."""
    for child in comp:
        tag = _local(child.tag)
        if tag == "DataItems":
            for di in child:
                if _local(di.tag) != "DataItem":
                    continue
                ident, kind = di.get("id"), di.get("type")
                if not ident or not kind:
                    raise DocumentError("a DataItem without id or type")
                out.append(
                    DataItem(
                        id=ident,
                        type=kind,
                        sub_type=di.get("subType"),
                        category=di.get("category") or "",
                        component_id=comp_id,
                        component_name=comp_name,
                        name=di.get("name"),
                    )
                )
        elif tag == "Components":
            for sub in child:
                _collect(sub, sub.get("id") or "", sub.get("name"), out)


def _groups(root: ET.Element) -> list[ET.Element]:
    """The Samples and Events elements: Streams / DeviceStream / ComponentStream / group."""
    out: list[ET.Element] = []
    for streams in root:
        if _local(streams.tag) != "Streams":
            continue
        for device in streams:
            for component in device:
                out.extend(g for g in component if _local(g.tag) in _OBSERVATION_GROUPS)
    return out


def parse_streams(body: bytes) -> tuple[Header, list[Observation]]:
    """The header and the Samples/Events observations of a current or sample response, in
    sequence order (conditions are not read)."""
    root = _root(body)
    check_error(root)
    if _local(root.tag) != "MTConnectStreams":
        raise DocumentError(f"expected MTConnectStreams, got <{_local(root.tag)}>")
    header = _header(root)
    out: list[Observation] = []
    for group in _groups(root):
        for obs in group:
            item = obs.get("dataItemId")
            stamp = obs.get("timestamp")
            if item is None or stamp is None:
                raise DocumentError(f"<{_local(obs.tag)}> without dataItemId or timestamp")
            out.append(
                Observation(
                    item=item,
                    sequence=_int(obs, "sequence"),
                    ts=parse_ts(stamp),
                    value=(obs.text or "").strip(),
                )
            )
    out.sort(key=lambda o: o.sequence)
    return header, out
