"""Configuration is evidence: the ``config`` leaves of the ledger (pure).

A ``config`` leaf holds the configuration's canonical *content*, not a hash of a file: the site
file as canonical JSON without the sections that only say where things live or who may log in
(``storage``, ``evidence``, ``gateway``) and with every remaining file path reduced to its file
name, so moving the data folder never changes it. Fields of the leaf::

    {"kind": "config", "ts": T_recorded, "config": {...}, "config_sha256": HEX,
     "effective_from": "NS", "cause": "start" | "record" | "export", "reason": "...",
     "previous": INDEX_OF_THE_CONFIG_LEAF_BEFORE | -1}

``effective_from`` is when the configuration takes effect (the collector's start, or the
``--from`` of ``shopfloor config record``; a time before the recording re-classifies history and
the verifier's report shows it as such). The configuration *in force* at an instant is, of the
leaves in effect by then (``effective_from`` at or before it), the one recorded last: a leaf
supersedes every earlier one from its ``effective_from`` on. Before any is in effect, the first
one recorded applies (imported history recorded before any configuration is read under the
configuration the log holds first).

The *KPI view* of a configuration is what the KPI engine reads: the content without the
devices' and points' connection blocks (``modbus``/``opcua``/``mqtt``/``mtconnect``/
``sparkplug``) and without the runtime
settings other than ``heartbeat_s``. Leaves whose KPI views are equal compute the same KPIs, so a
period may span them; a period spanning different KPI views cannot be computed under one
configuration and is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel

from config.models import PROTOCOLS, Device, Point, PointTable, SiteConfig
from metrics.evidence import canonical

EXCLUDED_SECTIONS = ("storage", "evidence", "gateway")
CONNECTION_KEYS: tuple[str, ...] = PROTOCOLS  # every protocol block of a device or point
KPI_RUNTIME_KEYS = ("heartbeat_s",)


def _no_paths(py: Any, js: Any) -> Any:
    """``js`` (the JSON dump) with every value that is a path in ``py`` (the Python dump of
    the same model) reduced to its file name."""
    if isinstance(py, PurePath):
        return py.name
    if isinstance(py, Mapping) and isinstance(js, Mapping):
        return {k: _no_paths(py.get(k), v) for k, v in js.items()}
    if isinstance(py, list | tuple) and isinstance(js, list | tuple) and len(py) == len(js):
        return [_no_paths(a, b) for a, b in zip(py, js, strict=True)]
    return js


def _may_hold_path(tp: Any, seen: set[type]) -> bool:
    """Whether a value of type ``tp`` (a field's annotation) can be or contain a path."""
    if tp is Any or tp is object:
        return True
    if isinstance(tp, type):
        if issubclass(tp, PurePath):
            return True
        if issubclass(tp, BaseModel):
            if tp in seen:
                return False
            seen.add(tp)
            return any(_may_hold_path(f.annotation, seen) for f in tp.model_fields.values())
        if issubclass(tp, PointTable):
            return _may_hold_path(Point, seen)
        if issubclass(tp, str | int | float | bool | type(None)):
            return False
    return any(_may_hold_path(a, seen) for a in typing.get_args(tp) if not isinstance(a, str))


_POINTS_HOLD_PATHS = _may_hold_path(Point, set())


_SAFE_INT = 2**53 - 1


class _Shared:
    """:func:`canonical.jsonable` of dumps, one object per distinct string (keys and values:
    every point's dump has its own copies of the same field names and defaults)."""

    def __init__(self) -> None:
        self.strings: dict[str, str] = {}

    def __call__(self, obj: Any) -> Any:
        t = type(obj)
        if t is str:
            return self.strings.setdefault(obj, obj)
        if obj is None or t is bool or (t is int and -_SAFE_INT <= obj <= _SAFE_INT):
            return obj
        if t is dict:
            return {self(str(k)): self(v) for k, v in obj.items()}
        if t is list or t is tuple:
            return [self(v) for v in obj]
        out = canonical.jsonable(obj)
        return self(out) if type(out) is str else out


def _device_content(dev: Device, share: _Shared) -> Any:
    """A device's part of :func:`config_content`, its points dumped without a Python dump
    when they cannot hold a path (the Modbus, OPC UA, ... address blocks hold none)."""
    js = dev.model_dump(mode="json")
    if _POINTS_HOLD_PATHS:
        return share(_no_paths(dev.model_dump(mode="python"), js))
    order = list(js)
    points = share(js.pop("points"))  # nothing to reduce there
    rest = share(_no_paths(dev.model_dump(mode="python", exclude={"points"}), js))
    return {k: points if k == "points" else rest[k] for k in order}


def config_content(site: SiteConfig) -> dict[str, Any]:
    """The canonical content of a site's configuration (JSON-safe, floats as decimal strings).

    Built one device at a time, equal strings shared: a site of 100,000 points used to
    take several hundred MB (two dumps of the whole site and two copies of them) for a
    content of ~800 bytes a point."""
    skip = set(EXCLUDED_SECTIONS) | {"devices"}
    py = site.model_dump(mode="python", exclude=skip)
    js = site.model_dump(mode="json", exclude=skip)
    share = _Shared()
    rest: dict[str, Any] = share(_no_paths(py, js))
    out: dict[str, Any] = {}
    for name in type(site).model_fields:  # the order of a dump of the whole site
        if name == "devices":
            out[name] = [_device_content(d, share) for d in site.devices]
        elif name in rest:
            out[name] = rest[name]
    return out


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _json_chunks(content: dict[str, Any]) -> Iterator[str]:
    """``json.dumps(content, sort_keys=True, ...)`` in pieces: the same text, a device at a
    time (the canonical JSON of a large site is tens of MB)."""
    yield "{"
    for n, key in enumerate(sorted(content)):
        yield ("," if n else "") + _dumps(key) + ":"
        value = content[key]
        if key == "devices" and type(value) is list:
            yield "["
            for i, dev in enumerate(value):
                yield ("," if i else "") + _dumps(dev)
            yield "]"
        else:
            yield _dumps(value)
    yield "}"


def content_sha256(content: Any) -> str:
    """SHA-256 of the canonical JSON of ``content``. A content that is already plain JSON
    (every content :func:`config_content` makes or a leaf holds) is hashed as it is encoded,
    a device at a time, without the deep copy :func:`canonical.canonical_json` makes first
    (the same bytes: its ``json.dumps`` path)."""
    if type(content) is not dict or not canonical.is_plain_json(content):
        return canonical.sha256_hex(canonical.canonical_json(content))
    h = hashlib.sha256()
    for chunk in _json_chunks(content):
        h.update(chunk.encode("utf-8"))
    return h.hexdigest()


def site_of(content: Mapping[str, Any]) -> SiteConfig:
    """The site configuration a recorded content describes (storage etc. at their defaults)."""
    return SiteConfig.model_validate(dict(content))


def kpi_view(content: Mapping[str, Any]) -> dict[str, Any]:
    """What of a configuration the KPI engine reads (see the module doc)."""
    view = {k: v for k, v in content.items() if k != "runtime"}
    rt = content.get("runtime")
    if isinstance(rt, Mapping):
        view["runtime"] = {k: rt[k] for k in KPI_RUNTIME_KEYS if k in rt}
    devices = []
    for d in content.get("devices") or []:
        if not isinstance(d, Mapping):
            devices.append(d)
            continue
        dd = {k: v for k, v in d.items() if k not in CONNECTION_KEYS}
        dd["points"] = [
            {k: v for k, v in p.items() if k not in CONNECTION_KEYS}
            if isinstance(p, Mapping)
            else p
            for p in d.get("points") or []
        ]
        devices.append(dd)
    view["devices"] = devices
    return view


def leaf_fields(
    content: Mapping[str, Any],
    *,
    cause: str,
    effective_ns: int,
    reason: str = "",
    previous: int | None = None,
) -> dict[str, Any]:
    """The fields of a ``config`` leaf (``ts`` is added by the ledger). ``previous``: the log
    index of the config leaf recorded before it (the chain lets a verifier see a configuration
    left out of a bundle), ``-1`` for the first."""
    return {
        "config": dict(content),
        "config_sha256": content_sha256(content),
        "effective_from": str(int(effective_ns)),
        "cause": cause,
        "reason": reason,
        "previous": -1 if previous is None else int(previous),
    }


@dataclass(frozen=True)
class ConfigLeaf:
    """One ``config`` leaf as read back. ``content`` is ``None`` for a leaf of the earlier
    format that held only ``site_sha256`` (a hash of the whole site file)."""

    index: int
    ts: int
    effective_from: int
    sha256: str
    content: dict[str, Any] | None
    cause: str
    reason: str
    previous: int | None = None  # log index of the config leaf recorded before (-1: none)

    @property
    def reclassifies(self) -> bool:
        """Takes effect before it was recorded: it re-reads history."""
        return self.content is not None and self.effective_from < self.ts


def parse_leaf(index: int, record: Mapping[str, Any]) -> ConfigLeaf:
    """A ``config`` leaf record; raises ``ValueError`` when it is malformed or its content does
    not hash to its ``config_sha256``."""
    ts = int(record["ts"])
    if "config" not in record:
        return ConfigLeaf(index, ts, ts, str(record.get("site_sha256", "")), None, "start", "")
    content = record["config"]
    if not isinstance(content, dict):
        raise ValueError(f"config leaf {index}: content is not an object")
    sha = str(record.get("config_sha256", ""))
    if content_sha256(content) != sha:
        raise ValueError(f"config leaf {index}: content does not hash to its config_sha256")
    return ConfigLeaf(
        index,
        ts,
        int(record.get("effective_from", ts)),
        sha,
        content,
        str(record.get("cause", "")),
        str(record.get("reason", "")),
        int(record["previous"]) if "previous" in record else None,
    )


@dataclass(frozen=True)
class InForce:
    leaf: ConfigLeaf
    start_ns: int
    end_ns: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.leaf.index,
            "config_sha256": self.leaf.sha256,
            "from_ns": str(self.start_ns),
            "to_ns": str(self.end_ns),
        }


