"""Write deploy/helm/shopfloor/values.schema.json: the chart's values, with ``site`` checked
against the JSON Schema of the site-file models (config.models.SiteConfig).

Run after changing the config models or the chart's values:
    .venv/bin/python deploy/helm/gen_schema.py          # writes the file
    .venv/bin/python deploy/helm/gen_schema.py --check  # exit 1 when the file is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from config.models import SiteConfig  # noqa: E402

OUT = ROOT / "deploy" / "helm" / "shopfloor" / "values.schema.json"


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        out["required"] = required
    return out


STR = {"type": "string"}
BOOL = {"type": "boolean"}
ANY_OBJ = {"type": "object"}
RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"requests": ANY_OBJ, "limits": ANY_OBJ, "claims": {"type": "array"}},
}
SECRET_KEY = _obj({"name": STR, "key": STR}, ["name", "key"])


def site_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The site schema without its ``$defs`` (returned apart, hoisted to the top)."""
    schema = SiteConfig.model_json_schema(ref_template="#/$defs/{model}")
    defs = schema.pop("$defs", {})
    schema.pop("title", None)
    return schema, defs


def values_schema() -> dict[str, Any]:
    site, defs = site_schema()
    defs["SiteConfig"] = {**site, "description": "the site file (shopfloor config check)"}
    props: dict[str, Any] = {
        "image": _obj(
            {
                "repository": {"type": "string", "minLength": 1},
                "tag": STR,
                "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
            },
            ["repository"],
        ),
        "imagePullSecrets": {"type": "array", "items": ANY_OBJ},
        "nameOverride": STR,
        "fullnameOverride": STR,
        "site": {"$ref": "#/$defs/SiteConfig"},
        "existingSiteConfigMap": STR,
        "plant": _obj({"enabled": BOOL}),
        "groupView": _obj(
            {
                "enabled": BOOL,
                "replicas": {"type": "integer", "minimum": 1},
                "port": {"type": "integer", "minimum": 1024, "maximum": 65535},
                "group": _obj(
                    {
                        "id": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"},
                        "name": {"type": "string", "minLength": 1},
                    },
                    ["id", "name"],
                ),
                "siteConfigMaps": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "influxdb": _obj(
                    {
                        "url": STR,
                        "api": {"enum": ["v1", "v2"]},
                        "database": STR,
                        "bucket": STR,
                        "retentionPolicy": STR,
                        "measurement": {"type": "string", "pattern": r"^[A-Za-z0-9_.\-]+$"},
                        "username": STR,
                        "credentialsSecret": _obj({"name": STR, "key": STR}),
                    }
                ),
                "tokensSecret": _obj({"name": STR, "key": STR}),
                "forwardedAllowIps": STR,
                "ingress": _obj({"enabled": BOOL, "host": STR}),
                "resources": RESOURCES,
            }
        ),
        "collector": _obj(
            {
                "enabled": BOOL,
                "aliveMaxAgeMin": {"type": "integer", "minimum": 1, "maximum": 60},
                "resources": RESOURCES,
                "extraArgs": {"type": "array", "items": STR},
            }
        ),
        "gateway": _obj(
            {
                "enabled": BOOL,
                "port": {"type": "integer", "minimum": 1024, "maximum": 65535},
                "maxUploadMb": {"type": "integer", "minimum": 1},
                "sessionTtlS": {"type": "integer", "minimum": 60},
                "cookieSecure": BOOL,
                "forwardedAllowIps": STR,
                "resources": RESOURCES,
            }
        ),
        "signingKey": _obj({"existingSecret": STR}),
        "secret": _obj(
            {
                "create": BOOL,
                "signingKey": STR,
                "signingPub": STR,
                "influxToken": STR,
                "mqttPassword": STR,
            }
        ),
        "persistence": _obj(
            {
                "enabled": BOOL,
                "size": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"},
                "storageClass": STR,
                "accessModes": {"type": "array", "items": STR, "minItems": 1},
            }
        ),
        "influxdb": {
            **_obj(
                {
                    "enabled": BOOL,
                    "url": STR,
                    "api": {"enum": ["v1", "v2"]},
                    "org": STR,
                    "bucket": STR,
                    "database": STR,
                    "retentionPolicy": STR,
                    "retention": {
                        "anyOf": [
                            {"type": "object", "maxProperties": 0},
                            {"$ref": "#/$defs/InfluxRetention"},
                        ]
                    },
                    "gatewayId": {"type": "string", "pattern": r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)?$"},
                    "tokenSecret": _obj({"name": STR, "key": STR}),
                }
            ),
            "if": {"properties": {"enabled": {"const": True}}},
            "then": {"properties": {"url": {"pattern": "^https?://"}}},
        },
        "mqtt": {
            **_obj(
                {
                    "enabled": BOOL,
                    "host": STR,
                    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                    "username": STR,
                    "passwordSecret": _obj({"name": STR, "key": STR}),
                }
            ),
            "if": {"properties": {"enabled": {"const": True}}},
            "then": {"properties": {"host": {"minLength": 1}}},
        },
        "service": _obj(
            {
                "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            }
        ),
        "ingress": _obj(
            {
                "enabled": BOOL,
                "className": STR,
                "annotations": {"type": "object", "additionalProperties": STR},
                "host": STR,
                "tls": _obj({"enabled": BOOL, "secretName": STR}),
            }
        ),
        "serviceAccount": _obj({"create": BOOL, "name": STR}),
        "podSecurityContext": ANY_OBJ,
        "securityContext": ANY_OBJ,
        "podAnnotations": {"type": "object", "additionalProperties": STR},
        "nodeSelector": {"type": "object", "additionalProperties": STR},
        "tolerations": {"type": "array", "items": ANY_OBJ},
        "affinity": ANY_OBJ,
        "global": ANY_OBJ,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "shopfloor chart values (generated by deploy/helm/gen_schema.py)",
        **_obj(props, ["image", "site"]),
        "$defs": dict(sorted(defs.items())),
    }


def render() -> str:
    return json.dumps(values_schema(), ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail when the committed file is stale")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run deploy/helm/gen_schema.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
