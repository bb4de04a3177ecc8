"""Bulk decoding of one Modbus response: every point of a request in a few numpy calls.

:func:`block_decoder` compiles a :class:`~connectors.modbus.plan.ReadRequest` once into a
:class:`BlockDecoder`; :meth:`BlockDecoder.decode` turns the response's registers (or bits)
into columns: values (float64, NaN when bad), qualities (uint8) and the non-empty statuses by
point index, with exactly the values and statuses of
:func:`connectors.modbus.plan.decode_response` (a test compares them over every numeric type
and byte order). Points of the same (datatype, order) are gathered from the register block as
one ``(k, width)`` array, swapped and reinterpreted as big-endian bytes; scale and offset
apply as arrays. Strings and bits of registers (rare) fall back to the per-point decoder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from connectors.base import Quality, SampleBlock
from connectors.modbus.codec import NUMERIC_TYPES
from connectors.modbus.plan import BIT_TABLES, ReadRequest, decode_response

_NP_TYPE: dict[str, str] = {
    "int16": ">i2",
    "uint16": ">u2",
    "int32": ">i4",
    "uint32": ">u4",
    "float32": ">f4",
    "int64": ">i8",
    "uint64": ">u8",
    "float64": ">f8",
}
Words = Sequence[int] | Sequence[bool] | npt.NDArray[np.uint16] | npt.NDArray[np.bool_]
"""A response's registers or bits: Python values, or an array (see :meth:`BlockDecoder.decode`)."""
_FLOATS = frozenset({"float32", "float64"})
_GOOD = int(Quality.GOOD)
_BAD = int(Quality.BAD)


@dataclass(frozen=True, slots=True)
class _Group:
    """Points of one (datatype, order): their indexes in the request and word offsets."""

    index: npt.NDArray[np.intp]
    offsets: npt.NDArray[np.intp]  # (k, width) register offsets, most significant word first
    swap_bytes: bool
    dtype: str
    check_finite: bool
    end: npt.NDArray[np.intp]  # first offset after each point (short responses)
    end_max: int  # registers the whole group needs
    width: int
    first: int  # offset of the first point
    dense: bool  # points back to back from ``first``: the block is a slice, not a gather
    word_reverse: bool  # CDAB / DCBA: the words of a point in reverse order


