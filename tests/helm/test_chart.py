"""The Helm chart: lint, render (default values and the documented variants), validate every
manifest against the Kubernetes schemas, and check the deployed site file with our own loader."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from config.loader import load_site_text

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "shopfloor"
KUBE = "1.30.0"

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "ingress-tls": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "host": "plant1.example.com",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-buffering": "off"},
            "tls": {"enabled": True, "secretName": "plant1-tls"},
        },
        "gateway": {"forwardedAllowIps": "10.0.0.0/8"},
    },
    "influxdb-mqtt-key": {
        "influxdb": {
            "enabled": True,
            "url": "https://influx.central.example.com",
            "api": "v2",
            "org": "factory",
            "bucket": "shopfloor",
            "tokenSecret": {"name": "influx", "key": "token"},
        },
        "mqtt": {
            "enabled": True,
            "host": "mqtt.central.example.com",
            "port": 8883,
            "username": "plant1",
            "passwordSecret": {"name": "mqtt", "key": "password"},
        },
        "signingKey": {"existingSecret": "plant1-signing-key"},
        "site": {
            "version": 1,
            "site": {"id": "plant-1", "name": "Plant 1"},
            "devices": [
                {
                    "id": "qs1",
                    "name": "quality station",
                    "mqtt": {"host": "localhost", "port": 1883},
                    "points": [
                        {
                            "id": "passed",
                            "role": "count_good",
                            "mqtt": {"topic": "factory/qs1", "pointer": "/passed"},
                        }
                    ],
                }
            ],
        },
    },
    "no-persistence-gateway-only": {
        "persistence": {"enabled": False},
        "collector": {"enabled": False},
        "serviceAccount": {"create": False},
    },
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as c:
        yield c


def _docs(manifests: dict[str, str]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for name, text in manifests.items():
        if name.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def test_schema_file_is_generated_from_the_config_models() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "helm" / "gen_schema.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    assert "SiteConfig" in schema["$defs"]
    assert "Device" in schema["$defs"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_lint_is_clean(variant: str) -> None:
    report = helm.lint(CHART, VARIANTS[variant] or None, strict=True, kube_version="v" + KUBE)
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_render_validates_against_kubernetes(chart: helm.Chart, variant: str) -> None:
    values = VARIANTS[variant]
    docs = _docs(chart.render(values, name="plant1", namespace="factory"))
    kinds = sorted(d["kind"] for d in docs)
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE, strict=True)
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    for c in pod["containers"] + pod.get("initContainers", []):
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["resources"]["limits"]
    names = [c["name"] for c in pod["containers"]]
    merged = _merge(chart.values, values)
    assert ("collector" in names) == merged["collector"]["enabled"]
    gw = next(c for c in pod["containers"] if c["name"] == "gateway")
    assert gw["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gw["livenessProbe"]["httpGet"]["path"] == "/healthz"
    if merged["persistence"]["enabled"]:
        assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    else:
        assert {"name": "data", "emptyDir": {}} in pod["volumes"]
    assert ("Ingress" in kinds) == merged["ingress"]["enabled"]
    assert ("ServiceAccount" in kinds) == merged["serviceAccount"]["create"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_deployed_site_file_passes_our_loader(chart: helm.Chart, variant: str) -> None:
    docs = _docs(chart.render(VARIANTS[variant], name="plant1", namespace="factory"))
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    site = load_site_text(cm["data"]["site.yaml"], "site.yaml")
    assert str(site.evidence.ledger_path).startswith("/var/lib/shopfloor/")
    assert str(site.gateway.users_db) == "/var/lib/shopfloor/users.db"
    if variant == "influxdb-mqtt-key":
        assert site.storage.kind == "influxdb"
        assert str(site.storage.local_cache) == "/var/lib/shopfloor/shopfloor.db"
        assert site.storage.token is not None
        assert site.storage.token.env == "INFLUX_TOKEN"
        mqtt = site.devices[0].mqtt
        assert mqtt is not None
        assert mqtt.host == "mqtt.central.example.com"
        assert mqtt.password is not None
        assert mqtt.password.env == "MQTT_PASSWORD"
        sts = next(d for d in docs if d["kind"] == "StatefulSet")
        init = sts["spec"]["template"]["spec"]["initContainers"][0]
        assert "install -d -m 0700" in init["command"][-1]
        env = {e["name"] for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert {"INFLUX_TOKEN", "MQTT_PASSWORD"} <= env
    else:
        assert site.storage.kind == "sqlite"


@pytest.mark.parametrize(
    ("values", "words"),
    [
        (
            {"site": {"version": 1, "site": {"id": "p", "name": "P"}, "devices": [{"id": "d"}]}},
            "name",
        ),
        ({"site": {"version": 1, "site": {"id": "p", "name": "P"}, "colour": "red"}}, "colour"),
        ({"gateway": {"port": 80}}, "port"),
        ({"persistence": {"size": "lots"}}, "size"),
        ({"influxdb": {"enabled": True, "url": "ftp://x"}}, "url"),
        ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
    ],
)
def test_schema_rejects_bad_values(chart: helm.Chart, values: dict[str, Any], words: str) -> None:
    with pytest.raises(helm.HelmError) as err:
        chart.validate_schema(_merge(chart.values, values))
    assert words in str(err.value)


def test_tls_ingress_without_secret_name_fails_with_a_clear_message(chart: helm.Chart) -> None:
    bad = {"ingress": {"enabled": True, "tls": {"enabled": True, "secretName": ""}}}
    with pytest.raises(helm.HelmError, match=r"ingress\.tls\.secretName is required"):
        chart.render(bad, name="plant1", namespace="factory")


# ---- fleet: collector probes, the chart's Secret, secrets only where needed, many plants ---------

FLEET = ROOT / "deploy" / "helm" / "examples" / "fleet"


def _pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    pod: dict[str, Any] = sts["spec"]["template"]["spec"]
    return pod


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in pod["containers"] if c["name"] == name)
    return found


def _env_names(c: dict[str, Any]) -> set[str]:
    return {e["name"] for e in c.get("env", [])}


@pytest.mark.parametrize(
    "variant", sorted(v for v in VARIANTS if v != "no-persistence-gateway-only")
)
def test_collector_has_startup_and_liveness_probes(chart: helm.Chart, variant: str) -> None:
    docs = _docs(chart.render(VARIANTS[variant], name="plant1", namespace="factory"))
    col = _container(_pod(docs), "collector")
    for probe in ("startupProbe", "livenessProbe"):
        cmd = col[probe]["exec"]["command"]
        assert cmd[:2] == ["sh", "-c"]
        assert cmd[2] == "find /tmp/collector.alive -mmin -2 | grep -q ."
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    site = load_site_text(cm["data"]["site.yaml"], "site.yaml")
    assert str(site.runtime.alive_file) == "/tmp/collector.alive"


CHART_SECRET: dict[str, Any] = {
    "secret": {
        "create": True,
        "signingKey": "KEY",
        "signingPub": "PUB",
        "influxToken": "TOKEN",
        "mqttPassword": "PASSWORD",
    },
    "influxdb": {
        "enabled": True,
        "url": "http://influx.central:8086",
        "api": "v1",
        "database": "shopfloor",
        "retentionPolicy": "keep400",
        "retention": {"duration": "400d", "strict": True},
        "gatewayId": "hall-2",
    },
    "mqtt": {"enabled": True, "host": "mqtt.central", "port": 8883, "username": "plant1"},
    "site": VARIANTS["influxdb-mqtt-key"]["site"],  # with an MQTT device
}


def test_the_charts_own_secret_reaches_only_the_collector(chart: helm.Chart) -> None:
    docs = _docs(chart.render(CHART_SECRET, name="plant1", namespace="factory"))
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE, strict=True)
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert secret["metadata"]["name"] == "plant1-shopfloor-secrets"
    assert sorted(secret["data"]) == ["influx-token", "mqtt-password", "signing.key", "signing.pub"]
    assert base64.b64decode(secret["data"]["influx-token"]) == b"TOKEN"
    pod = _pod(docs)
    col = _container(pod, "collector")
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in col["env"] if "valueFrom" in e}
    assert refs == {
        "INFLUX_TOKEN": {"name": "plant1-shopfloor-secrets", "key": "influx-token"},
        "MQTT_PASSWORD": {"name": "plant1-shopfloor-secrets", "key": "mqtt-password"},
    }
    gw = _container(pod, "gateway")
    assert not any("valueFrom" in e for e in gw["env"])
    assert _env_names(gw) == {"PYTHONDONTWRITEBYTECODE", "HOME", "SHOPFLOOR_COOKIE_SECURE"}
    vol = next(v for v in pod["volumes"] if v["name"] == "signing-key")
    assert vol["secret"]["secretName"] == "plant1-shopfloor-secrets"
    assert pod["initContainers"][0]["name"] == "signing-key"
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    site = load_site_text(cm["data"]["site.yaml"], "site.yaml")
    st = site.storage
    assert st.kind == "influxdb"
    assert (st.retention_policy, st.gateway) == ("keep400", "hall-2")
    assert st.retention is not None
    assert (st.retention.duration, st.retention.strict) == ("400d", True)
    assert str(st.token) == "env:INFLUX_TOKEN"
    assert site.devices[0].mqtt is not None
    assert str(site.devices[0].mqtt.password) == "env:MQTT_PASSWORD"


def test_without_secrets_no_secret_and_no_secret_env(chart: helm.Chart) -> None:
    docs = _docs(chart.render({}, name="plant1", namespace="factory"))
    assert not [d for d in docs if d["kind"] == "Secret"]
    pod = _pod(docs)
    assert "initContainers" not in pod
    for c in pod["containers"]:
        assert not any("valueFrom" in e for e in c["env"])


def test_a_signing_key_without_its_public_half_fails_clearly(chart: helm.Chart) -> None:
    bad = {"secret": {"create": True, "signingKey": "KEY"}}
    with pytest.raises(helm.HelmError, match=r"secret\.signingPub is required"):
        chart.render(bad, name="plant1", namespace="factory")


def _values_file(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((FLEET / name).read_text(encoding="utf-8"))
    return loaded


def test_fleet_example_one_release_per_plant(chart: helm.Chart) -> None:
    central = _values_file("central.yaml")
    rendered: dict[str, list[dict[str, Any]]] = {}
    for plant in ("plant-a", "plant-b"):
        values = _merge(central, _values_file(f"{plant}.yaml"))
        report = helm.lint(CHART, values, strict=True, kube_version="v" + KUBE)
        assert report["errors"] == []
        chart.validate_schema(_merge(chart.values, values))
        docs = _docs(chart.render(values, name=plant, namespace="factory"))
        for doc in docs:
            kubernetes_validate.validate(doc, KUBE, strict=True)
        rendered[plant] = docs
    names = [{(d["kind"], d["metadata"]["name"]) for d in docs} for docs in rendered.values()]
    assert not names[0] & names[1]  # two releases in one namespace never collide
    sites = {}
    for plant, docs in rendered.items():
        cm = next(d for d in docs if d["kind"] == "ConfigMap")
        sites[plant] = load_site_text(cm["data"]["site.yaml"], "site.yaml")
    a, b = sites["plant-a"], sites["plant-b"]
    assert (a.site.id, b.site.id) == ("plant-a", "plant-b")
    assert [d.id for d in a.devices] == [d.id for d in b.devices] == ["cnc1"]
    for s in (a, b):
        assert s.storage.kind == "influxdb"
        assert s.storage.url == "https://influx.group.example.com"
        assert (s.storage.database, s.storage.retention_policy) == ("shopfloor", "shopfloor_400d")
        assert s.runtime.disk.budget_mb == 15000
    env_a = {e["name"]: e for e in _container(_pod(rendered["plant-a"]), "collector")["env"]}
    assert env_a["INFLUX_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "influx-writer"
    env_b = {e["name"]: e for e in _container(_pod(rendered["plant-b"]), "collector")["env"]}
    assert env_b["INFLUX_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "plant-b-shopfloor-secrets",
        "key": "influx-token",
    }
    secrets_a = [d for d in rendered["plant-a"] if d["kind"] == "Secret"]
    assert secrets_a == []
    ing = {
        p: next(d for d in docs if d["kind"] == "Ingress")["spec"]["rules"][0]["host"]
        for p, docs in rendered.items()
    }
    assert ing == {"plant-a": "plant-a.group.example.com", "plant-b": "plant-b.group.example.com"}


# ---- the group view: an optional stateless Deployment (a release of its own in the fleet) ------


def test_fleet_group_view_release(chart: helm.Chart, tmp_path: Path) -> None:
    from config.group import load_group

    values = _values_file("group.yaml")
    report = helm.lint(CHART, values, strict=True, kube_version="v" + KUBE)
    assert report["errors"] == []
    chart.validate_schema(_merge(chart.values, values))
    docs = _docs(chart.render(values, name="group", namespace="factory"))
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE, strict=True)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "Deployment", "Ingress", "Service", "ServiceAccount"]
    dep = next(d for d in docs if d["kind"] == "Deployment")
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["args"][:3] == ["serve", "--group", "/etc/shopfloor/group/group.yaml"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    # stateless: no claim, no volume that outlives the pod except read-only files
    assert "volumeClaimTemplates" not in dep["spec"]
    assert all("persistentVolumeClaim" not in v for v in pod["volumes"])
    assert all(m["readOnly"] for m in c["volumeMounts"] if m["name"] != "tmp")
    assert [e["name"] for e in c["env"]] == ["INFLUX_TOKEN"]
    assert c["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "influx-reader", "key": "token"}
    # the group file passes our loader; its sites are the plants' own site ConfigMaps
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    path = tmp_path / "group.yaml"
    path.write_text(cm["data"]["group.yaml"], encoding="utf-8")
    group = load_group(path)
    assert group.influxdb.url == "https://influx.group.example.com"
    assert (group.influxdb.database, group.influxdb.retention_policy) == (
        "shopfloor",
        "shopfloor_400d",
    )
    assert group.influxdb.token is not None
    assert group.influxdb.token.env == "INFLUX_TOKEN"
    assert str(group.auth.tokens_file) == "/etc/shopfloor/tokens/tokens.txt"
    central = _values_file("central.yaml")
    plant_maps = set()
    for plant in ("plant-a", "plant-b"):
        plant_docs = _docs(
            chart.render(
                _merge(central, _values_file(f"{plant}.yaml")), name=plant, namespace="factory"
            )
        )
        plant_maps |= {d["metadata"]["name"] for d in plant_docs if d["kind"] == "ConfigMap"}
        assert not any(d["kind"] == "Deployment" for d in plant_docs)  # off by default
    mounted = {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
    assert mounted - {cm["metadata"]["name"]} == plant_maps
    sites = sorted(str(s) for s in group.sites)
    assert sites == [f"/etc/shopfloor/sites/{m}/site.yaml" for m in sorted(plant_maps)]
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {str(Path(s).parent) for s in sites} <= mounts


def test_group_view_needs_its_tokens_secret(chart: helm.Chart) -> None:
    values = _values_file("group.yaml")
    values["groupView"]["tokensSecret"] = {"name": "", "key": "tokens.txt"}
    with pytest.raises(helm.HelmError, match=r"groupView\.tokensSecret\.name is required"):
        chart.render(values, name="group", namespace="factory")
