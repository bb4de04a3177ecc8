"""Many gateways, one InfluxDB: site/gateway tags, reads by site, untagged data, retention.

Against one private influxd (1.x, v1 API); every store is opened from a site file the way the
collector opens it (``open_store``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.models import SiteConfig
from connectors.base import Sample
from edge.store.base import Batch
from edge.store.factory import open_store
from edge.store.influx.store import InfluxStore
from tests.influx.helpers import YEAR_2021, drained, storage, wait_for
from tests.support.influxd import Influxd, influxd_available, influxd_server
from tests.support.net import free_port

pytestmark = [
    pytest.mark.xdist_group("influxd"),
    pytest.mark.skipif(not influxd_available(), reason="influxd (Debian package influxdb) missing"),
]

T0 = YEAR_2021
END = T0 + 10**9


@pytest.fixture(scope="module")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    with influxd_server(tmp_path_factory.mktemp("influxd")) as server:
        yield server


_dbs = iter(range(1_000_000))


@pytest.fixture
def db(influxd: Influxd) -> str:
    return influxd.create_database(f"fleet{next(_dbs)}")


def site_file(folder: Path, site_id: str, url: str, db: str, **storage_kw: Any) -> SiteConfig:
    folder.mkdir(parents=True, exist_ok=True)
    st: dict[str, Any] = {
        "kind": "influxdb",
        "url": url,
        "database": db,
        "outbox_path": "state/outbox.db",
        "replay_backoff_max_s": 0.2,
        "timeout_s": 3.0,
    }
    st.update(storage_kw)
    return SiteConfig.model_validate(
        {"site": {"id": site_id, "name": site_id}, "storage": st}
    ).with_source_dir(folder)


def open_influx(site: SiteConfig) -> InfluxStore:
    store = open_store(site)
    assert isinstance(store, InfluxStore)
    return store


def samples(values: list[float], device: str = "cnc1", point: str = "kw") -> Batch:
    return Batch(device, 1, tuple(Sample(device, point, T0 + i, v) for i, v in enumerate(values)))


def test_two_gateways_with_the_same_device_ids_keep_both_series(
    influxd: Influxd, db: str, tmp_path: Path
) -> None:
    a = open_influx(site_file(tmp_path / "a", "plant-a", influxd.url, db))
    b = open_influx(site_file(tmp_path / "b", "plant-b", influxd.url, db, gateway="gw-b1"))
    try:
        # same device, point and timestamps: without the site tag the later write would win
        a.write_batches([samples([1.0, 2.0, 3.0])])
        b.write_batches([samples([10.0, 20.0, 30.0])])
        drained(a)
        drained(b)
        assert a.read("cnc1", "kw", T0, END).values.tolist() == [1.0, 2.0, 3.0]
        assert b.read("cnc1", "kw", T0, END).values.tolist() == [10.0, 20.0, 30.0]
        prior = b.read("cnc1", "kw", T0 + 2, END, prior=True)
        assert prior.values.tolist() == [20.0, 30.0]
    finally:
        a.close()
        b.close()
    rows = influxd.rows('SELECT "value", "site", "gateway" FROM "samples" ORDER BY time', db)
    assert sorted((r[1], r[2], r[3]) for r in rows) == sorted(
        [(v, "plant-a", "plant-a") for v in (1.0, 2.0, 3.0)]
        + [(v, "plant-b", "gw-b1") for v in (10.0, 20.0, 30.0)]
    )
    keys = influxd.query('SHOW SERIES FROM "samples"', db)["results"][0]["series"][0]["values"]
    assert sorted(k[0] for k in keys) == [
        "samples,device=cnc1,gateway=gw-b1,point=kw,site=plant-b",
        "samples,device=cnc1,gateway=plant-a,point=kw,site=plant-a",
    ]


def test_two_gateways_of_one_site_write_apart_and_read_together(
    influxd: Influxd, db: str, tmp_path: Path
) -> None:
    g1 = open_influx(site_file(tmp_path / "g1", "plant", influxd.url, db, gateway="hall1"))
    g2 = open_influx(site_file(tmp_path / "g2", "plant", influxd.url, db, gateway="hall2"))
    try:
        g1.write_batches([samples([1.0], device="press1")])
        g2.write_batches([samples([2.0], device="press2")])
        drained(g1)
        drained(g2)
        # reads filter by site: either gateway reads the other hall's devices
        assert g1.read("press2", "kw", T0, END).values.tolist() == [2.0]
        assert g2.read("press1", "kw", T0, END).values.tolist() == [1.0]
    finally:
        g1.close()
        g2.close()


def test_untagged_points_are_read_unless_turned_off(
    influxd: Influxd, db: str, tmp_path: Path
) -> None:
    # a point written by an older version (no site tag) and one of another site
    r = influxd.write_raw(
        db,
        f"samples,device=cnc1,point=kw value=7.0,quality=0i {T0}\n"
        f"samples,site=other,gateway=other,device=cnc1,point=kw value=9.0,quality=0i {T0 + 5}\n",
    )
    assert r.status_code == 204
    strict = site_file(tmp_path / "new", "plant", influxd.url, db, read_untagged=False)
    with open_influx(strict) as store:
        assert len(store.read("cnc1", "kw", T0, END)) == 0
        assert len(store.read("cnc1", "kw", T0 + 1, END, prior=True)) == 0
    site = site_file(tmp_path / "old", "plant", influxd.url, db)  # read_untagged: the default
    with open_influx(site) as store:
        store.write_batches([Batch("cnc1", 1, (Sample("cnc1", "kw", T0 + 3, 8.0),))])
        drained(store)
        got = store.read("cnc1", "kw", T0, END)
        assert got.ts.tolist() == [T0, T0 + 3]
        assert got.values.tolist() == [7.0, 8.0]
        assert store.read("cnc1", "kw", T0 + 1, T0 + 2, prior=True).values.tolist() == [7.0]


def test_rows_queued_untagged_by_an_older_store_are_sent_with_the_site(
    influxd: Influxd, db: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "a" / "state" / "outbox.db"
    # an untagged store (as before the site tag) queues rows while InfluxDB is unreachable
    dead = f"http://127.0.0.1:{free_port()}"
    old = InfluxStore(storage(dead, db, tmp_path), outbox_path=outbox)
    old.write_batches([samples([4.0, 5.0])])
    old.close(drain_s=0)
    with open_influx(site_file(tmp_path / "a", "plant-a", influxd.url, db)) as store:
        drained(store)
        assert store.read("cnc1", "kw", T0, END).values.tolist() == [4.0, 5.0]
    rows = influxd.rows('SELECT "value" FROM "samples" WHERE "site" = \'\'', db)
    assert rows == []


# ---- retention -------------------------------------------------------------------------------


def policies(server: Influxd, db: str) -> dict[str, list[Any]]:
    series = server.query(f'SHOW RETENTION POLICIES ON "{db}"')["results"][0]["series"]
    return {v[0]: v for v in series[0]["values"]}


def test_a_named_policy_is_created_with_the_configured_duration(
    influxd: Influxd, db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = site_file(
        tmp_path,
        "plant",
        influxd.url,
        db,
        retention_policy="shopfloor",
        retention={"duration": "520w", "shard_duration": "7d"},  # samples of 2021 fit
    )
    with caplog.at_level(logging.INFO, "shopfloor.influx"), open_influx(site) as store:
        store.write_batches([samples([1.0])])
        drained(store)
        assert store.retention_check is not None
        assert store.retention_check.outcome == "created"
        assert store.read("cnc1", "kw", T0, END).values.tolist() == [1.0]
    rp = policies(influxd, db)["shopfloor"]
    assert rp[1:3] == ["87360h0m0s", "168h0m0s"]
    assert rp[4] is False  # never made the default
    assert "created retention policy 'shopfloor'" in caplog.text
    # a second start finds it and says it matches
    with open_influx(site) as store:
        wait_for(lambda: store.retention_check is not None, what="retention check")
        assert store.retention_check is not None
        assert store.retention_check.outcome == "ok"


def test_a_mismatch_is_one_warning_line_and_writes_go_on(
    influxd: Influxd, db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = site_file(tmp_path, "plant", influxd.url, db, retention={"duration": "30d"})
    with caplog.at_level(logging.INFO, "shopfloor.influx"), open_influx(site) as store:
        store.write_batches([samples([1.0])])
        drained(store)
        store.write_batches([Batch("cnc1", 2, (Sample("cnc1", "kw", T0 + 9, 2.0),))])
        drained(store)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"influx: retention mismatch: retention policy 'autogen' of database {db!r} keeps "
        "samples INF (forever), the site file says 30d"
    ]


def test_a_strict_mismatch_holds_the_rows_until_it_is_fixed(
    influxd: Influxd, db: str, tmp_path: Path
) -> None:
    site = site_file(
        tmp_path, "plant", influxd.url, db, retention={"duration": "520w", "strict": True}
    )
    with open_influx(site) as store:
        store.write_batches([samples([1.0, 2.0])])
        wait_for(lambda: store.status().state == "retention_mismatch", what="mismatch state")
        st = store.status()
        assert st.pending_samples == 2
        assert "storage.retention.strict" in st.last_error
        assert store.sink_health().connected is False
        assert influxd.rows('SELECT "value" FROM "samples"', db) == []
        # the operator sets the policy the site file asks for: the gateway recovers by itself
        influxd.query(f'ALTER RETENTION POLICY "autogen" ON "{db}" DURATION 520w')
        drained(store)
        assert store.read("cnc1", "kw", T0, END).values.tolist() == [1.0, 2.0]


def test_without_a_retention_setting_it_is_only_read_and_logged(
    influxd: Influxd, db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.INFO, "shopfloor.influx"),
        open_influx(site_file(tmp_path, "plant", influxd.url, db)) as store,
    ):
        wait_for(lambda: store.retention_check is not None, what="retention check")
        assert store.retention_check is not None
        assert store.retention_check.outcome == "observed"
    assert "keeps samples INF (forever) (no storage.retention in the site file" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
