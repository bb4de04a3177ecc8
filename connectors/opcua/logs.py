"""asyncua's own log records kept out of a plant engineer's INFO log.

asyncua logs at INFO what only a developer reads (``find_endpoint`` dumps every endpoint with
its certificate bytes, ``connect``, ``get_namespace_index``...) and attaches tracebacks to the
link losses the connector already reports in one line. Unless the root logger is at DEBUG,
asyncua's records below WARNING are dropped and a traceback becomes one ``(Type: message)``
suffix; at DEBUG everything passes unchanged.
"""

from __future__ import annotations

import logging


class QuietAsyncua(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            return True
        if record.levelno < logging.WARNING:
            return False
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


_FILTER = QuietAsyncua()


def quiet_asyncua() -> None:
    """Below DEBUG, the ``asyncua`` loggers start at WARNING; and the filter goes on every
    ``asyncua`` logger made so far (a logger's filter does not reach its children, and asyncua
    makes some per client instance: call this after making the client). Idempotent."""
    parent = logging.getLogger("asyncua")
    debug = logging.getLogger().isEnabledFor(logging.DEBUG)
    if parent.level in (logging.NOTSET, logging.WARNING):  # never override an explicit choice
        parent.setLevel(logging.NOTSET if debug else logging.WARNING)
    loggers = [parent]
    for name, obj in logging.Logger.manager.loggerDict.items():
        if name.startswith("asyncua.") and isinstance(obj, logging.Logger):
            loggers.append(obj)
    for lg in loggers:
        if _FILTER not in lg.filters:
            lg.addFilter(_FILTER)
