"""NodeClient: opens a payment with the node in the ente's model (Checkout cart, or legacy RPT cart).

It knows HTTP and the node's contracts, nothing of the database: the caller records the attempt
(``on_prepared`` runs before an RPT leaves, so an RT can always be matched, even after a timeout).
"""

from __future__ import annotations

from typing import Callable, Sequence

import requests

from gateway import logs
from gateway.node import checkout, rpt
from gateway.node.model import CartInfo, NodeError, Notice, OpenedPayment, PreparedRpt  # noqa: F401 - re-exported
from gateway.settings import Settings
from storage.types import utcnow

log = logs.get_logger(__name__)

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 20.0


class NodeClient:
    """One per process: a pooled HTTP session towards settings.node_url."""

    def __init__(self, settings: Settings, http: requests.Session | None = None,
                 timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT)) -> None:
        self.settings = settings
        self.http = http or requests.Session()
        self.http.trust_env = False  # never route the node calls through an ambient proxy by accident
        self.timeout = timeout

    def open_payment(self, cart: CartInfo, notices: Sequence[Notice], *,
                     on_prepared: Callable[[str, list[PreparedRpt]], None] | None = None) -> OpenedPayment:
        """The URL the payer's browser must go to; NodeError when the node refuses or cannot be reached."""
        if not notices:
            raise NodeError("nothing to pay in this cart")
        if cart.payment_model == "rpt":
            return self._open_rpt(cart, notices, on_prepared)
        body = checkout.cart_request(cart, notices)
        url = checkout.post_cart(self.http, self.settings.effective_checkout_url, body, self.timeout,
                                 api_key=self.settings.checkout_subscription_key)
        log.info("checkout cart opened", id_session=cart.id_session, notices=len(notices))
        return OpenedPayment(url=url, opened_at=utcnow())

    def _open_rpt(self, cart: CartInfo, notices: Sequence[Notice],
                  on_prepared: Callable[[str, list[PreparedRpt]], None] | None) -> OpenedPayment:
        now = utcnow()
        if len(notices) > rpt.MAX_RPT:
            raise NodeError(f"nodoInviaCarrelloRPT carries at most {rpt.MAX_RPT} RPTs, got {len(notices)}")
        rpts = [rpt.build_rpt_for(notice, self.settings, now) for notice in notices]
        cart_id = rpt.new_cart_id(notices[0].fiscal_code, now)
        if on_prepared is not None:
            on_prepared(cart_id, rpts)
        url = rpt.send_cart(self.http, self.settings, cart_id, rpts, self.timeout)
        log.info("rpt cart accepted", id_session=cart.id_session, node_cart_id=cart_id, rpts=len(rpts))
        return OpenedPayment(url=url, cart_id=cart_id, rpts=rpts, opened_at=now)


def node_client(runtime) -> NodeClient:  # type: ignore[no-untyped-def]
    """The process's client, created on first use and kept in runtime.extras (tests may put their own)."""
    client = runtime.extras.get("node_client")
    if client is None:
        client = runtime.extras["node_client"] = NodeClient(runtime.settings)
    return client
