"""Spyne plumbing shared by every contract.

The reference contracts declare no ``elementFormDefault``: the request/response root is in the service
namespace, every child is in *no* namespace. Spyne reads children by local name (so it accepts both
forms), but writes them qualified; ``unqualify_children`` rewrites the answer before it is serialised.

``operation`` is the one decorator every SOAP method uses: bare document/literal binding, request
context, structured log fields, metrics, and the translation of a ``Fault`` (or any unexpected error)
into the operation's own response carrying a ``faultBean``.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, Iterable

from lxml import etree
from spyne import Application, const as spyne_const, rpc
from spyne.protocol.soap import Soap11

from gateway import faults, logs, metrics

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
_BODY = f"{{{SOAP_ENV_NS}}}Body"
_FAULT = f"{{{SOAP_ENV_NS}}}Fault"

log = logs.get_logger(__name__)


def unqualify_children(ctx: Any) -> None:
    document = ctx.out_document
    if document is None:
        return
    body = document.find(_BODY)
    if body is None:
        return
    for top in body:
        if top.tag == _FAULT:
            continue
        for element in list(top.iterdescendants()):
            if element.get(_XSI_NIL) == "true":
                # MyPay (JAXB) leaves an empty field out; Spyne would write xsi:nil="true" for it.
                element.getparent().remove(element)
                continue
            tag = element.tag
            if isinstance(tag, str) and tag[:1] == "{":
                element.tag = tag.split("}", 1)[1]
    etree.cleanup_namespaces(document)


# Spyne runs a full gc.collect() at most once a second in every worker, to close file descriptors it
# never opens here: ~80 ms stalls that showed up as p99 spikes in the benchmark. Python's own collector
# is enough for this workload.
spyne_const.MIN_GC_INTERVAL = float("inf")


def build_application(services: Iterable[type], tns: str, name: str) -> Application:
    """A Spyne application whose elements live in ``tns`` with unqualified children, no validation.

    Validation is the gateway's job (hardened parse before Spyne, business checks after), because the
    contract's answer to a bad request is a faultBean, not Spyne's generic SOAP Fault.
    """
    app = Application(list(services), tns=tns, name=name,
                      in_protocol=Soap11(validator=None), out_protocol=Soap11(cleanup_namespaces=True))
    app.event_manager.add_listener("method_return_document", unqualify_children)
    return app


FaultMapper = Callable[[type, faults.Fault, Any], Any]


def _caller_id(ctx: Any, request: Any) -> str:
    """Who the fault is about: the ente or dominio named in the body or in the SOAP header."""
    for source in (request, *(ctx.in_header if isinstance(ctx.in_header, (list, tuple)) else (ctx.in_header,))):
        for field in ("codIpaEnte", "idPA", "identificativoDominio"):
            value = getattr(source, field, None)
            if isinstance(value, str) and value:
                return value
    return ""


def operation(request_type: type, response_type: type, *, service: str,
              fault_response: FaultMapper, header: type | None = None,
              request_element: str | None = None, response_element: str | None = None) -> Callable:
    """Declare a bare document/literal operation: ``<request_type>`` in, ``<response_type>`` out.

    The request root element is named after the method unless ``request_element`` says otherwise
    (paForNode's ``paVerifyPaymentNoticeReq``); the response root after ``response_type`` unless
    ``response_element`` is given.

    ``fault_response(response_type, fault, request)`` builds the answer for a Fault; unexpected
    exceptions become PAA_SYSTEM_ERROR (logged with their stack, never sent to the client).
    """

    def decorate(function: Callable) -> Any:
        name = function.__name__

        @functools.wraps(function)
        def wrapper(ctx: Any, request: Any) -> Any:
            started = time.perf_counter()
            logs.bind_request(operation=name)
            metrics.REQUESTS.labels(service, name).inc()
            try:
                return function(ctx, request)
            except faults.Fault as fault:
                metrics.FAULTS.labels(service, name, fault.code).inc()
                log.info("fault", fault_code=fault.code, fault_string=fault.string)
                return fault_response(response_type, fault, request)
            except Exception:  # noqa: BLE001 - the contract answers PAA_SYSTEM_ERROR, never a stack trace
                log.exception("unexpected error")
                metrics.FAULTS.labels(service, name, faults.PAA_SYSTEM_ERROR).inc()
                fault = faults.system_error("Errore interno del gateway", _caller_id(ctx, request))
                return fault_response(response_type, fault, request)
            finally:
                metrics.LATENCY.labels(service, name).observe(time.perf_counter() - started)

        kwargs: dict[str, Any] = dict(_body_style="bare", _returns=response_type,
                                      _in_message_name=request_element or name,
                                      _out_message_name=response_element or response_type.get_type_name())
        if header is not None:
            kwargs["_in_header"] = header if isinstance(header, tuple) else (header,)  # spyne wants a tuple
        return rpc(request_type, **kwargs)(wrapper)

    return decorate
