"""Signed, expiring URLs and tokens (itsdangerous): downloads, uploads, payment landing pages.

A token binds a purpose ("download", "upload", ...) to a payload; a token made for one purpose never
validates for another, and every check is done against the ente that asks.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from gateway.settings import Settings


class InvalidToken(ValueError):
    """Token forged, for another purpose, or expired."""


def _serializer(settings: Settings, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.signing_key, salt=f"ente-gateway:{purpose}")


def make_token(settings: Settings, purpose: str, payload: Any) -> str:
    return _serializer(settings, purpose).dumps(payload)


def read_token(settings: Settings, purpose: str, token: str | None, max_age_seconds: int) -> Any:
    if not token:
        raise InvalidToken("missing token")
    try:
        return _serializer(settings, purpose).loads(token, max_age=max_age_seconds)
    except SignatureExpired as exc:
        raise InvalidToken("token expired") from exc
    except BadSignature as exc:
        raise InvalidToken("bad token") from exc


def public_url(settings: Settings, path: str, **query: Any) -> str:
    url = settings.public_url.rstrip("/") + path
    params = {k: v for k, v in query.items() if v is not None}
    return url + ("?" + urlencode(params) if params else "")
