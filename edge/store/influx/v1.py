"""The InfluxDB v1 HTTP API over httpx: ``/write`` (gzip line protocol) and ``/query``.

Works with InfluxDB 1.x, 2.x through its v1 compatibility endpoints (database/retention policy
mapped to a bucket by a DBRP mapping, ``Authorization: Token``) and 3.x (database = bucket).
"""

from __future__ import annotations

import gzip
import logging
import ssl
from pathlib import Path
from typing import Any

import httpx

from edge.store.influx.errors import InfluxError, InfluxUnavailable, from_status

# httpx logs every request at INFO: a collector writing several times a second would drown its
# log in them. Failures are reported by the outbox sender instead.
if logging.getLogger("httpx").level == logging.NOTSET:
    logging.getLogger("httpx").setLevel(logging.WARNING)

GZIP_LEVEL = 1
"""Fast compression: line protocol of samples shrinks ~8x at level 1, not much more above."""


def tls_verify(url: str, ca_file: Path | None, verify_tls: bool) -> ssl.SSLContext | bool:
    """What httpx should verify the server with: a context trusting ``ca_file``, the system's
    store (True) or nothing (False, ``verify_tls: false``)."""
    if not url.startswith("https://"):
        return True
    if not verify_tls:
        return False
    if ca_file is not None:
        try:
            return ssl.create_default_context(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise InfluxError(f"cannot load the CA file {ca_file}: {exc}") from None
    return True


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Token {token}"} if token else {}


class V1Client:
    """One connection pool for writes or for queries (the store keeps one of each, so a long
    read never holds up the outbox sender)."""

    def __init__(
        self,
        url: str,
        *,
        database: str,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        verify: ssl.SSLContext | bool = True,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.retention_policy = retention_policy
        auth = httpx.BasicAuth(username, password) if username and password is not None else None
        self._http = httpx.Client(
            base_url=self.url,
            auth=auth,
            headers=auth_headers(token),
            verify=verify,
            timeout=httpx.Timeout(timeout_s),
            trust_env=False,
        )

    def _request(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise InfluxUnavailable(
                f"cannot reach InfluxDB at {self.url} for {what}: {type(exc).__name__}: {exc}"
            ) from None

    def write(self, lines: bytes) -> None:
        """Send line protocol (gzip-compressed); return on 204, raise an InfluxError otherwise."""
        params = {"db": self.database, "precision": "ns"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        body = gzip.compress(lines, compresslevel=GZIP_LEVEL)
        what = f"write to {self.url}/write?db={self.database}"
        r = self._request(
            "POST",
            "/write",
            what,
            params=params,
            content=body,
            headers={"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"},
        )
        if r.status_code not in (200, 204):
            raise from_status(r.status_code, r.text, what)

    def query(self, q: str) -> list[dict[str, Any]]:
        """Run one InfluxQL statement; the ``series`` of its result (empty list when none)."""
        params = {"db": self.database, "q": q, "epoch": "ns"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        what = f"query on {self.url}/query?db={self.database}"
        r = self._request(
            "GET", "/query", what, params=params, headers={"Accept": "application/json"}
        )
        if r.status_code != 200:
            raise from_status(r.status_code, r.text, what)
        try:
            data = r.json()
            results = data["results"]
        except (ValueError, KeyError, TypeError):
            raise InfluxError(f"{what}: not an InfluxQL answer: {r.text[:200]!r}") from None
        series: list[dict[str, Any]] = []
        for res in results:
            if "error" in res:
                err = str(res["error"])
                if "database not found" in err:
                    raise from_status(404, err, what)
                if "authoriz" in err:
                    raise from_status(403, err, what)
                raise from_status(400, err, what)
            series.extend(res.get("series", []))
        return series

    def ping(self) -> None:
        r = self._request("GET", "/ping", f"ping {self.url}")
        if r.status_code not in (200, 204):
            raise from_status(r.status_code, r.text, f"ping {self.url}")

    def close(self) -> None:
        self._http.close()
