"""The Sparkplug B host-application state of one edge node (pure: messages in, samples out).

- **Birth** (NBIRTH, DBIRTH): the metric names, aliases and datatypes of the node or device
  are (re)learnt; an NBIRTH forgets everything of the node and its devices (spec 3.0: a new
  session). The birth's values are stored like data.
- **Data** (NDATA, DDATA): a metric named by its alias is resolved through the birth; data
  before a birth (no alias table) asks for a rebirth and is not stored (``no_birth``).
- **Sequence**: every message of an edge node except NDEATH carries ``seq``, 0-255, one more
  than the previous message of the node; a gap (``sequence_gap``) asks for a rebirth (NCMD
  ``Node Control/Rebirth``). The message's values are still stored (they are real).
- **Death** (NDEATH, DDEATH): ``link_lost`` markers for every point of the node and its devices
  (NDEATH) or of the device (DDEATH), at the gateway's time. An NDEATH whose ``bdSeq`` is not the
  one of the current birth is an old session's will and is ignored (spec 3.0, 7.4).
- Metrics are mapped to points by name like JSON fields; metrics no point names are ignored.

Timestamps: the metric's ``timestamp`` (ms), else the payload's, else the receive time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from config.markers import LINK_LOST
from config.textmap import UNKNOWN_TEXT, text_code
from connectors.base import NAN, Quality, Sample
from connectors.sparkplug.decode import BDSEQ_METRIC, Topic, metric_text, metric_value

_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class PointSpec:
    point: str
    scale: float = 1.0
    offset: float = 0.0
    enum: Mapping[str, int] | None = None  # a datatype text point's dictionary (config.textmap)


@dataclass(frozen=True, slots=True)
class Target:
    """A site device fed by the node (``device_id`` None) or one of its devices."""

    device: str  # site device id
    points: Mapping[str, PointSpec]  # metric name -> point


@dataclass(slots=True)
class Outcome:
    samples: list[Sample] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (site device, reason)
    links: list[tuple[str, bool]] = field(default_factory=list)
    rebirth: bool = False


@dataclass(slots=True)
class _Birth:
    aliases: dict[int, str] = field(default_factory=dict)
    types: dict[str, int] = field(default_factory=dict)


class EdgeNodeHost:
    """What the host knows of one edge node (see the module docstring)."""

    def __init__(self, targets: Mapping[str | None, Target]) -> None:
        self.targets = dict(targets)
        self._births: dict[str | None, _Birth] = {}
        self._seq: int | None = None
        self._bd_seq: int | None = None
        self.node_born = False

    @property
    def site_devices(self) -> tuple[str, ...]:
        return tuple(t.device for t in self.targets.values())

    def _owner(self, device: str | None) -> str:
        target = self.targets.get(device) or self.targets.get(None)
        return target.device if target is not None else next(iter(self.targets.values())).device

    def handle(self, topic: Topic, payload: Any, received: int) -> Outcome:
        out = Outcome()
        kind = topic.kind
        if kind == "NDEATH":
            self._ndeath(payload, received, out)
            return out
        if kind in ("NCMD", "DCMD", "STATE"):
            return out
        seq = int(payload.seq) if payload.HasField("seq") else None
        if kind == "NBIRTH":
            self._births = {None: _Birth()}
            self._seq = seq
            self._bd_seq = self._bdseq(payload)
            self.node_born = True
        elif not self.node_born:
            out.errors.append((self._owner(topic.device), "no_birth"))
            out.rebirth = True
            return out
        else:
            self._check_seq(seq, topic.device, out)
        if kind == "DBIRTH":
            self._births[topic.device] = _Birth()
        elif kind == "DDEATH":
            self._births.pop(topic.device, None)
            self._markers(topic.device, received, out)
            return out
        birth = self._births.get(None if kind[0] == "N" else topic.device)
        if birth is None:  # DDATA of a device whose DBIRTH was missed
            out.errors.append((self._owner(topic.device), "no_birth"))
            out.rebirth = True
            return out
        target = self.targets.get(None if kind[0] == "N" else topic.device)
        if kind in ("NBIRTH", "DBIRTH") and target is not None:
            out.links.append((target.device, True))
        self._metrics(payload, birth, kind.endswith("BIRTH"), target, received, out)
        return out

    def _check_seq(self, seq: int | None, device: str | None, out: Outcome) -> None:
        expected = None if self._seq is None else (self._seq + 1) % 256
        if seq is None or (expected is not None and seq != expected):
            out.errors.append((self._owner(device), "sequence_gap"))
            out.rebirth = True
        if seq is not None:
            self._seq = seq

    @staticmethod
    def _bdseq(payload: Any) -> int | None:
        for m in payload.metrics:
            if m.name == BDSEQ_METRIC and m.WhichOneof("value") in ("long_value", "int_value"):
                return int(getattr(m, m.WhichOneof("value")))
        return None

    def _ndeath(self, payload: Any, received: int, out: Outcome) -> None:
        bd = self._bdseq(payload)
        if bd is not None and self._bd_seq is not None and bd != self._bd_seq:
            return  # the will of an earlier session: the node is alive in a newer one
        self.node_born = False
        self._births = {}
        self._seq = None
        for device in list(self.targets):
            self._markers(device, received, out)

    @staticmethod
    def _text(
        m: Any, dtype: int | None, spec: PointSpec, device: str, ts: int, out: Outcome
    ) -> None:
        """A ``datatype: text`` point: the code of a String/Text metric's text; a text not in
        the point's ``enum`` is a bad ``unknown_text`` sample (the old text is not in force);
        anything else (a number: never taken for a code) is ``wrong_type``."""
        text = metric_text(m, dtype)
        if text is None:
            out.errors.append((device, "malformed:wrong_type"))
            return
        assert spec.enum is not None
        code = text_code(spec.enum, text)
        if code is None:
            out.samples.append(Sample(device, spec.point, ts, NAN, Quality.BAD, UNKNOWN_TEXT))
            out.errors.append((device, UNKNOWN_TEXT))
            return
        out.samples.append(Sample(device, spec.point, ts, code))

    def _markers(self, device: str | None, received: int, out: Outcome) -> None:
        target = self.targets.get(device)
        if target is None:
            return
        out.samples.extend(
            Sample(target.device, p.point, received, NAN, Quality.BAD, LINK_LOST)
            for p in target.points.values()
        )
        out.links.append((target.device, False))

    def _metrics(
        self,
        payload: Any,
        birth: _Birth,
        is_birth: bool,
        target: Target | None,
        received: int,
        out: Outcome,
    ) -> None:
        default_ts = int(payload.timestamp) * _MS if payload.HasField("timestamp") else received
        for m in payload.metrics:
            name: str | None
            if m.HasField("name"):
                name = m.name
                if is_birth:
                    if m.HasField("datatype"):
                        birth.types[m.name] = int(m.datatype)
                    if m.HasField("alias"):
                        birth.aliases[int(m.alias)] = m.name
            else:
                name = birth.aliases.get(int(m.alias)) if m.HasField("alias") else None
            if name is None:
                if target is not None:
                    out.errors.append((target.device, "unknown_alias"))
                    out.rebirth = True
                continue
            if target is None:
                continue
            spec = target.points.get(name)
            if spec is None:
                continue
            ts = int(m.timestamp) * _MS if m.HasField("timestamp") else default_ts
            if m.is_null:
                out.samples.append(Sample(target.device, spec.point, ts, NAN, Quality.BAD, "null"))
                continue
            dtype = int(m.datatype) if m.HasField("datatype") else birth.types.get(name)
            if spec.enum is not None:
                self._text(m, dtype, spec, target.device, ts, out)
                continue
            value = metric_value(m, dtype)
            if isinstance(value, str):
                out.errors.append((target.device, f"malformed:{value}"))
                continue
            if spec.scale != 1.0 or spec.offset != 0.0:
                value = value * spec.scale + spec.offset
            out.samples.append(Sample(target.device, spec.point, ts, value))
