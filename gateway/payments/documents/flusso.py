"""FlussoRiversamento (PSP reporting flow): streaming reader that never holds all rows, and a writer
(pagopa-node.md 2.4)."""

from __future__ import annotations

import io
from functools import lru_cache
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Sequence
from xml.sax.saxutils import escape

from lxml import etree

from gateway.xml import iterparse_file, refuse_dtd, UnsafeXml

from .common import PAY_NS, XML_DECLARATION, DocumentInvalid, IdentificativoUnivoco, Reader, \
    fmt_amount, fmt_date, fmt_datetime, parse_amount, parse_date

_ROOT = f"{{{PAY_NS}}}FlussoRiversamento"
_ROW = f"{{{PAY_NS}}}datiSingoliPagamenti"


@dataclass(frozen=True)
class FlussoHeader:
    identificativo_flusso: str
    data_ora_flusso: datetime
    identificativo_univoco_regolamento: str    # TRN/CRO of the SCT that moved the money
    data_regolamento: date
    mittente: IdentificativoUnivoco            # the PSP (G / A / B)
    ricevente: str                             # fiscal code of the ente (tipo G)
    numero_totale_pagamenti: int | None = None         # None when building: counted from the rows
    importo_totale_pagamenti: Decimal | None = None    # None when building: summed from the rows
    denominazione_mittente: str | None = None
    codice_bic_banca_di_riversamento: str | None = None
    denominazione_ricevente: str | None = None
    versione_oggetto: str = "1.0"


@dataclass(frozen=True, slots=True)
class PagamentoFlusso:
    iuv: str
    iur: str
    importo: Decimal
    codice_esito: str       # 0 paid, 3 revoked, 9 without RPT; newer 4/8 are read, never refused here
    data_esito: date
    indice: int | None = None


# --- reading -------------------------------------------------------------------------------------

def parse_flusso(source: Path | str | bytes) -> tuple[FlussoHeader, Iterator[PagamentoFlusso]]:
    """Header plus a lazy iterator of rows; each row's element is dropped once read.

    No schema validation here, on purpose: newer esito codes (4, 8) must still be read. Use
    validate("FlussoRiversamento", data) first when a strict check is wanted.
    """
    events = _events(source)
    try:
        first = next(events, None)
    except etree.XMLSyntaxError as exc:
        raise DocumentInvalid(f"malformed XML: {exc}") from exc
    if first is None:
        raise DocumentInvalid("not a FlussoRiversamento document")
    element = first[1]
    root = element if element.tag == _ROOT else element.getparent()
    if root is None or root.tag != _ROOT:
        raise DocumentInvalid(f"line {element.sourceline}: not a FlussoRiversamento document")
    header = _read_header(root)
    return header, _rows(element, events)


def _events(source: Path | str | bytes) -> Iterator[tuple[str, etree._Element]]:
    tags = (_ROW, _ROOT)
    if isinstance(source, bytes):
        try:
            refuse_dtd(source)
        except UnsafeXml as exc:
            raise DocumentInvalid(str(exc)) from exc
        # Same protections as gateway.xml.iterparse_file, over an in-memory document.
        return iter(etree.iterparse(io.BytesIO(source), events=("end",), tag=tags, resolve_entities=False,
                                    no_network=True, load_dtd=False, huge_tree=False,
                                    remove_comments=True))
    try:
        return iter(iterparse_file(Path(source), tag=tags, events=("end",)))
    except UnsafeXml as exc:
        raise DocumentInvalid(str(exc)) from exc


def _read_header(root: etree._Element) -> FlussoHeader:
    doc = Reader(root, PAY_NS)
    mittente = doc.need("istitutoMittente")
    ricevente = doc.need("istitutoRicevente")
    numero = doc.text("numeroTotalePagamenti")
    return FlussoHeader(
        versione_oggetto=doc.text("versioneOggetto"),
        identificativo_flusso=doc.text("identificativoFlusso"),
        data_ora_flusso=doc.datetime("dataOraFlusso"),
        identificativo_univoco_regolamento=doc.text("identificativoUnivocoRegolamento"),
        data_regolamento=doc.date("dataRegolamento"),
        mittente=IdentificativoUnivoco(
            tipo=mittente.need("identificativoUnivocoMittente").text("tipoIdentificativoUnivoco"),
            codice=mittente.need("identificativoUnivocoMittente").text("codiceIdentificativoUnivoco")),
        denominazione_mittente=mittente.opt("denominazioneMittente"),
        codice_bic_banca_di_riversamento=doc.opt("codiceBicBancaDiRiversamento"),
        ricevente=ricevente.need("identificativoUnivocoRicevente").text("codiceIdentificativoUnivoco"),
        denominazione_ricevente=ricevente.opt("denominazioneRicevente"),
        numero_totale_pagamenti=int(parse_amount(numero)),
        importo_totale_pagamenti=doc.amount("importoTotalePagamenti"),
    )


_FIELDS = {f"{{{PAY_NS}}}{name}": name for name in (
    "identificativoUnivocoVersamento", "identificativoUnivocoRiscossione", "indiceDatiSingoloPagamento",
    "singoloImportoPagato", "codiceEsitoSingoloPagamento", "dataEsitoSingoloPagamento")}


