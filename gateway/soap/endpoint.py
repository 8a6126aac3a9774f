"""One SOAP endpoint: the guard in front of a Spyne application.

It serves the project's own WSDL on ``?wsdl``, bounds the body size, parses the body once with the
hardened parser (no DTD, no entities, bounded depth), and turns whatever Spyne would answer with a
generic SOAP Fault (unknown operation, undecodable field) into the contract's faultBean when the
operation can be told. Only then does Spyne see the request.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from lxml import etree
from spyne.server.wsgi import WsgiApplication

from gateway import faults, logs, metrics
from gateway.runtime import Runtime
from gateway.soap.envelopes import ContractFaults, soap_fault
from gateway.xml import UnsafeXml, local_name, parse_bytes

log = logs.get_logger(__name__)

_XML_HEADERS = [("Content-Type", "text/xml; charset=utf-8")]
_ADDRESS_RE = re.compile(rb'(<(?:[\w.-]+:)?address\b[^>]*\blocation=")[^"]*(")')


@dataclass(frozen=True)
class Contract:
    name: str  # service name, used in metrics and logs
    path: str  # URL path, e.g. /ente/PagamentiTelematiciDovutiPagati
    wsdl_file: Path
    faults: ContractFaults
    malformed_code: str  # body not XML / DTD / too deep / too large
    invalid_code: str  # XML, but not a valid request of the operation
    fault_id: Callable[[etree._Element | None], str] = lambda _root: ""
    # Given the Runtime, a dispatcher answering hot operations without Spyne (None: all go to Spyne).
    fast: Callable[[Runtime], Callable[[etree._Element, str | None, bytes], bytes | None] | None] | None = None


class SoapEndpoint:
    def __init__(self, contract: Contract, spyne_app: Any, runtime: Runtime) -> None:
        self.contract = contract
        self.spyne = WsgiApplication(spyne_app)
        self.fast = contract.fast(runtime) if contract.fast is not None else None
        self.max_bytes = runtime.settings.max_request_bytes
        location = (runtime.settings.public_url.rstrip("/") + contract.path).encode()
        self.wsdl = _ADDRESS_RE.sub(lambda m: m.group(1) + location + m.group(2), contract.wsdl_file.read_bytes())

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "GET":
            if environ.get("QUERY_STRING", "").lower().startswith("wsdl"):
                start_response("200 OK", _XML_HEADERS + [("Content-Length", str(len(self.wsdl)))])
                return [self.wsdl]
            return _answer(start_response, "405 Method Not Allowed",
                           soap_fault("Client", "POST a SOAP envelope, or GET ?wsdl"))
        if method != "POST":
            return _answer(start_response, "405 Method Not Allowed", soap_fault("Client", "method not allowed"))

        soap_action = environ.get("HTTP_SOAPACTION")
        body, too_large = _read_body(environ, self.max_bytes)
        if too_large:
            metrics.FAULTS.labels(self.contract.name, "unknown", "REQUEST_TOO_LARGE").inc()
            log.warning("request too large", limit=self.max_bytes)
            return self._contract_fault(start_response, body, soap_action, self.contract.malformed_code,
                                        f"request larger than {self.max_bytes} bytes", status="413 Payload Too Large")
        try:
            envelope = parse_bytes(body)
        except UnsafeXml as exc:
            return self._contract_fault(start_response, body, soap_action, self.contract.malformed_code, str(exc))
        request_root = _body_root(envelope)
        if request_root is None or request_root.tag.split("}")[0].lstrip("{") != self.contract.faults.namespace \
                or local_name(request_root) not in self.contract.faults.operations:
            return self._contract_fault(start_response, body, soap_action, self.contract.invalid_code,
                                        "not a SOAP envelope with a request of this service", root=request_root)

        if self.fast is not None:
            answer = self.fast(request_root, environ.get("CONTENT_TYPE"), body)
            if answer is not None:
                return _answer(start_response, "200 OK", answer)

        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list, exc_info: Any = None) -> Callable:
            captured["status"], captured["headers"] = status, headers
            return lambda _data: None

        try:
            chunks = b"".join(self.spyne(environ, capture))
        except Exception as exc:  # noqa: BLE001 - e.g. invalid base64: Spyne lets the decoder's error escape
            log.info("request did not deserialise", error=type(exc).__name__)
            return self._contract_fault(start_response, body, soap_action, self.contract.invalid_code,
                                        f"request not valid for the operation ({type(exc).__name__})",
                                        root=request_root)
        if captured.get("status", "").startswith("200"):
            start_response(captured["status"], captured["headers"])
            return [chunks]
        # Spyne answered a SOAP Fault: the request did not deserialise (wrong type, bad base64...).
        detail = _fault_string(chunks) or "request not valid for the operation"
        code = self.contract.invalid_code if b"Client" in chunks[:2000] else faults.PAA_SYSTEM_ERROR
        log.info("request rejected by the deserialiser", detail=detail)
        return self._contract_fault(start_response, body, soap_action, code, detail, root=request_root)

    def _contract_fault(self, start_response: Callable, body: bytes, soap_action: str | None, code: str,
                        description: str, *, root: etree._Element | None = None,
                        status: str = "200 OK") -> Iterable[bytes]:
        operation = local_name(root) if root is not None else None
        if operation not in self.contract.faults.operations:
            operation = self.contract.faults.operation_of(body, soap_action)
        logs.bind_request(operation=operation or "unknown")
        metrics.FAULTS.labels(self.contract.name, operation or "unknown", code).inc()
        if operation is None:
            return _answer(start_response, "500 Internal Server Error" if status.startswith("200") else status,
                           soap_fault("Client", f"{code}: {description}"))
        fault = faults.Fault(code, description=description[:1000], id=self.contract.fault_id(root))
        if code == faults.PAA_SYSTEM_ERROR:
            fault.string = faults.FAULT_STRINGS[faults.PAA_SYSTEM_ERROR]
        return _answer(start_response, status, self.contract.faults.envelope(operation, fault))


def _answer(start_response: Callable, status: str, payload: bytes) -> list[bytes]:
    start_response(status, _XML_HEADERS + [("Content-Length", str(len(payload)))])
    return [payload]


def _read_body(environ: dict[str, Any], limit: int) -> tuple[bytes, bool]:
    """Read at most ``limit`` bytes; a larger body is drained in chunks (never held) and reported."""
    stream = environ["wsgi.input"]
    try:
        declared = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        declared = -1
    head = stream.read(min(limit + 1, declared) if declared >= 0 else limit + 1)
    if len(head) <= limit and (declared < 0 or declared <= limit):
        return head, False
    remaining = declared - len(head) if declared >= 0 else None
    while remaining is None or remaining > 0:  # drain so the connection stays usable
        chunk = stream.read(65536 if remaining is None else min(65536, remaining))
        if not chunk:
            break
        if remaining is not None:
            remaining -= len(chunk)
    return head[:4096], True


def _body_root(envelope: etree._Element) -> etree._Element | None:
    if local_name(envelope) != "Envelope":
        return None
    for child in envelope:
        if local_name(child) == "Body":
            for element in child:
                if isinstance(element.tag, str):
                    return element
    return None


def _fault_string(payload: bytes) -> str | None:
    try:
        root = parse_bytes(payload)
    except UnsafeXml:
        return None
    for element in root.iter():
        if local_name(element) == "faultstring":
            return (element.text or "").strip()[:500]
    return None
