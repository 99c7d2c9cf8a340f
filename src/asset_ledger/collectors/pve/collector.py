"""``PveCollector``: healthcheck, detect and collect for Proxmox VE 5.0 - 9.x.

Orchestrates calls through ``PveClient`` and builds the collector-response-v1 document with the pure
functions of ``normalize``. A collect is complete or failed: enumeration problems fail the run with a
registered code; enrichment problems (one guest's config, a guest agent, an offline node) become warnings
and the data /cluster/resources gave is kept. Never imports the core or storage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from asset_ledger.collectors import ProgressCallback
from asset_ledger.collectors.pve import metrics
from asset_ledger.collectors.pve.client import Outcome, PveCallError, PveClient
from asset_ledger.collectors.pve.config import (
    ApiTokenCredential,
    Credential,
    PasswordCredential,
    PveConfig,
    parse_config,
    parse_credential,
)
from asset_ledger.collectors.pve.detect import Capabilities, detect_section
from asset_ledger.collectors.pve.normalize import (
    ClusterStatus,
    IpFinding,
    ResourceGuest,
    Resources,
    agent_enabled,
    cluster_normalized,
    guest_normalized,
    host_normalized,
    ips_from_agent,
    ips_from_config,
    ips_from_lxc_interfaces,
    parse_cluster_status,
    parse_error,
    parse_guest_list,
    parse_resources,
    parse_version,
    power_state,
    text,
    to_bool,
)
from asset_ledger.collectors.pve.permissions import (
    NODE_STATS,
    REQUIRED,
    agent_role_commands,
    describe_missing,
    missing_from_cap,
    missing_from_permissions,
)
from asset_ledger.contract import LedgerError, error_entry, warning_entry

COLLECTOR_VERSION = "1.0.0"
log = logging.getLogger("asset_ledger.collectors.pve")

#: Outcomes that end the whole run wherever they happen (the session or the transport is unusable).
FATAL_OUTCOMES = frozenset(
    {Outcome.AUTH, Outcome.TLS, Outcome.RATE_LIMITED, Outcome.NETWORK, Outcome.REDIRECT}
)


async def gather_all(*awaitables: Any) -> list[Any]:
    """``asyncio.gather`` that cancels (and awaits) the siblings when one fails, so nothing outlives a run."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@dataclass
class GuestDetails:
    config: dict[str, Any] | None = None
    list_entry: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    ips: list[IpFinding] = field(default_factory=list)


@dataclass
class NodeResult:
    name: str
    online: bool
    status: dict[str, Any] | None = None
    guests: dict[str, GuestDetails] = field(default_factory=dict)


