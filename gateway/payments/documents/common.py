"""Shared pieces of the payment documents: namespaces, the error type, party dataclasses and the
small read/write helpers every document module uses."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Iterator

from lxml import etree

ENTE_NS = "http://www.regione.veneto.it/schemas/2012/Pagamenti/Ente/"
PAY_NS = "http://www.digitpa.gov.it/schemas/2011/Pagamenti/"

# Double quotes, like the Java stacks our clients are used to; lxml would write single quotes.
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

_CENT = Decimal("0.01")


class DocumentInvalid(ValueError):
    """A payload document is malformed or not valid against its schema; str() is a faultBean description."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


# --- parties -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IdentificativoUnivoco:
    tipo: str      # F / G for persons; G / A / B for institutes
    codice: str


@dataclass(frozen=True)
class Soggetto:
    """soggettoPagatore / soggettoVersante: same shape, element names differ by suffix."""
    identificativo: IdentificativoUnivoco
    anagrafica: str
    indirizzo: str | None = None
    civico: str | None = None
    cap: str | None = None
    localita: str | None = None
    provincia: str | None = None
    nazione: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Istituto:
    """enteBeneficiario / istitutoAttestante: same shape, element names differ by suffix."""
    identificativo: IdentificativoUnivoco
    denominazione: str
    codice_unit_oper: str | None = None
    denom_unit_oper: str | None = None
    indirizzo: str | None = None
    civico: str | None = None
    cap: str | None = None
    localita: str | None = None
    provincia: str | None = None
    nazione: str | None = None


@dataclass(frozen=True)
class Dominio:
    identificativo_dominio: str
    identificativo_stazione_richiedente: str | None = None


@dataclass(frozen=True)
class MarcaBollo:
    tipo_bollo: str
    hash_documento: str
    provincia_residenza: str


@dataclass(frozen=True)
class Allegato:
    tipo: str        # ES = original PSP outcome, BD = digital revenue stamp
    testo: bytes     # decoded; written back as base64


# --- values --------------------------------------------------------------------------------------

def fmt_amount(value: Decimal) -> str:
    """Two decimals, dot separator; refuses to round money silently."""
    if isinstance(value, float):  # a float here is a bug upstream, not a value to round
        raise TypeError("amounts must be Decimal")
    quantized = Decimal(value).quantize(_CENT)
    if quantized != value:
        raise ValueError(f"amount {value} has more than two decimals")
    return f"{quantized:f}"


def parse_amount(text: str) -> Decimal:
    try:
        return Decimal(text.strip())
    except InvalidOperation as exc:
        raise DocumentInvalid(f"not an amount: {text!r}") from exc


def fmt_date(value: date) -> str:
    return value.isoformat()


def fmt_datetime(value: datetime) -> str:
    return value.replace(microsecond=0).isoformat()


_TZ_SUFFIX = re.compile(r"(Z|[+-]\d{2}:\d{2})$")
_FRACTION = re.compile(r"\.(\d{6})\d+")


def parse_date(text: str) -> date:
    # xs:date may carry a timezone, which a calendar date cannot hold.
    return date.fromisoformat(_TZ_SUFFIX.sub("", text.strip()))


def parse_datetime(text: str) -> datetime:
    # xs:dateTime allows any number of fraction digits; Python keeps six.
    return datetime.fromisoformat(_FRACTION.sub(r".\1", text.strip()))


def b64decode(text: str) -> bytes:
    return base64.b64decode("".join(text.split()))


# --- reading -------------------------------------------------------------------------------------

