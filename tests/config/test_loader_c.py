"""The site loader with libyaml's C parser (issue 16: a 12,500-point file in under 1 s) gives
the same data and the same issues, with the same lines, as the pure-Python loader: duplicate
keys, the nesting bound (at and just past the limit), validation errors, syntax errors, and
the YAML features the fast path leaves to the node path (anchors, merge keys, tags)."""

from __future__ import annotations

import pytest
import yaml

from config import loader
from config.loader import MAX_DEPTH, ConfigError, load_site_text

pytestmark = pytest.mark.skipif(not loader.C_LOADER, reason="libyaml not present")

SITE = """\
site: {id: s1, name: "Site \\u00e9"}
runtime: {queue_size: 1_000, heartbeat_s: 0x3C}
devices:
  - id: m1
    name: meter
    modbus: {host: 127.0.0.1, port: 5020, timeout_s: 1.5e0}
    points:
      - id: e
        role: energy_kwh
        deadband: {value: .5}
        modbus: {address: 0, order: CDAB}
      - id: "on"
        datatype: bool
        modbus: {address: 2, bit: 3}
"""

UNUSUAL = {
    "anchors": SITE.replace("    modbus: {host", "    modbus: &c {host").replace(
        "    points:\n", "    x_ref: *c\n    points:\n"
    ),
    "merge": SITE.replace(
        "    modbus: {host: 127.0.0.1, port: 5020, timeout_s: 1.5e0}",
        "    modbus: {<<: {host: 10.0.0.1, port: 502}, host: 127.0.0.1, port: 5020}",
    ),
    "tag": SITE.replace("name: meter", "name: !!str meter"),
}


def _issues(text: str, c: bool) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as exc:
        load_site_text(text, "s.yaml", c_loader=c)
    return [(i.line, i.path, i.message) for i in exc.value.issues]


def test_a_plain_file_is_built_from_events_like_the_python_loader() -> None:
    from_events = loader._from_events(SITE, yaml.CSafeLoader)
    python = yaml.load(SITE, Loader=yaml.SafeLoader)
    assert from_events == python
    assert load_site_text(SITE, c_loader=True) == load_site_text(SITE, c_loader=False)


@pytest.mark.parametrize("name", sorted(UNUSUAL))
def test_unusual_yaml_goes_the_node_path_with_the_same_result(name: str) -> None:
    text = UNUSUAL[name]
    if name == "anchors":  # x_ref is not a field: the same issue, same line, either way
        assert _issues(text, True) == _issues(text, False)
        return
    if name == "merge":
        with pytest.raises(loader._Unusual):
            loader._from_events(text, yaml.CSafeLoader)
    assert load_site_text(text, c_loader=True) == load_site_text(text, c_loader=False)


@pytest.mark.parametrize(
    "text",
    [
        SITE + "site: {id: s2, name: Other}\n",  # duplicate key at the top
        SITE.replace("    name: meter\n", "    name: meter\n    name: again\n"),  # nested
        SITE.replace("port: 5020", "port: 99999"),  # validation error
        SITE.replace("      - id: e\n", "      - id: e\n        colour: red\n"),  # unknown field
        SITE.replace("name: meter", "name: [meter"),  # syntax error
        "- a\n- b\n",  # not a mapping
        "",  # empty
        "site: {id: a, name: b}\n---\nsite: {id: c, name: d}\n",  # two documents
    ],
    ids=["dup-top", "dup-nested", "range", "unknown", "syntax", "list", "empty", "two-docs"],
)
def test_the_same_issues_with_the_same_lines(text: str) -> None:
    c_issues = _issues(text, True)
    py_issues = _issues(text, False)
    assert [(line, path) for line, path, _ in c_issues] == [
        (line, path) for line, path, _ in py_issues
    ]
    if not c_issues[0][2].startswith("YAML syntax"):  # libyaml words its syntax errors itself
        assert c_issues == py_issues


@pytest.mark.parametrize("extra", [-2, -1, 0, 1, 2])
@pytest.mark.parametrize("style", ["block", "flow"])
def test_the_nesting_bound_is_the_same_at_and_past_the_limit(style: str, extra: int) -> None:
    n = MAX_DEPTH - 1 + extra  # collections under "site:" (the root mapping is one more)
    if style == "block":
        text = "site:\n" + "".join("  " * (i + 1) + "k:\n" for i in range(n - 1))
        text += "  " * n + "v\n"
    else:
        text = "site: " + "[" * n + "x" + "]" * n + "\n"
    results = []
    for c in (True, False):
        try:
            load_site_text(text, "deep.yaml", c_loader=c)
        except ConfigError as exc:
            results.append([(i.line, i.message) for i in exc.issues])
    assert len(results) == 2
    assert results[0] == results[1]
    deep = [m for m in results[0] if m[1] == f"nested deeper than {MAX_DEPTH} levels"]
    if extra != 0:  # well below / past the bound (exactly at it, both agree as checked)
        assert bool(deep) == (extra > 0)
