"""Pure decoding of MQTT payloads into point values.

One message can carry several points (JSON pointers into one document) and a timestamp field.
A payload without a pointer is a plain number (``23.5``, ``-4``, ``true``). Whatever is wrong is
reported as a *reason* (one of :data:`REASONS`) and never becomes a value: a reason that spoils
the whole message (``oversized``, ``not_utf8``, ``not_json``, ``too_deep``) has no point; a
reason of one point (``missing_field``, ``wrong_type``, ``not_number``, ``unknown_text`` (a text
not in a ``datatype: text`` point's ``enum``, :mod:`config.textmap`) and the timestamp reasons
``ts_*`` of :data:`TS_REASONS`) leaves the other points of the same message untouched.

A naive ISO 8601 time (no offset, e.g. Tasmota's ``"2026-12-04T13:45:00"``) is read in the
point's time zone (:attr:`FieldSpec.tz`: the device's ``mqtt.timezone``, else the site's); a
wall time that the zone skips (spring forward) is ``ts_nonexistent``, one it repeats (fall
back) is ``ts_ambiguous``: neither is guessed.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonpointer
import numpy as np

from config.models import DataType, Point
from config.textmap import UNKNOWN_TEXT, text_code

TsFormat = Literal["epoch_s", "epoch_ms", "epoch_ns", "iso8601"]

#: why a timestamp field gave no time (one reason each, so that health shows the real cause)
TS_REASONS: tuple[str, ...] = (
    "ts_missing",  # the timestamp pointer finds nothing
    "ts_wrong_type",  # not a number (epoch formats) / not a string (iso8601)
    "ts_unparseable",  # a string that is not ISO 8601
    "ts_out_of_range",  # outside 2000-2100 (a unit mistake such as seconds sent as epoch_ms)
    "ts_nonexistent",  # a naive wall time the time zone skips (spring forward)
    "ts_ambiguous",  # a naive wall time the time zone repeats (fall back)
)

REASONS: tuple[str, ...] = (
    "oversized",
    "not_utf8",
    "not_json",
    "too_deep",
    "not_number",
    "missing_field",
    "wrong_type",
    UNKNOWN_TEXT,  # a text not in a datatype text point's enum (config.textmap)
    *TS_REASONS,
)

# a timestamp outside these bounds is a unit mistake (seconds sent as ms, ...), not a time
TS_MIN_NS = 946_684_800 * 1_000_000_000  # 2000-01-01T00:00:00Z
TS_MAX_NS = 4_102_444_800 * 1_000_000_000  # 2100-01-01T00:00:00Z

_INT_TYPES = frozenset({"int16", "int32", "int64", "uint16", "uint32", "uint64"})
_UINT_TYPES = frozenset({"uint16", "uint32", "uint64"})
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MISSING = object()


class SpecError(ValueError):
    """A point whose MQTT mapping cannot work (a config problem, found at start)."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """How one point is read from a message (compiled from the site file)."""

    point: str
    pointer: tuple[str, ...] | None  # None: the payload is a plain number
    ts_pointer: tuple[str, ...] | None
    ts_format: TsFormat = "epoch_ms"
    datatype: DataType = "float64"
    scale: float = 1.0
    offset: float = 0.0
    tz: dt.tzinfo = dt.UTC  # the zone of a naive ISO 8601 time
    # a datatype text point's dictionary: a JSON string (or a plain payload) -> its code
    enum: Mapping[str, int] | None = field(default=None, hash=False)
    # derived: 0 float, 1 signed int, 2 unsigned int, 3 bool; and whether scale/offset apply
    kind: int = field(init=False, default=0)
    scaled: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        kind = 0
        if self.datatype == "bool":
            kind = 3
        elif self.datatype in _UINT_TYPES:
            kind = 2
        elif self.datatype in _INT_TYPES:
            kind = 1
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "scaled", self.scale != 1.0 or self.offset != 0.0)


@dataclass(slots=True)
class Decoded:
    """What one message gave: ``(point, ts_ns, value)``, ``(point or None, reason)`` and the
    bad samples ``(point, ts_ns, status)``."""

    values: list[tuple[str, int, float]] = field(default_factory=list)
    errors: list[tuple[str | None, str]] = field(default_factory=list)
    # ``(point, ts_ns, status)``: stored as a bad sample (an ``unknown_text``: the text in force
    # is no longer the last known one), besides its count among the errors
    bad: list[tuple[str, int, str]] = field(default_factory=list)


def parse_pointer(text: str) -> tuple[str, ...]:
    """The reference tokens of an RFC 6901 pointer (``""`` is the whole document)."""
    try:
        return tuple(jsonpointer.JsonPointer(text).parts)
    except jsonpointer.JsonPointerException as exc:
        raise SpecError(f"JSON pointer {text!r}: {exc}") from None


def zone(name: str) -> dt.tzinfo:
    """The IANA time zone ``name`` (``UTC`` included); raises SpecError when unknown."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise SpecError(f"unknown time zone {name!r}: {exc}") from None


