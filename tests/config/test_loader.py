"""Site-file models and loader: validation, error locations, secrets, schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.base import SecretError, SecretRef
from config.loader import ConfigError, json_schema, load_site, load_site_text

EXAMPLES = sorted((Path(__file__).parents[2] / "config" / "examples").glob("*.yaml"))

MINIMAL = """\
site: {id: s1, name: Site}
devices:
  - id: m1
    name: meter
    modbus: {host: 127.0.0.1, port: 5020}
    points:
      - id: e
        role: energy_kwh
        modbus: {address: 0, order: CDAB}
"""


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    site = load_site(path)
    assert site.devices, "an example without devices teaches nothing"


def test_minimal_defaults() -> None:
    site = load_site_text(MINIMAL)
    dev = site.device("m1")
    assert dev.protocol == "modbus"
    assert dev.point("e").modbus is not None
    assert site.storage.kind == "sqlite"
    assert site.site.timezone == "Asia/Shanghai"


def _issues(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as info:
        load_site_text(text, "site.yaml")
    return [(i.line, i.path, i.message) for i in info.value.issues]


def test_unknown_field_has_line_and_path() -> None:
    text = MINIMAL.replace("    name: meter\n", "    name: meter\n    colour: red\n")
    issues = _issues(text)
    assert issues == [(5, "devices[0].colour", "unknown field (not allowed here)")]


def test_out_of_range_value_points_at_its_line() -> None:
    issues = _issues(MINIMAL.replace("address: 0", "address: 70000"))
    assert len(issues) == 1
    line, path, msg = issues[0]
    assert (line, path) == (9, "devices[0].points[0].modbus.address")
    assert "65535" in msg


def test_every_error_is_reported_not_only_the_first() -> None:
    text = MINIMAL.replace("port: 5020", "port: 0").replace("order: CDAB", "order: XYZW")
    paths = {p for _, p, _ in _issues(text)}
    assert paths == {"devices[0].modbus.port", "devices[0].points[0].modbus.order"}


def test_model_rule_errors_name_the_device() -> None:
    text = MINIMAL.replace("role: energy_kwh", "role: state")
    ((_, path, msg),) = _issues(text)
    assert path == "devices[0].points[0]"
    assert "state_map" in msg


def test_yaml_syntax_error_has_line() -> None:
    issues = _issues("site: {id: s1, name: Site\ndevices: []\n")
    assert issues[0][0] is not None
    assert issues[0][2].startswith("YAML syntax")


def test_not_a_mapping() -> None:
    assert _issues("- a\n- b\n")[0][2].startswith("the site file must be a YAML mapping")


def test_duplicate_ids_and_missing_protocol() -> None:
    dup = MINIMAL + MINIMAL.split("devices:\n", 1)[1]
    assert any("duplicate device id" in m for _, _, m in _issues(dup))
    noproto = MINIMAL.replace("    modbus: {host: 127.0.0.1, port: 5020}\n", "")
    assert any("exactly one protocol block" in m for _, _, m in _issues(noproto))


def test_bad_timezone() -> None:
    ((_, path, msg),) = _issues(MINIMAL.replace("name: Site}", "name: Site, timezone: Mars/Base}"))
    assert path == "site.timezone"
    assert "Mars/Base" in msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_site(tmp_path / "nope.yaml")


def test_secret_never_printed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SF_TEST_SECRET", "hunter2")
    ref = SecretRef(env="SF_TEST_SECRET")
    assert ref.reveal() == "hunter2"
    assert "hunter2" not in repr(ref)
    assert "hunter2" not in str(ref)
    assert "hunter2" not in ref.model_dump_json()
    f = tmp_path / "pw"
    f.write_text("s3cret\n")
    assert SecretRef(file=f).reveal() == "s3cret"
    with pytest.raises(SecretError, match="NOT_SET_VAR"):
        SecretRef(env="NOT_SET_VAR").reveal()
    with pytest.raises(SecretError, match="cannot read secret file"):
        SecretRef(file=tmp_path / "missing").reveal()


def test_invalid_value_is_not_echoed() -> None:
    """A wrong value may be a mistyped secret: messages name the field, not the value."""
    text = MINIMAL.replace("port: 5020", "port: topsecretvalue")
    assert all("topsecretvalue" not in m for _, _, m in _issues(text))


def test_relative_paths_resolve_against_the_site_file(tmp_path: Path) -> None:
    f = tmp_path / "sub" / "site.yaml"
    f.parent.mkdir()
    f.write_text(MINIMAL + "storage: {kind: sqlite, path: db/x.db}\n")
    site = load_site(f)
    assert site.resolve(site.storage.path) == tmp_path / "sub" / "db" / "x.db"


def test_models_are_frozen() -> None:
    site = load_site_text(MINIMAL)
    with pytest.raises(Exception, match="frozen"):
        site.site.name = "other"  # type: ignore[misc]


def test_schema_is_json_and_forbids_extra() -> None:
    schema = json.loads(json_schema())
    assert schema["additionalProperties"] is False
    assert "Device" in schema["$defs"]


def test_duplicate_key_is_refused_at_any_level_with_its_line() -> None:
    text = MINIMAL + "site: {id: s2, name: Other}\n"
    with pytest.raises(ConfigError) as exc:
        load_site_text(text, "site.yaml")
    (issue,) = exc.value.issues
    assert str(issue) == "site.yaml:10: duplicate key 'site' (first at line 1)"
    nested = MINIMAL.replace("    name: meter\n", "    name: meter\n    name: meter 2\n")
    with pytest.raises(ConfigError) as exc:
        load_site_text(nested, "site.yaml")
    (issue,) = exc.value.issues
    assert (issue.line, issue.path) == (5, "devices[0]")
    assert "duplicate key 'name' (first at line 4)" in issue.message


def test_merge_keys_are_not_duplicates() -> None:
    text = MINIMAL.replace(
        "    modbus: {host: 127.0.0.1, port: 5020}\n",
        "    modbus: {<<: {host: 10.0.0.1, port: 502}, host: 127.0.0.1, port: 5020}\n",
    )
    conn = load_site_text(text).device("m1").modbus
    assert conn is not None
    assert (conn.host, conn.port) == ("127.0.0.1", 5020)


@pytest.mark.parametrize("style", ["block", "flow"])
def test_nesting_deeper_than_the_limit_is_one_issue(style: str) -> None:
    from config.loader import MAX_DEPTH

    n = 500
    if style == "block":
        text = "site:\n" + "".join("  " * (i + 1) + "k:\n" for i in range(n))
    else:
        text = "site: " + "[" * n + "]" * n + "\n"
    with pytest.raises(ConfigError) as exc:
        load_site_text(text, "deep.yaml")
    (issue,) = exc.value.issues
    assert issue.message == f"nested deeper than {MAX_DEPTH} levels"
    assert issue.line == (MAX_DEPTH if style == "block" else 1)
    # the limit itself is far above any real site file: the examples load (test above)
