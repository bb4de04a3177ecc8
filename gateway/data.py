"""Read access to the store from the service: a small pool of read-only store handles.

SQLite handles belong to the thread that opened them, so each reader is one worker thread with
its own read-only handle (WAL lets them read while the collector writes). Requests borrow a free
reader; the event loop never blocks on the database.

The store module (``edge.store.sqlite``) and the KPI/evidence modules are looked up when they
are first needed: when one is missing, the routes that need it answer 503 with the reason.
"""

from __future__ import annotations

import asyncio
import importlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

from edge.store.base import DeviceHealth
from metrics.series import Series

T = TypeVar("T")


class Unavailable(Exception):
    """A part the route needs is not there (the message says which and why; shown as 503)."""


class SampleLike(Protocol):
    @property
    def device(self) -> str: ...
    @property
    def point(self) -> str: ...
    @property
    def ts(self) -> int: ...
    @property
    def value(self) -> float: ...
    @property
    def quality(self) -> int: ...
    @property
    def status(self) -> str: ...


class ReadStore(Protocol):
    """What the service uses of a store (``edge.store.base.Store`` read side)."""

    def latest(self, device: str | None = None) -> Sequence[Any]: ...

    def health(self) -> list[DeviceHealth]: ...

    def read(
        self, device: str, point: str, start: int, end: int, *, prior: bool = False
    ) -> Series: ...

    def close(self) -> None: ...


def optional_module(name: str) -> Any:
    """Import a module another part provides; :class:`Unavailable` when it is not there."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise Unavailable(f"module {name} is not installed in this build") from None
        raise


def open_readonly(path: Path, ledger_path: Path | None = None) -> ReadStore:
    """A read-only store; with an existing ``ledger_path``, wrapped so that the raw samples a
    retention pass removed are read back from the evidence ledger (``edge.store``)."""
    if not path.exists():
        raise Unavailable(f"the store {path.name} does not exist yet (is the collector running?)")
    mod = optional_module("edge.store.sqlite")
    try:
        store: ReadStore = mod.SqliteStore.open_readonly(path)
    except (sqlite3.Error, mod.StoreError) as exc:
        raise Unavailable(f"the store cannot be opened: {exc}") from None
    if ledger_path is not None and ledger_path.exists():
        archive = optional_module("edge.store.archive_reader")
        wrapped: ReadStore = archive.ArchiveReader(store, ledger_path)
        return wrapped
    return store


def _store_errors() -> tuple[type[Exception], ...]:
    try:
        mod = importlib.import_module("edge.store.sqlite")
    except ModuleNotFoundError:
        return (sqlite3.Error,)
    return (sqlite3.Error, mod.StoreError)


class _Reader:
    def __init__(self, index: int, opener: Callable[[], ReadStore]) -> None:
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"ThreadPoolExecutor-store{index}")
        self._opener = opener
        self.store: ReadStore | None = None

    def call(self, fn: Callable[[ReadStore], T]) -> T:
        if self.store is None:
            self.store = self._opener()
        try:
            return fn(self.store)
        except _store_errors() as exc:
            # a broken handle (file replaced, disk error): reopen on the next call
            self.close()
            raise Unavailable(f"the store cannot be read: {exc}") from None

    def close(self) -> None:
        if self.store is not None:
            try:
                self.store.close()
            finally:
                self.store = None


class ReaderPool:
    """``await pool.run(lambda store: store.latest())`` on a free reader thread."""

    def __init__(self, path: Path | None, size: int = 4, ledger_path: Path | None = None) -> None:
        self.path = path
        self.ledger_path = ledger_path
        self._size = max(1, size)
        self._readers: list[_Reader] = []
        self._free: asyncio.Queue[_Reader] | None = None

    def _open(self) -> ReadStore:
        if self.path is None:
            raise Unavailable(
                "the site stores its samples in InfluxDB without a local cache; "
                "set storage.local_cache so the service can read them"
            )
        return open_readonly(self.path, self.ledger_path)

    def _queue(self) -> asyncio.Queue[_Reader]:
        if self._free is None:
            self._free = asyncio.Queue()
            for i in range(self._size):
                reader = _Reader(i, self._open)
                self._readers.append(reader)
                self._free.put_nowait(reader)
        return self._free

    async def run(self, fn: Callable[[ReadStore], T]) -> T:
        free = self._queue()
        reader = await free.get()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(reader.executor, reader.call, fn)
        finally:
            free.put_nowait(reader)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for reader in self._readers:
            await loop.run_in_executor(reader.executor, reader.close)
            reader.executor.shutdown(wait=True)
        self._readers.clear()
        self._free = None
