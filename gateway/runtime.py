"""What a request handler needs at hand: settings, the database, the node client. Built once per process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.settings import Settings
from storage.db import Database


@dataclass
class Runtime:
    settings: Settings
    database: Database
    extras: dict[str, Any] = field(default_factory=dict)  # node client etc., wired by later layers


def attach_runtime(spyne_app: Any, runtime: Runtime) -> None:
    """Every Spyne method context gets the runtime as ``ctx.udc``."""

    def _set(ctx: Any) -> None:
        ctx.udc = runtime

    spyne_app.event_manager.add_listener("method_call", _set)
