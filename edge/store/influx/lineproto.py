"""InfluxDB line protocol for samples (pure functions).

One line per sample, precision ns::

    <measurement>,site=<site>,gateway=<gateway>,device=<device>,point=<point> \\
        value=<float>,quality=<int>i[,status="<text>"] <ts>

* ``site`` and ``gateway`` are the identity tags of the writer (:func:`identity_tags`): any number
  of gateways share one database or bucket, and two sites with the same device ids never write
  the same series; ``device`` and ``point`` are tags (commas, spaces and ``=`` escaped with a
  backslash);
* ``value`` is a float field; it is omitted when the sample is bad or the value is not finite
  (InfluxDB cannot store NaN or infinities; a read gives NaN back);
* ``quality`` is an integer field (0 good, 1 uncertain, 2 bad);
* ``status`` is a string field, written only when the sample has one.

The same series (measurement + tags) and timestamp always produce the same point, so writing a
line twice overwrites it: replays never duplicate.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable

from connectors.base import Quality, Sample

_MEASUREMENT_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_FORBIDDEN_TAG = re.compile(r"[\\\x00-\x1f\x7f]")
_TAG_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\="})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": " ", "\r": " "})

_QUALITY_FIELD = {
    Quality.GOOD: "quality=0i",
    Quality.UNCERTAIN: "quality=1i",
    Quality.BAD: "quality=2i",
}
_QUALITY_BY_INT = {int(q): f for q, f in _QUALITY_FIELD.items()}


class LineProtocolError(ValueError):
    """A sample cannot be written as line protocol (the message says which and why)."""


def check_measurement(name: str) -> str:
    if not _MEASUREMENT_RE.match(name):
        raise LineProtocolError(f"measurement {name!r}: use letters, digits, '_', '.' or '-' only")
    return name


def check_tag_value(kind: str, value: str) -> None:
    """Tag values must be non-empty and free of backslashes and control characters.

    InfluxDB drops empty tags and the versions disagree on how a backslash is unescaped, so such
    names would not read back as written.
    """
    if not value:
        raise LineProtocolError(f"empty {kind} name")
    if _FORBIDDEN_TAG.search(value):
        raise LineProtocolError(
            f"{kind} {value!r}: backslashes and control characters are not allowed"
        )


def escape_tag(value: str) -> str:
    return value.translate(_TAG_ESCAPES)


def escape_string_field(value: str) -> str:
    """A string field value with quotes (``"`` and ``\\`` escaped, line breaks as spaces)."""
    return '"' + value.translate(_STRING_ESCAPES) + '"'


def identity_tags(site: str, gateway: str) -> str:
    """``,site=..,gateway=..`` (escaped): the writer's identity, put after the measurement."""
    check_tag_value("site", site)
    check_tag_value("gateway", gateway)
    return f",site={escape_tag(site)},gateway={escape_tag(gateway)}"


def series_key(measurement: str, device: str, point: str, identity: str = "") -> str:
    """``measurement[,site=..,gateway=..],device=..,point=..`` (escaped), the start of every line
    of the series; ``identity`` is the text of :func:`identity_tags` (empty: untagged)."""
    check_tag_value("device", device)
    check_tag_value("point", point)
    return f"{measurement}{identity},device={escape_tag(device)},point={escape_tag(point)}"


def add_identity(measurement: str, lines: bytes, identity: str) -> bytes:
    """Line protocol with ``identity`` put into every line written without one (a batch the
    outbox or the quarantine kept from a version that did not tag the site).

    Lines of ours start with ``<measurement>,device=`` exactly when they carry no identity; a
    tag value never holds a line break, and a line break inside a status field is written as a
    space, so the search can only match at the start of a line.
    """
    old = f"{measurement},device=".encode()
    if not lines.startswith(old) and b"\n" + old not in lines:
        return lines
    new = f"{measurement}{identity},device=".encode()
    out = lines.replace(b"\n" + old, b"\n" + new)
    if out.startswith(old):
        out = new + out[len(old) :]
    return out


def format_value(value: float) -> str | None:
    """The float field text, or None when InfluxDB cannot represent it (NaN, infinities)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LineProtocolError(f"value {value!r} is not a number") from None
    if math.isfinite(number):
        return repr(number)
    return None


def encode_line(key: str, sample: Sample) -> str:
    """One line (without the newline) for ``sample`` in the series ``key``."""
    q = int(sample.quality)
    quality = _QUALITY_BY_INT.get(q)
    if quality is None:
        raise LineProtocolError(f"{sample.device}/{sample.point}: unknown quality {q!r}")
    if not isinstance(sample.ts, numbers.Integral) or isinstance(sample.ts, bool):
        raise LineProtocolError(
            f"{sample.device}/{sample.point}: timestamp must be int ns, got {sample.ts!r}"
        )
    ts = int(sample.ts)
    fields = quality
    text = format_value(sample.value)
    if q != Quality.BAD and text is not None:
        fields = f"value={text},{quality}"
    if sample.status:
        fields = f"{fields},status={escape_string_field(sample.status)}"
    return f"{key} {fields} {ts}"


def encode(measurement: str, samples: Iterable[Sample], identity: str = "") -> bytes:
    """Line protocol (UTF-8, one line per sample, ``\\n``-terminated) for ``samples``, each
    line carrying ``identity`` (the text of :func:`identity_tags`).

    Raises :class:`LineProtocolError` for a sample that cannot be written; nothing is returned
    then, so the caller can refuse the whole call and lose nothing.
    """
    keys: dict[tuple[str, str], str] = {}
    lines: list[str] = []
    append = lines.append
    for s in samples:
        key = keys.get((s.device, s.point))
        if key is None:
            key = series_key(measurement, s.device, s.point, identity)
            keys[(s.device, s.point)] = key
        v = s.value
        if (
            s.quality is Quality.GOOD
            and not s.status
            and type(v) is float
            and v - v == 0.0
            and type(s.ts) is int
        ):
            # the common case, inlined: a good finite float without status
            append(f"{key} value={v!r},quality=0i {s.ts}\n")
        else:
            append(encode_line(key, s) + "\n")
    return "".join(lines).encode("utf-8")
