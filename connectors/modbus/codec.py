"""Pure decoding and encoding of Modbus register values.

Registers are 16-bit words as they come off the wire. A multi-register value is made of bytes
``A B C D ...`` (A = most significant). The *order* says how the device lays those bytes out:

============  ===================  ========================================================
order         32-bit on the wire   meaning
============  ===================  ========================================================
``ABCD``      ``AB CD``            big-endian, high word first (the Modbus default)
``CDAB``      ``CD AB``            word swap: low word first (many energy meters)
``BADC``      ``BA DC``            bytes swapped inside each word
``DCBA``      ``DC BA``            little-endian
============  ===================  ========================================================

For 64-bit values the pattern extends: ABCD -> ``AB CD EF GH``, CDAB -> ``GH EF CD AB``,
BADC -> ``BA DC FE HG``, DCBA -> ``HG FE DC BA``. A 16-bit value has no word order: BADC and
DCBA swap its two bytes, ABCD and CDAB leave it alone. Strings hold two characters per
register and follow the same 16-bit rule: ABCD/CDAB high byte first, BADC/DCBA low byte first
(``BADC`` is the common "byte-swapped string"); register order is never reversed for text.

Nothing here does I/O; every function is total over its documented input and raises
:class:`CodecError` with a clear message otherwise.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Final

from config.modbus import ByteOrder as Order
from config.models import DataType

ORDERS: Final[tuple[Order, ...]] = ("ABCD", "CDAB", "BADC", "DCBA")
NUMERIC_TYPES: Final[tuple[DataType, ...]] = (
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float32",
    "float64",
)

_WIDTH: Final[dict[str, int]] = {
    "bool": 1,
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "int64": 4,
    "uint64": 4,
    "float64": 4,
}
_STRUCT: Final[dict[str, str]] = {
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "float32": ">f",
    "int64": ">q",
    "uint64": ">Q",
    "float64": ">d",
}


class CodecError(ValueError):
    """Registers that cannot be decoded as asked, or a value that cannot be encoded."""


def register_count(datatype: DataType, length: int | None = None) -> int:
    """Registers a value of ``datatype`` occupies (``length`` registers for a string)."""
    if datatype == "string":
        if length is None or length < 1:
            raise CodecError("a string point needs 'length' (registers) >= 1")
        return length
    try:
        return _WIDTH[datatype]
    except KeyError:
        raise CodecError(f"unknown data type {datatype!r}") from None


def _check_registers(registers: Sequence[int]) -> None:
    for i, reg in enumerate(registers):
        if not isinstance(reg, int) or isinstance(reg, bool) or not 0 <= reg <= 0xFFFF:
            raise CodecError(f"register {i} is {reg!r}, not a 16-bit unsigned value")


def registers_to_bytes(registers: Sequence[int], order: Order) -> bytes:
    """The value's bytes most significant first (``ABCD...``) from registers in ``order``."""
    _check_registers(registers)
    words = list(registers)
    if order in ("CDAB", "DCBA"):
        words.reverse()
    if order in ("BADC", "DCBA"):
        return b"".join(((w & 0xFF) << 8 | w >> 8).to_bytes(2, "big") for w in words)
    if order not in ("ABCD", "CDAB"):
        raise CodecError(f"unknown byte order {order!r}")
    return b"".join(w.to_bytes(2, "big") for w in words)


def bytes_to_registers(data: bytes, order: Order) -> list[int]:
    """Inverse of :func:`registers_to_bytes`: ``data`` most significant first -> registers."""
    if len(data) % 2:
        raise CodecError("an odd number of bytes does not fill whole registers")
    if order not in ORDERS:
        raise CodecError(f"unknown byte order {order!r}")
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if order in ("BADC", "DCBA"):
        words = [(w & 0xFF) << 8 | w >> 8 for w in words]
    if order in ("CDAB", "DCBA"):
        words.reverse()
    return words


def decode_bit(register: int, bit: int) -> bool:
    """Bit ``bit`` (0 = least significant) of one register."""
    _check_registers([register])
    if not 0 <= bit <= 15:
        raise CodecError(f"bit {bit} is outside 0..15")
    return bool(register >> bit & 1)


def decode_raw(
    registers: Sequence[int],
    datatype: DataType,
    order: Order = "ABCD",
    *,
    bit: int | None = None,
) -> int | float | bool | str:
    """The raw value in ``registers`` (exactly the registers of the value)."""
    need = len(registers) if datatype == "string" else register_count(datatype)
    if len(registers) != need or need == 0:
        raise CodecError(f"{datatype} needs {need or 'at least 1'} registers, got {len(registers)}")
    if datatype == "bool":
        if bit is not None:
            return decode_bit(registers[0], bit)
        _check_registers(registers)
        return registers[0] != 0
    if datatype == "string":
        return decode_string(registers_to_bytes(registers, _text_order(order)))
    if order not in ORDERS:
        raise CodecError(f"unknown byte order {order!r}")
    _check_registers(registers)
    return numeric_decoder(datatype, order)(registers)


