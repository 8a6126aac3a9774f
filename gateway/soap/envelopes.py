"""Envelopes the gateway writes itself: contract faults for requests Spyne never gets to see.

A request that is too large, not XML, carries a DTD, or does not deserialise still deserves the
contract's own answer when its operation can be told (from the body root or the SOAPAction): the
operation's response element carrying a faultBean. Otherwise a plain SOAP 1.1 Fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable
from xml.sax.saxutils import escape

from gateway.faults import Fault

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
_ROOT_RE = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?Body\b[^>]*>\s*<(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)")


def _wrap(body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV_NS}"><soapenv:Body>{body}</soapenv:Body>'
            f'</soapenv:Envelope>').encode()


def fault_bean_xml(fault: Fault, tag: str = "fault") -> str:
    parts = [f"<faultCode>{escape(fault.code)}</faultCode>",
             f"<faultString>{escape(fault.string or fault.code)}</faultString>",
             f"<id>{escape(fault.id or '')}</id>"]
    if fault.description:
        parts.append(f"<description>{escape(fault.description)}</description>")
    if fault.serial is not None:
        parts.append(f"<serial>{int(fault.serial)}</serial>")
    return f"<{tag}>{''.join(parts)}</{tag}>"


def soap_fault(code: str, message: str) -> bytes:
    """A SOAP 1.1 Fault; ``code`` is Client or Server."""
    return _wrap(f"<soapenv:Fault><faultcode>soapenv:{code}</faultcode>"
                 f"<faultstring>{escape(message)}</faultstring></soapenv:Fault>")


@dataclass(frozen=True)
class OperationShape:
    """Enough of an operation's response to write its fault answer by hand."""

    response_element: str
    # Elements written after the faultBean, e.g. ("esito", "KO"); ctResponse writes outcome first instead.
    trailer: tuple[tuple[str, str], ...] = ()
    outcome_first: bool = False
    wrapper: str | None = None  # PaPerNodo wraps the result bean in an element of the same name


@dataclass(frozen=True)
class ContractFaults:
    namespace: str
    operations: dict[str, OperationShape]  # request root element -> response shape
    soap_actions: dict[str, str]  # SOAPAction -> request root element

    def operation_of(self, body: bytes, soap_action: str | None) -> str | None:
        match = _ROOT_RE.search(body[:4096])
        if match:
            name = match.group(1).decode("ascii", "replace")
            if name in self.operations:
                return name
        if soap_action:
            return self.soap_actions.get(soap_action.strip().strip('"'))
        return None

    def envelope(self, operation: str, fault: Fault) -> bytes:
        shape = self.operations[operation]
        trailer = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in shape.trailer)
        bean = fault_bean_xml(fault)
        inner = trailer + bean if shape.outcome_first else bean + trailer
        if shape.wrapper:
            inner = f"<{shape.wrapper}>{inner}</{shape.wrapper}>"
        return _wrap(f'<ns:{shape.response_element} xmlns:ns="{self.namespace}">{inner}</ns:{shape.response_element}>')


FaultFactory = Callable[[str, str], Fault]
