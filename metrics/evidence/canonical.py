"""Canonical bytes: RFC 8785 JSON, ledger leaf records, and the canonical sample encoding.

JSON
    Every signed or hashed JSON document is RFC 8785 (JCS) JSON produced by the ``rfc8785``
    package. Numbers are integers only: a float is written as a decimal string (Python's
    shortest round-trip ``repr``; ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` for the others),
    so no reader ever has to agree on binary floating point. :func:`jsonable` converts.

Leaf records
    One JSON object per ledger leaf, ``{"v": 1, "kind": ..., ...}``. A batch leaf is
    ``{"v":1,"kind":"batch","source":S,"seq":N,"first_ts":"T0","last_ts":"T1","count":C,
    "encoding":"sfs1","samples_sha256":HEX}`` (timestamps: ns UTC as decimal strings); special
    leaves (``config``, ``formula``, ``key_rotation``, ``clock``, ``gap``, ``import``) carry
    their own fields plus ``"ts"``: a ``config`` leaf the configuration's canonical content
    (:mod:`metrics.evidence.configlog`), an ``import`` leaf the imported file's name and SHA-256
    and the batches it became.

Sample encoding ``sfs1`` (little-endian, documented in docs/verification.md)
    ``b"SFS1"``; u32 number of series S; S times (u16 length + UTF-8 device, u16 length +
    UTF-8 point), series sorted by (device, point); u32 number of samples N; then the columns
    in canonical order (stable sort by series index, then timestamp): u32[N] series index,
    i64[N] ts (ns UTC), f64[N] value (IEEE 754; every NaN written as 0x7FF8000000000000),
    u8[N] quality (0 good, 1 uncertain, 2 bad); u32 number of non-empty statuses M; M times
    (u32 sample position, u16 length, UTF-8 status). Nothing may follow.
"""

from __future__ import annotations

import array
import bisect
import functools
import hashlib
import itertools
import json
import math
import operator
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import rfc8785

from metrics.series import Series

SAMPLE_ENCODING = "sfs1"
_MAGIC = b"SFS1"
_SAFE_INT = 2**53 - 1
_CANON_NAN = np.frombuffer(struct.pack("<Q", 0x7FF8000000000000), dtype="<f8")[0]


class CanonicalError(ValueError):
    """Bytes that are not in the canonical form they claim (the message says where)."""


# --- JSON ----------------------------------------------------------------------------------


def decimal(x: float) -> str:
    """A float as the decimal string used in canonical JSON."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return repr(float(x))


def parse_decimal(text: str) -> float:
    """Inverse of :func:`decimal`."""
    return float(text)


def jsonable(obj: Any) -> Any:
    """Deep copy of ``obj`` with floats as decimal strings, tuples as lists, keys as str."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj if -_SAFE_INT <= obj <= _SAFE_INT else str(obj)
    if isinstance(obj, float):
        return decimal(obj)
    if isinstance(obj, np.integer):
        return jsonable(int(obj))
    if isinstance(obj, np.floating):
        return decimal(float(obj))
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    raise TypeError(f"cannot put a {type(obj).__name__} into canonical JSON")


def is_plain_json(obj: Any) -> bool:
    """Whether ``obj`` is already what :func:`jsonable` makes, with ASCII keys (dicts of
    string keys, lists, strings, booleans, None, integers of at most 53 bits): its RFC 8785
    bytes are then ``json.dumps`` of it as it is, without :func:`jsonable`'s deep copy."""
    if isinstance(obj, str) or obj is None or isinstance(obj, bool):
        return True
    if type(obj) is int:
        return -_SAFE_INT <= obj <= _SAFE_INT
    if type(obj) is dict:
        return all(type(k) is str and k.isascii() and is_plain_json(v) for k, v in obj.items())
    if type(obj) is list:
        return all(is_plain_json(v) for v in obj)
    return False


