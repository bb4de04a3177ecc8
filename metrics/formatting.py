"""The one number format of every place a KPI figure is shown (pure).

The dashboard, the CLI's table, the CSV, the XLSX's text cells and the application form's DOCX
all call these functions, so a figure reads the same everywhere:

* decimals by unit (:data:`DECIMALS`): ``%`` 1, money 1, counts 0; intensities per 万元
  (tce/万元, tCO2/万元) below 1 with four significant digits;
* counts (``个``, ``家``, ``人``, ``次``) as integers;
* never e-notation: a small non-zero value gets the decimals its third significant digit needs
  (``0.000123``), a large one its thousands separated (``18,600.0``);
* no value (``None``, NaN, ±inf) is ``—``;
* a change on the reference list's sign convention: ``(after - before) / before`` with the sign
  turned for KPIs whose good direction is down, so a positive figure is an improvement:
  ``提升 12.3%`` / ``下降 4.0%`` (a worsening keeps its sign: ``下降 -10.0%``); in English
  ``improved 12.3%`` / ``worsened 10.0%``.
"""

from __future__ import annotations

import math
from typing import Final

NONE: Final = "—"
COUNT_UNITS: Final = frozenset({"个", "家", "人", "次", "台", "件", "pcs", "count"})
DECIMALS: Final[dict[str, int]] = {
    "%": 1,
    "tce/万元": 4,
    "tCO2/万元": 4,
    "kgce/万元": 2,
    "kWh/万元": 2,
    "万元": 1,
    "万元/年": 1,
    "万元/人": 2,
    "万元/人·年": 2,
    "天": 1,
    "days": 1,
    "units/h": 2,
    "times/yr": 2,
    "h": 2,
    "s": 1,
    "kWh": 1,
    "m3": 2,
    "tce": 3,
    "tCO2": 3,
}
DEFAULT_DECIMALS: Final = 2
# intensities per 万元 are small numbers: four significant digits (0.001307, 0.05123)
SIGNIFICANT_UNITS: Final[dict[str, int]] = {"tce/万元": 4, "tCO2/万元": 4}
SIGNIFICANT: Final = 3


def _finite(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def decimals(unit: str) -> int:
    if unit in COUNT_UNITS:
        return 0
    return DECIMALS.get(unit, DEFAULT_DECIMALS)


def fmt_number(v: object, places: int = DEFAULT_DECIMALS) -> str:
    """``v`` with ``places`` decimals, thousands separated; a non-zero value that would show as
    zero gets the decimals of its third significant digit; never e-notation."""
    f = _finite(v)
    if f is None:
        return NONE
    if f == 0:
        return "0" if places == 0 else f"{0:.{places}f}"
    need = places
    if abs(f) < 10**-places:
        need = SIGNIFICANT - 1 - math.floor(math.log10(abs(f)))
    text = f"{f:,.{need}f}"
    return text[1:] if text.startswith("-") and float(text[1:].replace(",", "")) == 0 else text


def fmt_value(v: object, unit: str) -> str:
    """A KPI figure in its unit's format (without the unit)."""
    f = _finite(v)
    if f is None:
        return NONE
    if unit in COUNT_UNITS:
        return f"{round(f):,}"
    sig = SIGNIFICANT_UNITS.get(unit)
    if sig is not None and f != 0 and abs(f) < 1:
        return fmt_number(f, sig - 1 - math.floor(math.log10(abs(f))))
    return fmt_number(f, decimals(unit))


def fmt_count(v: object) -> str:
    """A count: an integer with thousands separated."""
    f = _finite(v)
    return NONE if f is None else f"{round(f):,}"


def fmt_fraction_pct(v: object) -> str:
    """A fraction (coverage, a ratio 0..1) as a percentage with one decimal: ``86.7%``."""
    f = _finite(v)
    return NONE if f is None else f"{fmt_number(100.0 * f, 1)}%"


CHANGE_WORDS: Final[dict[str, dict[str, str]]] = {
    "zh": {"up": "提升", "down": "下降"},
    "en": {"better": "improved", "worse": "worsened"},
}


def shown_change(change: object, direction: str) -> float | None:
    """The change in percent on the reference list's convention (positive is better)."""
    f = _finite(change)
    if f is None or direction not in ("up", "down"):
        return None
    pct = 100.0 * f
    return pct if direction == "up" else -pct


def fmt_change(change: object, direction: str, lang: str = "zh") -> str:
    """``提升 12.3%`` / ``下降 50.2%`` / ``下降 -10.0%``; English ``improved 12.3%`` /
    ``worsened 10.0%``; ``—`` without a change."""
    pct = shown_change(change, direction)
    if pct is None:
        return NONE
    text = f"{round(pct, 1) + 0.0:,.1f}"  # + 0.0: no "-0.0"
    if lang == "en":
        word = CHANGE_WORDS["en"]["better" if pct >= 0 else "worse"]
        return f"{word} {text.lstrip('-')}%"
    return f"{CHANGE_WORDS['zh'][direction]} {text}%"
