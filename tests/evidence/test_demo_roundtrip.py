"""Round trip on the demo factory of config/examples/demo.yaml: history imported for the
baseline, live data for the current period, through the real writer, SQLite store and ledger;
export; verify OK."""

from __future__ import annotations

from pathlib import Path

from config.loader import load_site
from edge.store.export import export_bundle
from edge.store.ledger import Ledger, record_config
from edge.store.sqlite import SqliteStore
from metrics.evidence import configlog, note
from metrics.evidence.trust import TrustedKey, make_trust
from metrics.evidence.verify import verify_bundle
from metrics.periods import parse_range
from tests.evidence import factory

DEMO = Path(__file__).parents[2] / "config" / "examples" / "demo.yaml"


def test_demo_factory_round_trip(tmp_path: Path) -> None:
    site = load_site(DEMO)
    tz = site.site.timezone
    base = parse_range("2025-06-02T08:00..2025-06-02T11:00", tz)
    cur = parse_range("2026-06-01T08:00..2026-06-01T11:00", tz)
    store = SqliteStore(tmp_path / "s.db", synchronous="NORMAL")
    ledger = Ledger(tmp_path / "l.db", durable=False)
    record_config(ledger, configlog.config_content(site), cause="start")  # as the collector does
    history = list(factory.generate_for_site(site, 1, base.start_ns, base.end_ns))
    live = list(factory.generate_for_site(site, 2, cur.start_ns, cur.end_ns))
    factory.ingest(site, store, ledger, live, history)  # the writer closes the store
    store = SqliteStore.open_readonly(tmp_path / "s.db")
    signer = note.Signer.generate("shopfloor.local/demo-factory")
    try:
        res = export_bundle(site, ledger, signer, base, cur, store=store, baseline_imported=True)
    finally:
        ledger.close()
        store.close()
    assert res.warnings == []
    rep = verify_bundle(res.data, make_trust([TrustedKey("gateway", signer.verifier)]))
    assert rep.ok, [c.reason for c in rep.failures()] + [k.reason for k in rep.kpis if not k.ok]
    measured = {k.id for k in rep.kpis if k.status == "recomputed"}
    assert {"oee", "defect_rate", "energy_per_value", "water_reuse", "apc_rate"} <= measured
    assert rep.facts["samples"] == len(history) + len(live)
