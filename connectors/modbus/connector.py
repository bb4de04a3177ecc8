"""The Modbus connector: one per endpoint (TCP host:port or serial line), all units on it.

Each device's points are planned into coalesced requests (:mod:`connectors.modbus.plan`) and
polled at their interval (the device's ``poll_interval_ms`` or the point's ``interval_ms``).
Requests run one at a time (a Modbus line is half-duplex, and TCP gateways in front of RS-485
lines are too), each bounded by its device's ``timeout_s``:

* an exception response makes the points of that request ``bad`` with status
  ``modbus_exception_<code>`` and counts ``Sink.error(device, status)``;
* a refused *coalesced* read (code 2, illegal data address) is isolated at once, in the same
  poll, by halving: the halves that read fine are kept (and joined again where they touch), a
  point refused on its own is bad (``modbus_exception_2``) and is not read again until the
  whole span is retried: after ``rejoin_after_polls`` polls, then twice as many after each
  refused retry (at most ``rejoin_max_polls``). A retry that reads fine restores the single
  combined read; one that is refused isolates again. So a refusal costs at most one request
  per poll beyond the combined read in steady state (two runs around a refused register in the
  middle of a block), plus the retry on its polls;
* a timeout makes the points of that request bad (``timeout``) and skips the rest of that unit
  for the cycle; a silent unit is then retried with a backoff (up to ``UNIT_BACKOFF_MAX_S``), so
  a dead unit costs at most one timeout per backoff period and never stalls the other units;
* a lost connection (or no answer from any unit for ``LINK_SILENCE_S``) raises
  :class:`ConnectorError`; the supervisor reconnects with its backoff.

Timestamps are the gateway's clock when the response arrived.

Modbus TCP reads go through the lean client of :mod:`connectors.modbus.wire` (the device
setting ``client: lean``, the default): the registers reach the bulk decoder as an array over
the received bytes; a frame that cannot be the answer is a :class:`ConnectorError` (the
supervisor reconnects). ``client: pymodbus`` and RTU read through pymodbus.

Scheduling (:mod:`connectors.modbus.cadence`): polls are due on a fixed grid per interval; a
poll that overruns its next slot skips the missed slots (counted per device,
``modbus_skipped_polls``, with the actual mean period ``modbus_poll_period_ms``) and keeps the
phase; each overrun episode is logged once (a warning when it starts, an info line when the
polls kept their period again for ``EPISODE_END_POLLS`` polls in a row).

Per device, :meth:`ModbusConnector.device_stats` gives the figures the collector adds to the
device's health record (``extra``) and ``/metrics`` shows: requests, requests/s and mean
latency since the previous call, spans currently split, isolations and rejoins so far.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.framer import FramerType

from config.modbus import ModbusConnection
from config.models import Device
from connectors.base import ConnectorError, Sample, Sink
from connectors.modbus.block import BlockDecoder, Words
from connectors.modbus.cadence import Cadence
from connectors.modbus.plan import (
    PlanError,
    PointRef,
    Reading,
    ReadRequest,
    bad_readings,
    halve,
    merge_runs,
    plan_requests,
    point_refs,
)
from connectors.modbus.wire import ExceptionResponse, LeanTcpClient, UnitMismatch, WireError

log = logging.getLogger("shopfloor.modbus")

UNIT_BACKOFF_MAX_S = 10.0
"""A unit that timed out is retried after 1, 2, 4 ... poll intervals, at most this long."""
LINK_SILENCE_S = 15.0
"""No response from any unit for this long (with requests timing out) = the link is dead."""
EPISODE_END_POLLS = 10
"""An overrun episode ends (and may be logged again) after this many polls on time in a row,
so a job that overruns every other poll is one episode, not a line per poll."""
REFUSED = "modbus_exception_2"
"""Illegal data address: the status that makes a coalesced read be isolated."""


@dataclass
class _Span:
    """One coalesced read of the plan and how it is read now: whole, or as ``parts`` (the runs
    that read fine) while ``refused`` points wait for the retry of the whole span at poll
    ``retry_at`` (see the module docstring)."""

    whole: ReadRequest
    parts: list[ReadRequest]
    refused: tuple[PointRef, ...] = ()
    wait: int = 0  # polls between retries of the whole span (0: not split)
    retry_at: int = 0

    @property
    def split(self) -> bool:
        return self.parts != [self.whole] or bool(self.refused)

    @property
    def device(self) -> str:
        return self.whole.points[0].device


@dataclass
class DeviceStats:
    """Request figures of one device (see :meth:`ModbusConnector.device_stats`)."""

    requests: int = 0
    responses: int = 0
    latency_s: float = 0.0  # sum over responses
    isolations: int = 0  # refused coalesced reads isolated
    rejoins: int = 0  # split spans read whole again
    polls: int = 0  # polls of the device's jobs (one per job and poll)
    skipped: int = 0  # poll slots skipped because a poll overran (see cadence)
    window: tuple[float, int, int, float] = (0.0, 0, 0, 0.0)  # at the previous device_stats()
    poll_window: tuple[float, int] = (0.0, 0)  # (time, polls) at the previous device_stats()


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a Modbus connector talks: ``("tcp", host, port)`` or ``("rtu", serial_port, 0)``."""

    transport: str
    address: str
    port: int = 0

    @classmethod
    def of(cls, conn: ModbusConnection) -> Endpoint:
        if conn.transport == "rtu":
            assert conn.serial_port is not None
            return cls("rtu", conn.serial_port, 0)
        assert conn.host is not None
        return cls("tcp", conn.host, conn.port)

    def __str__(self) -> str:
        if self.transport == "rtu":
            return f"rtu:{self.address}"
        return f"{self.address}:{self.port}"


