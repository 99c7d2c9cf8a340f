"""One error body for every failure the HTTP interface reports, carrying a registered error code.

``{"error": {"code", "category", "retryable", "message", "suggested_action", "context"?}}`` — the same
shape as a collector-response-v1 ``errors[]`` item, so a script handles run errors and API errors alike.
Messages come from ``LedgerError``, which never carries a secret.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from asset_ledger.contract import LedgerError

_STATUS_BY_CODE = {
    "AUTH_REQUIRED": 401,
    "AUTH_FORBIDDEN": 403,
    "CSRF_INVALID": 403,
    "NOT_FOUND": 404,
    "USER_EXISTS": 409,
    "SOURCE_EXISTS": 409,
    "RUN_ALREADY_ACTIVE": 409,
    "RUN_NOT_HELD": 409,
    "RUN_NOT_QUEUED": 409,
    "SOURCE_DISABLED": 409,
    "REQUEST_INVALID": 422,
    "AUTH_THROTTLED": 429,
    "RAW_BLOB_CORRUPT": 500,
}
_STATUS_BY_CATEGORY = {"internal": 500, "storage": 503}


class ErrorDetail(BaseModel):
    """One failure, as in a collector-response-v1 ``errors[]`` item."""

    model_config = ConfigDict(extra="forbid")
    code: str
    category: str
    retryable: bool
    message: str
    suggested_action: str
    context: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error: ErrorDetail


_MEANINGS = {
    400: "Invalid input or a rule of the ledger refused it (the code says which).",
    401: "No valid session or API token (AUTH_REQUIRED).",
    403: "The role does not allow it (AUTH_FORBIDDEN), or a browser request lacked its CSRF token.",
    404: "No such source, run, asset, user or token.",
    405: "The method is not allowed on this path.",
    409: "Conflicts with the current state (exists already, a run is active, not held, ...).",
    422: "The request does not match the API's schema (REQUEST_INVALID, fields named in context).",
    429: "Too many wrong passwords for this user or address (AUTH_THROTTLED); Retry-After says when.",
    500: "An unexpected internal error (INTERNAL_ERROR), or a stored raw blob that does not rebuild to its "
    "exact bytes (RAW_BLOB_CORRUPT).",
    503: "The database is unavailable (STORAGE_UNAVAILABLE).",
}

#: The error responses every API route documents (``APIRouter(responses=ERROR_RESPONSES)``).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": meaning} for status, meaning in _MEANINGS.items()
}


def status_for(error: LedgerError) -> int:
    if error.code in _STATUS_BY_CODE:
        return _STATUS_BY_CODE[error.code]
    if error.code.endswith("_NOT_FOUND"):
        return 404
    return _STATUS_BY_CATEGORY.get(error.entry.category, 400)


def error_body(error: LedgerError) -> dict[str, Any]:
    return {"error": error.as_error()}


def error_headers(error: LedgerError) -> dict[str, str]:
    """Headers an error answer carries: the auth scheme with a 401, when to retry with a 429."""
    if error.code == "AUTH_REQUIRED":
        return {"WWW-Authenticate": "Bearer"}
    if "retry_after_s" in error.context:
        return {"Retry-After": str(int(error.context["retry_after_s"]))}
    return {}


def error_response(error: LedgerError) -> JSONResponse:
    return JSONResponse(
        error_body(error), status_code=status_for(error), headers=error_headers(error) or None
    )


def is_machine_path(path: str) -> bool:
    """Paths answered in JSON (or Prometheus text) rather than pages."""
    return path.startswith("/api/") or path in ("/metrics", "/healthz")


def install(app: FastAPI, *, html_handler: Any = None) -> None:
    """Register handlers turning every failure into the error body (or, for pages, an HTML page)."""

    async def on_ledger_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LedgerError)
        if html_handler is not None and not is_machine_path(request.url.path):
            response: Response = await html_handler(request, exc)
            return response
        return error_response(exc)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append({"field": loc, "message": str(err.get("msg", "invalid"))})
        message = "; ".join(f"{p['field']}: {p['message']}" for p in problems) or "invalid request"
        return await on_ledger_error(
            request,
            LedgerError("REQUEST_INVALID", message, context={"fields": [p["field"] for p in problems]}),
        )

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            error = LedgerError("NOT_FOUND", f"nothing at {request.url.path}")
        elif exc.status_code == 405:
            error = LedgerError("REQUEST_INVALID", f"{request.method} is not allowed on {request.url.path}")
            response = error_response(error)
            response.status_code = 405
            return response
        else:
            error = LedgerError("REQUEST_INVALID", str(exc.detail))
        return await on_ledger_error(request, error)

    app.add_exception_handler(LedgerError, on_ledger_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
