"""Every kind of broken site file through ``shopfloor config check``: file, line, field path."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli.main import main

GOOD = """\
site: {id: plant, name: Plant}
devices:
  - id: meter1
    name: Meter 1
    modbus: {host: 127.0.0.1, port: 1502, unit: 1}
    points:
      - {id: energy, role: energy_kwh, modbus: {address: 0, order: CDAB}}
"""

# (case, file text, expected line, expected fragments of the message)
CASES = [
    ("yaml_syntax", GOOD.replace("name: Meter 1", "name: [Meter 1"), 5, ["YAML syntax"]),
    (
        "unknown_field",
        GOOD.replace("unit: 1}", "unit: 1, colour: red}"),
        5,
        ["devices[0].modbus.colour", "unknown field"],
    ),
    (
        "wrong_type",
        GOOD.replace("port: 1502", "port: lots"),
        5,
        ["devices[0].modbus.port", "integer"],
    ),
    (
        "bad_range",
        GOOD.replace("port: 1502", "port: 70000"),
        5,
        ["devices[0].modbus.port", "65535"],
    ),
    (
        "missing_protocol_block",
        GOOD.replace("    modbus: {host: 127.0.0.1, port: 1502, unit: 1}\n", ""),
        3,
        ["devices[0]", "exactly one protocol block"],
    ),
    (
        "duplicate_ids",
        GOOD + GOOD.split("devices:\n", 1)[1],
        1,
        ["duplicate device id 'meter1'"],
    ),
    (
        "bad_timezone",
        GOOD.replace("name: Plant}", "name: Plant, timezone: Mars/Olympus}"),
        1,
        ["site.timezone", "unknown time zone"],
    ),
    (
        "missing_required",
        GOOD.replace("    name: Meter 1\n", ""),
        3,
        ["devices[0].name", "required field is missing"],
    ),
]


@pytest.mark.parametrize(("case", "text", "line", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_config_check_reports_file_line_and_path(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    text: str,
    line: int,
    fragments: list[str],
) -> None:
    f = tmp_path / f"{case}.yaml"
    f.write_text(text, encoding="utf-8")
    assert main(["config", "check", str(f)]) == 2
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first.startswith(f"error: {f}:{line}:"), err
    for frag in fragments:
        assert frag in err, err


def test_good_file_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "ok.yaml"
    f.write_text(GOOD, encoding="utf-8")
    assert main(["config", "check", str(f)]) == 0
    assert "1 devices, 1 points" in capsys.readouterr().out


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "nope.yaml"
    assert main(["config", "check", str(f)]) == 2
    assert f"error: {f}: file not found" in capsys.readouterr().err


def test_secret_from_missing_env_var(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = """\
site: {id: plant, name: Plant}
devices:
  - id: qs1
    name: Quality
    mqtt:
      host: 127.0.0.1
      username: collector
      password: {env: SF_EDGE_TEST_PASSWORD}
    points:
      - {id: n, mqtt: {topic: a/b, pointer: /n}}
"""
    f = tmp_path / "secret.yaml"
    f.write_text(text, encoding="utf-8")
    monkeypatch.delenv("SF_EDGE_TEST_PASSWORD", raising=False)
    assert main(["config", "check", str(f)]) == 2
    err = capsys.readouterr().err
    assert f"error: {f}:8: devices[0].mqtt.password:" in err
    assert "SF_EDGE_TEST_PASSWORD is not set" in err
    # the same file starts `run` with the same message instead of a traceback
    assert main(["run", "-c", str(f)]) == 2
    assert "SF_EDGE_TEST_PASSWORD is not set" in capsys.readouterr().err
    monkeypatch.setenv("SF_EDGE_TEST_PASSWORD", "s3cret-value")
    assert main(["config", "check", str(f)]) == 0
    out = capsys.readouterr()
    assert "s3cret-value" not in out.out + out.err
