"""WSGI front of the simulated node's legacy SOAP endpoints (NodoPerPa, NodoPerPsp): dispatch on the body root.

SOAPAction is optional (bare or quoted, never trusted over the body); a PPT_* fault is answered inside the
operation's own response, HTTP 200, as the node does; an unparseable envelope gets a SOAP Fault.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

from lxml import etree

from simulators import soap
from simulators.faults import NodeFault

PPT_NS = "http://ws.pagamenti.telematici.gov/"
PPTHEAD_NS = "http://ws.pagamenti.telematici.gov/ppthead"

log = logging.getLogger(__name__)

# A handler gets the request root and the first SOAP header element (or None) and fills the response root.
Handler = Callable[[soap.Request, "etree._Element | None", etree._Element], None]
FaultWriter = Callable[[etree._Element, NodeFault], None]


def header_element(envelope: etree._Element) -> etree._Element | None:
    for part in envelope:
        if soap.local(part) == "Header":
            for element in part:
                if isinstance(element.tag, str):
                    return element
    return None


def response_root(operation: str) -> etree._Element:
    return etree.Element(f"{{{PPT_NS}}}{operation}Risposta", nsmap={"ppt": PPT_NS})


def soap_app(handlers: dict[str, Handler], fault_writers: dict[str, FaultWriter], max_bytes: int) -> Callable:
    """A WSGI app for one portType; ``fault_writers[op]`` writes the KO shape of that operation."""

    def app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return _send(start_response, "405 Method Not Allowed", b"POST a SOAP envelope\n", "text/plain")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > max_bytes:
            return _send(start_response, "413 Request Entity Too Large",
                         soap.soap_fault("PPT_SINTASSI_EXTRAXSD", "richiesta troppo grande"))
        data = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
        try:
            envelope = soap.parse(data)
            root = soap.body_root(envelope)
        except soap.BadXml as exc:
            return _send(start_response, "500 Internal Server Error",
                         soap.soap_fault("PPT_SINTASSI_EXTRAXSD", str(exc)[:300]))
        operation = soap.local(root)
        handler = handlers.get(operation)
        if handler is None:
            return _send(start_response, "500 Internal Server Error",
                         soap.soap_fault("PPT_SINTASSI_EXTRAXSD", f"operazione sconosciuta: {operation}"))
        answer = response_root(operation)
        try:
            handler(soap.Request(root), header_element(envelope), answer)
        except NodeFault as fault:
            answer = response_root(operation)
            fault_writers[operation](answer, fault)
        except Exception:  # noqa: BLE001 - a simulator bug still answers in the contract's shape
            log.exception("legacy node handler failed", extra={"operation": operation})
            answer = response_root(operation)
            fault_writers[operation](answer, NodeFault("PPT_SYSTEM_ERROR", "errore interno del simulatore"))
        return _send(start_response, "200 OK", soap.envelope(answer))

    return app


def esito_ko(answer: etree._Element, fault: NodeFault, field: str = "esito") -> None:
    """risposta = fault first, then the operation's own esito field set to KO."""
    soap.fault_bean(answer, fault)
    soap.add(answer, field, "KO")


def fault_only(answer: etree._Element, fault: NodeFault) -> None:
    soap.fault_bean(answer, fault)


def _send(start_response: Callable, status: str, payload: bytes,
          content_type: str = "text/xml; charset=utf-8") -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(payload)))])
    return [payload]
