"""pagoPA Checkout ``POST /carts`` (checkout_v1.json): the CartRequest body and its 302 answer."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Sequence

import requests

from gateway.node import headers
from gateway.node.model import CartInfo, NodeError, Notice
from gateway.payments.identifiers import amount_to_cents

MAX_NOTICES = 5  # CartRequest.paymentNotices maxItems
_TEXT_MAX = 140  # companyName, description


def cart_request(cart: CartInfo, notices: Sequence[Notice]) -> dict[str, Any]:
    if not 1 <= len(notices) <= MAX_NOTICES:
        raise NodeError(f"a Checkout cart holds 1 to {MAX_NOTICES} notices, got {len(notices)}")
    body: dict[str, Any] = {
        "paymentNotices": [
            {
                "noticeNumber": notice.notice_number,
                "fiscalCode": notice.fiscal_code,
                # Checkout counts integer euro cents; the SOAP side uses decimal euros.
                "amount": amount_to_cents(notice.amount + _secondary_amount(notice)),
                "companyName": notice.company_name[:_TEXT_MAX],
                "description": notice.description[:_TEXT_MAX],
            }
            for notice in notices
        ],
        "returnUrls": {
            "returnOkUrl": cart.return_ok,
            "returnCancelUrl": cart.return_cancel,
            "returnErrorUrl": cart.return_error,
        },
        "idCart": cart.id_session,
        "allCCP": all(notice.postal_iban for notice in notices),
    }
    if cart.email:
        body["emailNotice"] = cart.email
    return body


def _secondary_amount(notice: Notice) -> Decimal:
    # A multi-beneficiary notice is paid as one amount: the ente's quota plus the secondary ente's.
    if notice.secondary and notice.secondary.get("amount") is not None:
        return Decimal(str(notice.secondary["amount"]))
    return Decimal("0")


def post_cart(http: requests.Session, checkout_url: str, body: dict[str, Any], timeout: tuple[float, float], *,
              api_key: str = "") -> str:
    """Send the cart; the 302's Location is the page the payer's browser goes to."""
    try:
        response = http.post(checkout_url + "/carts", json=body, timeout=timeout, allow_redirects=False,
                             headers=headers.api_key(api_key))
    except requests.Timeout as exc:
        raise NodeError(f"Checkout did not answer in time: {type(exc).__name__}", transport=True) from exc
    except requests.RequestException as exc:
        raise NodeError(f"Checkout unreachable: {type(exc).__name__}", transport=True) from exc
    location = response.headers.get("Location")
    if response.status_code in (301, 302, 303, 307) and location:
        return location
    raise NodeError(f"Checkout answered HTTP {response.status_code}: {_problem_detail(response)}",
                    code=f"HTTP_{response.status_code}")


def _problem_detail(response: requests.Response) -> str:
    """The RFC 7807 ProblemJson's detail (or title); a short excerpt of anything else."""
    try:
        problem = response.json()
    except ValueError:
        return response.text[:200].strip() or "no body"
    if isinstance(problem, dict):
        return str(problem.get("detail") or problem.get("title") or problem)[:500]
    return str(problem)[:200]
