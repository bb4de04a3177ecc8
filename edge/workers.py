"""Connectors in worker processes (``runtime.workers``), feeding the collector's one writer.

With ``runtime.workers: N`` (or ``auto``: one per core but one) the collector moves its
connectors (one per endpoint: a Modbus host:port, an MQTT broker connection...) into N worker
processes (edge.worker_proc), so that polling and decoding use other cores than the writer, the
store and the ledger. :func:`shard` spreads them by their number of points. Connectors that take
part in the collector's restart record (OPC UA's ``resume``/``marked``: history backfill needs
the store) stay in the collector process.

Each worker is one :class:`WorkerConnector` under the collector's own supervisor: its ``run``
starts the process and hands what it sends to the collector's sink (the queue) until the process
ends. A worker that dies (``kill -9``, a crash) is a lost link like any other: the supervisor
writes the ``link_lost`` markers of all the worker's points, counts the failure and starts a new
process after the usual backoff. Inside, the worker runs its connectors under its own
supervisor (a connector's link loss there gives the same markers and counters as in-process).

Guarantees kept across the process boundary: the worker's outgoing messages are bounded
(``runtime.queue_size`` samples; what does not fit is dropped and counted per device, added to
the queue's drop counts), the collector reads at most :data:`IN_FLIGHT` messages ahead of its
event loop and none while its queue is more than :data:`BACKLOG_HIGH` full (so the pipe, then
the worker's bound, hold the worker's connectors back as the GIL does in one process),
``when_stored`` registrations are answered only after the queue reports the samples stored, a
clean stop lets every worker stop its connectors and send what it holds
(:data:`STOP_WAIT_S`, then it is killed), and a worker exits by itself when the collector's end
of the pipe closes (the collector was killed: no orphans).

Health: link and error reports, the worker supervisor's failures and restarts, and the
connectors' ``device_stats`` (sent every second: requests/s, latency...) reach the collector's
health tracker as in-process, the figures a second late at most.

Limits: the markers a worker's own supervisor writes are stamped with the system clock (the
collector's injected ``time_ns``, the demo's factory clock, does not cross the process
boundary); a collector given its connectors (``Collector(connectors=...)``, tests) runs them
in-process whatever the setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from config.models import SiteConfig
from connectors.base import Connector, ConnectorError, SampleBlock, Sink
from edge.health import HealthTracker
from edge.worker_proc import WorkerSpec, worker_main
from edge.workwire import Decoder

log = logging.getLogger("shopfloor.workers")

IN_FLIGHT = 8  # messages read from a worker and not yet handled by the event loop
BACKLOG_HIGH = 0.5  # a worker's messages wait while the queue is fuller than this
STOP_WAIT_S = 10.0  # a stopping worker's time to stop its connectors and send what it holds


def worker_count(setting: int | Literal["auto"], cpus: int | None) -> int:
    """The number of worker processes for ``runtime.workers`` on ``cpus`` cores."""
    if setting == "auto":
        return max((cpus or 1) - 1, 0)
    return setting


def shard(weights: Sequence[int], n: int) -> list[list[int]]:
    """Indexes of ``weights`` (connectors' point counts) spread over at most ``n`` shards,
    heaviest first onto the lightest shard; no empty shard; each shard's indexes ascending."""
    if n < 1:
        return []
    order = sorted(range(len(weights)), key=lambda i: (-weights[i], i))
    shards: list[list[int]] = [[] for _ in range(min(n, len(weights)))]
    load = [0] * len(shards)
    for i in order:
        k = min(range(len(shards)), key=lambda j: (load[j], j))
        shards[k].append(i)
        load[k] += max(weights[i], 1)
    return [sorted(s) for s in shards]


def movable(connector: Connector) -> bool:
    """Whether ``connector`` can run in a worker (it takes no part in the restart record)."""
    return not any(callable(getattr(connector, a, None)) for a in ("resume", "marked"))


def hand_over(sink: Sink, blocks: Sequence[SampleBlock]) -> None:
    """A worker's samples into the collector's sink (the one place that does it), as blocks."""
    for b in blocks:
        sink.put_block(b)


class WorkerConnector:
    """One worker process, seen by the collector's supervisor as one connector."""

    def __init__(
        self,
        spec: WorkerSpec,
        devices: Sequence[str],
        *,
        health: HealthTracker | None = None,
        on_drops: Callable[[Mapping[str, int]], None] | None = None,
        backlog: Callable[[], float] | None = None,
    ) -> None:
        self.spec = spec
        self._backlog = backlog
        self.name = f"worker{spec.index}"
        self.devices = tuple(devices)
        self._health = health
        self._on_drops = on_drops
        self._stats: dict[str, dict[str, Any]] = {}
        self.pid: int | None = None  # the current process's id (tests, operations)
        self.started = 0  # processes started

    def device_stats(self) -> dict[str, dict[str, Any]]:
        """The worker's connectors' per-device figures, as last sent (every second)."""
        return self._stats

    async def run(self, sink: Sink) -> None:
        loop = asyncio.get_running_loop()
        ctx = mp.get_context("spawn")
        conn, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=worker_main,
            args=(self.spec, child),
            name=f"shopfloor-worker{self.spec.index}",
            daemon=True,
        )
        await asyncio.to_thread(proc.start)
        child.close()
        self.pid = proc.pid
        self.started += 1
        decoder = Decoder()
        slots = threading.Semaphore(IN_FLIGHT)
        ended: asyncio.Future[str] = loop.create_future()
        closing = threading.Event()
        when_stored = getattr(sink, "when_stored", None)
        backlog = self._backlog

        def answer(number: int) -> Callable[[bool], None]:
            def settled(ok: bool) -> None:
                with contextlib.suppress(OSError, ValueError):
                    conn.send(("ack", number, ok))

            return settled

        def finish(reason: str) -> None:
            if not ended.done():
                ended.set_result(reason)

        def handle(msg: tuple[Any, ...]) -> None:
            try:
                kind = msg[0]
                if kind == "samples":
                    hand_over(sink, decoder.decode(msg[1]))
                elif kind == "when_stored":
                    if when_stored is None:
                        answer(msg[1])(True)
                    else:
                        when_stored(answer(msg[1]))
                elif kind == "link":
                    sink.link(msg[1], msg[2])
                elif kind == "error":
                    sink.error(msg[1], msg[2])
                elif kind == "failed":
                    for d in msg[1]:
                        sink.link(d, False)
                        sink.error(d, msg[2])
                elif kind == "restarted":
                    if self._health is not None:
                        self._health.restarted(msg[1])
                elif kind == "stats":
                    self._stats = msg[1]
                elif kind == "drops":
                    if self._on_drops is not None:
                        self._on_drops(msg[1])
                elif kind == "bye":
                    finish("stopped")
                elif kind == "fatal":
                    finish(f"failed: {msg[1]}")
            finally:
                release()

        def release() -> None:
            # back-pressure: while the queue is more than BACKLOG_HIGH full, read no further
            if backlog is not None and backlog() > BACKLOG_HIGH and not closing.is_set():
                loop.call_later(0.01, release)
            else:
                slots.release()

        def read() -> None:
            while True:
                while not slots.acquire(timeout=0.5):
                    if closing.is_set():
                        return
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    slots.release()
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(finish, "ended")
                    return
                try:
                    loop.call_soon_threadsafe(handle, msg)
                except RuntimeError:  # the event loop is closed
                    return

        reader = threading.Thread(target=read, name=f"worker{self.spec.index}-read", daemon=True)
        reader.start()
        try:
            reason = await asyncio.shield(ended)
            code = await asyncio.to_thread(_join, proc, 5.0)
            raise ConnectorError(f"worker process {proc.pid} {reason} (exit code {code})")
        finally:
            if not ended.done():  # cancelled (a stop): let the worker stop and send the rest
                with contextlib.suppress(OSError, ValueError):
                    conn.send(("stop",))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(STOP_WAIT_S):
                        await asyncio.shield(ended)
            closing.set()
            code = await asyncio.to_thread(_join, proc, 5.0)
            if code is None:
                log.error("worker process %s did not stop: killed", proc.pid)
                proc.kill()
                await asyncio.to_thread(_join, proc, 5.0)
            conn.close()
            await asyncio.to_thread(reader.join, 5.0)
            with contextlib.suppress(ValueError):
                proc.close()