def at(leaves: Sequence[ConfigLeaf], t: int) -> ConfigLeaf | None:
    """The configuration in force at ``t``: of the leaves in effect by then, the one recorded
    last; before any, the first one recorded (only leaves with content count)."""
    have = [lf for lf in leaves if lf.content is not None]
    if not have:
        return None
    on = [lf for lf in have if lf.effective_from <= t]
    if on:
        return max(on, key=lambda lf: lf.index)
    return min(have, key=lambda lf: lf.index)


def in_force(leaves: Iterable[ConfigLeaf], start_ns: int, end_ns: int) -> list[InForce]:
    """The configurations in force over ``[start_ns, end_ns)``, as consecutive intervals
    (only leaves with content count); empty when the log holds none."""
    have = list(leaves)
    cuts = sorted(
        {start_ns} | {lf.effective_from for lf in have if start_ns < lf.effective_from < end_ns}
    )
    out: list[InForce] = []
    for k, t in enumerate(cuts):
        lf = at(have, t)
        if lf is None:
            return []
        stop = cuts[k + 1] if k + 1 < len(cuts) else end_ns
        if out and out[-1].leaf.index == lf.index:
            out[-1] = InForce(lf, out[-1].start_ns, stop)
        else:
            out.append(InForce(lf, t, stop))
    return out


