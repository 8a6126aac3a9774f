"""What happens when the payer acts on a cart: the settler registry and the one entry point, ``act``.

``SETTLERS[kind](sim, cart, action, psp) -> Settlement`` is called with action "pay", "refuse" or "abandon"
once per cart (the cart is claimed CREATED → PROCESSING first, so double submits and concurrent workers
cannot settle it twice). "checkout" is registered by ``simulators.checkout``; the legacy module registers
"rpt". A settler never raises for business outcomes: it returns the final state, where the browser goes,
and the message the payer reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from simulators.config import Psp
from simulators.store import Cart

if TYPE_CHECKING:
    from simulators.app import Simulator

ACTIONS = ("pay", "refuse", "abandon")
FINAL_STATES = {"pay": "PAID", "refuse": "REFUSED", "abandon": "ABANDONED"}


@dataclass
class Settlement:
    state: str  # PAID | REFUSED | ABANDONED | ERROR
    redirect_url: str | None
    message: str
    receipts: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


Settler = Callable[["Simulator", Cart, str, Psp], Settlement]
SETTLERS: dict[str, Settler] = {}


class CartNotFound(LookupError):
    pass


class CartAlreadySettled(RuntimeError):
    def __init__(self, cart: Cart) -> None:
        super().__init__(f"cart {cart.id} is {cart.state}")
        self.cart = cart


def act(sim: "Simulator", cart_id: str, action: str, psp_id: str | None = None) -> Settlement:
    """Settle a cart once; CartAlreadySettled carries the cart when someone did it before."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}")
    cart = sim.store.cart(cart_id)
    if cart is None:
        raise CartNotFound(cart_id)
    psp = sim.settings.psp(psp_id)
    if psp is None:
        raise ValueError(f"unknown PSP {psp_id}")
    settler = SETTLERS.get(cart.kind)
    if settler is None:
        raise LookupError(f"no settler for carts of kind {cart.kind!r}")
    if not sim.store.claim_cart(cart_id, psp.id):
        raise CartAlreadySettled(sim.store.cart(cart_id) or cart)
    try:
        result = settler(sim, cart, action, psp)
    except Exception:
        sim.store.finish_cart(cart_id, "ERROR", result_url=cart.return_error_url,
                              message="Errore interno del simulatore / Simulator internal error")
        raise
    sim.store.finish_cart(cart_id, result.state, result_url=result.redirect_url, message=result.message)
    return result
