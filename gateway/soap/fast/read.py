"""Strict readers over the already-parsed request: a value is returned only when Spyne would read the same.

Anything unusual (an attribute, a repeated or unknown child, surrounding whitespace, an empty or mixed
element, a value outside the plain lexical form) raises ``Unreadable`` and the request goes to Spyne,
whose answer to odd input is the contract's. Children are read by local name, unqualified or in the
paForNode namespace, as Spyne does.
"""

from __future__ import annotations

import base64
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Iterable

from lxml import etree

from gateway.soap.pa_for_node_models import PAFN_NS


class Unreadable(Exception):
    """The fast path cannot read this request with certainty: Spyne answers it."""


_OWN_NS = "{" + PAFN_NS + "}"
_DECIMAL_RE = re.compile(r"-?[0-9]{1,18}(\.[0-9]{1,18})?")
_INTEGER_RE = re.compile(r"[0-9]{1,9}")
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
# Spyne's DateTime grammar (utc, offset, local), matched whole here where Spyne only matches a prefix.
_DATETIME_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
                          r"(?:(Z)|([+-][0-9]{2}):([0-9]{2}))?")
_BASE64_RE = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")

Fields = dict[str, etree._Element]


def children(element: etree._Element, allowed: frozenset[str], required: Iterable[str] = (),
             repeated: frozenset[str] = frozenset()) -> dict[str, list[etree._Element]]:
    """The element's children by local name; every one known, each at most once unless ``repeated``."""
    if element.attrib or (element.text is not None and element.text.strip()):
        raise Unreadable(element.tag)
    found: dict[str, list[etree._Element]] = {}
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or (child.tail is not None and child.tail.strip()):
            raise Unreadable("unexpected node")
        if tag[0] == "{":
            if not tag.startswith(_OWN_NS):
                raise Unreadable(tag)
            tag = tag[len(_OWN_NS):]
        if tag not in allowed:
            raise Unreadable(tag)
        entries = found.setdefault(tag, [])
        if entries and tag not in repeated:
            raise Unreadable(tag)
        entries.append(child)
    for name in required:
        if name not in found:
            raise Unreadable(name)
    return found


def single(element: etree._Element, allowed: frozenset[str], required: Iterable[str] = ()) -> Fields:
    return {name: items[0] for name, items in children(element, allowed, required).items()}


def text(element: etree._Element) -> str:
    value = element.text
    if len(element) or element.attrib or not value or value != value.strip():
        raise Unreadable(element.tag)
    return value


def opt_text(fields: Fields, name: str) -> str | None:
    element = fields.get(name)
    return None if element is None else text(element)


def decimal(element: etree._Element) -> Decimal:
    value = text(element)
    if not _DECIMAL_RE.fullmatch(value):
        raise Unreadable(element.tag)
    return Decimal(value)


def opt_decimal(fields: Fields, name: str) -> Decimal | None:
    element = fields.get(name)
    return None if element is None else decimal(element)


def integer(element: etree._Element) -> int:
    value = text(element)
    if not _INTEGER_RE.fullmatch(value):
        raise Unreadable(element.tag)
    return int(value)


def boolean(element: etree._Element) -> bool:
    # Spyne reads any text, true only for these two spellings.
    return text(element).lower() in ("true", "1")


def a_date(element: etree._Element) -> date:
    match = _DATE_RE.fullmatch(text(element))
    if match is None:
        raise Unreadable(element.tag)
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError as exc:
        raise Unreadable(element.tag) from exc


def opt_date(fields: Fields, name: str) -> date | None:
    element = fields.get(name)
    return None if element is None else a_date(element)


def a_datetime(element: etree._Element) -> datetime:
    match = _DATETIME_RE.fullmatch(text(element))
    if match is None:
        raise Unreadable(element.tag)
    fraction = match[7]
    # Spyne's rounding of the fraction, kept so both paths store the same instant.
    micro = 0 if fraction is None else min(999999, int(round(float(fraction) * 1e6)))
    try:
        tz = None
        if match[8]:
            tz = timezone.utc
        elif match[9]:
            # Spyne adds the signed hours and the unsigned minutes (-01:30 is -30 minutes): do the same.
            tz = timezone(timedelta(minutes=int(match[9]) * 60 + int(match[10])))
        return datetime(int(match[1]), int(match[2]), int(match[3]), int(match[4]), int(match[5]),
                        int(match[6]), micro, tz)
    except ValueError as exc:
        raise Unreadable(element.tag) from exc


def opt_datetime(fields: Fields, name: str) -> datetime | None:
    element = fields.get(name)
    return None if element is None else a_datetime(element)


def binary(element: etree._Element) -> bytes:
    value = text(element)
    if not _BASE64_RE.fullmatch(value):
        raise Unreadable(element.tag)
    return base64.b64decode(value)
