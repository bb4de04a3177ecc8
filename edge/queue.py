"""The bounded sample queue between the connectors and the writer.

:class:`SampleQueue` is the :class:`connectors.base.Sink` every connector pushes into. It is
bounded (``runtime.queue_size``) with an explicit overflow policy:

- ``drop_oldest``: a new sample evicts the oldest queued one (keeps the freshest data);
- ``drop_newest``: a new sample is refused while the queue is full (keeps what is queued).

Every dropped sample is counted for its device. ``put_block`` queues a
:class:`connectors.base.SampleBlock` as one entry (the columnar hot path); capacity, drops and
positions still count samples, and a block is split when part of it overflows or is taken.
The writer takes entries as they were put (:meth:`SampleQueue.take_batch`); ``get_batch``
and ``get_nowait`` give :class:`Sample` objects. All Sink methods are non-blocking and are called
from the event loop thread.

Durable hand-over: :meth:`SampleQueue.when_stored` lets a connector learn when what it has put
so far is written (the MQTT connector acknowledges a message to its broker only then). Every
sample has a position (appended in order); the writer reports with :meth:`stored` up to which
position the store acknowledged (writes are in order). A registration whose samples may have
been dropped (an overflow after or during their put) is called with ``False``: the caller must
not treat them as stored. A pending registration makes the writer take at once instead of
waiting for a fuller batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterable
from typing import Literal

from connectors.base import Sample, SampleBlock

Overflow = Literal["drop_oldest", "drop_newest"]
Item = Sample | SampleBlock


class _Wait:
    """A :meth:`SampleQueue.when_stored` registration: settled once position ``mark`` is."""

    __slots__ = ("callback", "mark", "ok")

    def __init__(self, mark: int, ok: bool, callback: Callable[[bool], None]) -> None:
        self.mark = mark
        self.ok = ok
        self.callback = callback


class SampleQueue:
    """Bounded FIFO of samples with per-device drop counters; implements ``Sink``.

    It holds what the connectors put, as they put it: single :class:`Sample` objects and
    :class:`SampleBlock` columns (``put_block``, the hot path: no object per sample). Capacity,
    drops and positions count samples, never blocks; a block is split when only part of it is
    evicted, refused or taken. ``on_link(device, connected)`` and ``on_error(device, kind)``
    receive the connectors' link and error reports (the health tracker plugs in there).
    """

    def __init__(
        self,
        capacity: int,
        overflow: Overflow = "drop_oldest",
        *,
        on_link: Callable[[str, bool], None] | None = None,
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("queue capacity must be at least 1")
        if overflow not in ("drop_oldest", "drop_newest"):
            raise ValueError(f"unknown overflow policy {overflow!r}")
        self.capacity = capacity
        self.overflow: Overflow = overflow
        self._items: deque[Item] = deque()
        self._n = 0  # samples queued (a block counts its rows)
        self.drops: dict[str, int] = {}
        self.accepted = 0
        self._on_link = on_link
        self._on_error = on_error
        self._waiter: asyncio.Future[None] | None = None
        self._want = 0
        self._closed = False
        # durable hand-over (see the module docstring): positions of appended / removed samples
        self._tail = 0
        self._head = 0
        self._stored_upto = 0
        self._refused = False  # a put refused samples since the last registration
        self._stored_waits: deque[_Wait] = deque()

    # -- Sink -------------------------------------------------------------------------------

    def put(self, sample: Sample) -> None:
        if self._n >= self.capacity:
            if self.overflow == "drop_newest":
                self._drop(sample.device)
                self._refused = True
                return
            self._evicted()
            self._evict(1)
        self._items.append(sample)
        self._n += 1
        self._tail += 1
        self.accepted += 1
        if self._waiter is not None and self._n >= self._want:
            self._wake()

    def put_many(self, samples: Iterable[Sample]) -> None:
        items = self._items
        batch = samples if isinstance(samples, list | tuple) else list(samples)
        n = len(batch)
        room = self.capacity - self._n
        if n <= room:
            items.extend(batch)
            self._n += n
            self._tail += n
            self.accepted += n
        elif self.overflow == "drop_newest":
            if room > 0:
                items.extend(batch[:room])
                self._n += room
            self._tail += max(room, 0)
            self.accepted += max(room, 0)
            self._refused = True
            for s in batch[max(room, 0) :]:
                self._drop(s.device)
        else:
            # drop_oldest: the newest `capacity` of (queued + new) survive
            self._evicted()
            if n >= self.capacity:
                self._evict(self._n)
                self._refused = True
                for s in batch[: n - self.capacity]:
                    self._drop(s.device)
                items.extend(batch[n - self.capacity :])
                self._n += self.capacity
                self._tail += self.capacity
            else:
                self._evict(n - room)
                items.extend(batch)
                self._n += n
                self._tail += n
            self.accepted += min(n, self.capacity)
        if self._waiter is not None and self._n >= self._want:
            self._wake()

    def put_block(self, block: SampleBlock) -> None:
        """The rows of ``block``, queued as the block itself (one deque entry; split only when
        part of it overflows): :meth:`put_many` without an object per sample."""
        n = len(block)
        if not n:
            return
        room = self.capacity - self._n
        if n <= room:
            self._items.append(block)
            self._n += n
            self._tail += n
            self.accepted += n
        elif self.overflow == "drop_newest":
            keep = max(room, 0)
            if keep:
                self._items.append(block.slice(0, keep))
                self._n += keep
                self._tail += keep
                self.accepted += keep
            self._refused = True
            self._drop(block.device, n - keep)
        else:
            self._evicted()
            cap = self.capacity
            if n >= cap:
                self._evict(self._n)
                self._refused = True
                self._drop(block.device, n - cap)
                block = block.slice(n - cap, n)
                n = cap
            else:
                self._evict(n - room)
            self._items.append(block)
            self._n += n
            self._tail += n
            self.accepted += n
        if self._waiter is not None and self._n >= self._want:
            self._wake()

    def link(self, device: str, connected: bool) -> None:
        if self._on_link is not None:
            self._on_link(device, connected)

    def error(self, device: str, kind: str) -> None:
        if self._on_error is not None:
            self._on_error(device, kind)

    def when_stored(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(True)`` once every sample put so far is written by the store, or
        ``callback(False)`` once that is settled and some of them may have been dropped
        (overflow). Called on the event loop; at once when nothing is outstanding."""
        wait = _Wait(self._tail, not self._refused, callback)
        self._refused = False
        if wait.mark <= self._stored_upto:
            callback(wait.ok)
            return
        self._stored_waits.append(wait)
        if self._waiter is not None:
            self._wake()  # someone waits for these: the writer takes them now

    @property
    def taken(self) -> int:
        """Position after the last sample taken off the queue (or dropped from it)."""
        return self._head

    def stored(self, upto: int) -> None:
        """(The writer) every sample before position ``upto`` is stored (or was dropped):
        call the registrations it settles, in order."""
        if upto > self._stored_upto:
            self._stored_upto = upto
        waits = self._stored_waits
        while waits and waits[0].mark <= self._stored_upto:
            w = waits.popleft()
            w.callback(w.ok)

    # -- consumer side ----------------------------------------------------------------------

    def __len__(self) -> int:
        return self._n

    @property
    def dropped(self) -> int:
        return sum(self.drops.values())

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """No more waiting: a pending or later :meth:`get_batch` returns at once (the
        remaining samples can still be taken)."""
        self._closed = True
        self._wake()

    def get_nowait(self, max_n: int) -> list[Sample]:
        """Up to ``max_n`` queued samples, oldest first (may be empty), as :class:`Sample`
        objects (blocks are expanded; the writer takes :meth:`take_nowait` instead)."""
        out: list[Sample] = []
        for x in self.take_nowait(max_n):
            if isinstance(x, SampleBlock):
                out.extend(x.samples())
            else:
                out.append(x)
        return out

    def take_nowait(self, max_n: int) -> list[Item]:
        """Up to ``max_n`` queued samples, oldest first, as they were put (samples and
        blocks; a block is split at ``max_n``)."""
        items = self._items
        if self._n <= max_n:
            out = list(items)
            items.clear()
            self._head += self._n
            self._n = 0
            return out
        out = []
        left = max_n
        pop = items.popleft
        while left:
            x = items[0]
            if isinstance(x, SampleBlock):
                k = len(x)
                if k > left:
                    out.append(x.slice(0, left))
                    items[0] = x.slice(left, k)
                    break
                left -= k
            else:
                left -= 1
            out.append(pop())
        self._head += max_n
        self._n -= max_n
        return out

    async def get_batch(self, max_n: int, timeout_s: float) -> list[Sample]:
        """Wait until ``max_n`` samples are queued or ``timeout_s`` passed (or the queue is
        closed), then return up to ``max_n`` of them, oldest first; empty on a quiet timeout."""
        await self.wait_for(max_n, timeout_s)
        return self.get_nowait(max_n)

    async def take_batch(self, max_n: int, timeout_s: float) -> list[Item]:
        """:meth:`get_batch` as :meth:`take_nowait` gives them (samples and blocks)."""
        await self.wait_for(max_n, timeout_s)
        return self.take_nowait(max_n)

    async def wait_for(self, max_n: int, timeout_s: float) -> None:
        """Wait until ``max_n`` samples are queued, ``timeout_s`` passed, the queue is closed
        or a durable hand-over waits for what is queued."""
        if max_n < 1:
            raise ValueError("max_n must be at least 1")
        urgent = bool(self._stored_waits) and self._stored_waits[-1].mark > self._head
        if self._n < max_n and not self._closed and timeout_s > 0 and not urgent:
            if self._waiter is not None:
                raise RuntimeError("SampleQueue has a single consumer")
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            self._want = max_n
            # asyncio.timeout, not wait_for: 3.11's wait_for returns normally when the consumer
            # is cancelled just as the waiter completes (a put woke it), and the writer then
            # never stops; here the cancellation always propagates (the samples stay queued)
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout_s):
                        await self._waiter
            finally:
                self._waiter = None

    # -- internals --------------------------------------------------------------------------

    def _evicted(self) -> None:
        """The oldest queued samples are about to be evicted: registrations covering them
        (mark beyond the current head) will report a loss."""
        head = self._head
        for w in self._stored_waits:
            if w.mark > head:
                w.ok = False

    def _evict(self, k: int) -> None:
        """Drop the ``k`` oldest queued samples (counted per device; a block may be split)."""
        items = self._items
        left = k
        while left:
            x = items[0]
            if isinstance(x, SampleBlock):
                size = len(x)
                if size > left:
                    items[0] = x.slice(left, size)
                    self._drop(x.device, left)
                    break
                self._drop(x.device, size)
                left -= size
            else:
                self._drop(x.device)
                left -= 1
            items.popleft()
        self._n -= k
        self._head += k

    def _drop(self, device: str, n: int = 1) -> None:
        drops = self.drops
        drops[device] = drops.get(device, 0) + n

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)