class _Run:
    """One request's work: the client, the response under construction and what was learned so far."""

    def __init__(
        self,
        client: PveClient,
        config: PveConfig,
        credential: Credential,
        source_id: str,
        progress: ProgressCallback | None,
    ) -> None:
        self.client = client
        self.config = config
        self.credential = credential
        self.source_id = source_id
        self.progress = progress
        self.warnings: list[dict[str, Any]] = []
        self.version_data: Any = None
        self.version: tuple[int, int] | None = None
        self.permissions_endpoint = False
        self.permissions_probed = False
        self.permissions: dict[str, Any] | None = None
        self.agent_queried = 0
        self.agent_unavailable = 0
        self.lxc_interfaces_missing = False
        self.nodes_done = 0
        self.nodes_total = 0
        self.guests_done = 0
        self.guests_total = 0
        self._last_guest_event = 0.0

    # -- helpers -------------------------------------------------------------------------------------

    @property
    def principal(self) -> str:
        if isinstance(self.credential, ApiTokenCredential):
            return self.credential.api_token_id
        assert isinstance(self.credential, PasswordCredential)
        return self.credential.userid

    @property
    def is_token(self) -> bool:
        return isinstance(self.credential, ApiTokenCredential)

    def emit(self, phase: str, done: int, total: int, node: str | None = None, message: str = "") -> None:
        if self.progress is not None:
            self.progress({"phase": phase, "done": done, "total": total, "node": node, "message": message})

    def warn(self, code: str, message: str, **context: Any) -> None:
        self.warnings.append(warning_entry(code, message, context={k: v for k, v in context.items() if v}))

    # -- shared steps --------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Authenticate (ticket for passwords) and read ``/version``."""
        self.emit("connect", 0, 2, message=f"connecting to {self.config.endpoint}")
        await self.client.login()
        self.version_data = await self.client.get("/version")
        if not isinstance(self.version_data, Mapping):
            raise parse_error("/version answered no object", path="/version")
        self.version = parse_version(self.version_data.get("version"))
        self.emit("connect", 2, 2, message=f"PVE {self.version_data.get('version')}")

    async def check_permissions(self) -> None:
        """Fail with PVE_PERMISSION_DENIED unless effective privileges prove a complete inventory."""
        missing = None
        want_endpoint = self.is_token or self.version is None or self.version >= (6, 2)
        if want_endpoint:
            self.permissions_probed = True
            try:
                data = await self.client.get("/access/permissions")
            except PveCallError as exc:
                if exc.outcome is not Outcome.UNSUPPORTED:
                    raise
            else:
                if not isinstance(data, Mapping):
                    raise parse_error("/access/permissions answered no object", path="/access/permissions")
                self.permissions_endpoint = True
                self.permissions = dict(data)
                missing = missing_from_permissions(data, (*REQUIRED, NODE_STATS))
        if missing is None:
            ticket = self.client.ticket
            if ticket is None:
                raise LedgerError(
                    "INVENTORY_INCOMPLETE",
                    "this server has no /access/permissions and an API token has no capability summary, so "
                    "effective privileges cannot be checked",
                    suggested_action="Use auth_type user_password on PVE versions before 6.2.",
                )
            missing = missing_from_cap(ticket.cap, ticket.username, (*REQUIRED, NODE_STATS))
        hard = [req for req in missing if req in REQUIRED]
        if hard:
            message, action = describe_missing(
                hard, self.principal, is_token=self.is_token, version=self.version
            )
            raise LedgerError(
                "PVE_PERMISSION_DENIED",
                message,
                suggested_action=action,
                context={"missing": [{"privilege": r.privilege, "path": r.path} for r in hard]},
            )
        if NODE_STATS in missing:
            message, action = describe_missing(
                [NODE_STATS], self.principal, is_token=self.is_token, version=self.version
            )
            self.warn("PVE_NODE_STATS_HIDDEN", f"{message}. {action}", privilege="Sys.Audit", path="/nodes")

    def capabilities(self, is_cluster: bool) -> Capabilities:
        by_version = self.version is not None and self.version >= (6, 2)
        return Capabilities(
            version=self.version,
            is_cluster=is_cluster,
            # what the server showed wins; the version only fills in what was not probed
            permissions_endpoint=self.permissions_endpoint if self.permissions_probed else by_version,
            api_tokens=self.is_token or by_version,
        )

    def scope_check(self, is_cluster: bool) -> None:
        actual = "cluster" if is_cluster else "standalone"
        if self.config.scope not in ("auto", actual):
            self.warn(
                "PVE_SCOPE_MISMATCH",
                f"scope is configured as {self.config.scope!r} but {self.config.endpoint} is "
                f"{'a cluster member' if is_cluster else 'a standalone node'}; the inventory follows "
                f"what the server is ({actual})",
                configured=self.config.scope,
                detected=actual,
            )

    # -- modes ---------------------------------------------------------------------------------------

    async def healthcheck(self, response: dict[str, Any]) -> None:
        await self.connect()
        await self.check_permissions()
        nodes = await self.client.get("/nodes")
        if not isinstance(nodes, list):
            raise parse_error("/nodes answered no list", path="/nodes")
        response["stats"]["counts"] = {"nodes": len(nodes)}
        self.emit("healthcheck", 1, 1, message="reachable, authenticated, permissions sufficient")

    async def detect(self, response: dict[str, Any]) -> None:
        await self.connect()
        if self.is_token or self.version is None or self.version >= (6, 2):
            self.permissions_probed = True
            try:
                await self.client.get("/access/permissions")
                self.permissions_endpoint = True
            except PveCallError as exc:
                if exc.outcome in FATAL_OUTCOMES:
                    raise
        cluster: ClusterStatus | None = None
        try:
            cluster = parse_cluster_status(await self.client.get("/cluster/status"))
        except PveCallError as exc:
            if exc.outcome is not Outcome.FORBIDDEN:
                raise
        resources_ok = True
        node_names: list[str] = []
        try:
            resources = parse_resources(await self.client.get("/cluster/resources", params={"type": "node"}))
            node_names = list(resources.nodes)
        except PveCallError as exc:
            if exc.outcome in FATAL_OUTCOMES:
                raise
            resources_ok = False
        is_cluster = cluster.is_cluster if cluster is not None else len(node_names) > 1
        if cluster is not None:
            node_names = sorted(set(node_names) | set(cluster.nodes))
        caps = self.capabilities(is_cluster)
        caps.supports_cluster_resources_endpoint = resources_ok
        response["detect"] = detect_section(
            caps, self.version_data, cluster, node_names, auth="api_token" if self.is_token else "ticket"
        )
        self.scope_check(is_cluster)
        self.emit("detect", 1, 1, message=f"driver {caps.driver}")

    async def collect(self, response: dict[str, Any]) -> None:
        await self.connect()
        await self.check_permissions()
        self.emit("inventory", 0, 2, message="reading /cluster/status and /cluster/resources")
        status_data, resources_data = await gather_all(
            self.client.get("/cluster/status"), self.client.get("/cluster/resources")
        )
        cluster = parse_cluster_status(status_data)
        resources = parse_resources(resources_data)
        self.emit("inventory", 2, 2, message=f"{len(resources.guests)} guests")
        caps = self.capabilities(cluster.is_cluster)
        node_names = sorted(set(resources.nodes) | set(cluster.nodes))
        response["detect"] = detect_section(
            caps, self.version_data, cluster, node_names, auth="api_token" if self.is_token else "ticket"
        )
        self.scope_check(cluster.is_cluster)

        guests_by_node: dict[str, list[ResourceGuest]] = {name: [] for name in node_names}
        for guest in resources.guests:
            if guest.node in guests_by_node:
                guests_by_node[guest.node].append(guest)

        results = await self.enrich_nodes(caps, cluster, resources, guests_by_node)
        assets, relations = self.assemble(cluster, resources, node_names, results)
        vm_count = sum(1 for a in assets if a["external_kind"] == "vm")
        if vm_count and not relations:
            raise LedgerError(
                "INVENTORY_RELATIONS_EMPTY",
                f"{vm_count} guests were found but none could be tied to a visible node",
            )
        response["assets"] = assets
        response["relations"] = relations
        guests = [g for g in resources.guests]
        response["stats"].update(
            {
                "inventory_complete": True,
                "counts": {
                    "clusters": 1 if cluster.is_cluster else 0,
                    "hosts": len(node_names),
                    "hosts_offline": sum(1 for r in results.values() if not r.online),
                    "vms": vm_count,
                    "qemu": sum(1 for g in guests if g.guest_type == "qemu"),
                    "lxc": sum(1 for g in guests if g.guest_type == "lxc"),
                    "templates": sum(
                        1
                        for a in assets
                        if a["external_kind"] == "vm" and a["normalized"]["virtualization"].get("template")
                    ),
                    "relations": len(relations),
                    "agent_queried": self.agent_queried,
                    "agent_unavailable": self.agent_unavailable,
                },
            }
        )
        metrics.record_agent_availability(
            self.source_id, queried=self.agent_queried, unavailable=self.agent_unavailable
        )
        self.emit("done", 1, 1, message=f"{len(assets)} assets, {len(relations)} relations")

    # -- enrichment ----------------------------------------------------------------------------------

    def node_online(self, name: str, cluster: ClusterStatus, resources: Resources) -> bool:
        res = resources.nodes.get(name)
        if res is not None and text(res.get("status")) not in (None, "online"):
            return False
        member = cluster.nodes.get(name)
        return not (member is not None and "online" in member and not member.get("online"))

    async def enrich_nodes(
        self,
        caps: Capabilities,
        cluster: ClusterStatus,
        resources: Resources,
        guests_by_node: dict[str, list[ResourceGuest]],
    ) -> dict[str, NodeResult]:
        node_gate = asyncio.Semaphore(self.config.max_parallel_nodes)
        results: dict[str, NodeResult] = {}
        total = self.nodes_total = len(guests_by_node)
        self.guests_total = sum(len(g) for g in guests_by_node.values())

        async def one(name: str) -> None:
            async with node_gate:
                result = NodeResult(name, self.node_online(name, cluster, resources))
                results[name] = result
                if result.online:
                    await self.enrich_node(caps, result, guests_by_node.get(name, []))
                if not result.online:
                    count = len(guests_by_node.get(name, []))
                    self.warn(
                        "PVE_NODE_OFFLINE",
                        f"node {name!r} is offline or unreachable; its {count} guests are kept from "
                        "/cluster/resources with power_state unknown",
                        node=name,
                        guests=count,
                    )
                self.nodes_done += 1
                self.emit("nodes", self.nodes_done, total, node=name, message=self.guest_progress(final=True))

        self.emit("nodes", 0, total)
        await gather_all(*(one(name) for name in sorted(guests_by_node)))
        return results

    async def _node_call(
        self,
        node: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        data: Mapping[str, Any] | None = None,
        priority: int = 1,
    ) -> Any:
        """A call proxied to ``node``: at most 3 at a time in its pvedaemon (protected calls: guest lists,
        agent, container interfaces) and 3 in its pveproxy (configs, node status), so configs flow while
        dead guest agents hold every pvedaemon worker. Waiting calls go by ``priority``: 0 agent calls (a
        dead agent holds a worker for seconds: start those first), 1 node status, QEMU list and configs of
        running VMs (they lead to agent calls), 2 everything else."""
        async with self.client.node_slot(node, path).hold(priority):
            return await self.client.call(method, path, params=params, data=data, timeout_s=timeout_s)

    def guest_progress(self, *, final: bool = False) -> str:
        """ "k/n guests enriched"; also emitted while nodes are busy (at most twice a second)."""
        text = f"{self.guests_done}/{self.guests_total} guests enriched"
        if not final:
            now = time.monotonic()
            if now - self._last_guest_event >= 0.5:
                self._last_guest_event = now
                self.emit("nodes", self.nodes_done, self.nodes_total, message=text)
        return text

    async def _enrich_guest_counted(
        self, caps: Capabilities, result: NodeResult, guest: ResourceGuest, list_entry: dict[str, Any] | None
    ) -> None:
        await self.enrich_guest(caps, result, guest, list_entry)
        self.guests_done += 1
        self.guest_progress()

    async def enrich_node(self, caps: Capabilities, result: NodeResult, guests: list[ResourceGuest]) -> None:
        node = result.name
        qemu_present = any(g.guest_type == "qemu" for g in guests)

        async def node_status() -> None:
            try:
                data = await self._node_call(node, "GET", f"/nodes/{node}/status")
            except PveCallError as exc:
                if exc.outcome is Outcome.NODE_UNREACHABLE:
                    result.online = False
                    return
                if exc.outcome in FATAL_OUTCOMES:
                    raise
                if exc.outcome is Outcome.FORBIDDEN:
                    self.warn(
                        "PVE_NODE_STATS_HIDDEN",
                        f"no Sys.Audit on /nodes/{node}: its OS, CPU and memory figures are missing "
                        f"({exc.reason or exc.message})",
                        node=node,
                    )
                else:
                    self.warn(
                        "PVE_NODE_DETAILS_UNAVAILABLE",
                        f"status of node {node!r} could not be read: {exc.message}",
                        node=node,
                    )
                return
            if isinstance(data, Mapping):
                result.status = dict(data)
            else:
                self.warn(
                    "PVE_NODE_DETAILS_UNAVAILABLE",
                    f"/nodes/{node}/status answered {type(data).__name__}, not an object",
                    node=node,
                )

        qemu_list: dict[int, dict[str, Any]] = {}

        async def list_qemu() -> None:
            if not qemu_present:
                return
            path = f"/nodes/{node}/qemu"
            try:
                qemu_list.update(
                    parse_guest_list(
                        await self._node_call(node, "GET", path, params={"full": 1}), node, "qemu"
                    )
                )
            except PveCallError as exc:
                if exc.outcome is Outcome.NODE_UNREACHABLE:
                    result.online = False
                    return
                if exc.outcome in FATAL_OUTCOMES:
                    raise
                self.warn(
                    "PVE_GUEST_DETAILS_UNAVAILABLE",
                    f"the QEMU list of node {node!r} could not be read ({exc.message}); paused/suspended "
                    "states of its VMs are not visible",
                    node=node,
                )
            except LedgerError as exc:
                self.warn(
                    "PVE_GUEST_DETAILS_UNAVAILABLE", f"{exc.message}; QEMU run states not visible", node=node
                )

        await gather_all(node_status(), list_qemu())
        if not result.online:
            return
        await gather_all(
            *(self._enrich_guest_counted(caps, result, g, qemu_list.get(g.vmid)) for g in guests)
        )

    async def enrich_guest(
        self, caps: Capabilities, result: NodeResult, guest: ResourceGuest, list_entry: dict[str, Any] | None
    ) -> None:
        node = result.name
        details = GuestDetails(list_entry=list_entry)
        result.guests[guest.external_id] = details
        if list_entry is not None:
            details.raw[f"{guest.guest_type}_list"] = list_entry
        path = f"/nodes/{node}/{guest.guest_type}/{guest.vmid}/config"
        try:
            running_vm = guest.guest_type == "qemu" and guest.entry.get("status") == "running"
            config = await self._node_call(node, "GET", path, priority=1 if running_vm else 2)
        except PveCallError as exc:
            if exc.outcome in FATAL_OUTCOMES:
                raise
            self.warn(
                "PVE_GUEST_DETAILS_UNAVAILABLE",
                f"configuration of {guest.external_id} on {node!r} could not be read: {exc.message}",
                vm_id=guest.vmid,
                node=node,
            )
            config = None
        if config is not None and not isinstance(config, Mapping):
            self.warn(
                "PVE_GUEST_DETAILS_UNAVAILABLE",
                f"{path} answered {type(config).__name__}, not an object",
                vm_id=guest.vmid,
                node=node,
            )
            config = None
        if config is not None:
            details.config = dict(config)
            details.raw["config"] = details.config

        status = (list_entry or {}).get("status") or guest.entry.get("status")
        state, _ = power_state(
            status, (list_entry or {}).get("qmpstatus"), (details.config or {}).get("lock")
        )
        template = bool(
            to_bool((details.config or {}).get("template")) or to_bool(guest.entry.get("template"))
        )
        runtime: list[IpFinding] = []
        if guest.guest_type == "qemu" and state == "running" and not template:
            runtime = await self.agent_ips(caps, guest, node, details)
        elif guest.guest_type == "lxc" and state == "running" and caps.lxc_interfaces:
            runtime = await self.lxc_ips(guest, node, details)
        static = ips_from_config(details.config, guest.guest_type)
        details.ips = runtime if any(f.kept for f in runtime) else runtime + static
        if details.ips:
            details.raw["ip_sources"] = [f.as_raw() for f in details.ips]

    async def agent_ips(
        self, caps: Capabilities, guest: ResourceGuest, node: str, details: GuestDetails
    ) -> list[IpFinding]:
        self.agent_queried += 1
        name = text((details.config or {}).get("name")) or text(guest.entry.get("name"))
        if details.config is None:
            return []
        if not agent_enabled(details.config.get("agent")):
            self.agent_unavailable_warning(
                guest, node, name, "the guest agent is not enabled in the VM configuration"
            )
            return []
        base = f"/nodes/{node}/qemu/{guest.vmid}/agent"
        try:
            if caps.agent_get_endpoints:
                data = await self._node_call(
                    node,
                    "GET",
                    base + "/network-get-interfaces",
                    timeout_s=self.config.agent_timeout_s,
                    priority=0,
                )
            else:
                data = await self._node_call(
                    node,
                    "POST",
                    base,
                    data={"command": "network-get-interfaces"},
                    timeout_s=self.config.agent_timeout_s,
                    priority=0,
                )
        except PveCallError as exc:
            if exc.outcome in (Outcome.AUTH, Outcome.TLS, Outcome.RATE_LIMITED):
                raise
            if exc.outcome is Outcome.FORBIDDEN:
                commands = " && ".join(
                    agent_role_commands(self.principal, is_token=self.is_token, version=self.version)
                )
                reason = (
                    f"forbidden: reading the guest agent needs {caps.agent_privilege} on /vms/{guest.vmid} "
                    f"({exc.reason or exc.status}); grant it with: {commands}"
                )
            elif exc.outcome is Outcome.NETWORK:
                reason = f"no answer within the agent deadline of {self.config.agent_timeout_s:g} s"
            else:
                reason = exc.reason or exc.message
            details.raw["agent_network"] = {"error": reason}
            self.agent_unavailable_warning(guest, node, name, reason)
            return []
        details.raw["agent_network"] = data
        result = data.get("result") if isinstance(data, Mapping) else None
        if not isinstance(result, list):
            error = result.get("error") if isinstance(result, Mapping) else None
            desc = text(error.get("desc")) if isinstance(error, Mapping) else None
            self.agent_unavailable_warning(
                guest, node, name, f"the guest agent answered an error: {desc or data!r}"[:500]
            )
            return []
        return ips_from_agent(result)

    def agent_unavailable_warning(
        self, guest: ResourceGuest, node: str, name: str | None, reason: str
    ) -> None:
        self.agent_unavailable += 1
        self.warn(
            "PVE_GUEST_AGENT_UNAVAILABLE",
            f"guest agent of VM {guest.vmid}{f' ({name})' if name else ''} on {node!r}: {reason}",
            vm_id=guest.vmid,
            vm_name=name,
            node=node,
            reason=reason,
        )
        log.warning(
            "guest agent of VM %s unavailable: %s",
            guest.vmid,
            reason,
            extra={
                "event": "pve.guest_agent_unavailable",
                "source_id": self.source_id,
                "vm_id": guest.vmid,
                "vm_name": name,
                "node": node,
            },
        )

    async def lxc_ips(self, guest: ResourceGuest, node: str, details: GuestDetails) -> list[IpFinding]:
        if self.lxc_interfaces_missing:
            return []
        path = f"/nodes/{node}/lxc/{guest.vmid}/interfaces"
        try:
            data = await self._node_call(node, "GET", path, priority=2)
        except PveCallError as exc:
            if exc.outcome in FATAL_OUTCOMES:
                raise
            if exc.outcome is Outcome.UNSUPPORTED:
                self.lxc_interfaces_missing = True
                return []
            self.warn(
                "PVE_GUEST_DETAILS_UNAVAILABLE",
                f"interfaces of container {guest.vmid} on {node!r} could not be read: {exc.message}",
                vm_id=guest.vmid,
                node=node,
            )
            return []
        details.raw["lxc_interfaces"] = data
        return ips_from_lxc_interfaces(data)

    # -- assembly ------------------------------------------------------------------------------------

    def assemble(
        self,
        cluster: ClusterStatus,
        resources: Resources,
        node_names: list[str],
        results: dict[str, NodeResult],
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        assets: list[dict[str, Any]] = []
        relations: list[dict[str, Any]] = []
        cluster_ref = None
        if cluster.is_cluster and cluster.name:
            cluster_ref = {"external_kind": "cluster", "external_id": cluster.name}
            assets.append(
                {
                    **cluster_ref,
                    "normalized": cluster_normalized(cluster, len(node_names)),
                    "raw_payload": {
                        "cluster_status": cluster.cluster_entry,
                        "cluster_status_nodes": [cluster.nodes[n] for n in sorted(cluster.nodes)],
                    },
                }
            )
        for name in node_names:
            result = results.get(name) or NodeResult(name, False)
            raw: dict[str, Any] = {}
            if name in resources.nodes:
                raw["cluster_resources"] = resources.nodes[name]
            if name in cluster.nodes:
                raw["cluster_status"] = cluster.nodes[name]
            if result.status is not None:
                raw["node_status"] = result.status
            ref = {"external_kind": "host", "external_id": name}
            assets.append(
                {
                    **ref,
                    "normalized": host_normalized(
                        name,
                        resource=resources.nodes.get(name),
                        node_status=result.status,
                        online=result.online,
                    ),
                    "raw_payload": raw,
                }
            )
            if cluster_ref is not None:
                relations.append({"type": "member_of", "from": ref, "to": cluster_ref})
        for guest in resources.guests:
            owner = results.get(guest.node)
            online = owner.online if owner is not None else False
            found = owner.guests.get(guest.external_id) if owner is not None else None
            details = found or GuestDetails()
            raw = {"cluster_resources": guest.entry, **details.raw}
            ref = {"external_kind": "vm", "external_id": guest.external_id}
            assets.append(
                {
                    **ref,
                    "normalized": guest_normalized(
                        guest,
                        config=details.config,
                        list_entry=details.list_entry,
                        node_online=online,
                        ip_findings=details.ips,
                    ),
                    "raw_payload": raw,
                }
            )
            if guest.node in results:
                relations.append(
                    {
                        "type": "runs_on",
                        "from": ref,
                        "to": {"external_kind": "host", "external_id": guest.node},
                        "raw_payload": {"node": guest.node, "from": "/cluster/resources"},
                    }
                )
            else:
                self.warn(
                    "PVE_GUEST_DETAILS_UNAVAILABLE",
                    f"{guest.external_id} names node {guest.node!r}, which is not visible; "
                    "no runs_on relation",
                    vm_id=guest.vmid,
                    node=guest.node,
                )
        return assets, relations


class PveCollector:
    """The ``pve`` collector (see the module docstring)."""

    source_type = "pve"
    version = COLLECTOR_VERSION
    secret_fields = frozenset({"api_token_secret", "password"})

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport

    def check_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return parse_config(config).model_dump()

    def check_credential(self, config: Mapping[str, Any], credential: Mapping[str, Any]) -> None:
        parse_credential(parse_config(config), credential)

    async def run(
        self, request: Mapping[str, Any], progress: ProgressCallback | None = None
    ) -> dict[str, Any]:
        started = time.monotonic()
        mode = request.get("mode") if isinstance(request, Mapping) else None
        response: dict[str, Any] = {
            "schema_version": "collector-response-v1",
            "mode": mode if mode in ("healthcheck", "detect", "collect") else "healthcheck",
            "source_type": self.source_type,
            "collector_version": self.version,
            "stats": {"inventory_complete": False},
            "errors": [],
            "warnings": [],
        }
        source = request.get("source") if isinstance(request, Mapping) else None
        source_id = str(source.get("id", "")) if isinstance(source, Mapping) else ""
        client: PveClient | None = None
        work: _Run | None = None
        try:
            if mode not in ("healthcheck", "detect", "collect"):
                raise LedgerError(
                    "REQUEST_INVALID", f"mode must be healthcheck, detect or collect, not {mode!r}"
                )
            if not isinstance(source, Mapping):
                raise LedgerError("REQUEST_INVALID", "request has no source object")
            config = parse_config(source.get("config"))
            credential = parse_credential(config, request.get("credential"))
            if not config.tls_verify:
                response["warnings"].append(
                    warning_entry(
                        "PVE_TLS_VERIFY_DISABLED",
                        f"certificate verification is off for {config.endpoint}: the server's identity was "
                        "not checked; set tls_ca_bundle or tls_fingerprint instead",
                    )
                )
            client = PveClient(config, credential, source_id=source_id, transport=self._transport)
            async with client:
                work = _Run(client, config, credential, source_id, progress)
                if mode == "healthcheck":
                    await work.healthcheck(response)
                elif mode == "detect":
                    await work.detect(response)
                else:
                    await work.collect(response)
        except LedgerError as exc:
            response["errors"].append(exc.as_error())
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # Wrongly typed PVE data that slipped past the strict checks: a parse problem, never a traceback.
            response["errors"].append(
                error_entry(
                    "PVE_PARSE_ERROR", f"PVE answered data of an unexpected shape ({type(exc).__name__})"
                )
            )
        if work is not None:
            response["warnings"].extend(work.warnings)
        if response["errors"]:
            response["stats"]["inventory_complete"] = False
            response.pop("assets", None)
            response.pop("relations", None)
        if client is not None:
            response["stats"]["requests"] = client.requests
            response["stats"]["rate_limited"] = client.rate_limited
        response["stats"]["duration_ms"] = int((time.monotonic() - started) * 1000)
        if mode == "collect":
            metrics.record_collect(source_id, success=not response["errors"])
        return response
