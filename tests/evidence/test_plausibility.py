"""Plausibility checks of the verifier, each with data that breaks it (signed by the trusted
key: the signatures and proofs all hold, only the data is implausible)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from config.loader import load_site_text
from config.models import SiteConfig
from connectors.base import Sample
from edge.store.base import Batch
from edge.store.export import export_bundle
from edge.store.ledger import Ledger
from metrics.evidence import note
from metrics.evidence.trust import TrustedKey, make_trust
from metrics.evidence.verify import Report, verify_bundle
from metrics.periods import TimeRange, parse_range
from tests.evidence import factory

Mutator = Callable[[list[Sample]], list[Sample]]


def _run(
    tmp: Path,
    mutate: Mutator | None = None,
    *,
    site: SiteConfig | None = None,
    extra: Callable[[Ledger, TimeRange], None] | None = None,
    current: str = factory.CURRENT,
    replay: bool = False,
) -> Report:
    s = site or factory.site()
    base = parse_range(factory.BASELINE, s.site.timezone)
    cur = parse_range(current, s.site.timezone)
    hist = list(factory.generate(3, base.start_ns, base.end_ns, 0.95))
    live = list(factory.generate(4, cur.start_ns, cur.end_ns, 0.98))
    if mutate is not None:
        live = mutate(live)
    signer = note.Signer.generate("shopfloor.local/tiny")
    with Ledger(tmp / "l.db", durable=False) as led:
        led.append_special("clock", {"synchronised": True}, base.start_ns - 10**12)
        for prefix, samples in (("import:", hist), ("", live)):
            by_dev: dict[str, list[Sample]] = {}
            for x in samples:
                by_dev.setdefault(x.device, []).append(x)
            for dev, lst in by_dev.items():
                for seq, i in enumerate(range(0, len(lst), 100), start=1):
                    led.append_batches([Batch(prefix + dev, seq, tuple(lst[i : i + 100]))])
        if replay:  # an old segment sent again as a new batch
            src = "cnc1"
            first = led.leaves(kind="batch", source=src)[0]
            from metrics.evidence import canonical

            dec = canonical.decode_samples(led.batch_data(first.idx))
            again = [
                Sample(dec.series[k][0], dec.series[k][1], int(t), float(v))
                for k, t, v in zip(dec.index, dec.ts, dec.values, strict=True)
            ]
            led.append_batches([Batch(src, led.last_seq(src) + 1, tuple(again))])
        if extra is not None:
            extra(led, cur)
        res = export_bundle(s, led, signer, base, cur, baseline_imported=True)
    return verify_bundle(res.data, make_trust([TrustedKey("gateway", signer.verifier)]))


def _failed(rep: Report, name: str) -> list[str]:
    return [c.reason for c in rep.failures() if c.name == name]


def test_clean_data_passes(tmp_path: Path) -> None:
    rep = _run(tmp_path)
    assert rep.ok, [c.reason for c in rep.failures()]


def test_counter_falling_without_reset_fails(tmp_path: Path) -> None:
    def drop(samples: list[Sample]) -> list[Sample]:
        goods = [i for i, x in enumerate(samples) if x.device == "cnc1" and x.point == "good"]
        out = list(samples)
        for i in goods[len(goods) // 2 :]:
            x = out[i]
            out[i] = Sample(x.device, x.point, x.ts, x.value - 50)
        return out

    reasons = _failed(_run(tmp_path, drop), "plausibility: counters")
    assert reasons
    assert "cnc1/good fell from" in reasons[0]


def test_counter_reset_to_zero_is_accepted(tmp_path: Path) -> None:
    def reset(samples: list[Sample]) -> list[Sample]:
        goods = [i for i, x in enumerate(samples) if x.device == "cnc1" and x.point == "good"]
        cut = goods[len(goods) // 2]
        off = samples[cut].value
        out = list(samples)
        for i in goods[len(goods) // 2 :]:
            x = out[i]
            out[i] = Sample(x.device, x.point, x.ts, x.value - off)
        return out

    rep = _run(tmp_path, reset)
    assert not _failed(rep, "plausibility: counters")


def test_energy_above_rated_power_fails(tmp_path: Path) -> None:
    def burn(samples: list[Sample]) -> list[Sample]:
        out = []
        k = 0
        for x in samples:
            if x.device == "meter1":
                k += 1
                x = Sample(x.device, x.point, x.ts, x.value + k * 500.0)
            out.append(x)
        return out

    reasons = _failed(_run(tmp_path, burn), "plausibility: energy")
    assert reasons
    assert "exceeds rated" in reasons[0]


def test_replayed_segment_fails(tmp_path: Path) -> None:
    rep = _run(tmp_path, replay=True)
    reasons = _failed(rep, "plausibility: duplicates")
    assert any("repeated across batches" in r or "replays" in r for r in reasons)


def test_unsynchronised_clock_in_period_fails(tmp_path: Path) -> None:
    def unsync(led: Ledger, cur: TimeRange) -> None:
        led.append_special("clock", {"synchronised": False}, cur.start_ns + 3600 * 10**9)

    reasons = _failed(_run(tmp_path, extra=unsync), "plausibility: clock")
    assert reasons
    assert "not synchronised" in reasons[0]


def test_samples_after_the_checkpoint_fail(tmp_path: Path) -> None:
    tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    rep = _run(tmp_path, current=f"{tomorrow}..{tomorrow}")
    reasons = _failed(rep, "plausibility: clock")
    assert any("after the checkpoint was signed" in r for r in reasons)


def test_effectiveness_above_one_fails(tmp_path: Path) -> None:
    yaml = factory.SITE_YAML.replace("ideal_cycle_s: 60", "ideal_cycle_s: 600")
    site = load_site_text(yaml, "tiny.yaml")
    reasons = _failed(_run(tmp_path, site=site), "plausibility: OEE components")
    assert reasons
    assert any("effectiveness" in r and "ideal_cycle_s" in r for r in reasons)


@pytest.mark.parametrize("bits", [16])
def test_counter_rollover_is_accepted(tmp_path: Path, bits: int) -> None:
    yaml = factory.SITE_YAML.replace(
        '{id: good, role: count_good, datatype: uint32, opcua: {node_id: "ns=2;s=c1.good"}}',
        "{id: good, role: count_good, datatype: uint16, counter_bits: 16, "
        'opcua: {node_id: "ns=2;s=c1.good"}}',
    )
    site = load_site_text(yaml, "tiny.yaml")
    assert site.device("cnc1").point("good").counter_bits == bits

    def roll(samples: list[Sample]) -> list[Sample]:
        out = []
        for x in samples:
            if x.device == "cnc1" and x.point == "good":
                x = Sample(x.device, x.point, x.ts, (x.value + 64_000) % 65_536)
            out.append(x)
        return out

    assert not _failed(_run(tmp_path, roll, site=site), "plausibility: counters")


def test_live_data_between_periods_stays_out_of_the_bundle(tmp_path: Path) -> None:
    """Both periods recorded live by the same sources: the batches between them are not in
    the bundle, the sequence jump is accepted because it touches no period, and removing an
    in-period batch (re-signed by the trusted key) is still caught."""
    from tests.evidence.test_bundle import (
        _leaves,
        _put_leaves,
        files_of,
        payload_of,
        resign,
        rezip,
    )

    s = factory.site()
    base = parse_range("2026-01-05..2026-01-05", s.site.timezone)
    cur = parse_range("2026-01-08..2026-01-08", s.site.timezone)
    samples = list(factory.generate(5, base.start_ns, cur.end_ns, 0.97))
    signer = note.Signer.generate("shopfloor.local/tiny")
    with Ledger(tmp_path / "l.db", durable=False) as led:
        by_dev: dict[str, list[Sample]] = {}
        for x in samples:
            by_dev.setdefault(x.device, []).append(x)
        for dev, lst in by_dev.items():
            for seq, i in enumerate(range(0, len(lst), 100), start=1):
                led.append_batches([Batch(dev, seq, tuple(lst[i : i + 100]))])
        total = len(led.leaves(kind="batch"))
        res = export_bundle(s, led, signer, base, cur)
    trust = make_trust([TrustedKey("gateway", signer.verifier)])
    assert len(res.payload["batches"]) < total * 0.7
    rep = verify_bundle(res.data, trust)
    assert rep.ok, [c.reason for c in rep.failures()]
    cont = next(c for c in rep.checks if c.name == "sequence continuity")
    assert "jumps between periods" in cont.reason

    # an insider drops an in-period batch and re-signs: the jump touches the period
    files = files_of(res.data)
    payload = payload_of(files)
    victim = next(
        r for r in payload["batches"]
        if r["source"] == "cnc1" and cur.start_ns < int(r["first_ts"]) < cur.end_ns - 10**13
    )  # fmt: skip
    payload["batches"] = [r for r in payload["batches"] if r["index"] != victim["index"]]
    _put_leaves(files, [lf for lf in _leaves(files) if lf.index != victim["index"]])
    resign(files, payload, signer)
    rep = verify_bundle(rezip(files), trust)
    assert any("missing (removed)" in c.reason for c in rep.failures())
