"""The outbox sender: a thread that sends outbox rows to InfluxDB in order.

* 204: the rows are deleted from the outbox.
* No answer, timeout, 5xx, 429: the same rows are retried after an exponential backoff
  (0.1 s doubling, capped by ``replay_backoff_max_s``, with jitter).
* 401/403 (credentials) and 404 (no such database/bucket): reported as such in the status and the
  log, rows kept, same backoff: nothing is quarantined for a configuration problem.
* Another 4xx (e.g. field type conflict): a group of rows is retried row by row (InfluxDB may
  have written part of it already; rewriting is idempotent), and a row refused on its own is
  quarantined with the response body; the queue moves on.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edge.store.influx.errors import (
    InfluxAuthError,
    InfluxError,
    InfluxNotFound,
    InfluxRejected,
    InfluxUnavailable,
)
from edge.store.influx.outbox import Outbox, Row
from edge.store.influx.retention import InfluxRetentionError

log = logging.getLogger("shopfloor.influx")

BACKOFF_INITIAL_S = 0.1
RATE_WINDOW_S = 10.0
IDLE_POLL_S = 1.0


class LineWriter(Protocol):
    def write(self, lines: bytes) -> None:
        """Send line protocol; return when InfluxDB confirmed it, raise InfluxError if not."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SenderState:
    state: str
    """``idle`` (nothing pending), ``sending``, ``unavailable``, ``auth_error``, ``not_found``,
    ``retention_mismatch`` (strict retention check failed)."""
    last_error: str
    last_status: int | None
    last_success_ns: int | None
    backoff_s: float
    replay_rate_sps: float
    errors: dict[str, int]


class Sender:
    def __init__(
        self,
        outbox: Outbox,
        writer: LineWriter,
        *,
        max_samples: int,
        backoff_max_s: float,
        name: str = "influx-outbox-sender",
        precheck: Callable[[], object] | None = None,
    ) -> None:
        """``precheck`` runs before the first write until it returns (the retention check);
        an InfluxError from it counts as a failed send: rows kept, backoff, retried."""
        self._precheck = precheck
        self._outbox = outbox
        self._writer = writer
        self._max_samples = max_samples
        self._backoff_max_s = backoff_max_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._state = "idle"
        self._last_error = ""
        self._last_status: int | None = None
        self._last_success_ns: int | None = None
        self._backoff = 0.0
        self._errors: dict[str, int] = {}
        self._acks: collections.deque[tuple[float, float, int]] = collections.deque()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def status(self) -> SenderState:
        now = time.monotonic()
        with self._lock:
            while self._acks and self._acks[0][1] < now - RATE_WINDOW_S:
                self._acks.popleft()
            if self._acks:
                began = min(start for start, _, _ in self._acks)
                total = sum(n for _, _, n in self._acks)
                rate = total / max(now - began, 1e-3)
            else:
                rate = 0.0
            return SenderState(
                state=self._state,
                last_error=self._last_error,
                last_status=self._last_status,
                last_success_ns=self._last_success_ns,
                backoff_s=self._backoff,
                replay_rate_sps=rate,
                errors=dict(self._errors),
            )

    # ---- the thread --------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._precheck is not None:
                try:
                    self._precheck()
                except InfluxError as exc:
                    self._failed(exc, _kind(exc))
                    continue
                except Exception as exc:
                    log.exception("influx outbox: unexpected error in the retention check")
                    self._failed(InfluxError(f"{type(exc).__name__}: {exc}"), "unexpected")
                    continue
                self._precheck = None
            try:
                rows = self._outbox.peek(self._max_samples)
            except Exception as exc:  # the outbox was closed under us or the disk failed
                if self._stop.is_set():
                    return
                log.exception("influx outbox: cannot read the outbox")
                self._failed(InfluxError(f"cannot read the outbox: {exc}"), "outbox")
                continue
            if not rows:
                self._set_state("idle")
                self._wake.wait(IDLE_POLL_S)
                self._wake.clear()
                continue
            try:
                self._send(rows)
            except InfluxError as exc:
                self._outbox.release()
                self._failed(exc, _kind(exc))
            except Exception as exc:
                self._outbox.release()
                log.exception("influx outbox: unexpected error while sending")
                self._failed(InfluxError(f"{type(exc).__name__}: {exc}"), "unexpected")
            else:
                with self._lock:
                    self._backoff = 0.0

    def _send(self, rows: list[Row]) -> None:
        self._set_state("sending")
        try:
            self._write(rows)
            return
        except InfluxRejected as exc:
            if len(rows) == 1:
                self._quarantine(rows[0], exc)
                return
        for row in rows:  # find the row(s) InfluxDB refuses; the others go through
            if self._stop.is_set():
                self._outbox.release()
                return
            try:
                self._write([row])
            except InfluxRejected as exc:
                self._quarantine(row, exc)

    def _write(self, rows: list[Row]) -> None:
        began = time.monotonic()
        self._writer.write(b"".join(r.lines for r in rows))
        self._outbox.ack(rows)
        n = sum(r.n for r in rows)
        with self._lock:
            self._acks.append((began, time.monotonic(), n))
            self._last_success_ns = time.time_ns()
            if self._state != "sending":
                log.info("influx outbox: InfluxDB accepts writes again")
            self._state = "sending"
            self._last_error = ""
            self._last_status = None

    def _quarantine(self, row: Row, exc: InfluxRejected) -> None:
        self._outbox.quarantine(row, exc.status, exc.body or str(exc))
        with self._lock:
            self._errors["rejected"] = self._errors.get("rejected", 0) + 1
            self._last_error = str(exc)
            self._last_status = exc.status
        log.error(
            "influx outbox: quarantined batch %s#%d (%d samples): %s",
            row.source,
            row.seq,
            row.n,
            exc,
        )

    def _failed(self, exc: InfluxError, kind: str) -> None:
        state = {
            "auth": "auth_error",
            "not_found": "not_found",
            "retention": "retention_mismatch",
        }.get(kind, "unavailable")
        with self._lock:
            changed = state != self._state or str(exc) != self._last_error
            self._errors[kind] = self._errors.get(kind, 0) + 1
            self._state = state
            self._last_error = str(exc)
            self._last_status = exc.status
            base = min(self._backoff_max_s, max(BACKOFF_INITIAL_S, self._backoff * 2))
            self._backoff = base
        if changed:
            bad = ("auth_error", "not_found", "retention_mismatch")
            level = logging.ERROR if state in bad else logging.WARNING
            log.log(level, "influx outbox: %s; keeping rows, retrying in up to %.1f s", exc, base)
        delay = base / 2 + random.uniform(0, base / 2)
        self._stop.wait(delay)

    def _set_state(self, state: str) -> None:
        with self._lock:
            failing = ("unavailable", "auth_error", "not_found", "retention_mismatch")
            if self._state in failing and state == "sending":
                return  # stays reported until a write succeeds
            self._state = state


def _kind(exc: InfluxError) -> str:
    if isinstance(exc, InfluxRetentionError):
        return "retention"
    if isinstance(exc, InfluxAuthError):
        return "auth"
    if isinstance(exc, InfluxNotFound):
        return "not_found"
    if isinstance(exc, InfluxUnavailable):
        return "unavailable"
    return "error"
