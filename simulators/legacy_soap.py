"""SOAP plumbing of the simulated node's legacy endpoints: tolerant request reading, contract-shaped answers.

Requests are read by local name (any prefix, qualified or not, SOAPAction optional), as hand-built
envelopes do all of that (wire-traps 6); answers use the contract's element names, children unqualified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable
from xml.sax.saxutils import escape

from lxml import etree

from gateway.xml import UnsafeXml, parse_bytes

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
PPT_NS = "http://ws.pagamenti.telematici.gov/"
PPTHEAD_NS = "http://ws.pagamenti.telematici.gov/ppthead"
NODE_ID = "NodoDeiPagamentiSPC"
MAX_BODY = 20 * 1024 * 1024

# faultString of the node's "Dominio Nodo" table: fixed per code, the detail goes in description.
FAULT_STRINGS = {
    "PPT_SINTASSI_EXTRAXSD": "Errore di sintassi extra XSD.",
    "PPT_SINTASSI_XSD": "Errore di sintassi XSD.",
    "PPT_SEMANTICA": "Errore semantico.",
    "PPT_AUTENTICAZIONE": "Errore di autenticazione.",
    "PPT_AUTORIZZAZIONE": "Errore di autorizzazione.",
    "PPT_DOMINIO_SCONOSCIUTO": "Identificativo dominio sconosciuto.",
    "PPT_DOMINIO_DISABILITATO": "Dominio disabilitato.",
    "PPT_INTERMEDIARIO_PA_SCONOSCIUTO": "Identificativo intermediario PA sconosciuto.",
    "PPT_INTERMEDIARIO_PA_DISABILITATO": "Intermediario PA disabilitato.",
    "PPT_STAZIONE_INT_PA_SCONOSCIUTA": "Identificativo stazione intermediario PA sconosciuto.",
    "PPT_STAZIONE_INT_PA_DISABILITATA": "Stazione intermediario PA disabilitata.",
    "PPT_PSP_SCONOSCIUTO": "Identificativo PSP sconosciuto.",
    "PPT_PSP_DISABILITATO": "PSP disabilitato.",
    "PPT_INTERMEDIARIO_PSP_SCONOSCIUTO": "Identificativo intermediario PSP sconosciuto.",
    "PPT_INTERMEDIARIO_PSP_DISABILITATO": "Intermediario PSP disabilitato.",
    "PPT_CANALE_SCONOSCIUTO": "Identificativo canale sconosciuto.",
    "PPT_CANALE_DISABILITATO": "Canale disabilitato.",
    "PPT_CANALE_IRRAGGIUNGIBILE": "Errore di connessione verso il canale.",
    "PPT_CANALE_TIMEOUT": "Timeout in risposta dal canale.",
    "PPT_RPT_DUPLICATA": "RPT duplicata.",
    "PPT_ID_CARRELLO_DUPLICATO": "Identificativo Carrello RPT duplicato",
    "PPT_PAGAMENTO_DUPLICATO": "Pagamento duplicato.",
    "PPT_RPT_SCONOSCIUTA": "RPT sconosciuta.",
    "PPT_RT_SCONOSCIUTA": "RT sconosciuta.",
    "PPT_RT_NONDISPONIBILE": "RT non ancora pronta.",
    "PPT_ID_FLUSSO_SCONOSCIUTO": "Identificativo flusso sconosciuto.",
    "PPT_SUPERAMENTOSOGLIA": "Superamento soglia.",
    "PPT_TIPOFIRMA_SCONOSCIUTO": "Tipo firma sconosciuto.",
    "PPT_SYSTEM_ERROR": "Errore generico.",
}


class NodeFault(Exception):
    """A PPT_* answer: written inside the operation's normal response (HTTP 200, esito KO)."""

    def __init__(self, code: str, description: str = "", serial: int | None = None, id: str = NODE_ID) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.serial = serial
        self.id = id

    @property
    def string(self) -> str:
        return FAULT_STRINGS.get(self.code, self.code)


