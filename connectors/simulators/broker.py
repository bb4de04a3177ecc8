"""The MQTT broker of the simulated factory.

``make_broker()`` gives, in this order of preference:

* a broker the user names (``external="host:port"``): used as is, never started or stopped;
* a private ``mosquitto`` (Debian package) on a loopback port with a temporary config and
  data directory, when the binary is installed;
* else an embedded Python broker (amqtt) running in the event loop, so that ``make demo`` needs
  nothing beyond Python on a fresh machine.

Every broker has ``host``, ``port``, ``kind`` and the :class:`~connectors.simulators.base.Simulator`
methods ``start()``, ``stop()`` and ``describe()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)

BrokerKind = Literal["auto", "mosquitto", "embedded"]


class BrokerError(RuntimeError):
    """The broker could not be started (port taken, binary missing, ...)."""


class Broker(Protocol):
    name: str
    host: str
    port: int
    kind: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def describe(self) -> str: ...


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found is None and os.access("/usr/sbin/mosquitto", os.X_OK):
        found = "/usr/sbin/mosquitto"
    return found


def pick_port(host: str, port: int | None) -> int:
    """``port`` when it is free on ``host`` (else :class:`BrokerError`); a free one when None."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port or 0))
        except OSError as exc:
            raise BrokerError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        return int(s.getsockname()[1])


async def wait_listening(host: str, port: int, within_s: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while loop.time() < deadline:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


def mosquitto_config(port: int, host: str, data_dir: Path) -> str:
    """A plain, anonymous, persistent listener on ``host:port`` (the demo broker)."""
    return "\n".join(
        [
            f"listener {port} {host}",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {data_dir}/",
            f"log_dest file {data_dir}/mosquitto.log",
            "max_queued_messages 100000",
            # as root mosquitto would switch to user 'mosquitto' and lose the temporary dir
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            "",
        ]
    )


class MosquittoBroker:
    """A private mosquitto with a temporary config and data directory."""

    kind = "mosquitto"

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise BrokerError("mosquitto is not installed")
        self.binary = binary
        self.host = host
        self.port = port or 0
        self.name = "mqtt-broker"
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    async def start(self) -> None:
        if self._proc is not None:
            return
        self.port = pick_port(self.host, self.port or None)
        self._dir = Path(tempfile.mkdtemp(prefix="shopfloor-mosquitto-"))
        conf = self._dir / "mosquitto.conf"
        conf.write_text(mosquitto_config(self.port, self.host, self._dir))
        self._proc = await asyncio.to_thread(
            subprocess.Popen,
            [self.binary, "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not await wait_listening(self.host, self.port, 10.0):
            logtext = (self._dir / "mosquitto.log").read_text(errors="replace")[-2000:]
            await self.stop()
            raise BrokerError(f"mosquitto did not start on {self.host}:{self.port}: {logtext}")

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        folder, self._dir = self._dir, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def describe(self) -> str:
        return f"MQTT 代理 broker: private mosquitto on {self.host}:{self.port}"


class EmbeddedBroker:
    """amqtt running in this event loop (when no mosquitto is installed)."""

    kind = "embedded"

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or 0
        self.name = "mqtt-broker"
        self._broker: Any = None

    async def start(self) -> None:
        if self._broker is not None:
            return
        from amqtt.broker import Broker as AmqttBroker  # imported only when used

        self.port = pick_port(self.host, self.port or None)
        config = {
            "listeners": {
                "default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 0}
            },
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
        broker = AmqttBroker(config)
        try:
            await broker.start()
        except Exception as exc:
            raise BrokerError(f"embedded MQTT broker on {self.host}:{self.port}: {exc}") from exc
        self._broker = broker

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()

    def describe(self) -> str:
        return f"MQTT 代理 broker: embedded amqtt on {self.host}:{self.port}"


class ExternalBroker:
    """A broker the user runs; ``start()`` only checks that it listens."""

    kind = "external"

    def __init__(self, host: str, port: int, *, wait_s: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.wait_s = wait_s
        self.name = "mqtt-broker"

    async def start(self) -> None:
        if not await wait_listening(self.host, self.port, self.wait_s):
            raise BrokerError(f"the named MQTT broker {self.host}:{self.port} does not answer")

    async def stop(self) -> None:
        return None

    def describe(self) -> str:
        return f"MQTT 代理 broker: {self.host}:{self.port} (named by the user)"


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` (or ``mqtt://host:port``) of a named broker."""
    rest = text.removeprefix("mqtt://").removeprefix("tcp://")
    host, sep, port_text = rest.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise BrokerError(f"broker address {text!r}: expected host:port")
    return host, int(port_text)


def make_broker(
    host: str = "127.0.0.1",
    port: int | None = None,
    *,
    kind: BrokerKind = "auto",
    external: str | None = None,
) -> MosquittoBroker | EmbeddedBroker | ExternalBroker:
    """The broker of the simulated factory (see the module docstring); not started yet."""
    if external is not None:
        return ExternalBroker(*parse_address(external))
    if kind == "mosquitto" or (kind == "auto" and mosquitto_binary() is not None):
        return MosquittoBroker(host, port)
    return EmbeddedBroker(host, port)
