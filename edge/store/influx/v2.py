"""The InfluxDB v2 API through influxdb-client (2.x, 3.x, Cloud): token, org, bucket.

Writes go to ``/api/v2/write`` (gzip, precision ns, synchronous: one call returns when the
server confirmed); reads use Flux (:mod:`edge.store.influx.flux`). The only module of ours that
imports ``influxdb_client``.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import urllib3
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.dialect import Dialect
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from edge.store.influx import flux
from edge.store.influx.errors import InfluxError, InfluxUnavailable, from_status
from metrics.series import Series

_CSV = Dialect(  # type: ignore[no-untyped-call]
    header=True, annotations=[], date_time_format="RFC3339Nano"
)
_NS = cast(WritePrecision, WritePrecision.NS)


def _body(exc: ApiException) -> str:
    body = exc.body
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return str(body or exc.reason or "")


class V2Client:
    def __init__(
        self,
        url: str,
        *,
        token: str,
        org: str,
        bucket: str,
        verify_tls: bool = True,
        ca_file: Path | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.org = org
        self.bucket = bucket
        self._client = InfluxDBClient(
            url=self.url,
            token=token,
            org=org,
            timeout=int(timeout_s * 1000),
            enable_gzip=True,
            verify_ssl=verify_tls,
            ssl_ca_cert=str(ca_file) if ca_file else None,
            retries=False,
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._query_api = self._client.query_api()

    def write(self, lines: bytes) -> None:
        what = f"write to {self.url}/api/v2/write?bucket={self.bucket}"
        try:
            self._write_api.write(
                bucket=self.bucket, org=self.org, record=lines, write_precision=_NS
            )
        except ApiException as exc:
            raise from_status(int(exc.status or 0), _body(exc), what) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise InfluxUnavailable(
                f"cannot reach InfluxDB at {self.url} for {what}: {type(exc).__name__}: {exc}"
            ) from None

    def flux(self, query: str) -> Series:
        what = f"Flux query on {self.url}/api/v2/query?org={self.org}"
        try:
            resp = self._query_api.query_raw(query, org=self.org, dialect=_CSV)
            try:
                text = resp.data.decode("utf-8")
            finally:
                resp.release_conn()
        except ApiException as exc:
            raise from_status(int(exc.status or 0), _body(exc), what) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise InfluxUnavailable(
                f"cannot reach InfluxDB at {self.url} for {what}: {type(exc).__name__}: {exc}"
            ) from None
        try:
            return flux.series_from_csv(text)
        except ValueError as exc:
            raise InfluxError(f"{what}: {exc}") from None

    def bucket_retention(self) -> tuple[int, int | None]:
        """(retention seconds, shard group seconds) of the bucket (0: forever)."""
        what = f"bucket lookup on {self.url}/api/v2/buckets?name={self.bucket}"
        try:
            found = self._client.buckets_api().find_bucket_by_name(self.bucket)  # type: ignore[no-untyped-call]
        except ApiException as exc:
            if exc.status in (404, 405, 501):
                raise InfluxError(
                    f"{what}: no buckets API here ({exc.status})", status=exc.status
                ) from None
            raise from_status(int(exc.status or 0), _body(exc), what) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise InfluxUnavailable(
                f"cannot reach InfluxDB at {self.url} for {what}: {type(exc).__name__}: {exc}"
            ) from None
        if found is None:
            raise from_status(404, f"bucket {self.bucket!r} not found", what)
        rules = list(found.retention_rules or [])
        if not rules:
            return 0, None
        every = int(rules[0].every_seconds or 0)
        shard = rules[0].shard_group_duration_seconds
        return every, int(shard) if shard is not None else None

    def close(self) -> None:
        self._write_api.close()  # type: ignore[no-untyped-call]
        self._client.close()  # type: ignore[no-untyped-call]
