"""``config check``: NodeId and browse-path syntax, and unquoted YAML words read as booleans."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import ConfigError, load_site_text, yaml_surprises
from edge.cli.main import main

SITE = """\
site: {id: s1, name: Site}
devices:
  - id: m1
    name: cnc
    opcua: {endpoint: "opc.tcp://127.0.0.1:4840"}
    points:
      - id: st
        role: state
        state_map: STATE_MAP
        opcua: {ADDRESS}
"""


def _site(address: str = 'node_id: "ns=2;s=m1.state"', state_map: str = '{"0": producing}') -> str:
    return SITE.replace("ADDRESS", address).replace("STATE_MAP", state_map)


def _messages(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as info:
        load_site_text(text, "site.yaml")
    return [(i.line, i.path, i.message) for i in info.value.issues]


@pytest.mark.parametrize(
    "node_id",
    [
        "ns=2;s=m1.state",
        "i=2258",
        "ns=0;i=4294967295",
        "ns=3;g=09087e75-8e5e-499b-954f-f2a9603db28a",
        "ns=1;b=M/RbKBsRVkePCePcx24oRA==",
        "nsu=http://opcfoundation.org/UA/Machinery/;i=5001",
        "ns=2;s=a;b",  # a string identifier may hold ';'
    ],
)
def test_valid_node_ids(node_id: str) -> None:
    site = load_site_text(_site(f'node_id: "{node_id}"'))
    addr = site.devices[0].points[0].opcua
    assert addr is not None
    assert addr.node_id == node_id


@pytest.mark.parametrize(
    ("node_id", "why"),
    [
        ("ns=2;x=5", "is not a NodeId"),
        ("ns=2;i=abc", "is not a NodeId"),
        ("2;s=m1.state", "is not a NodeId"),
        ("ns=2;s=", "is not a NodeId"),
        ("ns=70000;i=1", "namespace index above 65535"),
        ("i=4294967296", "numeric identifier above"),
        ("ns=1;g=not-a-guid", "is not a NodeId"),
        ("CNC1.State", "is not a NodeId"),
    ],
)
def test_malformed_node_id_has_line_and_reason(node_id: str, why: str) -> None:
    issues = _messages(_site(f'node_id: "{node_id}"'))
    assert len(issues) == 1
    line, path, msg = issues[0]
    assert (line, path) == (10, "devices[0].points[0].opcua.node_id")
    assert why in msg


@pytest.mark.parametrize(
    "path", ["0:Objects/2:cnc1/2:State", "2:cnc1/2:State", "/Objects/2:cnc1/3:Monitoring"]
)
def test_valid_browse_paths(path: str) -> None:
    site = load_site_text(_site(f'browse_path: "{path}"'))
    addr = site.devices[0].points[0].opcua
    assert addr is not None
    assert addr.browse_path == path


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("0:Objects//2:State", "empty segment"),
        ("0:Objects/2:/2:State", "has no name"),
        ("0:Objects/70000:cnc1", "namespace index above 65535"),
        ("   ", "empty browse path"),
        ("0:Objects/2: cnc1", "surrounding spaces"),
    ],
)
def test_malformed_browse_path(path: str, why: str) -> None:
    issues = _messages(_site(f'browse_path: "{path}"'))
    assert len(issues) == 1
    line, field, msg = issues[0]
    assert (line, field) == (10, "devices[0].points[0].opcua.browse_path")
    assert why in msg


def test_unquoted_number_keys_are_the_raw_value_text() -> None:
    site = load_site_text(_site(state_map="{0: producing, 3: down}"))
    assert site.devices[0].points[0].state_map == {"0": "producing", "3": "down"}


def test_off_as_a_state_is_one_clear_error_and_a_warning() -> None:
    text = _site(state_map="{0: off, on: idle}")
    issues = _messages(text)
    assert len(issues) == 1  # not one per key and value
    line, path, msg = issues[0]
    assert (line, path) == (9, "devices[0].points[0].state_map")
    assert "quote it" in msg
    warnings = [(w.line, w.path, w.message) for w in yaml_surprises(text, "site.yaml")]
    assert warnings == [
        (
            9,
            "devices[0].points[0].state_map.0",
            "unquoted value 'off' is read by YAML as false: quote it ('off') if you mean the text",
        ),
        (
            9,
            "devices[0].points[0].state_map",
            "unquoted key 'on' is read by YAML as true: quote it ('on') if you mean the text",
        ),
    ]


def test_true_false_and_quoted_words_do_not_warn() -> None:
    text = _site(state_map="{'off': idle, \"on\": producing}").replace(
        "    points:", "    key_equipment: true\n    production: false\n    points:"
    )
    assert yaml_surprises(text) == []
    assert load_site_text(text).devices[0].points[0].state_map == {
        "off": "idle",
        "on": "producing",
    }


def test_config_check_prints_warnings_and_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(_site('node_id: "ns=2;x=5"', "{0: producing, yes: idle}"), encoding="utf-8")
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"warning: {path}:9: devices[0].points[0].state_map: unquoted key")
    assert any("node_id: 'ns=2;x=5' is not a NodeId" in line for line in err)
    assert not any("Traceback" in line for line in err)


def test_config_check_warns_on_a_valid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(_site().replace("name: cnc", "name: cnc\n    line: off"), encoding="utf-8")
    rc = main(["config", "check", str(path)])
    err = capsys.readouterr().err
    assert "unquoted value 'off' is read by YAML as false" in err
    assert rc == 2


COUNT_SITE = """\
site: {id: s1, name: Site}
devices:
  - id: m1
    name: filler
    opcua: {endpoint: "opc.tcp://127.0.0.1:4840"}
    points:
      - id: processed
        role: count_total
        opcua: {ADDRESS}
