"""Two pseudo-terminal pairs bridged in the event loop: a null-modem cable for RTU tests.

Whatever is written to ``device_a`` comes out of ``device_b`` and back, like two serial ports
joined by a cable; no thread, no external tool.
"""

from __future__ import annotations

import asyncio
import os
import tty
from types import TracebackType


class PtyBridge:
    def __init__(self) -> None:
        self._fds: list[int] = []
        self.device_a = ""
        self.device_b = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._masters: tuple[int, int] = (-1, -1)

    async def __aenter__(self) -> PtyBridge:
        ma, sa = os.openpty()
        mb, sb = os.openpty()
        for fd in (sa, sb):
            tty.setraw(fd)
        self._fds = [ma, sa, mb, sb]
        self.device_a, self.device_b = os.ttyname(sa), os.ttyname(sb)
        self._masters = (ma, mb)
        self._loop = asyncio.get_running_loop()
        for fd in (ma, mb):
            os.set_blocking(fd, False)
        self._loop.add_reader(ma, self._pump, ma, mb)
        self._loop.add_reader(mb, self._pump, mb, ma)
        return self

    @staticmethod
    def _pump(src: int, dst: int) -> None:
        try:
            data = os.read(src, 4096)
        except (BlockingIOError, OSError):
            return
        if data:
            os.write(dst, data)

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._loop is not None
        for fd in self._masters:
            self._loop.remove_reader(fd)
        for fd in self._fds:
            os.close(fd)
