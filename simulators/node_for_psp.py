"""SOAP endpoint /sim/nodeForPsp: the node as PSPs see it (nodeForPsp.wsdl), wire-compatible with zeep.

Dispatch is on the body root (SOAPAction optional, bare or quoted). verifyPaymentNotice,
activatePaymentNotice(V2) and sendPaymentOutcome(V2) are served; other modules add operations through
``EXTRA_HANDLERS`` (request root local name -> function(sim, request root) -> response root element), e.g.
nodoInviaFlussoRendicontazione. Operations of the WSDL nobody serves answer PPT_SYSTEM_ERROR, never a
fake success.
"""

from __future__ import annotations

import base64
import copy
import logging
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Iterable

from lxml import etree

from simulators import modello3, receipts, soap
from simulators.faults import NodeFault
from simulators.soap import AMOUNT, DATE, FISCAL_CODE, NOTICE_NUMBER, Request

if TYPE_CHECKING:
    from simulators.app import Simulator

NFP = "http://pagopa-api.pagopa.gov.it/node/nodeForPsp.xsd"
PPT = "http://ws.pagamenti.telematici.gov/"
IDEMPOTENCY = r"[a-zA-Z0-9]{2,18}_[a-zA-Z0-9]{10}"

EXTRA_HANDLERS: dict[str, Callable[["Simulator", etree._Element], etree._Element]] = {}

# request root -> response root, for the operations answered "not supported" (ctResponse shape).
UNSUPPORTED = {
    "demandPaymentNoticeRequest": "demandPaymentNoticeResponse",
    "verificaBollettinoReq": "verificaBollettinoRes",
    "nodoChiediCatalogoServiziV2Request": "nodoChiediCatalogoServiziV2Response",
}
# legacy-shaped (ppt namespace: fault + esito) operations of the same WSDL.
UNSUPPORTED_PPT = {
    "nodoInviaFlussoRendicontazione": "nodoInviaFlussoRendicontazioneRisposta",
    "nodoChiediInformativaPA": "nodoChiediInformativaPARisposta",
    "nodoChiediTemplateInformativaPSP": "nodoChiediTemplateInformativaPSPRisposta",
}
SOAP_ACTIONS = {
    "verifyPaymentNotice": "verifyPaymentNoticeReq", "activatePaymentNotice": "activatePaymentNoticeReq",
    "activatePaymentNoticeV2": "activatePaymentNoticeV2Request", "sendPaymentOutcome": "sendPaymentOutcomeReq",
    "sendPaymentOutcomeV2": "sendPaymentOutcomeV2Request", "demandPaymentNotice": "demandPaymentNoticeRequest",
    "verificaBollettino": "verificaBollettinoReq", "nodoChiediCatalogoServiziV2": "nodoChiediCatalogoServiziV2Request",
}


def _credentials(req: Request) -> modello3.Credentials:
    return modello3.Credentials(req.text("idPSP", max_len=35), req.text("idBrokerPSP", max_len=35),
                                req.text("idChannel", max_len=35), req.text("password", min_len=8, max_len=15))


def _response(name: str) -> etree._Element:
    root = etree.Element(f"{{{NFP}}}{name}", nsmap={"nfp": NFP})
    soap.add(root, "outcome", "OK")
    return root


def _qr(req: Request) -> tuple[str, str]:
    return (req.text("qrCode/fiscalCode", pattern=FISCAL_CODE),  # type: ignore[return-value]
            req.text("qrCode/noticeNumber", pattern=NOTICE_NUMBER))


def verify_payment_notice(sim: "Simulator", root: etree._Element) -> etree._Element:
    req = Request(root)
    creds = _credentials(req)
    fiscal_code, notice_number = _qr(req)
    verified = modello3.verify(sim, creds, fiscal_code, notice_number)
    out = _response("verifyPaymentNoticeRes")
    option = etree.SubElement(etree.SubElement(out, "paymentList"), "paymentOptionDescription")
    soap.add(option, "amount", f"{verified.amount:.2f}")
    soap.add(option, "options", verified.options)
    soap.add(option, "dueDate", verified.due_date)
    soap.add(out, "paymentDescription", verified.description)
    soap.add(out, "fiscalCodePA", verified.fiscal_code_pa or fiscal_code)
    soap.add(out, "companyName", verified.company_name)
    soap.add(out, "officeName", verified.office_name)
    return out


