"""The lean config_content (a device at a time, shared strings, no dump of the points'
Python form) gives the very content, key order and bytes of the straightforward one."""

from __future__ import annotations

import json
from pathlib import Path, PurePath
from typing import Any

from config.loader import load_site
from config.models import SiteConfig
from metrics.evidence import canonical, configlog

DEMO = Path(__file__).parents[2] / "config" / "examples" / "demo.yaml"


def _reference(site: SiteConfig) -> dict[str, Any]:
    """config_content as it was: both dumps of the whole site, paths reduced, jsonable."""

    def no_paths(py: Any, js: Any) -> Any:
        if isinstance(py, PurePath):
            return py.name
        if isinstance(py, dict) and isinstance(js, dict):
            return {k: no_paths(py.get(k), v) for k, v in js.items()}
        if isinstance(py, list | tuple) and isinstance(js, list) and len(py) == len(js):
            return [no_paths(a, b) for a, b in zip(py, js, strict=True)]
        return js

    skip = set(configlog.EXCLUDED_SECTIONS)
    py = site.model_dump(mode="python", exclude=skip)
    js = site.model_dump(mode="json", exclude=skip)
    out: dict[str, Any] = canonical.jsonable(no_paths(py, js))
    return out


def _big_site() -> SiteConfig:
    points: list[dict[str, Any]] = [
        {"id": f"r{a}", "datatype": "uint16", "modbus": {"address": a}} for a in range(300)
    ]
    points[5] |= {"offset": -0.0, "scale": 0.1, "deadband": {"value": 2.5}}
    points[6] |= {"role": "state", "state_map": {"1": "producing", "2": "down"}}
    points[7] |= {"role": "energy_kwh", "counter_bits": 32, "name": "电能 kWh", "unit": "kWh"}
    points[8] |= {"modbus": {"address": 8, "table": "input", "order": "CDAB", "unit": 9}}
    devices: list[dict[str, Any]] = [
        {
            "id": f"m{d}",
            "name": f"meter {d}",
            "modbus": {"host": "127.0.0.1", "port": 5020 + d},
            "points": points,
        }
        for d in range(4)
    ]
    devices.append(
        {
            "id": "mq",
            "name": "mqtt",
            "mqtt": {
                "host": "broker",
                "tls": {"ca_file": "/etc/ssl/plant/ca.pem", "cert_file": "/c/cl.pem",
                        "key_file": "/c/cl.key"},
            },
            "points": [{"id": "v", "mqtt": {"topic": "a/b"}}, {"id": "w", "mqtt": {"topic": "c"}}],
        }
    )  # fmt: skip
    return SiteConfig.model_validate({"site": {"id": "big", "name": "big"}, "devices": devices})


def _check(site: SiteConfig) -> None:
    got = configlog.config_content(site)
    want = _reference(site)
    assert got == want
    # the same key order everywhere (json.dumps without sort_keys follows it)
    assert json.dumps(got) == json.dumps(want)
    sha = canonical.sha256_hex(canonical.canonical_json(want))
    assert configlog.content_sha256(got) == sha
    fields = configlog.leaf_fields(got, cause="start", effective_ns=7, previous=2)
    rec = canonical.special_record("config", 11, fields)
    ref_fields = {k: canonical.jsonable(v) for k, v in fields.items()}
    assert canonical.record_bytes(rec) == canonical.canonical_json(
        {"v": 1, "kind": "config", "ts": "11", **ref_fields}
    )


def test_demo_site_content_is_unchanged() -> None:
    _check(load_site(DEMO))


def test_large_site_content_is_unchanged() -> None:
    site = _big_site()
    _check(site)
    mq = configlog.config_content(site)["devices"][-1]["mqtt"]["tls"]
    assert mq["ca_file"] == "ca.pem"  # paths reduced to file names, as before


def test_content_sha256_of_a_non_plain_content_takes_the_general_path() -> None:
    content = {"a": 1.5, "b": (1, 2), "ü": 2**60}
    assert configlog.content_sha256(content) == canonical.sha256_hex(
        canonical.canonical_json(content)
    )


def test_special_record_converts_what_is_not_plain_json() -> None:
    plain = {"a": [1, "x", None, True]}
    rec = canonical.special_record("config", 1, {"config": plain, "f": {"x": 0.5, "n": 2**60}})
    assert rec["config"] is plain  # already canonical JSON: not copied
    assert rec["f"] == {"x": "0.5", "n": str(2**60)}  # floats and big integers converted
    assert canonical.record_bytes(rec) == canonical.canonical_json(rec)
    assert not canonical.is_plain_json({"a": 1.0})
    assert not canonical.is_plain_json({"ü": 1})  # non-ASCII key: the RFC 8785 package
    assert not canonical.is_plain_json([2**53])