class BlockDecoder:
    """The compiled decoding of one request (see the module docstring)."""

    def __init__(self, request: ReadRequest) -> None:
        self.request = request
        refs = request.points
        self.size = len(refs)
        self.devices = [r.device for r in refs]
        self.points = [r.point for r in refs]
        # the request's rows per device (usually one run: a request reads one unit), with the
        # points tuple built once and handed with every block of the run
        self.runs: list[tuple[str, int, int, tuple[str, ...]]] = []
        run = 0
        for i in range(1, len(refs) + 1):
            if i == len(refs) or refs[i].device != refs[run].device:
                self.runs.append((refs[run].device, run, i, tuple(self.points[run:i])))
                run = i
        self.scale = np.array([r.scale for r in refs], dtype=np.float64)
        self.offset = np.array([r.offset for r in refs], dtype=np.float64)
        self.bits = request.table in BIT_TABLES
        self.bit_offsets = np.array([r.address - request.address for r in refs], dtype=np.intp)
        groups: dict[tuple[str, str], list[int]] = {}
        slow: list[int] = []
        for i, r in enumerate(refs):
            if self.bits:
                continue
            if r.datatype in NUMERIC_TYPES and r.bit is None:
                groups.setdefault((r.datatype, r.order), []).append(i)
            else:
                slow.append(i)
        self.slow = slow
        self.groups: list[_Group] = []
        for (datatype, order), idx in groups.items():
            width = int(np.dtype(_NP_TYPE[datatype]).itemsize) // 2
            start = np.array([refs[i].address - request.address for i in idx], dtype=np.intp)
            offs = start[:, None] + np.arange(width, dtype=np.intp)[None, :]
            reverse = width > 1 and order in ("CDAB", "DCBA")
            if reverse:
                offs = offs[:, ::-1]
            dense = bool((start == start[0] + width * np.arange(len(idx), dtype=np.intp)).all())
            self.groups.append(
                _Group(
                    np.array(idx, dtype=np.intp),
                    np.ascontiguousarray(offs),
                    order in ("BADC", "DCBA"),
                    _NP_TYPE[datatype],
                    datatype in _FLOATS,
                    start + width,
                    int(start.max()) + width,
                    width,
                    int(start[0]),
                    dense,
                    reverse,
                )
            )
        # the common request: one (datatype, order) for all its points, in order, no fallback
        only = self.groups[0] if len(self.groups) == 1 and not slow else None
        self.only = only if only is not None and only.index.shape[0] == self.size else None
        self.plain_scale = bool((self.scale == 1.0).all() and (self.offset == 0.0).all())

    def decode(
        self, words: Words
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint8], dict[int, str]]:
        """Values, qualities and statuses (by point index, non-empty only) of the points.

        ``words`` is the response's registers (or bits) as a list or as a numpy array (the
        lean client's big-endian ``uint16`` view of the received bytes: no copy to ints)."""
        n = self.size
        count = len(words)
        only = self.only
        if only is not None and count >= only.end_max:
            regs = words if isinstance(words, np.ndarray) else np.array(words, dtype=np.uint16)
            return self._decode_only(only, regs)
        values = np.full(n, math.nan, dtype=np.float64)
        quality = np.full(n, _GOOD, dtype=np.uint8)
        status: dict[int, str] = {}
        if self.bits:
            arr = words if isinstance(words, np.ndarray) else np.array(words, dtype=bool)
            ok = self.bit_offsets < count
            values[ok] = arr[self.bit_offsets[ok]]
            for i in np.flatnonzero(~ok).tolist():
                quality[i], status[i] = _BAD, "short_response"
            return values, quality, status
        regs = words if isinstance(words, np.ndarray) else np.array(words, dtype=np.uint16)
        for g in self.groups:
            if count >= g.end_max:
                idx, offs = g.index, g.offsets
            else:
                fits = g.end <= count
                for i in g.index[~fits].tolist():
                    quality[i], status[i] = _BAD, "short_response"
                idx, offs = g.index[fits], g.offsets[fits]
                if not idx.shape[0]:
                    continue
            block = regs[offs]
            if g.swap_bytes:
                block = block.byteswap()
            raw = block.astype(">u2").view(g.dtype).reshape(-1)
            with np.errstate(invalid="ignore"):  # a signalling NaN stays a NaN (bad below)
                v = raw.astype(np.float64)
            if g.check_finite:
                bad = ~np.isfinite(v)
                if bad.any():
                    for j in np.flatnonzero(bad).tolist():
                        i = int(idx[j])
                        quality[i] = _BAD
                        status[i] = "nan" if math.isnan(v[j]) else "infinite"
                    v[bad] = math.nan
            values[idx] = v
        # as the per-point decoder: value * scale + offset, always (-0.0 + 0.0 is 0.0)
        good = quality == _GOOD
        values[good] = values[good] * self.scale[good] + self.offset[good]
        if self.slow:
            listed = words.tolist() if isinstance(words, np.ndarray) else words
            readings = decode_response(self.request, listed)
            for i in self.slow:
                r = readings[i]
                values[i], quality[i] = r.value, int(r.quality)
                if r.status:
                    status[i] = r.status
        return values, quality, status

    def _decode_only(
        self, g: _Group, regs: npt.NDArray[Any]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint8], dict[int, str]]:
        """:meth:`decode` of a request whose points are all one group and fully answered:
        a slice instead of a gather, no index arrays, no masks (a bad value is NaN already, and
        NaN * scale + offset stays NaN)."""
        n = self.size
        if g.dense:
            block = regs[g.first : g.first + n * g.width].reshape(n, g.width)
            if g.word_reverse:
                block = block[:, ::-1]
        else:
            block = regs[g.offsets]
        if g.swap_bytes:
            block = block.byteswap()
        raw = block.astype(">u2", order="C").view(g.dtype).reshape(-1)
        with np.errstate(invalid="ignore"):
            values = raw.astype(np.float64)
        quality = np.full(n, _GOOD, dtype=np.uint8)
        status: dict[int, str] = {}
        if g.check_finite:
            bad = ~np.isfinite(values)
            if bad.any():
                for i in np.flatnonzero(bad).tolist():
                    quality[i] = _BAD
                    status[i] = "nan" if math.isnan(values[i]) else "infinite"
                values[bad] = math.nan
        elif self.plain_scale:
            return values, quality, status  # integers: x * 1.0 + 0.0 is x
        values *= self.scale
        values += self.offset
        return values, quality, status

    def blocks(
        self,
        ts: int,
        values: npt.NDArray[np.float64],
        quality: npt.NDArray[np.uint8],
        status: dict[int, str],
    ) -> list[SampleBlock]:
        """The decoded columns as one :class:`SampleBlock` per device run, stamped ``ts``."""
        out: list[SampleBlock] = []
        stamps = np.full(self.size, ts, dtype=np.int64)
        for device, a, z, points in self.runs:
            statuses = None
            if status and any(a <= i < z for i in status):
                statuses = tuple(status.get(i, "") for i in range(a, z))
            if a == 0 and z == self.size:
                out.append(SampleBlock(device, points, stamps, values, quality, statuses))
            else:
                out.append(
                    SampleBlock(device, points, stamps[a:z], values[a:z], quality[a:z], statuses)
                )
        return out


def block_decoder(request: ReadRequest) -> BlockDecoder:
    return BlockDecoder(request)
