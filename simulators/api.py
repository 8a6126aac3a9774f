"""Control API of the simulator (JSON over HTTP under /sim/api/), for tests, scripts and the CLI.

    GET  /sim/api/health                       liveness
    POST /sim/api/pay                          {fiscalCode, noticeNumber, outcome?: ok|ko, psp?, wait?: seconds}
    GET  /sim/api/carts/<id>                   a cart and its notices
    POST /sim/api/carts/<id>/pay|refuse|abandon {psp?}: what the page buttons do
    GET  /sim/api/scenario                     active scenarios;  POST {name, count?, ...params}
    GET  /sim/api/calls?limit=&operation=      exchanges with the gateway (operation, time, outcome, fault)
    GET  /sim/api/receipts?fiscalCode=&noticeNumber=&iuv=&state=   modello-3 receipts, with the paSendRTV2
                                               body: the simulator's stand-in for the node's "Recupero ricevute"
    POST /sim/api/receipts/<id>/deliver        push a held (rt_never) or failed receipt now
    GET  /sim/api/psps                         the simulated PSPs (ids and channel credentials)
    POST /sim/api/reset                        forget everything (carts, tokens, receipts, calls, scenarios)
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Iterable
from urllib.parse import parse_qs

from simulators import psp, receipts, scenarios
from simulators.faults import NodeFault
from simulators.settlement import ACTIONS, CartAlreadySettled, CartNotFound, act
from simulators.store import Cart

if TYPE_CHECKING:
    from simulators.app import Simulator

PREFIX = "/sim/api"


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    raise TypeError(type(value).__name__)


STATUS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
          500: "Internal Server Error"}


def _json(start_response: Callable, status: int, data: Any) -> list[bytes]:
    payload = json.dumps(data, default=_default, ensure_ascii=False).encode("utf-8")
    start_response(f"{status} {STATUS[status]}", [("Content-Type", "application/json"),
                                                  ("Content-Length", str(len(payload))), ("Cache-Control", "no-store")])
    return [payload]


def cart_json(cart: Cart) -> dict[str, Any]:
    return {"id": cart.id, "kind": cart.kind, "state": cart.state, "idCart": cart.id_cart, "psp": cart.psp_id,
            "message": cart.message, "resultUrl": cart.result_url, "createdAt": cart.created_at,
            "returnUrls": {"returnOkUrl": cart.return_ok_url, "returnCancelUrl": cart.return_cancel_url,
                           "returnErrorUrl": cart.return_error_url, "returnWaitingUrl": cart.return_waiting_url},
            "total": cart.total,
            "notices": [{"fiscalCode": n.fiscal_code, "noticeNumber": n.notice_number, "iuv": n.iuv, "ccp": n.ccp,
                         "amount": n.amount, "companyName": n.company_name, "description": n.description,
                         "state": n.state, "paymentToken": n.payment_token, "faultCode": n.fault_code}
                        for n in cart.notices]}


def receipt_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"receiptId": row["receipt_id"], "kind": row["kind"], "cartId": row["cart_id"],
            "fiscalCode": row["fiscal_code"], "noticeNumber": row["notice_number"], "iuv": row["iuv"],
            "psp": row["psp_id"], "channel": row["channel_id"], "amount": row["amount"], "fee": row["fee"],
            "outcome": row["outcome"], "paymentDateTime": row["payment_datetime"], "state": row["state"],
            "attempts": row["attempts"], "deliveries": row["deliveries_done"], "lastResult": row["last_result"],
            "transfers": row["transfers"], "xml": row["body"]}


def _body(environ: dict[str, Any]) -> dict[str, Any]:
    raw_length = environ.get("CONTENT_LENGTH") or "0"
    length = int(raw_length) if raw_length.isdigit() else 0
    raw = environ["wsgi.input"].read(min(length, 1024 * 1024)) if length else b""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "body is not JSON") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object")
    return data


def _pay(sim: "Simulator", data: dict[str, Any]) -> tuple[int, Any]:
    fiscal_code, notice_number = data.get("fiscalCode"), data.get("noticeNumber")
    if not isinstance(fiscal_code, str) or not re.fullmatch(r"[0-9]{11}", fiscal_code):
        raise ApiError(400, "fiscalCode must be 11 digits")
    if not isinstance(notice_number, str) or not re.fullmatch(r"[0-9]{18}", notice_number):
        raise ApiError(400, "noticeNumber must be 18 digits")
    outcome = data.get("outcome")
    if outcome is None:
        outcome = "ko" if scenarios.get(sim.store, "refused") is not None else "ok"
    if str(outcome).lower() not in ("ok", "ko"):
        raise ApiError(400, "outcome must be ok or ko")
    try:
        wait = float(data.get("wait", 20))
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "wait must be a number of seconds") from exc
    try:
        result = psp.pay_notice(sim, fiscal_code, notice_number, outcome=str(outcome).upper(),
                                psp_id=data.get("psp"), wait_seconds=max(0.0, min(wait, 60.0)))
    except NodeFault as fault:
        raise ApiError(400, str(fault)) from fault
    return 200, result.as_dict()


def _cart_action(sim: "Simulator", cart_id: str, action: str, data: dict[str, Any]) -> tuple[int, Any]:
    try:
        result = act(sim, cart_id, action, data.get("psp"))
    except CartNotFound as exc:
        raise ApiError(404, f"unknown cart {cart_id}") from exc
    except CartAlreadySettled as already:
        return 409, {"error": f"cart already {already.cart.state}", "cart": cart_json(already.cart)}
    except ValueError as exc:
        raise ApiError(400, str(exc)) from exc
    cart = sim.store.cart(cart_id)
    return 200, {"state": result.state, "redirectUrl": result.redirect_url, "message": result.message,
                 "receipts": result.receipts, "details": result.details, "cart": cart_json(cart) if cart else None}


def _route(sim: "Simulator", method: str, parts: list[str], query: dict[str, list[str]],
           environ: dict[str, Any]) -> tuple[int, Any]:
    arg = lambda name: (query.get(name) or [None])[0]  # noqa: E731
    head = parts[0] if parts else ""
    if head == "health" and method == "GET":
        return 200, {"status": "ok", "gateway": sim.settings.gateway_url}
    if head == "pay" and method == "POST" and len(parts) == 1:
        return _pay(sim, _body(environ))
    if head == "carts" and len(parts) == 2 and method == "GET":
        cart = sim.store.cart(parts[1])
        if cart is None:
            raise ApiError(404, f"unknown cart {parts[1]}")
        return 200, cart_json(cart)
    if head == "carts" and len(parts) == 3 and parts[2] in ACTIONS and method == "POST":
        return _cart_action(sim, parts[1], parts[2], _body(environ))
    if head == "scenario" and len(parts) == 1:
        if method == "GET":
            return 200, {"active": scenarios.active(sim.store), "known": {k: v[1] for k, v in scenarios.SCENARIOS.items()}}
        if method in ("POST", "DELETE"):
            data = _body(environ) if method == "POST" else {"name": scenarios.CLEAR}
            name = data.pop("name", None)
            count = data.pop("count", None)
            if not isinstance(name, str):
                raise ApiError(400, "name is required")
            if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
                raise ApiError(400, "count must be a positive integer")
            try:
                scenarios.set_scenario(sim.store, name, data, count)
            except scenarios.UnknownScenario as exc:
                raise ApiError(400, str(exc)) from exc
            return 200, {"active": scenarios.active(sim.store)}
    if head == "calls" and method == "GET":
        limit = arg("limit")
        return 200, {"calls": sim.store.calls(int(limit) if limit and limit.isdigit() else 200, arg("operation"))}
    if head == "receipts" and len(parts) == 1 and method == "GET":
        states = [s for s in (arg("state") or "").split(",") if s]
        rows = sim.store.receipts(fiscal_code=arg("fiscalCode"), notice_number=arg("noticeNumber"), iuv=arg("iuv"),
                                  states=states or None)
        return 200, {"receipts": [receipt_json(r) for r in rows]}
    if head == "receipts" and len(parts) == 3 and parts[2] == "deliver" and method == "POST":
        if not receipts.release(sim, parts[1]):
            raise ApiError(409, f"receipt {parts[1]} is not held nor failed")
        return 200, {"receiptId": parts[1], "state": "PENDING"}
    if head == "psps" and method == "GET":
        return 200, {"psps": [{"idPSP": p.id, "idBrokerPSP": p.broker_id, "idChannel": p.channel_id,
                               "password": p.password, "name": p.name, "fee": p.fee} for p in sim.settings.psps]}
    if head == "reset" and method == "POST":
        sim.store.reset()
        return 200, {"status": "reset"}
    raise ApiError(404, f"no such control API call: {method} /{'/'.join(parts)}")


def app_for(sim: "Simulator") -> Callable[[dict[str, Any], Callable], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")[len(PREFIX):]
        parts = [p for p in path.split("/") if p]
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            status, data = _route(sim, environ.get("REQUEST_METHOD", "GET"), parts, query, environ)
        except ApiError as exc:
            return _json(start_response, exc.status, {"error": str(exc)})
        return _json(start_response, status, data)

    return app
