"""The connector worker process (``runtime.workers``; the collector side is edge.workers).

:func:`worker_main` runs in a process started with the ``spawn`` method. It builds the
connectors of the part of the site file the collector gave it (its devices only; the names are
checked against the collector's connectors) and runs them under its own
:class:`edge.supervisor.Supervisor` (restarts with backoff, ``link_lost`` markers) into a
:class:`PipeSink`, which sends everything to the collector over one duplex pipe:

- samples as columns (edge.workwire), one message per :data:`FLUSH_S` or per
  :data:`BATCH_MAX` samples, through :class:`Outbox`: bounded (``runtime.queue_size`` samples
  waiting to be sent). A message that does not fit holds the worker's event loop until it
  does (back-pressure: the connectors slow down, a Modbus poll that overruns is counted as
  skipped), at most :data:`BLOCK_S`; then it is dropped and its samples counted per device
  (sent to the collector, which adds them to the queue's drop counts);
- link and error reports, the supervisor's failures and restarts, the connectors'
  ``device_stats`` every :data:`STATS_S` (never dropped: they are small);
- ``when_stored`` registrations as numbers, after the samples put before them: the collector
  registers them with its queue and answers ``("ack", number, ok)`` once the store has written
  those samples (``ok`` is False when some may have been dropped, here or in the queue), so an
  MQTT message is acknowledged to its broker only after it is stored.

A reader thread takes the collector's messages (acks, ``stop``). End of file on the pipe (the
collector is gone, e.g. ``kill -9``) ends the process at once (``os._exit``): no orphan keeps
polling, and nothing unstored was acknowledged. ``stop`` cancels the connectors (MQTT waits for
its last acknowledgements), sends what is left and ``bye``, and the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from config.models import SiteConfig
from connectors.base import Connector, Sample, SampleBlock
from connectors.registry import build_connectors
from edge.health import HealthTracker
from edge.supervisor import Backoff, Supervisor
from edge.workwire import Encoder

log = logging.getLogger("shopfloor.worker")

FLUSH_S = 0.02  # samples are gathered this long into one message
BATCH_MAX = 20_000  # or until this many are pending
BLOCK_S = 1.0  # a full outbox holds the worker's loop up to this long, then drops
STATS_S = 1.0  # the connectors' device_stats are sent this often
EXIT_PARENT_GONE = 3  # exit status when the collector went away


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker process needs (pickled to it)."""

    site: SiteConfig
    index: int
    names: tuple[str, ...]  # the names of the connectors it runs (checked)
    log_level: int = logging.WARNING


class Outbox:
    """Messages waiting for the sender thread; sample messages bounded by ``capacity``
    samples (one larger than the capacity still goes when nothing waits)."""

    def __init__(self, conn: Connection, capacity: int, on_dead: Callable[[], None]) -> None:
        self._conn = conn
        self.capacity = capacity
        self._items: deque[tuple[object, int]] = deque()
        self._samples = 0
        self._cond = threading.Condition()
        self._closed = False
        self._on_dead = on_dead
        self._thread = threading.Thread(target=self._send_loop, name="worker-send", daemon=True)
        self._thread.start()

    def offer(self, msg: object, n: int) -> bool:
        """Queue a message of ``n`` samples; False (not queued) when it does not fit."""
        with self._cond:
            if self._samples and self._samples + n > self.capacity:
                return False
            self._items.append((msg, n))
            self._samples += n
            self._cond.notify_all()
        return True

    def wait_room(self, n: int, timeout_s: float) -> bool:
        """Wait (blocking) until a message of ``n`` samples fits; False after ``timeout_s``."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._samples or self._samples + n <= self.capacity, timeout_s
            )

    def event(self, msg: object) -> None:
        with self._cond:
            self._items.append((msg, 0))
            self._cond.notify_all()

    def close(self, timeout_s: float = 30.0) -> None:
        """Send what is queued, then stop the sender thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout_s)

    def _send_loop(self) -> None:
        conn = self._conn
        while True:
            with self._cond:
                while not self._items and not self._closed:
                    self._cond.wait()
                if not self._items:
                    return
                msg, n = self._items.popleft()
            try:
                conn.send(msg)
            except (OSError, ValueError):
                self._on_dead()
                return
            if n:
                with self._cond:
                    self._samples -= n
                    self._cond.notify_all()