class Reader:
    """Child lookups in one namespace on an already validated element."""

    __slots__ = ("element", "ns")

    def __init__(self, element: etree._Element, ns: str) -> None:
        self.element = element
        self.ns = ns

    def child(self, name: str) -> "Reader | None":
        found = self.element.find(f"{{{self.ns}}}{name}")
        return None if found is None else Reader(found, self.ns)

    def need(self, name: str) -> "Reader":
        found = self.child(name)
        if found is None:
            raise DocumentInvalid(f"line {self.element.sourceline}: missing element '{name}'")
        return found

    def children(self, name: str) -> Iterator["Reader"]:
        for found in self.element.iterfind(f"{{{self.ns}}}{name}"):
            yield Reader(found, self.ns)

    @property
    def value(self) -> str:
        return self.element.text or ""

    def text(self, name: str) -> str:
        return self.need(name).value

    def opt(self, name: str) -> str | None:
        found = self.child(name)
        return None if found is None else found.value

    def amount(self, name: str) -> Decimal:
        return parse_amount(self.text(name))

    def opt_amount(self, name: str) -> Decimal | None:
        text = self.opt(name)
        return None if text is None else parse_amount(text)

    def date(self, name: str) -> date:
        return parse_date(self.text(name))

    def opt_date(self, name: str) -> date | None:
        text = self.opt(name)
        return None if text is None else parse_date(text)

    def datetime(self, name: str) -> datetime:
        return parse_datetime(self.text(name))

    def opt_int(self, name: str) -> int | None:
        text = self.opt(name)
        return None if text is None else int(text.strip())


def read_identificativo(reader: Reader) -> IdentificativoUnivoco:
    return IdentificativoUnivoco(tipo=reader.text("tipoIdentificativoUnivoco"),
                                 codice=reader.text("codiceIdentificativoUnivoco"))


def read_soggetto(reader: Reader, suffix: str) -> Soggetto:
    return Soggetto(
        identificativo=read_identificativo(reader.need(f"identificativoUnivoco{suffix}")),
        anagrafica=reader.text(f"anagrafica{suffix}"),
        indirizzo=reader.opt(f"indirizzo{suffix}"),
        civico=reader.opt(f"civico{suffix}"),
        cap=reader.opt(f"cap{suffix}"),
        localita=reader.opt(f"localita{suffix}"),
        provincia=reader.opt(f"provincia{suffix}"),
        nazione=reader.opt(f"nazione{suffix}"),
        email=reader.opt(f"e-mail{suffix}"),
    )


def read_istituto(reader: Reader, suffix: str) -> Istituto:
    return Istituto(
        identificativo=read_identificativo(reader.need(f"identificativoUnivoco{suffix}")),
        denominazione=reader.text(f"denominazione{suffix}"),
        codice_unit_oper=reader.opt(f"codiceUnitOper{suffix}"),
        denom_unit_oper=reader.opt(f"denomUnitOper{suffix}"),
        indirizzo=reader.opt(f"indirizzo{suffix}"),
        civico=reader.opt(f"civico{suffix}"),
        cap=reader.opt(f"cap{suffix}"),
        localita=reader.opt(f"localita{suffix}"),
        provincia=reader.opt(f"provincia{suffix}"),
        nazione=reader.opt(f"nazione{suffix}"),
    )


def read_dominio(reader: Reader) -> Dominio:
    return Dominio(reader.text("identificativoDominio"), reader.opt("identificativoStazioneRichiedente"))


def read_marca_bollo(reader: Reader | None) -> MarcaBollo | None:
    if reader is None:
        return None
    return MarcaBollo(reader.text("tipoBollo"), reader.text("hashDocumento"), reader.text("provinciaResidenza"))


def read_allegato(reader: Reader | None) -> Allegato | None:
    if reader is None:
        return None
    return Allegato(reader.text("tipoAllegatoRicevuta"), b64decode(reader.text("testoAllegato")))


# --- writing -------------------------------------------------------------------------------------

