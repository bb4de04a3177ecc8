"""The InfluxDB store against a real private influxd (1.x, v1 API)."""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from config.models import SiteConfig
from connectors.base import Quality, Sample
from edge.store.base import Batch, DeviceHealth
from edge.store.factory import open_store
from edge.store.influx.errors import InfluxUnavailable
from edge.store.influx.lineproto import LineProtocolError
from edge.store.influx.store import SINK_HEALTH_ID, InfluxStore
from tests.influx.helpers import WEEK_2020, YEAR_2021, batch, drained, storage, wait_for
from tests.support.influxd import Influxd, influxd_available, influxd_server
from tests.support.net import free_port

pytestmark = [
    pytest.mark.xdist_group("influxd"),
    pytest.mark.skipif(not influxd_available(), reason="influxd (Debian package influxdb) missing"),
]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    with influxd_server(tmp_path_factory.mktemp("influxd")) as server:
        yield server


@pytest.fixture
def up(influxd: Influxd) -> Iterator[Influxd]:
    """The server, running; started again after a test that stopped it."""
    influxd.start()
    yield influxd
    influxd.start()


_db_counter = iter(range(1_000_000))


@pytest.fixture
def db(up: Influxd) -> str:
    return up.create_database(f"t{next(_db_counter)}")


def count(server: Influxd, db: str, where: str = "") -> int:
    rows = server.rows(f'SELECT count("quality") FROM "samples" {where}', db)
    return int(rows[0][1]) if rows else 0


def test_round_trip_of_every_value_type_and_quality(up: Influxd, db: str, tmp_path: Path) -> None:
    t0 = YEAR_2021
    samples = [
        Sample("cnc1", "spindle_kw", t0 + 1, 12.25),
        Sample("cnc1", "spindle_kw", t0 + 2, -0.5, Quality.UNCERTAIN, "UncertainSensorCal"),
        Sample("cnc1", "spindle_kw", t0 + 3, math.nan, Quality.BAD, 'BadNoComm "x"'),
        Sample("cnc1", "spindle_kw", t0 + 4, 1.0),  # a bool true
        Sample("cnc1", "spindle_kw", t0 + 5, 0.0),  # a bool false
        Sample("cnc1", "spindle_kw", t0 + 6, float(2**53 + 1)),  # big int as float
        Sample("cnc1", "spindle_kw", t0 + 7, 1.7976931348623157e308),
        Sample("cnc1", "spindle_kw", t0 + 8, 5e-324),
        Sample("cnc1", "spindle_kw", t0 + 9, math.inf),  # not representable: NaN back
        Sample("cnc1", "spindle_kw", t0 + 10, math.nan, Quality.BAD),
        Sample("line 1,a=b", "temp=x y", t0 + 11, 3.5),  # escaped tags
    ]
    with InfluxStore(storage(up.url, db, tmp_path)) as store:
        store.write_batches([Batch("cnc1", 1, tuple(samples))])
        drained(store)
        s = store.read("cnc1", "spindle_kw", t0, t0 + 100)
        assert s.ts.tolist() == [t0 + i for i in range(1, 11)]
        want = [12.25, -0.5, math.nan, 1.0, 0.0, float(2**53), 1.7976931348623157e308, 5e-324]
        want += [math.nan, math.nan]
        assert len(s.values) == len(want)
        for got, exp in zip(s.values.tolist(), want, strict=True):
            assert (math.isnan(got) and math.isnan(exp)) or got == exp
        assert s.quality.tolist() == [0, 1, 2, 0, 0, 0, 0, 0, 0, 2]
        odd = store.read("line 1,a=b", "temp=x y", t0, t0 + 100)
        assert (odd.ts.tolist(), odd.values.tolist()) == ([t0 + 11], [3.5])
        assert store.series() == [("cnc1", "spindle_kw"), ("line 1,a=b", "temp=x y")]
        latest = {(x.device, x.point): x for x in store.latest()}
        assert math.isnan(latest[("cnc1", "spindle_kw")].value)
        assert latest[("cnc1", "spindle_kw")].ts == t0 + 10
        assert latest[("cnc1", "spindle_kw")].quality is Quality.BAD
        assert store.last_seq("cnc1") == 1
    statuses = up.rows(
        'SELECT "status" FROM "samples" WHERE "point" = \'spindle_kw\' AND status <> \'\'', db
    )
    assert [r[1] for r in statuses] == ["UncertainSensorCal", 'BadNoComm "x"']


