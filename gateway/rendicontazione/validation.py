"""Streaming XSD validation of a FlussoRiversamento file (a 100,000-row flow never becomes one tree)."""

from __future__ import annotations

import re
from pathlib import Path

from lxml import etree

from gateway.payments.documents import DocumentInvalid
from gateway.payments.documents.common import PAY_NS
from gateway.payments.documents.schemas import schema_for
from gateway.xml import UnsafeXml, refuse_dtd

_ROW = f"{{{PAY_NS}}}datiSingoliPagamenti"
# Esito codes 4 and 8 (stand-in) are newer than the XSD: read them, do not refuse the flow for them.
_STAND_IN = re.compile(r"codiceEsitoSingoloPagamento'?: \[facet 'enumeration'\] The value '[48]' ")


def validate_file(path: Path) -> None:
    """Raise DocumentInvalid with the first problem, unless it is only a newer esito code."""
    with open(path, "rb") as handle:
        try:
            refuse_dtd(handle.read(4096))
        except UnsafeXml as exc:
            raise DocumentInvalid(str(exc)) from exc
    # Events only for the rows (dropped once validated): few Python round trips, flat memory.
    events = etree.iterparse(str(path), events=("end",), tag=_ROW, schema=schema_for("FlussoRiversamento"),
                             resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             remove_comments=True)
    try:
        for _, element in events:
            element.clear()
            parent = element.getparent()
            while element.getprevious() is not None:
                del parent[0]
    except etree.XMLSyntaxError as exc:
        message = str(exc)
        if _STAND_IN.search(message):
            # libxml2 stops at the first error; the rows are still checked one by one when parsed.
            return
        raise DocumentInvalid(f"line {exc.lineno}: {exc.msg}") from exc
