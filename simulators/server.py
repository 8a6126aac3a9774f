"""Run the simulator alone under gunicorn (gthread: the gateway calls it while it calls the gateway)."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from simulators.app import create_app
from simulators.config import SimSettings


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


def serve(settings: SimSettings, *, host: str, port: int, workers: int = 1, threads: int = 8) -> None:
    app = create_app(settings)
    _Gunicorn(app, {"bind": f"{host}:{port}", "workers": workers, "worker_class": "gthread", "threads": threads,
                    "preload_app": True, "timeout": 90, "accesslog": None, "loglevel": "warning"}).run()
