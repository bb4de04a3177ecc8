"""The batching writer: queue -> change-based recording -> per-device batches -> store.

The writer takes up to ``batch_max_samples`` samples off the queue (or what arrived within
``flush_interval_ms``), counts them in the device health, filters them through the recording
rules, splits them per device into ``Batch(source=device, seq=last_seq(device)+1, ...)`` (the
samples in the order they arrived), and stores them with ``store.write_batches`` in the
writer's own thread: the store is only ever used from that one thread (a single-worker executor
rather than ``asyncio.to_thread``, whose pool may switch threads). When ``write_batches`` returned,
the batches are *acknowledged* (and the queue told so, :meth:`edge.queue.SampleQueue.stored`);
samples the store already holds are left out first (:mod:`edge.dedupe`); when the queue holds a
backlog, up to ``max_takes`` full takes
go into one ``write_batches`` call (one transaction, one fsync). Then every
:class:`BatchObserver` is called with them, in the same thread, in order. A failing write is
retried with capped backoff and keeps the samples (the queue meanwhile absorbs new ones,
counting drops if it overflows).

Columnar hand-over (issue 16): the writer takes the queue's entries as they were put
(:meth:`edge.queue.SampleQueue.take_batch`): :class:`connectors.base.SampleBlock` columns from
connectors that hand blocks (Modbus), single samples from the others (each device's runs of
them made into one block). From there a device's samples stay columns: health counts a block
with a few array reductions (:meth:`edge.health.HealthTracker.observe_block`), the recorder
passes blocks of devices without deadbands untouched, the deduplicator checks a block with one
array compare (:meth:`edge.dedupe.Deduplicator.filter_block`), and each batch holds its
device's blocks concatenated (``Batch(source, seq, block=...)``; ``Batch.samples`` is built
only for a consumer that asks for it, such as the InfluxDB store).

Columns read once: when the store has ``write_batch_columns(batches, columns)`` (same contract
as ``write_batches``, plus the samples as :class:`metrics.evidence.canonical.SampleColumns`),
the writer builds the columns once per write call (concatenating the batches' arrays,
:meth:`SampleColumns.of_blocks`; read off the ``Sample`` objects only for batches given as
samples, such as imports), hands them to the store, and to every observer that has
``stored_columns(batches, columns)`` (the evidence ledger); other observers get
``stored(batches)``. Without that store hook the ledger builds them from the batches itself, on
its own thread when it runs in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar, cast

from config.markers import HEARTBEAT_DEVICE
from connectors.base import JoinedPoints, Sample, SampleBlock
from edge.dedupe import Deduplicator
from edge.health import HealthTracker
from edge.queue import SampleQueue
from edge.recording import Recorder
from edge.store.base import Batch, Store
from metrics.evidence.canonical import SampleColumns

log = logging.getLogger("shopfloor.writer")

T = TypeVar("T")

IMPORT_PREFIX = "import:"


class BatchObserver(Protocol):
    def stored(self, batches: Sequence[Batch]) -> None:
        """Called after the store acknowledged ``batches`` (from the writer's thread)."""
        ...


Group = tuple[str, Sequence[Sample] | Sequence[SampleBlock]]
"""What the writer stores as one batch: (source, its samples as objects or as blocks)."""


def blocks_by_device(items: Iterable[Sample | SampleBlock]) -> dict[str, list[SampleBlock]]:
    """Queue entries split per device (first appearance order), each device's as blocks in
    arrival order: blocks as they are, runs of single samples made into one block each."""
    parts: dict[str, list[Sample | SampleBlock]] = {}
    for x in items:
        g = parts.get(x.device)
        if g is None:
            parts[x.device] = [x]
        else:
            g.append(x)
    out: dict[str, list[SampleBlock]] = {}
    for device, got in parts.items():
        blocks: list[SampleBlock] = []
        run: list[Sample] = []
        for x in got:
            if isinstance(x, SampleBlock):
                if run:
                    blocks.append(SampleBlock.of_samples(device, run))
                    run = []
                blocks.append(x)
            else:
                run.append(x)
        if run:
            blocks.append(SampleBlock.of_samples(device, run))
        out[device] = blocks
    return out


def group_by_device(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        g = groups.get(s.device)
        if g is None:
            groups[s.device] = [s]
        else:
            g.append(s)
    return groups


class Writer:
    """Owns the store from its own thread; see the module docstring."""

    def __init__(
        self,
        store: Store,
        queue: SampleQueue,
        *,
        recorder: Recorder | None = None,
        health: HealthTracker | None = None,
        observers: Sequence[BatchObserver] = (),
        batch_max_samples: int = 5000,
        flush_interval_ms: int = 200,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 10.0,
        max_takes: int = 8,
        dedupe: bool = True,
    ) -> None:
        self.store = store
        self.queue = queue
        self.recorder = recorder or Recorder({})
        self.health = health
        self.observers = list(observers)
        # a device's reads joined into one points tuple, the same object every poll (the store
        # and the deduplicator cache by its identity)
        self._joined = JoinedPoints()
        self.batch_max_samples = batch_max_samples
        self.flush_s = flush_interval_ms / 1000.0
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.max_takes = max(1, max_takes)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="shopfloor-store")
        self._flush_latest: Callable[[], None] | None = getattr(store, "flush_latest", None)
        # the store's columns hook, when it has one (see the module docstring)
        self._write_columns: Callable[[Sequence[Batch], SampleColumns], None] | None = getattr(
            store, "write_batch_columns", None
        )
        self._seq: dict[str, int] = {}
        # samples already stored are not stored again (edge.dedupe); imports are not checked
        self.dedupe: Deduplicator | None = Deduplicator(store) if dedupe else None
        self.acked_batches = 0
        self.acked_samples = 0
        self.received = 0
        self.write_failures = 0
        self.observer_errors = 0
        self._closed = False

    # -- the store thread ---------------------------------------------------------------------

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` in the store's thread."""
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        return await loop.run_in_executor(self._executor, functools.partial(ctx.run, fn, *args))

    def _filtered(self, groups: Sequence[Group]) -> list[tuple[str, Batch]]:
        """Each group without the samples already stored (imports are not checked), as the
        content of a batch (columns when the group is blocks); empty groups left out."""
        dedupe = self.dedupe
        joined = self._joined
        out: list[tuple[str, Batch]] = []
        for source, content in groups:
            if not content:
                continue
            check = dedupe is not None and not source.startswith(IMPORT_PREFIX)
            if isinstance(content[0], SampleBlock):
                blocks = cast(Sequence[SampleBlock], content)
                if check:
                    assert dedupe is not None
                    blocks = [k for b in blocks if (k := dedupe.filter_block(b)) is not None]
                if blocks:
                    out.append((source, Batch(source, 0, block=SampleBlock.concat(blocks, joined))))
            else:
                samples = cast(Sequence[Sample], content)
                if check:
                    assert dedupe is not None
                    samples = dedupe.filter(source, list(samples))
                if samples:
                    out.append((source, Batch(source, 0, samples)))
        return out

    def _persist(self, groups: Sequence[Group]) -> list[Batch]:
        """(In the store thread) number, write and announce one batch per group."""
        dedupe = self.dedupe
        try:
            kept = self._filtered(groups)
        except BaseException:
            if dedupe is not None:
                dedupe.reset()
            raise
        if not kept:
            return []
        batches: list[Batch] = []
        numbered: dict[str, int] = {}
        for source, content in kept:
            seq = numbered.get(source)
            if seq is None:
                seq = self._seq.get(source)
            if seq is None:
                seq = self.store.last_seq(source)
            numbered[source] = seq + 1
            block = content.block if content.columnar else None
            if block is not None:
                batches.append(Batch(source, seq + 1, block=block))
            else:
                batches.append(Batch(source, seq + 1, content.samples))
        columns: SampleColumns | None = None
        try:
            if self._write_columns is not None:
                if all(b.columnar for b in batches):
                    # the blocks' arrays concatenated: no sample read one by one
                    columns = SampleColumns.of_blocks(
                        [blk for b in batches if (blk := b.block) is not None]
                    )
                else:
                    columns = SampleColumns.of([b.samples for b in batches])
                self._write_columns(batches, columns)
            else:
                self.store.write_batches(batches)
        except BaseException:
            # re-read sequence numbers (and the newest stored samples) before the retry
            self._seq.clear()
            if dedupe is not None:
                dedupe.reset()
            raise
        for b in batches:
            self._seq[b.source] = b.seq
        self.acked_batches += len(batches)
        self.acked_samples += sum(b.count for b in batches)
        for obs in self.observers:
            try:
                with_columns = getattr(obs, "stored_columns", None) if columns else None
                if with_columns is not None:
                    with_columns(batches, columns)
                else:
                    obs.stored(batches)
            except Exception:
                self.observer_errors += 1
                log.exception("batch observer %r failed", obs)
        return batches

    async def persist(
        self, groups: Sequence[Group], *, give_up_s: float | None = None
    ) -> list[Batch]:
        """Write the groups, retrying a failing store with capped backoff (forever, or until
        ``give_up_s`` when given: then the error propagates)."""
        delay = self.retry_initial_s
        waited = 0.0
        while True:
            try:
                return await self.call(self._persist, groups)
            except Exception as exc:
                self.write_failures += 1
                kind = f"store:{type(exc).__name__}"
                if self.health is not None:
                    for source, _ in groups:
                        self.health.error(source, kind)
                if give_up_s is not None and waited >= give_up_s:
                    raise
                log.error("store write failed (%s), retrying in %.1fs: %s", kind, delay, exc)
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, self.retry_max_s)

    async def _write_then_release(
        self, groups: Sequence[Group], upto: int, *, give_up_s: float | None
    ) -> list[Batch]:
        """:meth:`persist`, then tell the queue that everything taken up to position ``upto``
        is stored (connectors waiting for a durable hand-over, see :mod:`edge.queue`)."""
        batches = await self.persist(groups, give_up_s=give_up_s)
        self.queue.stored(upto)
        return batches

    # -- the loop -----------------------------------------------------------------------------

    def prepare(self, items: Sequence[Sample | SampleBlock]) -> list[Group]:
        """Count, filter and split what was taken off the queue (samples and blocks) into
        (device, blocks): per device its blocks in arrival order (runs of single samples made
        into blocks), counted in health and filtered by the recording rules per block."""
        health = self.health
        recorder = self.recorder
        out: list[Group] = []
        for device, blocks in blocks_by_device(items).items():
            self.received += sum(len(b) for b in blocks)
            # the heartbeat is the gateway's, not a device's: no health record of its own
            if health is not None and device != HEARTBEAT_DEVICE:
                for b in blocks:
                    health.observe_block(b)
            if recorder.active:
                blocks = [k for b in blocks if (k := recorder.filter_block(b)) is not None]
            if blocks:
                out.append((device, blocks))
        return out

    async def run(self) -> None:
        """Write until the queue is closed and empty.

        One write is in flight while the next take is prepared (the store's thread waits on
        the disk while the loop counts and filters); writes stay in order because the next one
        is submitted only after the previous one was acknowledged."""
        q = self.queue
        pending: asyncio.Task[list[Batch]] | None = None
        try:
            while True:
                items = await q.take_batch(self.batch_max_samples, self.flush_s)
                if items:
                    groups = self.prepare(items)
                    # a backlog: more full batches in the same transaction (one commit, one fsync)
                    for _ in range(self.max_takes - 1):
                        if len(q) < self.batch_max_samples:
                            break
                        groups += self.prepare(q.take_nowait(self.batch_max_samples))
                    upto = q.taken
                    if pending is not None:
                        await pending
                        pending = None
                    if groups:
                        pending = asyncio.create_task(
                            self._write_then_release(
                                groups, upto, give_up_s=30.0 if q.closed else None
                            )
                        )
                    else:  # every sample filtered out: settled as soon as the writes before
                        q.stored(upto)
                elif q.closed:
                    break
                elif self._flush_latest is not None and (pending is None or pending.done()):
                    # a quiet interval: write what the store held back (its latest values)
                    try:
                        await self.call(self._flush_latest)
                    except Exception as exc:
                        log.error("cannot write the latest values: %r", exc)
            if pending is not None:
                await pending
        finally:
            if pending is not None and not pending.done():
                # cancelled: the store thread finishes the write it started; stop retrying
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending

    async def write_import(self, samples: Iterable[Sample], *, batch_size: int = 50_000) -> int:
        """Store historical samples as batches with source ``import:<device>`` (no recording
        filter, not counted in health). Returns the number of batches written."""
        n = 0
        pending: dict[str, list[Sample]] = {}
        for s in samples:
            g = pending.setdefault(s.device, [])
            g.append(s)
            if len(g) >= batch_size:
                await self.persist([(IMPORT_PREFIX + s.device, g)])
                pending[s.device] = []
                n += 1
        for device, g in pending.items():
            if g:
                await self.persist([(IMPORT_PREFIX + device, g)])
                n += 1
        return n

    async def close(self) -> None:
        """Close the store in its thread and stop the thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.call(self.store.close)
        finally:
            self._executor.shutdown(wait=True)