def _activate(sim: "Simulator", root: etree._Element, version: str) -> etree._Element:
    req = Request(root)
    creds = _credentials(req)
    key = req.text("idempotencyKey", required=False, pattern=IDEMPOTENCY)
    fiscal_code, notice_number = _qr(req)
    expiration = req.text("expirationTime", required=False, pattern=r"\d{1,7}")
    if expiration is not None and int(expiration) > 1_800_000:
        raise NodeFault("PPT_SINTASSI_XSD", "expirationTime oltre 1800000 ms")
    amount = Decimal(req.text("amount", pattern=AMOUNT))  # type: ignore[arg-type]
    req.text("dueDate", required=False, pattern=DATE)
    note = req.text("paymentNote", required=False, max_len=210)
    activation = modello3.activate(sim, creds, fiscal_code, notice_number, amount,
                                   expiration_ms=int(expiration) if expiration else None, idempotency_key=key,
                                   version=version, payment_note=note)
    data = activation.data
    out = _response("activatePaymentNoticeV2Response" if version == "V2" else "activatePaymentNoticeRes")
    soap.add(out, "totalAmount", f"{activation.amount:.2f}")
    soap.add(out, "paymentDescription", soap.text(data, "description"))
    soap.add(out, "fiscalCodePA", fiscal_code)
    soap.add(out, "companyName", soap.text(data, "companyName"))
    soap.add(out, "officeName", soap.text(data, "officeName"))
    soap.add(out, "paymentToken", activation.token)
    transfers = etree.SubElement(out, "transferList")
    for transfer in soap.children(soap.child(data, "transferList"), "transfer"):
        item = etree.SubElement(transfers, "transfer")
        soap.add(item, "idTransfer", soap.text(transfer, "idTransfer"))
        soap.add(item, "transferAmount", soap.text(transfer, "transferAmount"))
        soap.add(item, "fiscalCodePA", soap.text(transfer, "fiscalCodePA"))
        if version == "V2":
            soap.add(item, "companyName", soap.text(transfer, "companyName"))
        stamp = soap.child(transfer, "richiestaMarcaDaBollo")
        if stamp is not None:
            item.append(_copy(stamp))
        else:
            soap.add(item, "IBAN", soap.text(transfer, "IBAN"))
        soap.add(item, "remittanceInformation", soap.text(transfer, "remittanceInformation"))
        if version == "V2":
            soap.add(item, "transferCategory", soap.text(transfer, "transferCategory"))
        if soap.child(transfer, "metadata") is not None:
            item.append(_copy(soap.child(transfer, "metadata")))
    if version == "V2" and soap.child(data, "metadata") is not None:
        out.append(_copy(soap.child(data, "metadata")))
    soap.add(out, "creditorReferenceId", activation.iuv)
    if version == "V2":
        psp = sim.settings.psp(creds.psp_id)
        soap.add(out, "suggestedUserFee", psp.fee if psp else None)
    return out


def _copy(element: etree._Element) -> etree._Element:
    return copy.deepcopy(element)


def activate_v1(sim: "Simulator", root: etree._Element) -> etree._Element:
    return _activate(sim, root, "V1")


def activate_v2(sim: "Simulator", root: etree._Element) -> etree._Element:
    return _activate(sim, root, "V2")


def _details(req: Request, v2: bool) -> receipts.Outcome | None:
    details = req.element("details")
    if details is None:
        return None
    sub = Request(details)
    method = sub.text("paymentMethod", choices=("cash", "creditCard", "bancomat", "other"))
    fee = Decimal(sub.text("fee", pattern=AMOUNT))  # type: ignore[arg-type]
    application = date.fromisoformat(sub.text("applicationDate", pattern=DATE))  # type: ignore[arg-type]
    transfer = date.fromisoformat(sub.text("transferDate", pattern=DATE))  # type: ignore[arg-type]
    stamps: dict[tuple[str, int], bytes] = {}
    for stamp in soap.children(sub.element("marcheDaBollo"), "marcaDaBollo") if v2 else []:
        item = Request(stamp)
        try:
            stamps[(item.text("paymentToken"), int(item.text("idTransfer", pattern="[1-5]")))] = base64.b64decode(
                item.text("MBDAttachment") or "", validate=True)
        except ValueError as exc:
            raise NodeFault("PPT_SINTASSI_XSD", "MBDAttachment non è base64") from exc
    primary = sub.text("primaryCiIncurredFee", required=False, pattern=AMOUNT) if v2 else None
    return receipts.Outcome(payment_method=method or "other", fee=fee, payer=sub.element("payer"),
                            application_date=application, transfer_date=transfer, marche_da_bollo=stamps or None,
                            id_bundle=sub.text("idBundle", required=False, max_len=70) if v2 else None,
                            id_ci_bundle=sub.text("idCiBundle", required=False, max_len=70) if v2 else None,
                            primary_ci_incurred_fee=Decimal(primary) if primary else None)


