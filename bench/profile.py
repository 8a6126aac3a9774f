"""Where a request's time goes: cProfile of the gateway's WSGI app, called in-process with the bench envelopes.

The app object is the one a gunicorn worker runs (gateway.app.create_app), so the profile covers the
endpoint guard, Spyne, the domain and the database; only HTTP parsing by gunicorn is left out.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from bench.envelopes import Operation, fill
from bench.outcomes import classify

# Cumulative time of these calls = the phases of a Spyne request (path suffix, function name).
PHASES = (
    ("hardened parse (gateway.xml)", "gateway/xml.py", "parse_bytes"),
    ("Spyne: envelope parse + request deserialise", "spyne/server/_base.py", "get_in_object"),
    ("Spyne: envelope parse (generate_contexts)", "spyne/server/_base.py", "generate_contexts"),
    ("service method (domain + database)", "spyne/server/_base.py", "get_out_object"),
    ("Spyne: response serialise", "spyne/server/_base.py", "get_out_string_pull"),
    ("Spyne: response serialise", "spyne/server/_base.py", "get_out_string_push"),
)


def _area(path: str, name: str) -> str:
    where = path + " " + name
    for marker, area in (("gc.collect", "full GC (spyne.context calls gc.collect() at most once a second)"),
                         ("/spyne/", "Spyne"), ("/sqlalchemy/", "SQLAlchemy"),
                         ("psycopg", "psycopg (PostgreSQL driver)"),
                         ("sqlite3", "SQLite driver"), ("lxml", "lxml (C parser/serialiser)"),
                         ("/structlog/", "logging (structlog)"), ("/logging/", "logging (structlog)"),
                         ("/gateway/", "gateway + storage code"), ("/storage/", "gateway + storage code"),
                         ("/prometheus_client/", "metrics"), ("/argon2", "password hashing"),
                         ("hashlib", "password hashing"), ("_hashlib", "password hashing")):
        if marker in where:
            return area
    return "Python stdlib / other"


@contextmanager
def quiet_logs(log_file: Path) -> Iterator[None]:
    """configure_logging binds sys.stderr when the app is built: build and call it inside this block."""
    saved = sys.stderr
    with open(log_file, "a") as sink:
        sys.stderr = sink
        try:
            yield
        finally:
            sys.stderr = saved


def _environ(operation: Operation, body: bytes) -> dict[str, Any]:
    return {"REQUEST_METHOD": "POST", "PATH_INFO": operation.path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_TYPE": "text/xml; charset=utf-8",
            "CONTENT_LENGTH": str(len(body)), "HTTP_SOAPACTION": f'"{operation.soap_action}"',
            "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False, "REMOTE_ADDR": "127.0.0.1"}


def build_app(settings: Any) -> Any:
    from gateway.app import create_app

    return create_app(settings)


def profile_operation(app: Any, operation: Operation, values: Callable[[], dict[str, str]], *, seconds: float,
                      top: int = 12) -> dict[str, Any]:
    status_holder: dict[str, str] = {}

    def start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
        status_holder["status"] = status
        return lambda _data: None

    def call() -> bytes:
        body = fill(operation, values())
        return b"".join(app(_environ(operation, body), start_response))

    for _ in range(20):  # warm caches, pools, lazy imports before measuring
        answer = call()
    outcome = classify(int(status_holder["status"].split()[0]), answer)
    profiler = cProfile.Profile()
    count = 0
    cpu_start = time.process_time()
    deadline = time.monotonic() + seconds
    profiler.enable()
    while time.monotonic() < deadline:
        call()
        count += 1
    profiler.disable()
    cpu = time.process_time() - cpu_start
    stats = pstats.Stats(profiler)
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in stats.stats.values()) or 1e-9  # type: ignore[attr-defined]
    areas: dict[str, float] = {}
    phases: dict[str, float] = {}
    rows = []
    own = []
    for (path, _line, name), (_cc, calls, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        own.append((tt, calls, _short(path, name)))
        area = _area(path, name)
        areas[area] = areas.get(area, 0.0) + tt
        for label, suffix, function in PHASES:
            if path.endswith(suffix) and name == function:
                phases[label] = phases.get(label, 0.0) + ct
        rows.append((ct, calls, _short(path, name)))
    rows.sort(reverse=True)
    own.sort(reverse=True)
    return {
        "requests": count,
        "outcome": outcome,
        "us_per_request": round(cpu / max(count, 1) * 1e6, 1),
        "by_area": {k: round(v / total, 4) for k, v in sorted(areas.items(), key=lambda item: -item[1])},
        "phases": {k: round(v / total, 4) for k, v in phases.items()},
        "top_cumulative": [{"function": f, "share": round(ct / total, 4),
                            "calls_per_request": round(n / max(count, 1), 1)} for ct, n, f in rows[:top]],
        "top_own": [{"function": f, "share": round(tt / total, 4), "calls_per_request": round(n / max(count, 1), 2),
                     "ms_per_call": round(tt / max(n, 1) * 1000, 3)} for tt, n, f in own[:top]],
    }


def _short(path: str, name: str) -> str:
    for marker in ("site-packages/", str(Path(__file__).resolve().parents[1]) + "/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{name}" if path != "~" else name
