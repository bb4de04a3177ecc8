"""The 40 scenarios of 智能制造典型场景参考指引（2025年版）, their 8 环节 and the 5 sections.

A claimed scenario is written ``环节名称-场景名称-场景实例名称``. :func:`check_claim` validates the
环节 and the 场景 against the guide and the evidence links against the site's devices and points.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.declared import ScenarioClaim
from config.models import SiteConfig

# 环节 -> scenarios (number, name), in the guide's order
SCENARIOS: dict[str, tuple[tuple[int, str], ...]] = {
    "工厂建设": ((1, "工厂数字化规划设计"), (2, "数字基础设施建设"), (3, "数字孪生工厂构建")),
    "产品研发": ((4, "产品数字化设计"), (5, "产品虚拟验证")),
    "工艺设计": ((6, "工艺数字化设计"), (7, "制造工程优化")),
    "生产管理": (
        (8, "生产计划优化"),
        (9, "车间智能排产"),
        (10, "生产进度跟踪"),
        (11, "生产动态调度"),
        (12, "仓储智能管理"),
        (13, "物料精准配送"),
        (14, "危险作业自动化"),
        (15, "安全一体化管控"),
        (16, "能源智能管控"),
        (17, "碳资产全生命周期管理"),
        (18, "污染在线管控"),
        (19, "网络协同制造"),
    ),
    "生产作业": (
        (20, "柔性产线快速换产"),
        (21, "工艺动态优化"),
        (22, "先进过程控制"),
        (23, "人机协同作业"),
        (24, "在线智能检测"),
        (25, "质量精准追溯"),
        (26, "质量分析与改进"),
        (27, "设备运行监控"),
        (28, "设备故障诊断与预测"),
        (29, "设备维修维护"),
    ),
    "运营管理": (
        (30, "智能经营决策"),
        (31, "数智精益管理"),
        (32, "规模化定制"),
        (33, "产品精准营销"),
    ),
    "产品服务": ((34, "远程运维服务"), (35, "产品增值服务"), (36, "客户主动服务")),
    "供应链管理": (
        (37, "供应商数字化管理"),
        (38, "采购计划优化协同"),
        (39, "供应链风险预警与调度"),
        (40, "供应链物流智能配送"),
    ),
}

# the five sections (建设环节) of the 要素条件 and the 环节 of the guide that feed them
SECTIONS: dict[str, tuple[str, ...]] = {
    "工厂建设": ("工厂建设",),
    "研发设计": ("产品研发", "工艺设计"),
    "生产作业": ("生产作业",),
    "生产管理": ("生产管理",),
    "运营管理": ("运营管理", "产品服务", "供应链管理"),
}
SECTION_OF: dict[str, str] = {link: sec for sec, links in SECTIONS.items() for link in links}
SCENARIO_NUMBER: dict[tuple[str, str], int] = {
    (link, name): n for link, items in SCENARIOS.items() for n, name in items
}
# scenarios the gateway can back with recorded data
DATA_BACKED = frozenset({10, 16, 17, 22, 24, 25, 27, 28})

assert sum(len(v) for v in SCENARIOS.values()) == 40


@dataclass(frozen=True)
class ClaimCheck:
    entry: str
    link: str  # 环节
    scenario: str
    instance: str
    number: int | None
    section: str | None
    uses_ai: bool
    valid: bool
    problems: tuple[str, ...]
    evidence_ok: tuple[str, ...]
    evidence_missing: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "entry": self.entry,
            "link": self.link,
            "scenario": self.scenario,
            "instance": self.instance,
            "number": self.number,
            "section": self.section,
            "uses_ai": self.uses_ai,
            "valid": self.valid,
            "problems": list(self.problems),
            "evidence_ok": list(self.evidence_ok),
            "evidence_missing": list(self.evidence_missing),
        }


def _strip_number(name: str) -> str:
    """``"27 设备运行监控"`` or ``"27.设备运行监控"`` -> ``"设备运行监控"``."""
    s = name.strip()
    i = 0
    while i < len(s) and s[i].isdigit():
        i += 1
    return s[i:].lstrip(" .、．") if i else s


def evidence_exists(ref: str, site: SiteConfig) -> bool:
    device, _, point = ref.partition("/")
    try:
        dev = site.device(device)
    except KeyError:
        return False
    if not point:
        return True
    return any(p.id == point for p in dev.points)


def check_claim(claim: ScenarioClaim, site: SiteConfig) -> ClaimCheck:
    parts = [p.strip() for p in claim.entry.split("-", 2)]
    while len(parts) < 3:
        parts.append("")
    link, scen_raw, instance = parts
    scenario = _strip_number(scen_raw)
    problems: list[str] = []
    number: int | None = None
    if link not in SCENARIOS:
        problems.append(f"环节 {link!r} is not one of the 8 of the 2025 guide")
    else:
        number = SCENARIO_NUMBER.get((link, scenario))
        if number is None:
            elsewhere = [lk for (lk, nm) in SCENARIO_NUMBER if nm == scenario]
            hint = f" (it belongs to 环节 {elsewhere[0]})" if elsewhere else ""
            problems.append(f"场景 {scenario!r} is not a scenario of 环节 {link}{hint}")
    if not instance:
        problems.append("场景实例名称 is empty")
    ok = tuple(e for e in claim.evidence if evidence_exists(e, site))
    missing = tuple(e for e in claim.evidence if not evidence_exists(e, site))
    if missing:
        problems.append("evidence not in the site file: " + ", ".join(missing))
    if number in DATA_BACKED and not claim.evidence:
        problems.append(f"scenario {number} can be backed by recorded data: link devices/points")
    valid = number is not None and bool(instance)
    return ClaimCheck(
        entry=claim.entry,
        link=link,
        scenario=scenario,
        instance=instance,
        number=number,
        section=SECTION_OF.get(link),
        uses_ai=claim.uses_ai,
        valid=valid,
        problems=tuple(problems),
        evidence_ok=ok,
        evidence_missing=missing,
    )
