"""The verify page in one language: check names, reasons, KPI labels and findings' explanations
all Chinese on a Chinese page, all English on an English page (a real bundle with findings,
verified by the running gateway)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from gateway.i18n import Lang
from gateway.present import figure_rows, report_checks, report_findings, value_reason
from gateway.verify_text import UNTRANSLATED_ZH, check_name, reason
from metrics.evidence.verify import verify_bundle
from tests.evidence.test_verdict import findings_bundle
from tests.gateway.support import Gateway

CJK = re.compile(r"[\u3400-\u9fff\uff08\uff09\uff1a\uff1b]")
# English words of a reason left on a Chinese page (identifiers, hashes and times are fine)
ENGLISH_WORDS = re.compile(r"\b(?!DSSE\b|SHA\b|KPI\b|OEE\b)[A-Za-z]{4,}\b")


def _rows(report: dict[str, Any], lang: Lang) -> list[dict[str, Any]]:
    checks = report_checks({"checks": report["checks"], "kpis": report["kpis"]}, lang)
    plausible = report_checks({"plausibility": report["plausibility"]}, lang)
    return checks + plausible


def _english_words(text: str, ids: set[str]) -> list[str]:
    return [w for w in ENGLISH_WORDS.findall(text) if w not in ids]


def test_report_rows_in_one_language(tmp_path: Path) -> None:
    data, trust = findings_bundle(tmp_path)
    report = verify_bundle(data, trust).to_dict()
    # names that are data, not words: device/source ids, file names, key names, media types
    ids = {"tiny", "local", "shopfloor", "leaves", "json", "samples", "snapshot", "dsse"}
    ids |= {"checkpoint", "application", "kpi", "README", "report", "html", "table", "xlsx"}
    ids |= {"data", "kpi_table", "start", "vnd"}
    zh = _rows(report, "zh")
    assert len(zh) > 20
    for r in zh:
        assert not r["detail"].startswith(UNTRANSLATED_ZH), r
        head = r["name"].split(" — ")[0]
        assert CJK.search(head), r
        assert _english_words(r["detail"], ids) == [], r
    en = _rows(report, "en")
    for r in en:
        assert not CJK.search(r["name"] + r["detail"]), r
    zf = report_findings(report, "zh")
    ef = report_findings(report, "en")
    assert len(zf) == len(ef) == 2
    assert all(CJK.search(f["explain"]) and CJK.search(f["detail"]) for f in zf)
    assert all(not CJK.search(f["explain"] + f["detail"] + f["name"]) for f in ef)
    # the clock finding worked by hand: period, time, leaf and the device's offset
    clock = [f for f in zf if f["name"].startswith("合理性：时钟")]
    assert {f["detail"] for f in clock} == {
        "建成后：自 2026-03-01T17:00:00Z 起时钟未同步（叶子 32）",
        "建成后：2026-03-01T17:00:00Z 时设备时间戳超前于网关时钟（叶子 32）：cnc1 +40 s",
    }


def test_unknown_reason_is_marked_not_mixed_in() -> None:
    assert reason("something new happened", "zh") == f"{UNTRANSLATED_ZH}something new happened"
    assert reason("something new happened", "en") == "something new happened"
    assert check_name("leaf", "zh") == "日志叶子"
    assert check_name("leaf", "en") == "leaf"
    assert reason("6 sources contiguous; src: #3..#4 recorded as a gap", "zh") == (
        "6 个来源序号连续；src: #3..#4 recorded as a gap"
    )


def test_verify_page_in_each_language(gw: Gateway, tmp_path: Path) -> None:
    data, trust = findings_bundle(tmp_path)
    tjson = json.dumps(trust.to_dict()).encode()
    files = {
        "bundle": ("f.zip", data, "application/zip"),
        "trust": ("trust.json", tjson, "application/json"),
    }
    pages: dict[str, str] = {}
    with gw.client("viewer") as c:
        for lang in ("zh", "en"):
            r = c.post(f"/verify?lang={lang}", files=files, headers={"Accept": "text/html"})
            assert r.status_code == 200, r.text
            html = r.text
            pages[lang] = html[html.index('id="verify-result"') : html.index("<details>")]
    zh, en = pages["zh"], pages["en"]
    assert "隔离网络" in zh
    assert "air-gapped" not in zh
    assert "air-gapped" in en
    assert "隔离网络" not in en
    assert "检查点签名" in zh
    assert "checkpoint signature" not in zh
    assert "checkpoint signature" in en
    assert not CJK.search(en)
    assert "由证据包中的批次重算：一致" in zh
    assert "recomputed from the bundle&#39;s batches: identical" in en
    assert "设备综合利用率" in zh


def test_kpi_no_value_reasons_in_the_page_language() -> None:
    cell = {
        "value": None,
        "notes": [
            "no value: no recorded data in this period (期间内无采集数据)",
            "some input note",
        ],
    }
    assert value_reason(cell, "zh") == "无值：期间内无采集数据"
    assert value_reason(cell, "en") == "no value: no recorded data in this period"
    both = {
        "value": None,
        "notes": ["no value: no meter data in this period for energy", "needs output value"],
    }
    assert value_reason(both, "zh") == "无值：期间内无能耗表计数据；需要工业总产值"
    assert value_reason(both, "en") == (
        "no value: no meter data in this period for energy; needs output value"
    )
    declared = {"value": None, "notes": ["not declared for this period: output_value"]}
    assert value_reason(declared, "zh") == "本期间未申报：output_value"
    assert value_reason({"value": 1.0, "notes": ["no value"]}, "zh") == ""
    # a machine's figure: one language, not both
    fig = {
        "id": "oee",
        "label_zh": "OEE",
        "label_en": "OEE",
        "text": "—",
        "coverage_text": "",
        "reason": True,
        "reason_zh": "站点文件未配置理想节拍",
        "reason_en": "no ideal_cycle_s",
    }
    (zh,) = figure_rows({"figures": [fig]}, "zh")
    (en,) = figure_rows({"figures": [fig]}, "en")
    assert (zh["reason"], en["reason"]) == ("站点文件未配置理想节拍", "no ideal_cycle_s")
