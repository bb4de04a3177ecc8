"""Helpers of the Sparkplug B tests: the edge node's view of the host's commands."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.mqtt.helpers import RecordingSink
from tests.sparkplug.wire import read


class Commands:
    """Collects the NCMD messages the host sends to the edge node."""

    def __init__(self, port: int, ncmd_topic: str) -> None:
        self.received: list[dict[int, list[Any]]] = []
        self._ready = threading.Event()
        self._lock = threading.Lock()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        c.on_message = self._on_message
        c.on_subscribe = lambda *_a: self._ready.set()
        c.connect("127.0.0.1", port, 30)
        c.subscribe(ncmd_topic, 1)
        c.loop_start()
        assert self._ready.wait(10)
        self.client = c

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append(read(bytes(msg.payload)))

    def rebirths(self) -> int:
        n = 0
        with self._lock:
            for doc in self.received:
                for m in doc.get(2, []):
                    f = read(m)
                    if f.get(1) == [b"Node Control/Rebirth"] and f.get(14) == [1]:
                        n += 1
        return n

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.contextmanager
def commands(port: int, ncmd_topic: str = "spBv1.0/plant/NCMD/edge1") -> Iterator[Commands]:
    c = Commands(port, ncmd_topic)
    try:
        yield c
    finally:
        c.close()


async def started(sink: RecordingSink, cmds: Commands, n: int = 1) -> None:
    """The host is subscribed: it asks for a rebirth once connected."""
    await sink.wait_for(lambda: cmds.rebirths() >= n)
