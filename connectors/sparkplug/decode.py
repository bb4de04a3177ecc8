"""Pure decoding of Sparkplug B topics and metric values (Sparkplug 3.0, chapters 4 and 6).

Topic: ``spBv1.0/<group_id>/<message_type>/<edge_node_id>[/<device_id>]``.
A metric's value is read by its datatype (given in the birth certificate; a data message may
omit it): the signed integer types travel as two's complement in ``int_value`` (uint32) or
``long_value`` (uint64); Boolean as 0/1; DateTime as its milliseconds; String, Text, UUID,
Bytes, DataSet, Template are not numbers (``wrong_type``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

NAMESPACE: Final = "spBv1.0"
MESSAGE_TYPES: Final = frozenset(
    {"NBIRTH", "NDEATH", "NDATA", "NCMD", "DBIRTH", "DDEATH", "DDATA", "DCMD", "STATE"}
)
REBIRTH_METRIC: Final = "Node Control/Rebirth"
BDSEQ_METRIC: Final = "bdSeq"

# datatypes (sparkplug_b.proto, "Indexes of Data Types")
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME, TEXT = 9, 10, 11, 12, 13, 14
_SIGNED_BITS = {INT8: 8, INT16: 16, INT32: 32}
_NUMBER_TYPES = frozenset({INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64, DATETIME})


@dataclass(frozen=True, slots=True)
class Topic:
    group: str
    kind: str  # NBIRTH, DDATA, ...
    node: str
    device: str | None


def parse_topic(topic: str) -> Topic | None:
    """The parts of a Sparkplug B topic, or None when ``topic`` is not one."""
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != NAMESPACE or parts[2] not in MESSAGE_TYPES:
        return None
    return Topic(parts[1], parts[2], parts[3], parts[4] if len(parts) == 5 else None)


def _signed(raw: int, bits: int) -> int:
    return raw - (1 << bits) if raw >= 1 << (bits - 1) else raw


def metric_text(metric: Any, datatype: int | None) -> str | None:
    """The text of a String or Text metric (``None`` for any other kind of value)."""
    if metric.WhichOneof("value") != "string_value":
        return None
    if datatype is not None and datatype not in (STRING, TEXT):
        return None
    return str(metric.string_value)


def metric_value(metric: Any, datatype: int | None) -> float | str:
    """The number of a decoded Metric, or a reason (``wrong_type``, ``no_value``)."""
    which = metric.WhichOneof("value")
    if which is None:
        return "no_value"
    if datatype in _SIGNED_BITS:
        if which != "int_value":
            return "wrong_type"
        raw = int(metric.int_value)
        bits = _SIGNED_BITS[datatype]
        # either convention: the narrow two's complement (0xFF for Int8 -1) or a 32-bit one
        return float(_signed(raw, bits) if raw < 1 << bits else _signed(raw, 32))
    if datatype == INT64:
        if which != "long_value":
            return "wrong_type"
        return float(_signed(int(metric.long_value), 64))
    if which == "boolean_value":
        return 1.0 if metric.boolean_value else 0.0
    if which in ("int_value", "long_value"):
        if datatype is not None and datatype not in _NUMBER_TYPES and datatype != BOOLEAN:
            return "wrong_type"
        return float(getattr(metric, which))
    if which in ("float_value", "double_value"):
        number = float(getattr(metric, which))
        return number if math.isfinite(number) else "wrong_type"
    return "wrong_type"
