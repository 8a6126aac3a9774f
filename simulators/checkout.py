"""Checkout: ``POST /sim/checkout/v1|v2/carts`` (checkout_v1.json / v2) and the settlement of its carts.

A valid cart answers 302 to the payment page; an invalid one 400 ProblemJson (RFC 7807). Paying a cart
runs modello 3 for every notice through the chosen PSP (verify, activate = paGetPaymentV2, then one
sendPaymentOutcomeV2 for all tokens); receipts are delivered asynchronously, the browser goes to
returnOkUrl at once. A PAA fault gives the payer a specific message and the way to returnErrorUrl.
"""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Iterable

from simulators import modello3, scenarios
from simulators.config import Psp
from simulators.faults import NodeFault
from simulators.settlement import SETTLERS, Settlement
from simulators.store import Cart, NewNotice

if TYPE_CHECKING:
    from simulators.app import Simulator

# What the payer reads when the EC (or the node) refuses a notice; Italian with English alongside.
MESSAGES: dict[str, str] = {
    "PAA_PAGAMENTO_DUPLICATO": "L'avviso risulta già pagato. / This notice has already been paid.",
    "PAA_PAGAMENTO_SCADUTO": "L'avviso è scaduto e non è più pagabile. / This notice has expired and can no longer "
                             "be paid.",
    "PAA_PAGAMENTO_ANNULLATO": "L'avviso è stato annullato dall'ente. / This notice was cancelled by the creditor.",
    "PAA_PAGAMENTO_SCONOSCIUTO": "L'avviso non è stato trovato presso l'ente. / The creditor does not know this "
                                 "notice.",
    "PAA_PAGAMENTO_IN_CORSO": "Un pagamento per questo avviso è già in corso. / A payment of this notice is already "
                              "in progress.",
    "PPT_PAGAMENTO_IN_CORSO": "Un pagamento per questo avviso è già in corso. / A payment of this notice is already "
                              "in progress.",
    "PPT_STAZIONE_INT_PA_TIMEOUT": "L'ente non ha risposto in tempo. Riprova più tardi. / The creditor did not "
                                   "answer in time. Please try again later.",
    "PPT_STAZIONE_INT_PA_IRRAGGIUNGIBILE": "L'ente non è raggiungibile. Riprova più tardi. / The creditor cannot be "
                                           "reached. Please try again later.",
}
GENERIC = "Non è stato possibile completare il pagamento ({code}). / The payment could not be completed ({code})."


def message_for(fault: NodeFault) -> str:
    code = fault.original_code or fault.code
    return MESSAGES.get(code, GENERIC.format(code=code))


# --- POST /carts --------------------------------------------------------------------------------------
class Invalid(ValueError):
    pass


_DIGITS = re.compile(r"[0-9]+")


def _text(item: dict[str, Any], name: str, where: str, max_len: int = 140, required: bool = True) -> str | None:
    value = item.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{where}.{name} is required")
    if len(value) > max_len:
        raise Invalid(f"{where}.{name} is longer than {max_len} characters")
    return value


def parse_cart(body: Any, version: int) -> dict[str, Any]:
    """Validate a CartRequest; returns the normalised request or raises Invalid with a precise detail."""
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object (CartRequest)")
    notices = body.get("paymentNotices")
    if not isinstance(notices, list) or not 1 <= len(notices) <= 5:
        raise Invalid("paymentNotices must hold from 1 to 5 notices")
    parsed: list[NewNotice] = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(notices):
        where = f"paymentNotices[{index}]"
        if not isinstance(item, dict):
            raise Invalid(f"{where} must be an object")
        notice_number = item.get("noticeNumber")
        if not isinstance(notice_number, str) or len(notice_number) != 18 or not _DIGITS.fullmatch(notice_number):
            raise Invalid(f"{where}.noticeNumber must be 18 digits")
        fiscal_code = item.get("fiscalCode")
        if not isinstance(fiscal_code, str) or len(fiscal_code) != 11 or not _DIGITS.fullmatch(fiscal_code):
            raise Invalid(f"{where}.fiscalCode must be 11 digits")
        amount = item.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise Invalid(f"{where}.amount must be an integer number of euro cents, at least 1")
        if (fiscal_code, notice_number) in seen:
            raise Invalid(f"{where} repeats a notice of the same cart")
        seen.add((fiscal_code, notice_number))
        parsed.append(NewNotice(fiscal_code=fiscal_code, notice_number=notice_number,
                                iuv=modello3.iuv_of(notice_number), amount=Decimal(amount) / 100,
                                company_name=_text(item, "companyName", where),
                                description=_text(item, "description", where)))
    urls = body.get("returnUrls")
    if not isinstance(urls, dict):
        raise Invalid("returnUrls is required")
    names = ["returnOkUrl", "returnCancelUrl", "returnErrorUrl"] + (["returnWaitingUrl"] if version >= 2 else [])
    for name in names:
        _text(urls, name, "returnUrls", max_len=2048)
    email = body.get("emailNotice")
    if email is not None and (not isinstance(email, str) or "@" not in email or len(email) > 256):
        raise Invalid("emailNotice must be an e-mail address")
    id_cart = body.get("idCart")
    if id_cart is not None and (not isinstance(id_cart, str) or len(id_cart) > 64):
        raise Invalid("idCart must be a string of at most 64 characters")
    all_ccp = body.get("allCCP")
    if all_ccp is not None and not isinstance(all_ccp, bool) and all_ccp not in ("true", "false"):
        raise Invalid("allCCP must be a boolean")
    return {"notices": parsed, "urls": urls, "email": email, "id_cart": id_cart}


