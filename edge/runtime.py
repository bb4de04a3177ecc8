"""The collector: connectors -> supervisor -> queue -> writer -> store, plus health.

``await Collector(site).run(stop)`` runs until ``stop`` is set. At start it writes the restart
record (config.markers): from the store's last heartbeat and newest samples
(``SqliteStore.newest``), a ``gateway_down`` marker at 1 ns after the last instant the gateway
was known recording, for every point whose last stored sample is good, except the points a
connector takes over with ``resume`` (OPC UA with history: restored by backfill). While running
it writes the heartbeat series (``_gateway/alive``, every ``HEARTBEAT_S``, and once at the
stop) through the queue like any sample (store and evidence ledger). On stop it cancels the
connectors, marks their devices disconnected, flushes every queued sample to the store, writes
the final health records and closes the store. Sequence numbers continue after a restart
(the writer reads ``store.last_seq``). :func:`install_stop_signals` makes SIGINT/SIGTERM set
the stop event; a second signal (``on_repeat``) calls :meth:`Collector.force_stop`.

A stop waits for the flush: a store that keeps failing is retried (the writer gives a write
started after the stop 30 s, a write started before it retries on). A second stop request
(``force_stop``) ends that: the writer stops retrying, what is still queued gets one more write
attempt, and every remaining step (health, store close, final checkpoint) gets at most
:data:`FORCE_GRACE_S`; a step still running then is abandoned (listed in ``abandoned``: the
caller should exit the process, e.g. ``os._exit``, since the store's thread is stuck) and the
samples not stored are counted in ``unflushed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from config.markers import GATEWAY_DOWN, HEARTBEAT, HEARTBEAT_S, IMPORT_END
from config.models import SiteConfig
from connectors.base import NAN, Connector, Quality, Sample, now_ns
from connectors.registry import build_connectors
from edge.health import HealthTracker, touch_alive
from edge.memtrim import release_free_heap
from edge.queue import SampleQueue
from edge.recording import Recorder
from edge.store.base import Newest, Store
from edge.store.disk import DiskWatch
from edge.store.factory import open_store
from edge.store.ledger import EvidenceRecorder, Ledger, checkpoint_loop, open_evidence
from edge.supervisor import Backoff, Supervisor
from edge.workers import in_workers, worker_count
from edge.writer import BatchObserver, Writer

log = logging.getLogger("shopfloor.collector")

# the embedded store merges small chunks of data older than COMPACT_SETTLE_S every COMPACT_EVERY_S
COMPACT_EVERY_S = 60.0
COMPACT_SETTLE_S = 600
# the retention pass (storage.raw_retention_days) runs after a compaction at most this often
RETAIN_EVERY_S = 3600.0
# after a forced stop, each remaining shutdown step gets at most this long
FORCE_GRACE_S = 5.0
# samples drawn from an import's iterable per worker-thread call
IMPORT_CHUNK = 100_000


def heartbeat_wait(real_s: float, clock_s: float) -> float:
    """The real-time pause before the next heartbeat, so that heartbeats come every
    ``HEARTBEAT_S`` of the collector's clock, from the clock's rate over the last pause
    (``clock_s`` of the clock in ``real_s`` real seconds): at most ``HEARTBEAT_S``, at least
    50 ms (a clock at x60 beats every 1/6 s; a stopped or backward clock changes nothing)."""
    if real_s <= 0 or clock_s <= 0:
        return HEARTBEAT_S
    return min(HEARTBEAT_S, max(HEARTBEAT_S * real_s / clock_s, 0.05))


@contextlib.contextmanager
def switch_interval(ms: float) -> Iterator[None]:
    """``sys.setswitchinterval(ms / 1000)`` for the block (process-wide), then the previous."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(ms / 1000)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def heartbeat(ts: int) -> Sample:
    """One sample of the collector's heartbeat series (config.markers.HEARTBEAT)."""
    return Sample(HEARTBEAT[0], HEARTBEAT[1], ts, 1.0)


def last_alive(newest: Mapping[tuple[str, str], Newest]) -> int | None:
    """The last instant the store shows the gateway recording: its last heartbeat or its
    newest stored sample, whichever is later (None for a store without either)."""
    return max((n.last.ts for n in newest.values()), default=None)


