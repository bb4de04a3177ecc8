"""Run the service with uvicorn inside the current event loop until a stop event is set."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from gateway.app import create_app
from gateway.logs import configure_logging
from gateway.settings import Settings


class _Server(uvicorn.Server):
    """Leaves signals to the caller (``shopfloor serve`` and the demo set the stop event)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def uvicorn_config(
    settings: Settings,
    host: str,
    port: int,
    *,
    certfile: Path | None = None,
    keyfile: Path | None = None,
    proxy_headers: bool = False,
    forwarded_allow_ips: str | None = None,
) -> uvicorn.Config:
    """The server of a process: also switches the process's logs to JSON lines."""
    configure_logging(settings.log_level)
    return uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
    )


def listen_socket(host: str, port: int) -> socket.socket:
    """The bound listening address of the service (OSError when it is taken or unknown), so
    that ``serve`` reports a busy port in one line before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn binds
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def serve_until(
    config: uvicorn.Config, stop: asyncio.Event, sock: socket.socket | None = None
) -> None:
    """Serve until ``stop`` is set (or the server exits); live streams end first. With
    ``sock`` (from :func:`listen_socket`) the server listens there."""
    server = _Server(config)
    sockets = [sock] if sock is not None else None
    task = asyncio.create_task(server.serve(sockets), name="shopfloor-gateway-uvicorn")
    waiter = asyncio.create_task(stop.wait(), name="shopfloor-gateway-stop")
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gw = getattr(getattr(config.app, "state", None), "gw", None)
        if gw is not None:
            await gw.hub.close()  # end SSE streams so the shutdown does not wait for them
        server.should_exit = True
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        await task


async def wait_started(config: uvicorn.Config, within_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while loop.time() < deadline:
        try:
            _r, w = await asyncio.open_connection(config.host, config.port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        w.close()
        with contextlib.suppress(OSError):
            await w.wait_closed()
        return
    raise TimeoutError(f"the gateway did not start on {config.host}:{config.port} in {within_s} s")
