"""Free loopback ports for private test servers (never the machine's standard ports)."""

from __future__ import annotations

import socket
import time

# ports of services this machine runs that are not part of the design: never take them
RESERVED = {1883, 3306, 4222, 5432, 5672, 6379, 8086, 8080, 4840, 502}


def free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in RESERVED:
            return port


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")
