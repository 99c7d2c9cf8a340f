"""Run in a child process by test_huge_responses: one collect against answers that are far too large,
then print the outcome and the process's peak RSS as JSON. Kept apart so the measurement is the
collector's alone."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from benchmarks.common import peak_rss_kib

from asset_ledger.collectors.pve import PveCollector
from asset_ledger.core import ingest
from tests.reliability.test_hostile_pve_answers import SECRET, answers

MIB = 1024 * 1024


class Body(httpx.AsyncByteStream):
    """``{"data": [...]}`` of about ``size`` bytes, produced lazily in 1 MiB chunks (never held whole)."""

    def __init__(self, size: int) -> None:
        self.size = size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"data":['
        item = json.dumps({"id": "qemu/1", "type": "qemu", "vmid": 1, "node": "n1", "name": "x" * 200})
        chunk = ",".join([item] * (MIB // (len(item) + 1))).encode()
        sent = 0
        while sent < self.size:
            yield chunk + b","
            sent += len(chunk) + 1
        yield item.encode() + b"]}"


def interfaces(count: int) -> dict[str, Any]:
    return {
        "result": [
            {
                "name": f"veth{i}",
                "hardware-address": f"bc:24:11:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                "ip-addresses": [
                    {"ip-address": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
                     "ip-address-type": "ipv4", "prefix": 8}
                ],
            }
            for i in range(count)
        ]
    }  # fmt: skip


def main(case: str, size: int) -> None:
    served = answers()

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api2/json")
        if case == "body" and path == "/cluster/resources":
            return httpx.Response(200, stream=Body(size), headers={"content-type": "application/json"})
        if case == "interfaces" and path.endswith("/agent/network-get-interfaces"):
            return httpx.Response(200, json={"data": interfaces(size)})
        if path not in served:
            return httpx.Response(501)
        return httpx.Response(200, json={"data": served[path]})

    request = {
        "schema_version": "collector-request-v1",
        "mode": "collect",
        "source": {"id": "src", "type": "pve", "config": {"endpoint": "https://pve.test:8006"}},
        "credential": {"api_token_id": "ledger@pve!inv", "api_token_secret": SECRET},
    }
    started = time.monotonic()
    response = asyncio.run(PveCollector(transport=httpx.MockTransport(handler)).run(request))
    problems = ingest.validate_response(response, mode="collect", source_type="pve")
    vm = next((a for a in response.get("assets", []) if a["external_id"] == "qemu/100"), None)
    print(
        json.dumps(
            {
                "seconds": round(time.monotonic() - started, 2),
                "peak_rss_mib": peak_rss_kib() // 1024,
                "errors": [{"code": e["code"], "message": e["message"]} for e in response["errors"]],
                "warnings": sorted({w["code"] for w in response["warnings"]}),
                "schema_problems": [p["message"][:300] for p in problems],
                "vm_ips": len(vm["normalized"].get("network", {}).get("ip_addresses", [])) if vm else None,
                "vm_raw_bytes": len(json.dumps(vm["raw_payload"])) if vm else None,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
