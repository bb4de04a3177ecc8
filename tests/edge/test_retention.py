"""The storage lifecycle: raw samples leave the store only once the ledger holds them; the KPI
table on old periods is unchanged (read back from the ledger), minute aggregates stay."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from config.loader import load_site
from connectors.base import Quality, Sample
from connectors.simulators.history import generate_history
from edge.store.archive_reader import ArchiveReader
from edge.store.base import Batch
from edge.store.ledger import Ledger
from edge.store.retention import DAY_NS, MINUTE_NS, minute_aggregates, retain
from edge.store.sqlite import SqliteStore
from metrics.engine import compute_table
from metrics.periods import parse_range

DEMO = Path(__file__).resolve().parents[2] / "config" / "examples" / "demo.yaml"
BATCH_NS = 10 * MINUTE_NS


def _batches(samples: list[Sample], seqs: dict[str, int]) -> list[Batch]:
    """Samples cut into per-device batches of 10 minutes (in time order)."""
    groups: dict[tuple[str, int], list[Sample]] = {}
    for s in sorted(samples, key=lambda s: s.ts):
        groups.setdefault((s.device, s.ts // BATCH_NS), []).append(s)
    out = []
    for (dev, _), group in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        seqs[dev] = seqs.get(dev, 0) + 1
        out.append(Batch(dev, seqs[dev], tuple(group)))
    return out


def _filled(tmp_path: Path) -> tuple[SqliteStore, Ledger, object, object, object]:
    site = load_site(DEMO)
    tz = site.site.timezone
    baseline = parse_range("2026-02-23T08:00..2026-02-23T16:00", tz)
    live = parse_range("2026-03-03T09:00..2026-03-03T10:00", tz)
    store = SqliteStore(tmp_path / "s.db")
    ledger = Ledger(tmp_path / "l.db")
    seqs: dict[str, int] = {}
    for period, profile in ((baseline, "baseline"), (live, "current")):
        got = list(generate_history(site, 7, period.start_ns, period.end_ns, profile))  # type: ignore[arg-type]
        batches = _batches(got, seqs)
        store.write_batches(batches)
        ledger.append_batches(batches, now_ns=period.end_ns)
    return store, ledger, site, baseline, live


def test_kpi_table_identical_after_raw_samples_leave(tmp_path: Path) -> None:
    store, ledger, site, baseline, live = _filled(tmp_path)
    reader = ArchiveReader(store, ledger)
    before = compute_table(reader, site, baseline, live).to_dict()  # type: ignore[arg-type]
    store.compact(live.end_ns + 1, min_rows=2)  # merged chunks no longer name their batch
    now = live.start_ns + 2 * DAY_NS  # the baseline is 8 days old, the live hour 2 days
    res = retain(store, ledger, 3.0, now_ns=now)
    assert res.blocked_by is None
    assert res.horizon == now - 3 * DAY_NS
    assert res.samples_removed > 0
    assert store.count_before(res.horizon) == (0, 0)
    assert len(store.read("cnc1", "state", baseline.start_ns, baseline.end_ns)) == 0
    after = compute_table(reader, site, baseline, live).to_dict()  # type: ignore[arg-type]
    assert after == before
    assert store.retention_totals()["retention_samples_removed"] == res.samples_removed


def test_prior_crosses_the_horizon(tmp_path: Path) -> None:
    store, ledger, _site, baseline, live = _filled(tmp_path)
    reader = ArchiveReader(store, ledger)
    mid = baseline.start_ns + 3 * 3600 * 10**9
    want_old = reader.read("cnc1", "state", mid, mid + 600 * 10**9, prior=True)
    want_live = reader.read("cnc1", "state", live.start_ns, live.end_ns, prior=True)
    want_span = reader.read("cnc1", "state", mid, live.end_ns, prior=True)
    retain(store, ledger, 3.0, now_ns=live.start_ns + 2 * DAY_NS)
    for want, args in (
        (want_old, (mid, mid + 600 * 10**9)),
        (want_live, (live.start_ns, live.end_ns)),
        (want_span, (mid, live.end_ns)),
    ):
        got = reader.read("cnc1", "state", *args, prior=True)
        assert got.ts.tolist() == want.ts.tolist()
        assert len(got) > 0
        assert np.array_equal(got.values, want.values, equal_nan=True)
        assert got.quality.tolist() == want.quality.tolist()


def test_never_deletes_without_ledger_or_retention_time(tmp_path: Path) -> None:
    store, ledger, _site, _b, live = _filled(tmp_path)
    far = live.end_ns + 1000 * DAY_NS
    total = store.count_before(far)
    assert retain(store, None, 1.0, now_ns=far).samples_removed == 0
    assert retain(store, ledger, None, now_ns=far).samples_removed == 0
    dry = retain(store, ledger, 1.0, now_ns=far, dry_run=True)
    assert (dry.chunks_removed, dry.samples_removed) == total
    assert store.count_before(far) == total
    assert store.raw_horizon() == 0


def test_unlogged_batch_holds_back_removal(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    ledger = Ledger(tmp_path / "l.db")
    t0 = 1_700_000_000 * 10**9
    mk = lambda seq, t: Batch("m", seq, (Sample("m", "p", t, float(seq), Quality.GOOD, ""),))  # noqa: E731
    logged = [mk(1, t0), mk(2, t0 + DAY_NS)]
    store.write_batches(logged)
    ledger.append_batches(logged, now_ns=t0 + DAY_NS)
    store.write_batches([mk(3, t0 + 2 * DAY_NS), mk(4, t0 + 3 * DAY_NS)])  # not in the ledger
    ledger.append_batches([mk(4, t0 + 3 * DAY_NS)], now_ns=t0 + 3 * DAY_NS)  # seq 3 missing
    res = retain(store, ledger, 1.0, now_ns=t0 + 10 * DAY_NS)
    assert res.blocked_by == ("m", 3)
    assert res.horizon == t0 + 2 * DAY_NS
    assert res.samples_removed == 2
    assert store.read("m", "p", 0, t0 + 9 * DAY_NS).values.tolist() == [3.0, 4.0]
    assert ArchiveReader(store, ledger).read("m", "p", 0, t0 + 9 * DAY_NS).values.tolist() == [
        1.0,
        2.0,
        3.0,
        4.0,
    ]


def test_minute_aggregates_hand_worked(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    ledger = Ledger(tmp_path / "l.db")
    t0 = 1_700_000_040 * 10**9 // MINUTE_NS * MINUTE_NS
    s = 10**9
    rows = [
        (t0 + 1 * s, 5.0, Quality.GOOD),
        (t0 + 20 * s, 2.0, Quality.UNCERTAIN),
        (t0 + 30 * s, 99.0, Quality.BAD),  # counted, left out of the statistics
        (t0 + 59 * s, 4.0, Quality.GOOD),
        (t0 + 61 * s, float("nan"), Quality.GOOD),
    ]
    b1 = Batch("m", 1, tuple(Sample("m", "p", t, v, q, "") for t, v, q in rows[:3]))
    b2 = Batch("m", 2, tuple(Sample("m", "p", t, v, q, "") for t, v, q in rows[3:]))
    store.write_batches([b1, b2])
    ledger.append_batches([b1, b2], now_ns=t0)
    # two passes, one batch each: the second merges into the first pass's minute
    assert retain(store, ledger, 1.0, now_ns=t0 + 31 * s + DAY_NS).samples_removed == 3
    retain(store, ledger, 1.0, now_ns=t0 + 10 * MINUTE_NS + DAY_NS)
    got = store.minutes("m", "p", t0, t0 + 2 * MINUTE_NS)
    assert got == [
        (t0, 4, 3, 2.0, 5.0, 11.0, t0 + 59 * s, 4.0),
        (t0 + MINUTE_NS, 1, 0, None, None, 0.0, None, None),
    ]
    assert minute_aggregates([]) == []


def test_history_buckets_from_minute_aggregates_equal_raw(tmp_path: Path) -> None:
    from gateway.downsample import add_minutes, downsample

    store, ledger, _site, baseline, live = _filled(tmp_path)
    start, end = baseline.start_ns, baseline.end_ns
    series = store.read("cnc1", "spindle_kw", start, end)
    assert len(series) > 100
    want = downsample(series, start, end, 40)  # 12-minute buckets: whole minutes
    retain(store, ledger, 3.0, now_ns=live.start_ns + 2 * DAY_NS)
    assert store.raw_horizon() > end
    left = store.read("cnc1", "spindle_kw", start, end)
    assert len(left) == 0
    got = add_minutes(downsample(left, start, end, 40), store.minutes(*_key, start, end), start)
    assert got.count.tolist() == want.count.tolist()
    assert got.bad.tolist() == want.bad.tolist()
    for a, b in ((got.min, want.min), (got.max, want.max), (got.last, want.last)):
        assert np.array_equal(a, b, equal_nan=True)
    assert np.allclose(got.mean, want.mean, equal_nan=True, rtol=1e-12)


_key = ("cnc1", "spindle_kw")


def test_imported_batches_leave_once_logged_with_their_import_leaf(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    ledger = Ledger(tmp_path / "l.db")
    t0 = 1_700_000_000 * 10**9
    imported = [
        Batch("import:m", k, (Sample("m", "p", t0 + k * MINUTE_NS, float(k), Quality.GOOD, ""),))
        for k in (1, 2)
    ]
    store.write_batches(imported)
    res = retain(store, ledger, 1.0, now_ns=t0 + 9 * DAY_NS)
    assert res.blocked_by == ("import:m", 1)  # not logged yet: nothing leaves
    assert res.samples_removed == 0
    ledger.append_import(imported, {"name": "old.csv", "sha256": "0" * 64}, now_ns=t0)
    res = retain(store, ledger, 1.0, now_ns=t0 + 9 * DAY_NS)
    assert res.blocked_by is None
    assert res.samples_removed == 2
    reader = ArchiveReader(store, ledger)
    assert reader.read("m", "p", 0, t0 + DAY_NS).values.tolist() == [1.0, 2.0]
    assert reader.batch_records("import:m")  # provenance still sees the import


def test_a_ledger_leaf_that_differs_from_the_stored_batch_holds_back(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    ledger = Ledger(tmp_path / "l.db")
    t0 = 1_700_000_000 * 10**9
    one = Sample("m", "p", t0, 1.0, Quality.GOOD, "")
    two = Sample("m", "p", t0 + MINUTE_NS, 2.0, Quality.GOOD, "")
    store.write_batches([Batch("m", 1, (one, two))])
    ledger.append_batches([Batch("m", 1, (one,))], now_ns=t0)  # same seq, one sample less
    res = retain(store, ledger, 1.0, now_ns=t0 + 9 * DAY_NS)
    assert res.blocked_by == ("m", 1)
    assert res.samples_removed == 0
    assert len(store.read("m", "p", 0, t0 + DAY_NS)) == 2