def _ascii_keys(obj: Any) -> bool:
    if isinstance(obj, dict):
        return all(k.isascii() and _ascii_keys(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_ascii_keys(v) for v in obj)
    return True


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 bytes of ``obj`` (floats become decimal strings first).

    Without floats, RFC 8785 is ``json.dumps`` with sorted keys, no spaces and unescaped
    non-ASCII, as long as key order by code point equals order by UTF-16 unit (true for ASCII
    keys): that fast path is taken then, the ``rfc8785`` package otherwise."""
    data = jsonable(obj)
    if _ascii_keys(data):
        return json.dumps(
            data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    return rfc8785.dumps(data)


def parse_canonical(data: bytes, what: str) -> Any:
    """Parse JSON that must be byte-for-byte canonical; raise :class:`CanonicalError`."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CanonicalError(f"{what}: not valid JSON ({exc})") from None
    try:
        again = rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError) as exc:
        raise CanonicalError(f"{what}: not canonical JSON ({exc})") from None
    if again != data:
        raise CanonicalError(f"{what}: not in RFC 8785 canonical form (bytes were altered)")
    return obj


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- leaf records --------------------------------------------------------------------------


def batch_record(
    source: str, seq: int, first_ts: int, last_ts: int, count: int, samples_sha256: str
) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "batch",
        "source": source,
        "seq": int(seq),
        "first_ts": str(int(first_ts)),
        "last_ts": str(int(last_ts)),
        "count": int(count),
        "encoding": SAMPLE_ENCODING,
        "samples_sha256": samples_sha256,
    }


SPECIAL_KINDS = ("config", "formula", "key_rotation", "clock", "gap", "import")


def special_record(kind: str, ts: int, fields: Mapping[str, Any]) -> dict[str, Any]:
    if kind not in SPECIAL_KINDS:
        raise ValueError(f"unknown special leaf kind {kind!r}; one of {', '.join(SPECIAL_KINDS)}")
    rec: dict[str, Any] = {"v": 1, "kind": kind, "ts": str(int(ts))}
    for k, v in fields.items():
        if k in rec:
            raise ValueError(f"field {k!r} is reserved in a leaf record")
        rec[k] = v if is_plain_json(v) else jsonable(v)  # no copy of a large config
    return rec


def record_bytes(record: Mapping[str, Any]) -> bytes:
    """RFC 8785 bytes of a leaf record. A record of only ASCII keys, strings and safe integers
    (every batch record) is ``json.dumps`` with sorted keys directly: the same bytes as
    :func:`canonical_json`, without its deep copy."""
    if all(
        k.isascii() and (type(v) is str or (type(v) is int and -_SAFE_INT <= v <= _SAFE_INT))
        for k, v in record.items()
    ) or (type(record) is dict and is_plain_json(record)):
        return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8"
        )
    return canonical_json(record)


# --- sample encoding -----------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedSamples:
    """Columns of one encoded batch; ``series[i]`` is the (device, point) of index ``i``."""

    series: tuple[tuple[str, str], ...]
    index: npt.NDArray[np.uint32]
    ts: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]
    statuses: dict[int, str]

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def per_series(self) -> dict[tuple[str, str], Series]:
        """Samples split by series (each already in time order)."""
        out: dict[tuple[str, str], Series] = {}
        if not len(self):
            return out
        bounds = np.searchsorted(self.index, np.arange(len(self.series) + 1, dtype=np.uint32))
        for i, key in enumerate(self.series):
            lo, hi = int(bounds[i]), int(bounds[i + 1])
            out[key] = Series(self.ts[lo:hi], self.values[lo:hi], self.quality[lo:hi])
        return out


def _put_str(parts: list[bytes], text: str) -> None:
    raw = text.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError("a device, point or status longer than 65535 bytes")
    parts.append(struct.pack("<H", len(raw)))
    parts.append(raw)


def encode_columns(
    devices: Sequence[str],
    points: Sequence[str],
    ts: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
    statuses: Sequence[str] | None = None,
) -> bytes:
    """Canonical ``sfs1`` bytes of samples given as columns (any order)."""
    n = int(ts.shape[0])
    if not (len(devices) == len(points) == n == values.shape[0] == quality.shape[0]):
        raise ValueError("sample columns differ in length")
    pairs = list(zip(devices, points, strict=True))
    keys = sorted(dict.fromkeys(pairs))
    pos = {k: i for i, k in enumerate(keys)}
    sidx = np.fromiter(map(pos.__getitem__, pairs), np.uint32, n)
    return _encode_indexed(keys, sidx, ts, values, quality, statuses)


