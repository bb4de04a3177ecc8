"""``shopfloor probe modbus`` against a real server, as a user runs it (a subprocess)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from connectors.modbus.codec import encode_raw
from connectors.modbus.probe import ProbeError, Target, render
from connectors.simulators.meters import MeterServer, UnitImage
from edge.cli.main import main
from tests.support.net import free_port


async def probe_subprocess(*args: str) -> tuple[int, str, str]:
    """The command as a user runs it (slow to start: the CLI loads every command)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge.cli.main",
        "probe",
        "modbus",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    async def __call__(self, *args: str) -> tuple[int, str, str]:
        """The same command in-process (its own event loop in a worker thread)."""
        self.capsys.readouterr()
        code = await asyncio.to_thread(main, ["probe", "modbus", *args])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def probe(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


@pytest.fixture
async def server() -> MeterServer:
    regs = encode_raw(123.456, "float32", "CDAB") + encode_raw(-2, "int16") + [0x4142]
    images = {
        1: UnitImage(holding=dict(enumerate(regs)), coil={0: True, 1: False, 2: True}),
        9: UnitImage(holding={0: 0}, hang=True),
    }
    srv = MeterServer(images, port=free_port())
    await srv.start()
    yield srv  # type: ignore[misc]
    await srv.stop()


async def test_probe_prints_every_type_in_every_order(server: MeterServer) -> None:
    code, out, err = await probe_subprocess(
        f"127.0.0.1:{server.port}", "--unit", "1", "--address", "0", "--count", "4"
    )
    assert code == 0, err
    assert f"Modbus 127.0.0.1:{server.port} unit 1 holding address 0 count 4" in out
    float_row = next(line for line in out.splitlines() if line.split()[:2] == ["0", "float32"])
    # the CDAB column shows the value the meter meant; the others show garbage
    abcd, cdab, badc, dcba = float_row.split()[2:]
    assert cdab == "123.456001"
    assert abcd != cdab
    assert badc != cdab
    assert dcba != cdab
    int16_row = next(line for line in out.splitlines() if line.split()[:2] == ["2", "int16"])
    assert int16_row.split()[2] == "-2"
    assert "0x4142" in out
    assert "AB" in out


async def test_probe_coils(server: MeterServer, probe: Cli) -> None:
    code, out, _ = await probe(
        f"127.0.0.1:{server.port}", "--address", "0", "--count", "3", "--table", "coil"
    )
    assert code == 0
    assert [line.split() for line in out.splitlines()[2:]] == [["0", "1"], ["1", "0"], ["2", "1"]]


async def test_probe_exception_is_explained(server: MeterServer, probe: Cli) -> None:
    code, out, err = await probe(f"127.0.0.1:{server.port}", "--address", "100", "--count", "2")
    assert code == 1
    assert out == ""
    assert "Modbus exception 2: illegal data address" in err


async def test_probe_timeout_and_refused_connection(server: MeterServer, probe: Cli) -> None:
    code, _, err = await probe(
        f"127.0.0.1:{server.port}",
        "--unit",
        "9",
        "--address",
        "0",
        "--count",
        "1",
        "--timeout",
        "0.3",
    )
    assert code == 1
    assert "no answer from unit 9" in err
    code, _, err = await probe(f"127.0.0.1:{free_port()}", "--address", "0")
    assert code == 1
    assert "cannot connect" in err


async def test_probe_bad_arguments(probe: Cli) -> None:
    code, _, err = await probe("127.0.0.1:99999", "--address", "0")
    assert code == 1
    assert "HOST:PORT" in err
    code, _, err = await probe(f"127.0.0.1:{free_port()}", "--address", "0", "--count", "126")
    assert code == 1
    assert "count must be 1..125" in err


def test_target_parsing() -> None:
    assert Target.parse("10.0.0.5:1502") == Target(host="10.0.0.5", port=1502)
    assert Target.parse("plc.local") == Target(host="plc.local", port=502)
    assert Target.parse("/dev/ttyUSB0") == Target(serial_port="/dev/ttyUSB0")
    with pytest.raises(ProbeError):
        Target.parse("host:port")


def test_render_lists_each_start_register() -> None:
    text = render(encode_raw(1.0, "float64", "ABCD"), 40001)
    assert "40001  float64" in text
    assert "40004  uint16" in text  # the last register alone
    assert "40004  int32" not in text  # not enough registers left


async def test_probe_over_rtu(probe: Cli) -> None:
    from tests.modbus.pty_bridge import PtyBridge

    async with PtyBridge() as bridge:
        image = UnitImage(input=dict(enumerate(encode_raw(-7.25, "float32", "ABCD"))))
        server = MeterServer({5: image}, serial_port=bridge.device_a, baudrate=19200)
        await server.start()
        try:
            code, out, err = await probe(
                bridge.device_b,
                "--baudrate",
                "19200",
                "--unit",
                "5",
                "--table",
                "input",
                "--address",
                "0",
                "--count",
                "2",
            )
        finally:
            await server.stop()
    assert code == 0, err
    assert f"Modbus {bridge.device_b} unit 5 input address 0 count 2" in out
    row = next(line for line in out.splitlines() if line.split()[:2] == ["0", "float32"])
    assert row.split()[2] == "-7.25"
