"""`make demo` bundles verify at any time after start: the accelerated factory clock never
passes the gateway's clock, so no sample is stamped after the checkpoints the gateway signs.

The clock tests pin the gateway's clock; the end-to-end test runs the demo (simulators of
every protocol, collector, ledger) for a few seconds at x3600 from 30 factory seconds before
now: without the ceiling its data would be hours in the gateway's future."""

from __future__ import annotations

import time
from pathlib import Path

from config.loader import load_site
from connectors.base import Sample, SampleBlock
from connectors.simulators.base import SimClock
from edge.cli.demo import DemoClock, FactoryTimeSink, packaged_demo, prepare, run_demo
from edge.store import keys
from edge.store.export import export_bundle
from edge.store.ledger import Ledger
from metrics.evidence.trust import TrustedKey, make_trust
from metrics.evidence.verify import verify_bundle
from metrics.periods import TimeRange

S = 10**9
GATEWAY_NOW = 1_780_000_000 * S  # the pinned gateway clock


def test_factory_clock_stops_at_the_gateway_clock() -> None:
    free = SimClock(1e12, start_ns=GATEWAY_NOW - 1000)
    capped = SimClock(1e12, start_ns=GATEWAY_NOW - 1000, ceiling=lambda: GATEWAY_NOW)
    time.sleep(0.001)
    assert free.now_ns() > GATEWAY_NOW  # what the demo did: the factory runs ahead
    assert capped.now_ns() == GATEWAY_NOW
    early = SimClock(1.0, start_ns=GATEWAY_NOW - 3600 * S, ceiling=lambda: GATEWAY_NOW)
    assert early.now_ns() < GATEWAY_NOW  # behind the ceiling it runs at its speed


def test_demo_clock_and_re_stamped_meters_stay_behind_the_gateway() -> None:
    clock = DemoClock(1e12, GATEWAY_NOW - 1000, gateway_ns=lambda: GATEWAY_NOW)
    sim = clock.start()
    time.sleep(0.001)
    assert sim.now_ns() == GATEWAY_NOW
    assert clock.now_ns() == GATEWAY_NOW
    got: list[Sample] = []

    class Sink:
        def put(self, s: Sample) -> None:
            got.append(s)

        def put_many(self, ss: list[Sample]) -> None:
            got.extend(ss)

        def put_block(self, block: SampleBlock) -> None:
            got.extend(block.samples())

        def link(self, device: str, connected: bool) -> None: ...

        def error(self, device: str, kind: str) -> None: ...

    sink = FactoryTimeSink(Sink(), clock)  # type: ignore[arg-type]
    sink.put(Sample("meter1", "energy", time.time_ns() + 5 * S, 1.0))  # a reading "from later"
    sink.put(Sample("meter1", "energy", time.time_ns() - 1 * S, 1.0))
    assert all(s.ts <= GATEWAY_NOW for s in got)


async def test_demo_bundle_verifies_with_a_factory_clock_that_would_run_ahead(
    tmp_path: Path,
) -> None:
    site, site_file, _ = prepare(load_site(packaged_demo()), tmp_path / "demo")
    start = time.time_ns() - 30 * S
    rc = await run_demo(
        site,
        site_file,
        seed=3,
        speed=3600.0,
        duration=6.0,
        history_days=0,
        services=False,
        start_ns=start,
    )
    assert rc == 0
    signer = keys.load_key(site.resolve(site.evidence.key_dir))
    baseline = TimeRange(start - 366 * 86400 * S, start - 365 * 86400 * S, "baseline")
    current = TimeRange(start, start + 86400 * S, "current")  # a day: all the demo ran
    with Ledger(site.resolve(site.evidence.ledger_path)) as led:
        newest = max(lf.last_ts or 0 for lf in led.leaves(kind="batch"))
        res = export_bundle(site, led, signer, baseline, current)
    assert res.checkpoint.time is not None
    assert newest <= (res.checkpoint.time + 1) * S  # nothing stamped after the signature
    rep = verify_bundle(res.data, make_trust([TrustedKey("gateway", signer.verifier)]))
    assert rep.ok, [c.reason for c in rep.integrity_failures()]
    assert rep.facts["batches"] > 0
    # the only finding a demo may have is this host's clock not being NTP-synchronised
    reasons = [c.reason for c in rep.findings()]
    assert all("not synchronised" in r for r in reasons), reasons
