"""A small MTConnect agent: real HTTP/1.1 on loopback, documents per the MTConnect 1.3 schemas
(MTConnectDevices for ``probe``, MTConnectStreams for ``current`` and ``sample``,
MTConnectError with ``OUT_OF_RANGE`` for a ``from`` outside the buffer).

The agent keeps a ring buffer of ``buffer_size`` observations numbered by sequence from 1
within one ``instance_id``; every data item starts ``UNAVAILABLE`` (what a real agent reports
before the adapter speaks). :meth:`MtconnectAgent.set` adds an observation;
:meth:`MtconnectAgent.restart` starts a new instance (sequence from 1, a new instance id).
``/probe``, ``/current``, ``/sample`` are served with or without the ``/<device>/`` prefix;
``sample`` takes ``from`` and ``count``, and with ``interval`` (and ``heartbeat``) streams
(``multipart/x-mixed-replace``, chunked). Connections are kept alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape, quoteattr

from config.models import Device, SiteConfig
from config.mtconnect import state_code
from connectors.simulators.base import SimClock, Simulator
from connectors.simulators.machine import ProfileName, Reading, model_for

_NS = "urn:mtconnect.org:{doc}:1.3"


@dataclass(frozen=True, slots=True)
class ItemSpec:
    id: str
    type: str
    category: str  # SAMPLE or EVENT
    sub_type: str | None = None
    component: str = "controller"  # component id: "device" (the Device itself) or a child
    units: str | None = None


#: a CNC: availability on the device, the controller's execution, mode and part counts, and
#: a spindle speed
CNC_ITEMS: tuple[ItemSpec, ...] = (
    ItemSpec("avail", "AVAILABILITY", "EVENT", component="device"),
    ItemSpec("exec", "EXECUTION", "EVENT"),
    ItemSpec("mode", "CONTROLLER_MODE", "EVENT"),
    ItemSpec("pc_all", "PART_COUNT", "EVENT", "ALL"),
    ItemSpec("pc_good", "PART_COUNT", "EVENT", "GOOD"),
    ItemSpec("pc_bad", "PART_COUNT", "EVENT", "BAD"),
    ItemSpec("program", "PROGRAM", "EVENT"),
    ItemSpec(
        "spindle", "ROTARY_VELOCITY", "SAMPLE", component="spindle", units="REVOLUTION/MINUTE"
    ),
)

_CAMEL = {
    "AVAILABILITY": "Availability",
    "EXECUTION": "Execution",
    "CONTROLLER_MODE": "ControllerMode",
    "PART_COUNT": "PartCount",
    "PROGRAM": "Program",
    "ROTARY_VELOCITY": "RotaryVelocity",
    "EMERGENCY_STOP": "EmergencyStop",
}


def element_name(kind: str) -> str:
    """The streams element of a data item type (PART_COUNT -> PartCount)."""
    return _CAMEL.get(kind) or "".join(w.capitalize() for w in kind.split("_"))


def iso(ts_ns: int) -> str:
    when = dt.datetime.fromtimestamp(ts_ns // 1_000_000_000, dt.UTC)
    micros = (ts_ns % 1_000_000_000) // 1000
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}Z"


@dataclass(frozen=True, slots=True)
class _Obs:
    sequence: int
    item: ItemSpec
    ts: int
    value: str


class MtconnectAgent:
    """See the module docstring. ``clock`` gives ns UTC (the shared simulation clock)."""

    def __init__(
        self,
        device: str = "cnc1",
        items: Sequence[ItemSpec] = CNC_ITEMS,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        buffer_size: int = 1024,
        instance_id: int = 1_700_000_000,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.name = f"mtconnect-agent:{device}"
        self.device = device
        self.items = {i.id: i for i in items}
        self.host = host
        self.port = port
        self.buffer_size = buffer_size
        self.instance_id = instance_id
        self.clock = clock
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._conns: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._reset()

    # ---- the data --------------------------------------------------------------------------
    def _reset(self) -> None:
        self._buffer: deque[_Obs] = deque(maxlen=self.buffer_size)
        self._latest: dict[str, _Obs] = {}
        self._next = 1
        now = self.clock()
        for item in self.items.values():
            self.set(item.id, "UNAVAILABLE", now)

    def set(self, item: str, value: str | float, ts: int | None = None) -> int:
        """Add an observation of ``item``; returns its sequence number."""
        text = value if isinstance(value, str) else f"{value:g}"
        obs = _Obs(self._next, self.items[item], self.clock() if ts is None else ts, text)
        self._buffer.append(obs)
        self._latest[item] = obs
        self._next += 1
        return obs.sequence

    def restart(self, instance_id: int | None = None) -> None:
        """A new agent instance: the buffer is emptied and sequences start again at 1."""
        self.instance_id = self.instance_id + 1 if instance_id is None else instance_id
        self._reset()

    @property
    def first_sequence(self) -> int:
        return self._buffer[0].sequence if self._buffer else self._next

    @property
    def next_sequence(self) -> int:
        return self._next

    # ---- documents -------------------------------------------------------------------------
    def _header(self, extra: str = "") -> str:
        return (
            f'<Header creationTime="{iso(self.clock())}" sender="shopfloor-sim" '
            f'instanceId="{self.instance_id}" version="1.3.0" bufferSize="{self.buffer_size}"'
            f"{extra}/>"
        )

    def _seq_attrs(self, next_seq: int) -> str:
        return (
            f' firstSequence="{self.first_sequence}" lastSequence="{self._next - 1}"'
            f' nextSequence="{next_seq}"'
        )

    def probe(self) -> str:
        def items_of(comp: str) -> str:
            out = []
            for i in self.items.values():
                if i.component != comp:
                    continue
                attrs = f'id={quoteattr(i.id)} type="{i.type}" category="{i.category}"'
                if i.sub_type:
                    attrs += f' subType="{i.sub_type}"'
                if i.units:
                    attrs += f" units={quoteattr(i.units)}"
                out.append(f"<DataItem {attrs}/>")
            return f"<DataItems>{''.join(out)}</DataItems>" if out else ""

        comps = sorted({i.component for i in self.items.values()} - {"device"})
        children = "".join(
            f"<{c.capitalize()} id={quoteattr(c)} name={quoteattr(c)}>{items_of(c)}"
            f"</{c.capitalize()}>"
            for c in comps
        )
        ns = _NS.format(doc="MTConnectDevices")
        assets = ' assetBufferSize="0" assetCount="0"'
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><MTConnectDevices xmlns="{ns}">'
            f"{self._header(assets)}<Devices>"
            f"<Device id={quoteattr(self.device)} name={quoteattr(self.device)} "
            f"uuid={quoteattr(self.device + '-uuid')}>{items_of('device')}"
            f"<Components>{children}</Components></Device></Devices></MTConnectDevices>"
        )

    def _streams(self, observations: Sequence[_Obs], next_seq: int) -> str:
        by_comp: dict[str, dict[str, list[str]]] = {}
        for o in observations:
            group = "Samples" if o.item.category == "SAMPLE" else "Events"
            attrs = (
                f'dataItemId={quoteattr(o.item.id)} timestamp="{iso(o.ts)}" sequence="{o.sequence}"'
            )
            if o.item.sub_type:
                attrs += f' subType="{o.item.sub_type}"'
            tag = element_name(o.item.type)
            by_comp.setdefault(o.item.component, {}).setdefault(group, []).append(
                f"<{tag} {attrs}>{escape(o.value)}</{tag}>"
            )
        comps = []
        for comp, groups in by_comp.items():
            kind = "Device" if comp == "device" else comp.capitalize()
            inner = "".join(f"<{g}>{''.join(v)}</{g}>" for g, v in groups.items())
            comps.append(
                f'<ComponentStream component="{kind}" name={quoteattr(comp)} '
                f"componentId={quoteattr(comp)}>{inner}</ComponentStream>"
            )
        ns = _NS.format(doc="MTConnectStreams")
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><MTConnectStreams xmlns="{ns}">'
            f"{self._header(self._seq_attrs(next_seq))}<Streams>"
            f"<DeviceStream name={quoteattr(self.device)} uuid={quoteattr(self.device + '-uuid')}>"
            f"{''.join(comps)}</DeviceStream></Streams></MTConnectStreams>"
        )

    def current(self) -> str:
        latest = sorted(self._latest.values(), key=lambda o: o.sequence)
        return self._streams(latest, self._next)

    def sample(self, start: int, count: int) -> tuple[int, str]:
        status, body, _next = self._sample(start, count)
        return status, body

    def _sample(self, start: int, count: int) -> tuple[int, str, int]:
        """Status, document and the next sequence of ``sample?from=start&count=count``."""
        if not self.first_sequence <= start <= self._next or count < 1:
            ns = _NS.format(doc="MTConnectError")
            error = (
                f'<?xml version="1.0" encoding="UTF-8"?><MTConnectError xmlns="{ns}">'
                f"{self._header(self._seq_attrs(self._next))}<Errors>"
                f"<Error errorCode=\"OUT_OF_RANGE\">'from' must be between "
                f"{self.first_sequence} and {self._next}</Error></Errors></MTConnectError>"
            )
            return 400, error, start
        picked = [o for o in self._buffer if o.sequence >= start][:count]
        next_seq = picked[-1].sequence + 1 if picked else start
        return 200, self._streams(picked, next_seq), next_seq

    def respond(self, target: str) -> tuple[int, str]:
        """Status and body of a GET of ``target`` (path and query)."""
        split = urlsplit(target)
        parts = [p for p in split.path.split("/") if p]
        if len(parts) == 2 and parts[0] == self.device:
            parts = parts[1:]
        query = parse_qs(split.query)
        if parts == ["probe"]:
            return 200, self.probe()
        if parts == ["current"]:
            return 200, self.current()
        if parts == ["sample"]:
            try:
                start = int(query.get("from", [str(self.first_sequence)])[0])
                count = int(query.get("count", ["100"])[0])
            except ValueError:
                start, count = -1, 0
            return self.sample(start, count)
        ns = _NS.format(doc="MTConnectError")
        return 404, (
            f'<MTConnectError xmlns="{ns}">{self._header()}<Errors>'
            f'<Error errorCode="UNSUPPORTED">{escape(target)}</Error></Errors></MTConnectError>'
        )

    # ---- streaming (sample?interval=) ---------------------------------------------------------
    def _stream_request(self, target: str) -> tuple[int, int, int, int] | None:
        """(from, count, interval ms, heartbeat ms) of a streaming sample request, else None."""
        split = urlsplit(target)
        parts = [p for p in split.path.split("/") if p]
        if len(parts) == 2 and parts[0] == self.device:
            parts = parts[1:]
        query = parse_qs(split.query)
        if parts != ["sample"] or "interval" not in query:
            return None
        try:
            return (
                int(query.get("from", [str(self.first_sequence)])[0]),
                int(query.get("count", ["100"])[0]),
                max(0, int(query["interval"][0])),
                max(10, int(query.get("heartbeat", ["10000"])[0])),
            )
        except ValueError:
            return None

    async def _stream(
        self, writer: asyncio.StreamWriter, start: int, count: int, interval: int, heartbeat: int
    ) -> None:
        """A multipart/x-mixed-replace answer (chunked): a part whenever there are observations
        from ``start`` on (at most every ``interval`` ms), an empty one every ``heartbeat`` ms;
        an error part and the end of the stream when ``from`` leaves the buffer; the end of the
        stream when the agent restarts."""
        boundary = "shopfloor-sim-" + str(self.instance_id)
        writer.write(
            (
                "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary="
                f"{boundary}\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode("ascii")
        )
        instance = self.instance_id
        pos = start
        last_sent = -float("inf")
        while not writer.is_closing() and self.instance_id == instance:
            status, body, next_seq = self._sample(pos, count)
            now = time.monotonic()
            if status != 200 or next_seq > pos or now - last_sent >= heartbeat / 1000:
                data = body.encode("utf-8")
                part = (
                    (
                        f"--{boundary}\r\nContent-type: text/xml\r\n"
                        f"Content-length: {len(data)}\r\n\r\n"
                    ).encode("ascii")
                    + data
                    + b"\r\n"
                )
                writer.write(f"{len(part):x}\r\n".encode("ascii") + part + b"\r\n")
                await writer.drain()
                last_sent = now
                if status != 200:
                    writer.write(b"0\r\n\r\n")  # the end of the stream
                    await writer.drain()
                    return
                pos = next_seq
            await asyncio.sleep(0 if pos < self._next else interval / 1000)
        if not writer.is_closing():
            writer.write(b"0\r\n\r\n")  # restarted: the stream ends (the client asks again)
            await writer.drain()

    # ---- HTTP ------------------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task, writer in list(self._conns.items()):
            writer.transport.abort()  # the handler sees the connection end and returns
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
        if server is not None:
            await server.wait_closed()

    def describe(self) -> str:
        return f"MTConnect agent of {self.device} on {self.url}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns[task] = writer
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
                if len(line) != 3 or line[0] != "GET":
                    writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                    return
                self.requests += 1
                stream = self._stream_request(line[1])
                if stream is not None:
                    await self._stream(writer, *stream)
                    return
                status, body = self.respond(line[1])
                data = body.encode("utf-8")
                reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
                writer.write(
                    f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml; charset=utf-8\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode("ascii")
                    + data
                )
                await writer.drain()
        except ConnectionError:
            return
        finally:
            self._conns.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


# ---- a machine of the site file (``shopfloor sim`` / ``demo``) ----------------------------------
#: what the agent of a simulated machine reports in each machine-model state: (Execution,
#: ControllerMode), read back to the same state by config.mtconnect.DEFAULT_STATE_MAP;
#: a planned stop (outside the shifts, breaks) is a machine waiting in AUTOMATIC: idle, which
#: the KPI engine does not count since the calendar plans no time there
MACHINE_WORDS: dict[str, tuple[str, str]] = {
    "producing": ("ACTIVE", "AUTOMATIC"),
    "setup": ("ACTIVE", "MANUAL"),  # jogging a first part in
    "idle": ("READY", "AUTOMATIC"),
    "down": ("STOPPED", "AUTOMATIC"),
    "planned_stop": ("READY", "AUTOMATIC"),
}
SPINDLE_RPM = 12000.0


def machine_state_code(state: str) -> int:
    """The stored state code (config.mtconnect.state_code) of a machine-model state."""
    execution, mode = MACHINE_WORDS[state]
    code = state_code(execution, mode)
    assert code is not None
    return code


def machine_observations(r: Reading) -> dict[str, str | float]:
    """The agent's data items (:data:`CNC_ITEMS`) of one machine-model reading."""
    execution, mode = MACHINE_WORDS[r.state]
    return {
        "avail": "AVAILABLE",
        "mode": mode,
        "exec": execution,
        "pc_all": r.good + r.scrap,
        "pc_good": r.good,
        "pc_bad": r.scrap,
        "spindle": SPINDLE_RPM if r.state == "producing" else 0.0,
    }


