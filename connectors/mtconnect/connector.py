"""MTConnect connector: one agent device over HTTP (``probe``, ``current``, ``sample``).

1. ``probe``: the device's data items; every point is bound to one (by id, or by type,
   subType and component) — a point that names no data item stops the connector with one line.
2. Start position: the resume file (:mod:`connectors.mtconnect.resume`) when it names the
   agent's present ``instanceId`` and a sequence still in the agent's buffer; then nothing is
   missed. Otherwise (first start, agent restarted, the buffer rolled past the position) the
   values in force are read from ``current`` and the gap is counted as ``resume_gap``.
3. ``sample?from=N&count=C&interval=I&heartbeat=H`` (``streaming: true``, the default): the
   agent keeps the answer open and sends every new observation from sequence N on, in order,
   as parts of a ``multipart/x-mixed-replace`` stream (at most every ``interval_ms``, an empty
   part every H ms); a stream that ends is asked again from the position reached. With
   ``streaming: false``, ``sample?from=N&count=C`` in a loop: the next request starts at the
   answer's ``nextSequence`` (at once while the agent has more, else after ``interval_ms``).
   An ``OUT_OF_RANGE`` answer or a changed ``instanceId`` (the agent restarted or its buffer
   overflowed) is a ``sequence_gap``: re-read ``current``.

A lost HTTP link raises :class:`ConnectorError` (the supervisor writes the ``link_lost``
markers and restarts the connector, which resumes from its last position). ``Availability``
``UNAVAILABLE`` writes a ``link_lost`` marker for every point of the device at the agent's time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx

from config.models import Device as SiteDevice
from connectors.base import ConnectorError, Sample, Sink
from connectors.mtconnect.documents import (
    AgentError,
    DocumentError,
    Header,
    Observation,
    parse_probe,
    parse_streams,
)
from connectors.mtconnect.mapping import (
    BindError,
    Binding,
    availability_items,
    bind,
    convert,
    marker,
    pick_device,
)
from connectors.mtconnect.multipart import MultipartError, MultipartReader, boundary_of
from connectors.mtconnect.resume import LAG_S, Keeper, Position, load

log = logging.getLogger(__name__)
# httpx logs every request at INFO: a poll a second would drown the collector's log
logging.getLogger("httpx").setLevel(logging.WARNING)


class MtconnectConnector:
    """Reads one device of one MTConnect agent (see the module docstring)."""

    def __init__(
        self,
        device: SiteDevice,
        resume_file: Path,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        resume_lag_s: float = LAG_S,
    ) -> None:
        conn = device.mtconnect
        assert conn is not None
        self.conn = conn
        self.site_device = device
        self.devices: tuple[str, ...] = (device.id,)
        self.name = f"mtconnect:{conn.url}" + (f"/{conn.device}" if conn.device else "")
        self.resume_file = resume_file
        self._transport = transport
        self.resume_lag_s = resume_lag_s
        self._bindings: dict[str, list[Binding]] = {}
        self._availability: frozenset[str] = frozenset()
        self._warned: set[str] = set()
        self.messages = 0  # observations read (health pages and benchmarks)
        self.requests = 0

    def _url(self, request: str) -> str:
        base = self.conn.url.rstrip("/")
        return f"{base}/{self.conn.device}/{request}" if self.conn.device else f"{base}/{request}"

    async def _get(self, http: httpx.AsyncClient, request: str, **params: int) -> bytes:
        self.requests += 1
        try:
            resp = await http.get(self._url(request), params=params)
        except httpx.HTTPError as exc:
            raise ConnectorError(
                f"MTConnect agent {self.conn.url}: {request} failed: {exc or type(exc).__name__}"
            ) from None
        self._check_status(resp.status_code, resp.content, request)
        return resp.content

    def _check_status(self, status: int, body: bytes, request: str) -> None:
        """An HTTP failure that is not an MTConnectError document is a lost link."""
        failed = status >= 500 or status in (401, 403, 404)
        if failed and b"MTConnectError" not in body:
            raise ConnectorError(
                f"MTConnect agent {self.conn.url}: {request} answered HTTP {status}"
            )

    async def run(self, sink: Sink) -> None:
        async with httpx.AsyncClient(
            timeout=self.conn.timeout_s, transport=self._transport
        ) as http:
            try:
                _h, devices = parse_probe(await self._get(http, "probe"))
                agent_dev = pick_device(devices, self.conn.device)
                bindings = bind(self.site_device, agent_dev)
            except (DocumentError, AgentError, BindError) as exc:
                raise ConnectorError(f"{self.name}: probe: {exc}") from None
            self._bindings = {}
            for b in bindings:
                self._bindings.setdefault(b.item, []).append(b)
                if b.mode_item is not None:
                    self._bindings.setdefault(b.mode_item, []).append(b)
            self._availability = availability_items(agent_dev)
            keeper = Keeper(self.resume_file, self.resume_lag_s)
            pos = await self._start(http, sink)
            while True:
                if self.conn.streaming:
                    got = await self._stream(http, sink, keeper, pos)
                else:
                    got = await self._poll(http, sink, keeper, pos)
                if got is None:  # a gap: the values in force, then on from there
                    pos = await self._from_current(http, sink)
                else:
                    pos = got

    def _accept(
        self, sink: Sink, keeper: Keeper, pos: Position, body: bytes
    ) -> tuple[Position | None, bool]:
        """Handle one MTConnectStreams answer read from ``pos``: the next position (None after
        a gap) and whether the agent holds more observations than this answer gave."""
        try:
            header, observations = parse_streams(body)
        except AgentError as exc:
            self._gap(sink, f"agent answered {exc}")
            return None, False
        except DocumentError as exc:
            self._malformed(sink, "document", str(exc))
            return pos, False
        if header.instance_id != pos.instance_id:
            self._gap(sink, "the agent restarted (new instanceId)")
            return None, False
        self._emit(sink, [o for o in observations if o.sequence >= pos.next])
        keeper.note(pos, time.monotonic())
        more = header.next_sequence <= header.last_sequence
        return Position(header.instance_id, max(header.next_sequence, pos.next)), more

    async def _poll(
        self, http: httpx.AsyncClient, sink: Sink, keeper: Keeper, pos: Position
    ) -> Position | None:
        """One ``sample?from=&count=`` request; sleeps ``interval_ms`` when the agent had no
        more."""
        body = await self._get(http, "sample", **{"from": pos.next, "count": self.conn.count})
        got, more = self._accept(sink, keeper, pos, body)
        if got is not None and not more:
            await asyncio.sleep(self.conn.interval_ms / 1000)
        return got

    async def _stream(
        self, http: httpx.AsyncClient, sink: Sink, keeper: Keeper, pos: Position
    ) -> Position | None:
        """One streaming request ``sample?from=&count=&interval=&heartbeat=``: the agent sends
        a part whenever it has new observations (at most every ``interval_ms``) and an empty
        one every ``heartbeat`` ms; read until the agent ends the stream (then the caller asks
        again from the position reached) or a gap. An agent that answers with one document
        instead of a stream is read as a poll."""
        conn = self.conn
        heartbeat = max(100, int(conn.timeout_s * 1000 / 2))  # well within the read timeout
        params = {
            "from": pos.next,
            "count": conn.count,
            "interval": conn.interval_ms,
            "heartbeat": heartbeat,
        }
        self.requests += 1
        try:
            async with http.stream("GET", self._url("sample"), params=params) as resp:
                boundary = boundary_of(resp.headers.get("content-type", ""))
                if boundary is None:
                    body = await resp.aread()
                    self._check_status(resp.status_code, body, "sample")
                    got, more = self._accept(sink, keeper, pos, body)
                    if got is not None and not more:
                        await asyncio.sleep(conn.interval_ms / 1000)
                    return got
                reader = MultipartReader(boundary)
                async for chunk in resp.aiter_bytes():
                    for part in reader.feed(chunk):
                        got, _more = self._accept(sink, keeper, pos, part)
                        if got is None:
                            return None
                        pos = got
                    if reader.closed:
                        break
        except httpx.HTTPError as exc:
            raise ConnectorError(
                f"MTConnect agent {conn.url}: sample stream failed: {exc or type(exc).__name__}"
            ) from None
        except MultipartError as exc:
            raise ConnectorError(f"MTConnect agent {conn.url}: sample stream: {exc}") from None
        return pos

    async def _start(self, http: httpx.AsyncClient, sink: Sink) -> Position:
        saved = load(self.resume_file)
        header, observations = await self._current(http)
        # up once the start position is fixed: whatever the agent records from now on is read
        # (the observations of the answer may still say the device is unavailable)
        sink.link(self.site_device.id, True)
        if (
            saved is not None
            and saved.instance_id == header.instance_id
            and header.first_sequence <= saved.next <= header.next_sequence
        ):
            log.info("%s resumes at sequence %d", self.name, saved.next)
            return saved
        if saved is not None:
            self._gap(sink, "the resume position is no longer in the agent's buffer", "resume_gap")
        self._emit(sink, observations)
        return Position(header.instance_id, header.next_sequence)

    async def _current(self, http: httpx.AsyncClient) -> tuple[Header, list[Observation]]:
        try:
            return parse_streams(await self._get(http, "current"))
        except (DocumentError, AgentError) as exc:
            raise ConnectorError(f"{self.name}: current: {exc}") from None

    async def _from_current(self, http: httpx.AsyncClient, sink: Sink) -> Position:
        header, observations = await self._current(http)
        self._emit(sink, observations)
        return Position(header.instance_id, header.next_sequence)

    def _gap(self, sink: Sink, why: str, kind: str = "sequence_gap") -> None:
        log.warning("%s: %s; reading the values in force from current", self.name, why)
        sink.error(self.site_device.id, kind)

    def _emit(self, sink: Sink, observations: list[Observation]) -> None:
        dev = self.site_device.id
        samples: list[Sample] = []
        for obs in observations:
            self.messages += 1
            if obs.item in self._availability:
                if obs.value == "UNAVAILABLE":
                    samples.extend(marker(dev, p.id, obs.ts) for p in self.site_device.points)
                    sink.link(dev, False)
                elif obs.value == "AVAILABLE":
                    sink.link(dev, True)
            for b in self._bindings.get(obs.item, ()):
                out = convert(dev, b, obs)
                if isinstance(out, Sample):
                    samples.append(out)
                elif isinstance(out, str):
                    self._malformed(sink, out, f"{obs.item}={obs.value!r}")
        if samples:
            sink.put_many(samples)

    def _malformed(self, sink: Sink, reason: str, what: str) -> None:
        sink.error(self.site_device.id, f"malformed:{reason}")
        if reason not in self._warned:
            self._warned.add(reason)
            log.warning(
                "%s: %s (%s); skipped, counted as malformed:%s (further ones are only counted)",
                self.name,
                what,
                reason,
                reason,
            )
