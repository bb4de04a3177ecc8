"""The reviewer's install: ``pip install 'shopfloor[verify]'`` brings only the verifier's
dependencies, and ``shopfloor verify`` runs with the collector's and gateway's libraries absent
(imports of them fail in the subprocess, as on a machine where they are not installed)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from tests.evidence.test_verdict import make_bundle

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "asyncua",
    "pymodbus",
    "paho",
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
    "influxdb_client",
    "httpx",
    "amqtt",
    "openpyxl",
    "jsonpointer",
    "prometheus_client",
    "multipart",
)
VERIFIER_DEPS = {"pydantic", "pyyaml", "numpy", "cryptography", "rfc8785"}


def _name(req: str) -> str:
    m = re.match(r"[A-Za-z0-9_.-]+", req)
    assert m is not None, req
    return m.group(0).lower().replace("_", "-")


def _project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        project: dict[str, object] = tomllib.load(f)["project"]
    return project


def test_base_dependencies_are_the_verifiers() -> None:
    project = _project()
    deps = project["dependencies"]
    assert isinstance(deps, list)
    assert {_name(d) for d in deps} == VERIFIER_DEPS
    extras = project["optional-dependencies"]
    assert isinstance(extras, dict)
    assert extras["verify"] == []
    collector = {_name(d) for d in extras["collector"]}
    gateway = {_name(d) for d in extras["gateway"]}
    assert {"asyncua", "pymodbus", "paho-mqtt"} <= collector
    assert {"fastapi", "uvicorn", "python-multipart"} <= gateway
    assert extras["all"] == ["shopfloor[collector,gateway]"]


def _closure(names: set[str]) -> set[str]:
    """Distributions ``names`` need, transitively (requirements without an extra marker)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        try:
            reqs = metadata.requires(n) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_name(r) for r in reqs if "extra ==" not in r]
    return seen


BLOCKER = """
import importlib.abc, json, sys
HEAVY = set(json.loads(sys.argv[1]))
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            raise ModuleNotFoundError(f"No module named {name!r} (not installed)", name=name)
        return None
sys.meta_path.insert(0, Absent())
from edge.cli.main import main
rc = main(sys.argv[2:])
third = sorted({m.split(".")[0] for m in sys.modules} - set(sys.stdlib_module_names))
print(json.dumps({"rc": rc, "modules": third}))
"""


def test_verify_runs_without_the_collector_and_gateway_libraries(tmp_path: Path) -> None:
    data, trust = make_bundle(tmp_path)
    z, t = tmp_path / "b.zip", tmp_path / "trust.json"
    z.write_bytes(data)
    t.write_text(json.dumps(trust.to_dict()), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-c", BLOCKER, json.dumps(HEAVY), "verify", str(z), "--trust", str(t)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["rc"] == 0, out.stdout
    assert not set(HEAVY) & set(res["modules"])
    # every third-party module imported belongs to the verifier's dependencies
    ours = {"config", "connectors", "edge", "metrics", "gateway", "cython_runtime"}
    allowed = _closure(VERIFIER_DEPS)
    dists = metadata.packages_distributions()
    foreign = {
        m: dists.get(m, [m])
        for m in res["modules"]
        if m not in ours and not m.startswith("_") and m not in sys.builtin_module_names
    }
    outside = {m: d for m, d in foreign.items() if not {_name(x) for x in d} & allowed}
    assert not outside, outside