class Writer:
    """Appends qualified children in one namespace, skipping absent optional values."""

    __slots__ = ("ns",)

    def __init__(self, ns: str) -> None:
        self.ns = ns

    def root(self, name: str) -> etree._Element:
        # Default namespace: clients that search the text for '<tagName>' find it unprefixed.
        return etree.Element(f"{{{self.ns}}}{name}", nsmap={None: self.ns})

    def node(self, parent: etree._Element, name: str) -> etree._Element:
        return etree.SubElement(parent, f"{{{self.ns}}}{name}")

    def text(self, parent: etree._Element, name: str, value: str | None) -> None:
        if value is not None:
            etree.SubElement(parent, f"{{{self.ns}}}{name}").text = value

    def amount(self, parent: etree._Element, name: str, value: Decimal | None) -> None:
        if value is not None:
            self.text(parent, name, fmt_amount(value))

    def date(self, parent: etree._Element, name: str, value: date | None) -> None:
        if value is not None:
            self.text(parent, name, fmt_date(value))

    def identificativo(self, parent: etree._Element, name: str, value: IdentificativoUnivoco) -> None:
        node = self.node(parent, name)
        self.text(node, "tipoIdentificativoUnivoco", value.tipo)
        self.text(node, "codiceIdentificativoUnivoco", value.codice)

    def soggetto(self, parent: etree._Element, name: str, suffix: str, value: Soggetto,
                 provincia_max: int | None = None) -> None:
        node = self.node(parent, name)
        self.identificativo(node, f"identificativoUnivoco{suffix}", value.identificativo)
        self.text(node, f"anagrafica{suffix}", value.anagrafica)
        self.text(node, f"indirizzo{suffix}", value.indirizzo)
        self.text(node, f"civico{suffix}", value.civico)
        self.text(node, f"cap{suffix}", value.cap)
        self.text(node, f"localita{suffix}", value.localita)
        provincia = value.provincia
        if provincia is not None and provincia_max is not None:
            provincia = provincia[:provincia_max]
        self.text(node, f"provincia{suffix}", provincia)
        self.text(node, f"nazione{suffix}", value.nazione)
        self.text(node, f"e-mail{suffix}", value.email)

    def istituto(self, parent: etree._Element, name: str, suffix: str, value: Istituto) -> None:
        node = self.node(parent, name)
        self.identificativo(node, f"identificativoUnivoco{suffix}", value.identificativo)
        self.text(node, f"denominazione{suffix}", value.denominazione)
        self.text(node, f"codiceUnitOper{suffix}", value.codice_unit_oper)
        self.text(node, f"denomUnitOper{suffix}", value.denom_unit_oper)
        self.text(node, f"indirizzo{suffix}", value.indirizzo)
        self.text(node, f"civico{suffix}", value.civico)
        self.text(node, f"cap{suffix}", value.cap)
        self.text(node, f"localita{suffix}", value.localita)
        self.text(node, f"provincia{suffix}", value.provincia)
        self.text(node, f"nazione{suffix}", value.nazione)

    def dominio(self, parent: etree._Element, value: Dominio) -> None:
        node = self.node(parent, "dominio")
        self.text(node, "identificativoDominio", value.identificativo_dominio)
        self.text(node, "identificativoStazioneRichiedente", value.identificativo_stazione_richiedente)

    def marca_bollo(self, parent: etree._Element, value: MarcaBollo | None) -> None:
        if value is not None:
            node = self.node(parent, "datiMarcaBolloDigitale")
            self.text(node, "tipoBollo", value.tipo_bollo)
            self.text(node, "hashDocumento", value.hash_documento)
            self.text(node, "provinciaResidenza", value.provincia_residenza)

    def allegato(self, parent: etree._Element, value: Allegato | None) -> None:
        if value is not None:
            node = self.node(parent, "allegatoRicevuta")
            self.text(node, "tipoAllegatoRicevuta", value.tipo)
            self.text(node, "testoAllegato", base64.b64encode(value.testo).decode("ascii"))


def serialize(root: etree._Element) -> bytes:
    return XML_DECLARATION + etree.tostring(root, encoding="UTF-8", xml_declaration=False)
