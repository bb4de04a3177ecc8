"""The v2 API flavour (influxdb-client).

Against a real InfluxDB 2.x/3.x when ``INFLUX_V2_URL`` and ``INFLUX_V2_TOKEN`` are set (org from
``INFLUX_V2_ORG``, default ``shopfloor``; bucket from ``INFLUX_V2_BUCKET``, default
``shopfloor-test``; reads with ``INFLUX_V2_READS`` = flux | influxql, default flux). Without them
those tests are skipped with that reason. The tests that do not need a server check how our code
meets influxdb-client: a tiny loopback HTTP server answers ``/api/v2/write`` like InfluxDB 2.x.
"""

from __future__ import annotations

import gzip
import http.server
import json
import math
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from config.storage import InfluxStorage
from connectors.base import Quality, Sample
from edge.store.base import Batch
from edge.store.influx.errors import InfluxNotFound
from edge.store.influx.store import InfluxStore
from tests.influx.helpers import YEAR_2021, batch, drained, wait_for

V2_URL = os.environ.get("INFLUX_V2_URL")
V2_TOKEN = os.environ.get("INFLUX_V2_TOKEN")
needs_v2 = pytest.mark.skipif(
    not (V2_URL and V2_TOKEN),
    reason="set INFLUX_V2_URL and INFLUX_V2_TOKEN (and INFLUX_V2_ORG/INFLUX_V2_BUCKET) "
    "to run the v2 flavour against a real InfluxDB 2.x/3.x",
)


