"""runtime.gil_switch_ms: the collector runs with that thread switch interval and gives the
previous one back when it returns (also after a failed start)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.loader import load_site_text
from config.models import SiteConfig
from connectors.base import Sink
from edge.runtime import Collector


def site_for(tmp_path: Path, extra: str) -> SiteConfig:
    text = f"""
site: {{id: t, name: T}}
runtime: {{flush_interval_ms: 20{extra}}}
storage: {{kind: sqlite, path: store.db}}
devices:
  - id: m1
    name: M1
    modbus: {{host: 127.0.0.1, port: 1502, unit: 1}}
    points:
      - {{id: e, modbus: {{address: 0}}}}
"""
    return load_site_text(text).with_source_dir(tmp_path)


class Probe:
    """A connector that records the switch interval it runs under, then idles."""

    name = "probe"
    devices = ("m1",)

    def __init__(self) -> None:
        self.seen: list[float] = []
        self.started = asyncio.Event()

    async def run(self, sink: Sink) -> None:
        self.seen.append(sys.getswitchinterval())
        self.started.set()
        await asyncio.Event().wait()


async def run_once(site: SiteConfig) -> Probe:
    probe = Probe()
    col = Collector(site, connectors=[probe])
    stop = asyncio.Event()
    task = asyncio.create_task(col.run(stop))
    await col.ready.wait()
    await probe.started.wait()
    stop.set()
    await task
    return probe


@pytest.fixture
def restore_switch() -> Iterator[float]:
    before = sys.getswitchinterval()
    yield before
    sys.setswitchinterval(before)


async def test_default_is_half_a_millisecond(tmp_path: Path, restore_switch: float) -> None:
    sys.setswitchinterval(0.004)
    site = site_for(tmp_path, "")
    assert site.runtime.gil_switch_ms == 0.5
    probe = await run_once(site)
    assert probe.seen == [pytest.approx(0.0005)]
    assert sys.getswitchinterval() == pytest.approx(0.004)


async def test_setting_applies_and_is_restored(tmp_path: Path, restore_switch: float) -> None:
    sys.setswitchinterval(0.004)
    probe = await run_once(site_for(tmp_path, ", gil_switch_ms: 2"))
    assert probe.seen == [pytest.approx(0.002)]
    assert sys.getswitchinterval() == pytest.approx(0.004)


async def test_restored_after_a_failed_start(tmp_path: Path, restore_switch: float) -> None:
    sys.setswitchinterval(0.004)

    async def fail() -> None:
        assert sys.getswitchinterval() == pytest.approx(0.001)
        raise RuntimeError("simulators did not start")

    col = Collector(site_for(tmp_path, ", gil_switch_ms: 1"), connectors=[Probe()])
    with pytest.raises(RuntimeError, match="simulators"):
        await col.run(asyncio.Event(), before_connectors=fail)
    assert sys.getswitchinterval() == pytest.approx(0.004)


def test_out_of_range_is_refused(tmp_path: Path) -> None:
    from config.loader import ConfigError

    with pytest.raises(ConfigError, match="gil_switch_ms"):
        site_for(tmp_path, ", gil_switch_ms: 0")
