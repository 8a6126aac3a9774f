"""The simulated PSP: pays a notice "at the counter" through the node's own modello-3 functions.

verify → activate → (money collected) → sendPaymentOutcome; on OK the node then delivers paSendRTV2.
The result tells what each step answered, so scripts can assert on the gateway's behaviour.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simulators import modello3
from simulators.faults import NodeFault

if TYPE_CHECKING:
    from simulators.app import Simulator


@dataclass
class CounterPayment:
    ok: bool
    steps: list[dict[str, Any]] = field(default_factory=list)
    receipt_id: str | None = None
    payment_token: str | None = None
    receipt: dict[str, Any] | None = None
    fault: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "receiptId": self.receipt_id, "paymentToken": self.payment_token,
                "steps": self.steps, "receipt": self.receipt, "fault": self.fault}


def _idempotency_key(psp_id: str) -> str:
    prefix = "".join(c for c in psp_id if c.isalnum())[:18] or "SIM"
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def pay_notice(sim: "Simulator", fiscal_code: str, notice_number: str, *, outcome: str = "OK",
               psp_id: str | None = None, wait_seconds: float = 20.0) -> CounterPayment:
    psp = sim.settings.psp(psp_id)
    if psp is None:
        raise NodeFault("PPT_PSP_SCONOSCIUTO", f"PSP {psp_id} sconosciuto")
    creds = modello3.Credentials.of(psp)
    result = CounterPayment(ok=False)
    step = "verifyPaymentNotice"
    try:
        verified = modello3.verify(sim, creds, fiscal_code, notice_number)
        result.steps.append({"operation": step, "outcome": "OK", "amount": f"{verified.amount:.2f}"})
        step = "activatePaymentNoticeV2"
        activation = modello3.activate(sim, creds, fiscal_code, notice_number, verified.amount,
                                       idempotency_key=_idempotency_key(psp.id))
        result.payment_token = activation.token
        result.steps.append({"operation": step, "outcome": "OK", "paymentToken": activation.token,
                             "amount": f"{activation.amount:.2f}"})
        step = "sendPaymentOutcomeV2"
        issued = modello3.send_outcome(sim, creds, [activation.token], "OK" if outcome.upper() == "OK" else "KO")
        result.steps.append({"operation": step, "outcome": "OK", "paymentOutcome": outcome.upper()})
    except NodeFault as fault:
        result.steps.append({"operation": step, "outcome": "KO", "fault": fault.as_dict()})
        result.fault = fault.as_dict()
        return result
    result.ok = True
    if issued:
        result.receipt_id = issued[0]
        rows = modello3.wait_delivery(sim, issued, wait_seconds) if wait_seconds > 0 else \
            sim.store.receipts(receipt_id=issued[0])
        if rows:
            row = rows[0]
            result.receipt = {"receiptId": row["receipt_id"], "state": row["state"], "attempts": row["attempts"],
                              "gatewayAnswer": row["last_result"], "amount": f"{row['amount']:.2f}"}
            result.steps.append({"operation": "paSendRTV2", "outcome": row["last_result"] or "PENDING",
                                 "state": row["state"]})
    return result
