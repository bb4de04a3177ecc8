"""The retention InfluxDB applies to our samples: read, compared with the site file's
``storage.retention``, and on 1.x created when missing. Never silently assumed.

The check runs in the outbox sender before its first write (so a gateway starts while InfluxDB
is away) and until it has been done once:

* 1.x (``SHOW RETENTION POLICIES``): the policy named ``retention_policy`` (created with the
  configured duration when missing and ``create`` is on; never made the default, the store
  names it on every write and read), or the database's default policy when none is named;
* v2 API: the bucket's retention rule (2.x, Cloud); an InfluxDB without the buckets API (3.x)
  cannot be checked.

Outcomes: ``ok`` (one info line), ``mismatch`` (one warning line; with ``strict`` an
:class:`InfluxRetentionError`, the sender keeps the rows and retries), ``unchecked`` (no right
to read the policies, or no such API: one warning line; with ``strict`` an error). Without a
``retention`` in the site file the actual retention is only read and logged.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol

from config.storage import InfluxRetention
from edge.store.influx.errors import InfluxAuthError, InfluxError, InfluxNotFound
from edge.store.influx.influxql import quote_ident

log = logging.getLogger("shopfloor.influx")

_UNIT_S = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_SUB_S = {"ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_INFLUX_DURATION = re.compile(r"(\d+)(w|d|h|m|s|ms|us|µs|ns)")


class InfluxRetentionError(InfluxError):
    """The retention InfluxDB applies is not the one the site file asks for (strict mode)."""


def duration_s(text: str) -> int:
    """``400d`` / ``52w`` / ``8760h`` -> seconds; ``INF`` -> 0 (forever, as InfluxDB says)."""
    if text.upper() == "INF":
        return 0
    m = re.fullmatch(r"([1-9][0-9]*)([wdh])", text)
    if not m:
        raise ValueError(f"not a retention duration: {text!r} (use e.g. 400d, 52w, INF)")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


def influx_duration_s(text: str) -> int:
    """InfluxDB's ``9600h0m0s`` (``0s`` or ``INF``: forever) -> whole seconds (0: forever)."""
    t = str(text).strip()
    if t.upper() in ("INF", "0", "0S", ""):
        return 0
    total = 0.0
    pos = 0
    for m in _INFLUX_DURATION.finditer(t):
        if m.start() != pos:
            raise ValueError(f"not an InfluxDB duration: {text!r}")
        n = int(m.group(1))
        unit = m.group(2)
        total += n * _SUB_S.get(unit, _UNIT_S.get(unit, 0))
        pos = m.end()
    if pos != len(t):
        raise ValueError(f"not an InfluxDB duration: {text!r}")
    return int(total)


def human(seconds: int) -> str:
    if seconds == 0:
        return "INF (forever)"
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    return f"{seconds / 3600:g}h"


@dataclass(frozen=True, slots=True)
class RetentionCheck:
    outcome: str
    """``ok``, ``created``, ``mismatch``, ``unchecked`` or ``observed`` (nothing configured)."""
    message: str


def compare(
    where: str, actual_s: int, actual_shard_s: int | None, want: InfluxRetention | None
) -> RetentionCheck:
    """Pure: the outcome of finding ``actual_s`` (0: forever) at ``where``."""
    if want is None:
        return RetentionCheck(
            "observed",
            f"influx: {where} keeps samples {human(actual_s)} "
            "(no storage.retention in the site file: not checked)",
        )
    want_s = duration_s(want.duration)
    problems = []
    if actual_s != want_s:
        problems.append(f"keeps samples {human(actual_s)}, the site file says {want.duration}")
    if want.shard_duration and actual_shard_s is not None:
        want_shard = duration_s(want.shard_duration)
        if actual_shard_s != want_shard:
            problems.append(
                f"shard duration {human(actual_shard_s)}, the site file says {want.shard_duration}"
            )
    if problems:
        return RetentionCheck(
            "mismatch", f"influx: retention mismatch: {where} " + "; ".join(problems)
        )
    return RetentionCheck("ok", f"influx: {where} keeps samples {human(actual_s)} as configured")


class _Query(Protocol):
    def query(self, q: str) -> list[dict[str, Any]]: ...


def check_v1(
    client: _Query, database: str, policy: str | None, want: InfluxRetention | None
) -> RetentionCheck:
    """Read (and create when missing and allowed) the policy on an InfluxDB 1.x database.

    Raises :class:`InfluxError` when InfluxDB cannot answer (the caller retries);
    :class:`InfluxAuthError` when the user may not read the policies.
    """
    series = client.query(f"SHOW RETENTION POLICIES ON {quote_ident(database)}")
    rows: list[dict[str, Any]] = []
    for s in series:
        cols = list(s.get("columns", []))
        rows.extend(dict(zip(cols, v, strict=False)) for v in s.get("values") or [])
    if policy is None:
        found = next((r for r in rows if r.get("default")), None)
        if found is None:
            raise InfluxNotFound(f"database {database!r} has no default retention policy")
    else:
        found = next((r for r in rows if r.get("name") == policy), None)
        if found is None:
            if want is None or not want.create:
                return RetentionCheck(
                    "mismatch",
                    f"influx: retention policy {policy!r} does not exist on {database!r}"
                    + ("" if want is None else " and storage.retention.create is off"),
                )
            q = (
                f"CREATE RETENTION POLICY {quote_ident(policy)} ON {quote_ident(database)} "
                f"DURATION {want.duration.lower() if want.duration != 'INF' else 'INF'} "
                "REPLICATION 1"
            )
            if want.shard_duration:
                q += f" SHARD DURATION {want.shard_duration}"
            client.query(q)
            return RetentionCheck(
                "created",
                f"influx: created retention policy {policy!r} on {database!r}: "
                f"keeps samples {human(duration_s(want.duration))}",
            )
    where = f"retention policy {found.get('name')!r} of database {database!r}"
    shard = found.get("shardGroupDuration")
    return compare(
        where,
        influx_duration_s(str(found.get("duration", ""))),
        influx_duration_s(str(shard)) if shard is not None else None,
        want,
    )


def settle(
    check: RetentionCheck | None, error: InfluxError | None, want: InfluxRetention | None
) -> RetentionCheck:
    """Log the outcome once; raise :class:`InfluxRetentionError` for a strict mismatch.

    ``error``: the check could not be made for lack of rights or API (auth, not found of the
    API itself): ``unchecked``.
    """
    strict = want is not None and want.strict
    if error is not None:
        check = RetentionCheck("unchecked", f"influx: cannot check the retention: {error}")
    assert check is not None
    if check.outcome == "mismatch" or (check.outcome == "unchecked" and want is not None):
        if strict:
            raise InfluxRetentionError(check.message + " (storage.retention.strict: not sending)")
        log.warning("%s", check.message)
    else:
        log.info("%s", check.message)
    return check


def check_v2(client: Any, want: InfluxRetention | None) -> RetentionCheck:
    """The bucket's retention rule through the v2 buckets API (``client``: a V2Client)."""
    every_s, shard_s = client.bucket_retention()
    return compare(f"bucket {client.bucket!r}", every_s, shard_s, want)


def is_unreadable(exc: InfluxError) -> bool:
    """An error that means the policies cannot be read by this user (not a passing outage)."""
    return isinstance(exc, InfluxAuthError)
