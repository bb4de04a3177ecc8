"""The HTML report's table follows the CSV's rules (``metrics.table``): the change column's sign
(下降 46.2% for an improvement of a lower-is-better KPI), plain numbers (18,600.0, never
1.86e+04) and the provenance of each side in both languages (导入 imported / 实测 measured)."""

from __future__ import annotations

import csv
import html as html_mod
import io
import re
from pathlib import Path
from typing import Any

from metrics.evidence import bundle
from metrics.evidence.bundle import WORSE_MARK, render_report
from tests.evidence.test_verdict import make_bundle


def _row(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "x",
        "label_zh": "x",
        "label_en": "x",
        "unit": "%",
        "direction": "down",
        "change_label": "下降",
        "before": {"value": 1.0, "provenance": "measured"},
        "after": {"value": 2.0, "provenance": "measured"},
        "change": None,
    }
    return {**base, **kw}


def _cells(rows: list[dict[str, Any]]) -> list[list[str]]:
    doc = render_report(
        title="t", site_name="s", periods={}, table={"rows": rows}, sections=(), facts=()
    ).decode("utf-8")
    return _table_cells(doc)


def _table_cells(doc: str) -> list[list[str]]:
    table = doc[doc.index("<th>指标 KPI</th>") :]
    table = table[: table.index("</table>")]
    out = []
    for tr in table.split("<tr>")[1:]:
        cells = re.findall(r"<td>(.*?)</td>", tr, re.S)
        if cells:
            # a value cell carries its coverage and no-value reason under a <br>: compare the value
            value = [c.split("<br>", 1)[0] for c in cells]
            plain = [html_mod.unescape(re.sub(r"<[^>]+>", " ", c)).strip() for c in value]
            out.append([" ".join(c.split()) for c in plain])
    return out


def test_lower_is_better_improvement_has_the_csv_sign() -> None:
    ((_, _, _, _, change, _),) = _cells([_row(change=-0.4623)])
    assert change == "下降 46.2%"  # not "下降 -46.23%"
    ((_, _, _, _, worse, _),) = _cells([_row(change=0.1, worse=True)])
    assert worse == f"下降 -10.0% {WORSE_MARK}"
    ((_, _, _, _, up, _),) = _cells([_row(direction="up", change_label="提升", change=0.123)])
    assert up == "提升 12.3%"


def test_numbers_are_plain() -> None:
    row = _row(
        id="output_value",
        label_zh="工业总产值",
        unit="万元",
        before={"value": 18600.0, "provenance": "declared"},
        after={"value": "21400.5", "provenance": "declared"},  # a canonical decimal string
    )
    ((_, _, before, after, _, prov),) = _cells([row])
    assert (before, after) == ("18,600.0", "21,400.5")
    assert prov == "申报 declared"
    ((_, _, small, _, _, _),) = _cells([_row(unit="tce/万元", before={"value": 0.0013071})])
    assert small == "0.001307"
    assert "e" not in small


def test_provenance_per_side_in_both_languages() -> None:
    row = _row(
        provenance="measured",  # the row's word: what the old report printed
        before={"value": 1.0, "provenance": "imported"},
        after={"value": 2.0, "provenance": "measured"},
    )
    ((*_, prov),) = _cells([row])
    assert prov == "导入 imported / 实测 measured"
    mixed = _row(before={"value": 1.0, "provenance": "mixed"})
    assert _cells([mixed])[0][-1] == "混合 mixed / 实测 measured"


def test_report_and_csv_of_a_bundle_agree(tmp_path: Path) -> None:
    data, _ = make_bundle(tmp_path)
    files = bundle.read_files(data)
    doc = files[bundle.REPORT].decode("utf-8")
    assert not re.search(r"\d[eE][+-]?\d", _table_cells_text(doc))
    rows = list(csv.reader(io.StringIO(files[bundle.TABLE_CSV].decode("utf-8-sig"))))[1:]
    cells = _table_cells(doc)
    assert len(cells) == len(rows)
    for h, c in zip(cells, rows, strict=True):
        # HTML: label<br>english, unit, before, after, change, provenance
        assert h[0].startswith(c[0]), (h, c)
        assert [h[2], h[3], h[4], h[5]] == [c[1], c[2], c[3], c[5]], (h, c)
    provs = {h[5] for h in cells}
    assert "导入 imported / 实测 measured" in provs  # the baseline was imported


def _table_cells_text(doc: str) -> str:
    return " ".join(" ".join(r) for r in _table_cells(doc))
