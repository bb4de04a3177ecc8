"""PublishResponse decoding with a columnar path for the common DataChangeNotification.

asyncua decodes a PublishResponse field by field into Python objects: per monitored item a
MonitoredItemNotification, a DataValue, a Variant (its type looked up through an Enum call) and
two datetimes; about 20 us per item on the benchmark machine, more than everything the
gateway does with the value afterwards. Here the response is decoded with asyncua's own
functions except the DataChangeNotifications of the common shape, read in one numpy pass:

* every item has the same DataValue encoding mask (a value, optionally a StatusCode, a source
  and a server timestamp; no picoseconds) and the same scalar Variant type (Boolean, the
  integers, Float or Double), so each item is a fixed-size record;
* no diagnostic infos.

Such a notification becomes a :class:`ColumnarDataChange` (handles, values, status codes and
the two timestamps as arrays). Anything else (another shape, another notification type, a
timestamp past 2200) is decoded by asyncua exactly as before. Timestamps keep asyncua's
resolution (whole microseconds, as its datetimes) and its "absent" rule (at or before 1970:
no timestamp).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import (
    extensionobject_from_binary,
    from_binary,
    nodeid_from_binary,
    struct_from_binary,
    unpack_uatype_array,
)
from asyncua.ua.uaerrors import UaStructParsingError

log = logging.getLogger("shopfloor.opcua")

# microseconds from the FILETIME epoch (1601) to the Unix epoch
EPOCH_US = 11_644_473_600_000_000
# FILETIME (100 ns units) of 2200-01-01: anything later goes through asyncua (its clamping)
_FT_MAX = (EPOCH_US + 7_258_118_400_000_000) * 10

# Variant type byte -> numpy dtype of the scalar (little endian)
_SCALAR = {
    1: np.dtype("u1"),  # Boolean
    2: np.dtype("i1"),
    3: np.dtype("u1"),
    4: np.dtype("<i2"),
    5: np.dtype("<u2"),
    6: np.dtype("<i4"),
    7: np.dtype("<u4"),
    8: np.dtype("<i8"),
    9: np.dtype("<u8"),
    10: np.dtype("<f4"),
    11: np.dtype("<f8"),
}
_BOOLEAN = 1
_DATACHANGE = ua.FourByteNodeId(ua.ObjectIds.DataChangeNotification_Encoding_DefaultBinary)
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")


@dataclass(frozen=True, slots=True)
class ColumnarDataChange:
    """A DataChangeNotification as columns (row ``i``: the ``i``-th monitored item).

    ``status`` is None when the items carry no StatusCode (all Good); ``source_us`` and
    ``server_us`` are microseconds since the Unix epoch, None when the items carry no such
    timestamp (a value at or before 0 is an absent timestamp, as asyncua's)."""

    handles: npt.NDArray[np.uint32]
    values: npt.NDArray[np.float64]
    status: npt.NDArray[np.uint32] | None
    source_us: npt.NDArray[np.int64] | None
    server_us: npt.NDArray[np.int64] | None

    def __len__(self) -> int:
        return len(self.handles)


def columnar_datachange(body: bytes) -> ColumnarDataChange | None:
    """The DataChangeNotification encoded in ``body`` as columns, or None when it is not of
    the common shape (see the module docstring)."""
    size = len(body)
    if size < 10:
        return None
    (count,) = _I32.unpack_from(body, 0)
    if count <= 0:
        return None
    mask = body[8]
    scalar = _SCALAR.get(body[9])
    if mask & ~0x0F or not mask & 1 or scalar is None:
        return None
    fields: list[tuple[str, Any]] = [("h", "<u4"), ("m", "u1"), ("t", "u1"), ("v", scalar)]
    if mask & 2:
        fields.append(("s", "<u4"))
    if mask & 4:
        fields.append(("src", "<i8"))
    if mask & 8:
        fields.append(("srv", "<i8"))
    record = np.dtype(fields)
    end = 4 + count * record.itemsize
    if end + 4 != size or _I32.unpack_from(body, end)[0] > 0:
        return None
    rows = np.frombuffer(body, record, count, offset=4)
    if not ((rows["m"] == mask).all() and (rows["t"] == body[9]).all()):
        return None
    source = server = None
    if mask & 4:
        ft = rows["src"]
        if (ft >= _FT_MAX).any():
            return None
        source = ft // 10 - EPOCH_US
    if mask & 8:
        ft = rows["srv"]
        if (ft >= _FT_MAX).any():
            return None
        server = ft // 10 - EPOCH_US
    raw = rows["v"]
    values = (raw != 0).astype(np.float64) if body[9] == _BOOLEAN else raw.astype(np.float64)
    return ColumnarDataChange(
        handles=rows["h"].copy(),
        values=values,
        status=rows["s"].copy() if mask & 2 else None,
        source_us=source,
        server_us=server,
    )


class _Fallback(Exception):
    """A shape this decoder leaves to asyncua (the whole response is decoded by asyncua)."""


def _notification(buf: Buffer) -> Any:
    """One NotificationData ExtensionObject: columns when possible, else asyncua's object."""
    snap = buf.copy()
    typeid = nodeid_from_binary(buf)
    encoding = buf.read(1)[0]
    body = b""
    if encoding & 1:
        (length,) = _I32.unpack(buf.read(4))
        if length == -1:  # asyncua's interop rule (the rest is the body): leave it to asyncua
            raise _Fallback
        if length > 0:
            body = bytes(buf.read(length))
    if typeid == _DATACHANGE:
        cols = columnar_datachange(body)
        if cols is not None:
            return cols
    return extensionobject_from_binary(snap)


def decode_publish(data: Buffer) -> ua.PublishResponse:
    """A PublishResponse (``data`` at its TypeId, as asyncua's ``UaClient.publish`` has it),
    with the common DataChangeNotifications as :class:`ColumnarDataChange` objects."""
    raw = bytes(data)
    try:
        return _decode(Buffer(raw))
    except _Fallback:
        return struct_from_binary(ua.PublishResponse, Buffer(raw))


def _decode(buf: Buffer) -> ua.PublishResponse:
    nodeid_from_binary(buf)  # the response's TypeId (checked by check_answer)
    resp = ua.PublishResponse()
    resp.ResponseHeader = struct_from_binary(ua.ResponseHeader, buf)
    params = resp.Parameters
    params.SubscriptionId = _U32.unpack(buf.read(4))[0]
    params.AvailableSequenceNumbers = unpack_uatype_array(ua.VariantType.UInt32, buf) or []
    params.MoreNotifications = bool(buf.read(1)[0])
    msg = params.NotificationMessage
    msg.SequenceNumber = _U32.unpack(buf.read(4))[0]
    msg.PublishTime = ua.win_epoch_to_datetime(_I64.unpack(buf.read(8))[0])
    (count,) = _I32.unpack(buf.read(4))
    msg.NotificationData = [_notification(buf) for _ in range(max(count, 0))]
    params.Results = unpack_uatype_array(ua.VariantType.StatusCode, buf) or []
    params.DiagnosticInfos = from_binary(list[ua.DiagnosticInfo], buf) or []
    return resp


def install(uaclient: Any) -> bool:
    """Make ``uaclient`` (an asyncua ``UaClient``) decode its publish responses with
    :func:`decode_publish`; False (nothing changed) when it lacks what this relies on."""
    protocol_ok = callable(getattr(type(uaclient), "publish", None))
    if not protocol_ok or not hasattr(uaclient, "protocol"):
        return False

    async def publish(acks: list[ua.SubscriptionAcknowledgement]) -> ua.PublishResponse:
        request = ua.PublishRequest()
        request.Parameters.SubscriptionAcknowledgements = acks if acks else []
        data = await uaclient.protocol.send_request(request, timeout=0)
        uaclient.protocol.check_answer(data, "while waiting for publish response")
        try:
            return decode_publish(data)
        except Exception as ex:
            log.exception("Error parsing notification from server")
            raise UaStructParsingError from ex

    uaclient.publish = publish
    return True
