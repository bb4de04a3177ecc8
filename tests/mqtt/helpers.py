"""Test helpers for the MQTT tests: a recording sink, a paho publisher, a site builder."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from config.models import SiteConfig
from connectors.base import Connector, Sample, SampleBlock


class RecordingSink:
    """Records what a connector hands over; ``wait_for`` polls a condition on the loop."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.errors: collections.Counter[tuple[str, str]] = collections.Counter()
        self.links: list[tuple[str, bool]] = []

    def put(self, sample: Sample) -> None:
        self.samples.append(sample)

    def put_many(self, samples: Iterable[Sample]) -> None:
        self.samples.extend(samples)

    def put_block(self, block: SampleBlock) -> None:
        self.put_many(block.samples())

    def link(self, device: str, connected: bool) -> None:
        self.links.append((device, connected))

    def error(self, device: str, kind: str) -> None:
        self.errors[(device, kind)] += 1

    def up(self, device: str) -> bool | None:
        state = [c for d, c in self.links if d == device]
        return state[-1] if state else None

    def of(self, device: str, point: str) -> list[Sample]:
        return [s for s in self.samples if s.device == device and s.point == point]

    async def wait_for(self, cond: Callable[[], bool], within_s: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while not cond():
            if loop.time() > deadline:
                raise AssertionError(
                    f"condition not met in {within_s}s; samples={len(self.samples)} "
                    f"errors={dict(self.errors)} links={self.links[-6:]}"
                )
            await asyncio.sleep(0.02)


@contextlib.contextmanager
def publisher(
    port: int,
    *,
    client_id: str = "",
    ssl_context: ssl.SSLContext | None = None,
    username: str | None = None,
    password: str | None = None,
) -> Iterator[Callable[[str, bytes | str, int], None]]:
    """A connected paho client; yields ``publish(topic, payload, qos)`` (waits for the ack)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    if ssl_context is not None:
        client.tls_set_context(ssl_context)
    if username is not None:
        client.username_pw_set(username, password)
    client.connect("127.0.0.1", port, 30)
    client.loop_start()

    def publish(topic: str, payload: bytes | str, qos: int = 1) -> None:
        info = client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=10)
        assert info.is_published(), f"publish to {topic} not acknowledged"

    try:
        yield publish
    finally:
        client.disconnect()
        client.loop_stop()


@contextlib.asynccontextmanager
async def running(connector: Connector, sink: RecordingSink) -> AsyncIterator[asyncio.Task[None]]:
    """Runs ``connector`` in a task for the block; cancels it and waits on exit."""
    task = asyncio.create_task(connector.run(sink))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def mqtt_site(devices: list[dict[str, Any]], site_id: str = "t") -> SiteConfig:
    return SiteConfig.model_validate({"site": {"id": site_id, "name": "test"}, "devices": devices})


def device(dev_id: str, port: int, points: list[dict[str, Any]], **conn: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"host": "127.0.0.1", "port": port, "qos": 1}
    block.update(conn)
    return {"id": dev_id, "name": dev_id, "mqtt": block, "points": points}


def point(pid: str, topic: str, pointer: str | None = None, **extra: Any) -> dict[str, Any]:
    addr: dict[str, Any] = {"topic": topic}
    if pointer is not None:
        addr["pointer"] = pointer
    for key in ("ts_pointer", "ts_format"):
        if key in extra:
            addr[key] = extra.pop(key)
    return {"id": pid, "mqtt": addr, **extra}


async def publish_in_thread(port: int, messages: list[tuple[str, bytes | str, int]]) -> None:
    """Publishes from a worker thread (needed when the broker runs in this event loop)."""

    def work() -> None:
        with publisher(port) as pub:
            for topic, payload, qos in messages:
                pub(topic, payload, qos)

    await asyncio.to_thread(work)
