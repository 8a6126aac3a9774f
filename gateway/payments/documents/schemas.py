"""Validation of payload documents against the project's own xsd/ schemas (compiled once per process)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from lxml import etree

from gateway.settings import XSD_DIR
from gateway.xml import UnsafeXml, load_schema, parse_bytes

from .common import ENTE_NS, PAY_NS, DocumentInvalid

Kind = Literal["Dovuti", "Versamento", "DovutiEntiSecondari", "Pagati", "PagatiConRicevuta",
               "RPT", "RT", "FlussoRiversamento"]

DOVUTI_PAGATI_XSD = "PagInf_Dovuti_Pagati_6_2_0.xsd"
RPT_RT_XSD = "PagInf_RPT_RT_6_2_0.xsd"
FLUSSO_XSD = "FlussoRiversamento_1_0_4.xsd"

# kind -> (schema file, namespace of the root). The root name is the kind itself.
KINDS: dict[str, tuple[str, str]] = {
    "Dovuti": (DOVUTI_PAGATI_XSD, ENTE_NS),
    "Versamento": (DOVUTI_PAGATI_XSD, ENTE_NS),
    "DovutiEntiSecondari": (DOVUTI_PAGATI_XSD, ENTE_NS),
    "Pagati": (DOVUTI_PAGATI_XSD, ENTE_NS),
    "PagatiConRicevuta": (DOVUTI_PAGATI_XSD, ENTE_NS),
    "RPT": (RPT_RT_XSD, PAY_NS),
    "RT": (RPT_RT_XSD, PAY_NS),
    "FlussoRiversamento": (FLUSSO_XSD, PAY_NS),
}


def schema_path(kind: str) -> Path:
    return XSD_DIR / KINDS[kind][0]


def schema_for(kind: str) -> etree.XMLSchema:
    # load_schema is cached on the path: each file is compiled once per process.
    return load_schema(schema_path(kind))


def validate(kind: Kind, data: bytes) -> etree._Element:
    """Hardened parse of ``data`` and validation as a ``kind`` document; returns the root element.

    Raises DocumentInvalid whose message (the first problem, with its line) fits a faultBean
    description. The xsi:schemaLocation hint of a document is never followed.
    """
    if kind not in KINDS:
        raise KeyError(f"unknown document kind {kind!r}")
    try:
        root = parse_bytes(data)
    except UnsafeXml as exc:
        raise DocumentInvalid(str(exc)) from exc
    return validate_element(kind, root)


def validate_element(kind: Kind, root: etree._Element) -> etree._Element:
    """Validate an element already parsed through gateway.xml (e.g. a builder's own output)."""
    _, ns = KINDS[kind]
    # The schema has several global elements: without this a Pagati would pass as a Dovuti request.
    if root.tag != f"{{{ns}}}{kind}":
        raise DocumentInvalid(f"line {root.sourceline}: root element {_describe(root.tag)} is not "
                              f"'{kind}' in namespace '{ns}'")
    try:
        # assertValid hands the errors back on the exception, not on the shared schema object.
        schema_for(kind).assertValid(root)
    except etree.DocumentInvalid as exc:
        raise DocumentInvalid(_first_error(exc)) from exc
    return root


def _describe(tag: object) -> str:
    if not isinstance(tag, str):
        return repr(tag)
    if tag.startswith("{"):
        ns, local = tag[1:].split("}", 1)
        return f"'{local}' in namespace '{ns}'"
    return f"'{tag}' in no namespace"


def _first_error(exc: etree.DocumentInvalid) -> str:
    errors = list(exc.error_log)
    if not errors:
        return str(exc)
    first = errors[0]
    return f"line {first.line}: {first.message}"
