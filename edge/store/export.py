"""Assemble an evidence bundle from the ledger (and the store, as a cross-check).

Used by ``shopfloor export`` and by the gateway. The bundle carries, for every source (device,
or ``import:<device>``) and period, the batches overlapping the period plus the batches just
before it until every point of the device has a sample in force at the period's start (the KPI
engine reads step signals and counters with ``prior=True``) and every batch in between; every
special leaf of the log up to the checkpoint; inclusion proofs to the checkpoint with the most
witness cosignatures that covers them, or a fresh one. The KPI table is computed from exactly
those batches (what the reviewer will recompute) and, when a store is given, compared with the
table computed from the store: differences are returned as warnings.

Each period is computed under the configuration the log holds for its time
(:mod:`metrics.evidence.configlog`), named in the snapshot's ``configuration``; the site file
given must equal the configuration recorded last (else the export is refused with the diff).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from config.markers import HEARTBEAT_DEVICE
from config.models import COUNTER_ROLES, SiteConfig
from edge.store.ledger import Leaf, Ledger, config_leaves, latest_config, record_config
from metrics import table as table_mod
from metrics.engine import KpiTable, compute_table
from metrics.evidence import bundle, canonical, configlog, dsse, snapshot
from metrics.evidence.note import Checkpoint, Signer, b64, open_checkpoint
from metrics.evidence.verify import BundleReader, diff_json
from metrics.periods import TimeRange
from metrics.provenance import period_imported
from metrics.recording import AFTER_NS
from metrics.series import QUALITY_BAD, SeriesReader

MAX_WALK_BACK = 2000


class ExportError(Exception):
    """The bundle cannot be made (the message says why)."""


@dataclass
class ExportResult:
    data: bytes
    table: KpiTable
    payload: dict[str, Any]
    checkpoint: Checkpoint
    warnings: list[str] = field(default_factory=list)


def origin_of(site: SiteConfig) -> str:
    return site.evidence.origin or f"shopfloor.local/{site.site.id}"


def _select_batches(ledger: Ledger, site: SiteConfig, periods: Sequence[TimeRange]) -> list[Leaf]:
    """Per source and period, what the KPI engine reads (:func:`metrics.recording.read_period`):
    the batches overlapping ``[start, end + AFTER_NS)``, earlier ones until every point has a
    sample in force at its start (a counter: a good reading, the engine walks back past
    markers), and every batch in between (a contiguous run of sequence numbers); for the
    collector's heartbeat, the run from the last heartbeat before the end to those in the
    ``AFTER_NS`` after it (the data horizon). Runs of different periods are not joined: the
    batches between two periods stay out of the bundle, and the verifier accepts a jump in
    sequence numbers only where the time between the neighbouring batches touches no period
    (for the heartbeat: no ``[end, end + AFTER_NS)``)."""
    chosen: dict[int, Leaf] = {}
    devices = {d.id: {p.id for p in d.points} for d in site.devices}
    counters = {d.id: {p.id for p in d.points if p.role in COUNTER_ROLES} for d in site.devices}
    for src in ledger.sources():
        dev = src.removeprefix("import:")
        all_leaves = ledger.leaves(kind="batch", source=src)
        if src == HEARTBEAT_DEVICE:
            for p in periods:
                _add_run(chosen, all_leaves, _heartbeat_run(all_leaves, p.end_ns))
            continue
        if dev not in devices:
            continue
        for p in periods:
            hi_ts = p.end_ns + AFTER_NS
            run: dict[int, Leaf] = {
                lf.idx: lf
                for lf in all_leaves
                if (lf.last_ts or 0) >= p.start_ns and (lf.first_ts or 0) < hi_ts
            }
            # walk back until every point has a sample before the period's start (a counter:
            # a good reading)
            need = set(devices[dev])
            before = [lf for lf in all_leaves if (lf.first_ts or 0) < p.start_ns]
            before.sort(key=lambda lf: lf.idx, reverse=True)
            for lf in before[:MAX_WALK_BACK]:
                if not need:
                    break
                dec = canonical.decode_samples(ledger.batch_data(lf.idx), f"leaf {lf.idx}")
                hit = set()
                for (_, pt), ser in dec.per_series().items():
                    m = ser.ts < p.start_ns
                    if pt in counters[dev]:
                        m &= (ser.quality != QUALITY_BAD) & np.isfinite(ser.values)
                    if m.any():
                        hit.add(pt)
                if hit & need:
                    run[lf.idx] = lf
                need -= hit
            _add_run(chosen, all_leaves, run)
    return [chosen[i] for i in sorted(chosen)]


def _heartbeat_run(leaves: Sequence[Leaf], end: int) -> dict[int, Leaf]:
    """The heartbeat batches the engine reads for a period ending at ``end``: the last one
    starting before ``end`` and those overlapping ``[end, end + AFTER_NS)``."""
    run = {
        lf.idx: lf
        for lf in leaves
        if (lf.last_ts or 0) >= end and (lf.first_ts or 0) < end + AFTER_NS
    }
    prior = [lf for lf in leaves if (lf.first_ts or 0) < end]
    if prior:
        last = max(prior, key=lambda lf: lf.idx)
        run[last.idx] = last
    return run


def _add_run(chosen: dict[int, Leaf], leaves: Sequence[Leaf], run: dict[int, Leaf]) -> None:
    """Add ``run`` and every batch of the source between its first and last sequence number."""
    if not run:
        return
    lo = min(lf.seq or 0 for lf in run.values())
    hi = max(lf.seq or 0 for lf in run.values())
    for lf in leaves:  # fill the holes of the run
        if lf.seq is not None and lo <= lf.seq <= hi:
            run[lf.idx] = lf
    chosen.update(run)


def _configuration(
    ledger: Ledger, site: SiteConfig, baseline: TimeRange, current: TimeRange, warnings: list[str]
) -> tuple[dict[str, list[configlog.InForce]], SiteConfig, SiteConfig]:
    """The configurations the log holds for each period, and the one each is computed under.

    The site file must be the configuration the log recorded last: a log without any
    configuration content gets it now (cause ``export``); a site file that differs from the
    last recorded one is refused (record the change with its reason first)."""
    content = configlog.config_content(site)
    last = latest_config(ledger)
    if last is None or last.content is None:
        record_config(ledger, content, cause="export")
        warnings.append(
            "the log held no configuration content: the site file's was recorded now "
            "(it applies to all data recorded before it)"
        )
    elif last.sha256 != configlog.content_sha256(content):
        changes = configlog.diff(last.content, content, kpi_only=False)
        raise ExportError(
            f"the site file differs from the configuration the log recorded last (leaf "
            f"{last.index}): {'; '.join(changes[:8]) or 'formatting only'}. Record the change "
            "with its reason: shopfloor config record -c SITE --reason '...' (add --from DATE "
            "to re-classify earlier data), or restore the recorded file"
        )
    leaves = config_leaves(ledger)
    spans: dict[str, list[configlog.InForce]] = {}
    sites: list[SiteConfig] = []
    for name, p in (("baseline", baseline), ("current", current)):
        spans[name] = configlog.in_force(leaves, p.start_ns, p.end_ns)
        try:
            sites.append(configlog.site_of(configlog.period_config(spans[name], name)))
        except ValueError as exc:
            raise ExportError(str(exc)) from None
    return spans, sites[0], sites[1]


def _config_fact(spans: dict[str, list[configlog.InForce]]) -> str:
    """Which config leaves each period was computed under; re-classifications named."""
    parts = []
    for name, label in (("baseline", "建设前 baseline"), ("current", "建成后 current")):
        leaves = ", ".join(str(sp.leaf.index) for sp in spans[name])
        parts.append(f"{label}: leaf {leaves}")
        for sp in spans[name]:
            if sp.leaf.reclassifies:
                parts.append(
                    f"leaf {sp.leaf.index} 重新分类历史 re-classifies history from "
                    f"{configlog.fmt_ns(sp.leaf.effective_from)}: {sp.leaf.reason}"
                )
    return "; ".join(dict.fromkeys(parts))


def _checkpoint(ledger: Ledger, signer: Signer, origin: str, need: int) -> str:
    """The checkpoint to prove against: of those covering the needed leaves, the one with the
    most cosignatures (then the newest); a fresh one when none covers them."""
    best: tuple[int, int, str] | None = None
    for stored in ledger.checkpoints():
        if stored.size < need:
            continue
        try:
            cp, parsed, _ = open_checkpoint(stored.note, [signer.verifier])
        except ValueError:
            continue  # signed by an earlier key or another origin
        if cp.origin != origin:
            continue
        rank = (len(parsed.signatures), stored.size, stored.note)
        if best is None or rank[:2] > best[:2]:
            best = rank
    if best is not None:
        return best[2]
    return ledger.issue_checkpoint(signer, origin)


def export_bundle(
    site: SiteConfig,
    ledger: Ledger,
    signer: Signer,
    baseline: TimeRange,
    current: TimeRange,
    *,
    store: SeriesReader | None = None,
    baseline_imported: bool = False,
    current_imported: bool = False,
    now_s: int | None = None,
) -> ExportResult:
    origin = origin_of(site)
    warnings: list[str] = []
    spans, site_b, site_c = _configuration(ledger, site, baseline, current, warnings)
    batches = sorted(
        {
            lf.idx: lf
            for p_site, p in ((site_b, baseline), (site_c, current))
            for lf in _select_batches(ledger, p_site, [p])
        }.values(),
        key=lambda lf: lf.idx,
    )
    if not batches:
        raise ExportError("the ledger holds no batch of this site's devices in these periods")
    used = [sp.leaf.index for v in spans.values() for sp in v]
    need = max(lf.idx for lf in batches) + 1
    need = max(need, *(i + 1 for i in used))
    cp_note = _checkpoint(ledger, signer, origin, need)
    cp, _, _ = open_checkpoint(cp_note, [signer.verifier])
    specials = [lf for lf in ledger.leaves(upto=cp.size) if lf.kind != "batch"]
    decoded = []
    leaves: list[bundle.BundleLeaf] = []
    for lf in sorted([*batches, *specials], key=lambda x: x.idx):
        data = ledger.batch_data(lf.idx) if lf.kind == "batch" else None
        if data is not None:
            decoded.append(canonical.decode_samples(data, f"leaf {lf.idx}"))
        leaves.append(
            bundle.BundleLeaf(
                lf.idx, lf.record, tuple(ledger.inclusion_proof(lf.idx, cp.size)), data
            )
        )
    reader = BundleReader(
        decoded,
        [(str(lf.source), int(lf.seq or 0), int(lf.first_ts or 0), int(lf.last_ts or 0))
         for lf in batches],
    )  # fmt: skip
    # provenance (imported or measured) comes from the batches' sources, not from flags
    baseline_imported = period_imported(reader, site_b, baseline, baseline_imported)
    current_imported = period_imported(reader, site_c, current, current_imported)
    kw: dict[str, Any] = {
        "baseline_imported": baseline_imported,
        "current_imported": current_imported,
        "baseline_site": site_b,
    }
    table = compute_table(reader, site_c, baseline, current, **kw)
    if store is not None:
        from_store = compute_table(store, site_c, baseline, current, **kw)
        diffs = diff_json(
            canonical.jsonable(table.to_dict()), canonical.jsonable(from_store.to_dict())
        )
        if diffs:
            warnings.append(
                "the store holds data the ledger does not (the bundle signs what the ledger "
                "proves): " + "; ".join(diffs[:5])
            )
    created = int(time.time()) if now_s is None else now_s
    sections = bundle.report_sections(
        site_c,
        reader,
        [
            ("建设前 baseline", baseline.start_ns, baseline.end_ns),
            ("建成后 current", current.start_ns, current.end_ns),
        ],
    )
    facts = [
        ("企业 enterprise", site.site.enterprise or ""),
        ("站点 site", f"{site.site.id} {site.site.name}"),
        ("日志 log", f"{cp.origin} size {cp.size} root {b64(cp.root)}"),
        ("配置 configuration", _config_fact(spans)),
        ("批次 batches", str(len(batches))),
        ("样本 samples", str(sum(len(d) for d in decoded))),
    ]
    report_html = bundle.render_report(
        title="智能工厂建设成效证据报告 Smart-factory evidence report",
        site_name=site.site.enterprise or site.site.name,
        periods={"建设前 baseline": baseline.label, "建成后 current": current.label},
        table=table.to_dict(),
        sections=sections,
        facts=facts,
    )
    parts_files = {
        bundle.README: bundle.readme_text(site.site.name, baseline.label, current.label),
        bundle.REPORT: report_html,
        bundle.TABLE_CSV: table_mod.to_csv(table).encode("utf-8"),
        bundle.TABLE_XLSX: table_mod.to_xlsx(table),
    }
    refs = []
    for lf in batches:
        refs.append(
            snapshot.LeafRef(
                lf.idx, lf.hash.hex(), "batch", lf.source, lf.seq, lf.first_ts, lf.last_ts, lf.count
            )
        )
    srefs = [snapshot.LeafRef(lf.idx, lf.hash.hex(), lf.kind) for lf in specials]
    payload = snapshot.build_payload(
        site=site_c,
        configuration={"baseline": spans["baseline"], "current": spans["current"]},
        baseline={**baseline.to_dict(), "imported": baseline_imported},
        current={**current.to_dict(), "imported": current_imported},
        table=table.to_dict(),
        log={"origin": cp.origin, "size": cp.size, "root": b64(cp.root)},
        batches=refs,
        special_leaves=srefs,
        files={k: canonical.sha256_hex(v) for k, v in parts_files.items()},
        created_s=created,
    )
    envelope = dsse.sign_envelope(snapshot.payload_bytes(payload), dsse.SNAPSHOT_TYPE, [signer])
    parts = bundle.BundleParts(
        envelope=envelope,
        checkpoint=cp_note.encode("utf-8"),
        leaves=tuple(leaves),
        report_html=parts_files[bundle.REPORT],
        table_csv=parts_files[bundle.TABLE_CSV],
        table_xlsx=parts_files[bundle.TABLE_XLSX],
        readme=parts_files[bundle.README],
    )
    return ExportResult(bundle.write_bundle(parts), table, payload, cp, warnings)
