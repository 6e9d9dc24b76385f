"""The one place where errors become HTTP responses.

The API answers with RFC 9457 problem details carrying a machine-readable `code`;
the console answers with a plain page saying the same thing in words. Input values
are never echoed back: a rejected value might be a password or PHI.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.types import Message, Receive, Scope, Send

from perpetua.crypto.errors import KeyDestroyed
from perpetua.errors import PerpetuaError
from perpetua.observability.logging import get_logger

log = get_logger("perpetua.errors")

PROBLEM_TYPE = "https://perpetua.dev/problems/"

_HTTP_CODES = {
    400: ("bad_request", "The request could not be read"),
    401: ("not_authenticated", "Sign-in required"),
    403: ("forbidden", "Not permitted"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "The request is too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("invalid_input", "Invalid input"),
    500: ("internal_error", "Something went wrong on our side"),
}


def problem_body(
    status: int, code: str, title: str, detail: str | None, request_id: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + code,
        "title": title,
        "status": status,
        "code": code,
    }
    if detail and detail != title:
        body["detail"] = detail
    if request_id:
        body["request_id"] = request_id
    return body


def wants_json(path: str) -> bool:
    return path.startswith("/api/") or path in ("/healthz", "/readyz")


def render_error(
    request: Request,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    request_id = getattr(request.state, "request_id", None)
    if wants_json(request.url.path):
        body = problem_body(status, code, title, detail, request_id)
        body.update(extra or {})
        return JSONResponse(body, status, media_type="application/problem+json")
    templates = request.app.state.templates
    page: Response = templates.TemplateResponse(
        request,
        "error.html",
        {"status": status, "title": title, "detail": detail, "request_id": request_id},
        status_code=status,
    )
    return page


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PerpetuaError)

    # A console page that needs the sign-in finished first sends the browser to
    # the page that finishes it, rather than showing an error.
    redirect = getattr(exc, "console_redirect", None)
    if redirect and not wants_json(request.url.path):
        return RedirectResponse(redirect, status_code=303)
    extra: dict[str, Any] = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        extra["retry_after"] = retry_after
    response = render_error(request, exc.status, exc.code, exc.title, exc.detail, extra)
    if retry_after:
        response.headers["retry-after"] = str(retry_after)
    return response


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for error in exc.errors():
        location = [str(p) for p in error.get("loc", ()) if p != "body"]
        # Only where and what kind of problem, never the offered value.
        fields.append({"field": ".".join(location), "message": error.get("msg", "")})
    malformed = any(e.get("type") == "json_invalid" for e in exc.errors())
    if malformed:
        return render_error(
            request, 400, "malformed_json", "The request body is not valid JSON"
        )
    return render_error(
        request,
        422,
        "invalid_input",
        "Invalid input",
        "; ".join(f"{f['field']}: {f['message']}" for f in fields),
        {"errors": fields},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code, title = _HTTP_CODES.get(exc.status_code, ("error", "Request refused"))
    return render_error(request, exc.status_code, code, title)


async def _key_destroyed(request: Request, exc: Exception) -> Response:
    # A write sealed under a destroyed key: the practice's data was crypto-shredded
    # (its BAA terminated, or a retention bucket swept). Gone, not a server fault.
    return render_error(
        request,
        410,
        "data_keys_destroyed",
        "The encryption keys for this data were destroyed; it can no longer be "
        "written or read",
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PerpetuaError, _domain_error)
    app.add_exception_handler(KeyDestroyed, _key_destroyed)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


class LastResortMiddleware:
    """Turns any unexpected exception into a 500 without a stack trace, and logs only
    its type: an exception's message may quote data it was handling."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            request_id = scope.get("state", {}).get("request_id")
            log.error(
                "unhandled_exception",
                error_type=type(exc).__name__,
                request_id=request_id,
            )
            if started:
                return
            code, title = _HTTP_CODES[500]
            if wants_json(scope["path"]):
                payload = json.dumps(problem_body(500, code, title, None, request_id))
                response: Response = Response(
                    payload, 500, media_type="application/problem+json"
                )
            else:
                response = HTMLResponse(
                    f"<!doctype html><title>{title}</title><p>{title}. "
                    f"Reference: {request_id}</p>",
                    500,
                )
            await response(scope, receive, send)