def gateway_down_markers(
    newest: Mapping[tuple[str, str], Newest], alive: int, skip: Iterable[tuple[str, str]] = ()
) -> list[Sample]:
    """One ``gateway_down`` marker at ``alive + 1`` per point whose last stored sample is
    good (a point already ending in a marker or a bad reading is unknown anyway), except
    ``skip`` (points a connector restores or marks itself) and the heartbeat."""
    skipped = set(skip)
    return [
        Sample(key[0], key[1], alive + 1, NAN, Quality.BAD, GATEWAY_DOWN)
        for key, n in newest.items()
        if key != HEARTBEAT and key not in skipped and n.last.quality == Quality.GOOD
    ]


def _take(it: Iterator[Sample], n: int, last: dict[tuple[str, str], int]) -> list[Sample]:
    """The next ``n`` samples of ``it``; ``last`` keeps the newest timestamp of each
    (device, point) seen."""
    chunk = list(itertools.islice(it, n))
    get = last.get
    for s in chunk:
        key = (s.device, s.point)
        if s.ts > get(key, s.ts - 1):
            last[key] = s.ts
    return chunk


def import_end_markers(
    last: Mapping[tuple[str, str], int], end_ns: int | None = None
) -> list[Sample]:
    """One bad sample (NaN, status ``import_end``) per imported (device, point): imported
    history covers a known range, after it nothing is known, so the KPI engine must not hold
    the last imported state/value across the gap to the live data. The marker lies at
    ``end_ns`` (the end of the imported range, exclusive) or, without it, 1 ns after the
    series' last sample; never at or before a sample of its series (an ``end_ns`` inside the
    data gives way to last + 1 ns)."""
    return [
        Sample(
            device,
            point,
            ts + 1 if end_ns is None else max(end_ns, ts + 1),
            NAN,
            Quality.BAD,
            IMPORT_END,
        )
        for (device, point), ts in last.items()
    ]


def install_stop_signals(
    stop: asyncio.Event, on_repeat: Callable[[], None] | None = None
) -> Callable[[], None]:
    """SIGINT and SIGTERM set ``stop``; once ``stop`` is set, a further signal calls
    ``on_repeat`` (e.g. :meth:`Collector.force_stop`). Returns a function that removes the
    handlers (the default actions come back: SIGINT raises KeyboardInterrupt, SIGTERM ends the
    process), so no signal is ever ignored."""
    loop = asyncio.get_running_loop()
    installed: list[int] = []

    def handle(sig: int) -> None:
        if not stop.is_set():
            log.warning("%s: stopping (flushing what is queued)", signal.Signals(sig).name)
            stop.set()
        elif on_repeat is not None:
            log.warning("%s again: forcing the stop", signal.Signals(sig).name)
            on_repeat()

    for sig in (signal.SIGINT, signal.SIGTERM):
        # not the main thread, or no signal support: the default action stays
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, handle, sig)
            installed.append(sig)

    def remove() -> None:
        for sig in installed:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)

    return remove


def ledger_extra(ledger: Ledger) -> dict[str, Any]:
    """The evidence ledger's hand-off counters as health ``extra`` fields. The collector adds
    them to every device's record, like ``queue_len`` (both are the process's, not the
    device's): ``ledger_pending_samples`` (handed off, not yet appended),
    ``ledger_dropped_batches`` / ``ledger_dropped_samples`` (acknowledged but never logged: the
    hand-off gave up after ``handoff_timeout_s``; the ledger logs a ``seq_gap`` leaf),
    ``ledger_append_errors`` (groups whose transaction failed), ``ledger_waits`` (hand-offs
    that found the FIFO full), ``ledger_max_pending_samples`` (high-water mark) and
    ``ledger_cpu_s`` (CPU seconds of the ledger thread's appends)."""
    st = ledger.handoff
    return {
        "ledger_pending_samples": ledger.pending_samples(),
        "ledger_dropped_batches": st.dropped_batches,
        "ledger_dropped_samples": st.dropped_samples,
        "ledger_append_errors": st.append_errors,
        "ledger_waits": st.waits,
        "ledger_max_pending_samples": st.max_pending_samples,
        "ledger_cpu_s": round(st.cpu_s, 3),
    }


