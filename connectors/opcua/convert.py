"""Pure conversions from OPC UA values, status codes and timestamps to :class:`Sample` fields.

A bad StatusCode never becomes a value: the sample carries NaN, quality BAD and the code's
name. Booleans become 0/1, integers and floats float64; the String (or LocalizedText) value of a
``datatype: text`` point becomes the code of its ``enum`` (:mod:`config.textmap`), a text not in
it a bad sample with status ``unknown_text``. A point that selects a part of the value (a
structure's field, an array element: :mod:`connectors.opcua.select`) is converted from that
part; a part not in the value is a bad sample with the selector's status. Timestamps: the
SOURCE timestamp, then the server timestamp, then the gateway clock.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Mapping
from typing import Any

from asyncua import ua
from asyncua.ua.status_codes import get_name_and_doc

from config.textmap import UNKNOWN_TEXT, text_code
from connectors.base import NAN, Quality, Sample
from connectors.opcua.select import NotSelected, Selector

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)
# OPC UA's "no timestamp" is the FILETIME epoch (1601-01-01); anything before 1970 is treated
# as absent.
_MIN_VALID = _EPOCH


class NotNumeric(ValueError):
    """The node's value has no numeric reading (string, array, structure...)."""


def quality_of(code: int) -> Quality:
    """Severity bits (30-31) of an OPC UA StatusCode: 00 good, 01 uncertain, 1x bad."""
    severity = (code >> 30) & 0b11
    if severity == 0:
        return Quality.GOOD
    if severity == 1:
        return Quality.UNCERTAIN
    return Quality.BAD


def status_name(code: int) -> str:
    """``BadNodeIdUnknown``; empty for plain Good; ``0x...`` when the code is unknown."""
    if code == 0:
        return ""
    base = code & 0xFFFF0000
    name, doc = get_name_and_doc(base)
    name = str(name)
    if doc.startswith("Unknown StatusCode"):
        return f"0x{code:08X}"
    return name


def ns_of(moment: dt.datetime | None) -> int | None:
    """Nanoseconds since the Unix epoch of an OPC UA timestamp (naive = UTC); None if absent."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    if moment <= _MIN_VALID:
        return None
    return ((moment - _EPOCH) // _US) * 1000


def to_float(value: Any) -> float:
    """The numeric reading of a scalar value (bool -> 0/1, enum -> its code)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and not isinstance(value, enum.Enum):
        return float(value)
    if isinstance(value, enum.IntEnum):
        return float(int(value))
    raise NotNumeric(f"value of type {type(value).__name__} is not numeric")


def sample_of(
    device: str,
    point: str,
    dv: ua.DataValue,
    now: int,
    scale: float = 1.0,
    offset: float = 0.0,
    *,
    enum: Mapping[str, int] | None = None,
    select: Selector | None = None,
) -> Sample:
    """One :class:`Sample` from one OPC UA DataValue (``now``: the gateway clock, ns).

    ``scale`` and ``offset`` (the point's) apply to good and uncertain numeric values; ``enum``
    (a text point's dictionary) maps a String value to its code; ``select`` picks the part of
    the value the point is (before ``enum``, ``scale`` and ``offset``).
    """
    code = dv.StatusCode.value if dv.StatusCode is not None else 0
    ts = ns_of(dv.SourceTimestamp) or ns_of(dv.ServerTimestamp) or now
    quality = quality_of(code)
    status = status_name(code)
    if quality is Quality.BAD:
        return Sample(device, point, ts, NAN, Quality.BAD, status or "Bad")
    raw = dv.Value.Value if dv.Value is not None else None
    if raw is None:
        return Sample(device, point, ts, NAN, Quality.BAD, "BadNoValue")
    if select is not None:
        try:
            raw = select(raw)
        except NotSelected as exc:
            return Sample(device, point, ts, NAN, Quality.BAD, exc.status)
        if raw is None:
            return Sample(device, point, ts, NAN, Quality.BAD, "BadNoValue")
    if enum is not None:
        if isinstance(raw, ua.LocalizedText):
            raw = raw.Text or ""
        if not isinstance(raw, str):  # a number is no text: never taken for a code
            return Sample(device, point, ts, NAN, Quality.BAD, "BadTypeMismatch")
        code = text_code(enum, raw)
        if code is None:
            return Sample(device, point, ts, NAN, Quality.BAD, UNKNOWN_TEXT)
        return Sample(device, point, ts, code, quality, status)
    try:
        value = to_float(raw)
    except NotNumeric:
        return Sample(device, point, ts, NAN, Quality.BAD, "BadTypeNotNumeric")
    if math.isnan(value) and quality is Quality.GOOD:
        return Sample(device, point, ts, NAN, Quality.UNCERTAIN, "NaN")
    if scale != 1.0 or offset != 0.0:
        value = value * scale + offset
    return Sample(device, point, ts, value, quality, status)
