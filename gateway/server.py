"""Production server: gunicorn with the app built once (``preload``), sync workers, one per core.

Each worker re-creates its database connections after the fork (a pooled connection must never be
shared between processes). Prometheus counters are aggregated across workers in a shared directory.
"""

from __future__ import annotations

import atexit
import gc
import os
import shutil
import tempfile
from typing import Any

from gunicorn.app.base import BaseApplication

from gateway.settings import Settings


class _Gunicorn(BaseApplication):
    def __init__(self, app: Any, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application


def build_wsgi(settings: Settings, with_simulator: bool = False) -> Any:
    from gateway.app import create_app

    app = create_app(settings)
    if with_simulator:
        from simulators.app import mount_into

        mount_into(app, settings)
    return app


def serve(settings: Settings, *, host: str, port: int, workers: int, threads: int = 1,
          with_simulator: bool = False, ready_file: str | None = None) -> None:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Counters of all workers live in this folder for the life of the server, then go with it.
        metrics_dir = tempfile.mkdtemp(prefix="ente-gateway-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        master = os.getpid()
        atexit.register(lambda: os.getpid() == master and shutil.rmtree(metrics_dir, ignore_errors=True))
    app = build_wsgi(settings, with_simulator)

    # Objects built at preload (WSDLs, schemas, Spyne apps) are shared copy-on-write with the workers;
    # keeping them out of the collector's generations stops it from touching (and copying) their pages.
    gc.freeze()

    def post_fork(_server: Any, _worker: Any) -> None:
        app.runtime.database.after_fork()

    def child_exit(_server: Any, worker: Any) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread" if threads > 1 else "sync",
        "threads": threads,
        "preload_app": True,
        "timeout": 60,
        "graceful_timeout": 20,
        "keepalive": 5,
        "post_fork": post_fork,
        "child_exit": child_exit,
        "accesslog": None,
        "loglevel": "warning",
    }
    _Gunicorn(app, options).run()