def _encode_indexed(
    keys: Sequence[tuple[str, str]],
    sidx: npt.NDArray[np.uint32],
    ts: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
    statuses: Sequence[str] | None,
) -> bytes:
    """``sfs1`` bytes of columns whose series index ``sidx`` points into the sorted, unique
    ``keys`` (the one encoder behind :func:`encode_columns` and :func:`encode_sample_groups`)."""
    n = int(ts.shape[0])
    if len(keys) == 1 and (n < 2 or bool((ts[1:] >= ts[:-1]).all())):
        order = None  # already canonical: one series in time order (the common batch)
    else:
        order = np.lexsort((ts, sidx))  # stable: equal (series, ts) keep their arrival order
    vals = np.array(values if order is None else values[order], dtype="<f8")
    nan = np.isnan(vals)
    if nan.any():
        vals[nan] = _CANON_NAN
    parts: list[bytes] = [_MAGIC, struct.pack("<I", len(keys))]
    for dev, pt in keys:
        _put_str(parts, dev)
        _put_str(parts, pt)
    parts.append(struct.pack("<I", n))
    for col, dt in ((sidx, "<u4"), (ts, "<i8")):
        parts.append(np.ascontiguousarray(col if order is None else col[order], dtype=dt).tobytes())
    parts.append(vals.tobytes())
    parts.append(
        np.ascontiguousarray(quality if order is None else quality[order], dtype="u1").tobytes()
    )
    st: list[tuple[int, str]] = []
    if statuses is not None:
        given = [(i, x) for i, x in enumerate(statuses) if x]
        if given:
            if order is None:
                st = given
            else:
                inv = np.empty(n, dtype=np.int64)
                inv[order] = np.arange(n)
                st = sorted((int(inv[i]), x) for i, x in given)
    parts.append(struct.pack("<I", len(st)))
    for i, x in st:
        parts.append(struct.pack("<I", i))
        _put_str(parts, x)
    return b"".join(parts)


def encode_samples(samples: Iterable[Any]) -> bytes:
    """Canonical ``sfs1`` bytes of ``connectors.base.Sample``-like objects."""
    return encode_samples_range(samples)[0]


def encode_samples_range(samples: Iterable[Any]) -> tuple[bytes, int, int, int]:
    """``(sfs1 bytes, first ts, last ts, count)`` of ``Sample``-like objects."""
    items = samples if isinstance(samples, list | tuple) else list(samples)
    return encode_sample_groups([items])[0]


@functools.cache
def _empty() -> tuple[bytes, int, int, int]:
    e64 = np.empty(0, np.int64)
    return encode_columns([], [], e64, np.empty(0), np.empty(0, np.uint8)), 0, 0, 0


