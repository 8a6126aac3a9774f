"""Per-ente SIL passwords: scrypt hashes, constant-time checks, and a small verified-password cache.

scrypt costs ~30 ms by design; SOAP calls authenticate on every request, so a successful check is
remembered in-process for a few minutes under an HMAC of (stored hash, password) — never the password
itself. Changing the password changes the stored hash and so invalidates the cache entry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time

_N, _R, _P = 2**14, 8, 1
_CACHE_TTL_SECONDS = 300
_CACHE_MAX = 4096
_cache_key = secrets.token_bytes(32)
_cache: dict[bytes, float] = {}
_lock = threading.Lock()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "scrypt${}${}${}${}${}".format(_N, _R, _P, base64.b64encode(salt).decode(),
                                          base64.b64encode(digest).decode())


def _scrypt_matches(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        actual = hashlib.scrypt(password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def verify_password(password: str | None, stored: str) -> bool:
    # MyPay strips both values and treats blank as missing; a missing password never matches here.
    if password is None or not password.strip() or not stored:
        return False
    password = password.strip()
    key = hmac.new(_cache_key, stored.encode() + b"\0" + password.encode(), hashlib.sha256).digest()
    now = time.monotonic()
    with _lock:
        expiry = _cache.get(key)
        if expiry is not None and expiry > now:
            return True
    if not _scrypt_matches(password, stored):
        return False
    with _lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = now + _CACHE_TTL_SECONDS
    return True


def mypay_cart_hash(secret: str, fiscal_code: str) -> str:
    """MyPay's per-element password of paaSILInviaCarrelloDovuti (compatibility mode only)."""
    return hashlib.sha256(f"paaSILInviaCarrelloDovuti-{secret}-{fiscal_code}".encode()).hexdigest()