def _problem(start_response: Callable, status: int, title: str, detail: str, instance: str) -> list[bytes]:
    payload = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail,
                          "instance": instance}).encode()
    reason = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large",
              500: "Internal Server Error"}[status]
    start_response(f"{status} {reason}", [("Content-Type", "application/problem+json"),
                                          ("Content-Length", str(len(payload)))])
    return [payload]


def carts_app(sim: "Simulator", version: int) -> Callable[[dict[str, Any], Callable], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "POST":
            return _problem(start_response, 405, "Method Not Allowed", "POST a CartRequest", path)
        started = time.monotonic()
        delay = scenarios.take(sim.store, "node_timeout", "carts")
        if delay is not None:
            time.sleep(float(delay.get("seconds", 25)))
        forced = scenarios.take(sim.store, "node_fault", "carts")
        if forced is not None:
            code = forced.get("code", "PPT_SYSTEM_ERROR")
            sim.store.record_call("from_gateway", "POST /carts", "HTTP 500", fault_code=code)
            return _problem(start_response, 500, "Internal Server Error", f"{code}: scenario node_fault", path)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > 256 * 1024:
            return _problem(start_response, 413, "Payload Too Large", "a CartRequest is small", path)
        raw = environ["wsgi.input"].read(length) if length > 0 else b""
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
            cart = parse_cart(body, version)
        except (ValueError, UnicodeDecodeError) as exc:
            detail = str(exc) if isinstance(exc, Invalid) else "the body is not valid JSON"
            sim.store.record_call("from_gateway", "POST /carts", "HTTP 400", detail=detail,
                                  duration_ms=int((time.monotonic() - started) * 1000))
            return _problem(start_response, 400, "Bad Request", detail, path)
        urls = cart["urls"]
        cart_id = sim.store.create_cart(
            "checkout", cart["notices"], return_ok_url=urls["returnOkUrl"], return_cancel_url=urls["returnCancelUrl"],
            return_error_url=urls["returnErrorUrl"], return_waiting_url=urls.get("returnWaitingUrl"),
            id_cart=cart["id_cart"], email=cart["email"])
        sim.store.record_call("from_gateway", "POST /carts", "HTTP 302", subject=cart_id,
                              detail=f"idCart={cart['id_cart']} notices={len(cart['notices'])}",
                              duration_ms=int((time.monotonic() - started) * 1000))
        location = f"{sim.settings.public_url}/pagamento/{cart_id}"
        start_response("302 Found", [("Location", location), ("Content-Length", "0")])
        return [b""]

    return app


# --- settlement ---------------------------------------------------------------------------------------
def settle(sim: "Simulator", cart: Cart, action: str, psp: Psp) -> Settlement:
    if action == "abandon":
        return Settlement("ABANDONED", cart.return_cancel_url, "Pagamento annullato. / Payment cancelled.")
    if action == "refuse":
        return Settlement("REFUSED", cart.return_error_url, "Pagamento rifiutato. / Payment refused.")
    creds = modello3.Credentials.of(psp)
    tokens: list[str] = []
    current = None
    try:
        verified = []
        for notice in cart.notices:
            current = notice
            verified.append(modello3.verify(sim, creds, notice.fiscal_code, notice.notice_number or ""))
        for notice, verification in zip(cart.notices, verified):
            current = notice
            activation = modello3.activate(sim, creds, notice.fiscal_code, notice.notice_number or "",
                                           verification.amount, cart_id=cart.id)
            tokens.append(activation.token)
            sim.store.update_notice(notice.id, payment_token=activation.token, amount=activation.amount)
        current = None
        issued = modello3.send_outcome(sim, creds, tokens, "OK", kind="checkout")
    except NodeFault as fault:
        if tokens:
            modello3.cancel(sim, tokens)
        if current is not None:
            sim.store.update_notice(current.id, state="ERROR", fault_code=fault.original_code or fault.code)
        return Settlement("ERROR", cart.return_error_url, message_for(fault),
                          details={"fault": fault.as_dict(),
                                   "noticeNumber": current.notice_number if current else None})
    for notice in cart.notices:
        sim.store.update_notice(notice.id, state="PAID")
    return Settlement("PAID", cart.return_ok_url, "Pagamento eseguito. / Payment completed.", receipts=issued)


SETTLERS["checkout"] = settle