@dataclass
class _Job:
    """Spans sharing one poll interval, polled together."""

    interval_s: float
    spans: list[_Span]
    polls: int = 0
    cadence: Cadence | None = None
    warned: bool = False  # an overrun episode was logged and has not ended
    on_time: int = 0  # polls on time in a row since the last overrun

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.device for s in self.spans))


@dataclass
class _UnitState:
    silent: int = 0
    retry_at: float = 0.0


@dataclass
class PollStats:
    """Counters a test or benchmark can read (requests sent, responses, registers read)."""

    requests: int = 0
    responses: int = 0
    exceptions: int = 0
    timeouts: int = 0
    registers: int = 0
    cycles: int = 0
    splits: int = 0
    by_unit: dict[int, int] = field(default_factory=lambda: defaultdict(int))


def _reraise_lost_cancellation() -> None:
    """Raise CancelledError if this task was cancelled but an inner ``wait_for`` (pymodbus uses
    one; on Python 3.11 it can return a result that raced with the cancellation) swallowed it.
    Without this a cancelled connector could keep polling and stall a clean shutdown."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _device_connection(device: Device) -> ModbusConnection:
    if device.modbus is None:
        raise PlanError(f"device {device.id} has no modbus block")
    return device.modbus


_SERIAL_FIELDS = ("baudrate", "parity", "stopbits", "bytesize")


class ModbusConnector:
    """Polls every Modbus device of one endpoint; satisfies :class:`connectors.base.Connector`."""

    def __init__(
        self, devices: Sequence[Device], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """``clock`` (monotonic seconds) times the poll grid; tests pin it."""
        if not devices:
            raise PlanError("a Modbus connector needs at least one device")
        conns = [_device_connection(d) for d in devices]
        self.endpoint = Endpoint.of(conns[0])
        for dev, conn in zip(devices, conns, strict=True):
            if Endpoint.of(conn) != self.endpoint:
                raise PlanError(f"device {dev.id} is on {Endpoint.of(conn)}, not {self.endpoint}")
            if conn.client != conns[0].client:
                raise PlanError(
                    f"device {dev.id}: client {conn.client} differs from device "
                    f"{devices[0].id} on the same endpoint {self.endpoint}"
                )
            if conn.transport == "rtu":
                for name in _SERIAL_FIELDS:
                    if getattr(conn, name) != getattr(conns[0], name):
                        raise PlanError(
                            f"device {dev.id}: {name} {getattr(conn, name)} differs from "
                            f"device {devices[0].id} on the same serial line {conn.serial_port}"
                        )
        self.name = f"modbus {self.endpoint}"
        self.devices = tuple(d.id for d in devices)
        self._conn = dict(zip(self.devices, conns, strict=True))
        self._serial = conns[0]
        self.client_kind = conns[0].client  # "lean" or "pymodbus" (TCP; RTU is pymodbus)
        by_interval: dict[int, list[ReadRequest]] = defaultdict(list)
        for dev, conn in zip(devices, conns, strict=True):
            reqs = plan_requests(
                point_refs(dev, conn),
                max_registers=conn.max_registers,
                max_bits=conn.max_bits,
                max_gap=conn.max_gap,
            )
            for req in reqs:
                by_interval[req.interval_ms].append(req)
        self._jobs = [
            _Job(
                ms / 1000.0,
                [_Span(r, [r]) for r in sorted(reqs, key=lambda r: (r.unit, r.table, r.address))],
            )
            for ms, reqs in sorted(by_interval.items())
        ]
        self._clock = clock
        self.stats = PollStats()
        # compiled bulk decoders by request (kept with the request: its id stays valid)
        self._decoders: dict[int, tuple[ReadRequest, BlockDecoder]] = {}
        self.per_device: dict[str, DeviceStats] = {d: DeviceStats() for d in self.devices}

    @property
    def requests(self) -> list[ReadRequest]:
        """The requests of one poll now (the parts of split spans, not their refused points)."""
        return [r for job in self._jobs for span in job.spans for r in span.parts]

    def device_stats(self) -> dict[str, dict[str, float | int]]:
        """Per device: ``modbus_requests`` (total), ``modbus_requests_per_s`` and
        ``modbus_latency_ms`` (mean per response) since the previous call,
        ``modbus_split_spans`` (coalesced reads now read in parts), ``modbus_refused_points``
        (points waiting for the retry), ``modbus_isolations`` and ``modbus_rejoins`` (totals),
        ``modbus_skipped_polls`` (total poll slots skipped by overruns) and
        ``modbus_poll_period_ms`` (actual mean time between polls since the previous call, on
        the poll clock; 0 before two calls)."""
        now = time.monotonic()
        clock_now = self._clock()
        out: dict[str, dict[str, float | int]] = {}
        spans = [s for job in self._jobs for s in job.spans]
        for dev, st in self.per_device.items():
            t0, req0, resp0, lat0 = st.window
            st.window = (now, st.requests, st.responses, st.latency_s)
            elapsed = now - t0 if t0 else 0.0
            responses = st.responses - resp0
            mine = [s for s in spans if s.device == dev]
            p_t0, p_polls0 = st.poll_window
            st.poll_window = (clock_now, st.polls)
            period = (
                round((clock_now - p_t0) / (st.polls - p_polls0) * 1000, 3)
                if p_t0 and st.polls > p_polls0
                else 0.0
            )
            out[dev] = {
                "modbus_requests": st.requests,
                "modbus_requests_per_s": (
                    round((st.requests - req0) / elapsed, 3) if elapsed > 0 else 0.0
                ),
                "modbus_latency_ms": (
                    round((st.latency_s - lat0) / responses * 1000, 3) if responses else 0.0
                ),
                "modbus_split_spans": sum(1 for s in mine if s.split),
                "modbus_refused_points": sum(len(s.refused) for s in mine),
                "modbus_isolations": st.isolations,
                "modbus_rejoins": st.rejoins,
                "modbus_skipped_polls": st.skipped,
                "modbus_poll_period_ms": period,
            }
        return out

    def _client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient | LeanTcpClient:
        # our own per-request timeout (asyncio.timeout) fires first; the library's is a backstop
        backstop = max(c.timeout_s for c in self._conn.values()) + 1.0
        if self.endpoint.transport == "tcp" and self.client_kind == "lean":
            return LeanTcpClient(
                self.endpoint.address, self.endpoint.port, connect_timeout_s=backstop
            )
        if self.endpoint.transport == "rtu":
            s = self._serial
            return AsyncModbusSerialClient(
                self.endpoint.address,
                framer=FramerType.RTU,
                baudrate=s.baudrate,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
                timeout=backstop,
                retries=0,
                reconnect_delay=0,
            )
        return AsyncModbusTcpClient(
            self.endpoint.address,
            port=self.endpoint.port,
            timeout=backstop,
            retries=0,
            reconnect_delay=0,
        )

    async def run(self, sink: Sink) -> None:
        client = self._client()
        try:
            if not await client.connect():
                raise ConnectorError(f"cannot connect to Modbus {self.endpoint}")
            for dev in self.devices:
                sink.link(dev, True)
            await self._poll_forever(client, sink)
        finally:
            client.close()
            for dev in self.devices:
                sink.link(dev, False)

    async def _poll_forever(self, client: Any, sink: Sink) -> None:
        units: dict[int, _UnitState] = defaultdict(_UnitState)
        self._last_response = time.monotonic()
        clock = self._clock
        start = clock()
        for job in self._jobs:
            job.cadence = Cadence(job.interval_s, start)
        while True:
            _reraise_lost_cancellation()
            now = clock()
            for job in self._jobs:
                cad = job.cadence
                assert cad is not None
                if cad.due <= now:
                    await self._poll(client, sink, job, units)
                    self._kept_period(job, cad, cad.done(clock()))
            wait = min(j.cadence.due for j in self._jobs if j.cadence is not None) - clock()
            if wait > 0:
                await asyncio.sleep(wait)

    def _kept_period(self, job: _Job, cad: Cadence, missed: int) -> None:
        """Count a poll of ``job`` and the slots it skipped; log an episode once."""
        devices = job.devices
        for dev in devices:
            st = self.per_device[dev]
            st.polls += 1
            st.skipped += missed
        job.on_time = 0 if missed else job.on_time + 1
        if missed and not job.warned:
            job.warned = True
            log.warning(
                "Modbus %s: a poll of %s took longer than its %g ms interval; %d poll(s) "
                "skipped, the next ones keep the phase (counted in modbus_skipped_polls; "
                "logged once per episode)",
                self.endpoint,
                ", ".join(devices),
                job.interval_s * 1000,
                missed,
            )
        elif job.warned and job.on_time >= EPISODE_END_POLLS:
            job.warned = False
            log.info(
                "Modbus %s: polls of %s keep their %g ms interval again (%d skipped in all)",
                self.endpoint,
                ", ".join(devices),
                job.interval_s * 1000,
                cad.skipped,
            )

    async def _poll(self, client: Any, sink: Sink, job: _Job, units: dict[int, _UnitState]) -> None:
        self.stats.cycles += 1
        job.polls += 1
        silent_now: set[int] = set()
        for span in job.spans:
            unit = span.whole.unit
            state = units[unit]
            if unit in silent_now:
                for part in span.parts:
                    self._emit(sink, bad_readings(part, "timeout"))
                continue
            if state.silent and time.monotonic() < state.retry_at:
                continue
            if span.split and job.polls >= span.retry_at:
                outcome = await self._read(client, span.whole)
                if not isinstance(outcome, str):
                    state.silent = 0
                    span.parts, span.refused, span.wait = [span.whole], (), 0
                    self.per_device[span.device].rejoins += 1
                    self._emit_block(sink, span.whole, outcome)
                    continue
                if outcome == "timeout":
                    self._timed_out(sink, job, span.whole, state, silent_now)
                    continue
                state.silent = 0
                if outcome == REFUSED:
                    await self._isolate(client, sink, job, span, span.whole, merge=True)
                else:
                    self._fail(sink, span.whole, outcome)
                    span.retry_at = job.polls + span.wait
                continue
            for part in list(span.parts):
                if unit in silent_now:
                    self._emit(sink, bad_readings(part, "timeout"))
                    continue
                outcome = await self._read(client, part)
                if not isinstance(outcome, str):
                    state.silent = 0
                    self._emit_block(sink, part, outcome)
                    continue
                if outcome == "timeout":
                    self._timed_out(sink, job, part, state, silent_now)
                    continue
                state.silent = 0
                if outcome == REFUSED and halve(part) is not None:
                    # the whole span merges its runs; a run refused later is only divided
                    await self._isolate(client, sink, job, span, part, merge=part == span.whole)
                    continue
                self._fail(sink, part, outcome)
                if outcome == REFUSED and part != span.whole:
                    # a single point (group) refused on its own: it waits for the retry
                    span.parts.remove(part)
                    span.refused = (*span.refused, *part.points)
                    if not span.wait:
                        self._schedule_retry(job, span, first=True)

    def _timed_out(
        self,
        sink: Sink,
        job: _Job,
        req: ReadRequest,
        state: _UnitState,
        silent_now: set[int],
    ) -> None:
        silent_now.add(req.unit)
        state.silent += 1
        backoff = min(job.interval_s * 2 ** (state.silent - 1), UNIT_BACKOFF_MAX_S)
        state.retry_at = time.monotonic() + backoff
        self._fail(sink, req, "timeout")
        if time.monotonic() - self._last_response > max(LINK_SILENCE_S, 3 * job.interval_s):
            raise ConnectorError(
                f"no response from any unit on Modbus {self.endpoint} for "
                f"{time.monotonic() - self._last_response:.0f} s"
            )

    def _schedule_retry(self, job: _Job, span: _Span, *, first: bool) -> None:
        """The next try of the whole span: ``rejoin_after_polls`` after the first isolation,
        twice the previous wait after a refused retry (capped)."""
        conn = self._conn[span.device]
        if first:
            span.wait = conn.rejoin_after_polls
        else:
            span.wait = min(span.wait * 2, max(conn.rejoin_max_polls, conn.rejoin_after_polls))
        span.retry_at = job.polls + span.wait

    async def _isolate(
        self,
        client: Any,
        sink: Sink,
        job: _Job,
        span: _Span,
        refused: ReadRequest,
        *,
        merge: bool,
    ) -> None:
        """``refused`` (the whole span or one of its parts) was refused with exception 2: read
        its halves now, halving again what is refused, until single points; emit every
        reading; the parts that read fine replace it (joined where they touch when ``merge``),
        the points refused alone wait for the retry of the whole span."""
        self.stats.splits += 1
        self.per_device[span.device].isolations += 1
        halves = halve(refused)
        assert halves is not None
        todo = list(halves)
        good: list[ReadRequest] = []
        alone: list[PointRef] = []
        while todo:
            req = todo.pop(0)
            outcome = await self._read(client, req)
            if not isinstance(outcome, str):
                self._emit_block(sink, req, outcome)
                good.append(req)
                continue
            if outcome == REFUSED:
                parts = halve(req)
                if parts is not None:
                    todo[0:0] = parts
                    continue
                alone.extend(req.points)
            else:
                good.append(req)  # not a refusal (timeout, busy ...): read again next poll
            self._fail(sink, req, outcome)
        if merge:
            good = merge_runs(refused, good)
        if refused == span.whole:
            span.parts = good
            span.refused = tuple(alone)
        else:
            at = span.parts.index(refused)
            span.parts[at : at + 1] = sorted(good, key=lambda r: r.address)
            span.refused = (*span.refused, *alone)
        self._schedule_retry(job, span, first=refused != span.whole or not span.wait)

    async def _read(self, client: Any, req: ReadRequest) -> Words | str:
        """Registers/bits of ``req``, or a status: ``timeout``, ``modbus_exception_<n>``."""
        conn = self._conn[req.points[0].device]
        lean = isinstance(client, LeanTcpClient)
        for _attempt in range(conn.retries + 1):
            if not client.connected:
                raise ConnectorError(f"Modbus {self.endpoint}: connection lost")
            self.stats.requests += 1
            self.stats.by_unit[req.unit] += 1
            dev = self.per_device[req.points[0].device]
            dev.requests += 1
            sent = time.monotonic()
            try:
                if lean:
                    words: Words | int = await client.read(
                        req.function_code, req.address, req.count, req.unit, conn.timeout_s
                    )
                else:
                    async with asyncio.timeout(conn.timeout_s):
                        words = await _pymodbus_read(client, req)
                    _reraise_lost_cancellation()
            except TimeoutError:
                self.stats.timeouts += 1
                continue
            except ExceptionResponse as exc:
                words = exc.code
            except UnitMismatch:
                self.stats.timeouts += 1  # as pymodbus: another unit's answer is no answer
                continue
            except WireError as exc:
                raise ConnectorError(f"Modbus {self.endpoint}: {exc}") from exc
            except ConnectionException as exc:
                raise ConnectorError(f"Modbus {self.endpoint}: {exc}") from exc
            except ModbusException as exc:
                if not client.connected:
                    raise ConnectorError(f"Modbus {self.endpoint}: {exc}") from exc
                self.stats.timeouts += 1
                continue
            self._last_response = time.monotonic()
            self.stats.responses += 1
            dev.responses += 1
            dev.latency_s += self._last_response - sent
            if isinstance(words, int):
                self.stats.exceptions += 1
                return f"modbus_exception_{words}"
            if req.table not in ("coil", "discrete"):
                self.stats.registers += len(words)
            return words
        if not client.connected:
            raise ConnectorError(f"Modbus {self.endpoint}: connection lost")
        return "timeout"

    def _fail(self, sink: Sink, req: ReadRequest, status: str) -> None:
        for dev in req.devices:
            sink.error(dev, status)
        self._emit(sink, bad_readings(req, status))

    def _emit_block(self, sink: Sink, req: ReadRequest, words: Words) -> None:
        """The samples of one response, decoded in bulk (:mod:`connectors.modbus.block`)."""
        ts = time.time_ns()
        got = self._decoders.get(id(req))
        if got is None or got[0] is not req:
            if len(self._decoders) > 4 * len(self.requests) + 64:
                self._decoders.clear()  # isolations made many short-lived requests
            got = self._decoders[id(req)] = (req, BlockDecoder(req))
        dec = got[1]
        values, quality, status = dec.decode(words)
        # columns straight to the sink (no Sample per value): one block per device of the read
        for block in dec.blocks(ts, values, quality, status):
            sink.put_block(block)

    @staticmethod
    def _emit(sink: Sink, readings: list[Reading]) -> None:
        ts = time.time_ns()
        sink.put_many(
            Sample(r.ref.device, r.ref.point, ts, r.value, r.quality, r.status) for r in readings
        )


async def _pymodbus_read(client: Any, req: ReadRequest) -> list[int] | list[bool] | int:
    """One read through pymodbus: the registers or bits, or the exception code."""
    call: Callable[..., Awaitable[Any]] = {
        1: client.read_coils,
        2: client.read_discrete_inputs,
        3: client.read_holding_registers,
        4: client.read_input_registers,
    }[req.function_code]
    response = await call(req.address, count=req.count, device_id=req.unit)
    if response.isError():
        return int(response.exception_code)
    if req.table in ("coil", "discrete"):
        bits: list[bool] = list(response.bits)
        return bits
    registers: list[int] = list(response.registers)
    return registers


def build_connectors(devices: Sequence[Device]) -> list[ModbusConnector]:
    """One connector per endpoint of ``devices`` (the Modbus ones), in order of appearance."""
    groups: dict[Endpoint, list[Device]] = {}
    for dev in devices:
        if dev.modbus is None:
            continue
        groups.setdefault(Endpoint.of(dev.modbus), []).append(dev)
    return [ModbusConnector(devs) for devs in groups.values()]
