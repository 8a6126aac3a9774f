"""The node's modello-3 logic for PSPs: verify, activate (payment token), payment outcome (§1.3, §5).

No SOAP here: ``node_for_psp`` (the SOAP endpoint), ``psp`` (counter payments) and ``checkout`` (the
payment page) all call these functions. Faults are raised as ``NodeFault``.
Token rules: lifetime ``expirationTime`` ms (capped at the default 30 min); one active token per notice;
an outcome after expiry is answered PPT_TOKEN_SCADUTO but an OK still produces the receipt.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from lxml import etree
from sqlalchemy import insert, select, update

from simulators import gateway_client, receipts, scenarios, soap
from simulators.config import Psp
from simulators.faults import NodeFault
from simulators.store import sim_token, utcnow

if TYPE_CHECKING:
    from simulators.app import Simulator


@dataclass(frozen=True)
class Credentials:
    psp_id: str
    broker_id: str
    channel_id: str
    password: str

    @classmethod
    def of(cls, psp: Psp) -> "Credentials":
        return cls(psp.id, psp.broker_id, psp.channel_id, psp.password)


@dataclass(frozen=True)
class Activation:
    token: str
    amount: Decimal
    iuv: str | None
    data: etree._Element  # ctPaymentPAV2 as the gateway answered
    expires_in_ms: int


def iuv_of(notice_number: str) -> str | None:
    """IUV inside a notice number (aux 0: after the application code; 1, 2, 3: after the aux digit)."""
    if len(notice_number) != 18 or not notice_number.isdigit():
        return None
    return notice_number[3:] if notice_number[0] == "0" else notice_number[1:]


def authenticate(sim: "Simulator", creds: Credentials) -> Psp:
    psp = next((p for p in sim.settings.psps if p.id == creds.psp_id), None)
    if psp is None:
        raise NodeFault("PPT_PSP_SCONOSCIUTO", f"PSP {creds.psp_id} sconosciuto")
    if creds.broker_id != psp.broker_id:
        raise NodeFault("PPT_INTERMEDIARIO_PSP_SCONOSCIUTO", f"intermediario {creds.broker_id} sconosciuto per {psp.id}")
    if creds.channel_id != psp.channel_id:
        raise NodeFault("PPT_CANALE_SCONOSCIUTO", f"canale {creds.channel_id} sconosciuto per {psp.id}")
    if creds.password != psp.password:
        raise NodeFault("PPT_AUTENTICAZIONE", "password del canale errata")
    return psp


def _route(sim: "Simulator", fiscal_code: str, operation: str) -> float | None:
    """Registry and scenario checks before the node calls the station; returns a forced station timeout."""
    if not sim.settings.station.serves(fiscal_code):
        raise NodeFault("PPT_DOMINIO_SCONOSCIUTO", f"dominio {fiscal_code} sconosciuto")
    forced = scenarios.take(sim.store, "node_fault", operation)
    if forced is not None:
        raise NodeFault(forced.get("code", "PPT_SYSTEM_ERROR"), forced.get("description", "scenario node_fault"))
    slow = scenarios.take(sim.store, "station_timeout", operation)
    return float(slow.get("seconds", 0.001)) if slow is not None else None


def verify(sim: "Simulator", creds: Credentials, fiscal_code: str, notice_number: str) -> gateway_client.Verified:
    authenticate(sim, creds)
    timeout = _route(sim, fiscal_code, "verifyPaymentNotice")
    return gateway_client.verify(sim, fiscal_code, notice_number, timeout)


def activate(sim: "Simulator", creds: Credentials, fiscal_code: str, notice_number: str, amount: Decimal, *,
             expiration_ms: int | None = None, idempotency_key: str | None = None, version: str = "V2",
             cart_id: str | None = None, payment_note: str | None = None) -> Activation:
    psp = authenticate(sim, creds)
    now = utcnow()
    with sim.store.begin() as conn:
        active = conn.execute(select(sim_token).where(sim_token.c.notice_number == notice_number,
                                                      sim_token.c.fiscal_code == fiscal_code,
                                                      sim_token.c.state == "ACTIVE",
                                                      sim_token.c.expires_at > now)).mappings().all()
    for row in active:
        if idempotency_key and row["idempotency_key"] == idempotency_key and row["psp_id"] == psp.id:
            left = int((row["expires_at"] - now).total_seconds() * 1000)
            return Activation(row["token"], row["amount"], row["iuv"], soap.parse(row["payment_data"].encode()), left)
    if active:
        raise NodeFault("PPT_PAGAMENTO_IN_CORSO", f"un pagamento per l'avviso {notice_number} è già in corso")
    timeout = _route(sim, fiscal_code, "activatePaymentNotice")
    data = gateway_client.get_payment_v2(sim, fiscal_code, notice_number, amount, timeout, payment_note)
    payment_amount = Decimal(soap.text(data, "paymentAmount") or "0")
    if payment_amount != amount:
        raise NodeFault("PPT_SEMANTICA", f"importo {amount:.2f} diverso da quello dell'avviso {payment_amount:.2f}")
    if version == "V1" and any(soap.text(t, "IBAN") is None
                               for t in soap.children(soap.child(data, "transferList"), "transfer")):
        raise NodeFault("PPT_SEMANTICA", "la marca da bollo richiede activatePaymentNoticeV2")
    lifetime = sim.settings.token_lifetime_ms
    lifetime_ms = min(expiration_ms, lifetime) if expiration_ms else lifetime
    token = uuid.uuid4().hex
    iuv = soap.text(data, "creditorReferenceId") or iuv_of(notice_number)
    with sim.store.begin() as conn:
        conn.execute(insert(sim_token).values(
            token=token, psp_id=psp.id, channel_id=psp.channel_id, fiscal_code=fiscal_code,
            notice_number=notice_number, iuv=iuv, amount=payment_amount, state="ACTIVE", version=version,
            idempotency_key=idempotency_key, payment_data=etree.tostring(data, encoding="unicode"), cart_id=cart_id,
            created_at=now, expires_at=utcnow() + timedelta(milliseconds=lifetime_ms)))
    return Activation(token, payment_amount, iuv, data, lifetime_ms)


def cancel(sim: "Simulator", tokens: list[str]) -> None:
    """Give up active tokens (a cart that could not be paid): no receipt will ever be sent for them."""
    with sim.store.begin() as conn:
        conn.execute(update(sim_token).where(sim_token.c.token.in_(tokens), sim_token.c.state == "ACTIVE")
                     .values(state="CANCELLED"))


def send_outcome(sim: "Simulator", creds: Credentials, tokens: list[str], outcome: str,
                 details: receipts.Outcome | None = None, *, kind: str = "psp") -> list[str]:
    """Close the tokens; on OK build and queue one receipt per token. Returns the receipt ids."""
    psp = authenticate(sim, creds)
    forced = scenarios.take(sim.store, "node_fault", "sendPaymentOutcome")
    if forced is not None:
        raise NodeFault(forced.get("code", "PPT_SYSTEM_ERROR"), forced.get("description", "scenario node_fault"))
    details = details or receipts.Outcome(payment_method=psp.payment_method, fee=Decimal(psp.fee))
    now = utcnow()
    with sim.store.begin() as conn:
        found = {r["token"]: r for r in conn.execute(select(sim_token).where(sim_token.c.token.in_(tokens)))
                 .mappings().all()}
    for token in tokens:
        row = found.get(token)
        if row is None or row["psp_id"] != psp.id:
            raise NodeFault("PPT_TOKEN_SCONOSCIUTO", f"paymentToken {token} sconosciuto")
        if row["state"] != "ACTIVE":
            raise NodeFault("PPT_ESITO_GIA_ACQUISITO", f"esito del paymentToken {token} già acquisito")
    expired = [t for t in tokens if found[t]["expires_at"] <= now]
    issued: list[str] = []
    with sim.store.begin() as conn:
        for index, token in enumerate(tokens):
            row = found[token]
            claimed = conn.execute(update(sim_token).where(sim_token.c.token == token, sim_token.c.state == "ACTIVE")
                                   .values(state="PAID" if outcome == "OK" else "KO")).rowcount == 1
            if not claimed:
                raise NodeFault("PPT_ESITO_GIA_ACQUISITO", f"esito del paymentToken {token} già acquisito")
            if outcome != "OK":
                continue
            # The fee is charged once per payment, on its first receipt.
            fee = details.fee if index == 0 else Decimal("0.00")
            body, transfers = receipts.build_request(
                sim, token=token, fiscal_code=row["fiscal_code"], notice_number=row["notice_number"],
                data=soap.parse(row["payment_data"].encode()), psp=psp,
                outcome=replace(details, fee=fee), paid_at=now)
            receipts.enqueue(sim, conn, token=token, kind=kind, cart_id=row["cart_id"], fiscal_code=row["fiscal_code"],
                             notice_number=row["notice_number"], iuv=row["iuv"], psp=psp, amount=row["amount"],
                             fee=fee, paid_at=now, body=body, transfers=transfers)
            issued.append(token)
    if issued:
        sim.deliverer.wake()
    if expired:
        # §5: the PSP hears the token expired; an OK was still recorded and its receipt goes to the EC.
        raise NodeFault("PPT_TOKEN_SCADUTO", f"paymentToken scaduto: {', '.join(expired)}")
    return issued


def wait_delivery(sim: "Simulator", receipt_ids: list[str], timeout: float) -> list[dict]:
    """Wait until each receipt had its first delivery attempt (or is held); for scripts and the CLI."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for rid in receipt_ids for r in sim.store.receipts(receipt_id=rid)]
        soon = utcnow() + timedelta(seconds=1)
        if all(r["attempts"] > 0 or r["state"] != "PENDING" or r["next_attempt_at"] > soon for r in rows) \
                or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)