# ---- a loopback stand-in for /api/v2/write -------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[list[tuple[int, str]]] = []
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
        self.received.append(
            {
                "path": self.path,
                "auth": self.headers.get("Authorization"),
                "gzip": self.headers.get("Content-Encoding") == "gzip",
                "body": body.decode(),
            }
        )
        status, text = self.answers.pop(0) if self.answers else (204, "")
        self.send_response(status)
        csv = self.path.startswith("/api/v2/query") and status == 200
        self.send_header("Content-Type", "text/csv" if csv else "application/json")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text.encode())

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def fake_v2() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("H", (_Handler,), {"answers": [], "received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="fake-v2", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def v2cfg(url: str, tmp: Path, **kw: Any) -> InfluxStorage:
    base: dict[str, Any] = {
        "kind": "influxdb",
        "api": "v2",
        "url": url,
        "org": "acme",
        "bucket": "plant",
        "token": {"env": "SHOPFLOOR_TEST_V2_TOKEN"},
        "outbox_path": tmp / "outbox.db",
        "replay_backoff_max_s": 0.2,
        "timeout_s": 3.0,
    }
    base.update(kw)
    return InfluxStorage.model_validate(base)


def test_v2_write_path_through_influxdb_client(
    fake_v2: tuple[str, type[_Handler]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = fake_v2
    monkeypatch.setenv("SHOPFLOOR_TEST_V2_TOKEN", "tok-123")
    handler.answers.extend(
        [
            (503, '{"code":"unavailable","message":"busy"}'),
            (400, '{"code":"invalid","message":"partial write: field type conflict"}'),
            (400, '{"code":"invalid","message":"field type conflict"}'),
        ]
    )
    with InfluxStore(v2cfg(url, tmp_path)) as store:
        store.write_batches([batch("v2", 1, 3), batch("v2", 2, 2)])
        drained(store)
        st = store.status()
        assert st.errors.get("unavailable") == 1
        assert st.quarantined_batches == 1
        assert store.quarantined()[0].seq == 1
        assert "field type conflict" in store.quarantined()[0].body
        assert st.sent_samples == 2
    first = handler.received[0]
    assert first["path"].startswith("/api/v2/write?")
    assert "bucket=plant" in first["path"]
    assert "org=acme" in first["path"]
    assert "precision=ns" in first["path"]
    assert first["auth"] == "Token tok-123"
    assert first["gzip"] is True
    assert first["body"].count("\n") >= 4
    assert "samples,device=v2,point=p value=" in first["body"]
    # 503, the group (400), row 1 alone (400: quarantined), row 2 alone (204)
    assert len(handler.received) == 4


def test_v2_auth_failure_is_reported(
    fake_v2: tuple[str, type[_Handler]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = fake_v2
    monkeypatch.setenv("SHOPFLOOR_TEST_V2_TOKEN", "bad")
    handler.answers.extend([(401, '{"code":"unauthorized","message":"unauthorized access"}')] * 50)
    with InfluxStore(v2cfg(url, tmp_path)) as store:
        store.write_batches([batch("v2", 1, 3)])
        wait_for(lambda: store.status().state == "auth_error", what="auth_error")
        st = store.status()
        assert "refused the credentials (401)" in st.last_error
        assert "unauthorized access" in st.last_error
        assert st.pending_samples == 3
        assert st.quarantined_batches == 0
        handler.answers.clear()


def test_v2_flux_reads_in_chunks(
    fake_v2: tuple[str, type[_Handler]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = fake_v2
    monkeypatch.setenv("SHOPFLOOR_TEST_V2_TOKEN", "tok")
    head = ",result,table,_time,quality,value\r\n"
    handler.answers.extend(
        [
            (200, head + ",_result,0,1970-01-01T00:00:00.000000004Z,2,\r\n"),  # prior
            (
                200,
                head
                + ",_result,0,1970-01-01T00:00:00.00000001Z,0,1.5\r\n"
                + ",_result,0,1970-01-01T00:00:00.000000011Z,0,2.5\r\n",
            ),
            (200, head + ",_result,0,1970-01-01T00:00:00.000000012Z,1,3.5\r\n"),
        ]
    )
    with InfluxStore(v2cfg(url, tmp_path, read_chunk_points=2)) as store:
        s = store.read("cnc1", "kw", 10, 20, prior=True)
    assert s.ts.tolist() == [4, 10, 11, 12]
    assert s.quality.tolist() == [2, 0, 0, 1]
    assert s.values.tolist()[1:] == [1.5, 2.5, 3.5]
    queries = [json.loads(r["body"])["query"] for r in handler.received]
    assert len(queries) == 3
    assert "range(start: time(v: 0), stop: time(v: 10))" in queries[0]
    assert "range(start: time(v: 10), stop: time(v: 20))" in queries[1]
    assert "range(start: time(v: 12), stop: time(v: 20))" in queries[2]  # after the last ts
    assert all('r.device == "cnc1"' in q and "limit(n:" in q for q in queries)


def test_v2_flux_error_is_an_influx_error(
    fake_v2: tuple[str, type[_Handler]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = fake_v2
    monkeypatch.setenv("SHOPFLOOR_TEST_V2_TOKEN", "tok")
    handler.answers.append((404, '{"code":"not found","message":"bucket \\"plant\\" not found"}'))
    with (
        InfluxStore(v2cfg(url, tmp_path)) as store,
        pytest.raises(InfluxNotFound, match="not found"),
    ):
        store.read("cnc1", "kw", 0, 10)


# ---- a real InfluxDB 2.x/3.x ---------------------------------------------------------------


@pytest.fixture
def real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> InfluxStorage:
    assert V2_URL is not None
    assert V2_TOKEN is not None
    monkeypatch.setenv("SHOPFLOOR_TEST_V2_TOKEN", V2_TOKEN)
    return v2cfg(
        V2_URL,
        tmp_path,
        org=os.environ.get("INFLUX_V2_ORG", "shopfloor"),
        bucket=os.environ.get("INFLUX_V2_BUCKET", "shopfloor-test"),
        v2_reads=os.environ.get("INFLUX_V2_READS", "flux"),
        measurement=f"t{uuid.uuid4().hex[:12]}",  # a fresh measurement per test
        read_chunk_points=7,
        timeout_s=10.0,
    )


@needs_v2
def test_real_v2_round_trip_and_chunked_reads(real: InfluxStorage) -> None:
    t0 = time.time_ns() // 10**9 * 10**9 - 3600 * 10**9
    samples = [
        Sample("cnc1", "kw", t0 + 1, 12.25),
        Sample("cnc1", "kw", t0 + 2, -0.5, Quality.UNCERTAIN, "UncertainSensorCal"),
        Sample("cnc1", "kw", t0 + 3, math.nan, Quality.BAD, "BadNoComm"),
        Sample("cnc1", "kw", t0 + 4, float(2**53)),
        *(Sample("cnc1", "kw", t0 + 10 + i, float(i)) for i in range(20)),
    ]
    with InfluxStore(real) as store:
        store.write_batches([Batch("cnc1", 1, tuple(samples))])
        drained(store, 30)
        s = store.read("cnc1", "kw", t0, t0 + 100)
        assert s.ts.tolist() == [x.ts for x in samples]
        assert s.quality.tolist()[:4] == [0, 1, 2, 0]
        assert s.values[0] == 12.25
        assert math.isnan(s.values[2])
        assert s.values[3] == float(2**53)
        p = store.read("cnc1", "kw", t0 + 12, t0 + 14, prior=True)
        assert p.ts.tolist() == [t0 + 11, t0 + 12, t0 + 13]


@needs_v2
def test_real_v2_rejected_batch_is_quarantined(real: InfluxStorage) -> None:
    t0 = time.time_ns() // 10**9 * 10**9 - 7200 * 10**9
    with InfluxStore(real) as store:
        bad = Batch("q", 1, (Sample("q", "p", t0, 1.0),))
        # a string value first: a float "value" in the same measurement then conflicts
        store._writer.write(f'{real.measurement},device=q,point=p value="text" {t0 - 1}\n'.encode())
        store.write_batches([bad])
        store.write_batches([Batch("q", 2, (Sample("q", "other", t0 + 5, 1.0, status="x"),))])
        drained(store, 30)
        assert store.status().quarantined_batches >= 1
        assert store.quarantined()[0].status in (400, 422)


@needs_v2
def test_real_v2_wrong_token(real: InfluxStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPFLOOR_TEST_V2_TOKEN", "definitely-wrong")
    with InfluxStore(real) as store:
        store.write_batches([batch("a", 1, 1, base=YEAR_2021)])
        wait_for(lambda: store.status().state == "auth_error", timeout=30, what="auth_error")
        assert "refused the credentials" in store.status().last_error


def test_v1_token_auth_for_2x_and_3x(
    fake_v2: tuple[str, type[_Handler]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The v1 flavour with a token (InfluxDB 2.x v1-compat, 3.x): same loopback stand-in."""
    url, handler = fake_v2
    monkeypatch.setenv("SHOPFLOOR_TEST_V1_TOKEN", "tok-v1")
    cfg = InfluxStorage.model_validate(
        {
            "kind": "influxdb",
            "url": url,
            "database": "plant",
            "retention_policy": "autogen",
            "token": {"env": "SHOPFLOOR_TEST_V1_TOKEN"},
            "outbox_path": tmp_path / "outbox.db",
        }
    )
    with InfluxStore(cfg) as store:
        store.write_batches([batch("v1", 1, 3)])
        drained(store)
    got = handler.received[0]
    assert got["path"].startswith("/write?")
    assert "db=plant" in got["path"]
    assert "rp=autogen" in got["path"]
    assert "precision=ns" in got["path"]
    assert got["auth"] == "Token tok-v1"
    assert got["gzip"] is True
    assert got["body"].count("\n") == 3
