"""Verification time of a bundle holding about 1,000,000 samples (target < 10 s).

Builds a ledger directly (two CNC machines and a meter of the tests' small factory, one sample
of every point every ``--step`` seconds over a 7-day baseline and a 7-day current period),
exports the bundle once, then times ``metrics.evidence.verify.verify_bundle`` (zip, signatures,
every leaf hash and inclusion proof, canonical decoding of every batch, the KPI recomputation
and the plausibility checks) over several runs.

    .venv/bin/python bench/bench_verify.py [--step 8] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.base import Sample
from edge.store.base import Batch
from edge.store.export import export_bundle
from edge.store.ledger import Ledger
from metrics.evidence import note
from metrics.evidence.trust import TrustedKey, make_trust
from metrics.evidence.verify import verify_bundle
from metrics.periods import parse_range
from tests.evidence import factory

BATCH = 5000


def fill(ledger: Ledger, samples: list[Sample], source_prefix: str = "") -> None:
    by_dev: dict[str, list[Sample]] = {}
    seq: dict[str, int] = {}
    for s in samples:
        g = by_dev.setdefault(s.device, [])
        g.append(s)
        if len(g) >= BATCH:
            src = source_prefix + s.device
            seq[src] = seq.get(src, 0) + 1
            ledger.append_batches([Batch(src, seq[src], tuple(g))])
            by_dev[s.device] = []
    for dev, g in by_dev.items():
        if g:
            src = source_prefix + dev
            seq[src] = seq.get(src, 0) + 1
            ledger.append_batches([Batch(src, seq[src], tuple(g))])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--step", type=int, default=8, help="seconds between samples of a point")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    factory.STEP_S = a.step
    site = factory.site()
    tz = site.site.timezone
    base = parse_range("2026-01-05..2026-01-11", tz)
    cur = parse_range("2026-03-02..2026-03-08", tz)
    signer = note.Signer.generate("shopfloor.local/tiny")
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        led = Ledger(Path(d) / "l.db", durable=False)
        hist = list(factory.generate(1, base.start_ns, base.end_ns, 0.95))
        live = list(factory.generate(2, cur.start_ns, cur.end_ns, 0.98))
        fill(led, hist, "import:")
        fill(led, live)
        n = len(hist) + len(live)
        print(f"ledger built: {n:,} samples, {led.size} leaves in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        res = export_bundle(site, led, signer, base, cur, baseline_imported=True)
        led.close()
        print(f"export: {len(res.data) / 1e6:.1f} MB in {time.perf_counter() - t:.1f} s")
    trust = make_trust([TrustedKey("gateway", signer.verifier)])
    times = []
    for _ in range(a.runs):
        t = time.perf_counter()
        rep = verify_bundle(res.data, trust)
        times.append(time.perf_counter() - t)
        assert rep.ok, [c.reason for c in rep.failures()]
    print(
        f"verify {rep.facts['samples']:,} samples in {rep.facts['batches']} batches: "
        f"median {statistics.median(times):.2f} s (runs: {', '.join(f'{x:.2f}' for x in times)})"
    )


if __name__ == "__main__":
    main()