class MtconnectMachineSimulator:
    """The MTConnect agent of one simulated CNC of the site file: the machine model
    (:mod:`connectors.simulators.machine`, the same as the OPC UA machines') read every
    ``tick_s`` at the shared factory clock, each change an observation stamped with that
    factory time. A start is a new agent instance (``instanceId`` the factory second it starts
    at, as real agents use their start time): a collector resuming from an earlier run's
    sequence sees the restart and reads ``current``."""

    def __init__(
        self,
        site: SiteConfig,
        device: Device,
        seed: int,
        clock: SimClock,
        *,
        profile: ProfileName = "current",
        tick_s: float = 0.1,
    ) -> None:
        conn = device.mtconnect
        assert conn is not None
        parts = urlsplit(conn.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = 5000 if parts.port is None else parts.port
        self.device = device
        self.agent_device = conn.device or device.id
        self.clock = clock
        self.tick_s = tick_s
        self.model = model_for(site, device, seed, profile)
        self.name = f"mtconnect-sim:{self.agent_device}"
        self.agent: MtconnectAgent | None = None
        self._last: dict[str, str | float] = {}
        self._task: asyncio.Task[None] | None = None

    def describe(self) -> str:
        return f"MTConnect agent of {self.agent_device} on http://{self.host}:{self.port}"

    def update(self, t_ns: int) -> None:
        """Observations of what changed by factory time ``t_ns``."""
        agent = self.agent
        if agent is None:
            return
        for item, value in machine_observations(self.model.at(t_ns)).items():
            if self._last.get(item) != value:
                self._last[item] = value
                agent.set(item, value, t_ns)

    async def start(self) -> None:
        if self.agent is not None:
            return
        now = self.clock.now_ns()
        agent = MtconnectAgent(
            self.agent_device,
            host=self.host,
            port=self.port,
            buffer_size=10_000,
            instance_id=now // 1_000_000_000,
            clock=self.clock.now_ns,
        )
        self._last = {}
        self.agent = agent
        self.update(now)
        try:
            await agent.start()
        except BaseException:
            self.agent = None
            raise
        self.port = agent.port
        self._task = asyncio.create_task(self._run(), name=f"{self.name}:tick")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self.update(self.clock.now_ns())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        agent, self.agent = self.agent, None
        if agent is not None:
            await agent.stop()


def build_mtconnect(
    site: SiteConfig, seed: int, clock: SimClock, *, profile: ProfileName = "current"
) -> list[Simulator]:
    """One agent per MTConnect device of the site."""
    return [
        MtconnectMachineSimulator(site, d, seed, clock, profile=profile)
        for d in site.devices
        if d.mtconnect is not None
    ]


# ---- a machine for the command line -------------------------------------------------------
async def play_cnc(agent: MtconnectAgent, cycle_s: float, *, scrap_every: int = 20) -> None:
    """A CNC in automatic mode making parts: Execution ACTIVE for a cycle, READY for a tenth of
    one, the part counts (ALL, GOOD, BAD: every ``scrap_every``-th part is bad) at each end of
    cycle, the spindle turning while active. Runs until cancelled."""
    agent.set("avail", "AVAILABLE")
    agent.set("mode", "AUTOMATIC")
    for item in ("pc_all", "pc_good", "pc_bad"):
        agent.set(item, 0)
    parts = bad = 0
    while True:
        agent.set("exec", "ACTIVE")
        agent.set("spindle", 12000)
        await asyncio.sleep(cycle_s)
        parts += 1
        bad += parts % scrap_every == 0
        agent.set("pc_all", parts)
        agent.set("pc_good", parts - bad)
        agent.set("pc_bad", bad)
        agent.set("spindle", 0)
        agent.set("exec", "READY")
        await asyncio.sleep(cycle_s / 10)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m connectors.simulators.mtconnect --port 5000``: an agent of one CNC."""
    import argparse

    ap = argparse.ArgumentParser(description="a simulated MTConnect agent of one CNC")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5000)
    ap.add_argument("--device", default="cnc1")
    ap.add_argument("--cycle-s", type=float, default=45.0, help="seconds per part")
    args = ap.parse_args(argv)
    if args.cycle_s <= 0:
        ap.error("--cycle-s must be positive")

    async def serve() -> None:
        agent = MtconnectAgent(args.device, host=args.host, port=args.port)
        await agent.start()
        print(agent.describe(), flush=True)
        try:
            await play_cnc(agent, args.cycle_s)
        finally:
            await agent.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
