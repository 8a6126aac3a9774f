"""Receipt recovery: payment attempts still without outcome are asked to the node, with exponential back-off.

Legacy (rpt) attempts: nodoChiediStatoRPT, then nodoChiediCopiaRT; the RT obtained goes through the same
path as paaInviaRT (gateway.payments.legacy_rt.receive_rt, source "copiaRT"). Checkout attempts: modello 3
has no copy primitive (the node pushes paSendRT[V2] and retries it itself), so nothing is asked: once the
attempt's lifetime is over without a receipt it is EXPIRED and its positions are payable again. Re-checks
wait slot × (2^k − 1) seconds (§5), at most ``recovery_max_tries``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import timedelta

import requests
from lxml import etree
from sqlalchemy import select

from gateway import faults, logs
from gateway import xml as safe_xml
from gateway.node import headers
from gateway.payments import receipts, states
from gateway.settings import Settings
from storage.db import Database
from storage.models import Dovuto, Ente, PaymentAttempt
from storage.types import utcnow

log = logs.get_logger(__name__)

PPT_NS = "http://ws.pagamenti.telematici.gov/"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
TIMEOUT = (5.0, 20.0)  # connect, read: MyPay's 20 s towards pagoPA
# The node knows nothing of this attempt: the RPT never reached it (e.g. a send that timed out).
UNKNOWN_TO_NODE = frozenset({"PPT_RPT_SCONOSCIUTA", "PPT_RT_SCONOSCIUTA"})


class NodeUnavailable(Exception):
    """No usable answer from the node (transport error, HTTP error, unreadable or SOAP fault)."""


@dataclass(frozen=True)
class NodeAnswer:
    fault_code: str | None
    fault_description: str | None
    element: etree._Element


def backoff(settings: Settings, checks: int) -> timedelta:
    """Wait before check number ``checks + 1``: slot × (2^k − 1) with k the checks already made (≥ 1)."""
    k = max(1, checks)
    return timedelta(seconds=settings.recovery_slot_seconds * (2 ** k - 1))


# --- NodoPerPa calls -----------------------------------------------------------------------------

def _find(element: etree._Element, name: str) -> etree._Element | None:
    for child in element.iter():
        if isinstance(child.tag, str) and etree.QName(child).localname == name:
            return child
    return None


def _text(element: etree._Element | None, name: str) -> str | None:
    found = None if element is None else _find(element, name)
    return None if found is None or found.text is None else found.text.strip()


def call_node(settings: Settings, operation: str, ente_fc: str, iuv: str, ccp: str,
              http: requests.Session | None = None) -> NodeAnswer:
    """nodoChiediStatoRPT / nodoChiediCopiaRT for (dominio, IUV, CCP) with the gateway's station."""
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soapenv": SOAP_NS, "ppt": PPT_NS})
    etree.SubElement(env, f"{{{SOAP_NS}}}Header")
    body = etree.SubElement(etree.SubElement(env, f"{{{SOAP_NS}}}Body"), f"{{{PPT_NS}}}{operation}")
    for name, value in (("identificativoIntermediarioPA", settings.broker_id),
                        ("identificativoStazioneIntermediarioPA", settings.station_id),
                        ("password", settings.station_password), ("identificativoDominio", ente_fc),
                        ("identificativoUnivocoVersamento", iuv), ("codiceContestoPagamento", ccp)):
        etree.SubElement(body, name).text = value  # unqualified children (NodoPerPa sets no elementFormDefault)
    try:
        response = (http or requests).post(
            settings.effective_nodo_per_pa_url, data=etree.tostring(env, xml_declaration=True, encoding="UTF-8"),
            headers=headers.soap(operation, settings.node_subscription_key), timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise NodeUnavailable(f"{operation}: node unreachable ({type(exc).__name__})") from exc
    try:
        root = safe_xml.parse_bytes(response.content)
    except safe_xml.UnsafeXml as exc:
        raise NodeUnavailable(f"{operation}: HTTP {response.status_code}, unreadable answer") from exc
    answer = _find(root, operation + "Risposta")
    if answer is None:
        raise NodeUnavailable(f"{operation}: HTTP {response.status_code} without {operation}Risposta")
    fault = _find(answer, "fault")
    return NodeAnswer(_text(fault, "faultCode") if fault is not None else None,
                      _text(fault, "description") if fault is not None else None, answer)


# --- the recovery of one attempt -----------------------------------------------------------------

def _reschedule(database: Database, settings: Settings, attempt_id: int, error: str | None) -> None:
    with database.transaction() as session:
        attempt = session.get(PaymentAttempt, attempt_id, with_for_update=True)
        if attempt is None or attempt.state != receipts.ATTEMPT_STARTED:
            return
        attempt.checks += 1
        attempt.next_check_at = utcnow() + backoff(settings, attempt.checks)
        attempt.last_error = (error or None) and error[:2000]


def _expire(database: Database, attempt_id: int, reason: str) -> bool:
    """EXPIRED, positions payable again, carrello closed when nothing else is pending; one transaction."""
    with database.transaction() as session:
        attempt = session.get(PaymentAttempt, attempt_id, with_for_update=True)
        if attempt is None or attempt.state != receipts.ATTEMPT_STARTED:
            return False
        attempt.state = receipts.ATTEMPT_EXPIRED
        attempt.checks += 1
        attempt.next_check_at = None
        attempt.last_error = reason[:2000]
        query = select(Dovuto).where(Dovuto.state == states.PAGAMENTO_INIZIATO).with_for_update()
        if attempt.dovuto_id is not None:
            query = query.where(Dovuto.id == attempt.dovuto_id)
        else:
            query = query.where(Dovuto.ente_id == attempt.ente_id, Dovuto.iuv == attempt.iuv)
        for dovuto in session.scalars(query):
            receipts.release(session, dovuto, reason=reason, actor="recovery")
        if attempt.carrello_id is not None:
            pending = session.scalar(select(PaymentAttempt.id).where(
                PaymentAttempt.carrello_id == attempt.carrello_id, PaymentAttempt.id != attempt.id,
                PaymentAttempt.state == receipts.ATTEMPT_STARTED).limit(1))
            if pending is None:
                receipts.settle_carrello(session, attempt.carrello_id, none_paid=states.CART_SCADUTO)
    log.info("payment attempt expired", attempt_id=attempt_id, reason=reason)
    return True


def _exhausted(settings: Settings, attempt: PaymentAttempt) -> bool:
    expired = attempt.expires_at is None or attempt.expires_at < utcnow()
    return expired and attempt.checks + 1 >= settings.recovery_max_tries


def recover_rpt(database: Database, settings: Settings, attempt: PaymentAttempt, ente_fc: str) -> str:
    from gateway.payments.legacy_rt import receive_rt

    stato = call_node(settings, "nodoChiediStatoRPT", ente_fc, attempt.iuv or "", attempt.ccp or "")
    state = _text(_find(stato.element, "esito"), "stato") if stato.fault_code is None else None
    copy = call_node(settings, "nodoChiediCopiaRT", ente_fc, attempt.iuv or "", attempt.ccp or "")
    encoded = _text(copy.element, "rt")
    if copy.fault_code is None and encoded:
        try:
            rt = base64.b64decode("".join(encoded.split()), validate=True)
        except ValueError:
            _reschedule(database, settings, attempt.id, "nodoChiediCopiaRT: rt is not base64")
            return "bad_rt"
        try:
            with database.transaction() as session:
                ente = session.get(Ente, attempt.ente_id)
                outcome = receive_rt(session, ente, rt, tipo_firma=_text(copy.element, "tipoFirma"),
                                     source="copiaRT")
        except faults.Fault as fault:
            # The RT contradicts what the gateway sent: keep looking, a person must see it (last_error).
            _reschedule(database, settings, attempt.id, f"RT from nodoChiediCopiaRT refused: {fault.code} "
                                                        f"{fault.description or ''}")
            return f"rt_refused:{fault.code}"
        log.info("RT recovered", attempt_id=attempt.id, receipt_id=outcome.receipt_id, duplicate=outcome.duplicate)
        return "recovered"
    fault = copy.fault_code or stato.fault_code
    detail = f"stato {state or stato.fault_code}; copiaRT {copy.fault_code}: {copy.fault_description or ''}"
    if _exhausted(settings, attempt) and (fault in UNKNOWN_TO_NODE or copy.fault_code == "PPT_RT_NONDISPONIBILE"):
        _expire(database, attempt.id, f"nessuna RT dopo {attempt.checks + 1} verifiche ({detail})"[:2000])
        return "expired"
    _reschedule(database, settings, attempt.id, detail)
    return "pending"


def recover_checkout(database: Database, settings: Settings, attempt: PaymentAttempt) -> str:
    """Modello 3 has no receipt the ente can ask the node for: the node pushes paSendRT[V2] and retries it
    by itself. The attempt waits for it and expires with its lifetime, so the cart is closed and its
    notices payable again; a receipt arriving after that is still stored and completes its position."""
    if attempt.expires_at is not None and attempt.expires_at < utcnow():
        _expire(database, attempt.id, "nessuna ricevuta entro la durata del tentativo")
        return "expired"
    _reschedule(database, settings, attempt.id, "no receipt yet")
    return "pending"


def recover(database: Database, settings: Settings, attempt_id: int) -> dict[str, str]:
    """One check of one attempt; NodeUnavailable leaves it unchanged except for its next check time."""
    with database.transaction() as session:
        attempt = session.get(PaymentAttempt, attempt_id)
        if attempt is None or attempt.state != receipts.ATTEMPT_STARTED:
            return {"result": "nothing_to_do"}
        ente_fc = session.scalar(select(Ente.fiscal_code).where(Ente.id == attempt.ente_id))
        session.expunge(attempt)
    try:
        if attempt.model == "rpt":
            result = recover_rpt(database, settings, attempt, ente_fc)
        elif attempt.model == "checkout":
            result = recover_checkout(database, settings, attempt)
        else:  # "psp" tokens expire by themselves (gateway.payments.tasks)
            return {"result": "not_recoverable_here"}
    except NodeUnavailable as exc:
        _reschedule(database, settings, attempt_id, str(exc))
        log.warning("node unavailable for recovery", attempt_id=attempt_id, error=str(exc))
        return {"result": "node_unavailable"}
    return {"result": result}


def due_attempts(database: Database, settings: Settings, limit: int = 200) -> list[int]:
    now = utcnow()
    with database.transaction() as session:
        return list(session.scalars(
            select(PaymentAttempt.id)
            .where(PaymentAttempt.state == receipts.ATTEMPT_STARTED, PaymentAttempt.model.in_(["rpt", "checkout"]),
                   PaymentAttempt.created_at < now - timedelta(seconds=settings.recovery_after_seconds),
                   (PaymentAttempt.next_check_at.is_(None)) | (PaymentAttempt.next_check_at <= now),
                   PaymentAttempt.checks < settings.recovery_max_tries)
            .order_by(PaymentAttempt.id).limit(limit)))