@dataclass(frozen=True)
class SampleColumns:
    """The columns of the samples of several groups (batches), read off the ``Sample``
    objects once: group ``i`` is rows ``bounds[i]:bounds[i + 1]``. The writer builds them once
    per write call and hands them to the ledger (and to a store that takes them), so the
    samples are not walked attribute by attribute twice. ``statuses`` is ``None`` when every
    status is empty."""

    bounds: tuple[int, ...]
    devices: list[str]
    points: list[str]
    ts: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]
    statuses: list[str] | None

    @classmethod
    def of(cls, groups: Sequence[Sequence[Any]]) -> SampleColumns:
        bounds = [0]
        for g in groups:
            bounds.append(bounds[-1] + len(g))
        flat: list[Any] = list(itertools.chain.from_iterable(groups))
        # one list comprehension per column is about twice as fast as attrgetter + zip
        statuses = [s.status for s in flat]
        return cls(
            tuple(bounds),
            [s.device for s in flat],
            [s.point for s in flat],
            np.array([s.ts for s in flat], dtype=np.int64),
            np.array([s.value for s in flat], dtype=np.float64),
            np.frombuffer(array.array("B", [s.quality for s in flat]), dtype=np.uint8),
            statuses if any(statuses) else None,
        )

    @classmethod
    def of_blocks(cls, blocks: Sequence[BlockLike]) -> SampleColumns:
        """The columns of blocks of samples (``connectors.base.SampleBlock``: one device,
        its points, ts, values, qualities, statuses), block ``i`` being group ``i``: the
        arrays are concatenated, no sample is read one by one."""
        bounds = [0]
        devices: list[str] = []
        for b in blocks:
            k = len(b.points)
            bounds.append(bounds[-1] + k)
            devices += [b.device] * k
        statuses: list[str] | None = None
        if any(b.statuses is not None and any(b.statuses) for b in blocks):
            statuses = list(
                itertools.chain.from_iterable(
                    b.statuses if b.statuses is not None else ("",) * len(b.points) for b in blocks
                )
            )
        if not blocks:
            return cls(
                (0,), [], [], np.empty(0, np.int64), np.empty(0), np.empty(0, np.uint8), None
            )
        return cls(
            tuple(bounds),
            devices,
            list(itertools.chain.from_iterable(b.points for b in blocks)),
            np.concatenate([b.ts for b in blocks]).astype(np.int64, copy=False),
            np.concatenate([b.values for b in blocks]).astype(np.float64, copy=False),
            np.concatenate([b.quality for b in blocks]).astype(np.uint8, copy=False),
            statuses,
        )

    @property
    def groups(self) -> int:
        return len(self.bounds) - 1

    def fits(self, groups: Sequence[Sequence[Any]]) -> bool:
        """Whether these are the columns of groups of these sizes."""
        return self.fits_counts([len(g) for g in groups])

    def fits_counts(self, counts: Sequence[int]) -> bool:
        """Whether these are the columns of groups of ``counts`` samples each."""
        return self.groups == len(counts) and all(
            self.bounds[i + 1] - self.bounds[i] == k for i, k in enumerate(counts)
        )


class BlockLike(Protocol):
    """What :meth:`SampleColumns.of_blocks` reads of a block (``connectors.base.SampleBlock``;
    metrics does not import connectors)."""

    @property
    def device(self) -> str: ...

    @property
    def points(self) -> Sequence[str]: ...

    @property
    def ts(self) -> npt.NDArray[np.int64]: ...

    @property
    def values(self) -> npt.NDArray[np.float64]: ...

    @property
    def quality(self) -> npt.NDArray[np.uint8]: ...

    @property
    def statuses(self) -> Sequence[str] | None: ...


def encode_sample_groups(
    groups: Sequence[Sequence[Any]], columns: SampleColumns | None = None
) -> list[tuple[bytes, int, int, int]]:
    """:func:`encode_samples_range` of every group of ``Sample``-like objects (one batch each),
    byte for byte, vectorised over the whole call: the columns are read off the samples once
    (or taken from ``columns``, which must be theirs), series are numbered by sorted device and
    point names, and one stable sort by (group, series, ts) puts every group in canonical
    order. What is left per group is slicing and its header: a few numpy calls per append
    rather than a few dozen per batch (each may hand the GIL to the ingest threads)."""
    if columns is None:
        columns = SampleColumns.of(groups)
    elif not columns.fits(groups):
        raise ValueError("the sample columns are not those of these groups (sizes differ)")
    return encode_column_groups(columns)


