"""Simulated CNC machines and process units over OPC UA (an asyncua server per endpoint).

For every endpoint of the site's OPC UA devices, one server offers a folder per device
(``2:<device>``) with the variables named as the site file's browse paths (``State`` Int32,
``GoodCount`` / ``ScrapCount`` UInt32, ``SpindlePower`` Double, ``ApcMode`` Boolean,
``Temperature`` Double...). String NodeIds are ``ns=2;s=<device>.<Name>``. Values come from the
pure machine model (:mod:`connectors.simulators.machine`) at the shared :class:`SimClock`
time, which is also their SourceTimestamp. Every variable is historized in memory; the history
outlives a stop/start of the server, and on start the simulator fills in what the machine did
while its server was down (as a controller's own buffer would), so a client can backfill the
gap with HistoryRead.

Security: None always; Basic256Sha256 Sign and SignAndEncrypt when given a server certificate
and key. Optional user names and passwords, trusted client certificates and OperationLimits.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import logging
import os
import pickle
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.history import HistoryDict
from asyncua.server.internal_server import InternalServer
from asyncua.server.standard_address_space import standard_address_space

from config.models import Device, Point, SiteConfig
from connectors.simulators.base import SimClock, Simulator
from connectors.simulators.machine import ProfileName, Reading, model_for

log = logging.getLogger("shopfloor.sim.cnc")

NAMESPACE = "urn:shopfloor:sim"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_S = 1_000_000_000
HISTORY_COUNT = 200_000

_VARIANT = {
    "bool": ua.VariantType.Boolean,
    "int16": ua.VariantType.Int16,
    "uint16": ua.VariantType.UInt16,
    "int32": ua.VariantType.Int32,
    "uint32": ua.VariantType.UInt32,
    "int64": ua.VariantType.Int64,
    "uint64": ua.VariantType.UInt64,
    "float32": ua.VariantType.Double,
    "float64": ua.VariantType.Double,
    "string": ua.VariantType.String,
}


_STANDARD_NODES: bytes | None = None
_FROZEN_SERVERS = 0


def _cache_file() -> Path:
    import asyncua

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "shopfloor"
    version = getattr(asyncua, "__version__", "x")
    return base / f"asyncua-{version}-py{sys.version_info[0]}{sys.version_info[1]}.aspace"


def _standard_nodes(build: Callable[[], dict[Any, Any]]) -> bytes:
    """The pickled standard address space: from memory, else from the user's cache folder,
    else built (and cached for the next process)."""
    global _STANDARD_NODES
    if _STANDARD_NODES is not None:
        return _STANDARD_NODES
    path = _cache_file()
    with contextlib.suppress(OSError):  # no cache yet: build it below
        _STANDARD_NODES = path.read_bytes()
        return _STANDARD_NODES
    blob = pickle.dumps(build(), pickle.HIGHEST_PROTOCOL)
    _STANDARD_NODES = blob
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)
    except OSError as exc:
        log.info("cannot cache the OPC UA standard address space in %s: %s", path, exc)
    return blob


class _QuickInternalServer(InternalServer):  # type: ignore[misc]
    """Builds the standard address space (~6,000 nodes, seconds of work) once and gives every
    later server a copy of it (unpickled with the garbage collector paused: ~10x faster)."""

    async def load_standard_address_space(self, shelf_file: Path | None = None) -> None:
        def build() -> dict[Any, Any]:
            fresh = InternalServer()
            standard_address_space.fill_address_space(fresh.node_mgt_service)
            return dict(fresh.aspace._nodes)

        global _FROZEN_SERVERS
        enabled = gc.isenabled()
        gc.disable()
        try:
            self.aspace._nodes = pickle.loads(_standard_nodes(build))
            # millions of long-lived objects: keep them out of the collector's way (a full
            # collection over them takes seconds) until the last such server stops
            gc.freeze()
            _FROZEN_SERVERS += 1
        finally:
            if enabled:
                gc.enable()


async def stop_server(server: Server) -> None:
    """Stop ``server`` as a process that dies would: no connection accepted any more, then the
    open ones closed. asyncua closes its connections before its listening socket, so a client
    that notices the closed connection at once reconnects to the stopping server, whose stop
    then waits for that connection forever."""
    listener = getattr(getattr(server, "bserver", None), "_server", None)
    if listener is not None:
        listener.close()
    await server.stop()


def release_standard_nodes() -> None:
    """Call once per stopped server from :func:`new_server`: when none is left, the frozen
    address spaces go back to the garbage collector (and are freed)."""
    global _FROZEN_SERVERS
    _FROZEN_SERVERS = max(0, _FROZEN_SERVERS - 1)
    if _FROZEN_SERVERS == 0:
        gc.unfreeze()


def _dt(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ns // 1000)


def reading_value(point: Point, r: Reading) -> float | int | bool:
    """What the simulated controller shows for ``point`` (by its role and name)."""
    role = point.role
    if role == "state":
        return r.state_code
    if role == "count_good":
        return r.good
    if role == "count_scrap":
        return r.scrap
    if role == "count_total":
        return r.good + r.scrap
    if role == "apc_mode":
        return r.apc_mode
    if role == "power_kw":
        return r.power_kw
    name = (point.id + (point.unit or "")).lower()
    if "temp" in name or "°c" in name:
        return r.temperature_c
    return r.power_kw


def _typed(point: Point, value: float | int | bool) -> Any:
    vt = _VARIANT[point.datatype]
    if vt is ua.VariantType.Boolean:
        return bool(value)
    if vt is ua.VariantType.Double:
        return float(value)
    if vt is ua.VariantType.String:
        return str(value)
    return int(value)


def _names(device: Device, point: Point) -> tuple[str, str]:
    """(folder, variable) browse names from the point's address."""
    addr = point.opcua
    assert addr is not None
    if addr.browse_path:
        parts = [p.split(":", 1)[-1] for p in addr.browse_path.strip("/").split("/") if p]
        if parts and parts[0] == "Objects":
            parts = parts[1:]
        if len(parts) >= 2:
            return parts[-2], parts[-1]
        if parts:
            return device.id, parts[-1]
    if addr.node_id and ";s=" in addr.node_id:
        ident = addr.node_id.split(";s=", 1)[1]
        return device.id, ident.rsplit(".", 1)[-1]
    return device.id, point.id