def compile_spec(point: Point, tz: dt.tzinfo = dt.UTC) -> FieldSpec:
    """The :class:`FieldSpec` of an MQTT point of the site file (``tz``: the zone of naive
    ISO 8601 times, see the module docstring)."""
    addr = point.mqtt
    if addr is None:
        raise SpecError(f"point {point.id!r} has no mqtt address")
    if point.datatype == "string":
        raise SpecError(f"point {point.id!r}: datatype 'string' cannot be stored as a number")
    if addr.pointer is None and addr.ts_pointer is not None:
        raise SpecError(
            f"point {point.id!r}: ts_pointer needs a JSON payload; give 'pointer' "
            "('' for a payload that is a bare JSON number)"
        )
    return FieldSpec(
        point=point.id,
        pointer=None if addr.pointer is None else parse_pointer(addr.pointer),
        ts_pointer=None if addr.ts_pointer is None else parse_pointer(addr.ts_pointer),
        ts_format=addr.ts_format,
        datatype=point.datatype,
        scale=point.scale,
        offset=point.offset,
        tz=tz,
        enum=point.enum,
    )


def resolve(doc: Any, parts: tuple[str, ...]) -> Any:
    """The value at ``parts`` in ``doc``, or :data:`_MISSING`."""
    node = doc
    for part in parts:
        kind = type(node)
        if kind is dict:
            node = node.get(part, _MISSING)
            if node is _MISSING:
                return node
        elif kind is list:
            if not part.isdigit() or (len(part) > 1 and part[0] == "0"):
                return _MISSING
            index = int(part)
            if index >= len(node):
                return _MISSING
            node = node[index]
        else:
            return _MISSING
    return node


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_JSON = json.JSONDecoder(parse_constant=_reject_constant)
JSON_DECODER = _JSON  # (the connector's columnar path decodes with the same rules)


def to_value(raw: Any, spec: FieldSpec) -> float | str:
    """The stored value of ``raw`` (a decoded JSON value), or a reason."""
    kind = type(raw)
    if spec.enum is not None:
        if kind is not str:
            return "wrong_type"
        code = text_code(spec.enum, raw)
        return UNKNOWN_TEXT if code is None else code
    if kind is float:
        number: float = raw
        if not math.isfinite(number):  # 1e999 decodes to inf
            return "wrong_type"
        if spec.kind and not number.is_integer():
            return "wrong_type"
    elif kind is int:
        try:
            number = float(raw)
        except OverflowError:  # an integer beyond float64 (JSON allows 4,300 digits)
            return "wrong_type"
    elif kind is bool:
        return 1.0 if raw else 0.0
    else:
        return "wrong_type"
    code = spec.kind
    if code:
        if code == 3:
            return number if number in (0.0, 1.0) else "wrong_type"
        if code == 2 and number < 0:
            return "wrong_type"
    if spec.scaled:
        number = number * spec.scale + spec.offset
    return number


def local_time(when: dt.datetime, tz: dt.tzinfo) -> dt.datetime | str:
    """The naive wall time ``when`` in zone ``tz`` (aware), or ``ts_nonexistent`` /
    ``ts_ambiguous`` when the zone skips or repeats it (a DST change)."""
    first = when.replace(tzinfo=tz, fold=0)
    second = when.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    back = first.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None)
    return "ts_nonexistent" if back != when else "ts_ambiguous"


