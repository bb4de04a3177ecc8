"""One row of the SQLite store's ``latest`` table: the newest sample of every point of a device.

A row is binary (``SFL1``): the columns the store keeps anyway, written as they are, so that
writing the table costs a few array copies per device instead of a JSON document of every point
(100,000 points: about 0.1 s of Python per render before, under 5 ms now; issue 16):

    b"SFL1" | n: uint32 LE | ts: int64[n] | val: float64[n] | sid: uint32[n] | qual: uint8[n]
           | extra: UTF-8 JSON (optional; absent when empty)

``sid`` are the store's series ids (``series`` table: id, device, point); ``val`` is NaN where
the value is unknown; ``extra`` holds ``{"status": {sid: text}}`` for the samples with a status
and ``{"named": {point: [ts, value or null, quality, status]}}`` for entries kept from older
files whose point has no series. Rows written before this format are JSON text
``{point: [ts, value or null, quality, status]}``; :func:`decode` reads both.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

MAGIC = b"SFL1"
_HEAD = struct.Struct("<4sI")

# a point's latest entry by name: [ts, value or None (NaN), quality, status]
NamedEntry = list[Any]


@dataclass(frozen=True)
class LatestRow:
    """A decoded row: columns by series id, plus entries by point name (older rows)."""

    sid: npt.NDArray[np.int64]
    ts: npt.NDArray[np.int64]
    val: npt.NDArray[np.float64]
    qual: npt.NDArray[np.uint8]
    status: dict[int, str] = field(default_factory=dict)
    named: dict[str, NamedEntry] = field(default_factory=dict)


def encode(
    sid: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    val: npt.NDArray[np.float64],
    qual: npt.NDArray[np.uint8],
    status: dict[int, str],
    named: dict[str, NamedEntry],
) -> bytes:
    """The row of these columns (equal lengths), statuses by series id and named entries."""
    n = int(sid.shape[0])
    parts = [
        _HEAD.pack(MAGIC, n),
        ts.astype("<i8", copy=False).tobytes(),
        val.astype("<f8", copy=False).tobytes(),
        sid.astype("<u4").tobytes(),
        qual.astype(np.uint8, copy=False).tobytes(),
    ]
    extra: dict[str, Any] = {}
    if status:
        extra["status"] = {str(k): v for k, v in sorted(status.items())}
    if named:
        extra["named"] = dict(sorted(named.items()))
    if extra:
        parts.append(json.dumps(extra, ensure_ascii=False, separators=(",", ":")).encode())
    return b"".join(parts)


def decode(row: bytes | str) -> LatestRow:
    """A stored row, binary or (older files) JSON text; raises ValueError when it is neither."""
    if isinstance(row, str):
        named = json.loads(row)
        if not isinstance(named, dict):
            raise ValueError("a latest row in JSON is not an object")
        empty = np.empty(0, dtype=np.int64)
        return LatestRow(empty, empty, np.empty(0), np.empty(0, dtype=np.uint8), {}, named)
    if len(row) < _HEAD.size or row[:4] != MAGIC:
        raise ValueError("a latest row is neither SFL1 nor JSON")
    n = _HEAD.unpack_from(row)[1]
    at = _HEAD.size
    end = at + n * 21
    if len(row) < end:
        raise ValueError(f"a latest row is cut short ({len(row)} bytes for {n} points)")
    ts = np.frombuffer(row, dtype="<i8", count=n, offset=at).astype(np.int64)
    val = np.frombuffer(row, dtype="<f8", count=n, offset=at + 8 * n).astype(np.float64)
    sid = np.frombuffer(row, dtype="<u4", count=n, offset=at + 16 * n).astype(np.int64)
    qual = np.frombuffer(row, dtype=np.uint8, count=n, offset=at + 20 * n).copy()
    extra: dict[str, Any] = json.loads(row[end:]) if len(row) > end else {}
    status = {int(k): str(v) for k, v in extra.get("status", {}).items()}
    return LatestRow(sid, ts, val, qual, status, dict(extra.get("named", {})))
