"""Where an MTConnect connector resumes after a restart: ``{"instance_id": I, "next": N}`` in a
small JSON file (default ``data/mtconnect-<device id>.json`` beside the site file).

An agent numbers every observation with a sequence number, unique within one run of the agent
(its ``instanceId``). The connector keeps the sequence from which it asked for a ``sample``
*some time ago* (:data:`LAG_S`, well beyond the pipeline's flush interval), so the samples a
restart could have lost in the collector's memory are read again; the same observation read
twice gives the same sample (same point, time and value). A file that cannot be read is treated
as absent (start from ``current``) and said once in the log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

LAG_S = 2.0  # a position is written once the samples before it are surely stored


@dataclass(frozen=True, slots=True)
class Position:
    instance_id: int
    next: int


def load(path: Path) -> Position | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        pos = Position(instance_id=int(doc["instance_id"]), next=int(doc["next"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("MTConnect resume file %s unreadable (%s); starting from current", path, exc)
        return None
    return pos


def save(path: Path, pos: Position) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"instance_id": pos.instance_id, "next": pos.next}), "utf-8")
    os.replace(tmp, path)


class Keeper:
    """Writes the newest position that is at least ``lag_s`` old (monotonic clock)."""

    def __init__(self, path: Path, lag_s: float = LAG_S) -> None:
        self.path = path
        self.lag_s = lag_s
        self._pending: deque[tuple[float, Position]] = deque()
        self._saved: Position | None = None
        self._failed = False

    def note(self, pos: Position, now: float) -> None:
        """``pos`` was the start of a request whose samples are now in the sink."""
        if not self._pending or self._pending[-1][1] != pos:
            self._pending.append((now, pos))
        ready: Position | None = None
        while self._pending and now - self._pending[0][0] >= self.lag_s:
            ready = self._pending.popleft()[1]
        if ready is not None and ready != self._saved:
            self._write(ready)

    def _write(self, pos: Position) -> None:
        try:
            save(self.path, pos)
        except OSError as exc:
            if not self._failed:
                log.error("cannot write MTConnect resume file %s: %s", self.path, exc)
            self._failed = True
            with contextlib.suppress(OSError):
                self.path.with_name(self.path.name + ".tmp").unlink()
            return
        self._failed = False
        self._saved = pos