def to_ns(raw: Any, fmt: TsFormat, tz: dt.tzinfo = dt.UTC) -> int | str:
    """Nanoseconds UTC of a timestamp field, or the reason (one of :data:`TS_REASONS`) why it
    is not a plausible time. A naive ISO 8601 time is read in zone ``tz``."""
    ns: int
    if fmt == "iso8601":
        if not isinstance(raw, str):
            return "ts_wrong_type"
        try:
            when = dt.datetime.fromisoformat(raw)
            if when.tzinfo is None:
                local = local_time(when, tz)
                if isinstance(local, str):
                    return local
                when = local
            delta = when - _EPOCH
        except (ValueError, OverflowError):
            return "ts_unparseable"
        ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    else:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return "ts_wrong_type"
        if isinstance(raw, float) and not math.isfinite(raw):
            return "ts_out_of_range"
        unit = {"epoch_s": 1_000_000_000, "epoch_ms": 1_000_000, "epoch_ns": 1}[fmt]
        if isinstance(raw, int):
            ns = raw * unit
        else:
            # whole units exactly, the fraction to the microsecond (what a float still holds)
            whole = math.floor(raw)
            ns = whole * unit + round((raw - whole) * unit / 1000) * 1000
    if not TS_MIN_NS <= ns < TS_MAX_NS:
        return "ts_out_of_range"
    return ns


def plain_number(text: str) -> float | None:
    """A plain payload as a number: ``23.5``, ``-4``, ``1e3``, ``true``/``false``."""
    word = text.strip()
    if word == "true":
        return 1.0
    if word == "false":
        return 0.0
    try:
        number = float(word)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def decode(
    payload: bytes,
    specs: Sequence[FieldSpec],
    received_ns: int,
    max_bytes: int,
    *,
    needs_json: bool | None = None,
) -> Decoded:
    """Decode one message for the points ``specs`` (all subscribed to its topic).

    ``needs_json`` (whether any spec has a pointer) may be given by a caller that knows it.
    """
    out = Decoded()
    errors = out.errors
    if len(payload) > max_bytes:
        errors.append((None, "oversized"))
        return out
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        errors.append((None, "not_utf8"))
        return out
    if needs_json is None:
        needs_json = any(s.pointer is not None for s in specs)
    doc: Any = _MISSING
    too_deep = False
    if needs_json:
        try:
            doc = _JSON.decode(text)
        except ValueError:
            doc = _MISSING
        except RecursionError:
            doc = _MISSING
            too_deep = True
    values = out.values
    ts_cache: dict[tuple[tuple[str, ...], str, dt.tzinfo], int | str] = {}
    json_failed = False
    for spec in specs:
        pointer = spec.pointer
        if pointer is None:
            if spec.enum is not None:  # a plain payload that is the text itself
                value = to_value(text, spec)
                if isinstance(value, str):
                    errors.append((spec.point, value))
                    if value == UNKNOWN_TEXT:
                        out.bad.append((spec.point, received_ns, value))
                else:
                    values.append((spec.point, received_ns, value))
                continue
            number = plain_number(text)
            if number is None:
                errors.append((spec.point, "not_number"))
                continue
            value = to_value(number, spec)
            if isinstance(value, str):
                errors.append((spec.point, value))
            else:
                values.append((spec.point, received_ns, value))
            continue
        if doc is _MISSING:
            json_failed = True
            continue
        ts = received_ns
        ts_pointer = spec.ts_pointer
        if ts_pointer is not None:
            key = (ts_pointer, spec.ts_format, spec.tz)
            cached = ts_cache.get(key)
            if cached is None:
                raw_ts = resolve(doc, ts_pointer)
                cached = "ts_missing" if raw_ts is _MISSING else to_ns(raw_ts, *key[1:])
                ts_cache[key] = cached
            if isinstance(cached, str):
                errors.append((spec.point, cached))
                continue
            ts = cached
        raw = resolve(doc, pointer)
        if raw is _MISSING:
            errors.append((spec.point, "missing_field"))
            continue
        value = to_value(raw, spec)
        if isinstance(value, str):
            errors.append((spec.point, value))
            if value == UNKNOWN_TEXT:
                out.bad.append((spec.point, ts, value))
        else:
            values.append((spec.point, ts, value))
    if json_failed:
        errors.append((None, "too_deep" if too_deep else "not_json"))
    return out


