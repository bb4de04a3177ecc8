"""Suite-wide fixtures. Every test fails if it leaks threads or asyncio tasks."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

_leaked_tasks: list[str] = []

# threads started by libraries once per process and kept on purpose
_ALLOWED_THREAD_PREFIXES = ("asyncio_", "ThreadPoolExecutor", "pytest_timeout", "execnet")


class _LeakCheckingLoop(asyncio.SelectorEventLoop):
    """Records tasks still pending when the test's loop is closed."""

    def close(self) -> None:
        if not self.is_closed():
            pending = [t for t in asyncio.all_tasks(self) if not t.done()]
            _leaked_tasks.extend(repr(t.get_coro()) for t in pending)
        super().close()


class _Policy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return _LeakCheckingLoop()


@pytest.fixture(scope="session")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    return _Policy()


_LOGGERS = ("shopfloor", "uvicorn", "uvicorn.error", "uvicorn.access")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """A test that configures process logging (e.g. JSON logs of a server it starts in-process)
    must not change what the next test in the same worker captures."""
    saved = []
    for name in _LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, list(lg.handlers), lg.level, lg.propagate, lg.disabled))
    yield
    for lg, handlers, level, propagate, disabled in saved:
        lg.handlers = handlers
        lg.setLevel(level)
        lg.propagate = propagate
        lg.disabled = disabled


def _live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the test when it leaves threads running or asyncio tasks pending."""
    if request.node.get_closest_marker("allow_leaks"):
        yield
        return
    before = _live_threads()
    _leaked_tasks.clear()
    yield
    deadline = time.monotonic() + 3.0
    new: set[threading.Thread] = set()
    while time.monotonic() < deadline:
        new = {
            t for t in _live_threads() - before if not t.name.startswith(_ALLOWED_THREAD_PREFIXES)
        }
        if not new:
            break
        time.sleep(0.05)
    problems: list[str] = []
    if new:
        problems.append("threads left running: " + ", ".join(sorted(t.name for t in new)))
    if _leaked_tasks:
        problems.append("asyncio tasks left pending: " + "; ".join(_leaked_tasks))
        _leaked_tasks.clear()
    if problems:
        pytest.fail("leak: " + " | ".join(problems), pytrace=False)


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "allow_leaks: the test may leave threads (documented why)")
