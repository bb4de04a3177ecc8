"""Points of the site file bound to the data items of an agent's probe, and observations turned
into samples (pure; the table of words and states is config.mtconnect).

- a numeric observation (a SAMPLE, ``PartCount``, any number) is stored as the number, with the
  point's scale and offset;
- an enumerated event (``Execution``, ``ControllerMode``, ``Availability``, ``EmergencyStop``)
  as its code of :data:`config.mtconnect.ENUMS`;
- a state point (``type: EXECUTION``, role ``state``) as the combined code of Execution and the
  component's ControllerMode (:func:`config.mtconnect.state_code`), re-emitted when either
  changes;
- ``UNAVAILABLE`` as a ``link_lost`` marker of the point (the agent does not know the value);
- the text of a ``datatype: text`` point (``Program``, ``PartId``) as its ``enum`` code
  (:mod:`config.textmap`); a text not in the enum is a bad ``unknown_text`` sample;
- anything else (a word that is not in the table, text) is malformed: counted, never stored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from config.markers import LINK_LOST
from config.models import Device as SiteDevice
from config.models import Point
from config.mtconnect import ENUMS, UNAVAILABLE, state_code
from config.textmap import UNKNOWN_TEXT, text_code
from connectors.base import NAN, Quality, Sample
from connectors.mtconnect.documents import DataItem, Device, Observation


class BindError(ValueError):
    """A point of the site file that names no (or more than one) data item of the probe."""


@dataclass(slots=True)
class Binding:
    """How one point is read: from data item ``item`` (and ``mode_item`` for a state)."""

    point: str
    item: str
    type: str
    scale: float = 1.0
    offset: float = 0.0
    state: bool = False
    mode_item: str | None = None
    enum: dict[str, int] | None = None  # a datatype text point's dictionary (config.textmap)
    # last words seen (state points): the code needs both
    execution: str | None = field(default=None)
    mode: str | None = field(default=None)


def pick_device(devices: Sequence[Device], wanted: str | None) -> Device:
    if wanted is None:
        if len(devices) != 1:
            names = ", ".join(d.name for d in devices) or "none"
            raise BindError(f"the agent has {len(devices)} devices ({names}); name one (device:)")
        return devices[0]
    for d in devices:
        if wanted in (d.name, d.uuid):
            return d
    raise BindError(f"the agent has no device {wanted!r} ({', '.join(d.name for d in devices)})")


def _find(device: Device, point: Point) -> DataItem:
    addr = point.mtconnect
    assert addr is not None
    if addr.data_item is not None:
        found = [i for i in device.items if i.id == addr.data_item]
        what = f"data item {addr.data_item!r}"
    else:
        found = [
            i
            for i in device.items
            if i.type == addr.type
            and (addr.sub_type is None or i.sub_type == addr.sub_type)
            and (addr.component is None or addr.component in (i.component_id, i.component_name))
        ]
        what = f"type {addr.type}" + (f" subType {addr.sub_type}" if addr.sub_type else "")
        if addr.component is not None:
            what += f" in component {addr.component!r}"
    if not found:
        raise BindError(f"point {point.id!r}: the probe of {device.name!r} has no {what}")
    if len(found) > 1:
        ids = ", ".join(i.id for i in found)
        raise BindError(
            f"point {point.id!r}: {what} matches {len(found)} data items ({ids}); "
            "give data_item, sub_type or component"
        )
    return found[0]


def bind(site_device: SiteDevice, device: Device) -> list[Binding]:
    """The bindings of the points of ``site_device`` to the probe's ``device``."""
    out: list[Binding] = []
    for point in site_device.points:
        item = _find(device, point)
        addr = point.mtconnect
        assert addr is not None
        state = point.role == "state"
        if state and item.type != "EXECUTION" and item.type not in ENUMS:
            raise BindError(
                f"point {point.id!r}: a state point reads EXECUTION (or an enumerated event), "
                f"not {item.type}"
            )
        mode_item = None
        if state and item.type == "EXECUTION" and addr.mode_item == "auto":
            modes = [
                i
                for i in device.items
                if i.type == "CONTROLLER_MODE" and i.component_id == item.component_id
            ] or [i for i in device.items if i.type == "CONTROLLER_MODE"]
            if len(modes) == 1:
                mode_item = modes[0].id
        out.append(
            Binding(
                point=point.id,
                item=item.id,
                type=item.type,
                scale=point.scale,
                offset=point.offset,
                state=state and item.type == "EXECUTION",
                mode_item=mode_item,
                enum=point.enum,
            )
        )
    return out


def availability_items(device: Device) -> frozenset[str]:
    return frozenset(i.id for i in device.items if i.type == "AVAILABILITY")


def marker(device: str, point: str, ts: int) -> Sample:
    return Sample(device, point, ts, NAN, Quality.BAD, LINK_LOST)


def convert(device: str, b: Binding, obs: Observation) -> Sample | str | None:
    """The sample of ``obs`` for binding ``b``; a reason (str) when malformed; None when a state
    point does not know its code yet."""
    word = obs.value
    if b.state:
        if obs.item == b.mode_item:
            b.mode = None if word == UNAVAILABLE else word
            if b.execution is None:
                return None
        else:
            if word == UNAVAILABLE:
                b.execution = None
                return marker(device, b.point, obs.ts)
            b.execution = word
        if b.execution is None:
            return None
        code = state_code(b.execution, b.mode)
        if code is None:
            return "unknown_word"
        return Sample(device, b.point, obs.ts, float(code))
    if word == UNAVAILABLE:
        return marker(device, b.point, obs.ts)
    if b.enum is not None:  # a text point (program, part number): its code, or unknown_text
        text = text_code(b.enum, word)
        if text is None:
            return Sample(device, b.point, obs.ts, NAN, Quality.BAD, UNKNOWN_TEXT)
        return Sample(device, b.point, obs.ts, text)
    table = ENUMS.get(b.type)
    if table is not None:
        enum_code = table.get(word)
        if enum_code is None:
            return "unknown_word"
        return Sample(device, b.point, obs.ts, float(enum_code))
    try:
        number = float(word)
    except ValueError:
        return "not_number"
    if not math.isfinite(number):
        return "not_number"
    if b.scale != 1.0 or b.offset != 0.0:
        number = number * b.scale + b.offset
    return Sample(device, b.point, obs.ts, number)
