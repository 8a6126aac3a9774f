"""The node's calls to the gateway's paForNode station (verify, getPaymentV2, sendRTV2) over HTTP.

Envelopes are built with lxml against the paForNode contract (root in the pafn namespace, unqualified
children). Every call is recorded in sim_call. Failures come back as NodeFault, the way the node would
relay them: EC faults as PPT_ERRORE_EMESSO_DA_PAA (id = the EC, original* = the PAA fault), timeouts as
PPT_STAZIONE_INT_PA_TIMEOUT, unreachable as ..._IRRAGGIUNGIBILE, garbage as ..._ERRORE_RESPONSE.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import requests
from lxml import etree

from simulators import soap
from simulators.faults import NodeFault

if TYPE_CHECKING:
    from simulators.app import Simulator

PAFN = "http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd"
PATH = "/pa/paForNode"


@dataclass(frozen=True)
class Verified:
    amount: Decimal
    options: str
    due_date: str | None
    description: str | None
    company_name: str | None
    office_name: str | None
    fiscal_code_pa: str | None
    all_ccp: bool


@dataclass(frozen=True)
class SendResult:
    outcome: str  # OK | KO | TIMEOUT | ERROR
    fault_code: str | None = None
    description: str | None = None


def _request(operation: str, fiscal_code: str, sim: "Simulator") -> etree._Element:
    root = etree.Element(f"{{{PAFN}}}{operation}", nsmap={"pafn": PAFN})
    station = sim.settings.station
    soap.add(root, "idPA", fiscal_code)
    soap.add(root, "idBrokerPA", station.broker_id)
    soap.add(root, "idStation", station.station_id)
    return root


def _qr(root: etree._Element, fiscal_code: str, notice_number: str) -> None:
    qr = etree.SubElement(root, "qrCode")
    soap.add(qr, "fiscalCode", fiscal_code)
    soap.add(qr, "noticeNumber", notice_number)


def _post(sim: "Simulator", action: str, payload: etree._Element, timeout: float, subject: str,
          response_name: str) -> etree._Element:
    """Send and return the response root with outcome OK; NodeFault otherwise (and record the call)."""
    started = time.monotonic()
    ms = lambda: int((time.monotonic() - started) * 1000)  # noqa: E731
    record = sim.store.record_call
    fiscal_code = soap.text(payload, "idPA") or ""
    try:
        response = requests.post(sim.settings.gateway_url + PATH, data=soap.envelope(payload), timeout=timeout,
                                 headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'})
    except requests.Timeout:
        response = None
    except requests.RequestException as exc:
        record("to_gateway", action, "ERROR", subject=subject, fault_code="PPT_STAZIONE_INT_PA_IRRAGGIUNGIBILE",
               duration_ms=ms(), detail=type(exc).__name__)
        raise NodeFault("PPT_STAZIONE_INT_PA_IRRAGGIUNGIBILE", f"stazione non raggiungibile ({type(exc).__name__})")
    # requests bounds each socket read, not the whole exchange; the node gives up at its deadline, so an
    # answer that came later is a timeout too (and what the station did meanwhile stays done).
    if response is None or time.monotonic() - started > timeout:
        record("to_gateway", action, "TIMEOUT", subject=subject, fault_code="PPT_STAZIONE_INT_PA_TIMEOUT",
               duration_ms=ms())
        raise NodeFault("PPT_STAZIONE_INT_PA_TIMEOUT", f"la stazione non ha risposto a {action} entro {timeout:g} s")
    try:
        root = soap.body_root(soap.parse(response.content))
    except soap.BadXml:
        root = None
    if root is None or soap.local(root) != response_name:
        record("to_gateway", action, f"HTTP {response.status_code}", subject=subject,
               fault_code="PPT_STAZIONE_INT_PA_ERRORE_RESPONSE", duration_ms=ms(),
               detail=response.text[:500] if root is None or soap.local(root) == "Fault" else None)
        raise NodeFault("PPT_STAZIONE_INT_PA_ERRORE_RESPONSE", f"risposta non valida della stazione a {action}")
    outcome = soap.text(root, "outcome")
    if outcome == "OK":
        record("to_gateway", action, "OK", subject=subject, duration_ms=ms())
        return root
    fault = soap.child(root, "fault")
    code = soap.text(fault, "faultCode") or "PAA_SYSTEM_ERROR"
    string = soap.text(fault, "faultString") or code
    description = soap.text(fault, "description") or string
    record("to_gateway", action, outcome or "KO", subject=subject, fault_code=code, duration_ms=ms(),
           detail=description)
    raise NodeFault("PPT_ERRORE_EMESSO_DA_PAA", description, fault_id=soap.text(fault, "id") or fiscal_code,
                    original_code=code, original_string=string, original_description=description)


def verify(sim: "Simulator", fiscal_code: str, notice_number: str, timeout: float | None = None) -> Verified:
    payload = _request("paVerifyPaymentNoticeReq", fiscal_code, sim)
    _qr(payload, fiscal_code, notice_number)
    root = _post(sim, "paVerifyPaymentNotice", payload, timeout or sim.settings.verify_timeout,
                 f"{fiscal_code}/{notice_number}", "paVerifyPaymentNoticeRes")
    option = soap.child(soap.child(root, "paymentList"), "paymentOptionDescription")
    try:
        amount = Decimal(soap.text(option, "amount") or "")
    except ArithmeticError:
        sim.store.record_call("to_gateway", "paVerifyPaymentNotice", "BAD", subject=notice_number,
                              fault_code="PPT_STAZIONE_INT_PA_ERRORE_RESPONSE")
        raise NodeFault("PPT_STAZIONE_INT_PA_ERRORE_RESPONSE", "paymentList senza importo") from None
    return Verified(amount=amount, options=soap.text(option, "options") or "EQ",
                    due_date=soap.text(option, "dueDate"), description=soap.text(root, "paymentDescription"),
                    company_name=soap.text(root, "companyName"), office_name=soap.text(root, "officeName"),
                    fiscal_code_pa=soap.text(root, "fiscalCodePA"),
                    all_ccp=(soap.text(option, "allCCP") or "false") == "true")


def get_payment_v2(sim: "Simulator", fiscal_code: str, notice_number: str, amount: Decimal,
                   timeout: float | None = None, payment_note: str | None = None) -> etree._Element:
    """The ``<data>`` element (ctPaymentPAV2) the gateway answered."""
    payload = _request("paGetPaymentV2Request", fiscal_code, sim)
    _qr(payload, fiscal_code, notice_number)
    soap.add(payload, "amount", f"{amount:.2f}")
    soap.add(payload, "paymentNote", payment_note)
    root = _post(sim, "paGetPaymentV2", payload, timeout or sim.settings.verify_timeout,
                 f"{fiscal_code}/{notice_number}", "paGetPaymentV2Response")
    data = soap.child(root, "data")
    if data is None or soap.child(data, "transferList") is None:
        raise NodeFault("PPT_STAZIONE_INT_PA_ERRORE_RESPONSE", "paGetPaymentV2 senza data/transferList")
    return data


def send_rt_v2(sim: "Simulator", body: bytes, subject: str) -> SendResult:
    """POST a stored paSendRTV2Request; never raises: the delivery loop decides what to do next."""
    payload = soap.parse(body)
    try:
        _post(sim, "paSendRTV2", payload, sim.settings.send_rt_timeout, subject, "paSendRTV2Response")
    except NodeFault as fault:
        if fault.code == "PPT_STAZIONE_INT_PA_TIMEOUT":
            return SendResult("TIMEOUT", fault.code, fault.description)
        if fault.code == "PPT_ERRORE_EMESSO_DA_PAA":
            return SendResult("KO", fault.original_code, fault.original_description)
        return SendResult("ERROR", fault.code, fault.description)
    return SendResult("OK")