"""
ARRAY = 'browse_path: "0:Objects/2:Filler1/3:Admin/3:ProdProcessedCount"'


@pytest.mark.parametrize(
    ("selection", "want"),
    [
        ("element: {ID: 1}, field: AccCount", ({"ID": 1}, None, "AccCount")),
        ('element: {Name: "Cola"}, field: AccCount', ({"Name": "Cola"}, None, "AccCount")),
        ("index: 0, field: AccCount", (None, 0, "AccCount")),
        ("field: Unit.UnitId", (None, None, "Unit.UnitId")),
        ("index: 2", (None, 2, None)),
    ],
)
def test_structure_and_array_selections(
    selection: str, want: tuple[object, object, object]
) -> None:
    site = load_site_text(COUNT_SITE.replace("ADDRESS", f"{ARRAY}, {selection}"))
    addr = site.devices[0].points[0].opcua
    assert addr is not None
    assert (addr.element, addr.index, addr.field) == want


@pytest.mark.parametrize(
    ("selection", "where", "why"),
    [
        ("element: {ID: 1}", "opcua", "say which of its fields is the value"),
        ("element: {ID: 1}, index: 0, field: AccCount", "opcua", "give one of 'index'"),
        ("element: {ID: 1, Name: x}, field: AccCount", "opcua.element", "one field and its value"),
        ("element: {ID: yes}, field: AccCount", "opcua.element", "quote it"),
        ("element: {ID: 1}, field: Acc Count", "opcua.field", "field 'Acc Count'"),
        ("index: -1, field: AccCount", "opcua.index", "greater than or equal to 0"),
    ],
)
def test_malformed_selections_have_one_clear_message(selection: str, where: str, why: str) -> None:
    issues = _messages(COUNT_SITE.replace("ADDRESS", f"{ARRAY}, {selection}"))
    assert len(issues) == 1
    _, path, msg = issues[0]
    assert path.startswith(f"devices[0].points[0].{where}")
    assert why in msg


def test_no_deadband_on_a_selected_part() -> None:
    text = COUNT_SITE.replace("ADDRESS", f"{ARRAY}, index: 0, field: AccCount")
    issues = _messages(text + "        deadband: {kind: absolute, value: 1}\n")
    assert len(issues) == 1
    assert "no deadband on a part of an OPC UA structure" in issues[0][2]


def test_config_check_names_a_bad_selection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(COUNT_SITE.replace("ADDRESS", f"{ARRAY}, element: {{ID: 1}}"), "utf-8")
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "say which of its fields is the value" in err
    assert "Traceback" not in err


JOB = 'browse_path: "0:Objects/2:Mill1/3:Production/3:ActiveProgram/3:JobNodeId"'


def test_a_follow_point() -> None:
    site = load_site_text(
        COUNT_SITE.replace("ADDRESS", f"{JOB}, follow: 3:RunsCompleted, mode: poll")
    )
    addr = site.devices[0].points[0].opcua
    assert addr is not None
    assert (addr.follow, addr.mode) == ("3:RunsCompleted", "poll")


@pytest.mark.parametrize(
    ("selection", "why"),
    [
        ("follow: 3:RunsCompleted", "add mode: poll"),
        ("follow: 3:RunsCompleted, mode: poll, field: X", "does not combine"),
        ('follow: "0:Objects/3:RunsCompleted", mode: poll', "a path relative to the node"),
        ('follow: "3:Runs//x", mode: poll', "empty segment"),
    ],
)
def test_malformed_follow(selection: str, why: str) -> None:
    issues = _messages(COUNT_SITE.replace("ADDRESS", f"{JOB}, {selection}"))
    assert len(issues) == 1
    assert why in issues[0][2]
