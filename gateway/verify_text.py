"""The verification report (:mod:`metrics.evidence.verify`) in one language for the pages.

The report's check names and reasons are English (the CLI text report is bilingual and keeps
them); the verify page in Chinese shows each check's Chinese name and its reason translated by
the patterns below. A reason no pattern knows (a rare failure text) is shown as it is, marked
``（原文）`` so a reader sees it is untranslated. Identifiers, hashes, times and file names inside
a reason are kept as they are."""

from __future__ import annotations

import re

from gateway.i18n import Lang

CHECK_NAMES_ZH: dict[str, str] = {
    "bundle structure": "证据包结构",
    "checkpoint key validity": "检查点密钥有效期",
    "checkpoint signature": "检查点签名",
    "snapshot signature": "快照签名",
    "snapshot key validity": "快照密钥有效期",
    "snapshot bound to checkpoint": "快照与检查点绑定",
    "snapshot payload": "快照内容",
    "signed file hash": "签名文件哈希",
    "leaf order": "日志叶子顺序",
    "leaf": "日志叶子",
    "batch samples": "批次样本",
    "site file": "站点配置文件",
    "sequence continuity": "批次序号连续性",
    "configuration change": "配置变更",
    "configuration": "配置",
    "recomputation": "指标重算",
    "witness cosignature": "见证联署",
    "witness quorum": "见证法定数",
    "key rotation": "密钥轮换",
    "import": "导入文件",
    "imported file": "导入文件",
    "verification": "核验",
    "plausibility: counters": "合理性：计数器",
    "plausibility: OEE components": "合理性：OEE 分项",
    "plausibility: energy": "合理性：电能",
    "plausibility: duplicates": "合理性：重复数据",
    "plausibility: clock": "合理性：时钟",
}

KPI_STATUS_ZH = {
    "recomputed": "已重算",
    "declared": "申报",
    "mismatch": "不一致",
    "not_recomputed": "未重算",
}

UNTRANSLATED_ZH = "（原文）"

_N = r"(\d+)"
_ANY = r"(.+)"

