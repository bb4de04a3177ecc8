"""The agent simulator as a command (``python -m connectors.simulators.mtconnect``)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from connectors.mtconnect.documents import parse_probe, parse_streams
from tests.support.net import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]


def test_the_command_serves_a_cnc_making_parts() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connectors.simulators.mtconnect",
            "--port",
            str(port),
            "--device",
            "cnc7",
            "--cycle-s",
            "0.05",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_port(port)
        base = f"http://127.0.0.1:{port}/cnc7"
        _h, (device,) = parse_probe(httpx.get(f"{base}/probe", timeout=5).content)
        assert device.name == "cnc7"
        assert {i.type for i in device.items} >= {"EXECUTION", "CONTROLLER_MODE", "PART_COUNT"}
        deadline = time.monotonic() + 20
        while True:  # parts are being made: the counts move and add up
            _h, obs = parse_streams(httpx.get(f"{base}/current", timeout=5).content)
            values = {o.item: o.value for o in obs}
            if values["pc_all"] not in ("UNAVAILABLE", "0", "1"):
                break
            assert time.monotonic() < deadline, values
            time.sleep(0.05)
        assert values["avail"] == "AVAILABLE"
        assert values["mode"] == "AUTOMATIC"
        assert int(values["pc_good"]) + int(values["pc_bad"]) == int(values["pc_all"])
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_a_taken_port_is_one_line_and_exit_1() -> None:
    port = free_port()
    args = [sys.executable, "-m", "connectors.simulators.mtconnect", "--port", str(port)]
    first = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        second = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=30)
    finally:
        first.terminate()
        first.wait(10)
    assert second.returncode == 1
    assert second.stderr.startswith(f"error: cannot serve on 127.0.0.1:{port}")
    assert len(second.stderr.strip().splitlines()) == 1