class PipeSink:
    """The Sink of the worker's connectors (see the module docstring)."""

    def __init__(self, outbox: Outbox, loop: asyncio.AbstractEventLoop) -> None:
        self._outbox = outbox
        self._loop = loop
        self._enc = Encoder()
        self._timer: asyncio.TimerHandle | None = None
        self._refused = False  # samples refused since the last when_stored registration
        self._waits: dict[int, tuple[bool, Callable[[bool], None]]] = {}
        self._next_wait = 0
        self.drops: dict[str, int] = {}

    # -- Sink ---------------------------------------------------------------------------------

    def put(self, sample: Sample) -> None:
        self.put_many((sample,))

    def put_many(self, samples: Iterable[Sample]) -> None:
        batch = samples if isinstance(samples, list | tuple) else list(samples)
        if batch:
            self._enc.add_samples(batch)
            self._added()

    def put_block(self, block: SampleBlock) -> None:
        self._enc.add_block(block)
        self._added()

    def link(self, device: str, connected: bool) -> None:
        self.flush()
        self._outbox.event(("link", device, connected))

    def error(self, device: str, kind: str) -> None:
        self.flush()
        self._outbox.event(("error", device, kind))

    def when_stored(self, callback: Callable[[bool], None]) -> None:
        self.flush()
        n = self._next_wait
        self._next_wait += 1
        self._waits[n] = (not self._refused, callback)
        self._refused = False
        self._outbox.event(("when_stored", n))

    # -- worker side --------------------------------------------------------------------------

    def acked(self, number: int, ok: bool) -> None:
        """(The collector's answer) the samples before registration ``number`` are stored."""
        wait = self._waits.pop(number, None)
        if wait is not None:
            wait[1](ok and wait[0])

    def _added(self) -> None:
        if self._enc.pending >= BATCH_MAX:
            self.flush()
        elif self._timer is None:
            self._timer = self._loop.call_later(FLUSH_S, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        taken = self._enc.take()
        if taken is None:
            return
        batch, counts = taken
        n = sum(c for _, c in counts)
        msg = ("samples", batch)
        if self._outbox.offer(msg, n):
            return
        # back-pressure: the worker's loop (its connectors) waits for the collector, as it
        # would wait for the GIL in one process (a Modbus poll then overruns: skipped polls)
        if self._outbox.wait_room(n, BLOCK_S) and self._outbox.offer(msg, n):
            return
        # refused: the names still go (the tables stay in step), the samples are counted
        self._outbox.event(("samples", self._enc.names_only(batch)))
        self._refused = True
        dropped: dict[str, int] = {}
        for dev, c in counts:
            dropped[dev] = dropped.get(dev, 0) + c
        self._outbox.event(("drops", dropped))


class HealthRelay(HealthTracker):
    """The worker supervisor's health reports, sent to the collector's tracker."""

    def __init__(self, sink: PipeSink, outbox: Outbox) -> None:
        super().__init__()
        self._sink = sink
        self._outbox = outbox

    def connector_failed(self, devices: Iterable[str], kind: str) -> None:
        self._sink.flush()
        self._outbox.event(("failed", tuple(devices), kind))

    def restarted(self, devices: Iterable[str]) -> None:
        self._outbox.event(("restarted", tuple(devices)))


def _stats(connectors: Iterable[Connector]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for c in connectors:
        device_stats = getattr(c, "device_stats", None)
        if callable(device_stats):
            out.update(device_stats())
    return out


async def _stats_loop(connectors: list[Connector], outbox: Outbox) -> None:
    while True:
        await asyncio.sleep(STATS_S)
        stats = _stats(connectors)
        if stats:
            outbox.event(("stats", stats))


def _parent_gone() -> None:
    os._exit(EXIT_PARENT_GONE)


async def _run(spec: WorkerSpec, conn: Connection) -> None:
    from edge.runtime import switch_interval

    site = spec.site
    rt = site.runtime
    loop = asyncio.get_running_loop()
    mine = build_connectors(site)
    if sorted(c.name for c in mine) != sorted(spec.names):
        raise RuntimeError(f"worker {spec.index}: the connectors differ from the collector's")
    outbox = Outbox(conn, rt.queue_size, _parent_gone)
    sink = PipeSink(outbox, loop)
    stop = asyncio.Event()
    stopping = threading.Event()

    def read() -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                if not stopping.is_set():
                    _parent_gone()
                return
            try:
                if msg[0] == "ack":
                    loop.call_soon_threadsafe(sink.acked, msg[1], msg[2])
                elif msg[0] == "stop":
                    stopping.set()
                    loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop is closed: we are exiting
                return

    threading.Thread(target=read, name="worker-read", daemon=True).start()
    devices = {d for c in mine for d in c.devices}
    sup = Supervisor(
        mine,
        sink,
        HealthRelay(sink, outbox),
        Backoff(rt.backoff_initial_s, rt.backoff_max_s, rt.healthy_after_s),
        points={d.id: [p.id for p in d.points] for d in site.devices if d.id in devices},
    )
    outbox.event(("ready", spec.index))
    with switch_interval(rt.gil_switch_ms):
        sup_task = asyncio.create_task(sup.run(), name="worker-supervisor")
        stats_task = asyncio.create_task(_stats_loop(mine, outbox), name="worker-stats")
        stop_task = asyncio.create_task(stop.wait())
        await asyncio.wait({sup_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        for t in (sup_task, stats_task, stop_task):
            t.cancel()
        for t in (sup_task, stats_task, stop_task):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
    stats = _stats(mine)
    if stats:
        outbox.event(("stats", stats))
    sink.flush()
    outbox.event(("bye", spec.index))
    outbox.close()


def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    """The worker process's entry point (see the module docstring)."""
    logging.basicConfig(
        level=spec.log_level,
        format=f"%(asctime)s %(levelname)s worker{spec.index} %(name)s: %(message)s",
    )
    try:
        asyncio.run(_run(spec, conn))
    except Exception as exc:
        log.error("worker %d failed: %r", spec.index, exc)
        with contextlib.suppress(OSError, ValueError):
            conn.send(("fatal", f"{exc!r}"))
        os._exit(1)
    conn.close()
