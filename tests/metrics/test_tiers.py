from __future__ import annotations

import datetime as dt
from typing import Any

from metrics.scenarios import SCENARIOS, SECTION_OF, check_claim
from metrics.tiers import evaluate
from tests.metrics.sites import machine, site


def _site(level: int | None, claims: list[dict[str, Any]]) -> Any:
    declared: dict[str, Any] = {"scenarios": claims}
    if level is not None:
        declared["maturity"] = {"level": level, "report": "R-1"}
    return site([machine("m1")], declared=declared)


def _status(rep: Any) -> dict[str, str]:
    return {r.tier: r.status for r in rep.results}


ALL_FIVE: list[dict[str, Any]] = [
    {"entry": "工厂建设-数字孪生工厂构建-产线孪生", "uses_ai": True},
    {"entry": "工艺设计-工艺数字化设计-工艺知识库", "uses_ai": True},
    {"entry": "生产作业-设备运行监控-联网监控", "evidence": ["m1", "m1/state"]},
    {"entry": "生产管理-能源智能管控-能耗监测", "uses_ai": False, "evidence": ["m1/good"]},
    {"entry": "供应链管理-供应商数字化管理-供应商门户"},
]


def test_forty_scenarios_eight_links_five_sections() -> None:
    assert sum(len(v) for v in SCENARIOS.values()) == 40
    assert len(SCENARIOS) == 8
    assert set(SECTION_OF.values()) == {"工厂建设", "研发设计", "生产作业", "生产管理", "运营管理"}


def test_claim_validation() -> None:
    s = _site(2, [])
    ok = check_claim(_claim("生产作业-27 设备运行监控-数控联网", ["m1/state"]), s)
    assert ok.valid
    assert ok.number == 27
    assert ok.section == "生产作业"
    assert not ok.problems
    wrong = check_claim(_claim("生产管理-设备运行监控-x"), s)
    assert not wrong.valid
    assert "belongs to 环节 生产作业" in wrong.problems[0]
    unknown = check_claim(_claim("质量管理-在线智能检测-x"), s)
    assert not unknown.valid
    assert "not one of the 8" in unknown.problems[0]
    dangling = check_claim(_claim("生产作业-在线智能检测-x", ["m9", "m1/nope"]), s)
    assert dangling.valid
    assert dangling.evidence_missing == ("m9", "m1/nope")
    assert any("evidence not in the site file" in p for p in dangling.problems)
    no_ev = check_claim(_claim("生产作业-先进过程控制-x"), s)
    assert any("link devices/points" in p for p in no_ev.problems)


def _claim(entry: str, evidence: list[str] | None = None) -> Any:
    from config.declared import ScenarioClaim

    return ScenarioClaim.model_validate({"entry": entry, "evidence": evidence or []})


def test_basic_and_advanced() -> None:
    only_ops = _site(2, [{"entry": "生产作业-设备运行监控-联网监控"}])
    assert _status(evaluate(only_ops)) == {
        "基础级": "met",
        "先进级": "not_met",
        "卓越级": "not_met",
        "领航级": "not_met",
    }
    adv = _site(
        2,
        [
            {"entry": "生产作业-设备运行监控-a"},
            {"entry": "生产管理-车间智能排产-b"},
            {"entry": "产品服务-远程运维服务-c"},
        ],
    )
    rep = evaluate(adv)
    assert _status(rep)["先进级"] == "met"
    assert rep.highest_met == "先进级"
    assert rep.sections == ("生产作业", "生产管理", "运营管理")


def test_maturity_gates() -> None:
    rep = evaluate(_site(1, [{"entry": "生产作业-设备运行监控-a"}]))
    assert _status(rep)["基础级"] == "not_met"
    assert "maturity 一级 规划级 < required 二级 规范级" in rep.results[0].reasons[0]
    none = evaluate(_site(None, [{"entry": "生产作业-设备运行监控-a"}]))
    assert "no maturity assessment" in none.results[0].reasons[0]


def test_excellent_and_leading_ai_ratio() -> None:
    rep = evaluate(_site(3, ALL_FIVE))
    assert rep.ai_ratio == 2 / 5
    assert _status(rep)["卓越级"] == "met"
    assert _status(rep)["领航级"] == "not_met"  # maturity 3 < 4 and 40% < 60%
    reasons = " ".join(rep.results[3].reasons)
    assert "AI scenario ratio 40.0% < 60%" in reasons
    assert "三级" in reasons
    low_ai = evaluate(_site(3, [dict(c, uses_ai=False) for c in ALL_FIVE]))
    assert _status(low_ai)["卓越级"] == "not_met"
    leading = evaluate(_site(4, [dict(c, uses_ai=True) for c in ALL_FIVE]))
    assert _status(leading)["领航级"] == "met"


def test_excellent_missing_section_is_conditional() -> None:
    rep = evaluate(_site(3, [c for c in ALL_FIVE if not c["entry"].startswith("工艺")]))
    assert _status(rep)["卓越级"] == "conditional"  # 原则上 all five
    assert _status(rep)["领航级"] == "not_met"


def test_invalid_claims_do_not_count_and_built_dates_filter() -> None:
    claims: list[dict[str, Any]] = [
        {"entry": "生产作业-设备运行监控-a", "built": "2026-06-01"},
        {"entry": "生产作业-不存在的场景-b", "uses_ai": True},
    ]
    rep = evaluate(_site(2, claims))
    assert rep.scenarios_valid == 1
    assert rep.ai_ratio == 0
    before = evaluate(_site(2, claims), dt.date(2025, 12, 31))
    assert before.scenarios_valid == 0
    assert _status(before)["基础级"] == "not_met"