def period_config(spans: Sequence[InForce], label: str) -> dict[str, Any]:
    """The one KPI view a period is computed under: the content of its last configuration;
    raises ``ValueError`` (with the readable diff) when the period spans different KPI
    views or no configuration at all."""
    if not spans:
        raise ValueError(f"{label}: the log holds no configuration for this time")
    last = spans[-1].leaf.content
    assert last is not None
    for sp in spans[:-1]:
        assert sp.leaf.content is not None
        changes = diff(sp.leaf.content, last)
        if changes:
            raise ValueError(
                f"{label}: the configuration changed inside the period (leaf "
                f"{sp.leaf.index} -> leaf {spans[-1].leaf.index}: {'; '.join(changes[:6])}); "
                "split the period at the change, or re-classify the period with "
                "'shopfloor config record --from START --reason ...'"
            )
    return last


# --- readable differences -------------------------------------------------------------------


def _keyed(items: list[Any]) -> dict[str, Any] | None:
    """A list of objects with unique ``id`` as a mapping (declared figures: id + period)."""
    out: dict[str, Any] = {}
    for it in items:
        if not isinstance(it, Mapping) or "id" not in it:
            return None
        key = str(it["id"])
        per = it.get("period")
        if isinstance(per, Mapping) and "start" in per:
            key += f"@{per.get('start')}..{per.get('end')}"
        if key in out:
            return None
        out[key] = it
    return out


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for k in sorted(set(a) | set(b), key=str):
            p = f"{path}.{k}" if path else str(k)
            if k not in a:
                out.append(f"{p}: added {_show(b[k])}")
            elif k not in b:
                out.append(f"{p}: removed (was {_show(a[k])})")
            else:
                _diff(a[k], b[k], p, out)
        return
    if isinstance(a, list) and isinstance(b, list):
        ka, kb = _keyed(a), _keyed(b)
        if ka is not None and kb is not None:
            for k in list(dict.fromkeys([*ka, *kb])):
                p = f"{path}[{k}]"
                if k not in ka:
                    out.append(f"{p}: added")
                elif k not in kb:
                    out.append(f"{p}: removed")
                else:
                    _diff(ka[k], kb[k], p, out)
            return
        if len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                _diff(x, y, f"{path}[{i}]", out)
            return
    if a != b:
        out.append(f"{path}: {_show(a)} -> {_show(b)}")