NumericDecoder = Callable[[Sequence[int]], int | float]


@lru_cache(maxsize=64)
def numeric_decoder(datatype: DataType, order: Order) -> NumericDecoder:
    """A fast decoder of ``datatype`` in ``order`` for registers already known to be valid.

    The words are packed back into bytes most significant first in one ``struct`` call
    (``<`` swaps the bytes inside each word, reversing the list swaps the words) and unpacked
    as the type: no per-byte Python loop on the polling path.
    """
    if datatype not in _STRUCT:
        raise CodecError(f"{datatype!r} is not a numeric type")
    width = _WIDTH[datatype]
    swap_bytes = order in ("BADC", "DCBA")
    reverse = width > 1 and order in ("CDAB", "DCBA")
    pack = struct.Struct(("<" if swap_bytes else ">") + "H" * width).pack
    unpack = struct.Struct(_STRUCT[datatype]).unpack

    if reverse:

        def decode(words: Sequence[int]) -> int | float:
            value: int | float = unpack(pack(*reversed(words)))[0]
            return value

    else:

        def decode(words: Sequence[int]) -> int | float:
            value: int | float = unpack(pack(*words))[0]
            return value

    return decode


def _text_order(order: Order) -> Order:
    """Text has no word order: only the byte order inside each register applies."""
    return "BADC" if order in ("BADC", "DCBA") else "ABCD"


def decode_string(data: bytes) -> str:
    """Text of a string register block: UTF-8 (ASCII in practice), cut at the first NUL,
    surrounding blanks removed."""
    text = data.split(b"\x00", 1)[0]
    try:
        return text.decode("utf-8").strip()
    except UnicodeDecodeError:
        return text.decode("latin-1").strip()


def scaled(raw: int | float | bool, scale: float = 1.0, offset: float = 0.0) -> float:
    """``raw * scale + offset`` as float64 (booleans are 0/1)."""
    return float(raw) * scale + offset


def encode_raw(
    value: int | float | bool | str,
    datatype: DataType,
    order: Order = "ABCD",
    *,
    length: int | None = None,
) -> list[int]:
    """Registers holding raw ``value`` as ``datatype`` in ``order`` (for simulators and tests).

    Integers must fit their type; a string is UTF-8, padded with NULs to ``length`` registers.
    """
    if datatype == "bool":
        return [1 if value else 0]
    if datatype == "string":
        n = register_count("string", length)
        data = str(value).encode("utf-8")
        if len(data) > 2 * n:
            raise CodecError(f"string of {len(data)} bytes does not fit {n} registers")
        return bytes_to_registers(data.ljust(2 * n, b"\x00"), _text_order(order))
    fmt = _STRUCT.get(datatype)
    if fmt is None:
        raise CodecError(f"unknown data type {datatype!r}")
    if datatype.startswith(("int", "uint")):
        if isinstance(value, float):
            if not math.isfinite(value):
                raise CodecError(f"{value} cannot be stored as {datatype}")
            value = round(value)
        if isinstance(value, str):
            raise CodecError(f"text {value!r} cannot be stored as {datatype}")
    elif isinstance(value, str):
        raise CodecError(f"text {value!r} cannot be stored as {datatype}")
    try:
        data = struct.pack(fmt, value)
    except struct.error:
        raise CodecError(f"{value!r} does not fit {datatype}") from None
    return bytes_to_registers(data, order)


def encode_scaled(
    value: float,
    datatype: DataType,
    order: Order = "ABCD",
    *,
    scale: float = 1.0,
    offset: float = 0.0,
) -> list[int]:
    """Registers that decode (with ``scale`` and ``offset``) to ``value``."""
    if scale == 0:
        raise CodecError("scale 0 cannot be inverted")
    raw = (value - offset) / scale
    if datatype.startswith(("int", "uint")):
        return encode_raw(round(raw), datatype, order)
    return encode_raw(raw, datatype, order)


def decode_all(registers: Sequence[int]) -> list[tuple[str, str, str]]:
    """Every numeric reading of ``registers`` starting at its first register, for the probe.

    Returns ``(datatype, order, text)`` rows; types needing more registers than given are left
    out. 16-bit types show ABCD and BADC only (word order does not apply to one register).
    """
    _check_registers(registers)
    rows: list[tuple[str, str, str]] = []
    for datatype in NUMERIC_TYPES:
        width = _WIDTH[datatype]
        if width > len(registers):
            continue
        orders: tuple[Order, ...] = ("ABCD", "BADC") if width == 1 else ORDERS
        for order in orders:
            value = decode_raw(registers[:width], datatype, order)
            rows.append((datatype, order, format_value(value)))
    string_orders: tuple[Order, ...] = ("ABCD", "BADC")
    for order in string_orders:
        text = decode_string(registers_to_bytes(registers, order))
        rows.append(("string", order, repr(text)))
    return rows


def format_value(value: int | float | bool | str) -> str:
    """Short human form: integers as they are, floats with up to 9 significant digits."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.9g}"
    return str(value)