class Collector:
    """Everything the edge runs for one site file."""

    def __init__(
        self,
        site: SiteConfig,
        *,
        store: Store | None = None,
        connectors: Sequence[Connector] | None = None,
        observers: Sequence[BatchObserver] = (),
        evidence: bool | None = None,
        time_ns: Callable[[], int] = now_ns,
    ) -> None:
        self.site = site
        # the clock of the link_lost samples (the gateway's; the demo passes its factory clock)
        self.time_ns = time_ns
        rt = site.runtime
        # the evidence ledger (edge.store.ledger): on by default for a real run (no injected
        # store) when site.evidence.enabled; tests pass evidence=True to have it
        self._evidence_wanted = (
            evidence if evidence is not None else (site.evidence.enabled and store is None)
        )
        self.evidence: EvidenceRecorder | None = None
        self._store = store
        self._connectors = connectors
        # import-only devices have no connection: no health record, no restart marker
        self.health = HealthTracker(d.id for d in site.devices if not d.import_only)
        # the gateway's files against runtime.disk (disk_* fields of every health record)
        self.disk = DiskWatch(site)
        self.queue = SampleQueue(
            rt.queue_size, rt.overflow, on_link=self.health.link, on_error=self.health.error
        )
        self.observers = list(observers)
        self.writer: Writer | None = None
        self.supervisor: Supervisor | None = None
        self.ready = asyncio.Event()
        self.stopped = False
        self.imported_batches = 0
        self.forced = False
        self.unflushed = 0  # samples a forced stop could not store
        self.abandoned: list[asyncio.Task[Any]] = []  # shutdown steps a forced stop left running
        self._force = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self.restart_markers = 0  # gateway_down markers written at start
        self._retained_at = -float("inf")  # monotonic time of the last retention pass
        self.retention_extra: dict[str, int] = {}  # its figures in every health record

    def force_stop(self) -> None:
        """A second stop request: no more store retries; flush what can be flushed within
        :data:`FORCE_GRACE_S` per step, then let ``run`` return (idempotent)."""
        if self.forced:
            return
        self.forced = True
        log.warning(
            "forced stop: no more store retries; %d queued samples get one last write attempt",
            len(self.queue),
        )
        self._force.set()
        t = self._writer_task
        if t is not None and not t.done():
            t.cancel()

    def add_observer(self, observer: BatchObserver) -> None:
        """Plug an observer in before ``run`` (e.g. the evidence ledger)."""
        self.observers.append(observer)

    async def _health_loop(self, writer: Writer) -> None:
        while True:
            await asyncio.sleep(self.site.runtime.health_interval_s)
            await self._write_health(writer)

    async def _compact_loop(self, writer: Writer) -> None:
        """Merge the small chunks of settled data (embedded store) in the store's thread."""
        compact = getattr(writer.store, "compact", None)
        if compact is None:
            return
        while True:
            await asyncio.sleep(COMPACT_EVERY_S)
            try:
                removed = await writer.call(compact, now_ns() - COMPACT_SETTLE_S * 10**9)
            except Exception as exc:
                log.error("store compaction failed: %r", exc)
            else:
                if removed:
                    log.info("store compaction merged %d chunk rows", removed)
            await self._retain(writer)

    async def _retain(self, writer: Writer) -> None:
        """The retention pass (edge.store.retention) at most every RETAIN_EVERY_S, after a
        compaction: only with ``storage.raw_retention_days`` and an evidence ledger."""
        from edge.store.sqlite import SqliteStore

        days = getattr(self.site.storage, "raw_retention_days", None)
        store = writer.store
        if days is None or self.evidence is None or not isinstance(store, SqliteStore):
            return
        now = time.monotonic()
        if now - self._retained_at < RETAIN_EVERY_S:
            return
        self._retained_at = now
        from edge.store.retention import retain

        try:
            res = await writer.call(retain, store, self.evidence.ledger, days)
            totals = await writer.call(store.retention_totals)
        except Exception as exc:
            log.error("store retention failed: %r", exc)
            return
        self.retention_extra = {
            "store_raw_horizon_ns": res.horizon,
            "store_retention_samples_removed": totals.get("retention_samples_removed", 0),
            "store_retention_chunks_removed": totals.get("retention_chunks_removed", 0),
        }
        if res.samples_removed:
            log.info(
                "store retention removed %d raw samples (%d chunks) before %d",
                res.samples_removed,
                res.chunks_removed,
                res.horizon,
            )

    async def _write_health(self, writer: Writer) -> None:
        alive = self.site.runtime.alive_file
        if alive is not None:  # the event loop runs: a liveness probe checks the file's age
            touch_alive(self.site.resolve(alive))
        # the heartbeat's drops are the gateway's (in the ledger's drop counts), not a device's
        self.health.set_drops({d: n for d, n in self.queue.drops.items() if d != HEARTBEAT[0]})
        records = self.health.snapshot()
        ledger = ledger_extra(self.evidence.ledger) if self.evidence is not None else {}
        disk = self.disk.extra()
        for h in records:
            h.extra["queue_len"] = len(self.queue)
            h.extra.update(ledger)
            h.extra.update(disk)
            h.extra.update(self.retention_extra)
        # per-device figures a connector keeps itself (Modbus: requests/s, latency, splits)
        for c in self.supervisor.connectors if self.supervisor is not None else ():
            device_stats = getattr(c, "device_stats", None)
            if callable(device_stats):
                per_device = device_stats()
                for h in records:
                    h.extra.update(per_device.get(h.device, {}))
        try:
            await writer.call(writer.store.write_health, records)
        except Exception as exc:
            log.error("cannot write health records: %s", exc)

    async def import_history(self, samples: Iterable[Sample], *, end_ns: int | None = None) -> int:
        """Store historical samples (source ``import:<device>``) while running; returns the
        number of batches written.

        The samples are drawn off the event loop (in a worker thread, :data:`IMPORT_CHUNK` at a
        time), so a slow generator or parser does not stall the connectors. The import ends
        with one bad ``import_end`` sample per imported (device, point) (see
        :func:`import_end_markers`) at ``end_ns`` (the end of the imported range, exclusive),
        or 1 ns after each series' last sample when ``end_ns`` is None; the markers go in the
        last batch of their device."""
        writer = self.writer
        if writer is None:
            raise RuntimeError("the collector is not running")
        it = iter(samples)
        last: dict[tuple[str, str], int] = {}
        n = 0
        chunk = await asyncio.to_thread(_take, it, IMPORT_CHUNK, last)
        while chunk:
            # one chunk ahead: the markers join the import's last chunk (no extra batch)
            nxt = await asyncio.to_thread(_take, it, IMPORT_CHUNK, last)
            if not nxt:
                chunk.extend(import_end_markers(last, end_ns))
            n += await writer.write_import(chunk)
            chunk = nxt
        return n

    async def _restart_record(self, writer: Writer, connectors: Sequence[Connector]) -> None:
        """Record that the gateway was down (config.markers, ``gateway_down``): from the
        store's last heartbeat and newest samples, one marker per configured point whose last
        stored sample is good, at 1 ns after the last instant the gateway was known recording,
        except for the points a connector takes over (:meth:`OpcUaConnector.resume`: it
        restores them from the device's history and marks only what it cannot give back)."""
        reader = getattr(writer.store, "newest", None)
        if reader is None:
            log.info("the store cannot tell where its series end: no restart record")
            return
        keys = [(d.id, p.id) for d in self.site.devices if not d.import_only for p in d.points]
        try:
            newest: dict[tuple[str, str], Newest] = await writer.call(reader, [*keys, HEARTBEAT])
        except Exception as exc:
            # collecting matters more than the record of the past: go on without it
            log.error("cannot read where the stored series end: no restart record: %r", exc)
            return
        alive = last_alive(newest)
        taken: set[tuple[str, str]] = set()
        for c in connectors:
            resume = getattr(c, "resume", None)
            if callable(resume):
                taken |= resume(newest, alive, self.time_ns)
        if alive is None:
            return  # nothing recorded yet
        markers = gateway_down_markers(newest, alive, taken)
        if markers:
            self.queue.put_many(markers)
        self.restart_markers = len(markers)
        log.info(
            "restart: the gateway was last known recording at %d; %d gateway_down markers "
            "(%d points left to their connector's history)",
            alive,
            len(markers),
            len(taken),
        )

    def _beat(self) -> None:
        """One heartbeat into the queue, unless the queue is full (a heartbeat never costs a
        device's sample: the next one comes HEARTBEAT_S later)."""
        q = self.queue
        if not q.closed and len(q) < q.capacity:
            q.put(heartbeat(self.time_ns()))

    async def _heartbeat_loop(self) -> None:
        """The heartbeat series every HEARTBEAT_S of the collector's clock, through the normal
        sink (the pause follows the clock's measured rate: the demo's factory clock runs faster
        than real time until it catches up with it)."""
        wait = HEARTBEAT_S
        while True:
            real0, clock0 = time.monotonic(), self.time_ns()
            await asyncio.sleep(wait)
            self._beat()
            wait = heartbeat_wait(time.monotonic() - real0, (self.time_ns() - clock0) / 1e9)

    async def _start_connectors(
        self,
        supervisor: Supervisor,
        history: Iterable[Sample] | None,
        history_end_ns: int | None,
        before_connectors: Callable[[], Awaitable[None]] | None,
    ) -> None:
        """Write the restart record, import ``history``, run ``before_connectors``, start the
        heartbeat, then the connectors (never returns)."""
        assert self.writer is not None
        await self._restart_record(self.writer, supervisor.connectors)
        self._beat()
        self._heartbeat_task = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")
        if history is not None:
            self.imported_batches = await self.import_history(history, end_ns=history_end_ns)
        if before_connectors is not None:
            await before_connectors()
        # start-up's short-lived structures are freed by now: give their memory back
        release_free_heap()
        self.ready.set()
        await supervisor.run()

    async def run(
        self,
        stop: asyncio.Event,
        *,
        history: Iterable[Sample] | None = None,
        history_end_ns: int | None = None,
        before_connectors: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Collect until ``stop`` is set, with the process's thread switch interval at
        ``runtime.gil_switch_ms`` meanwhile (restored on return).

        The connectors' event loop gives the GIL up on every socket call and waits for it
        back while the store and ledger threads compute: with Python's default 5 ms that
        wait, not the work, sets the ceiling (docs/BENCHMARKS.md, sizing)."""
        with switch_interval(self.site.runtime.gil_switch_ms):
            await self._run(
                stop,
                history=history,
                history_end_ns=history_end_ns,
                before_connectors=before_connectors,
            )

    async def _run(
        self,
        stop: asyncio.Event,
        *,
        history: Iterable[Sample] | None,
        history_end_ns: int | None,
        before_connectors: Callable[[], Awaitable[None]] | None,
    ) -> None:
        """Collect until ``stop`` is set.

        ``history`` (optional) is imported (source ``import:<device>``, closed by ``import_end``
        markers at ``history_end_ns``, see :meth:`import_history`) before any connector
        starts, so a long import never competes with the first connects; ``before_connectors``
        (optional) runs after the import and before the connectors (the demo starts its
        simulators there). ``ready`` is set once the connectors start. An exception of the
        import or of ``before_connectors`` stops the collector (everything queued is flushed,
        the store closed) and is raised from ``run``."""
        rt = self.site.runtime
        # connectors first: a point they cannot read fails before anything is opened
        connectors = (
            list(self._connectors) if self._connectors is not None else build_connectors(self.site)
        )
        n_workers = worker_count(rt.workers, os.cpu_count())
        if n_workers and self._connectors is None:
            connectors = in_workers(
                self.site,
                connectors,
                n_workers,
                health=self.health,
                on_drops=self._add_drops,
                backlog=lambda: len(self.queue) / self.queue.capacity,
            )
        observers = list(self.observers)
        store = self._store if self._store is not None else open_store(self.site)
        if self._evidence_wanted:
            try:
                self.evidence = open_evidence(self.site)
            except BaseException:
                if self._store is None:
                    store.close()
                raise
            observers.append(self.evidence)
        writer = Writer(
            store,
            self.queue,
            recorder=Recorder.for_site(self.site),
            health=self.health,
            observers=observers,
            batch_max_samples=rt.batch_max_samples,
            flush_interval_ms=rt.flush_interval_ms,
        )
        self.writer = writer
        self.supervisor = Supervisor(
            connectors,
            self.queue,
            self.health,
            Backoff(rt.backoff_initial_s, rt.backoff_max_s, rt.healthy_after_s),
            points={d.id: [p.id for p in d.points] for d in self.site.devices},
            time_ns=self.time_ns,
        )
        writer_task = asyncio.create_task(writer.run(), name="writer")
        self._writer_task = writer_task
        if self.forced:
            writer_task.cancel()
        sup_task = asyncio.create_task(
            self._start_connectors(self.supervisor, history, history_end_ns, before_connectors),
            name="supervisor",
        )
        health_task = asyncio.create_task(self._health_loop(writer), name="health")
        compact_task = asyncio.create_task(self._compact_loop(writer), name="compaction")
        stop_task = asyncio.create_task(stop.wait(), name="stop")
        ev_task = (
            asyncio.create_task(
                checkpoint_loop(
                    self.evidence, self.site.evidence.checkpoint_interval_s, self._drops
                ),
                name="checkpoints",
            )
            if self.evidence is not None
            else None
        )
        failure: BaseException | None = None
        try:
            done, _ = await asyncio.wait(
                {writer_task, sup_task, stop_task}, return_when=asyncio.FIRST_COMPLETED
            )
            for t in done:
                if t is not stop_task and not t.cancelled() and t.exception() is not None:
                    log.error("%s stopped: %r", t.get_name(), t.exception())
                    if t is sup_task and not self.ready.is_set():
                        failure = t.exception()
        finally:
            if ev_task is not None:
                ev_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ev_task
            try:
                compact_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await compact_task
                await self._shutdown(writer, writer_task, sup_task, health_task, stop_task)
            finally:
                if self.evidence is not None:
                    await self._step(
                        asyncio.to_thread(self._close_evidence, self.evidence), "evidence close"
                    )
        if failure is not None:
            raise failure

    def _add_drops(self, drops: Mapping[str, int]) -> None:
        """Samples a connector worker process dropped (edge.workers): counted as the queue's."""
        counts = self.queue.drops
        for device, n in drops.items():
            counts[device] = counts.get(device, 0) + n

    def _drops(self) -> dict[str, int]:
        return dict(self.queue.drops)

    def _close_evidence(self, ev: EvidenceRecorder) -> None:
        """Final drops and checkpoint once everything queued is stored, then close."""
        try:
            ev.note_drops(self._drops())
            ev.checkpoint()
        except Exception as exc:
            log.error("evidence: final checkpoint failed: %r", exc)
        finally:
            ev.ledger.close()

    async def _shutdown(
        self,
        writer: Writer,
        writer_task: asyncio.Task[None],
        sup_task: asyncio.Task[None],
        health_task: asyncio.Task[None],
        stop_task: asyncio.Task[bool],
    ) -> None:
        tasks = [sup_task, health_task, stop_task]
        if self._heartbeat_task is not None:
            tasks.append(self._heartbeat_task)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._heartbeat_task is not None:
            # the last instant the gateway was recording (the next start marks from here)
            self._beat()
        for dev in self.site.devices:
            if not dev.import_only:
                self.health.link(dev.id, False)
        for c in self.supervisor.connectors if self.supervisor else ():
            for d in c.devices:
                self.health.link(d, False)
        self.queue.close()
        try:
            await asyncio.shield(writer_task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.forced and writer_task.cancelled() and not (current and current.cancelling()):
                await self._final_flush(writer)
            else:
                # a second cancellation while flushing: finish the flush, then propagate
                await writer_task
                raise
        except Exception as exc:
            log.error("writer failed while flushing: %r", exc)
        finally:
            await self._step(self._write_health(writer), "health write")
            await self._step(writer.close(), "store close")
            self.stopped = True

    async def _final_flush(self, writer: Writer) -> None:
        """(Forced stop) one write attempt for what is still queued, within FORCE_GRACE_S."""
        queued = len(self.queue)
        items = self.queue.take_nowait(queued)
        if not items:
            return
        groups = writer.prepare(items)
        try:
            # asyncio.timeout, not wait_for (3.11's wait_for can drop a cancellation that
            # arrives as the write completes)
            async with asyncio.timeout(FORCE_GRACE_S):
                await writer.persist(groups, give_up_s=0.0)
        except (Exception, TimeoutError) as exc:
            self.unflushed += queued
            log.error("forced stop: %d queued samples not stored: %r", queued, exc)

    async def _step(self, aw: Awaitable[object], what: str) -> None:
        """Await a shutdown step; after a forced stop give it at most FORCE_GRACE_S, then
        leave it running (``abandoned``)."""
        task = asyncio.ensure_future(aw)
        force = asyncio.create_task(self._force.wait())
        try:
            await asyncio.wait({task, force}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                await asyncio.wait({task}, timeout=FORCE_GRACE_S)
        except asyncio.CancelledError:
            # cancelled while shutting down: finish the step, then propagate
            await asyncio.shield(task)
            raise
        finally:
            force.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await force
        if not task.done():
            log.error("forced stop: %s did not finish within %.0f s; left", what, FORCE_GRACE_S)
            self.abandoned.append(task)
        elif not task.cancelled() and task.exception() is not None:
            log.error("%s failed: %r", what, task.exception())