# (pattern over the whole English reason, Chinese template of its groups); first match wins
_REASONS_ZH: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.S), zh)
    for p, zh in (
        (rf"^{_N} files as expected$", "{0} 个文件，与预期一致"),
        (r"^signed by (.+): size (\d+)$", "由 {0} 签名：日志大小 {1}"),
        (r"^no trusted gateway key signed it$", "没有受信任的网关密钥对其签名"),
        (r"^checkpoint has no 'time' line$", "检查点缺少 time 行"),
        (r"^DSSE (\S+) signed by (.+)$", "DSSE {0}，由 {1} 签名"),
        (r"^(.+) \((\w+)\) signed at (\S+), valid (.+)$", "{0}（{1}）签名于 {2}，有效期 {3}"),
        (r"^(.+) cosigned at (\S+), valid (.+)$", "{0} 联署于 {1}，有效期 {2}"),
        (
            rf"^{_N} of {_N} required witness cosignatures$",
            "有效见证联署 {0} 个（要求 {1} 个）",
        ),
        (
            r"^the snapshot's log reference equals the signed checkpoint$",
            "快照引用的日志与签名检查点一致",
        ),
        (r"^snapshot refers to (.+), checkpoint is (.+)$", "快照引用 {0}，检查点为 {1}"),
        (r"^matches the signed snapshot$", "与签名快照一致"),
        (
            r"^SHA-256 (\S+) differs from the signed (\S+)$",
            "SHA-256 {0} 与签名值 {1} 不一致",
        ),
        (r"^leaves in log order, each once$", "叶子按日志顺序排列，各出现一次"),
        (
            r"^leaves are not in strictly increasing log order \(reordered or duplicated\)$",
            "叶子未按日志顺序严格递增（被重排或重复）",
        ),
        (
            rf"^{_N} leaves hash to their signed references and are included in the checkpoint$",
            "{0} 个叶子的哈希与签名引用一致，且包含在检查点中",
        ),
        (r"^the snapshot references a leaf twice$", "快照两次引用同一叶子"),
        (
            rf"^leaf {_N} referenced by the snapshot is missing from the bundle$",
            "快照引用的叶子 {0} 不在证据包中",
        ),
        (r"^(.+): record hash differs from the signed reference$", "{0}：记录哈希与签名引用不一致"),
        (r"^(.+): inclusion proof: (.+)$", "{0}：包含证明失败：{1}"),
        (r"^every batch matches its leaf hash$", "每个批次都与其叶子哈希一致"),
        (r"^(.+): batch samples missing$", "{0}：缺少批次样本"),
        (
            r"^(.+): samples do not match the leaf's samples_sha256$",
            "{0}：样本与叶子的 samples_sha256 不一致",
        ),
        (
            r"^(.+): batch record differs from the snapshot's reference$",
            "{0}：批次记录与快照引用不一致",
        ),
        (
            r"^(.+): count or first/last timestamps differ from the record$",
            "{0}：样本数或首末时间戳与记录不一致",
        ),
        (
            r"^(.+): samples of another device than the batch source$",
            "{0}：样本属于批次来源以外的设备",
        ),
        (r"^site file (\S+) loads \((\d+) devices\)$", "站点配置文件 {0} 可加载（{1} 台设备）"),
        (r"^snapshot has no site file$", "快照中没有站点配置文件"),
        (
            r"^site file hash differs from its canonical JSON$",
            "站点配置文件哈希与其规范 JSON 不一致",
        ),
        (
            rf"^{_N} sources contiguous \({_N} jumps between periods, outside both\)(?:; (.+))?$",
            "{0} 个来源序号连续（{1} 处跳跃位于两个期间之间，不在任一期间内）{2}",
        ),
        (rf"^{_N} sources contiguous(?:; (.+))?$", "{0} 个来源序号连续{1}"),
        (
            r"^(\S+): batch #(\d+) \(leaf (\d+)\) comes after #(\d+) \(leaf (\d+)\): "
            r"duplicated or reordered$",
            "{0}：批次 #{1}（叶子 {2}）排在 #{3}（叶子 {4}）之后：重复或被重排",
        ),
        (
            r"^(\S+): batches #(\d+)\.\.#(\d+) between leaves (\d+) and (\d+) are missing "
            r"\(removed\) and no gap leaf records them$",
            "{0}：叶子 {3} 与 {4} 之间的批次 #{1}..#{2} 缺失（被删除），且没有缺口叶子记录",
        ),
        (
            r"^each period is recomputed with the configuration the log recorded for its time "
            r"\(baseline leaf (\d+), current leaf (\d+)\)$",
            "每个期间均按日志记录的当时配置重算（建设前：叶子 {0}，建成后：叶子 {1}）",
        ),
        (
            r"^the signed site file is the configuration the log recorded "
            r"\(earlier format: by hash\)$",
            "签名的站点配置文件即日志记录的配置（旧格式：按哈希比对）",
        ),
        (
            r"^table details \(settings, tiers, reads\) identical$",
            "表格明细（设置、梯度、读数）一致",
        ),
        (r"^KPI engine failed on the bundle: (.+)$", "KPI 引擎处理该证据包失败：{0}"),
        (
            r"^recorded (\S+) \(([^)]*)\); no reason recorded; first configuration$",
            "记录于 {0}（{1}）；未记录原因；首个配置",
        ),
        (
            r"^recorded (\S+) \(([^)]*)\); no reason recorded(; KPI view unchanged)?$",
            "记录于 {0}（{1}）；未记录原因{2}",
        ),
        (rf"^counters monotonic \({_N} resets/rollovers\)$", "计数器单调（清零/溢出 {0} 次）"),
        (
            r"^availability, effectiveness, quality and OEE <= 1$",
            "可用率、有效性、质量率和 OEE 均不大于 1",
        ),
        (
            rf"^{_N} meter readings within rated power x time$",
            "{0} 个电表读数在额定功率 × 时间之内",
        ),
        (
            r"^no replayed batch, no sample repeated across batches$",
            "没有重放的批次，也没有跨批次重复的样本",
        ),
        (
            rf"^leaf {_N} replays the samples of leaf {_N}$",
            "叶子 {0} 重放了叶子 {1} 的样本",
        ),
        (
            r"^(\w+): clock not synchronised at the start \(leaf (\d+)\)$",
            "{0}：期间开始时时钟未同步（叶子 {1}）",
        ),
        (
            r"^(\w+): clock not synchronised from (\S+) \(leaf (\d+)\)$",
            "{0}：自 {1} 起时钟未同步（叶子 {2}）",
        ),
        (
            r"^(\w+): device timestamps ahead of the gateway's clock at (\S+) "
            r"\(leaf (\d+)\): (.+)$",
            "{0}：{1} 时设备时间戳超前于网关时钟（叶子 {2}）：{3}",
        ),
        (
            r"^recomputed from the bundle's batches: identical$",
            "由证据包中的批次重算：一致",
        ),
        (
            r"^declared: signed, not recomputable from data \(matches the signed site file\)$",
            "申报值：已签名，无法由数据重算（与签名的站点配置文件一致）",
        ),
        (
            r"^declared figure differs from the signed site file: (.+)$",
            "申报值与签名的站点配置文件不一致：{0}",
        ),
        (r"^recomputed value differs: (.+)$", "重算值不一致：{0}"),
        (r"^not produced by the recomputation$", "重算未产生该指标"),
        (r"^verification aborted on malformed input: (.+)$", "输入格式错误，核验中止：{0}"),
        (r"^\.\.\. and (\d+) more$", "……另有 {0} 项"),
    )
)

_PERIOD_ZH = {"baseline": "建设前", "current": "建成后", "start": "启动"}


def check_name(name: str, lang: Lang) -> str:
    """A check's name in the page's language (the English name is the report's own)."""
    if lang == "en":
        return name
    return CHECK_NAMES_ZH.get(name, name)


def reason(text: str, lang: Lang) -> str:
    """A check's reason in the page's language; an unknown English reason on a Chinese page
    is shown as it is, marked :data:`UNTRANSLATED_ZH`."""
    if lang == "en" or not text:
        return text
    for pattern, zh in _REASONS_ZH:
        m = pattern.match(text)
        if m:
            groups = [_PERIOD_ZH.get(g, g) if g else "" for g in m.groups()]
            if "{2}" in zh and zh.startswith("{0} 个来源"):
                groups[2] = f"；{groups[2]}" if groups[2] else ""
            elif zh.endswith("序号连续{1}"):
                groups[1] = f"；{groups[1]}" if groups[1] else ""
            elif zh.endswith("未记录原因{2}"):
                groups[2] = "；KPI 视图未变" if groups[2] else ""
            return zh.format(*groups)
    return f"{UNTRANSLATED_ZH}{text}"


def kpi_status(status: str, lang: Lang) -> str:
    return status if lang == "en" else KPI_STATUS_ZH.get(status, status)
