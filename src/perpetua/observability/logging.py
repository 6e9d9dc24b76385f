"""Structured JSON logs, one line per event, scrubbed before they are written.

Callers log facts about the service (route, status, timing, ids), never values a user
typed. As a second line of defence, every event passes a scrubber that drops fields
whose names suggest secrets and masks anything shaped like an email address or a
bearer token, so a mistake in a caller still cannot leak them.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(
    r"pass(word)?|secret|token|authorization|cookie|session|csrf|body|email|key",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[^\s@\"'<>]+@[^\s@\"'<>]+\.[A-Za-z]{2,}")
_BEARER = re.compile(r"(?i)bearer\s+\S+")
_LONG_TOKEN = re.compile(r"\b[A-Za-z0-9_\-]{40,}\b")
_SAFE_KEYS = {"event", "level", "timestamp", "logger", "request_id", "route"}


def _mask(value: str) -> str:
    value = _EMAIL.sub("[email]", value)
    value = _BEARER.sub("Bearer [token]", value)
    return _LONG_TOKEN.sub("[token]", value)


def scrub(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event):
        if key in _SAFE_KEYS and key != "event":
            continue
        if _SECRET_KEYS.search(key) and key not in _SAFE_KEYS:
            event[key] = "[removed]"
            continue
        value = event[key]
        if isinstance(value, str):
            event[key] = _mask(value)
    return event


def hash_ip(ip: str | None) -> str | None:
    """A short keyed-free digest: enough to correlate one client's lines, not to
    recover the address from a log."""
    if not ip:
        return None
    return hashlib.sha256(b"perpetua-log-ip:" + ip.encode()).hexdigest()[:12]


def configure_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        scrub,
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # Looked up at each call, not bound once: whoever replaces stderr (a
        # supervisor, a test's capture) gets the lines from then on.
        logger_factory=lambda *_: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )

    # Libraries log through the standard library; route them through the same
    # scrubber and format, and keep uvicorn's own access log off (it writes full
    # URLs, which may hold one-time tokens).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *processors,
                renderer,
            ],
            foreign_pre_chain=[structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("uvicorn.access").propagate = False


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
