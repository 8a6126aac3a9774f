"""Legacy modello 1: one RPT per position, sent as a cart with nodoInviaCarrelloRPT (NodoPerPa).

The SOAP envelope is built with lxml from the contract's element names: the request root is in the
``ppt`` namespace and its children are unqualified (the NodoPerPa schemas set no elementFormDefault).
"""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import datetime
from typing import Sequence
from zoneinfo import ZoneInfo

import requests
from lxml import etree

from gateway import xml as safe_xml
from gateway.node import headers
from gateway.node.model import NodeError, Notice, PreparedRpt
from gateway.payments import documents
from gateway.payments.documents import Dominio, IdentificativoUnivoco, Istituto, MarcaBollo, Rpt, \
    SingoloVersamentoRpt, Soggetto
from gateway.settings import Settings

PPT_NS = "http://ws.pagamenti.telematici.gov/"
PPTHEAD_NS = "http://ws.pagamenti.telematici.gov/ppthead"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
MAX_RPT = 5  # tipoListaRPT maxOccurs
# With WISP the payer chooses the PSP on pagoPA's page: the EC sends these conventional placeholders.
WISP_PSP = "AGID_01"
WISP_BROKER_PSP = "97735020584"
WISP_CHANNEL = "97735020584_02"
ROME = ZoneInfo("Europe/Rome")
_RPT_TIPI = {"BBT", "BP", "AD", "CP", "PO", "OBEP", "OTH", "JIF", "MYBK", "PPAL"}


def new_cart_id(fiscal_code: str, now: datetime) -> str:
    """The suggested syntax: year(4) + idDominio(11) + source code(2) + progressive(18); a fresh one per attempt."""
    return f"{now.astimezone(ROME):%Y}{fiscal_code}GW{secrets.randbelow(10**18):018d}"


def _cut(value: str | None, size: int) -> str | None:
    value = (value or "").strip()
    return value[:size] if value else None


def _tipo_versamento(value: str | None) -> str:
    # The Dovuti list (e.g. "BBT|BP", "ALL") lets the payer choose; an RPT names one method, and with
    # WISP the choice happens on pagoPA's page anyway: the first listed one, BBT for ALL.
    first = (value or "").split("|")[0].strip().upper()
    return first if first in _RPT_TIPI else "BBT"


def build_rpt_for(notice: Notice, settings: Settings, now: datetime) -> PreparedRpt:
    if notice.secondary:
        raise NodeError("multi-beneficiary positions cannot be paid with the legacy RPT model on this gateway")
    ccp = uuid.uuid4().hex  # codiceContestoPagamento: a new one per attempt on the same IUV
    message_id = uuid.uuid4().hex
    payer = notice.payer
    country = (payer.country or "").upper()
    soggetto = Soggetto(
        identificativo=IdentificativoUnivoco(payer.type, payer.code[:35]),
        anagrafica=payer.name[:70],
        indirizzo=_cut(payer.address, 70), civico=_cut(payer.civic, 16), cap=_cut(payer.postal_code, 16),
        localita=_cut(payer.city, 35), provincia=_cut(payer.province, 35),
        nazione=country if len(country) == 2 and country.isalpha() else None,
        email=_cut(payer.email, 256))
    bollo = None
    if notice.marca_bollo:
        bollo = MarcaBollo(notice.marca_bollo.get("tipo_bollo") or notice.marca_bollo.get("tipoBollo", ""),
                           notice.marca_bollo.get("hash_documento") or notice.marca_bollo.get("hashDocumento", ""),
                           notice.marca_bollo.get("provincia_residenza")
                           or notice.marca_bollo.get("provinciaResidenza", ""))
    rpt = Rpt(
        dominio=Dominio(notice.fiscal_code, settings.station_id),
        identificativo_messaggio_richiesta=message_id,
        data_ora_messaggio_richiesta=now.astimezone(ROME).replace(tzinfo=None),
        soggetto_pagatore=soggetto,
        ente_beneficiario=Istituto(IdentificativoUnivoco("G", notice.fiscal_code), notice.company_name[:70]),
        data_esecuzione_pagamento=now.astimezone(ROME).date(),
        tipo_versamento=_tipo_versamento(notice.tipo_versamento),
        iuv=notice.iuv,
        codice_contesto_pagamento=ccp,
        singoli=(SingoloVersamentoRpt(importo=notice.amount, causale=notice.description[:140],
                                      dati_specifici_riscossione=notice.dati_specifici_riscossione,
                                      iban_accredito=None if bollo else notice.iban, marca_bollo=bollo),),
    )
    xml = documents.build_rpt(rpt)
    try:
        documents.validate("RPT", xml)
    except documents.DocumentInvalid as exc:
        raise NodeError(f"RPT for IUV {notice.iuv} not valid: {exc.detail}") from exc
    return PreparedRpt(notice.dovuto_id, notice.fiscal_code, notice.iuv, ccp, message_id, xml)


