"""Fast path for the hot paForNode operations: read the parsed envelope with lxml, answer from string builders.

Spyne keeps the WSDL and every other operation, and every request the fast readers cannot read with
certainty. What the node sees is the same either way: same bytes, same faults, same logs and metrics
(see gateway.soap.common.operation, which this mirrors). ENTE_GATEWAY_FAST_PATH=0 turns it off.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable

from lxml import etree
from prometheus_client import Counter

from gateway import faults, logs, metrics
from gateway.runtime import Runtime
from gateway.soap.common import SOAP_ENV_NS
from gateway.soap.fast import get_payment, read, render, send_rt, verify

log = logs.get_logger(__name__)

SERVICE = "paForNode"  # metrics label, as gateway.soap.pa_for_node
_ENVELOPE = f"{{{SOAP_ENV_NS}}}Envelope"
_BODY = f"{{{SOAP_ENV_NS}}}Body"
_CHARSET_RE = re.compile(r";\s*charset\s*=\s*\"?([^\";\s]*)", re.IGNORECASE)
_UTF8 = ("utf-8", "utf8")

# How many requests each path answered: "fast", or "spyne" when the fast readers handed one over.
DISPATCHED = Counter("ente_gateway_fast_path_total", "Hot paForNode requests by the path that answered them",
                     ["operation", "path"])


@dataclass(frozen=True)
class Operation:
    name: str  # the operation, as in logs and metrics
    response_element: str
    read: Callable[[etree._Element], Any]  # raises read.Unreadable; the result has .id_pa
    answer: Callable[[Runtime, Any], str]  # the response element's content


# Request root element (local name) -> operation. The dispatcher table.
OPERATIONS: dict[str, Operation] = {
    "paVerifyPaymentNoticeReq": Operation("paVerifyPaymentNotice", "paVerifyPaymentNoticeRes",
                                          verify.read_request, verify.answer),
    "paGetPaymentReq": Operation("paGetPayment", "paGetPaymentRes", get_payment.read_request, get_payment.answer_v1),
    "paGetPaymentV2Request": Operation("paGetPaymentV2", "paGetPaymentV2Response", get_payment.read_request,
                                       get_payment.answer_v2),
    "paSendRTReq": Operation("paSendRT", "paSendRTRes", send_rt.read_v1, send_rt.answer),
    "paSendRTV2Request": Operation("paSendRTV2", "paSendRTV2Response", send_rt.read_v2, send_rt.answer),
}


@dataclass(frozen=True)
class _Meters:
    """An operation's metric children, resolved once: ``labels()`` costs more than the increment itself."""

    fast: Any
    spyne: Any
    requests: Any
    latency: Any

    @classmethod
    def of(cls, name: str) -> "_Meters":
        return cls(DISPATCHED.labels(name, "fast"), DISPATCHED.labels(name, "spyne"),
                   metrics.REQUESTS.labels(SERVICE, name), metrics.LATENCY.labels(SERVICE, name))


class FastPath:
    """Called by the endpoint after the hardened parse; None means "let Spyne answer"."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.meters = {operation.name: _Meters.of(operation.name) for operation in OPERATIONS.values()}

    def __call__(self, root: etree._Element, content_type: str | None, body: bytes) -> bytes | None:
        operation = OPERATIONS.get(etree.QName(root).localname)
        if operation is None:
            return None
        try:
            if not _spyne_reads_it_alike(root, content_type, body):
                raise read.Unreadable("envelope or encoding")
            request = operation.read(root)
        except read.Unreadable as exc:
            self.meters[operation.name].spyne.inc()
            log.debug("fast path hands over to Spyne", reason=str(exc)[:100])
            return None
        self.meters[operation.name].fast.inc()
        return self._run(operation, request)

    def _run(self, operation: Operation, request: Any) -> bytes:
        started = time.perf_counter()
        meters = self.meters[operation.name]
        logs.bind_request(operation=operation.name)
        meters.requests.inc()
        try:
            inner = self._answer(operation, request)
        finally:
            meters.latency.observe(time.perf_counter() - started)
        if isinstance(inner, bytes):
            return inner
        return render.envelope(operation.response_element, inner)

    def _answer(self, operation: Operation, request: Any) -> str | bytes:
        try:
            return operation.answer(self.runtime, request)
        except faults.Fault as fault:
            metrics.FAULTS.labels(SERVICE, operation.name, fault.code).inc()
            log.info("fault", fault_code=fault.code, fault_string=fault.string)
            return render.fault_answer(operation.response_element, fault, request.id_pa)
        except Exception:  # noqa: BLE001 - the contract answers PAA_SYSTEM_ERROR, never a stack trace
            log.exception("unexpected error")
            metrics.FAULTS.labels(SERVICE, operation.name, faults.PAA_SYSTEM_ERROR).inc()
            fault = faults.system_error("Errore interno del gateway")
            return render.fault_answer(operation.response_element, fault, request.id_pa)


def _spyne_reads_it_alike(root: etree._Element, content_type: str | None, body: bytes) -> bool:
    """Spyne would see the same request: SOAP 1.1 envelope, root first in Body, bytes decoded the same way."""
    if not content_type or "multipart" in content_type.lower():
        return False  # Spyne refuses a POST without Content-Type, and unpacks SwA itself
    charset = _CHARSET_RE.search(content_type)
    if charset is not None:
        # Spyne decodes the body with the header's charset before parsing; only UTF-8 agrees with the parser.
        if charset.group(1).lower() not in _UTF8 or body[:3] == b"\xef\xbb\xbf" \
                or (root.getroottree().docinfo.encoding or "UTF-8").lower() not in _UTF8:
            return False
    body_element = root.getparent()
    if body_element is None or body_element.tag != _BODY or body_element[0] is not root:
        return False
    envelope = body_element.getparent()
    return envelope is not None and envelope.tag == _ENVELOPE and envelope.getparent() is None


def for_runtime(runtime: Runtime) -> FastPath | None:
    """The contract's fast dispatcher, or None when ENTE_GATEWAY_FAST_PATH is off."""
    return FastPath(runtime) if runtime.settings.fast_path else None