def _rows(first: etree._Element, events: Iterator[tuple[str, etree._Element]]) -> Iterator[PagamentoFlusso]:
    element = first
    try:
        while True:
            if element.tag == _ROW:
                yield _read_row(element)
                # Drop the row and everything before it, so memory stays flat however long the flow.
                element.clear()
                parent = element.getparent()
                while element.getprevious() is not None:
                    del parent[0]
            step = next(events, None)
            if step is None:
                return
            element = step[1]
    except etree.XMLSyntaxError as exc:
        raise DocumentInvalid(f"malformed XML: {exc}") from exc


def _read_row(element: etree._Element) -> PagamentoFlusso:
    # One pass over the children: ~3x faster than six find() calls on a 100k-row flow.
    values: dict[str, str] = {}
    for child in element:
        name = _FIELDS.get(child.tag)
        if name is not None:
            values[name] = child.text or ""
    try:
        indice = values.get("indiceDatiSingoloPagamento")
        return PagamentoFlusso(
            iuv=values["identificativoUnivocoVersamento"],
            iur=values["identificativoUnivocoRiscossione"],
            indice=None if indice is None else int(indice),
            importo=parse_amount(values["singoloImportoPagato"]),
            codice_esito=values["codiceEsitoSingoloPagamento"].strip(),
            data_esito=_date(values["dataEsitoSingoloPagamento"]),
        )
    except (KeyError, ValueError) as exc:
        raise DocumentInvalid(f"line {element.sourceline}: incomplete datiSingoliPagamenti ({exc})") from exc


@lru_cache(maxsize=256)
def _date(text: str) -> date:
    # A flow holds a handful of distinct dates over many rows.
    return parse_date(text)


# --- writing -------------------------------------------------------------------------------------

def build_flusso(header: FlussoHeader, rows: Sequence[PagamentoFlusso]) -> bytes:
    out = io.BytesIO()
    write_flusso(out, header, rows)
    return out.getvalue()


def write_flusso(out: BinaryIO, header: FlussoHeader, rows: Iterable[PagamentoFlusso]) -> None:
    """Stream a flow to ``out``; with an iterator of rows the header must carry count and total."""
    numero, totale = header.numero_totale_pagamenti, header.importo_totale_pagamenti
    if numero is None or totale is None:
        if not isinstance(rows, Sequence):
            raise ValueError("count and total must be in the header when rows is an iterator")
        numero = len(rows) if numero is None else numero
        totale = sum((row.importo for row in rows), Decimal("0")) if totale is None else totale

    def tag(name: str, value: str | None) -> str:
        return "" if value is None else f"<{name}>{escape(value)}</{name}>"

    out.write(XML_DECLARATION)
    out.write("".join((
        f'<FlussoRiversamento xmlns="{PAY_NS}">',
        tag("versioneOggetto", header.versione_oggetto),
        tag("identificativoFlusso", header.identificativo_flusso),
        tag("dataOraFlusso", fmt_datetime(header.data_ora_flusso)),
        tag("identificativoUnivocoRegolamento", header.identificativo_univoco_regolamento),
        tag("dataRegolamento", fmt_date(header.data_regolamento)),
        "<istitutoMittente><identificativoUnivocoMittente>",
        tag("tipoIdentificativoUnivoco", header.mittente.tipo),
        tag("codiceIdentificativoUnivoco", header.mittente.codice),
        "</identificativoUnivocoMittente>",
        tag("denominazioneMittente", header.denominazione_mittente),
        "</istitutoMittente>",
        tag("codiceBicBancaDiRiversamento", header.codice_bic_banca_di_riversamento),
        "<istitutoRicevente><identificativoUnivocoRicevente>",
        tag("tipoIdentificativoUnivoco", "G"),
        tag("codiceIdentificativoUnivoco", header.ricevente),
        "</identificativoUnivocoRicevente>",
        tag("denominazioneRicevente", header.denominazione_ricevente),
        "</istitutoRicevente>",
        tag("numeroTotalePagamenti", str(numero)),
        tag("importoTotalePagamenti", fmt_amount(totale)),
        "\n",
    )).encode("utf-8"))
    batch: list[str] = []
    for row in rows:
        batch.append("".join((
            "<datiSingoliPagamenti>",
            tag("identificativoUnivocoVersamento", row.iuv),
            tag("identificativoUnivocoRiscossione", row.iur),
            tag("indiceDatiSingoloPagamento", None if row.indice is None else str(row.indice)),
            tag("singoloImportoPagato", fmt_amount(row.importo)),
            tag("codiceEsitoSingoloPagamento", row.codice_esito),
            tag("dataEsitoSingoloPagamento", fmt_date(row.data_esito)),
            "</datiSingoliPagamenti>\n",
        )))
        if len(batch) >= 1000:
            out.write("".join(batch).encode("utf-8"))
            batch.clear()
    out.write("".join(batch).encode("utf-8"))
    out.write(b"</FlussoRiversamento>\n")