def test_reads_stay_in_range_in_chunks_with_prior(up: Influxd, db: str, tmp_path: Path) -> None:
    cfg = storage(up.url, db, tmp_path, read_chunk_points=7)
    with InfluxStore(cfg) as store:
        store.write_batches([batch("m1", 1, 50, base=0)])  # ts 1_000_000 .. 1_000_049
        drained(store)
        t = 1_000_000
        s = store.read("m1", "p", t + 10, t + 40)
        assert s.ts.tolist() == list(range(t + 10, t + 40))
        assert s.values.tolist() == [float(1000 + i) for i in range(10, 40)]
        p = store.read("m1", "p", t + 10, t + 12, prior=True)
        assert p.ts.tolist() == [t + 9, t + 10, t + 11]
        assert store.read("m1", "p", t - 5, t, prior=True).ts.tolist() == []
        assert store.read("m1", "p", t + 14, t + 21).ts.tolist() == list(range(t + 14, t + 21))
        assert len(store.read("m1", "p", t + 60, t + 70)) == 0
        assert len(store.read("m1", "nothing", t, t + 70)) == 0
        with pytest.raises(ValueError, match="before start"):
            store.read("m1", "p", 10, 5)
        with pytest.raises(LineProtocolError, match="empty point"):
            store.read("m1", "", 0, 5)


def test_outage_during_ingest_every_sample_arrives_once(
    up: Influxd, db: str, tmp_path: Path
) -> None:
    per = 200
    with InfluxStore(storage(up.url, db, tmp_path)) as store:
        seq = 0
        for _ in range(10):
            seq += 1
            store.write_batches([batch("out", seq, per)])
            time.sleep(0.01)
        drained(store)
        up.stop()
        for _ in range(20):
            seq += 1
            store.write_batches([batch("out", seq, per)])
            time.sleep(0.01)
        wait_for(lambda: store.status().state == "unavailable", what="unavailable state")
        st = store.status()
        assert st.pending_samples > 0
        assert st.oldest_pending_age_s is not None
        assert st.oldest_pending_age_s > 0
        assert "cannot reach InfluxDB" in st.last_error
        sink = next(h for h in store.health() if h.device == SINK_HEALTH_ID)
        assert sink.connected is False
        assert sink.extra["pending_samples"] == st.pending_samples
        assert sink.errors["unavailable"] >= 1
        time.sleep(0.3)  # a few failed retries with backoff
        up.start()
        for _ in range(5):
            seq += 1
            store.write_batches([batch("out", seq, per)])
        drained(store)
        st = store.status()
        assert st.sent_samples == seq * per  # every row acknowledged exactly once
        assert st.state in ("idle", "sending")
        assert st.replay_rate_sps > 0
    assert count(up, db) == seq * per
    rows = up.rows('SELECT "value" FROM "samples"', db)
    expected_ts = sorted(
        YEAR_2021 + s * 1_000_000 + i for s in range(1, seq + 1) for i in range(per)
    )
    assert [r[0] for r in rows] == expected_ts


