"""The one number format (metrics.formatting): decimals by unit, counts as integers, no
e-notation, the reference list's sign convention and its English words."""

from __future__ import annotations

import math

from metrics.formatting import fmt_change, fmt_count, fmt_fraction_pct, fmt_value


def test_values_by_unit() -> None:
    assert fmt_value(86.66666, "%") == "86.7"
    assert fmt_value(18600, "万元") == "18,600.0"
    assert fmt_value(0.04321, "tce/万元") == "0.04321"
    assert fmt_value(0.0013071, "tce/万元") == "0.001307"  # four significant digits
    assert fmt_value(1.23456, "tCO2/万元") == "1.2346"
    assert fmt_value(3.0, "个") == "3"
    assert fmt_value(2.6, "家") == "3"  # counts are integers
    assert fmt_value(None, "%") == "—"
    assert fmt_value(math.nan, "%") == "—"
    assert fmt_value(math.inf, "万元") == "—"


def test_no_e_notation() -> None:
    for v in (2.5e-06, 1e-12, -3.3e-9, 1e15, 123456789.123):
        for unit in ("%", "tce/万元", "万元", "个", ""):
            assert "e" not in fmt_value(v, unit).lower(), (v, unit)
    assert fmt_value(0.000012344, "tce/万元") == "0.00001234"
    assert fmt_value(0.000012345, "%") == "0.0000123"
    assert fmt_count(1234567.0) == "1,234,567"


def test_change_convention_and_words() -> None:
    assert fmt_change(0.223, "up") == "提升 22.3%"
    assert fmt_change(-0.502, "down") == "下降 50.2%"
    assert fmt_change(0.1, "down") == "下降 -10.0%"
    assert fmt_change(-0.0001, "up") == "提升 0.0%"  # never "-0.0"
    assert fmt_change(0.223, "up", "en") == "improved 22.3%"
    assert fmt_change(-0.502, "down", "en") == "improved 50.2%"
    assert fmt_change(0.1, "down", "en") == "worsened 10.0%"
    assert fmt_change(None, "up") == "—"
    assert fmt_fraction_pct(0.8666) == "86.7%"
