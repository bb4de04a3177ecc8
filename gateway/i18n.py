"""Labels of the pages: Chinese by default, English with the language switch."""

from __future__ import annotations

from typing import Literal

Lang = Literal["zh", "en"]
LANG_COOKIE = "sf_lang"

LABELS: dict[str, tuple[str, str]] = {
    "app": ("智能工厂数据采集网关", "Smart-factory data gateway"),
    "overview": ("工厂总览", "Overview"),
    "machine": ("设备详情", "Machine"),
    "energy": ("能源与碳排放", "Energy and carbon"),
    "health": ("设备连接状态", "Device health"),
    "table": ("建设成效对比表", "Before/after table"),
    "export": ("导出证据包", "Export bundle"),
    "verify": ("核验证据包", "Verify bundle"),
    "login": ("登录", "Sign in"),
    "logout": ("退出", "Sign out"),
    "username": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "login_failed": ("用户名或密码错误", "Wrong user name or password"),
    "state": ("状态", "State"),
    "producing": ("生产", "producing"),
    "setup": ("换型调整", "setup"),
    "idle": ("待机", "idle"),
    "down": ("故障停机", "down"),
    "planned_stop": ("计划停机", "planned stop"),
    "offline": ("离线", "offline"),
    "oee": ("设备综合效率 OEE", "OEE"),
    "availability": ("可用率", "availability"),
    "effectiveness": ("性能效率", "effectiveness"),
    "quality": ("质量合格率", "quality ratio"),
    "good": ("合格数", "good"),
    "scrap": ("不良数", "scrap"),
    "power": ("功率", "power"),
    "today": ("今日", "today"),
    "updated": ("更新于", "updated"),
    "live": ("实时", "live"),
    "connected": ("已连接", "connected"),
    "disconnected": ("未连接", "disconnected"),
    "last_data": ("最后数据", "last data"),
    "errors": ("错误", "errors"),
    "restarts": ("重连次数", "reconnects"),
    "drops": ("丢弃", "drops"),
    "outbox": ("待上传批次", "outbox backlog"),
    "samples": ("样本数", "samples"),
    "device": ("设备", "device"),
    "point": ("测点", "point"),
    "value": ("数值", "value"),
    "time": ("时间", "time"),
    "timeline": ("状态时间线", "state timeline"),
    "trends": ("趋势", "trends"),
    "energy_today": ("今日用电量", "electricity today"),
    "carbon_today": ("今日碳排放", "CO2 today"),
    "water": ("用水", "water"),
    "factor": ("排放因子", "emission factor"),
    "baseline": ("建设前（基准期）", "before (baseline period)"),
    "current": ("建成后（当前期）", "after (current period)"),
    "indicator": ("指标", "indicator"),
    "before": ("建设前", "before"),
    "after": ("建成后", "after"),
    "change": ("变化", "change"),
    "unit": ("单位", "unit"),
    "provenance": ("数据来源", "provenance"),
    "measured": ("实测", "measured"),
    "declared": ("申报", "declared"),
    "imported": ("导入", "imported"),
    "show": ("查询", "show"),
    "download": ("生成并下载证据包", "build and download the bundle"),
    "export_hint": (
        "证据包包含签名的指标快照、原始数据批次、包含性证明和签名检查点，评审专家可离线核验。",
        "The bundle holds the signed KPI snapshot, the raw batches, inclusion proofs and the "
        "signed checkpoint; a reviewer verifies it offline.",
    ),
    "bundle_file": ("证据包文件 (zip)", "bundle file (zip)"),
    "trust_file": ("信任文件 trust.json（可选）", "trust.json (optional)"),
    "verify_hint": (
        "只使用您已持有的公钥（默认为本网关的公钥），从不信任证据包内附带的密钥。",
        "Only keys you already hold are trusted (by default this gateway's key), never keys "
        "found inside the bundle.",
    ),
    "check": ("核验", "verify"),
    "passed": ("核验通过", "verification passed"),
    "failed": ("核验未通过", "verification failed"),
    "passed_findings": (
        "核验通过（完整性成立），有合理性发现待评审",
        "verification passed (integrity holds), plausibility findings to review",
    ),
    "integrity_checks": (
        "完整性检查（任一失败则证据包不通过）",
        "Integrity checks (any failure fails the bundle)",
    ),
    "plausibility_findings": (
        "合理性发现（供评审判断，不使证据包失败）",
        "Plausibility findings (for the reviewer to judge; they do not fail the bundle)",
    ),
    "plausibility_passed": ("合理性检查通过", "Plausibility checks passed"),
    "severity_warning": ("注意", "warning"),
    "severity_serious": ("严重", "serious"),
    "unavailable": ("暂不可用", "unavailable"),
    "no_data": ("暂无数据", "no data yet"),
    "mandatory": ("*为必填指标", "* mandatory indicator"),
    "fleet": ("全厂汇总", "fleet"),
    "role": ("角色", "role"),
    "coverage": ("覆盖率", "coverage"),
    "no_value_reason": ("无值原因", "no-value reason"),
    "figures": ("设备指标", "machine figures"),
    "figure": ("指标", "figure"),
    "period": ("期间", "period"),
    "data_quality": ("数据质量", "data quality"),
    # where the verify page's trust came from (gateway.evidence), shown in the page's language
    "uploaded trust.json": ("上传的 trust.json", "uploaded trust.json"),
    "the service's trust file": ("本服务配置的信任文件", "the service's trust file"),
    "this gateway's public keys": ("本网关的公钥", "this gateway's public keys"),
    "q_good": ("良好", "good"),
    "q_uncertain": ("存疑", "uncertain"),
    "q_bad": ("无效", "bad"),
    "download_csv": ("下载对比表 CSV", "download the table (CSV)"),
    "download_xlsx": ("下载对比表 XLSX", "download the table (XLSX)"),
    "download_form": (
        "生成申报书草稿 DOCX/XLSX（含证据包）",
        "build the form draft (DOCX/XLSX + bundle)",
    ),
    "download_form_hint": (
        "申报书草稿中每个数字的脚注指向同时生成的签名证据包，请一并保存。",
        "Each number of the draft has a footnote naming the signed bundle built with it: keep "
        "them together.",
    ),
    "defaults_from_data": (
        "默认期间取自已记录的数据：建成后为最近的完整记录日，建设前为导入或最早的记录期"
        "（此前没有记录时为一年前的同几天）。",
        "Default periods follow the recorded data: after = the latest complete days recorded, "
        "before = the imported or earliest period (the same days a year earlier when nothing "
        "was recorded before).",
    ),
}

STATE_COLORS = {
    "producing": "#2e9d5b",
    "setup": "#e0a526",
    "idle": "#8a94a6",
    "down": "#d9434b",
    "planned_stop": "#4a78c2",
    "offline": "#3b3f46",
}


def label(key: str, lang: Lang) -> str:
    zh, en = LABELS.get(key, (key, key))
    return zh if lang == "zh" else en


def pick_lang(query: str | None, cookie: str | None) -> Lang:
    for v in (query, cookie):
        if v in ("zh", "en"):
            return v  # type: ignore[return-value]
    return "zh"
