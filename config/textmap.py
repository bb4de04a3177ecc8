"""Text values of a ``datatype: text`` point: the site file's dictionary, text <-> stored code.

Samples are float64 end to end (the store, the ledger, the verifier), so a point carrying text
(program name, part number) stores the *code* of its text from the point's ``enum`` in the site
file (``enum: {"P-100": 1, "P-200": 2}``). The dictionary is configuration, so it is evidence
(recorded with the config), never grown at run time: a text not in it is not stored as a value
but as a bad-quality sample with status :data:`UNKNOWN_TEXT` (counted in health), and the
engineer adds it to the ``enum`` (docs/config.md). Every connector maps text with
:func:`text_code`; the gateway and CLI show text with :func:`code_text`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

#: status of the bad sample stored for a text that is not in the point's ``enum``
UNKNOWN_TEXT = "unknown_text"


def text_code(enum: Mapping[str, int], text: str) -> float | None:
    """The stored code of ``text`` (exact match, then with surrounding blanks removed: PLC
    strings are often padded), or ``None`` when it is not in the dictionary."""
    code = enum.get(text)
    if code is None:
        code = enum.get(text.strip(" \t\r\n\x00"))
    return None if code is None else float(code)


def code_text(enum: Mapping[str, int] | None, value: float) -> str | None:
    """The text of a stored code (``None`` when the point has no dictionary, the value is not
    a finite whole number, or no text has that code)."""
    if not enum or not math.isfinite(value) or not float(value).is_integer():
        return None
    wanted = int(value)
    for text, code in enum.items():
        if code == wanted:
            return text
    return None


def check_enum(enum: Mapping[object, object]) -> dict[str, int]:
    """A valid dictionary: non-empty texts, whole-number codes, each code used once."""
    out: dict[str, int] = {}
    seen: dict[int, str] = {}
    for text, code in enum.items():
        if isinstance(text, bool) or isinstance(code, bool):
            raise ValueError(
                "an enum text or code was read by YAML as true/false (unquoted on, off, yes, "
                "no): quote it, e.g. {'off': 0}"
            )
        if not isinstance(text, str | int) or str(text) == "":
            raise ValueError(f"enum text {text!r}: give a non-empty text")
        if not isinstance(code, int):
            raise ValueError(f"enum code of {text!r}: give a whole number, got {code!r}")
        if abs(code) > 2**53:
            raise ValueError(f"enum code of {text!r}: at most 2**53 (stored as float64)")
        if code in seen:
            raise ValueError(f"enum code {code} is used by both {seen[code]!r} and {text!r}")
        seen[code] = str(text)
        out[str(text)] = code
    if not out:
        raise ValueError("enum: give at least one text")
    return out