def _send_outcome(sim: "Simulator", root: etree._Element, v2: bool) -> etree._Element:
    req = Request(root)
    creds = _credentials(req)
    req.text("idempotencyKey", required=False, pattern=IDEMPOTENCY)
    if v2:
        tokens = [t.text.strip() for t in soap.children(req.element("paymentTokens"), "paymentToken") if t.text]
        if not 1 <= len(tokens) <= 5:
            raise NodeFault("PPT_SINTASSI_XSD", "paymentTokens: da 1 a 5 paymentToken")
    else:
        tokens = [req.text("paymentToken", max_len=35)]  # type: ignore[list-item]
    outcome = req.text("outcome", choices=("OK", "KO"))
    details = _details(req, v2)
    modello3.send_outcome(sim, creds, tokens, outcome, details)  # type: ignore[arg-type]
    return _response("sendPaymentOutcomeV2Response" if v2 else "sendPaymentOutcomeRes")


def send_outcome_v1(sim: "Simulator", root: etree._Element) -> etree._Element:
    return _send_outcome(sim, root, False)


def send_outcome_v2(sim: "Simulator", root: etree._Element) -> etree._Element:
    return _send_outcome(sim, root, True)


OPERATIONS: dict[str, tuple[str, Callable[["Simulator", etree._Element], etree._Element]]] = {
    "verifyPaymentNoticeReq": ("verifyPaymentNoticeRes", verify_payment_notice),
    "activatePaymentNoticeReq": ("activatePaymentNoticeRes", activate_v1),
    "activatePaymentNoticeV2Request": ("activatePaymentNoticeV2Response", activate_v2),
    "sendPaymentOutcomeReq": ("sendPaymentOutcomeRes", send_outcome_v1),
    "sendPaymentOutcomeV2Request": ("sendPaymentOutcomeV2Response", send_outcome_v2),
}


def _fault_response(response_name: str, fault: NodeFault, legacy: bool = False) -> etree._Element:
    if legacy:
        root = etree.Element(f"{{{PPT}}}{response_name}", nsmap={"ppt": PPT})
        soap.fault_bean(root, fault)
        soap.add(root, "esito", "KO")
        return root
    root = etree.Element(f"{{{NFP}}}{response_name}", nsmap={"nfp": NFP})
    soap.add(root, "outcome", "KO")
    soap.fault_bean(root, fault)
    return root


def handle(sim: "Simulator", body: bytes, soap_action: str | None) -> tuple[str, bytes]:
    """One SOAP exchange: (HTTP status, envelope)."""
    action = (soap_action or "").strip().strip('"').strip()
    try:
        root = soap.body_root(soap.parse(body))
    except soap.BadXml as exc:
        name = SOAP_ACTIONS.get(action)
        if name in OPERATIONS:
            fault = NodeFault("PPT_SINTASSI_EXTRAXSD", f"richiesta non valida: {str(exc)[:200]}")
            return "200 OK", soap.envelope(_fault_response(OPERATIONS[name][0], fault))
        return "500 Internal Server Error", soap.soap_fault("PPT_SINTASSI_EXTRAXSD", "richiesta non valida")
    name = soap.local(root)
    if name in EXTRA_HANDLERS:
        return "200 OK", soap.envelope(EXTRA_HANDLERS[name](sim, root))
    if name in OPERATIONS and soap.namespace(root) == NFP:
        response_name, function = OPERATIONS[name]
        try:
            return "200 OK", soap.envelope(function(sim, root))
        except NodeFault as fault:
            return "200 OK", soap.envelope(_fault_response(response_name, fault))
        except Exception:  # noqa: BLE001 - a node answers PPT_SYSTEM_ERROR, never a stack trace
            logging.getLogger(__name__).exception("nodeForPsp %s failed", name)
            return "200 OK", soap.envelope(_fault_response(response_name, NodeFault("PPT_SYSTEM_ERROR", "errore interno")))
    unsupported = NodeFault("PPT_SYSTEM_ERROR", f"operazione {name} non supportata dal simulatore")
    if name in UNSUPPORTED:
        return "200 OK", soap.envelope(_fault_response(UNSUPPORTED[name], unsupported))
    if name in UNSUPPORTED_PPT:
        return "200 OK", soap.envelope(_fault_response(UNSUPPORTED_PPT[name], unsupported, legacy=True))
    return "500 Internal Server Error", soap.soap_fault("PPT_SINTASSI_EXTRAXSD", f"operazione sconosciuta {name}")


def wsgi(sim: "Simulator") -> Callable[[dict[str, Any], Callable], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            payload = b"nodeForPsp (simulator): POST SOAP 1.1 requests here\n"
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain; charset=utf-8"),
                                                      ("Allow", "POST"), ("Content-Length", str(len(payload)))])
            return [payload]
        body = read_body(environ, sim.settings.max_request_bytes)
        status, payload = handle(sim, body, environ.get("HTTP_SOAPACTION"))
        start_response(status, [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(payload)))])
        return [payload]

    return app


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return b""
    return environ["wsgi.input"].read(min(length, limit))
