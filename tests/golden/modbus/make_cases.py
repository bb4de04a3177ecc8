"""Writes the golden Modbus cases of this folder (run once; the YAML files are committed).

Registers are built here from ``struct`` big-endian bytes and an explicit byte permutation per
order, independent of ``connectors.modbus.codec``: the cases check the codec, not the reverse.
Run: ``.venv/bin/python tests/golden/modbus/make_cases.py``.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent

# byte positions (0 = most significant) on the wire, per order, for 2/4/8-byte values
PERMUTATION = {
    2: {"ABCD": [0, 1], "CDAB": [0, 1], "BADC": [1, 0], "DCBA": [1, 0]},
    4: {"ABCD": [0, 1, 2, 3], "CDAB": [2, 3, 0, 1], "BADC": [1, 0, 3, 2], "DCBA": [3, 2, 1, 0]},
    8: {
        "ABCD": [0, 1, 2, 3, 4, 5, 6, 7],
        "CDAB": [6, 7, 4, 5, 2, 3, 0, 1],
        "BADC": [1, 0, 3, 2, 5, 4, 7, 6],
        "DCBA": [7, 6, 5, 4, 3, 2, 1, 0],
    },
}

VALUES: dict[str, tuple[str, Any, str]] = {
    # datatype: (struct format, value, table)
    "int16": (">h", -12345, "holding"),
    "uint16": (">H", 0xA1B2, "input"),
    "int32": (">i", -123456789, "holding"),
    "uint32": (">I", 0xA1B2C3D4, "input"),
    "int64": (">q", -1234567890123456789, "holding"),
    "uint64": (">Q", 0xA1B2C3D4E5F60718, "input"),
    "float32": (">f", 123.456, "holding"),
    "float64": (">d", -9876.54321, "input"),
}


def wire(data: bytes, order: str) -> list[int]:
    perm = PERMUTATION[len(data)][order]
    ordered = bytes(data[i] for i in perm)
    return [ordered[i] << 8 | ordered[i + 1] for i in range(0, len(ordered), 2)]


def write(name: str, case: dict[str, Any]) -> None:
    case = {"name": name, **case}
    (HERE / f"{name}.yaml").write_text(yaml.safe_dump(case, sort_keys=False), encoding="utf-8")


def main() -> None:
    for old in HERE.glob("*.yaml"):
        old.unlink()
    for datatype, (fmt, value, table) in VALUES.items():
        data = struct.pack(fmt, value)
        expected = float(struct.unpack(fmt, data)[0])
        for order in ("ABCD", "CDAB", "BADC", "DCBA"):
            write(
                f"{datatype}_{order}",
                {
                    "table": table,
                    "registers": wire(data, order),
                    "point": {"datatype": datatype, "order": order},
                    "expected": {"value": expected},
                },
            )
    # scale and offset: value = raw * scale + offset
    write(
        "int16_scale_offset",
        {
            "table": "holding",
            "registers": wire(struct.pack(">h", -250), "ABCD"),
            "point": {"datatype": "int16", "order": "ABCD", "scale": 0.1, "offset": 273.15},
            "expected": {"value": -250 * 0.1 + 273.15},
        },
    )
    write(
        "uint32_CDAB_scale",
        {
            "table": "input",
            "registers": wire(struct.pack(">I", 1234567), "CDAB"),
            "point": {"datatype": "uint32", "order": "CDAB", "scale": 0.01},
            "expected": {"value": 1234567 * 0.01},
        },
    )
    # bits of a register: 0xA5C3 = 1010 0101 1100 0011
    word = 0xA5C3
    for bit in (0, 2, 7, 15):
        write(
            f"bool_bit{bit}",
            {
                "table": "holding",
                "registers": [word],
                "point": {"datatype": "bool", "bit": bit},
                "expected": {"value": float(word >> bit & 1)},
            },
        )
    write(
        "bool_register_nonzero",
        {
            "table": "input",
            "registers": [0x0100],
            "point": {"datatype": "bool"},
            "expected": {"value": 1.0},
        },
    )
    # coils and discrete inputs (function codes 1 and 2)
    for table, bits in (("coil", [True, False, True]), ("discrete", [False, True, True])):
        for i, bit in enumerate(bits):
            write(
                f"{table}_{i}",
                {
                    "table": table,
                    "bits": bits,
                    "bit_index": i,
                    "point": {"datatype": "bool"},
                    "expected": {"value": 1.0 if bit else 0.0},
                },
            )
    # strings: two characters per register; word order does not apply (CDAB reads as ABCD,
    # DCBA as BADC). Numeric text becomes the value; other text is bad (not_numeric).
    text = b"1234.5\x00\x00"
    for order in ("ABCD", "CDAB", "BADC", "DCBA"):
        write(
            f"string_{order}",
            {
                "table": "holding",
                "registers": [w for i in range(0, 8, 2) for w in wire(text[i : i + 2], order)],
                "point": {"datatype": "string", "order": order, "length": 4},
                "expected": {"value": 1234.5},
            },
        )
    write(
        "string_not_numeric",
        {
            "table": "holding",
            "registers": [0x4142, 0x2D31, 0x3200],  # "AB-12"
            "point": {"datatype": "string", "order": "ABCD", "length": 3},
            "expected": {"quality": "bad", "status": "not_numeric"},
        },
    )
    # a float that is NaN on the wire (meter not ready) is a bad reading, never a value
    nan = struct.pack(">f", math.nan)
    write(
        "float32_nan_CDAB",
        {
            "table": "holding",
            "registers": wire(nan, "CDAB"),
            "point": {"datatype": "float32", "order": "CDAB"},
            "expected": {"quality": "bad", "status": "nan"},
        },
    )


if __name__ == "__main__":
    main()