class RouteDecoder:
    """:func:`decode` for one fixed set of specs, compiled once per route (same results).

    When every spec has a JSON pointer, the pointers without digit tokens become plain lookups
    (``doc[a][b]``: a missing key, or a token applied to a list or a scalar, is a missing
    field, as in :func:`resolve`), the timestamp fields are read once per message, and the
    common value conversions (an int or a finite float into an unscaled point) are inlined.
    Otherwise (a point read as a plain payload) it calls :func:`decode`.
    """

    __slots__ = ("_generic", "_needs_json", "_plan", "_ts_keys", "specs")

    def __init__(self, specs: Sequence[FieldSpec]) -> None:
        self.specs = tuple(specs)
        self._needs_json = any(s.pointer is not None for s in self.specs)
        self._generic = any(s.pointer is None for s in self.specs)
        ts_keys: list[tuple[tuple[str, ...], TsFormat, dt.tzinfo]] = []
        plan: list[tuple[str, tuple[str, ...], bool, int, int, FieldSpec]] = []
        for s in self.specs:
            if s.pointer is None:
                continue
            ts_index = -1
            if s.ts_pointer is not None:
                key = (s.ts_pointer, s.ts_format, s.tz)
                if key not in ts_keys:
                    ts_keys.append(key)
                ts_index = ts_keys.index(key)
            fast = not any(part.isdigit() for part in s.pointer)
            # inline conversion: 0 none, 1 ints and finite floats (float point), 2 ints only
            inline = 0 if s.scaled or s.kind == 3 or s.enum else (1 if s.kind == 0 else 2)
            plan.append((s.point, s.pointer, fast, ts_index, inline, s))
        self._ts_keys = tuple(ts_keys)
        self._plan = tuple(plan)

    def __call__(self, payload: bytes, received_ns: int, max_bytes: int) -> Decoded:
        if self._generic:
            return decode(payload, self.specs, received_ns, max_bytes, needs_json=self._needs_json)
        out = Decoded()
        errors = out.errors
        if len(payload) > max_bytes:
            errors.append((None, "oversized"))
            return out
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            errors.append((None, "not_utf8"))
            return out
        try:
            doc = _JSON.decode(text)
        except ValueError:
            errors.append((None, "not_json"))
            return out
        except RecursionError:  # nested deeper than the interpreter's recursion limit
            errors.append((None, "too_deep"))
            return out
        stamps: list[int | str] = []
        for ts_pointer, ts_format, tz in self._ts_keys:
            raw_ts = resolve(doc, ts_pointer)
            stamps.append("ts_missing" if raw_ts is _MISSING else to_ns(raw_ts, ts_format, tz))
        values = out.values
        for point, pointer, fast, ts_index, inline, spec in self._plan:
            ts: int | str = received_ns
            if ts_index >= 0:
                ts = stamps[ts_index]
                if type(ts) is str:
                    errors.append((point, ts))
                    continue
            raw: Any
            if fast:
                raw = doc
                try:
                    for part in pointer:
                        raw = raw[part]
                except (KeyError, TypeError):
                    errors.append((point, "missing_field"))
                    continue
            else:
                raw = resolve(doc, pointer)
                if raw is _MISSING:
                    errors.append((point, "missing_field"))
                    continue
            kind = type(raw)
            if inline and kind is int and (inline == 1 or spec.kind == 1 or raw >= 0):
                try:
                    values.append((point, ts, float(raw)))  # type: ignore[arg-type]
                except OverflowError:
                    errors.append((point, "wrong_type"))
                continue
            if inline == 1 and kind is float and math.isfinite(raw):
                values.append((point, ts, raw))  # type: ignore[arg-type]
                continue
            value = to_value(raw, spec)
            if isinstance(value, str):
                errors.append((point, value))
                if value == UNKNOWN_TEXT:
                    out.bad.append((point, ts, value))  # type: ignore[arg-type]
            else:
                values.append((point, ts, value))  # type: ignore[arg-type]
        return out


