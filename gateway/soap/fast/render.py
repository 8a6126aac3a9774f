"""String builders for paForNode answers, byte for byte what Spyne writes for the same values.

Spyne's output after ``unqualify_children``: declaration with single quotes and a newline, envelope
prefix ``soap11env``, response root ``tns:`` in the paForNode namespace, children unqualified, nothing
written for None, amounts ``{:.2f}``, booleans ``true``/``false``, dates ISO, text escaped as libxml2
escapes it (``& < >`` and carriage return). tests/contract/test_fast_path.py holds the two paths equal.
"""

from __future__ import annotations

import base64
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Iterable

from gateway import faults
from gateway.payments.notices import Subject, Transfer
from gateway.soap.common import SOAP_ENV_NS
from gateway.soap.pa_for_node_models import OUTCOME_KO, PAFN_NS

_HEAD = ("<?xml version='1.0' encoding='UTF-8'?>\n"
         f'<soap11env:Envelope xmlns:soap11env="{SOAP_ENV_NS}" xmlns:tns="{PAFN_NS}"><soap11env:Body>')
_TAIL = "</soap11env:Body></soap11env:Envelope>"
# What lxml refuses to serialise ("All strings must be XML compatible"): controls, surrogates, U+FFFE/F.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})


class NotSerialisable(ValueError):
    """A value lxml (hence Spyne) could not write."""


def esc(value: str) -> str:
    if _NOT_XML.search(value):
        raise NotSerialisable("All strings must be XML compatible")
    return value.translate(_ESCAPES)


def leaf(name: str, value: str | None) -> str:
    if value is None:
        return ""
    if value == "":
        return f"<{name}></{name}>"
    return f"<{name}>{esc(value)}</{name}>"


def node(name: str, inner: str) -> str:
    # lxml closes an element without content on itself.
    return f"<{name}>{inner}</{name}>" if inner else f"<{name}/>"


def amount(name: str, value: Decimal | None) -> str:
    return "" if value is None else f"<{name}>{value:.2f}</{name}>"


def integer(name: str, value: int | None) -> str:
    return "" if value is None else f"<{name}>{int(value)}</{name}>"


def boolean(name: str, value: bool | None) -> str:
    return "" if value is None else f"<{name}>{'true' if value else 'false'}</{name}>"


def a_date(name: str, value: date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.date()
    return f"<{name}>{value.isoformat()}</{name}>"


def a_datetime(name: str, value: datetime | None) -> str:
    return "" if value is None else f"<{name}>{value.isoformat()}</{name}>"


def binary(name: str, value: bytes | None) -> str:
    return "" if value is None else f"<{name}>{base64.b64encode(value).decode('ascii')}</{name}>"


def envelope(response_element: str, inner: str) -> bytes:
    return f"{_HEAD}<tns:{response_element}>{inner}</tns:{response_element}>{_TAIL}".encode()


def fault_answer(response_element: str, fault: faults.Fault, default_id: str | None) -> bytes:
    """``pa_for_node_models.fault_response``: outcome KO and the faultBean (id falls back to idPA)."""
    bean = (leaf("faultCode", fault.code) + leaf("faultString", fault.string)
            + leaf("id", fault.id or default_id or "") + leaf("description", fault.description)
            + integer("serial", fault.serial))
    return envelope(response_element, leaf("outcome", OUTCOME_KO) + node("fault", bean))


def subject(name: str, value: Subject) -> str:
    uid = node("uniqueIdentifier", leaf("entityUniqueIdentifierType", value.type)
               + leaf("entityUniqueIdentifierValue", value.code))
    return node(name, uid + leaf("fullName", value.full_name) + leaf("streetName", value.street)
                + leaf("civicNumber", value.civic) + leaf("postalCode", value.postal_code)
                + leaf("city", value.city) + leaf("stateProvinceRegion", value.province)
                + leaf("country", value.country) + leaf("e-mail", value.email))


def metadata(entries: tuple[tuple[str, str], ...]) -> str:
    if not entries:
        return ""
    return node("metadata", "".join(node("mapEntry", leaf("key", k) + leaf("value", v)) for k, v in entries))


def _stamp(stamp: dict | None) -> str:
    if not stamp:
        return ""
    return node("richiestaMarcaDaBollo", binary("hashDocumento", stamp.get("hashDocumento"))
                + leaf("tipoBollo", stamp.get("tipoBollo"))
                + leaf("provinciaResidenza", stamp.get("provinciaResidenza")))


def transfers(items: Iterable[Transfer], *, v2: bool) -> str:
    parts = []
    for t in items:
        head = integer("idTransfer", t.id_transfer) + amount("transferAmount", t.amount) \
            + leaf("fiscalCodePA", t.fiscal_code_pa)
        if v2:
            middle = leaf("companyName", t.company_name) + leaf("IBAN", t.iban) + _stamp(t.marca_bollo)
        else:
            middle = leaf("IBAN", t.iban)
        parts.append(node("transfer", head + middle + leaf("remittanceInformation", t.remittance)
                          + leaf("transferCategory", t.category) + metadata(t.metadata)))
    return node("transferList", "".join(parts))