def test_sigkilled_collector_loses_no_acknowledged_sample(
    up: Influxd, db: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "kill-outbox.db"
    up.stop()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.influx.ingest_child", up.url, db, str(outbox), "50"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked: list[int] = []
    try:
        assert child.stdout is not None
        while len(acked) < 40:
            line = child.stdout.readline()
            if not line:
                raise AssertionError(f"child ended: {child.stderr.read() if child.stderr else ''}")
            acked.append(int(line.split()[1]))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        for f in (child.stdout, child.stderr):
            if f:
                f.close()
    up.start()
    with InfluxStore(storage(up.url, db, tmp_path, outbox_path=outbox)) as store:
        assert store.status().pending_samples >= len(acked) * 50
        assert store.last_seq("kill") >= acked[-1]
        drained(store)
    written = count(up, db)
    assert written >= len(acked) * 50
    for seq in (acked[0], acked[len(acked) // 2], acked[-1]):
        lo = YEAR_2021 + seq * 1_000_000
        assert count(up, db, f"WHERE time >= {lo} AND time < {lo + 50}") == 50


def test_rejected_batch_is_quarantined_and_the_queue_moves_on(
    up: Influxd, db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a string in "value" in the 2020 shard: float values there now conflict
    r = up.write_raw(db, f'samples,device=x,point=y value="text",quality=0i {WEEK_2020}')
    assert r.status_code == 204
    caplog.set_level(logging.ERROR, logger="shopfloor.influx")
    with InfluxStore(storage(up.url, db, tmp_path)) as store:
        store.write_batches([batch("q", 1, 20, base=WEEK_2020), batch("q", 2, 20)])
        drained(store)
        store.write_batches([batch("q", 3, 20)])
        drained(store)
        quarantined = store.quarantined()
        assert [(x.source, x.seq, x.n, x.status) for x in quarantined] == [("q", 1, 20, 400)]
        assert "field type conflict" in quarantined[0].body
        st = store.status()
        assert (st.quarantined_batches, st.quarantined_samples) == (1, 20)
        assert st.errors["rejected"] == 1
        assert len(store.read("q", "p", YEAR_2021, YEAR_2021 + 10**9)) == 40
        sink = next(h for h in store.health() if h.device == SINK_HEALTH_ID)
        assert sink.extra["quarantined_batches"] == 1
    assert any("quarantined batch q#1" in m and "field type conflict" in m for m in caplog.messages)


def test_missing_database_keeps_rows_and_says_so(up: Influxd, tmp_path: Path) -> None:
    name = f"later{next(_db_counter)}"
    with InfluxStore(storage(up.url, name, tmp_path)) as store:
        store.write_batches([batch("nf", 1, 10)])
        wait_for(lambda: store.status().state == "not_found", what="not_found state")
        st = store.status()
        assert "database not found" in st.last_error
        assert st.pending_samples == 10
        assert st.quarantined_batches == 0
        up.create_database(name)
        drained(store)
    assert count(up, name) == 10


def test_drop_policy_is_counted_and_reported(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: InfluxDB is away
    cfg = storage(dead, "nowhere", tmp_path, outbox_max_samples=1000)
    with InfluxStore(cfg) as store:
        store.write_batches([batch("d", i, 300) for i in (1, 2, 3)])
        store.write_batches([batch("d", 4, 300)])
        st = store.status()
        assert (st.pending_samples, st.pending_batches) == (900, 3)
        assert (st.dropped_samples, st.dropped_batches) == (300, 1)
        sink = next(h for h in store.health() if h.device == SINK_HEALTH_ID)
        assert sink.drops == 300
        assert sink.extra["outbox_drop"] == "drop_oldest"


def test_read_while_influxdb_is_away_is_a_clear_error(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with (
        InfluxStore(storage(dead, "x", tmp_path)) as store,
        pytest.raises(InfluxUnavailable, match=r"cannot reach InfluxDB at http://127\.0\.0\.1"),
    ):
        store.read("d", "p", 0, 10)


def test_numpy_numbers_from_a_connector(up: Influxd, db: str, tmp_path: Path) -> None:
    t = np.int64(YEAR_2021)
    samples = (
        Sample("np", "p", t, np.float64(1.25)),  # type: ignore[arg-type]
        Sample("np", "p", t + 1, np.float32(2.5)),  # type: ignore[arg-type]
    )
    with InfluxStore(storage(up.url, db, tmp_path)) as store:
        store.write_batches([Batch("np", 1, samples)])
        drained(store)
        assert store.read("np", "p", YEAR_2021, YEAR_2021 + 10).values.tolist() == [1.25, 2.5]
        assert store.latest("np")[0].ts == YEAR_2021 + 1


def test_bad_batches_are_refused_whole(up: Influxd, db: str, tmp_path: Path) -> None:
    with InfluxStore(storage(up.url, db, tmp_path)) as store:
        good = batch("b", 1, 5)
        bad = Batch("b", 2, (Sample("b", "bad\\name", YEAR_2021, 1.0),))
        with pytest.raises(LineProtocolError, match="backslashes"):
            store.write_batches([good, bad])
        with pytest.raises(LineProtocolError, match="bad sequence"):
            store.write_batches([Batch("b", 0, good.samples)])
        assert store.status().pending_samples == 0
        assert store.last_seq("b") == 0
        store.write_batches([good])  # the caller still has it and can write it
        drained(store)
    assert count(up, db) == 5


def test_second_process_on_the_outbox_only_adds_to_it(up: Influxd, db: str, tmp_path: Path) -> None:
    cfg = storage(up.url, db, tmp_path)
    with InfluxStore(cfg) as collector, InfluxStore(cfg) as importer:
        assert importer.status().state == "passive"
        importer.write_batches([batch("import:x", 1, 30)])
        drained(collector)
        assert importer.status().pending_samples == 0
        assert collector.status().sent_samples == 30
        assert importer.last_seq("import:x") == 1
    assert count(up, db) == 30


def test_health_records_and_close(up: Influxd, db: str, tmp_path: Path) -> None:
    store = InfluxStore(storage(up.url, db, tmp_path))
    store.write_health([DeviceHealth("cnc1", connected=True, samples=7, errors={"timeout": 1})])
    recs = {h.device: h for h in store.health()}
    assert recs["cnc1"].samples == 7
    assert recs["cnc1"].errors == {"timeout": 1}
    assert recs[SINK_HEALTH_ID].connected is True
    store.close()
    store.close()  # twice is fine
    with pytest.raises(Exception, match="closed"):
        store.write_batches([batch("c", 1, 1)])


def test_local_cache_and_factory(up: Influxd, db: str, tmp_path: Path) -> None:
    site = SiteConfig.model_validate(
        {
            "site": {"id": "t", "name": "t"},
            "storage": {
                "kind": "influxdb",
                "url": up.url,
                "database": db,
                "outbox_path": "state/outbox.db",
                "local_cache": "state/cache.db",
                "replay_backoff_max_s": 0.2,
            },
        }
    ).with_source_dir(tmp_path)
    store = open_store(site)
    try:
        assert isinstance(store, InfluxStore)
        store.write_batches([batch("lc", 1, 10)])
        store.write_health([DeviceHealth("lc", connected=True)])
        drained(store)
        assert len(store.read("lc", "p", YEAR_2021, YEAR_2021 + 10**9)) == 10
    finally:
        store.close()
    assert (tmp_path / "state" / "outbox.db").exists()
    site = site.model_copy(
        update={"storage": site.storage.model_copy(update={"reads": "local_cache"})}
    ).with_source_dir(tmp_path)
    up.stop()  # InfluxDB away: reads come from the local copy
    with open_store(site) as store:
        assert isinstance(store, InfluxStore)
        store.write_batches([batch("lc", 2, 5)])  # pending in the outbox, readable in the copy
        assert len(store.read("lc", "p", YEAR_2021, YEAR_2021 + 10**9)) == 15
        assert store.status().pending_samples == 5
    up.start()
    from edge.store.sqlite import SqliteStore

    cache = SqliteStore.open_readonly(tmp_path / "state" / "cache.db")
    try:
        assert len(cache.read("lc", "p", YEAR_2021, YEAR_2021 + 10**9)) == 15
        assert {h.device for h in cache.health()} >= {"lc", SINK_HEALTH_ID}
    finally:
        cache.close()
