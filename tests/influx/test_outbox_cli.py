"""``shopfloor outbox list|show|resend`` next to a running store, against a private influxd."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.loader import load_site
from edge.cli.main import main
from edge.store.factory import open_store
from edge.store.influx.store import InfluxStore
from tests.influx.helpers import WEEK_2020, batch, drained, wait_for
from tests.support.influxd import Influxd, influxd_available, influxd_server

pytestmark = [
    pytest.mark.xdist_group("influxd"),
    pytest.mark.skipif(not influxd_available(), reason="influxd (Debian package influxdb) missing"),
]


@pytest.fixture(scope="module")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    with influxd_server(tmp_path_factory.mktemp("influxd")) as server:
        yield server


def write_site(folder: Path, url: str, db: str) -> Path:
    site = {
        "site": {"id": "plant", "name": "plant"},
        "storage": {
            "kind": "influxdb",
            "url": url,
            "database": db,
            "outbox_path": "state/outbox.db",
            "replay_backoff_max_s": 0.2,
        },
    }
    path = folder / "site.yaml"
    path.write_text(json.dumps(site), encoding="utf-8")
    return path


def drop_shards(server: Influxd, db: str) -> None:
    """Drop the database's shards (and with them the conflicting field type)."""
    res = server.query("SHOW SHARDS")["results"][0]["series"]
    for s in res:
        if s["name"] != db:
            continue
        cols = s["columns"]
        for v in s["values"]:
            row = dict(zip(cols, v, strict=True))
            server.query(f"DROP SHARD {row['id']}")


def test_quarantined_batches_are_listed_shown_and_resent(
    influxd: Influxd, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = influxd.create_database("cli")
    site_path = write_site(tmp_path, influxd.url, db)
    # a string "value" in the 2020 shard: our float values there are refused for good
    r = influxd.write_raw(db, f'samples,device=x,point=y value="text",quality=0i {WEEK_2020}')
    assert r.status_code == 204
    store = open_store(load_site(site_path))
    assert isinstance(store, InfluxStore)
    try:
        store.write_batches([batch("q", 1, 20, base=WEEK_2020), batch("q", 2, 5)])
        drained(store)
        assert [q.seq for q in store.quarantined()] == [1]
        capsys.readouterr()

        assert main(["outbox", "-c", str(site_path), "list"]) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[0] == "pending: 0 samples in 0 batches; quarantined: 1 batches"
        assert "#1  q#1  20 samples  2020-01-01T00:00:00.001000Z" in out
        assert "HTTP 400" in out
        assert "field type conflict" in out

        assert main(["outbox", "-c", str(site_path), "list", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [(q["id"], q["samples"], q["status"]) for q in listed["quarantined"]] == [
            (1, 20, 400)
        ]

        assert main(["outbox", "-c", str(site_path), "show", "1"]) == 0
        shown = capsys.readouterr().out.splitlines()
        assert len(shown) == 20
        assert shown[0].startswith("samples,site=plant,gateway=plant,device=q,point=p value=")

        # bad requests: one line, exit 2, nothing moved
        assert main(["outbox", "-c", str(site_path), "resend"]) == 2
        assert main(["outbox", "-c", str(site_path), "resend", "--id", "7"]) == 2
        assert main(["outbox", "-c", str(site_path), "show", "7"]) == 2
        err = capsys.readouterr().err.splitlines()
        assert err == [
            "error: name the batches (--id N, repeatable) or give --all",
            "error: no quarantined batch #7 (nothing moved)",
            "error: no quarantined batch #7 (see: shopfloor outbox list)",
        ]
        assert len(store.quarantined()) == 1

        # fix the cause, then re-send: the running store sends them
        drop_shards(influxd, db)
        assert main(["outbox", "-c", str(site_path), "resend", "--id", "1"]) == 0
        assert capsys.readouterr().out.startswith("1 batch(es), 20 samples, moved back")
        wait_for(lambda: store.status().sent_samples >= 25, what="re-sent batch")
        assert store.quarantined() == []
        got = store.read("q", "p", WEEK_2020, WEEK_2020 + 10**9)
        assert len(got) == 20
    finally:
        store.close()


def test_outbox_cli_on_a_sqlite_site_or_without_an_outbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sqlite_site = tmp_path / "s.yaml"
    sqlite_site.write_text(json.dumps({"site": {"id": "s", "name": "s"}}), encoding="utf-8")
    assert main(["outbox", "-c", str(sqlite_site), "list"]) == 2
    influx_site = write_site(tmp_path, "http://127.0.0.1:9", "db")
    assert main(["outbox", "-c", str(influx_site), "list"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"error: {sqlite_site}: storage kind is 'sqlite'; only influxdb has an outbox"
    assert err[1] == f"error: no outbox at {tmp_path / 'state' / 'outbox.db'}: " + (
        "the collector has not written to InfluxDB yet"
    )
    assert not (tmp_path / "state" / "outbox.db").exists()
