"""Structured logging: structlog, JSON in production, readable in development, with a request id.

Every log line of a request carries ``request_id``, and, once known, ``operation`` and ``cod_ipa_ente``
(bound through ``bind_request``). Secrets and base64 payloads are never logged: fields whose name says
they are one are masked by ``_redact``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

_SECRET_KEYS = {"password", "passwordmypivot", "secret", "token", "authorizationtoken", "station_password",
                "secret_key", "dovuti", "dovuto", "rt", "rpt", "pagati", "base64zipavviso"}


_secret_key_cache: dict[str, bool] = {}


def _is_secret(key: str) -> bool:
    secret = _secret_key_cache.get(key)
    if secret is None:
        secret = key.lower().replace("-", "_") in _SECRET_KEYS
        if len(_secret_key_cache) < 4096:  # field names are few; never let odd ones grow it without bound
            _secret_key_cache[key] = secret
    return secret


def _redact(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in [key for key in event if _is_secret(key)]:
        event[key] = "***"
    return event


def configure_logging(log_format: str = "console", level: str = "INFO") -> None:
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
        structlog.processors.format_exc_info,
    ]
    renderer: Any = (structlog.processors.JSONRenderer() if log_format == "json"
                     else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=processors + [renderer],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def new_request_id(incoming: str | None = None) -> str:
    """A caller-supplied X-Request-ID is kept when it looks sane; otherwise a new one is made."""
    if incoming and len(incoming) <= 64 and incoming.replace("-", "").isalnum():
        return incoming
    return os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID per request


def start_request(request_id: str, **fields: Any) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id, **fields)


def bind_request(**fields: Any) -> None:
    structlog.contextvars.bind_contextvars(**{k: v for k, v in fields.items() if v is not None})


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
