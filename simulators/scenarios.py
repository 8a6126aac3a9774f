"""Behaviour flags of the simulator ("scenarios"), kept in its database so every worker process sees them.

Set them with ``POST /sim/api/scenario {"name": ..., "count": n?, ...params}`` or
``ente-gateway sim scenario NAME [--count N] [--param k=v]``; ``POST /sim/api/reset`` or the name
``clear`` removes them all. ``count`` is how many uses the flag lasts (default below); without it the flag
stays until cleared.

Readers call ``get`` (peek) or ``take`` (consume one use, atomically across processes).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, insert, or_, select, update

from simulators.store import Store, sim_scenario, utcnow

# name -> (default count, description). None: until cleared.
SCENARIOS: dict[str, tuple[int | None, str]] = {
    "success": (None, "payment pages settle by themselves as paid (first PSP) and send the browser to "
                      "returnOkUrl; /api/pay defaults to outcome ok"),
    "refused": (None, "payment pages settle by themselves as refused (returnErrorUrl, no receipt); "
                      "/api/pay defaults to outcome ko"),
    "abandoned": (None, "payment pages settle by themselves as abandoned (returnCancelUrl)"),
    "rt_late": (None, "receipts are first delivered after `seconds` (default 5) instead of at once"),
    "rt_never": (None, "receipts are stored but not pushed (state HELD); GET /sim/api/receipts and "
                       "POST /sim/api/receipts/<id>/deliver expose them"),
    "rt_twice": (None, "every receipt is delivered twice"),
    "node_timeout": (1, "the simulator answers the gateway's next call (optional `operation`: carts, "
                        "nodoInviaRPT, nodoInviaCarrelloRPT, ...) only after `seconds` (default 25)"),
    "node_fault": (1, "the node answers the gateway's next call (optional `operation`) with fault `code` "
                      "(default PPT_SYSTEM_ERROR); POST /carts answers HTTP 500 ProblemJson"),
    "station_timeout": (1, "the node waits only `seconds` (default 0.001) for the gateway's next "
                           "verify/getPayment answer: PSPs get PPT_STAZIONE_INT_PA_TIMEOUT"),
    "revised_report": (None, "flag for the reporting module: the next flow is a revision"),
}
EXCLUSIVE = ("success", "refused", "abandoned")  # one automatic page outcome at a time
CLEAR = "clear"


class UnknownScenario(ValueError):
    pass


def set_scenario(store: Store, name: str, params: dict[str, Any] | None = None, count: int | None = None) -> None:
    if name == CLEAR:
        clear(store)
        return
    if name not in SCENARIOS:
        raise UnknownScenario(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}, {CLEAR}")
    remaining = count if count is not None else SCENARIOS[name][0]
    with store.begin() as conn:
        names = [name] + ([n for n in EXCLUSIVE if n != name] if name in EXCLUSIVE else [])
        conn.execute(delete(sim_scenario).where(sim_scenario.c.name.in_(names)))
        conn.execute(insert(sim_scenario).values(name=name, params=json.dumps(params or {}), remaining=remaining,
                                                 set_at=utcnow()))


def clear(store: Store, name: str | None = None) -> None:
    with store.begin() as conn:
        query = delete(sim_scenario)
        conn.execute(query if name is None else query.where(sim_scenario.c.name == name))


def active(store: Store) -> list[dict[str, Any]]:
    with store.begin() as conn:
        found = conn.execute(select(sim_scenario).where(or_(sim_scenario.c.remaining.is_(None),
                                                            sim_scenario.c.remaining > 0))
                             .order_by(sim_scenario.c.name)).mappings().all()
    return [{"name": r["name"], "params": json.loads(r["params"]), "remaining": r["remaining"],
             "setAt": r["set_at"].isoformat()} for r in found]


def _applies(params: dict[str, Any], operation: str | None) -> bool:
    wanted = params.get("operation")
    return not wanted or operation is None or wanted == operation


def get(store: Store, name: str, operation: str | None = None) -> dict[str, Any] | None:
    """The flag's params if it is set (and concerns ``operation``), without using it up."""
    with store.begin() as conn:
        row = conn.execute(select(sim_scenario).where(sim_scenario.c.name == name)).mappings().first()
    if row is None or (row["remaining"] is not None and row["remaining"] <= 0):
        return None
    params = json.loads(row["params"])
    return params if _applies(params, operation) else None


def take(store: Store, name: str, operation: str | None = None) -> dict[str, Any] | None:
    """Like ``get`` but uses up one of the flag's uses; exactly one caller wins the last use."""
    for _ in range(20):
        with store.begin() as conn:
            row = conn.execute(select(sim_scenario).where(sim_scenario.c.name == name)).mappings().first()
            if row is None:
                return None
            params = json.loads(row["params"])
            if not _applies(params, operation):
                return None
            remaining = row["remaining"]
            if remaining is None:
                return params
            if remaining <= 0:
                return None
            won = conn.execute(update(sim_scenario).where(sim_scenario.c.name == name,
                                                          sim_scenario.c.remaining == remaining)
                               .values(remaining=remaining - 1)).rowcount == 1
        if won:
            return params
    return None


def auto_outcome(store: Store) -> str | None:
    """The automatic outcome of payment pages: "pay", "refuse", "abandon" or None (the payer decides)."""
    for name, action in (("success", "pay"), ("refused", "refuse"), ("abandoned", "abandon")):
        if get(store, name) is not None:
            return action
    return None
