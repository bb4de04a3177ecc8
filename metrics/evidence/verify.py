"""The offline verifier (pure): bundle bytes + trust -> a report with a pass/fail per check and
per KPI, each with its reason.

It needs only this package: no store, no network. Order of the checks:

1. bundle structure (exactly the files of :mod:`.bundle`, readable);
2. checkpoint: signed by a trusted gateway key valid at the checkpoint's time; witness
   cosignatures by trusted witness keys valid at their time, at least ``witness_quorum``;
   signatures of unknown keys are ignored;
3. snapshot: DSSE signature by a trusted gateway key valid at ``created``, payload type, payload
   fields; the snapshot's log reference equals the checkpoint;
4. leaves: every leaf the snapshot references is in the bundle, in log order, once; its record
   hashes to the referenced leaf hash; its inclusion proof leads to the signed root; every
   batch's samples hash to the record's ``samples_sha256``, decode canonically and match its
   count and timestamps;
5. signed files (README, report, CSV, XLSX) match their hashes in the snapshot;
6. sequence continuity per source: no batch removed, inserted, duplicated or reordered; a jump is
   accepted only where a ``gap`` leaf of the bundle records it;
7. recomputation of the KPI table from the bundle's batches with ``metrics.engine`` and the
   signed site file, compared row by row (exact; numbers within a relative tolerance of
   :data:`REL_TOL` when their decimal strings differ);
8. plausibility: counters monotonic except resets / rollovers, OEE components <= 1, energy within
   rated power x time, no replayed batch or duplicated samples across batches, clock
   synchronised over the periods, no device clock recorded ahead of the gateway's and no sample
   after the checkpoint was signed.

Two levels of verdict (each check carries its ``level``): a failed *integrity* check (1-7, and
every KPI) fails the bundle; a failed *plausibility* check (8) is a finding with a severity and
a plain explanation (中文 / English) for the reviewer, and does not fail it. See
:attr:`Report.verdict` and the exit codes :data:`EXIT_PASSED` .. :data:`EXIT_FINDINGS`.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from config.markers import HEARTBEAT_DEVICE
from config.models import COUNTER_ROLES, SiteConfig
from metrics.evidence import bundle as bundle_mod
from metrics.evidence import canonical, configlog, dsse, merkle, note, snapshot
from metrics.evidence.trust import Trust, format_time
from metrics.periods import NS_PER_S, TimeRange
from metrics.recording import AFTER_NS
from metrics.series import Series

REL_TOL = 1e-9
"""Relative tolerance for recomputed numbers whose decimal strings differ (float summation
order); identical inputs normally give identical strings."""
FUTURE_SLACK_S = 300
MAX_REASONS = 25


INTEGRITY = "integrity"
"""Level of a check whose failure fails the bundle: signatures, proofs, hashes, sequence,
configuration, recomputation."""
PLAUSIBILITY = "plausibility"
"""Level of a check whose failure is a finding for the reviewer to judge (the bundle is
authentic; the data may still be doubtful): clock state, data newer than the checkpoint,
OEE components above 1, counters, energy against rated power, repeated samples."""
SEVERITIES = ("warning", "serious")
"""Severity of a plausibility finding: ``warning`` (look at it; often explained by the site,
e.g. an air-gapped clock), ``serious`` (a KPI is likely wrong unless the applicant explains)."""

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_FINDINGS = 3
"""Exit codes of ``shopfloor verify``: 0 integrity holds and no finding; 3 integrity holds,
plausibility findings to review; 1 integrity fails (a check or a KPI); 2 usage error (files
unreadable, bad arguments, a bundle over the size limits)."""


@dataclass
class Check:
    name: str
    subject: str
    ok: bool
    reason: str
    level: str = INTEGRITY
    severity: str | None = None  # plausibility findings only: warning | serious
    explain_zh: str = ""
    explain_en: str = ""

    @property
    def finding(self) -> bool:
        """A failed plausibility check: for the reviewer, does not fail the bundle."""
        return self.level == PLAUSIBILITY and not self.ok

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "check": self.name,
            "subject": self.subject,
            "ok": self.ok,
            "reason": self.reason,
            "level": self.level,
        }
        if self.finding:
            out.update(
                severity=self.severity, explain_zh=self.explain_zh, explain_en=self.explain_en
            )
        return out


@dataclass
class KpiResult:
    id: str
    label_zh: str
    label_en: str
    provenance: str
    status: str  # recomputed | declared | mismatch | not_recomputed
    ok: bool
    reason: str
    before: Any = None
    after: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label_zh": self.label_zh,
            "label_en": self.label_en,
            "provenance": self.provenance,
            "status": self.status,
            "ok": self.ok,
            "reason": self.reason,
            "before": self.before,
            "after": self.after,
        }


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    kpis: list[KpiResult] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Integrity holds: every integrity check and every KPI passed (plausibility findings
        may remain; see :attr:`verdict`)."""
        return (
            any(c.level == INTEGRITY for c in self.checks)
            and not self.integrity_failures()
            and all(k.ok for k in self.kpis)
        )

    @property
    def verdict(self) -> str:
        """``passed`` (integrity holds, no finding), ``findings`` (integrity holds, findings
        to review) or ``failed`` (integrity fails)."""
        if not self.ok:
            return "failed"
        return "findings" if self.findings() else "passed"

    @property
    def exit_code(self) -> int:
        return {"passed": EXIT_PASSED, "findings": EXIT_FINDINGS}.get(self.verdict, EXIT_FAILED)

    def add(
        self,
        name: str,
        subject: str,
        ok: bool,
        reason: str,
        *,
        level: str = INTEGRITY,
        severity: str | None = None,
        explain: tuple[str, str] | None = None,
    ) -> bool:
        """Record a check (``level`` integrity unless said otherwise; a plausibility check
        that fails is a finding with ``severity`` and a plain explanation (中文, English):
        ``explain``, or the one of its name in :data:`EXPLAIN`)."""
        finding = level == PLAUSIBILITY and not ok
        zh, en = (explain or EXPLAIN.get(name, ("", ""))) if finding else ("", "")
        sev = (severity or "warning") if level == PLAUSIBILITY and not ok else None
        self.checks.append(Check(name, subject, ok, reason, level, sev, zh, en))
        return ok

    def fail_many(
        self,
        name: str,
        subject: str,
        reasons: Sequence[str],
        *,
        level: str = INTEGRITY,
        severity: str | None = None,
        explain: tuple[str, str] | None = None,
    ) -> bool:
        for r in reasons[:MAX_REASONS]:
            self.add(name, subject, False, r, level=level, severity=severity, explain=explain)
        if len(reasons) > MAX_REASONS:
            self.add(
                name,
                subject,
                False,
                f"... and {len(reasons) - MAX_REASONS} more",
                level=level,
                severity=severity,
                explain=explain,
            )
        return not reasons

    def failures(self) -> list[Check]:
        """Every check that did not hold, integrity failures and plausibility findings."""
        return [c for c in self.checks if not c.ok]

    def integrity_failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok and c.level == INTEGRITY]

    def findings(self) -> list[Check]:
        return [c for c in self.checks if c.finding]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "facts": self.facts,
            "checks": [c.to_dict() for c in self.checks if c.level == INTEGRITY],
            "kpis": [k.to_dict() for k in self.kpis],
            "plausibility": [c.to_dict() for c in self.checks if c.level == PLAUSIBILITY],
            "findings": len(self.findings()),
        }

    def to_text(self) -> str:
        lines = ["shopfloor 证据核验 evidence verification"]
        for k, v in self.facts.items():
            lines.append(f"  {k}: {v}")
        lines.append("")
        lines.append(
            "完整性检查 Integrity checks (任一失败则证据包不通过 any failure fails the bundle):"
        )
        for c in self.checks:
            if c.level == INTEGRITY:
                lines.append(f"  [{'PASS' if c.ok else 'FAIL'}] {c.name} — {c.subject}: {c.reason}")
        if self.kpis:
            lines.append("")
            lines.append("指标 KPIs:")
            for kr in self.kpis:
                mark = "PASS" if kr.ok else "FAIL"
                lines.append(
                    f"  [{mark}] {kr.label_zh} {kr.label_en} ({kr.provenance}, {kr.status}): "
                    f"建设前 {_short(kr.before)} / 建成后 {_short(kr.after)} — {kr.reason}"
                )
        plaus = [c for c in self.checks if c.level == PLAUSIBILITY]
        if plaus:
            lines.append("")
            lines.append(
                "合理性检查 Plausibility checks (发现供评审判断，不使证据包失败 "
                "findings are for the reviewer to judge; they do not fail the bundle):"
            )
            for c in plaus:
                mark = "OK" if c.ok else SEVERITY_MARK.get(c.severity or "", "FINDING")
                lines.append(f"  [{mark}] {c.name} — {c.subject}: {c.reason}")
                if c.finding and c.explain_zh:
                    lines.append(f"      说明: {c.explain_zh}")
                    lines.append(f"      Note: {c.explain_en}")
        lines.append("")
        lines.append(self.result_line())
        return "\n".join(lines) + "\n"

    def result_line(self) -> str:
        n = len(self.findings())
        if self.verdict == "passed":
            return "结果 RESULT: 全部通过 ALL CHECKS PASSED"
        if self.verdict == "findings":
            return (
                f"结果 RESULT: 完整性通过，{n} 项合理性发现待评审 "
                f"INTEGRITY PASSED, {n} PLAUSIBILITY FINDINGS TO REVIEW"
            )
        return (
            f"结果 RESULT: 未通过 FAILED ({len(self.integrity_failures())} integrity checks, "
            f"{sum(1 for k in self.kpis if not k.ok)} KPIs"
            + (f"; {n} plausibility findings" if n else "")
            + ")"
        )


