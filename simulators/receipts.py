"""Modello-3 receipts: build ctReceiptV2, store it, deliver it with paSendRTV2 asynchronously with retries.

Each worker process runs one delivery thread (started on its first request, after the fork). Receipts
due are claimed with a conditional UPDATE, so with several processes each attempt is made exactly once.
Retry rule (§4.2, §5): KO or timeout → next attempt after ``retry_schedule`` (last value repeats), at most
``max_attempts``; PAA_RECEIPT_DUPLICATA counts as delivered unless configured otherwise.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import os
import threading
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from lxml import etree
from sqlalchemy import and_, insert, or_, select, update

from simulators import gateway_client, scenarios, soap
from simulators.config import Psp
from simulators.store import sim_receipt, utcnow

if TYPE_CHECKING:
    from simulators.app import Simulator

log = logging.getLogger(__name__)
ROME = ZoneInfo("Europe/Rome")
PAFN = gateway_client.PAFN


@dataclass(frozen=True)
class Outcome:
    """What the PSP told the node in sendPaymentOutcome (details)."""

    payment_method: str = "creditCard"
    fee: Decimal = Decimal("0.00")
    payer: etree._Element | None = None  # ctSubject as received, copied into the receipt
    application_date: date | None = None
    transfer_date: date | None = None
    payment_note: str | None = None
    marche_da_bollo: dict[tuple[str, int], bytes] | None = None  # (token, idTransfer) -> MBD document
    id_bundle: str | None = None
    id_ci_bundle: str | None = None
    primary_ci_incurred_fee: Decimal | None = None


def _copy_into(parent: etree._Element, source: etree._Element | None, name: str | None = None) -> None:
    if source is None:
        return
    element = copy.deepcopy(source)
    if name is not None:
        element.tag = name
    parent.append(element)


def _placeholder_mbd(token: str, id_transfer: int, request: etree._Element | None) -> bytes:
    """A stand-in marca da bollo document when the PSP sent none (the simulator issues no real stamps)."""
    digest = soap.text(request, "hashDocumento") or ""
    return (f'<?xml version="1.0" encoding="UTF-8"?><marcaDaBollo simulated="true"><token>{token}</token>'
            f"<idTransfer>{id_transfer}</idTransfer><hashDocumento>{digest}</hashDocumento></marcaDaBollo>").encode()


def build_request(sim: "Simulator", *, token: str, fiscal_code: str, notice_number: str, data: etree._Element,
                  psp: Psp, outcome: Outcome, paid_at: datetime) -> tuple[bytes, list[dict[str, Any]]]:
    """The paSendRTV2Request for a paid token, and the transfer summary kept for reporting."""
    station = sim.settings.station
    root = etree.Element(f"{{{PAFN}}}paSendRTV2Request", nsmap={"pafn": PAFN})
    soap.add(root, "idPA", fiscal_code)
    soap.add(root, "idBrokerPA", station.broker_id)
    soap.add(root, "idStation", station.station_id)
    receipt = etree.SubElement(root, "receipt")
    soap.add(receipt, "receiptId", token)
    soap.add(receipt, "noticeNumber", notice_number)
    soap.add(receipt, "fiscalCode", fiscal_code)
    soap.add(receipt, "outcome", "OK")
    soap.add(receipt, "creditorReferenceId", soap.text(data, "creditorReferenceId"))
    soap.add(receipt, "paymentAmount", soap.text(data, "paymentAmount"))
    soap.add(receipt, "description", soap.text(data, "description"))
    soap.add(receipt, "companyName", soap.text(data, "companyName") or "-")
    soap.add(receipt, "officeName", soap.text(data, "officeName"))
    _copy_into(receipt, soap.child(data, "debtor"))
    transfer_list = etree.SubElement(receipt, "transferList")
    summary: list[dict[str, Any]] = []
    for transfer in soap.children(soap.child(data, "transferList"), "transfer"):
        id_transfer = int(soap.text(transfer, "idTransfer") or "1")
        item = etree.SubElement(transfer_list, "transfer")
        soap.add(item, "idTransfer", str(id_transfer))
        soap.add(item, "transferAmount", soap.text(transfer, "transferAmount"))
        soap.add(item, "fiscalCodePA", soap.text(transfer, "fiscalCodePA"))
        soap.add(item, "companyName", soap.text(transfer, "companyName"))
        iban = soap.text(transfer, "IBAN")
        if iban:
            soap.add(item, "IBAN", iban)
        else:
            stamp = (outcome.marche_da_bollo or {}).get((token, id_transfer)) or _placeholder_mbd(
                token, id_transfer, soap.child(transfer, "richiestaMarcaDaBollo"))
            soap.add(item, "MBDAttachment", base64.b64encode(stamp).decode())
        soap.add(item, "remittanceInformation", soap.text(transfer, "remittanceInformation"))
        soap.add(item, "transferCategory", soap.text(transfer, "transferCategory") or "9/0101100IM/")
        _copy_into(item, soap.child(transfer, "metadata"))
        summary.append({"idTransfer": id_transfer, "amount": soap.text(transfer, "transferAmount"),
                        "fiscalCodePA": soap.text(transfer, "fiscalCodePA"), "iban": iban})
    soap.add(receipt, "idPSP", psp.id)
    soap.add(receipt, "pspFiscalCode", psp.fiscal_code)
    soap.add(receipt, "PSPCompanyName", psp.name)
    soap.add(receipt, "idChannel", psp.channel_id)
    soap.add(receipt, "channelDescription", psp.channel_description[:35])
    _copy_into(receipt, outcome.payer, "payer")
    soap.add(receipt, "paymentMethod", outcome.payment_method)
    soap.add(receipt, "paymentNote", outcome.payment_note)
    soap.add(receipt, "fee", f"{outcome.fee:.2f}")
    if outcome.primary_ci_incurred_fee is not None:
        soap.add(receipt, "primaryCiIncurredFee", f"{outcome.primary_ci_incurred_fee:.2f}")
    soap.add(receipt, "idBundle", outcome.id_bundle)
    soap.add(receipt, "idCiBundle", outcome.id_ci_bundle)
    # The node writes local Italian time without offset: the gateway must parse it leniently (§3.2).
    local = paid_at.astimezone(ROME)
    soap.add(receipt, "paymentDateTime", local.replace(tzinfo=None, microsecond=0).isoformat())
    soap.add(receipt, "applicationDate", (outcome.application_date or local.date()).isoformat())
    soap.add(receipt, "transferDate", (outcome.transfer_date or local.date() + timedelta(days=1)).isoformat())
    _copy_into(receipt, soap.child(data, "metadata"))
    return etree.tostring(root, encoding="UTF-8"), summary


def enqueue(sim: "Simulator", conn: Any, *, token: str, kind: str, cart_id: str | None, fiscal_code: str,
            notice_number: str, iuv: str | None, psp: Psp, amount: Decimal, fee: Decimal, paid_at: datetime,
            body: bytes, transfers: list[dict[str, Any]]) -> None:
    """Store a receipt for delivery, applying the rt_* scenarios; delivered by ``Deliverer``."""
    now = utcnow()
    state, due, wanted = "PENDING", now, 1
    if scenarios.get(sim.store, "rt_never") is not None:
        state = "HELD"
    late = scenarios.get(sim.store, "rt_late")
    if late is not None:
        due = now + timedelta(seconds=float(late.get("seconds", 5)))
    if scenarios.get(sim.store, "rt_twice") is not None:
        wanted = 2
    conn.execute(insert(sim_receipt).values(
        receipt_id=token, kind=kind, cart_id=cart_id, fiscal_code=fiscal_code, notice_number=notice_number, iuv=iuv,
        psp_id=psp.id, channel_id=psp.channel_id, amount=amount, fee=fee, outcome="OK", payment_datetime=paid_at,
        transfers=json.dumps(transfers), body=body.decode("utf-8"), state=state, attempts=0,
        deliveries_wanted=wanted, deliveries_done=0, next_attempt_at=due, created_at=now))


def release(sim: "Simulator", receipt_id: str) -> bool:
    """Push a HELD receipt (rt_never) now, or re-arm a FAILED one."""
    with sim.store.begin() as conn:
        done = conn.execute(update(sim_receipt).where(sim_receipt.c.receipt_id == receipt_id,
                                                      sim_receipt.c.state.in_(["HELD", "FAILED"]))
                            .values(state="PENDING", next_attempt_at=utcnow(), attempts=0)).rowcount == 1
    if done:
        sim.deliverer.wake()
    return done


class Deliverer:
    """The per-process delivery thread."""

    def __init__(self, sim: "Simulator") -> None:
        self.sim = sim
        self._event = threading.Event()
        self._pid = 0
        self._lock = threading.Lock()
        self._stopped = False

    def ensure_started(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._event = threading.Event()
            threading.Thread(target=self._run, name="sim-receipts", daemon=True).start()

    def wake(self) -> None:
        self.ensure_started()
        self._event.set()

    def stop(self) -> None:
        self._stopped = True
        self._event.set()

    def _run(self) -> None:
        while not self._stopped:
            try:
                busy = self.run_once()
            except Exception:  # noqa: BLE001 - the loop must survive a database hiccup
                log.exception("receipt delivery loop failed")
                busy = False
            if not busy:
                self._event.wait(self.sim.settings.poll_interval)
                self._event.clear()

    def run_once(self) -> bool:
        """Deliver the receipts due now; True if any was attempted."""
        now = utcnow()
        with self.sim.store.begin() as conn:
            due = conn.execute(select(sim_receipt.c.receipt_id).where(
                sim_receipt.c.state == "PENDING", sim_receipt.c.next_attempt_at <= now,
                or_(sim_receipt.c.claimed_until.is_(None), sim_receipt.c.claimed_until < now))
                .order_by(sim_receipt.c.next_attempt_at).limit(10)).scalars().all()
        attempted = False
        for receipt_id in due:
            claim = self._claim(receipt_id)
            if claim is not None:
                attempted = True
                self._deliver(claim)
        return attempted

    def _claim(self, receipt_id: str) -> dict[str, Any] | None:
        now = utcnow()
        claim_id = uuid.uuid4().hex
        lease = now + timedelta(seconds=self.sim.settings.send_rt_timeout + 30)
        with self.sim.store.begin() as conn:
            won = conn.execute(update(sim_receipt).where(
                sim_receipt.c.receipt_id == receipt_id, sim_receipt.c.state == "PENDING",
                sim_receipt.c.next_attempt_at <= now,
                or_(sim_receipt.c.claimed_until.is_(None), sim_receipt.c.claimed_until < now))
                .values(claimed_until=lease, claim_id=claim_id)).rowcount == 1
            if not won:
                return None
            return dict(conn.execute(select(sim_receipt).where(sim_receipt.c.receipt_id == receipt_id))
                        .mappings().one())

    def _deliver(self, row: dict[str, Any]) -> None:
        settings = self.sim.settings
        result = gateway_client.send_rt_v2(self.sim, row["body"].encode("utf-8"),
                                           f"{row['fiscal_code']}/{row['notice_number']}")
        attempts = row["attempts"] + 1
        now = utcnow()
        delivered = result.outcome == "OK" or (result.fault_code == "PAA_RECEIPT_DUPLICATA"
                                               and settings.receipt_duplicata_delivered)
        values: dict[str, Any] = {"attempts": attempts, "claimed_until": None, "claim_id": None,
                                  "last_result": (result.fault_code or result.outcome)[:80]}
        if delivered:
            done = row["deliveries_done"] + 1
            values.update(deliveries_done=done, delivered_at=row["delivered_at"] or now)
            if done >= row["deliveries_wanted"]:
                values["state"] = "DELIVERED"
            else:
                values["next_attempt_at"] = now  # rt_twice: the same receipt once more
        elif attempts >= settings.max_attempts:
            values["state"] = "FAILED"
        else:
            values["next_attempt_at"] = now + timedelta(seconds=settings.delay_after(attempts))
        with self.sim.store.begin() as conn:
            conn.execute(update(sim_receipt).where(and_(sim_receipt.c.receipt_id == row["receipt_id"],
                                                        sim_receipt.c.claim_id == row["claim_id"])).values(**values))
