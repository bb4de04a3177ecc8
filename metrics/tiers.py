"""Tier check against the hard criteria (要素条件 2025) of 智能工厂梯度培育.

| tier   | maturity (GB/T 39116-2020) | sections to cover                    | AI scenario ratio |
| 基础级 | >= 二级                    | at least 生产作业                     | -                 |
| 先进级 | >= 二级                    | 生产作业, 生产管理, 运营管理          | -                 |
| 卓越级 | >= 三级                    | in principle all five (原则上全部五个) | >= 20%            |
| 领航级 | >= 四级                    | all five (须覆盖全部五个)              | >= 60%            |

Only valid claims of the scenario register count (环节 and 场景 of the 2025 guide, instance
named). A scenario counts for a period when it has no ``built`` date or was built before the
period ends. For 卓越级 a missing section gives ``conditional`` (the rule says "in principle").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from config.models import SiteConfig
from metrics.scenarios import SECTIONS, ClaimCheck, check_claim

TIERS = ("基础级", "先进级", "卓越级", "领航级")
TIER_EN = {"基础级": "basic", "先进级": "advanced", "卓越级": "excellent", "领航级": "leading"}
MATURITY_NAMES = {
    1: "一级 规划级",
    2: "二级 规范级",
    3: "三级 集成级",
    4: "四级 优化级",
    5: "五级 引领级",
}


@dataclass(frozen=True)
class TierRule:
    tier: str
    min_maturity: int
    sections: tuple[str, ...]
    sections_strict: bool
    min_ai_ratio: float | None


RULES: tuple[TierRule, ...] = (
    TierRule("基础级", 2, ("生产作业",), True, None),
    TierRule("先进级", 2, ("生产作业", "生产管理", "运营管理"), True, None),
    TierRule("卓越级", 3, tuple(SECTIONS), False, 0.20),
    TierRule("领航级", 4, tuple(SECTIONS), True, 0.60),
)

Status = Literal["met", "not_met", "conditional"]


@dataclass(frozen=True)
class TierResult:
    tier: str
    status: Status
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "status": self.status, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class TierReport:
    maturity: int | None
    maturity_report: str | None
    sections: tuple[str, ...]  # covered sections, in the rule's order
    scenarios_valid: int
    scenarios_ai: int
    ai_ratio: float | None
    claims: tuple[ClaimCheck, ...]
    results: tuple[TierResult, ...]
    target: str | None
    highest_met: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "maturity": self.maturity,
            "maturity_report": self.maturity_report,
            "sections": list(self.sections),
            "scenarios_valid": self.scenarios_valid,
            "scenarios_ai": self.scenarios_ai,
            "ai_ratio": self.ai_ratio,
            "claims": [c.to_dict() for c in self.claims],
            "results": [r.to_dict() for r in self.results],
            "target": self.target,
            "highest_met": self.highest_met,
        }


def valid_claims(site: SiteConfig, until: dt.date | None = None) -> list[ClaimCheck]:
    """Checks of the register's claims built by ``until`` (every claim when ``None``)."""
    out = []
    for claim in site.declared.scenarios:
        if until is not None and claim.built is not None and claim.built > until:
            continue
        out.append(check_claim(claim, site))
    return out


def evaluate(site: SiteConfig, until: dt.date | None = None) -> TierReport:
    checks = valid_claims(site, until)
    valid = [c for c in checks if c.valid]
    covered = {c.section for c in valid if c.section}
    sections = tuple(s for s in SECTIONS if s in covered)
    ai = sum(1 for c in valid if c.uses_ai)
    ai_ratio = ai / len(valid) if valid else None
    mat = site.declared.maturity
    level = mat.level if mat else None
    results: list[TierResult] = []
    for rule in RULES:
        reasons: list[str] = []
        hard_fail = False
        soft_fail = False
        if level is None:
            reasons.append("no maturity assessment declared (declared.maturity)")
            hard_fail = True
        elif level < rule.min_maturity:
            reasons.append(
                f"maturity {MATURITY_NAMES[level]} < required {MATURITY_NAMES[rule.min_maturity]}"
            )
            hard_fail = True
        missing = [s for s in rule.sections if s not in covered]
        if missing:
            reasons.append("sections not covered: " + "、".join(missing))
            if rule.sections_strict:
                hard_fail = True
            else:
                soft_fail = True
        if rule.min_ai_ratio is not None:
            if ai_ratio is None:
                reasons.append(f"no valid scenario: AI ratio needs >= {rule.min_ai_ratio:.0%}")
                hard_fail = True
            elif ai_ratio < rule.min_ai_ratio:
                reasons.append(f"AI scenario ratio {ai_ratio:.1%} < {rule.min_ai_ratio:.0%}")
                hard_fail = True
        status: Status = "not_met" if hard_fail else ("conditional" if soft_fail else "met")
        if status == "met":
            reasons.append("all hard criteria met")
        elif status == "conditional":
            reasons.append("in principle all five sections are required (原则上应覆盖全部五个环节)")
        results.append(TierResult(rule.tier, status, tuple(reasons)))
    highest = None
    for r in results:
        if r.status == "met":
            highest = r.tier
        else:
            break
    return TierReport(
        maturity=level,
        maturity_report=mat.report if mat else None,
        sections=sections,
        scenarios_valid=len(valid),
        scenarios_ai=ai,
        ai_ratio=ai_ratio,
        claims=tuple(checks),
        results=tuple(results),
        target=site.declared.target_tier,
        highest_met=highest,
    )