def _show(v: Any) -> str:
    text = canonical.canonical_json(v).decode("utf-8")
    return text if len(text) <= 80 else text[:77] + "..."


def diff(old: Mapping[str, Any], new: Mapping[str, Any], *, kpi_only: bool = True) -> list[str]:
    """What changed in the KPI view (or the whole content) from ``old`` to ``new``, one line a
    change, e.g. ``devices[cnc1].points[state].state_map.3: "down" -> "planned_stop"``."""
    out: list[str] = []
    if kpi_only:
        _diff(kpi_view(old), kpi_view(new), "", out)
    else:
        _diff(old, new, "", out)
    return out


def fmt_ns(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def missing_links(leaves: Sequence[ConfigLeaf]) -> list[str]:
    """Config leaves whose recorded predecessor is not among ``leaves`` (left out of a
    bundle): one line each."""
    have = {lf.index for lf in leaves}
    return [
        f"config leaf {lf.index} was recorded after config leaf {lf.previous}, which the bundle "
        "leaves out (a configuration of the log is hidden from the reviewer)"
        for lf in leaves
        if lf.previous is not None and lf.previous >= 0 and lf.previous not in have
    ]


def replaced(leaves: Sequence[ConfigLeaf], leaf: ConfigLeaf) -> ConfigLeaf | None:
    """The configuration ``leaf`` replaced: the one the earlier leaves of the log put in force
    at its ``effective_from`` (for a re-classification, what history was read under before)."""
    earlier = [lf for lf in leaves if lf.index < leaf.index]
    if not earlier:
        return None
    spans = in_force(earlier, leaf.effective_from, leaf.effective_from + 1)
    if spans:
        return spans[0].leaf
    return max(earlier, key=lambda lf: lf.index)


def describe(leaf: ConfigLeaf, previous: ConfigLeaf | None) -> str:
    """One line for the reviewer: when, why, and what changed from the previous leaf."""
    head = f"recorded {fmt_ns(leaf.ts)} ({leaf.cause or 'start'})"
    if leaf.reclassifies:
        head += f", RE-CLASSIFIES HISTORY from {fmt_ns(leaf.effective_from)}"
    elif leaf.effective_from != leaf.ts:
        head += f", effective from {fmt_ns(leaf.effective_from)}"
    head += f"; reason: {leaf.reason}" if leaf.reason else "; no reason recorded"
    if previous is None or previous.content is None or leaf.content is None:
        return head + ("; first configuration" if previous is None else "")
    changes = diff(previous.content, leaf.content)
    if not changes:
        return head + "; KPI view unchanged"
    more = f" (+{len(changes) - 8} more)" if len(changes) > 8 else ""
    return head + "; changed: " + "; ".join(changes[:8]) + more