def envelope(settings: Settings, cart_id: str, rpts: Sequence[PreparedRpt]) -> bytes:
    if not 1 <= len(rpts) <= MAX_RPT:
        raise NodeError(f"nodoInviaCarrelloRPT carries 1 to {MAX_RPT} RPTs, got {len(rpts)}")
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soapenv": SOAP_NS, "ppt": PPT_NS, "ppthead": PPTHEAD_NS})
    header = etree.SubElement(etree.SubElement(env, f"{{{SOAP_NS}}}Header"), f"{{{PPTHEAD_NS}}}intestazioneCarrelloPPT")
    _add(header, "identificativoIntermediarioPA", settings.broker_id)
    _add(header, "identificativoStazioneIntermediarioPA", settings.station_id)
    _add(header, "identificativoCarrello", cart_id)
    body = etree.SubElement(etree.SubElement(env, f"{{{SOAP_NS}}}Body"), f"{{{PPT_NS}}}nodoInviaCarrelloRPT")
    _add(body, "password", settings.station_password)
    _add(body, "identificativoPSP", WISP_PSP)
    _add(body, "identificativoIntermediarioPSP", WISP_BROKER_PSP)
    _add(body, "identificativoCanale", WISP_CHANNEL)
    lista = etree.SubElement(body, "listaRPT")
    for rpt in rpts:
        item = etree.SubElement(lista, "elementoListaRPT")
        _add(item, "identificativoDominio", rpt.fiscal_code)
        _add(item, "identificativoUnivocoVersamento", rpt.iuv)
        _add(item, "codiceContestoPagamento", rpt.ccp)
        _add(item, "tipoFirma", "")
        _add(item, "rpt", base64.b64encode(rpt.xml).decode("ascii"))
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def _add(parent: etree._Element, name: str, text: str) -> None:
    etree.SubElement(parent, name).text = text


def send_cart(http: requests.Session, settings: Settings, cart_id: str, rpts: Sequence[PreparedRpt],
              timeout: tuple[float, float]) -> str:
    """Call nodoInviaCarrelloRPT; the url of an OK answer, a NodeError otherwise."""
    payload = envelope(settings, cart_id, rpts)
    try:
        response = http.post(settings.effective_nodo_per_pa_url, data=payload, timeout=timeout,
                             headers=headers.soap("nodoInviaCarrelloRPT", settings.node_subscription_key))
    except requests.Timeout as exc:
        raise NodeError(f"nodoInviaCarrelloRPT: no answer in time ({type(exc).__name__})", transport=True) from exc
    except requests.RequestException as exc:
        raise NodeError(f"nodoInviaCarrelloRPT: node unreachable ({type(exc).__name__})", transport=True) from exc
    return parse_answer(response.status_code, response.content)


def _find(element: etree._Element, name: str) -> etree._Element | None:
    # Accept the children qualified or not: nodes differ, and both are valid readings of the contract.
    for child in element.iter():
        if isinstance(child.tag, str) and etree.QName(child).localname == name:
            return child
    return None


def _text(element: etree._Element | None, name: str) -> str | None:
    found = None if element is None else _find(element, name)
    return None if found is None or found.text is None else found.text.strip()


def parse_answer(status: int, content: bytes) -> str:
    try:
        root = safe_xml.parse_bytes(content)
    except Exception as exc:  # noqa: BLE001 - any unreadable answer is the node's failure
        raise NodeError(f"nodoInviaCarrelloRPT: HTTP {status}, unreadable answer ({type(exc).__name__})") from exc
    soap_fault = _find(root, "Fault")
    if soap_fault is not None and etree.QName(soap_fault).namespace == SOAP_NS:
        raise NodeError(f"nodoInviaCarrelloRPT: SOAP fault {_text(soap_fault, 'faultstring')}", code="SOAP_FAULT")
    answer = _find(root, "nodoInviaCarrelloRPTRisposta")
    if answer is None:
        raise NodeError(f"nodoInviaCarrelloRPT: HTTP {status} without a nodoInviaCarrelloRPTRisposta")
    esito = _text(answer, "esitoComplessivoOperazione")
    url = _text(answer, "url")
    if esito == "OK" and url:
        return url
    fault = _find(answer, "fault")
    code = _text(fault, "faultCode") if fault is not None else None
    detail = "; ".join(filter(None, [code, _text(fault, "faultString"), _text(fault, "description")])) \
        if fault is not None else f"esito {esito or 'missing'}"
    raise NodeError(f"nodoInviaCarrelloRPT refused: {detail}", code=code)