def _join(proc: mp.process.BaseProcess, timeout_s: float) -> int | None:
    proc.join(timeout_s)
    return proc.exitcode


def in_workers(
    site: SiteConfig,
    connectors: Sequence[Connector],
    n: int,
    *,
    health: HealthTracker | None = None,
    on_drops: Callable[[Mapping[str, int]], None] | None = None,
    backlog: Callable[[], float] | None = None,
) -> list[Connector]:
    """``connectors`` (as ``build_connectors(site)`` returns them) with the movable ones
    replaced by at most ``n`` :class:`WorkerConnector` (the others stay, first)."""
    idx = [i for i, c in enumerate(connectors) if movable(c)]
    if n < 1 or not idx:
        return list(connectors)
    npoints = {d.id: len(d.points) for d in site.devices}
    weights = [sum(npoints.get(d, 0) for d in connectors[i].devices) for i in idx]
    out: list[Connector] = [c for c in connectors if not movable(c)]
    level = logging.getLogger().getEffectiveLevel()
    for k, part in enumerate(shard(weights, n)):
        chosen = [idx[j] for j in part]
        devices = [d for i in chosen for d in connectors[i].devices]
        # the worker gets its devices only (less to pickle and to plan)
        mine = set(devices)
        sub = site.model_copy(update={"devices": tuple(d for d in site.devices if d.id in mine)})
        spec = WorkerSpec(sub, k, tuple(connectors[i].name for i in chosen), level)
        out.append(
            WorkerConnector(spec, devices, health=health, on_drops=on_drops, backlog=backlog)
        )
    log.info(
        "%d connectors in %d worker processes, %d in the collector process (pid %d)",
        len(idx),
        min(n, len(idx)),
        len(out) - min(n, len(idx)),
        os.getpid(),
    )
    return out