class _KeptHistory(HistoryDict):  # type: ignore[misc]
    """In-memory history that survives a restart of the server (a node keeps its values)."""

    async def new_historized_node(self, node_id: Any, period: Any, count: int = 0) -> None:
        if node_id in self._datachanges:
            self._datachanges_period[node_id] = period, count
            return
        await super().new_historized_node(node_id, period, count)


class _Users:
    """asyncua user manager: the configured user names and passwords, nobody else."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = dict(users)

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


@dataclass(slots=True)
class _Var:
    device: str
    point: Point
    node_id: ua.NodeId
    last: Any = None


@dataclass(frozen=True, slots=True)
class SimSecurity:
    """Server certificate/key (enables Basic256Sha256), accepted users, trusted client certs."""

    certificate: Path | None = None
    private_key: Path | None = None
    users: Mapping[str, str] | None = None
    allow_anonymous: bool = True
    trusted: Path | None = None  # folder of trusted client certificates (DER); None = any
    only_secure: bool = False


def new_server(security: SimSecurity | None = None) -> Server:
    """An asyncua :class:`Server` (not yet initialised) that starts fast after the first, with
    the user names of ``security`` (if any)."""
    users = _Users(security.users) if security is not None and security.users else None
    return Server(iserver=_QuickInternalServer(user_manager=users))


async def apply_security(server: Server, sec: SimSecurity) -> None:
    """Endpoints, identity tokens and certificate trust of ``sec`` (after ``init()``)."""
    policies = [] if sec.only_secure else [ua.SecurityPolicyType.NoSecurity]
    if sec.certificate is not None and sec.private_key is not None:
        await server.load_certificate(str(sec.certificate))
        await server.load_private_key(str(sec.private_key))
        policies += [
            ua.SecurityPolicyType.Basic256Sha256_Sign,
            ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
        ]
    server.set_security_policy(policies)
    tokens: list[type] = []
    if sec.allow_anonymous:
        tokens.append(ua.AnonymousIdentityToken)
    if sec.users:
        tokens.append(ua.UserNameIdentityToken)
    server.set_identity_tokens(tokens)
    if sec.trusted is not None:
        await trust_folder(server, sec.trusted)


async def trust_folder(server: Server, folder: Path) -> None:
    """Accept only client certificates found in ``folder`` (re-read on every call)."""
    store = TrustStore([folder], [])
    await store.load()
    validator = CertificateValidator(
        CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT,
        store,
    )
    server.set_certificate_validator(validator)


class CncSimulator:
    """An asyncua server for the OPC UA devices of one endpoint."""

    def __init__(
        self,
        site: SiteConfig,
        endpoint: str,
        devices: Sequence[Device],
        seed: int,
        clock: SimClock,
        *,
        security: SimSecurity | None = None,
        limits: Mapping[str, int] | None = None,
        profile: ProfileName = "current",
        tick_s: float = 0.1,
    ) -> None:
        self.site = site
        self.endpoint = endpoint
        self.devices = tuple(devices)
        self.seed = seed
        self.clock = clock
        self.security = security or SimSecurity()
        self.limits = dict(limits or {})
        self.tick_s = tick_s
        self.models = {d.id: model_for(site, d, seed, profile) for d in self.devices}
        self.name = f"opcua-sim:{endpoint}"
        self.server: Server | None = None
        self.vars: list[_Var] = []
        self._history = _KeptHistory()
        self._task: asyncio.Task[None] | None = None
        self._stopped_at: int | None = None
        self.frozen = False  # tests: stop changing values (the controller hangs)
        self.on_tick: Callable[[int], None] | None = None

    @property
    def port(self) -> int:
        return urlparse(self.endpoint).port or 4840

    def describe(self) -> str:
        sec = "None + Basic256Sha256" if self.security.certificate else "None"
        return (
            f"OPC UA CNC simulator on {self.endpoint} ({len(self.devices)} devices, "
            f"security {sec}, history in memory)"
        )

    async def start(self) -> None:
        if self.server is not None:
            return
        server = new_server(self.security)
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("shopfloor simulated machines")
        await apply_security(server, self.security)
        server.iserver.history_manager.set_storage(self._history)
        idx = await server.register_namespace(NAMESPACE)
        await self._build_nodes(server, idx)
        await self._write_limits(server)
        now = self.clock.now_ns()
        if self._stopped_at is not None:
            await self._fill_history(self._stopped_at, now)
        await self._update(server, now)
        await server.start()
        for var in self.vars:
            await server.historize_node_data_change(
                server.get_node(var.node_id), period=None, count=HISTORY_COUNT
            )
        self.server = server
        self._task = asyncio.create_task(self._run(), name=f"{self.name}:tick")

    async def _build_nodes(self, server: Server, idx: int) -> None:
        objects = server.nodes.objects
        folders: dict[str, Any] = {}
        self.vars = []
        for dev in self.devices:
            for point in dev.points:
                folder_name, var_name = _names(dev, point)
                folder = folders.get(folder_name)
                if folder is None:
                    folder = await objects.add_folder(
                        ua.NodeId(folder_name, idx), ua.QualifiedName(folder_name, idx)
                    )
                    folders[folder_name] = folder
                node_id = ua.NodeId(f"{folder_name}.{var_name}", idx)
                initial = _typed(point, 0)
                node = await folder.add_variable(
                    node_id,
                    ua.QualifiedName(var_name, idx),
                    ua.Variant(initial, _VARIANT[point.datatype]),
                )
                self.vars.append(_Var(dev.id, point, node.nodeid))

    async def _write_limits(self, server: Server) -> None:
        ids = {
            "max_nodes_per_read": (
                ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead
            ),
            "max_monitored_items_per_call": (
                ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall
            ),
        }
        for key, value in self.limits.items():
            node = server.get_node(ua.NodeId(ids[key]))
            await node.write_value(ua.Variant(value, ua.VariantType.UInt32))

    def _values_at(self, t_ns: int) -> list[tuple[_Var, Any]]:
        readings = {d: m.at(t_ns) for d, m in self.models.items()}
        return [(v, _typed(v.point, reading_value(v.point, readings[v.device]))) for v in self.vars]

    async def _update(self, server: Server, t_ns: int) -> None:
        source = _dt(t_ns)
        for var, value in self._values_at(t_ns):
            if value == var.last:
                continue
            var.last = value
            dv = ua.DataValue(
                ua.Variant(value, _VARIANT[var.point.datatype]),
                SourceTimestamp=source,
                ServerTimestamp=dt.datetime.now(dt.UTC),
            )
            await server.write_attribute_value(var.node_id, dv)

    async def _fill_history(self, start_ns: int, end_ns: int) -> None:
        """What the machines did while the server was down, into the kept history."""
        filled = 0
        for dev_id, model in self.models.items():
            mine = [v for v in self.vars if v.device == dev_id]
            last = {id(v): v.last for v in mine}
            for t in model.change_times(start_ns, end_ns):
                reading = model.at(t)
                for var in mine:
                    value = _typed(var.point, reading_value(var.point, reading))
                    if value == last[id(var)] or var.node_id not in self._history._datachanges:
                        continue
                    last[id(var)] = value
                    dv = ua.DataValue(
                        ua.Variant(value, _VARIANT[var.point.datatype]),
                        SourceTimestamp=_dt(t),
                        ServerTimestamp=_dt(t),
                    )
                    await self._history.save_node_value(var.node_id, dv)
                    filled += 1
        log.info("%s: history filled with %d values of the downtime", self.name, filled)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            server = self.server
            if server is None or self.frozen:
                continue
            now = self.clock.now_ns()
            await self._update(server, now)
            if self.on_tick is not None:
                self.on_tick(now)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server, self.server = self.server, None
        if server is not None:
            self._stopped_at = self.clock.now_ns()
            try:
                await stop_server(server)
            finally:
                release_standard_nodes()


def endpoints_of(site: SiteConfig) -> dict[str, list[Device]]:
    groups: dict[str, list[Device]] = {}
    for d in site.devices:
        if d.opcua is not None:
            groups.setdefault(d.opcua.endpoint, []).append(d)
    return groups


def build_cnc(
    site: SiteConfig,
    seed: int,
    clock: SimClock,
    *,
    security: SimSecurity | None = None,
    profile: ProfileName = "current",
) -> list[Simulator]:
    """One OPC UA server per endpoint of the site's OPC UA devices."""
    return [
        CncSimulator(site, endpoint, devices, seed, clock, security=security, profile=profile)
        for endpoint, devices in endpoints_of(site).items()
    ]