SEVERITY_MARK = {"warning": "WARNING 注意", "serious": "SERIOUS 严重"}

EXPLAIN: dict[str, tuple[str, str]] = {
    "plausibility: counters": (
        "累计计数器在非清零、非溢出的情况下减少：数据可能被改动，或设备/点位配置有误；"
        "据此计算的产量和不良品率可能不可信。",
        "A cumulative counter went down without a reset or a rollover: the data may have been "
        "altered or the device or point is misconfigured; counts and defect rates computed from "
        "it may be wrong.",
    ),
    "plausibility: OEE components": (
        "可用率、性能（有效性）或质量率大于 1 在物理上不可能；性能大于 1 通常说明理想节拍"
        "（ideal_cycle_s）设得过长，会虚增 OEE。",
        "Availability, effectiveness or quality ratio above 1 is physically impossible; "
        "effectiveness above 1 usually means the ideal cycle time (ideal_cycle_s) is set too "
        "long, which inflates OEE.",
    ),
    "plausibility: energy": (
        "电能表读数超过设备额定功率乘以时间：电表倍率、单位或额定功率有误，或数据不真实；"
        "单位产值能耗可能不可信。",
        "A meter used more energy than rated power x time allows: a meter multiplier, unit or "
        "rated power is wrong, or the data are not genuine; energy per value may be wrong.",
    ),
    "plausibility: duplicates": (
        "同一批样本或同一时刻的样本在日志中出现多次：可能是重放的数据，会重复计入产量。",
        "The same batch or samples at the same time appear more than once in the log: possibly "
        "replayed data, counted twice in the output.",
    ),
    "plausibility: clock": (
        "网关时钟未与时间源同步（隔离网络的工厂常见）。时间戳依赖网关自身的时钟："
        "请结合记录的设备与网关时钟偏差（clock 叶子）和检查点签名时间判断时间是否可信。",
        "The gateway's clock was not synchronised to a time source (common on air-gapped "
        "factory networks). Timestamps rest on the gateway's own clock: judge them with the "
        "recorded offset between device and gateway clocks (clock leaves) and the checkpoint's "
        "signing time.",
    ),
}
"""Plain explanation (中文, English) of each plausibility check for the reviewer."""

EXPLAIN_DEVICE_AHEAD = (
    "设备时间戳超前于网关时钟：设备与网关的时钟不一致（至少一方不准）。数据的先后顺序和周期归属"
    "可能偏移相应的秒数；偏差小于统计周期时对指标影响很小。",
    "Device timestamps ran ahead of the gateway's clock: the two clocks disagree (at least one "
    "is wrong). Data may fall that many seconds off in time and across period boundaries; an "
    "offset much shorter than the periods barely moves the KPIs.",
)
EXPLAIN_LATE = (
    "数据时间晚于检查点签名时间：某个时钟超前，或数据是事后伪造的。这些数据在签名时还不应存在，"
    "请要求申报企业说明。",
    "Data are stamped after the checkpoint that covers them was signed: a clock ran ahead, or "
    "the data were fabricated. They could not have existed when they were signed; ask the "
    "applicant to explain.",
)
"""Plain explanation (中文, English) of each plausibility check for the reviewer."""


