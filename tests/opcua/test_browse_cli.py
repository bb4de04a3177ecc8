"""``shopfloor browse opcua``: argument errors and an unreachable server (no event loop here:
the command runs its own)."""

from __future__ import annotations

import pytest

from edge.cli.main import main as cli_main
from tests.support.net import free_port


def test_browse_command_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}/none"
    assert cli_main(["browse", "opcua", url, "--user", "op"]) == 2
    assert "--password-env" in capsys.readouterr().err
    assert cli_main(["browse", "opcua", url, "--security", "Basic256Sha256-Sign"]) == 2
    assert "--cert" in capsys.readouterr().err
    assert cli_main(["browse", "opcua", url, "--timeout", "1"]) == 1
    assert "connection failed" in capsys.readouterr().err
    assert cli_main(["browse", "opcua", "http://not-opc"]) == 2
