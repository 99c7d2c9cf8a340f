"""A fake collector: a test double for the core, never a product collector.

It answers with whatever JSON the test wrote to the file named by its config's ``response_file`` (so a
subprocess run sees it too), after emitting a few progress events. Special answers:
``{"__raise__": "Name"}`` makes it raise (the message quotes the credential, which must never surface);
``{"__echo_secret__": true}`` makes it return an error whose message quotes the credential, and
``"__leak__": true`` in a normal answer makes it copy the credential into warnings, detect details and every
raw payload (buggy collectors the core must scrub).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from asset_ledger.collectors import ProgressCallback
from asset_ledger.contract import LedgerError, error_entry

TARGET = "tests.core.fake_collector:FakeCollector"


class FakeCollector:
    source_type = "fake"
    version = "fake-1.0"
    secret_fields = frozenset({"token"})

    def check_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        endpoint = config.get("endpoint")
        if not isinstance(endpoint, str) or not endpoint.startswith("https://"):
            raise LedgerError("SOURCE_CONFIG_INVALID", f"endpoint: {endpoint!r} is not an https:// URL")
        checked = dict(config)
        checked.setdefault("timeout_ms", 1000)
        return checked

    def check_credential(self, config: Mapping[str, Any], credential: Mapping[str, Any]) -> None:
        token = credential.get("token")
        if not isinstance(token, str) or len(token) < 4:
            raise LedgerError("CREDENTIAL_INVALID", f"token: required, at least 4 characters (got {token!r})")

    async def run(
        self, request: Mapping[str, Any], progress: ProgressCallback | None = None
    ) -> dict[str, Any]:
        token = (request.get("credential") or {}).get("token", "")
        answer = json.loads(Path(request["source"]["config"]["response_file"]).read_text("utf-8"))
        if not isinstance(answer, dict):
            return answer  # type: ignore[no-any-return]  # garbage on purpose: the core must refuse it
        if "__raise__" in answer:
            raise RuntimeError(f"connection to endpoint failed with token {token}")
        mode = request["mode"]
        if answer.get("__echo_secret__"):
            return base_response(
                mode, errors=[error_entry("CREDENTIAL_INVALID", f"the server refused token {token}")]
            )
        if progress is not None:
            total = len(answer.get("assets", []))
            progress({"phase": "inventory", "done": 0, "total": total, "node": None, "message": "listing"})
            progress({"phase": "inventory", "done": total, "total": total, "node": None, "message": "done"})
        answer = dict(answer)
        if answer.pop("__leak__", False):
            answer["warnings"] = [{"code": "PVE_NODE_OFFLINE", "message": f"node down (token {token})"}]
            answer["detect"] = {**answer["detect"], "details": {"auth": token}}
            answer["assets"] = [
                {**a, "raw_payload": {**a["raw_payload"], "auth": token}} for a in answer["assets"]
            ]
        answer["mode"] = mode
        if mode != "collect":
            answer.pop("assets", None)
            answer.pop("relations", None)
        if mode == "healthcheck":
            answer.pop("detect", None)
        return answer


def base_response(mode: str = "collect", **fields: Any) -> dict[str, Any]:
    response: dict[str, Any] = {
        "schema_version": "collector-response-v1",
        "mode": mode,
        "source_type": "fake",
        "collector_version": "fake-1.0",
        "stats": {"inventory_complete": mode == "collect"},
        "errors": [],
        "warnings": [],
    }
    response.update(fields)
    return response


DETECT = {"target_version": "8.2", "capabilities": {"is_cluster": False}, "driver": "fake-v1"}


def host(name: str) -> dict[str, Any]:
    return {
        "external_kind": "host",
        "external_id": name,
        "normalized": {"kind": "host", "identity": {"hostname": name}, "hardware": {"cpu_count": 16}},
        "raw_payload": {"node": name, "status": "online", "maxcpu": 16},
    }


def vm(vmid: int, node: str = "node1", power: str = "running", **raw: Any) -> dict[str, Any]:
    return {
        "external_kind": "vm",
        "external_id": f"qemu/{vmid}",
        "normalized": {
            "kind": "vm",
            "identity": {"hostname": f"vm{vmid}", "cloud_native_id": str(vmid)},
            "hardware": {"cpu_count": 2, "memory_bytes": 2 << 30},
            "runtime": {"power_state": power},
        },
        "raw_payload": {
            "vmid": vmid,
            "name": f"vm{vmid}",
            "node": node,
            "status": power,
            "maxmem": 2 << 30,
            "description": f"guest {vmid} with a description long enough to look like a real config",
            **raw,
        },
    }


def runs_on(vmid: int, node: str = "node1") -> dict[str, Any]:
    return {
        "type": "runs_on",
        "from": {"external_kind": "vm", "external_id": f"qemu/{vmid}"},
        "to": {"external_kind": "host", "external_id": node},
        "raw_payload": {"vmid": vmid, "node": node},
    }


def snapshot(vmids: Iterable[int], *, nodes: tuple[str, ...] = ("node1",), **changes: Any) -> dict[str, Any]:
    """A complete, valid collect answer: ``nodes`` hosts and the VMs ``vmids`` spread over them."""
    ids = list(vmids)
    placement = {vmid: nodes[i % len(nodes)] for i, vmid in enumerate(ids)}
    response = base_response(
        "collect",
        detect=copy.deepcopy(DETECT),
        assets=[host(n) for n in nodes] + [vm(v, placement[v]) for v in ids],
        relations=[runs_on(v, placement[v]) for v in ids],
    )
    response["stats"]["counts"] = {"host": len(nodes), "vm": len(ids)}
    response.update(changes)
    return response
