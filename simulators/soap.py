"""SOAP 1.1 plumbing of the simulator: hardened parsing, envelopes, faultBeans, request field checks.

Children of the request/response roots are unqualified, as in the pagoPA schemas (no elementFormDefault).
Requests are read by local name, so any prefix, header or whitespace layout works.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

from lxml import etree

from simulators.faults import NodeFault

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_DTD_RE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                          remove_comments=True, remove_pis=True, huge_tree=False)


class BadXml(ValueError):
    """Not acceptable XML (malformed, DTD, entity)."""


def parse(data: bytes) -> etree._Element:
    if _DTD_RE.search(data):
        raise BadXml("DTD and entity declarations are not accepted")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise BadXml(str(exc)) from exc
    if root is None:
        raise BadXml("empty document")
    return root


def local(element: Any) -> str:
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def namespace(element: Any) -> str:
    tag = element.tag
    return tag[1:].split("}", 1)[0] if isinstance(tag, str) and tag.startswith("{") else ""


def body_root(envelope: etree._Element) -> etree._Element:
    """The first element inside soap:Body (or BadXml)."""
    if local(envelope) != "Envelope":
        raise BadXml("not a SOAP envelope")
    for child in envelope:
        if local(child) == "Body":
            for element in child:
                if isinstance(element.tag, str):
                    return element
    raise BadXml("empty SOAP body")


def child(element: etree._Element | None, name: str) -> etree._Element | None:
    if element is None:
        return None
    for item in element:
        if local(item) == name:
            return item
    return None


def children(element: etree._Element | None, name: str) -> list[etree._Element]:
    return [] if element is None else [item for item in element if local(item) == name]


def text(element: etree._Element | None, name: str) -> str | None:
    found = child(element, name)
    if found is None or found.text is None:
        return None
    return found.text.strip()


def envelope(payload: etree._Element, header: etree._Element | None = None) -> bytes:
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soapenv": SOAP_ENV})
    head = etree.SubElement(env, f"{{{SOAP_ENV}}}Header")
    if header is not None:
        head.append(header)
    etree.SubElement(env, f"{{{SOAP_ENV}}}Body").append(payload)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def soap_fault(code: str, message: str) -> bytes:
    """A genuine SOAP Fault, for envelopes the simulator cannot even attribute to an operation."""
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soapenv": SOAP_ENV})
    body = etree.SubElement(env, f"{{{SOAP_ENV}}}Body")
    fault = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(fault, "faultcode").text = "soapenv:Client"
    etree.SubElement(fault, "faultstring").text = f"{code}: {message}"
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def add(parent: etree._Element, name: str, value: Any) -> etree._Element | None:
    """Append ``<name>value</name>`` unless value is None."""
    if value is None:
        return None
    element = etree.SubElement(parent, name)
    element.text = value if isinstance(value, str) else str(value)
    return element


def fault_bean(parent: etree._Element, fault: NodeFault, name: str = "fault") -> etree._Element:
    bean = etree.SubElement(parent, name)
    add(bean, "faultCode", fault.code)
    add(bean, "faultString", fault.string)
    add(bean, "id", fault.fault_id)
    add(bean, "description", fault.description or fault.string)
    add(bean, "serial", fault.serial)
    if fault.original_code:
        add(bean, "originalFaultCode", fault.original_code)
        add(bean, "originalFaultString", fault.original_string)
        add(bean, "originalDescription", fault.original_description)
    return bean


class Request:
    """Typed access to the unqualified children of a request root; bad values raise PPT_SINTASSI_XSD."""

    def __init__(self, root: etree._Element) -> None:
        self.root = root

    @staticmethod
    def _syntax(message: str) -> NodeFault:
        return NodeFault("PPT_SINTASSI_XSD", message)

    def text(self, path: str, *, required: bool = True, pattern: str | None = None, min_len: int = 1,
             max_len: int | None = None, choices: Iterable[str] | None = None) -> str | None:
        element: etree._Element | None = self.root
        for name in path.split("/"):
            element = child(element, name)
        value = element.text.strip() if element is not None and element.text is not None else None
        if value is None or value == "":
            if required:
                raise self._syntax(f"{path}: elemento obbligatorio mancante")
            return None
        if len(value) < min_len or (max_len is not None and len(value) > max_len):
            raise self._syntax(f"{path}: lunghezza non valida")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise self._syntax(f"{path}: valore non valido")
        if choices is not None and value not in set(choices):
            raise self._syntax(f"{path}: valore non ammesso")
        return value

    def element(self, path: str) -> etree._Element | None:
        element: etree._Element | None = self.root
        for name in path.split("/"):
            element = child(element, name)
        return element


AMOUNT = r"\d+\.\d{2}"
FISCAL_CODE = r"[0-9]{11}"
NOTICE_NUMBER = r"[0-9]{18}"
DATE = r"\d{4}-\d{2}-\d{2}"

Handler = Callable[..., etree._Element]