def _short(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return v
        return f"{f:.6g}"
    return str(v)


# --- the reader over a bundle's batches -----------------------------------------------------


class BundleReader:
    """``metrics.series.SeriesReader`` over decoded batches (log order, then time order).
    ``records`` (source, seq, first_ts, last_ts of each batch) let the engine read the
    provenance of a period off the batches' sources (:mod:`metrics.provenance`)."""

    def __init__(
        self,
        batches: Iterable[canonical.DecodedSamples],
        records: Iterable[tuple[str, int, int, int]] = (),
    ) -> None:
        self._records: dict[str, list[tuple[str, int, int, int]]] = {}
        for r in sorted(records):
            self._records.setdefault(r[0], []).append(r)
        parts: dict[tuple[str, str], list[Series]] = {}
        for b in batches:
            for key, s in b.per_series().items():
                parts.setdefault(key, []).append(s)
        self._series: dict[tuple[str, str], Series] = {}
        for key, chunks in parts.items():
            ts = np.concatenate([c.ts for c in chunks])
            vals = np.concatenate([c.values for c in chunks])
            q = np.concatenate([c.quality for c in chunks])
            if ts.size > 1 and (np.diff(ts) < 0).any():
                order = np.argsort(ts, kind="stable")
                ts, vals, q = ts[order], vals[order], q[order]
            self._series[key] = Series(ts, vals, q)

    def keys(self) -> list[tuple[str, str]]:
        return sorted(self._series)

    def sources(self) -> list[str]:
        return sorted(self._records)

    def batch_records(
        self, source: str | None = None, start: int | None = None, end: int | None = None
    ) -> list[tuple[str, int, int, int]]:
        """(source, seq, first_ts, last_ts) of the batches overlapping [start, end)."""
        pool = (
            self._records.get(source, [])
            if source is not None
            else [r for rs in self._records.values() for r in rs]
        )
        return [r for r in pool if (start is None or r[3] >= start) and (end is None or r[2] < end)]

    def full(self, device: str, point: str) -> Series:
        return self._series.get((device, point), Series.empty())

    def read(self, device: str, point: str, start: int, end: int, *, prior: bool = False) -> Series:
        s = self._series.get((device, point))
        if s is None:
            return Series.empty()
        lo = int(np.searchsorted(s.ts, start, side="left"))
        hi = int(np.searchsorted(s.ts, end, side="left"))
        if prior and lo > 0:
            lo -= 1
        return Series(s.ts[lo:hi], s.values[lo:hi], s.quality[lo:hi])


def compute_table_dict(
    reader: Any,
    site: SiteConfig,
    baseline: TimeRange,
    current: TimeRange,
    *,
    baseline_imported: bool,
    current_imported: bool,
    baseline_site: SiteConfig | None = None,
) -> dict[str, Any]:
    """``metrics.engine.compute_table(...).to_dict()`` as canonical JSON data."""
    from metrics.engine import compute_table

    table = compute_table(
        reader,
        site,
        baseline,
        current,
        baseline_imported=baseline_imported,
        current_imported=current_imported,
        baseline_site=baseline_site,
    )
    out: dict[str, Any] = canonical.jsonable(table.to_dict())
    return out


# --- comparison ----------------------------------------------------------------------------


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def diff_json(a: Any, b: Any, path: str = "", tol: float = REL_TOL) -> list[str]:
    """Differences between signed ``a`` and recomputed ``b`` (numbers within ``tol``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            p = f"{path}.{k}" if path else str(k)
            if k not in a:
                out.append(f"{p}: recomputed only")
            elif k not in b:
                out.append(f"{p}: signed only")
            else:
                out += diff_json(a[k], b[k], p, tol)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items signed, {len(b)} recomputed"]
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += diff_json(x, y, f"{path}[{i}]", tol)
        return out
    if a == b:
        return []
    fa, fb = _num(a), _num(b)
    if (
        fa is not None
        and fb is not None
        and not isinstance(a, int | bool)
        and math.isfinite(fa)
        and math.isfinite(fb)
        and abs(fa - fb) <= tol * max(abs(fa), abs(fb), 1e-300)
    ):
        return []
    return [f"{path}: signed {_short(a)}, recomputed {_short(b)}"]


# --- verification --------------------------------------------------------------------------


@dataclass
class _Decoded:
    ref: snapshot.LeafRef
    record: dict[str, Any]
    samples: canonical.DecodedSamples | None


def verify_bundle(
    data: bytes | str | os.PathLike[str] | BinaryIO,
    trust: Trust,
    *,
    tol: float = REL_TOL,
    max_total: int = bundle_mod.MAX_TOTAL_BYTES,
) -> Report:
    """Run every check on the bundle (its bytes, path or open binary file); never raises for
    a bad bundle (the report says what broke) except
    :class:`~metrics.evidence.bundle.BundleTooLarge` for one over the size limits (more than
    ``max_total`` bytes uncompressed), which is refused before anything beyond the limit is
    decompressed."""
    rep = Report()
    try:
        return _verify(rep, data, trust, tol, max_total)
    except bundle_mod.BundleTooLarge:
        raise
    except Exception as exc:  # a malformed bundle must give a report, never a traceback
        rep.add(
            "verification", "bundle", False, f"verification aborted on malformed input: {exc!r}"
        )
        return rep


def _verify(
    rep: Report,
    data: bytes | str | os.PathLike[str] | BinaryIO,
    trust: Trust,
    tol: float,
    max_total: int,
) -> Report:
    try:
        files = bundle_mod.read_files(data, max_total=max_total)
    except bundle_mod.BundleTooLarge:
        raise
    except bundle_mod.BundleError as exc:
        rep.add("bundle structure", "bundle", False, str(exc))
        return rep
    rep.add("bundle structure", "bundle", True, f"{len(files)} files as expected")

    cp = _check_checkpoint(rep, files[bundle_mod.CHECKPOINT], trust)
    payload = _check_envelope(rep, files[bundle_mod.ENVELOPE], trust)
    if payload is None:
        return rep
    rep.facts.update(
        {
            "site": f"{payload['site'].get('id')} {payload['site'].get('name')}",
            "created": payload.get("created"),
            "baseline": payload["periods"]["baseline"].get("label"),
            "current": payload["periods"]["current"].get("label"),
        }
    )
    if cp is not None:
        want = {"origin": cp.origin, "size": cp.size, "root": note.b64(cp.root)}
        rep.add(
            "snapshot bound to checkpoint",
            f"{bundle_mod.ENVELOPE} / {bundle_mod.CHECKPOINT}",
            payload["log"] == want,
            "the snapshot's log reference equals the signed checkpoint"
            if payload["log"] == want
            else f"snapshot refers to {payload['log']}, checkpoint is {want}",
        )
        rep.facts["log"] = f"{cp.origin} size {cp.size}"

    for name in bundle_mod.SIGNED_FILES:
        want_h = payload["files"].get(name)
        got_h = canonical.sha256_hex(files[name])
        rep.add(
            "signed file hash",
            name,
            want_h == got_h,
            "matches the signed snapshot"
            if want_h == got_h
            else f"SHA-256 {got_h[:16]}… differs from the signed {str(want_h)[:16]}…",
        )

    decoded = _check_leaves(rep, files, payload, cp)
    site = _site_of(rep, payload)
    batches_ok = decoded is not None and not any(
        not c.ok for c in rep.checks if c.name in ("leaf", "batch samples", "leaf order")
    )
    if decoded is not None:
        _check_continuity(rep, decoded, _periods_or_none(payload))
        _check_rotations(rep, decoded, trust)
    sites = None
    if decoded is not None:
        _list_imports(rep, decoded)
        sites = _check_configuration(rep, payload, decoded, site)
    if sites is None or decoded is None or not batches_ok:
        _kpis_not_recomputed(
            rep, payload, "batch data, site file or configuration failed the checks above"
        )
        return rep
    site = sites[1]
    batches = [d for d in decoded if d.samples is not None]
    reader = BundleReader(
        (d.samples for d in batches if d.samples is not None), _batch_records(batches)
    )
    rep.facts["batches"] = len(batches)
    rep.facts["samples"] = sum(len(d.samples) for d in batches if d.samples is not None)
    recomputed = _recompute(rep, payload, site, reader, tol, baseline_site=sites[0])
    _plausibility(rep, payload, site, reader, decoded, recomputed, cp)
    return rep


def _batch_records(decoded: Sequence[_Decoded]) -> list[tuple[str, int, int, int]]:
    return [
        (str(d.ref.source), int(d.ref.seq or 0), int(d.ref.first_ts or 0), int(d.ref.last_ts or 0))
        for d in decoded
        if d.ref.kind == "batch"
    ]


def _check_checkpoint(rep: Report, raw: bytes, trust: Trust) -> note.Checkpoint | None:
    subj = bundle_mod.CHECKPOINT
    try:
        cp, _, verified = note.open_checkpoint(raw, trust.verifiers())
    except note.NoteError as exc:
        rep.add("checkpoint signature", subj, False, str(exc))
        return None
    gw = [v for v in verified if trust.entry(v.verifier).role == "gateway"]
    if not gw:
        rep.add("checkpoint signature", subj, False, "no trusted gateway key signed it")
        return None
    t = cp.time
    if t is None:
        rep.add("checkpoint signature", subj, False, "checkpoint has no 'time' line")
        return None
    for v in gw:
        e = trust.entry(v.verifier)
        rep.add(
            "checkpoint key validity",
            subj,
            e.valid_at(t),
            f"{v.verifier.name} ({v.verifier.key_hash}) signed at {format_time(t)}, "
            f"valid {e.window()}",
        )
    rep.add(
        "checkpoint signature",
        subj,
        True,
        f"signed by {', '.join(v.verifier.name for v in gw)}: size {cp.size}",
    )
    wits = [v for v in verified if trust.entry(v.verifier).role == "witness"]
    good = 0
    for v in wits:
        e = trust.entry(v.verifier)
        ts = v.timestamp or 0
        valid = e.valid_at(ts)
        good += valid
        rep.add(
            "witness cosignature",
            subj,
            valid,
            f"{v.verifier.name} cosigned at {format_time(ts)}, valid {e.window()}",
        )
    if trust.witness_quorum:
        rep.add(
            "witness quorum",
            subj,
            good >= trust.witness_quorum,
            f"{good} of {trust.witness_quorum} required witness cosignatures",
        )
    return cp


def _check_envelope(rep: Report, raw: bytes, trust: Trust) -> dict[str, Any] | None:
    subj = bundle_mod.ENVELOPE
    try:
        env = dsse.open_envelope(raw, trust.verifiers("gateway"))
    except dsse.DsseError as exc:
        rep.add("snapshot signature", subj, False, str(exc))
        return None
    try:
        payload = snapshot.check_payload(canonical.parse_canonical(env.payload, "snapshot payload"))
        created = int(payload["created_unix"])
        for key in ("site", "periods", "log", "files"):
            if not isinstance(payload[key], dict):
                raise snapshot.SnapshotError(f"snapshot payload {key} is not an object")
    except (canonical.CanonicalError, snapshot.SnapshotError, ValueError, TypeError) as exc:
        rep.add("snapshot payload", subj, False, str(exc))
        return None
    rep.add(
        "snapshot signature",
        subj,
        True,
        f"DSSE {env.payload_type} signed by {', '.join(v.name for v in env.signed_by)}",
    )
    for v in env.signed_by:
        e = trust.entry(v)
        rep.add(
            "snapshot key validity",
            subj,
            e.valid_at(created),
            f"{v.name} ({v.key_hash}) signed at {format_time(created)}, valid {e.window()}",
        )
    return payload


def _check_leaves(
    rep: Report, files: Mapping[str, bytes], payload: Mapping[str, Any], cp: note.Checkpoint | None
) -> list[_Decoded] | None:
    try:
        leaves = bundle_mod.decode_leaves(files[bundle_mod.LEAVES], files[bundle_mod.SAMPLES])
        refs = [snapshot.LeafRef.from_dict(d) for d in payload["batches"]]
        refs += [snapshot.LeafRef.from_dict(d) for d in payload["special_leaves"]]
    except (bundle_mod.BundleError, canonical.CanonicalError, snapshot.SnapshotError) as exc:
        rep.add("leaf", bundle_mod.LEAVES, False, str(exc))
        return None
    except (TypeError, KeyError) as exc:
        rep.add("leaf", bundle_mod.ENVELOPE, False, f"leaf references malformed: {exc}")
        return None
    idxs = [lf.index for lf in leaves]
    order_ok = all(a < b for a, b in itertools.pairwise(idxs))
    rep.add(
        "leaf order",
        bundle_mod.LEAVES,
        order_ok,
        "leaves in log order, each once"
        if order_ok
        else "leaves are not in strictly increasing log order (reordered or duplicated)",
    )
    by_ref = {r.index: r for r in refs}
    if len(by_ref) != len(refs):
        rep.add("leaf", bundle_mod.ENVELOPE, False, "the snapshot references a leaf twice")
    have = {lf.index for lf in leaves}
    missing = sorted(set(by_ref) - have)
    extra = sorted(have - set(by_ref))
    reasons = [f"leaf {i} referenced by the snapshot is missing from the bundle" for i in missing]
    reasons += [f"leaf {i} is in the bundle but not referenced by the snapshot" for i in extra]
    out: list[_Decoded] = []
    sample_reasons: list[str] = []
    for lf in leaves:
        ref = by_ref.get(lf.index)
        if ref is None:
            continue
        h = merkle.leaf_hash(lf.record)
        what = f"leaf {lf.index}" + (f" ({ref.source} #{ref.seq})" if ref.kind == "batch" else "")
        if h.hex() != ref.leaf_hash:
            reasons.append(f"{what}: record hash differs from the signed reference")
            continue
        if cp is not None:
            try:
                merkle.verify_inclusion(lf.index, cp.size, h, lf.proof, cp.root)
            except merkle.ProofError as exc:
                reasons.append(f"{what}: inclusion proof: {exc}")
                continue
        rec = canonical.parse_canonical(lf.record, f"{what} record")
        if not isinstance(rec, dict):
            reasons.append(f"{what}: record is not a JSON object")
            continue
        if rec.get("kind") != ref.kind:
            reasons.append(f"{what}: is a {rec.get('kind')} leaf, referenced as {ref.kind}")
            continue
        dec = None
        if ref.kind == "batch":
            dec = _check_batch(what, lf, rec, ref, sample_reasons)
        elif lf.samples is not None:
            reasons.append(f"{what}: a {ref.kind} leaf carries samples")
        out.append(_Decoded(ref, rec, dec))
    ok1 = rep.fail_many("leaf", bundle_mod.LEAVES, reasons)
    ok2 = rep.fail_many("batch samples", bundle_mod.SAMPLES, sample_reasons)
    if ok1:
        rep.add(
            "leaf",
            bundle_mod.LEAVES,
            True,
            f"{len(out)} leaves hash to their signed references and are included in the checkpoint",
        )
    if ok2:
        rep.add("batch samples", bundle_mod.SAMPLES, True, "every batch matches its leaf hash")
    return out


def _check_batch(
    what: str,
    lf: bundle_mod.BundleLeaf,
    rec: Mapping[str, Any],
    ref: snapshot.LeafRef,
    reasons: list[str],
) -> canonical.DecodedSamples | None:
    if lf.samples is None:
        reasons.append(f"{what}: batch samples missing")
        return None
    if canonical.sha256_hex(lf.samples) != rec.get("samples_sha256"):
        reasons.append(f"{what}: samples do not match the leaf's samples_sha256")
        return None
    try:
        dec = canonical.decode_samples(lf.samples, what)
    except canonical.CanonicalError as exc:
        reasons.append(str(exc))
        return None
    try:
        fields = (
            str(rec["source"]),
            int(rec["seq"]),
            int(rec["first_ts"]),
            int(rec["last_ts"]),
            int(rec["count"]),
        )
    except (KeyError, ValueError, TypeError) as exc:
        reasons.append(f"{what}: batch record malformed ({exc})")
        return None
    if fields != (ref.source, ref.seq, ref.first_ts, ref.last_ts, ref.count):
        reasons.append(f"{what}: batch record differs from the snapshot's reference")
        return None
    n = len(dec)
    if n != fields[4] or not n or int(dec.ts.min()) != fields[2] or int(dec.ts.max()) != fields[3]:
        reasons.append(f"{what}: count or first/last timestamps differ from the record")
        return None
    device = fields[0].removeprefix("import:")
    if any(d != device for d, _ in dec.series):
        reasons.append(f"{what}: samples of another device than the batch source")
        return None
    return dec


def _site_of(rep: Report, payload: Mapping[str, Any]) -> SiteConfig | None:
    sf = payload.get("site_file")
    subj = bundle_mod.ENVELOPE
    if not isinstance(sf, dict) or "canonical" not in sf:
        rep.add("site file", subj, False, "snapshot has no site file")
        return None
    sha = canonical.sha256_hex(canonical.canonical_json(sf["canonical"]))
    if sha != sf.get("sha256"):
        rep.add("site file", subj, False, "site file hash differs from its canonical JSON")
        return None
    try:
        site = snapshot.site_from_json(sf["canonical"])
    except ValueError as exc:
        rep.add("site file", subj, False, f"site file does not load: {exc}")
        return None
    rep.add("site file", subj, True, f"site file {sha[:16]}… loads ({len(site.devices)} devices)")
    return site


def _check_configuration(
    rep: Report, payload: Mapping[str, Any], decoded: Sequence[_Decoded], site: SiteConfig | None
) -> tuple[SiteConfig, SiteConfig] | None:
    """Integrity: the configuration each period is recomputed under is the one the log's
    ``config`` leaves hold for that time (:mod:`.configlog`); the snapshot names those leaves
    and its site file is that configuration. Every recorded change is listed with its reason
    (a re-classification of history is marked). Returns the (baseline, current) configurations
    to recompute with, or ``None`` when the log holds none for a period."""
    subj = bundle_mod.ENVELOPE
    leaves: list[configlog.ConfigLeaf] = []
    for d in decoded:
        if d.ref.kind != "config":
            continue
        try:
            leaves.append(configlog.parse_leaf(d.ref.index, d.record))
        except (ValueError, KeyError, TypeError) as exc:
            rep.add("configuration", f"{bundle_mod.LEAVES} leaf {d.ref.index}", False, str(exc))
            return None
    for lf in sorted(leaves, key=lambda x: x.index):
        rep.add(
            "configuration change",
            f"{bundle_mod.LEAVES} leaf {lf.index}",
            True,
            configlog.describe(lf, configlog.replaced(leaves, lf)),
        )
    if site is None:
        return None
    if not any(lf.content is not None for lf in leaves):
        # the earlier format: config leaves held a hash of the whole site file only
        sha = payload["site_file"].get("sha256")
        ok = sha in {lf.sha256 for lf in leaves}
        rep.add(
            "configuration",
            subj,
            ok,
            "the signed site file is the configuration the log recorded (earlier format: by hash)"
            if ok
            else "the signed site file is no configuration the log recorded (its SHA-256 is in "
            "no config leaf of the bundle)",
        )
        return (site, site) if ok else None
    named = payload.get("configuration")
    reasons: list[str] = configlog.missing_links(leaves)
    sites: list[SiteConfig] = []
    for name, start, end in _periods(payload):
        spans = configlog.in_force(leaves, start, end)
        try:
            content = configlog.period_config(spans, name)
            sites.append(configlog.site_of(content))
        except ValueError as exc:
            reasons.append(str(exc))
            continue
        want = [sp.to_dict() for sp in spans]
        got = named.get(name) if isinstance(named, dict) else None
        if got != want:
            reasons.append(
                f"{name}: the snapshot names configuration leaves {_leaf_idx(got)}, the log "
                f"holds {_leaf_idx(want)} for that time"
            )
    if len(sites) != 2:
        rep.fail_many("configuration", subj, reasons)
        return None
    changes = configlog.diff(configlog.config_content(sites[1]), payload["site_file"]["canonical"])
    if changes:
        reasons.append(
            "the table was computed under a configuration the log does not hold for the "
            "current period; changed from the recorded one: " + "; ".join(changes)
        )
    if rep.fail_many("configuration", subj, reasons) and isinstance(named, dict):
        rep.add(
            "configuration",
            subj,
            True,
            "each period is recomputed with the configuration the log recorded for its time "
            f"(baseline leaf {_leaf_idx(named.get('baseline'))}, "
            f"current leaf {_leaf_idx(named.get('current'))})",
        )
    return sites[0], sites[1]


def _leaf_idx(spans: Any) -> str:
    if not isinstance(spans, list) or not spans:
        return "none"
    return ", ".join(str(sp.get("index")) if isinstance(sp, dict) else "?" for sp in spans)


def _list_imports(rep: Report, decoded: Sequence[_Decoded]) -> None:
    """Every ``import`` leaf: which file (name, SHA-256) became which batches."""
    for d in decoded:
        if d.ref.kind != "import":
            continue
        r = d.record
        ranges = r.get("batches")
        runs = (
            ", ".join(f"{k} #{v[0]}..#{v[1]}" for k, v in sorted(ranges.items()))
            if isinstance(ranges, dict)
            else "?"
        )
        rep.add(
            "import",
            f"{bundle_mod.LEAVES} leaf {d.ref.index}",
            True,
            f"file {r.get('file')} SHA-256 {str(r.get('sha256'))[:16]}… imported "
            f"{_fmt_ns(int(r.get('ts', 0)))} as {runs} (provenance imported); check the file "
            "with --import-file",
        )


def check_import_files(
    rep: Report,
    data: bytes | str | os.PathLike[str] | BinaryIO,
    files: Mapping[str, bytes],
    *,
    max_total: int = bundle_mod.MAX_TOTAL_BYTES,
) -> None:
    """Integrity, for a reviewer holding the imported files: each file must be one the bundle's
    ``import`` leaves record (same name and SHA-256). A file changed after its import fails.
    Only meaningful on a bundle whose leaves passed (else the leaves are not trusted)."""
    subj = "import file"
    if any(not c.ok for c in rep.checks if c.name in ("leaf", "leaf order")):
        for name in files:
            rep.add(subj, name, False, "the bundle's leaves failed: cannot check imports")
        return
    recs: list[tuple[int, dict[str, Any]]] = []
    if not isinstance(data, (bytes, str, os.PathLike)):
        data.seek(0)
    bfiles = bundle_mod.read_files(data, max_total=max_total)
    for lf in bundle_mod.decode_leaves(bfiles[bundle_mod.LEAVES], bfiles[bundle_mod.SAMPLES]):
        rec = canonical.parse_canonical(lf.record, f"leaf {lf.index}")
        if isinstance(rec, dict) and rec.get("kind") == "import":
            recs.append((lf.index, rec))
    for name, raw in files.items():
        sha = canonical.sha256_hex(raw)
        same = [(i, r) for i, r in recs if r.get("sha256") == sha]
        if same:
            i, r = same[0]
            rep.add(subj, name, True, f"SHA-256 {sha[:16]}… is the file imported as leaf {i}")
            continue
        base = name.replace("\\", "/").rsplit("/", 1)[-1]
        named = [(i, r) for i, r in recs if r.get("file") == base]
        if named:
            i, r = named[-1]
            rep.add(
                subj,
                name,
                False,
                f"content changed after its import: SHA-256 {sha[:16]}…, the log recorded "
                f"{str(r.get('sha256'))[:16]}… (leaf {i})",
            )
        else:
            rep.add(
                subj, name, False, f"no import leaf of the bundle records this file ({sha[:16]}…)"
            )


def _periods_or_none(payload: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    try:
        return _periods(payload)
    except (KeyError, TypeError, ValueError):
        return []


def _check_continuity(
    rep: Report, decoded: Sequence[_Decoded], periods: Sequence[tuple[str, int, int]]
) -> None:
    """Sequence numbers of each source contiguous, except (a) where a gap leaf records the
    jump and (b) between two runs when the time between the neighbouring batches touches no
    period (the batches between two periods are not part of the bundle). The collector's
    heartbeat is read only around each period's end (the data horizon): its runs must be
    contiguous over ``[end, end + AFTER_NS)``."""
    hb_windows = [(name, end, end + AFTER_NS) for name, _, end in periods]
    span: dict[int, tuple[int, int]] = {
        d.ref.index: (d.ref.first_ts or 0, d.ref.last_ts or 0)
        for d in decoded
        if d.ref.kind == "batch"
    }
    by_source: dict[str, list[tuple[int, int]]] = {}
    explained: dict[str, list[tuple[int, int]]] = {}
    for d in decoded:
        if d.ref.kind == "batch" and d.ref.source is not None and d.ref.seq is not None:
            by_source.setdefault(d.ref.source, []).append((d.ref.index, d.ref.seq))
        elif d.ref.kind == "gap" and d.record.get("reason") in ("seq_gap", "unlogged"):
            try:
                explained.setdefault(str(d.record["source"]), []).append(
                    (int(d.record["from_seq"]), int(d.record["to_seq"]))
                )
            except (KeyError, ValueError, TypeError):
                continue
    reasons: list[str] = []
    notes: list[str] = []
    between = 0
    for src, items in sorted(by_source.items()):
        items.sort()
        for (i0, s0), (i1, s1) in itertools.pairwise(items):
            if s1 == s0 + 1:
                continue
            if s1 <= s0:
                reasons.append(
                    f"{src}: batch #{s1} (leaf {i1}) comes after #{s0} (leaf {i0}): "
                    "duplicated or reordered"
                )
            elif any(a <= s0 + 1 and s1 - 1 <= b for a, b in explained.get(src, [])):
                notes.append(f"{src}: #{s0 + 1}..#{s1 - 1} recorded as a gap")
            elif periods and not any(
                span[i0][1] < end and span[i1][0] > start
                for _, start, end in (hb_windows if src == HEARTBEAT_DEVICE else periods)
            ):
                between += 1
            else:
                reasons.append(
                    f"{src}: batches #{s0 + 1}..#{s1 - 1} between leaves {i0} and {i1} are "
                    "missing (removed) and no gap leaf records them"
                )
    if rep.fail_many("sequence continuity", bundle_mod.LEAVES, reasons):
        rep.add(
            "sequence continuity",
            bundle_mod.LEAVES,
            True,
            f"{len(by_source)} sources contiguous"
            + (f" ({between} jumps between periods, outside both)" if between else "")
            + (f"; {'; '.join(notes)}" if notes else ""),
        )


def _check_rotations(rep: Report, decoded: Sequence[_Decoded], trust: Trust) -> None:
    """Every key_rotation leaf: its statement is signed by the old key and names the keys of
    the record; the new key should be in trust.json when the old one is."""
    for d in decoded:
        if d.ref.kind != "key_rotation":
            continue
        subj = f"{bundle_mod.LEAVES} leaf {d.ref.index}"
        try:
            old = note.Verifier.parse(str(d.record["old"]))
            new = note.Verifier.parse(str(d.record["new"]))
            n, _ = note.verify_note(str(d.record["statement"]), [old])
            body = canonical.parse_canonical(n.text[:-1].encode(), "rotation statement")
            if body.get("old") != str(old) or body.get("new") != str(new):
                raise note.NoteError("statement names other keys than the leaf")
        except (KeyError, note.NoteError, canonical.CanonicalError, AttributeError) as exc:
            rep.add("key rotation", subj, False, f"rotation statement invalid: {exc}")
            continue
        trusted = {str(v) for v in trust.verifiers("gateway")}
        note_txt = (
            ""
            if str(new) in trusted or str(old) not in trusted
            else "; the new key is not in trust.json"
        )
        rep.add(
            "key rotation",
            subj,
            True,
            f"{old.key_hash} -> {new.key_hash} signed by the old key{note_txt}",
        )


def _kpis_not_recomputed(rep: Report, payload: Mapping[str, Any], why: str) -> None:
    table = payload.get("kpi_table")
    rows = table.get("rows", []) if isinstance(table, dict) else []
    for r in rows:
        if isinstance(r, dict):
            rep.kpis.append(
                KpiResult(
                    str(r.get("id")),
                    str(r.get("label_zh", "")),
                    str(r.get("label_en", "")),
                    str(r.get("provenance", "")),
                    "not_recomputed",
                    False,
                    why,
                    bundle_mod.row_value(r.get("before")),
                    bundle_mod.row_value(r.get("after")),
                )
            )


def _recompute(
    rep: Report,
    payload: Mapping[str, Any],
    site: SiteConfig,
    reader: BundleReader,
    tol: float,
    *,
    baseline_site: SiteConfig | None = None,
) -> dict[str, Any] | None:
    subj = bundle_mod.ENVELOPE
    try:
        pb, pc = payload["periods"]["baseline"], payload["periods"]["current"]
        baseline = TimeRange.from_dict(pb)
        current = TimeRange.from_dict(pc)
        again = compute_table_dict(
            reader,
            site,
            baseline,
            current,
            baseline_imported=bool(pb.get("imported", False)),
            current_imported=bool(pc.get("imported", False)),
            baseline_site=baseline_site,
        )
    except Exception as exc:  # the engine on hostile input: report, never crash
        rep.add("recomputation", subj, False, f"KPI engine failed on the bundle: {exc!r}")
        _kpis_not_recomputed(rep, payload, "the KPI engine failed")
        return None
    signed = payload["kpi_table"]
    srows = {r.get("id"): r for r in signed.get("rows", []) if isinstance(r, dict)}
    arows = {r.get("id"): r for r in again.get("rows", []) if isinstance(r, dict)}
    for rid, r in srows.items():
        prov = str(r.get("provenance", ""))
        a = arows.get(rid)
        before, after = bundle_mod.row_value(r.get("before")), bundle_mod.row_value(r.get("after"))
        label_zh, label_en = str(r.get("label_zh", "")), str(r.get("label_en", ""))
        if a is None:
            rep.kpis.append(
                KpiResult(
                    str(rid),
                    label_zh,
                    label_en,
                    prov,
                    "mismatch",
                    False,
                    "not produced by the recomputation",
                    before,
                    after,
                )
            )
            continue
        diffs = diff_json(r, a, "", tol)
        if prov == "declared":
            status = "declared"
            reason = (
                "declared: signed, not recomputable from data (matches the signed site file)"
                if not diffs
                else "declared figure differs from the signed site file: " + "; ".join(diffs[:3])
            )
        else:
            status = "recomputed" if not diffs else "mismatch"
            reason = (
                "recomputed from the bundle's batches: identical"
                if not diffs
                else "recomputed value differs: " + "; ".join(diffs[:3])
            )
        rep.kpis.append(
            KpiResult(str(rid), label_zh, label_en, prov, status, not diffs, reason, before, after)
        )
    for rid in sorted(set(arows) - set(srows), key=str):
        rep.kpis.append(
            KpiResult(
                str(rid),
                "",
                "",
                "",
                "mismatch",
                False,
                "recomputed but missing from the signed table",
            )
        )
    rest_s = {k: v for k, v in signed.items() if k != "rows"}
    rest_a = {k: v for k, v in again.items() if k != "rows"}
    diffs = diff_json(rest_s, rest_a, "kpi_table", tol)
    rep.fail_many("recomputation", subj, diffs)
    if not diffs:
        rep.add("recomputation", subj, True, "table details (settings, tiers, reads) identical")
    return again


# --- plausibility --------------------------------------------------------------------------


def _periods(payload: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    out = []
    for name in ("baseline", "current"):
        p = payload["periods"][name]
        out.append((name, int(p["start_ns"]), int(p["end_ns"])))
    return out


def _fmt_ns(ns: int) -> str:
    return format_time(ns // NS_PER_S) or str(ns)


def _counter_steps(
    values: npt.NDArray[np.float64], ts: npt.NDArray[np.int64], bits: int | None
) -> list[tuple[int, float, float]]:
    """Decreases that are neither a reset (to <= 5% of the previous value, or below 1) nor a
    rollover of a ``bits``-wide counter: ``(ts, before, after)``."""
    ok = np.isfinite(values)
    v, t = values[ok], ts[ok]
    if v.size < 2:
        return []
    d = np.diff(v)
    bad = []
    for i in np.nonzero(d < 0)[0]:
        prev, new = float(v[i]), float(v[i + 1])
        if new <= max(1.0, 0.05 * prev):
            continue  # reset: counting starts again from (near) zero
        if bits is not None and prev >= 0.5 * 2.0**bits:
            continue  # rollover
        bad.append((int(t[i + 1]), prev, new))
    return bad


_OEE_INPUTS = frozenset({"availability", "effectiveness", "quality ratio", "quality_ratio"})


def _oee_over_one(table: Mapping[str, Any]) -> list[str]:
    """OEE components above 1 (and OEE above 100 %) in the recomputed table's OEE row."""
    out: list[str] = []
    for row in table.get("rows", []):
        if not isinstance(row, dict) or row.get("id") != "oee":
            continue
        for side in ("before", "after"):
            v = row.get(side)
            if not isinstance(v, dict):
                continue
            oee = _num(v.get("value"))
            if oee is not None and math.isfinite(oee) and oee > 100 + 1e-7:
                out.append(f"OEE {side}: {oee:.4g} % > 100 %")
            for inp in v.get("inputs", []):
                if not isinstance(inp, dict) or inp.get("name") not in _OEE_INPUTS:
                    continue
                f = _num(inp.get("value"))
                if f is not None and math.isfinite(f) and f > 1 + 1e-9:
                    hint = " (check ideal_cycle_s)" if inp.get("name") == "effectiveness" else ""
                    out.append(
                        f"OEE {side}: {inp.get('name')} {f:.4g} > 1 for {inp.get('source')}{hint}"
                    )
    return out


def _plausibility(
    rep: Report,
    payload: Mapping[str, Any],
    site: SiteConfig,
    reader: BundleReader,
    decoded: Sequence[_Decoded],
    table: Mapping[str, Any] | None,
    cp: note.Checkpoint | None,
) -> None:
    periods = _periods(payload)
    # counters monotonic except resets and rollovers, per source (imported history and live
    # data are separate recordings)
    reasons: list[str] = []
    resets = 0
    per_source: dict[str, list[canonical.DecodedSamples]] = {}
    for d in decoded:
        if d.samples is not None and d.ref.source is not None:
            per_source.setdefault(d.ref.source, []).append(d.samples)
    for src, decs in sorted(per_source.items()):
        try:
            dev = site.device(src.removeprefix("import:"))
        except KeyError:
            continue
        sub = BundleReader(decs)
        for pt in dev.points:
            if pt.role not in COUNTER_ROLES:
                continue
            s = sub.full(dev.id, pt.id)
            good = s.quality == 0
            v, t = s.values[good], s.ts[good]
            fin = v[np.isfinite(v)]
            resets += int((np.diff(fin) < 0).sum()) if fin.size > 1 else 0
            for ts, a, b in _counter_steps(v, t, pt.counter_bits):
                reasons.append(
                    f"{src}/{pt.id} fell from {a:.6g} to {b:.6g} at {_fmt_ns(ts)}: "
                    "not a reset or rollover"
                )
    if rep.fail_many(
        "plausibility: counters", "data", reasons, level=PLAUSIBILITY, severity="serious"
    ):
        rep.add(
            "plausibility: counters",
            "data",
            True,
            f"counters monotonic ({resets} resets/rollovers)",
            level=PLAUSIBILITY,
        )
    # OEE components <= 1
    over = _oee_over_one(table) if table is not None else []
    if rep.fail_many(
        "plausibility: OEE components", "kpi_table", over, level=PLAUSIBILITY, severity="serious"
    ):
        rep.add(
            "plausibility: OEE components",
            "kpi_table",
            True,
            "availability, effectiveness, quality and OEE <= 1",
            level=PLAUSIBILITY,
        )
    # energy within rated power x time
    total_rated = sum(d.rated_power_kw or 0.0 for d in site.devices)
    reasons = []
    checked = 0
    for dev in site.devices:
        for pt in dev.points:
            if pt.role != "energy_kwh":
                continue
            rated = dev.rated_power_kw or total_rated
            if not rated:
                continue
            for pname, start, end in periods:
                s = reader.read(dev.id, pt.id, start, end)
                ok = (s.quality == 0) & np.isfinite(s.values)
                v = s.values[ok]
                if v.size < 2:
                    continue
                d = np.diff(v)
                used = float(d[d > 0].sum())
                hours = (int(s.ts[ok][-1]) - int(s.ts[ok][0])) / NS_PER_S / 3600
                limit = rated * hours * 1.05
                checked += 1
                if used > limit + 1e-6:
                    reasons.append(
                        f"{dev.id}/{pt.id} ({pname}): {used:.6g} kWh in {hours:.4g} h exceeds "
                        f"rated {rated:.6g} kW x time = {limit:.6g} kWh"
                    )
    if rep.fail_many(
        "plausibility: energy", "data", reasons, level=PLAUSIBILITY, severity="serious"
    ):
        rep.add(
            "plausibility: energy",
            "data",
            True,
            f"{checked} meter readings within rated power x time",
            level=PLAUSIBILITY,
        )
    # replayed batches / duplicated samples
    reasons = []
    seen: dict[str, int] = {}
    for d in decoded:
        if d.ref.kind != "batch":
            continue
        h = str(d.record.get("samples_sha256"))
        if h in seen:
            reasons.append(f"leaf {d.ref.index} replays the samples of leaf {seen[h]}")
        seen[h] = d.ref.index
    per: dict[tuple[str, str], list[tuple[npt.NDArray[np.int64], int]]] = {}
    for d in decoded:
        if d.samples is None:
            continue
        for key, s in d.samples.per_series().items():
            per.setdefault(key, []).append((s.ts, d.ref.index))
    for key, chunks in sorted(per.items()):
        if len(chunks) < 2:
            continue
        all_ts = np.concatenate([c[0] for c in chunks])
        owner = np.concatenate([np.full(c[0].shape[0], c[1], dtype=np.int64) for c in chunks])
        order = np.argsort(all_ts, kind="stable")
        all_ts, owner = all_ts[order], owner[order]
        dup = (np.diff(all_ts) == 0) & (np.diff(owner) != 0)
        if dup.any():
            i = int(np.nonzero(dup)[0][0])
            reasons.append(
                f"{key[0]}/{key[1]}: {int(dup.sum())} samples repeated across batches "
                f"(first at {_fmt_ns(int(all_ts[i]))}, leaves {int(owner[i])} and "
                f"{int(owner[i + 1])})"
            )
    if rep.fail_many(
        "plausibility: duplicates",
        bundle_mod.SAMPLES,
        reasons,
        level=PLAUSIBILITY,
        severity="serious",
    ):
        rep.add(
            "plausibility: duplicates",
            bundle_mod.SAMPLES,
            True,
            "no replayed batch, no sample repeated across batches",
            level=PLAUSIBILITY,
        )
    _clock_plausibility(rep, periods, decoded, cp)


def _clock_plausibility(
    rep: Report,
    periods: Sequence[tuple[str, int, int]],
    decoded: Sequence[_Decoded],
    cp: note.Checkpoint | None,
) -> None:
    """The gateway's clock state over the periods (``clock`` leaves: ``synchronised`` and,
    when a device's timestamps ran ahead of the gateway's clock, ``devices_ahead_s``), and
    data stamped after the checkpoint was signed."""
    name = "plausibility: clock"
    clocks: list[tuple[int, int, Mapping[str, Any]]] = sorted(
        (int(d.record.get("ts", 0)), d.ref.index, d.record)
        for d in decoded
        if d.ref.kind == "clock"
    )
    unsync: list[str] = []
    ahead: list[str] = []
    for pname, start, end in periods:
        at_start: tuple[int, Mapping[str, Any]] | None = None
        inside: list[tuple[int, int, Mapping[str, Any]]] = []
        for ts, idx, rec in clocks:
            if ts <= start:
                at_start = (idx, rec)
            elif ts < end:
                inside.append((ts, idx, rec))
        if at_start is not None and at_start[1].get("synchronised") is False:
            unsync.append(f"{pname}: clock not synchronised at the start (leaf {at_start[0]})")
        for ts, idx, rec in inside:
            if rec.get("synchronised") is False:
                unsync.append(f"{pname}: clock not synchronised from {_fmt_ns(ts)} (leaf {idx})")
        scope = ([(start, *at_start)] if at_start is not None else []) + inside
        for ts, idx, state in scope:
            lead = state.get("devices_ahead_s")
            if isinstance(lead, dict) and lead:
                shown = ", ".join(f"{k} +{_short(v)} s" for k, v in sorted(lead.items()))
                ahead.append(
                    f"{pname}: device timestamps ahead of the gateway's clock at "
                    f"{_fmt_ns(ts)} (leaf {idx}): {shown}"
                )
    late: list[str] = []
    offset = ""
    newest = max(
        (d.ref.last_ts for d in decoded if d.ref.kind == "batch" and d.ref.last_ts is not None),
        default=None,
    )
    if cp is not None and cp.time is not None and newest is not None:
        delta = newest / NS_PER_S - cp.time
        offset = (
            f"newest sample {abs(delta):.0f} s {'after' if delta > 0 else 'before'} the "
            "checkpoint was signed"
        )
        limit = (cp.time + FUTURE_SLACK_S) * NS_PER_S
        idxs = [
            d.ref.index
            for d in decoded
            if d.ref.kind == "batch" and d.ref.last_ts is not None and d.ref.last_ts > limit
        ]
        if idxs:
            late.append(
                f"{len(idxs)} batches carry timestamps after the checkpoint was signed "
                f"(first leaf {idxs[0]}; {offset}): clock ahead or data fabricated"
            )
    states = [rec.get("synchronised") for _, _, rec in clocks]
    summary = (
        f"{len(clocks)} clock-state leaves ({states.count(True)} synchronised, "
        f"{states.count(False)} not, {sum(1 for s in states if s not in (True, False))} unknown)"
        + (f"; {offset}" if offset else "")
    )
    rep.facts["clock"] = summary
    rep.fail_many(name, "data", unsync, level=PLAUSIBILITY, severity="warning")
    rep.fail_many(
        name, "data", ahead, level=PLAUSIBILITY, severity="warning", explain=EXPLAIN_DEVICE_AHEAD
    )
    rep.fail_many(name, "data", late, level=PLAUSIBILITY, severity="serious", explain=EXPLAIN_LATE)
    if not (unsync or ahead or late):
        rep.add(
            name,
            "data",
            True,
            f"{summary}; none unsynchronised in the periods, no device clock recorded ahead",
            level=PLAUSIBILITY,
        )
