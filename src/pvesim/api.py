"""The PVE API behaviour: authentication, routing, permission checks and the served endpoints.

Pure request -> response logic over a :class:`~pvesim.topology.Topology` for one
:class:`~pvesim.profiles.Profile`; the HTTP transport, faults and observation live in
:mod:`pvesim.server`. The order of checks follows pve-http-server / pve-manager: authentication
(``auth_handler``) first, then the handler lookup (absent ⇒ 501), the API-token ``allowtoken`` check, the
proxy decision (offline node ⇒ 595), the pvedaemon hand-off of protected calls (3 workers per node),
parameter verification (400), the permission check (403) and finally the handler.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from pvesim.apidata import EndpointInfo, api_table
from pvesim.auth import TicketSigner, parse_api_token, parse_cookie_ticket, totp_valid
from pvesim.perms import PermissionEngine, Subject
from pvesim.profiles import Profile
from pvesim.render import Renderer
from pvesim.topology import Guest, Topology

JSON_TYPE = "application/json;charset=UTF-8"


@dataclass
class ApiRequest:
    method: str
    path: str  #: decoded path below ``/api2/json``
    params: dict[str, Any]
    headers: dict[str, str]
    #: a transport-level refusal pve-http-server answers after authentication (body rules, …)
    transport_error: tuple[int, str] | None = None


@dataclass
class ApiResponse:
    status: int
    reason: str
    body: bytes = b""
    content_type: str | None = JSON_TYPE
    headers: list[tuple[str, str]] = field(default_factory=list)
    template: str | None = None
    node: str | None = None
    principal: str | None = None
    protected: bool = False


class ApiError(Exception):
    """An error answer: status, reason phrase and whether the body stays empty (auth handler, proxy)."""

    def __init__(
        self, status: int, reason: str, *, errors: dict[str, str] | None = None, empty: bool = False
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.errors = errors
        self.empty = empty


@dataclass
class Delays:
    """Faithful delays in seconds (already multiplied by the server's ``time_scale``)."""

    auth_failure: float = 3.0  #: every 401 is delayed to 3 s (pve-http-server)
    agent: float = 3.0  #: guest-ping / QMP command timeout
    offline: float = 3.0  #: connect attempt to an unreachable node before 595
    hang: float = 600.0  #: how long a hanging agent holds its worker


class Runtime:
    """What the API needs from the server: the clock, delays and the pvedaemon worker pools."""

    def __init__(
        self,
        now: Callable[[], float],
        delays: Delays,
        protected_slot: Callable[[str], AbstractAsyncContextManager[None]],
    ) -> None:
        self.now = now
        self.delays = delays
        self.protected_slot = protected_slot


@dataclass
class Ctx:
    request: ApiRequest
    info: EndpointInfo
    template: str
    path_params: dict[str, str]
    params: dict[str, Any]
    subject: Subject | None
    node: str | None


Handler = Callable[[Ctx], Any]
_BOOL_TRUE = {"1", "true", "yes", "on"}
_NOT_IN_SCHEMA = "property is not defined in schema and the schema does not allow additional properties"
_BOOL_VALUES = _BOOL_TRUE | {"0", "false", "no", "off"}


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


class PveApi:
    """Answers API requests for one profile and topology."""

    def __init__(self, profile: Profile, topology: Topology, runtime: Runtime, signer: TicketSigner) -> None:
        self.profile = profile
        self.topology = topology
        self.runtime = runtime
        self.signer = signer
        self.table = api_table(profile.apidata)
        self.perms = PermissionEngine(topology, profile)
        self.render = Renderer(profile, topology, self.perms)
        self.local_fingerprint = ""
        self._handlers: dict[tuple[str, str], Handler] = {
            ("GET", "/version"): self.h_version,
            ("GET", "/access"): self.h_access_index,
            ("GET", "/access/ticket"): lambda ctx: None,
            ("POST", "/access/ticket"): self.h_ticket,
            ("POST", "/access/tfa"): self.h_tfa,
            ("GET", "/access/permissions"): self.h_permissions,
            ("GET", "/access/users"): self.h_users,
            ("GET", "/cluster/status"): self.h_cluster_status,
            ("GET", "/cluster/resources"): self.h_cluster_resources,
            ("GET", "/nodes"): self.h_nodes,
            ("GET", "/nodes/{node}/status"): self.h_node_status,
            ("GET", "/nodes/{node}/version"): self.h_node_version,
            ("GET", "/nodes/{node}/subscription"): self.h_subscription,
            ("GET", "/nodes/{node}/qemu"): self.h_qemu_list,
            ("GET", "/nodes/{node}/lxc"): self.h_lxc_list,
            ("GET", "/nodes/{node}/qemu/{vmid}/status/current"): self.h_qemu_status,
            ("GET", "/nodes/{node}/qemu/{vmid}/config"): self.h_qemu_config,
            ("GET", "/nodes/{node}/lxc/{vmid}/status/current"): self.h_lxc_status,
            ("GET", "/nodes/{node}/lxc/{vmid}/config"): self.h_lxc_config,
            ("GET", "/nodes/{node}/lxc/{vmid}/interfaces"): self.h_lxc_interfaces,
            ("GET", "/nodes/{node}/qemu/{vmid}/agent"): self.h_agent_index,
            ("POST", "/nodes/{node}/qemu/{vmid}/agent"): self.h_agent_post,
            ("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces"): self.h_agent_get,
            ("GET", "/nodes/{node}/qemu/{vmid}/agent/get-osinfo"): self.h_agent_get,
            ("GET", "/nodes/{node}/qemu/{vmid}/agent/get-host-name"): self.h_agent_get,
        }

    @property
    def handled(self) -> set[tuple[str, str]]:
        """(method, template) of every endpoint this API has a handler for."""
        return set(self._handlers)

    # --- envelope ---------------------------------------------------------------------------------
    def error_response(self, err: ApiError) -> ApiResponse:
        reason = err.reason.split("\n")[0]
        if err.empty:
            return ApiResponse(err.status, reason, b"", None)
        body: dict[str, Any] = {"data": None}
        if err.errors:
            body["errors"] = err.errors
        if self.profile.error_message_in_body:
            body["message"] = err.reason if err.reason.endswith("\n") else err.reason + "\n"
        return ApiResponse(err.status, reason, _json(body))

    def auth_error(self, text: str, *, verification: bool = False) -> ApiError:
        """A 401 from the auth handler (empty body).

        Ticket/token *verification* errors read ``Authentication failed!`` on late releases (commit
        26c10a2e); ``No ticket`` and the CSRF error never do.
        """
        unified = verification and self.profile.unified_auth_error
        return ApiError(401, "Authentication failed!" if unified else text, empty=True)

    # --- entry point ------------------------------------------------------------------------------
    async def handle(self, req: ApiRequest) -> ApiResponse:
        meta: dict[str, Any] = {}
        started = time.monotonic()
        try:
            response = await self._handle(req, meta)
        except ApiError as err:
            response = self.error_response(err)
            if err.status == 401:
                # "always delay unauthorized calls by 3 seconds" (counted from the request start)
                await asyncio.sleep(max(0.0, self.runtime.delays.auth_failure - (time.monotonic() - started)))
        except (TypeError, ValueError, KeyError) as exc:
            # a handler died on input it did not expect: PVE answers 500 with the die message
            response = self.error_response(ApiError(500, f"{type(exc).__name__}: {exc}"))
        response.template = meta.get("template")
        response.node = meta.get("node")
        response.principal = meta.get("principal")
        response.protected = bool(meta.get("protected"))
        return response

    async def _handle(self, req: ApiRequest, meta: dict[str, Any]) -> ApiResponse:
        subject = self.authenticate(req)
        if subject is not None:
            meta["principal"] = subject.auth_id
        if req.transport_error is not None:
            raise ApiError(*req.transport_error, empty=True)
        matched = self.table.match(req.method, req.path)
        if matched is None:
            raise ApiError(501, f"Method '{req.method} {req.path}' not implemented")
        template, path_params = matched
        meta["template"] = template
        info = self.table.served.get((req.method, template))
        handler = self._handlers.get((req.method, template))
        if info is None or handler is None:
            raise ApiError(501, f"Method '{req.method} {req.path}' not implemented (not simulated by pvesim)")
        if subject is not None and subject.tokenname and not info.allowtoken:
            raise ApiError(403, f"URI '{req.path}' not available with API token, need proper ticket.")
        params = dict(req.params)
        ctx = Ctx(req, info, template, path_params, params, subject, self.topology.entry_node)
        # rest_handler checks permissions on the contacted node, before proxying to the target node
        self.check_permissions(ctx)
        node = path_params.get("node")
        target = self.topology.entry_node
        if node is not None:
            meta["node"] = node
            if node not in self.topology.nodes:
                if info.proxyto:
                    raise ApiError(
                        500,
                        f"hostname lookup '{node}' failed - failed to get address info for: {node}: "
                        "Name or service not known",
                    )
            else:
                target = node
                if not self.topology.nodes[node].online:
                    await asyncio.sleep(self.runtime.delays.offline)
                    raise ApiError(595, "No route to host", empty=True)
        ctx.node = target
        if info.protected:
            meta["protected"] = True
            async with self.runtime.protected_slot(target):
                data = await self._run(ctx, handler)
        else:
            data = await self._run(ctx, handler)
        if isinstance(data, bytes):
            return ApiResponse(200, "OK", data)
        return ApiResponse(200, "OK", _json({"data": data}))

    async def _run(self, ctx: Ctx, handler: Handler) -> Any:
        self.verify_parameters(ctx)  # RESTHandler::handle validates against the schema, then runs the code
        result = handler(ctx)
        if isinstance(result, Awaitable):
            return await result
        return result

    # --- authentication ---------------------------------------------------------------------------
    def authenticate(self, req: ApiRequest) -> Subject | None:
        """The subject of a request, None for the calls that need no auth (``/access/ticket``)."""
        no_auth = req.path.rstrip("/") == "/access/ticket" and req.method in ("GET", "POST")
        if no_auth:
            return None
        authz = req.headers.get("authorization")
        # "allow ticket in auth header as fallback" came with API tokens (pve-http-server e045d07, 3.0-4)
        ticket = parse_cookie_ticket(req.headers.get("cookie"), authz if self.profile.api_tokens else None)
        now = int(self.runtime.now())
        if ticket is not None:
            # pve-manager HTTPServer.pm auth_handler: verify_ticket, check_user_enabled, TFA, then CSRF
            info = self.signer.verify(ticket, now)
            if info is None:
                raise self.auth_error("permission denied - invalid PVE ticket", verification=True)
            user = self.topology.users.get(info.userid)
            if user is None:
                raise self.auth_error(f"no such user ('{info.userid}')", verification=True)
            if not user.enable:
                raise self.auth_error(f"user '{info.userid}' is disabled", verification=True)
            if user.expire and user.expire < now:
                raise self.auth_error(f"account expired for user '{info.userid}'", verification=True)
            if info.tfa_pending and (req.path.rstrip("/") != "/access/tfa" or req.method != "POST"):
                raise self.auth_error("No ticket")
            if req.method != "GET":
                csrf = req.headers.get("csrfpreventiontoken", "")
                if not self.signer.verify_csrf(csrf, info.userid, now):
                    raise self.auth_error("Permission denied - invalid csrf token")
            return Subject(user, tfa_pending=info.tfa_pending)
        token_value = parse_api_token(authz) if self.profile.api_tokens else None
        if token_value is None:
            raise self.auth_error("No ticket")
        return self.verify_token(token_value, now)

    def verify_token(self, value: str, now: int) -> Subject:
        """``AccessControl.pm`` ``verify_token``: split at the last ``=``; user, token, expiry, secret."""
        tokenid, sep, secret = value.rpartition("=")
        if not sep or not tokenid:
            raise self.auth_error("no tokenid specified", verification=True)
        userid, bang, tokenname = tokenid.partition("!")
        if not bang or not tokenname or "@" not in userid:
            raise self.auth_error(
                f"'{tokenid}' is not a valid token ID - not able to split into user and token parts",
                verification=True,
            )
        user = self.topology.users.get(userid)
        if user is None:
            raise self.auth_error(f"no such user ('{userid}')", verification=True)
        if not user.enable:
            raise self.auth_error(f"user '{userid}' is disabled", verification=True)
        if user.expire and user.expire < now:
            raise self.auth_error(f"account expired for user '{userid}'", verification=True)
        token = user.tokens.get(tokenname)
        if token is None:
            raise self.auth_error(f"no such token '{tokenname}' for user '{userid}'", verification=True)
        if token.expire and token.expire < now:
            raise self.auth_error(f"token '{tokenname}' access expired", verification=True)
        if secret != token.secret:
            raise self.auth_error("invalid token value!", verification=True)
        return Subject(user, tokenname=tokenname, privsep=token.privsep)

    # --- parameters and permissions ---------------------------------------------------------------
    def verify_parameters(self, ctx: Ctx) -> None:
        """400 ``Parameter verification failed.`` with per-parameter ``errors`` (JSONSchema.pm texts)."""
        spec = ctx.info.parameters
        values = {**ctx.params, **ctx.path_params}
        errors: dict[str, str] = {}
        for name, value in values.items():
            prop = spec.get(name)
            if prop is None:
                if not ctx.info.additional_properties:
                    errors[name] = _NOT_IN_SCHEMA
                continue
            text = str(value)
            kind = prop.get("type")
            if kind == "boolean" and text.lower() not in _BOOL_VALUES:
                errors[name] = f"type check ('boolean') failed - got '{text}'"
            elif kind == "integer":
                if not re.fullmatch(r"[+-]?\d+", text):
                    errors[name] = f"type check ('integer') failed - got '{text}'"
                elif "minimum" in prop and int(text) < prop["minimum"]:
                    errors[name] = f"value must have a minimum value of {prop['minimum']}"
                elif "maximum" in prop and int(text) > prop["maximum"]:
                    errors[name] = f"value must have a maximum value of {prop['maximum']}"
            elif "enum" in prop and text not in prop["enum"]:
                errors[name] = (
                    f"value '{text}' does not have a value in the enumeration '{', '.join(prop['enum'])}'"
                )
        for name, prop in spec.items():
            if not prop.get("optional") and name not in values:
                errors[name] = "property is missing and it is not optional"
        if errors:
            raise ApiError(400, "Parameter verification failed.", errors=errors)

    def check_permissions(self, ctx: Ctx) -> None:
        perms = ctx.info.permissions
        if perms.get("user") == "world":
            return
        subject = ctx.subject
        if subject is None:
            raise self.auth_error("No ticket")
        if perms.get("user") == "all" or "check" not in perms:
            return
        failure = self._eval_check(perms["check"], subject, {**ctx.path_params, **ctx.params})
        if failure is not None:
            raise ApiError(
                403, f"Permission check failed ({failure})" if failure else "Permission check failed"
            )

    def _eval_check(self, check: list[Any], subject: Subject, values: dict[str, Any]) -> str | None:
        op = check[0]
        if op == "perm":
            path = re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), "")), check[1])
            any_of = len(check) > 3 and check[3] == "any"
            privs = list(check[2])  # joined as declared, duplicates included (raise_perm_exc)
            return self.perms.check(subject, path, privs, any_of=any_of)
        if op == "and":
            for sub in check[1:]:
                failure = self._eval_check(sub, subject, values)
                if failure is not None:
                    return failure
            return None
        if op == "or":
            failures = [self._eval_check(sub, subject, values) for sub in check[1:]]
            return None if any(f is None for f in failures) else failures[-1]
        # checks pvesim does not model (userid-param, userid-group): only root passes
        return None if subject.userid == "root@pam" and not subject.privsep else ""

    # --- helpers ----------------------------------------------------------------------------------
    def _guest(self, ctx: Ctx, kind: str) -> Guest:
        vmid = int(ctx.path_params["vmid"])
        node = ctx.path_params["node"]
        guest = self.topology.guests.get(vmid)
        if guest is None or guest.kind != kind or guest.node != node:
            directory = "qemu-server" if kind == "qemu" else "lxc"
            raise ApiError(500, f"Configuration file 'nodes/{node}/{directory}/{vmid}.conf' does not exist")
        return guest

    def _subject(self, ctx: Ctx) -> Subject:
        if ctx.subject is None:
            raise self.auth_error("No ticket")
        return ctx.subject

    # --- /version and /nodes/{node}/version -------------------------------------------------------
    def h_version(self, ctx: Ctx) -> Any:
        with self.topology.lock:
            return self.render.version(datacenter=True)

    def h_node_version(self, ctx: Ctx) -> Any:
        return self.render.version(datacenter=False)

    def h_access_index(self, ctx: Ctx) -> Any:
        subdirs = ["users", "groups", "roles", "acl", "domains", "ticket", "password"]
        if self.profile.api_tokens:
            subdirs.append("permissions")
        if self.profile.at_least(5, 4):
            subdirs.append("tfa")
        return [{"subdir": s} for s in subdirs]

    # --- /access/ticket ---------------------------------------------------------------------------
    def h_ticket(self, ctx: Ctx) -> Any:
        params = ctx.params
        username = str(params.get("username", ""))
        realm = params.get("realm")
        if realm:  # appended unconditionally, as create_ticket does ("root@pam" + realm ⇒ no such user)
            username = f"{username}@{realm}"
        password = str(params.get("password", ""))
        now = int(self.runtime.now())
        failure = ApiError(401, "authentication failure")
        with self.topology.lock:
            user = self.topology.users.get(username)
            if user is None or not user.enable or (user.expire and user.expire < now):
                raise failure
            if params.get("path") and params.get("privs"):
                info = self.signer.verify(password, now)
                if info is None or info.tfa_pending or info.userid != username:
                    raise failure
                privs = [p for p in re.split(r"[,;\s]+", str(params["privs"])) if p]
                if self.perms.check(Subject(user), str(params["path"]), privs) is not None:
                    raise failure
                return {"username": username}
            challenge = params.get("tfa-challenge")
            if challenge is not None and self.profile.tfa_style == "challenge":
                info = self.signer.verify(str(challenge), now)
                kind, _, code = password.partition(":")
                if (
                    info is None
                    or not info.tfa_pending
                    or info.userid != username
                    or kind != "totp"
                    or user.totp_secret is None
                    or not totp_valid(user.totp_secret, code, self.runtime.now())
                ):
                    raise failure
                return self._ticket_data(user)
            renewed = self.signer.verify(password, now)
            if renewed is not None and not renewed.tfa_pending and renewed.userid == username:
                return self._ticket_data(user)
            if user.password is None or password != user.password:
                raise failure
            if user.totp_secret:
                if self.profile.tfa_style == "otp":
                    otp = str(params.get("otp", ""))
                    if not totp_valid(user.totp_secret, otp, self.runtime.now()):
                        raise failure
                    return self._ticket_data(user)
                challenge_json = '{"totp":true}' if self.profile.tfa_style == "challenge" else ""
                half: dict[str, Any] = {
                    "username": username,
                    "ticket": self.signer.tfa_ticket(username, now, challenge_json),
                    "CSRFPreventionToken": self.signer.csrf_token(username, now),
                    "NeedTFA": 1,
                }
                if self.topology.cluster_name and self.perms.has(Subject(user), "/", "Sys.Audit"):
                    half["clustername"] = self.topology.cluster_name
                return half
            return self._ticket_data(user)

    def _ticket_data(self, user: Any) -> dict[str, Any]:
        now = int(self.runtime.now())
        subject = Subject(user)
        data: dict[str, Any] = {
            "username": user.userid,
            "ticket": self.signer.ticket(user.userid, now),
            "CSRFPreventionToken": self.signer.csrf_token(user.userid, now),
            "cap": self.perms.cap(subject),
        }
        if self.topology.cluster_name and self.perms.has(subject, "/", "Sys.Audit"):
            data["clustername"] = self.topology.cluster_name
        return data

    def h_tfa(self, ctx: Ctx) -> Any:
        subject = self._subject(ctx)
        if not subject.tfa_pending:
            raise ApiError(400, "Parameter verification failed.", errors={"response": "no TFA pending"})
        user = subject.user
        code = str(ctx.params.get("response", ""))
        if user.totp_secret is None or not totp_valid(user.totp_secret, code, self.runtime.now()):
            raise ApiError(401, "authentication failure")
        now = int(self.runtime.now())
        return {"ticket": self.signer.ticket(user.userid, now)}

    # --- /access/permissions, /access/users -------------------------------------------------------
    def h_permissions(self, ctx: Ctx) -> Any:
        subject = self._subject(ctx)
        with self.topology.lock:
            target = subject
            userid = ctx.params.get("userid")
            if userid and userid != subject.auth_id:
                own_token = subject.tokenname is None and str(userid).startswith(subject.userid + "!")
                if not own_token and not self.perms.has(subject, "/access", "Sys.Audit"):
                    raise ApiError(403, "Permission check failed (/access, Sys.Audit)")
                uid, _, tokenname = str(userid).partition("!")
                user = self.topology.users.get(uid)
                if user is None:
                    raise ApiError(500, f"no such user ('{uid}')")
                token = user.tokens.get(tokenname) if tokenname else None
                if tokenname and token is None:
                    raise ApiError(500, f"no such token '{tokenname}' for user '{uid}'")
                target = Subject(user, tokenname or None, token.privsep if token else False)
            path = ctx.params.get("path")
            if path:
                privs = self.perms.permissions(target, str(path))
                return {str(path): {p: int(v) for p, v in sorted(privs.items())}}
            return self.perms.effective_paths(target)

    def h_users(self, ctx: Ctx) -> Any:
        subject = self._subject(ctx)
        with self.topology.lock:
            see_all = self.perms.has(subject, "/access/groups", "Sys.Audit") or self.perms.has(
                subject, "/access/groups", "User.Modify"
            )
            out = []
            for user in self.topology.users.values():
                if not see_all and user.userid != subject.userid:
                    continue
                entry: dict[str, Any] = {
                    "userid": user.userid,
                    "enable": int(user.enable),
                    "expire": user.expire,
                }
                if user.email:
                    entry["email"] = user.email
                if user.comment:
                    entry["comment"] = user.comment
                if user.groups:
                    entry["groups"] = ",".join(user.groups)
                out.append(entry)
            return out

    # --- cluster ----------------------------------------------------------------------------------
    def h_cluster_status(self, ctx: Ctx) -> Any:
        with self.topology.lock:
            return self.render.cluster_status()

    def h_cluster_resources(self, ctx: Ctx) -> Any:
        subject = self._subject(ctx)
        kind = ctx.params.get("type")
        return self.render.cluster_resources_body(subject, str(kind) if kind else None)

    # --- nodes ------------------------------------------------------------------------------------
    def h_nodes(self, ctx: Ctx) -> Any:
        subject = self._subject(ctx)
        with self.topology.lock:
            return self.render.nodes(subject, self.local_fingerprint)

    def h_node_status(self, ctx: Ctx) -> Any:
        with self.topology.lock:
            return self.render.node_status(self.topology.nodes[ctx.path_params["node"]])

    def h_subscription(self, ctx: Ctx) -> Any:
        subject = self._subject(ctx)
        node = self.topology.nodes[ctx.path_params["node"]]
        data: dict[str, Any] = {
            "status": "notfound",
            "message": "There is no subscription key",
            "url": "https://www.proxmox.com/proxmox-ve/pricing",
        }
        if self.perms.has(subject, f"/nodes/{node.name}", "Sys.Audit"):
            data["serverid"] = node.serverid
            data["sockets"] = node.sockets
        return data

    def h_qemu_list(self, ctx: Ctx) -> Any:
        subject = self._subject(ctx)
        full = str(ctx.params.get("full", "0")).lower() in _BOOL_TRUE
        with self.topology.lock:
            return self.render.qemu_list(ctx.path_params["node"], subject, full=full)

    def h_lxc_list(self, ctx: Ctx) -> Any:
        subject = self._subject(ctx)
        with self.topology.lock:
            return self.render.lxc_list(ctx.path_params["node"], subject)

    # --- guests -----------------------------------------------------------------------------------
    def h_qemu_status(self, ctx: Ctx) -> Any:
        with self.topology.lock:
            return self.render.qemu_status(self._guest(ctx, "qemu"))

    def h_qemu_config(self, ctx: Ctx) -> Any:
        with self.topology.lock:
            return self.render.qemu_config(self._guest(ctx, "qemu"))

    def h_lxc_status(self, ctx: Ctx) -> Any:
        with self.topology.lock:
            return self.render.lxc_status(self._guest(ctx, "lxc"))

    def h_lxc_config(self, ctx: Ctx) -> Any:
        with self.topology.lock:
            return self.render.lxc_config(self._guest(ctx, "lxc"))

    def h_lxc_interfaces(self, ctx: Ctx) -> Any:
        with self.topology.lock:
            return self.render.lxc_interfaces(self._guest(ctx, "lxc"))

    # --- QEMU guest agent -------------------------------------------------------------------------
    def h_agent_index(self, ctx: Ctx) -> Any:
        post = self.table.served.get(("POST", "/nodes/{node}/qemu/{vmid}/agent"))
        commands = (post.parameters.get("command", {}).get("enum") if post else None) or []
        return [{"name": c} for c in commands]

    async def h_agent_get(self, ctx: Ctx) -> Any:
        command = ctx.template.rsplit("/", 1)[-1]
        return await self._agent(ctx, command)

    async def h_agent_post(self, ctx: Ctx) -> Any:
        return await self._agent(ctx, str(ctx.params.get("command", "")))

    async def _agent(self, ctx: Ctx, command: str) -> Any:
        """``agent_available``, then the QGA command (qemu-server ``Agent.pm``; ``API2/Qemu.pm`` ≤5.1)."""
        legacy = self.profile.agent_legacy_texts
        with self.topology.lock:
            guest = self._guest(ctx, "qemu")
            configured = guest.agent is not None
            enabled = guest.agent_enabled
            alive = guest.running
            ping_ok = guest.state == "running" and enabled and guest.agent_mode != "not_running"
            mode = guest.agent_mode
        vmid = guest.vmid
        if not configured:
            raise ApiError(500, "No Qemu Guest Agent" if legacy else "No QEMU guest agent configured")
        if not alive:
            raise ApiError(500, f"VM {vmid} is not running")
        if not ping_ok:
            await asyncio.sleep(self.runtime.delays.agent)
            if legacy:  # no guest-ping yet: the command itself runs into the QMP timeout
                raise ApiError(500, f"VM {vmid} qmp command 'guest-{command}' failed - got timeout")
            raise ApiError(500, "QEMU guest agent is not running")
        if mode == "timeout":
            await asyncio.sleep(self.runtime.delays.agent)
            raise ApiError(500, f"VM {vmid} qmp command 'guest-{command}' failed - got timeout")
        if mode == "hang":
            await asyncio.sleep(self.runtime.delays.hang)
            raise ApiError(500, f"VM {vmid} qmp command 'guest-{command}' failed - got timeout")
        if mode == "qga_error":
            return {
                "result": {
                    "error": {
                        "class": "Unsupported",
                        "desc": "this feature or command is not currently supported",
                    }
                }
            }
        with self.topology.lock:
            return {"result": self.render.agent_result(guest, command)}
