"""``ente-gateway worker``: runs the job queue and schedules the periodic work, until SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import threading

from gateway import jobs, logs
from gateway.settings import Settings
from storage.db import Database

log = logs.get_logger(__name__)


def load_handlers() -> None:
    """Import the modules that register job handlers (each capability owns its jobs)."""
    import importlib

    for module in ("gateway.payments.tasks", "gateway.payments.expiry", "gateway.node.tasks",
                   "gateway.flussi.tasks", "gateway.rendicontazione.tasks"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


# Recurring work registered by capabilities' tasks modules: each function(database) schedules jobs or
# does a small sweep; the worker runs them every 30 s.
PERIODIC: list = []


def schedule_periodic(database: Database) -> None:
    for function in PERIODIC:
        try:
            function(database)
        except Exception:  # noqa: BLE001 - one failing sweep must not stop the others
            log.exception("periodic task failed", task=getattr(function, "__name__", str(function)))


def run(settings: Settings, *, once: bool = False, stop: threading.Event | None = None) -> None:
    database = Database(settings.database_url)
    load_handlers()
    if once:
        schedule_periodic(database)
        while jobs.run_one(database, settings=settings):
            pass
        return
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    jobs.run_worker(database, stop=stop, periodic=schedule_periodic, settings=settings)