class ColumnPlan:
    """How the messages of one route become columns, a batch at a time (the columnar path).

    Only for a route whose points all have a JSON pointer without array indexes and no
    ``enum``: :meth:`extract` reads one decoded document into a row (the raw timestamp fields,
    then the raw values; it raises ``KeyError``/``TypeError`` when a field is missing, exactly
    where :class:`RouteDecoder` reports ``missing_field`` or ``ts_missing``), and
    :meth:`columns` turns a batch of rows into values and timestamps, or None when any row
    needs a reason (a wrong type, a bad timestamp...): the caller then decodes those messages
    one by one with :class:`RouteDecoder`, which reports them. A batch that converts gives the
    values :class:`RouteDecoder` gives, row by row.
    """

    __slots__ = ("_specs", "_ts_keys", "_ts_of", "extract", "points")

    def __init__(self, specs: Sequence[FieldSpec]) -> None:
        self.points = tuple(s.point for s in specs)
        self._specs = tuple(specs)
        ts_keys: list[tuple[tuple[str, ...], TsFormat, dt.tzinfo]] = []
        ts_of: list[int] = []
        for s in specs:
            if s.ts_pointer is None:
                ts_of.append(-1)
                continue
            key = (s.ts_pointer, s.ts_format, s.tz)
            if key not in ts_keys:
                ts_keys.append(key)
            ts_of.append(ts_keys.index(key))
        self._ts_keys = tuple(ts_keys)
        self._ts_of = tuple(ts_of)
        fields = [k[0] for k in ts_keys] + [s.pointer for s in specs if s.pointer is not None]
        # one expression per field: doc['a']['b'] (the tokens as string literals)
        exprs = ["doc" + "".join(f"[{part!r}]" for part in f) for f in fields]
        source = f"def extract(doc):\n    return ({', '.join(exprs)},)\n"
        scope: dict[str, Any] = {}
        exec(compile(source, "<mqtt column plan>", "exec"), {"__builtins__": {}}, scope)
        self.extract: Any = scope["extract"]

    @staticmethod
    def of(specs: Sequence[FieldSpec]) -> ColumnPlan | None:
        """The plan of a route's specs, or None when the route needs the per-message path."""
        for s in specs:
            if s.pointer is None or s.enum is not None:
                return None
            for f in (s.pointer, s.ts_pointer or ()):
                if any(part.isdigit() for part in f):
                    return None
        return ColumnPlan(specs)

    def columns(
        self, rows: Sequence[tuple[Any, ...]], received: Sequence[int]
    ) -> tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.float64]]] | None:
        """(timestamps, values) of ``rows``, message-major (message 0's points first, in
        :attr:`points` order), or None when any row needs a reason."""
        n = len(rows)
        cols = list(zip(*rows, strict=True))
        k = len(self._ts_keys)
        stamps: list[np.ndarray[Any, np.dtype[np.int64]]] = []
        for (_ptr, fmt, tz), col in zip(self._ts_keys, cols[:k], strict=True):
            ts = _ts_column(col, fmt, tz)
            if ts is None:
                return None
            stamps.append(ts)
        values = np.empty((n, len(self._specs)), dtype=np.float64)
        times = np.empty((n, len(self._specs)), dtype=np.int64)
        got = np.asarray(received, dtype=np.int64)
        for j, (spec, col) in enumerate(zip(self._specs, cols[k:], strict=True)):
            v = _value_column(col, spec)
            if v is None:
                return None
            values[:, j] = v
            ts_index = self._ts_of[j]
            times[:, j] = got if ts_index < 0 else stamps[ts_index]
        return times.ravel(), values.ravel()


_NUMBERS = frozenset({int, float})


def _value_column(col: Sequence[Any], spec: FieldSpec) -> np.ndarray[Any, Any] | None:
    """The stored values of one point's raw JSON values (as :func:`to_value`), or None."""
    types = set(map(type, col))
    if not types <= _NUMBERS and (types - _NUMBERS != {bool} or spec.scaled):
        return None  # (bools with a scale: to_value leaves them unscaled; not here)
    try:
        arr = np.array(col, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        return None
    if not np.isfinite(arr).all():
        return None
    kind = spec.kind
    if kind:
        if not (arr == np.floor(arr)).all():
            return None
        if kind == 3 and not ((arr == 0.0) | (arr == 1.0)).all():
            return None
        if kind == 2 and (arr < 0).any():
            return None
    if spec.scaled:
        arr = arr * spec.scale + spec.offset
    return arr


def _ts_column(col: Sequence[Any], fmt: TsFormat, tz: dt.tzinfo) -> np.ndarray[Any, Any] | None:
    """Nanoseconds of one timestamp field's raw values (as :func:`to_ns`), or None."""
    if fmt != "iso8601" and set(map(type, col)) == {int}:
        unit = {"epoch_s": 1_000_000_000, "epoch_ms": 1_000_000, "epoch_ns": 1}[fmt]
        try:
            raw = np.array(col, dtype=np.int64)
        except OverflowError:
            return None
        # the bounds in the field's unit (both are whole seconds): no overflow in raw * unit
        if ((raw < TS_MIN_NS // unit) | (raw >= TS_MAX_NS // unit)).any():
            return None
        return raw * unit
    out = [to_ns(raw, fmt, tz) for raw in col]
    if any(type(t) is str for t in out):
        return None
    return np.array(out, dtype=np.int64)