def encode_column_groups(columns: SampleColumns) -> list[tuple[bytes, int, int, int]]:
    """:func:`encode_sample_groups` of the groups of ``columns`` (no sample objects needed)."""
    n = columns.bounds[-1]
    if not n:
        return [_empty() for _ in range(columns.groups)]
    sizes = [columns.bounds[i + 1] - columns.bounds[i] for i in range(columns.groups)]
    ts, devs, pts = columns.ts, columns.devices, columns.points
    nonempty = [i for i, k in enumerate(sizes) if k]
    nz_sizes = np.array([sizes[i] for i in nonempty], dtype=np.int64)
    # series number: (device rank, point rank) sorts like the (device, point) pairs
    pt_names = sorted(set(pts))
    n_pt = len(pt_names)
    bnd = columns.bounds
    one_dev = [devs[bnd[i]] for i in nonempty]  # the collector's batches: one device each
    pairs = zip(nonempty, one_dev, strict=True)
    if all(devs[bnd[i] : bnd[i + 1]].count(d) == sizes[i] for i, d in pairs):
        dev_names = sorted(set(one_dev))
        dev_rank = np.repeat(_ranks(one_dev, dev_names), nz_sizes)
    else:
        dev_names = sorted(set(devs))
        dev_rank = _ranks(devs, dev_names)
    n_series = len(dev_names) * n_pt
    gsid = dev_rank * n_pt + _ranks(pts, pt_names)
    starts = np.zeros(len(nonempty), dtype=np.int64)
    np.cumsum(nz_sizes[:-1], out=starts[1:])
    key = np.repeat(np.arange(len(nonempty), dtype=np.int64) * n_series, nz_sizes) + gsid
    # stable: equal (group, series, ts) keep their arrival order
    perm = np.lexsort((ts, key))
    order = None if bool((perm[1:] > perm[:-1]).all()) else perm  # None: already canonical
    s_key = key if order is None else key[order]
    s_ts = np.ascontiguousarray(ts if order is None else ts[order], dtype="<i8")
    vals = columns.values
    s_val = np.array(vals if order is None else vals[order], dtype="<f8")
    nan = np.isnan(s_val)
    if nan.any():
        s_val[nan] = _CANON_NAN
    qual = columns.quality
    s_qual = np.ascontiguousarray(qual if order is None else qual[order], dtype="u1")
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(s_key[1:], s_key[:-1], out=new[1:])
    series_no = np.cumsum(new) - 1
    local = (series_no - np.repeat(series_no[starts], nz_sizes)).astype("<u4")
    first_of_series = np.flatnonzero(new)
    series_gsid = s_key[first_of_series] % n_series
    series_bounds = np.searchsorted(first_of_series, np.append(starts, n)).tolist()
    firsts = np.minimum.reduceat(ts, starts).tolist()
    lasts = np.maximum.reduceat(ts, starts).tolist()
    # statuses, by position in the sorted columns
    st_at: list[tuple[int, str]] = []
    if columns.statuses is not None:
        given = [(i, x) for i, x in enumerate(columns.statuses) if x]
        if order is None:
            st_at = given
        else:
            inv = np.empty(n, dtype=np.int64)
            inv[order] = np.arange(n)
            st_at = sorted((int(inv[i]), x) for i, x in given)
    st_pos = [p for p, _ in st_at]
    # the header entry of every series of every group (u16 + UTF-8 device, u16 + UTF-8 point):
    # names encoded once per call, picked per (group, series) by itemgetter (no bytecode each)
    dev_b = [_str_bytes(x) for x in dev_names]
    pt_b = [_str_bytes(x) for x in pt_names]
    n_hdr = int(series_gsid.shape[0])
    series_hdr: list[bytes] = [b""] * (2 * n_hdr)  # device, point, device, point, ...
    if n_hdr == 1:
        g0 = int(series_gsid[0])
        series_hdr = [dev_b[g0 // n_pt], pt_b[g0 % n_pt]]
    elif n_hdr:
        series_hdr[0::2] = operator.itemgetter(*(series_gsid // n_pt).tolist())(dev_b)
        series_hdr[1::2] = operator.itemgetter(*(series_gsid % n_pt).tolist())(pt_b)
    b_local, b_ts, b_val, b_qual = (
        local.tobytes(),
        s_ts.tobytes(),
        s_val.tobytes(),
        s_qual.tobytes(),
    )
    out = [_empty()] * columns.groups
    for j, a in enumerate(starts.tolist()):
        z = a + sizes[nonempty[j]]
        lo_s, hi_s = series_bounds[j], series_bounds[j + 1]
        parts: list[bytes] = [_MAGIC, struct.pack("<I", hi_s - lo_s)]
        parts.extend(series_hdr[2 * lo_s : 2 * hi_s])
        parts.append(struct.pack("<I", z - a))
        parts.append(b_local[4 * a : 4 * z])
        parts.append(b_ts[8 * a : 8 * z])
        parts.append(b_val[8 * a : 8 * z])
        parts.append(b_qual[a:z])
        lo, hi = bisect.bisect_left(st_pos, a), bisect.bisect_left(st_pos, z)
        parts.append(struct.pack("<I", hi - lo))
        for p, x in st_at[lo:hi]:
            parts.append(struct.pack("<I", p - a))
            parts.append(_str_bytes(x))
        out[nonempty[j]] = (b"".join(parts), firsts[j], lasts[j], z - a)
    return out


def _ranks(names: list[str], ordered: list[str]) -> npt.NDArray[np.int64]:
    """Position of every name in ``ordered`` (sorted, unique)."""
    if len(ordered) == 1:
        return np.zeros(len(names), dtype=np.int64)
    pos = {x: i for i, x in enumerate(ordered)}
    return np.fromiter(map(pos.__getitem__, names), np.int64, len(names))


@functools.lru_cache(maxsize=65536)
def _str_bytes(text: str) -> bytes:
    """u16 length + UTF-8 of ``text``, as :func:`_put_str` writes it."""
    raw = text.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError("a device, point or status longer than 65535 bytes")
    return struct.pack("<H", len(raw)) + raw


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise CanonicalError(f"{self.what}: truncated at byte {self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return int(struct.unpack("<H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def text(self) -> str:
        raw = self.take(self.u16())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CanonicalError(f"{self.what}: invalid UTF-8 near byte {self.pos}") from None


def decode_samples(data: bytes, what: str = "samples") -> DecodedSamples:
    """Decode ``sfs1`` bytes, checking that they are canonical (re-encoding gives them back)."""
    r = _Reader(data, what)
    if r.take(4) != _MAGIC:
        raise CanonicalError(f"{what}: not an sfs1 sample encoding (bad magic)")
    series = tuple((r.text(), r.text()) for _ in range(r.u32()))
    if list(series) != sorted(set(series)):
        raise CanonicalError(f"{what}: series are not sorted and unique")
    n = r.u32()
    idx = np.frombuffer(r.take(4 * n), dtype="<u4").astype(np.uint32)
    ts = np.frombuffer(r.take(8 * n), dtype="<i8").astype(np.int64)
    values = np.frombuffer(r.take(8 * n), dtype="<f8").astype(np.float64)
    quality = np.frombuffer(r.take(n), dtype="u1").astype(np.uint8)
    statuses: dict[int, str] = {}
    last = -1
    for _ in range(r.u32()):
        i = r.u32()
        s = r.text()
        if i <= last or i >= n or not s:
            raise CanonicalError(f"{what}: status entries out of order or empty")
        statuses[i] = s
        last = i
    if r.pos != len(data):
        raise CanonicalError(f"{what}: {len(data) - r.pos} unexpected bytes at the end")
    if n:
        if int(idx.max()) >= len(series):
            raise CanonicalError(f"{what}: series index out of range")
        step_idx = np.diff(idx.astype(np.int64))
        step_ts = np.diff(ts)
        if (step_idx < 0).any() or ((step_idx == 0) & (step_ts < 0)).any():
            raise CanonicalError(f"{what}: samples are not in canonical (series, ts) order")
        if (quality > 2).any():
            raise CanonicalError(f"{what}: quality code above 2")
        bits = values.view(np.uint64)
        if (np.isnan(values) & (bits != np.uint64(0x7FF8000000000000))).any():
            raise CanonicalError(f"{what}: non-canonical NaN")
        used = np.zeros(len(series), dtype=bool)
        used[idx] = True
        if not used.all():
            raise CanonicalError(f"{what}: a listed series has no sample")
    elif series:
        raise CanonicalError(f"{what}: series listed without samples")
    return DecodedSamples(series, idx, ts, values, quality, statuses)