class Xml:
    """Read-only view of a request element by child local names (namespace-agnostic)."""

    def __init__(self, element: etree._Element | None) -> None:
        self.element = element

    def _children(self, name: str) -> list[etree._Element]:
        if self.element is None:
            return []
        return [c for c in self.element if isinstance(c.tag, str) and etree.QName(c).localname == name]

    def text(self, name: str) -> str | None:
        found = self._children(name)
        if not found:
            return None
        value = (found[0].text or "").strip()
        return value

    def child(self, name: str) -> "Xml":
        found = self._children(name)
        return Xml(found[0] if found else None)

    def children(self, name: str) -> list["Xml"]:
        return [Xml(c) for c in self._children(name)]

    def __bool__(self) -> bool:
        return self.element is not None


@dataclass
class SoapRequest:
    operation: str  # local name of the body's first element
    body: Xml
    header: Xml  # first header element, empty when absent


def read_envelope(data: bytes) -> SoapRequest:
    """Parse an envelope; NodeFault(PPT_SINTASSI_EXTRAXSD) when it is not one."""
    try:
        root = parse_bytes(data)
    except UnsafeXml as exc:
        raise NodeFault("PPT_SINTASSI_EXTRAXSD", str(exc)[:300]) from exc
    if etree.QName(root).localname != "Envelope":
        raise NodeFault("PPT_SINTASSI_EXTRAXSD", "il messaggio non e' una SOAP Envelope")
    env = Xml(root)
    body = env.child("Body")
    first = [c for c in body.element if isinstance(c.tag, str)] if body else []
    if not first:
        raise NodeFault("PPT_SINTASSI_EXTRAXSD", "SOAP Body vuoto")
    header = env.child("Header")
    header_items = [c for c in header.element if isinstance(c.tag, str)] if header else []
    return SoapRequest(etree.QName(first[0]).localname, Xml(first[0]),
                       Xml(header_items[0] if header_items else None))


def envelope(body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_ENV_NS}">'
            f'<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>').encode("utf-8")


def el(name: str, value: Any) -> str:
    """A child element (unqualified); None writes nothing."""
    if value is None:
        return ""
    return f"<{name}>{escape(str(value))}</{name}>"


def fault_xml(fault: NodeFault, tag: str = "fault") -> str:
    return (f"<{tag}>{el('faultCode', fault.code)}{el('faultString', fault.string)}{el('id', fault.id)}"
            f"{el('description', fault.description or None)}{el('serial', fault.serial)}</{tag}>")


def response(operation: str, inner: str, namespace: str = PPT_NS) -> bytes:
    name = operation + "Risposta"
    return envelope(f'<ppt:{name} xmlns:ppt="{namespace}">{inner}</ppt:{name}>')


def soap_fault(message: str, code: str = "Client") -> bytes:
    return envelope(f"<soapenv:Fault><faultcode>soapenv:{code}</faultcode>"
                    f"<faultstring>{escape(message)}</faultstring></soapenv:Fault>")


Handler = Callable[[SoapRequest], str]  # returns the inner XML of <opRisposta>


def soap_app(handlers: dict[str, Handler], on_fault: Callable[[str, NodeFault], str],
             namespace: str = PPT_NS) -> Callable:
    """A WSGI app dispatching on the body root; every NodeFault is answered in the operation's shape."""

    def app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return _send(start_response, "405 Method Not Allowed", b"POST a SOAP envelope\n", "text/plain")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            return _send(start_response, "413 Request Entity Too Large", soap_fault("request too large"))
        data = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
        try:
            request = read_envelope(data)
        except NodeFault as fault:
            return _send(start_response, "500 Internal Server Error", soap_fault(fault.description))
        handler = handlers.get(request.operation)
        if handler is None:
            return _send(start_response, "500 Internal Server Error",
                         soap_fault(f"operazione sconosciuta: {request.operation}"))
        try:
            inner = handler(request)
        except NodeFault as fault:
            inner = on_fault(request.operation, fault)
        except Exception:  # noqa: BLE001 - a simulator bug still answers in the contract's shape
            import logging

            logging.getLogger(__name__).exception("simulator handler failed")
            inner = on_fault(request.operation, NodeFault("PPT_SYSTEM_ERROR", "errore interno del simulatore"))
        return _send(start_response, "200 OK", response(request.operation, inner, namespace))

    return app


def _send(start_response: Callable, status: str, payload: bytes,
          content_type: str = "text/xml; charset=utf-8") -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(payload)))])
    return [payload]
