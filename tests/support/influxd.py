"""A private ``influxd`` (Debian's InfluxDB 1.x) on loopback free ports with temporary dirs.

One server per test module: start it with :func:`influxd_server`, create a database per test
(``server.create_database(name)``) so tests stay independent, and ``stop()``/``start()`` it to
simulate an outage (same port and data directory).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.net import free_port, wait_port

INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"


def influxd_available() -> bool:
    return Path(INFLUXD).exists()


_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"
  retention-autocreate = true
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "10m0s"

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[retention]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = {auth}
  log-enabled = false
  suppress-write-log = true
  pprof-enabled = false
  https-enabled = {https}
  https-certificate = "{cert}"
  https-private-key = "{key}"
  max-body-size = 0

[logging]
  level = "warn"
  suppress-logo = true

[[graphite]]
  enabled = false
[[collectd]]
  enabled = false
[[opentsdb]]
  enabled = false
[[udp]]
  enabled = false
"""


@dataclass
class Influxd:
    """A running private influxd. ``url`` is its HTTP(S) base URL on 127.0.0.1."""

    root: Path
    auth: bool = False
    cert: Path | None = None
    key: Path | None = None
    http_port: int = field(default_factory=free_port)
    rpc_port: int = field(default_factory=free_port)
    admin: tuple[str, str] | None = None
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.cert else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        if self.running:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        conf = self.root / "influxd.conf"
        conf.write_text(
            _CONFIG.format(
                root=self.root,
                rpc_port=self.rpc_port,
                http_port=self.http_port,
                auth="true" if self.auth else "false",
                https="true" if self.cert else "false",
                cert=self.cert or "",
                key=self.key or "",
            ),
            encoding="utf-8",
        )
        log = (self.root / "influxd.log").open("ab")
        self._proc = subprocess.Popen(
            [INFLUXD, "run", "-config", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        wait_port(self.http_port, timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self._client() as c:
                    if c.get("/ping").status_code == 204:
                        return
            except httpx.HTTPError:
                time.sleep(0.02)  # not listening yet
            if time.monotonic() > deadline or not self.running:
                raise RuntimeError(f"influxd did not come up: see {self.root / 'influxd.log'}")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0, verify=False)

    def query(self, q: str, db: str | None = None, *, auth: bool = True) -> dict[str, Any]:
        """Run InfluxQL as the admin (when auth is on) and return the decoded JSON."""
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        with self._client() as c:
            r = c.post("/query", params=params, auth=self.admin if (auth and self.admin) else None)
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        for res in data.get("results", []):
            if "error" in res:
                raise RuntimeError(f"influxql error: {res['error']} ({q})")
        return data

    def rows(self, q: str, db: str) -> list[list[Any]]:
        """The ``values`` of every series the query returns, concatenated."""
        out: list[list[Any]] = []
        for res in self.query(q, db)["results"]:
            for s in res.get("series", []):
                out.extend(s["values"])
        return out

    def create_database(self, name: str) -> str:
        self.query(f'CREATE DATABASE "{name}"')
        return name

    def write_raw(self, db: str, body: str) -> httpx.Response:
        with self._client() as c:
            return c.post(
                "/write",
                params={"db": db, "precision": "ns"},
                content=body.encode(),
                auth=self.admin if self.admin else None,
            )

    def create_admin(self, user: str, password: str) -> None:
        self.query(
            f"CREATE USER \"{user}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES", auth=False
        )
        self.admin = (user, password)


@contextmanager
def influxd_server(
    root: Path, *, auth: bool = False, cert: Path | None = None, key: Path | None = None
) -> Iterator[Influxd]:
    server = Influxd(root=root, auth=auth, cert=cert, key=key)
    server.start()
    try:
        yield server
    finally:
        server.stop()
