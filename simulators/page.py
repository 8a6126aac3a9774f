"""The payment page at /sim/pagamento/<cart id>: what WISP / Checkout show a payer (no JavaScript needed).

GET shows the cart and a choice of PSP; POST with action pay / refuse / abandon settles it through
``settlement.act`` and answers 303 to the ente's return URL, or a message page when the payment failed.
With a success / refused / abandoned scenario set, GET settles the cart by itself (scripted tests).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape

from simulators import scenarios
from simulators.settlement import CartAlreadySettled, act

if TYPE_CHECKING:
    from simulators.app import Simulator

TEMPLATES = Path(__file__).resolve().parent / "templates"
PREFIX = "/sim/pagamento/"


def euro(value: Decimal | str | None) -> str:
    """1234.5 → "1.234,50 €" (Italian grouping and decimal comma)."""
    if value is None:
        return "-"
    text = f"{Decimal(value):,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")
    return f"{text} €"


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(default=True))
    env.filters["euro"] = euro
    env.filters["euro_text"] = euro
    return env


ENV = environment()


def render(start_response: Callable, template: str, status: str = "200 OK", **context: Any) -> list[bytes]:
    payload = ENV.get_template(template).render(**context).encode("utf-8")
    start_response(status, [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(payload))),
                            ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                            ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
                                                        "form-action 'self' http: https:")])
    return [payload]


def redirect(start_response: Callable, url: str) -> list[bytes]:
    start_response("303 See Other", [("Location", url), ("Content-Length", "0"), ("Cache-Control", "no-store")])
    return [b""]


HEADINGS = {"PAID": "Pagamento eseguito / Payment completed", "REFUSED": "Pagamento rifiutato / Payment refused",
            "ABANDONED": "Pagamento annullato / Payment cancelled", "ERROR": "Pagamento non riuscito / Payment failed",
            "PROCESSING": "Pagamento in corso / Payment in progress"}


def _settled(start_response: Callable, state: str, message: str | None, url: str | None) -> list[bytes]:
    return render(start_response, "outcome.html", heading=HEADINGS.get(state, state), error=state == "ERROR",
                  message=message or HEADINGS.get(state, state), next_url=url)


def _settle(sim: "Simulator", start_response: Callable, cart_id: str, action: str, psp_id: str | None) -> list[bytes]:
    try:
        result = act(sim, cart_id, action, psp_id)
    except CartAlreadySettled as already:
        cart = already.cart
        return _settled(start_response, cart.state, cart.message, cart.result_url)
    except ValueError:
        return render(start_response, "outcome.html", "400 Bad Request", heading="Richiesta non valida / Bad request",
                      error=True, message="Scelta non valida. / Invalid choice.", next_url=PREFIX + cart_id)
    if result.state == "ERROR" or not result.redirect_url:
        return _settled(start_response, result.state, result.message, result.redirect_url)
    return redirect(start_response, result.redirect_url)


def app_for(sim: "Simulator") -> Callable[[dict[str, Any], Callable], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        cart_id = environ.get("PATH_INFO", "")[len(PREFIX):].strip("/")
        if not cart_id.isalnum() or len(cart_id) > 64:
            return _not_found(start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0) if (environ.get("CONTENT_LENGTH") or "0").isdigit() else 0
            form = parse_qs(environ["wsgi.input"].read(min(length, 16384)).decode("utf-8", "replace"))
            action = (form.get("action") or [""])[0]
            psp_id = (form.get("psp") or [None])[0]
            if sim.store.cart(cart_id) is None:
                return _not_found(start_response)
            return _settle(sim, start_response, cart_id, action, psp_id)
        cart = sim.store.cart(cart_id)
        if cart is None:
            return _not_found(start_response)
        if cart.state != "CREATED":
            return _settled(start_response, cart.state, cart.message, cart.result_url)
        automatic = scenarios.auto_outcome(sim.store)
        if automatic is not None:
            return _settle(sim, start_response, cart_id, automatic, None)
        return render(start_response, "payment.html", cart=cart, psps=sim.settings.psps, action_url=PREFIX + cart_id)

    return app


def _not_found(start_response: Callable) -> list[bytes]:
    return render(start_response, "outcome.html", "404 Not Found", heading="Pagina non trovata / Not found",
                  error=True, message="Carrello sconosciuto. / Unknown cart.", next_url=None)
