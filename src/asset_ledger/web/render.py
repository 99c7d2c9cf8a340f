"""The Jinja2 environment of the pages and the one function that renders a page."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from asset_ledger.api.auth import principal_of

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))


def _when(value: datetime | str | None) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _bytes(value: int) -> str:
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"


TEMPLATES.env.filters["when"] = _when
TEMPLATES.env.filters["bytes"] = _bytes
TEMPLATES.env.filters["pretty"] = _pretty


FLASHES = {
    "token_revoked": ("ok", "The token was revoked; scripts using it are refused from now on."),
    "user_added": ("ok", "The user was added."),
    "user_saved": ("ok", "The user was saved."),
    "source_saved": ("ok", "The source was saved."),
    "source_removed": ("ok", "The source was removed."),
    "credential_saved": ("ok", "The credential was stored encrypted; it cannot be read back."),
    "run_queued": ("ok", "The run was queued; a worker picks it up in a moment."),
    "run_confirmed": ("ok", "The held snapshot was applied."),
}


def flashes(request: Request) -> list[dict[str, str]]:
    key = request.query_params.get("done", "")
    if key in FLASHES:
        kind, text = FLASHES[key]
        return [{"kind": kind, "text": text}]
    return []


def render(
    request: Request, template: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    full = {"principal": principal_of(request), "flashes": flashes(request), "section": "", **context}
    return TEMPLATES.TemplateResponse(request, template, full, status_code=status_code)
