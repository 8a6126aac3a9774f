"""Inbound ente documents: Dovuti (InviaDovuti/InviaCarrelloDovuti), Versamento (ImportaDovuto) and
DovutiEntiSecondari, read from an already validated root into plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from lxml import etree

from gateway.xml import parse_bytes

from .common import ENTE_NS, DocumentInvalid, MarcaBollo, Reader, Soggetto, parse_amount, \
    read_marca_bollo, read_soggetto


@dataclass(frozen=True)
class SingoloVersamentoDovuto:
    iud: str                                   # identificativoUnivocoDovuto
    importo: Decimal                           # importoSingoloVersamento
    identificativo_tipo_dovuto: str
    causale: str                               # causaleVersamento
    dati_specifici_riscossione: str
    commissione_carico_pa: Decimal | None = None
    marca_bollo: MarcaBollo | None = None      # datiMarcaBolloDigitale
    bilancio: str | None = None                # namespace-free, whitespace-free XML, as MyPay stores it


@dataclass(frozen=True)
class Dovuti:
    versione_oggetto: str
    soggetto_pagatore: Soggetto
    tipo_versamento: str
    iuv: str | None                            # present only to be refused (deprecated in InviaDovuti)
    singoli: tuple[SingoloVersamentoDovuto, ...]


@dataclass(frozen=True)
class Versamento:
    versione_oggetto: str
    azione: str                                # I / M / A / 9 / S, checked by the service
    soggetto_pagatore: Soggetto | None
    importo: Decimal
    identificativo_tipo_dovuto: str
    causale: str
    dati_specifici_riscossione: str
    data_esecuzione_pagamento: date | None = None   # the due date
    tipo_versamento: str | None = None
    iuv: str | None = None
    iud: str | None = None
    commissione_carico_pa: Decimal | None = None
    bilancio: str | None = None


@dataclass(frozen=True)
class DovutiEntiSecondari:
    versione_oggetto: str
    codice_fiscale_beneficiario: str
    denominazione_beneficiario: str
    iban_accredito_beneficiario: str
    dati_specifici_riscossione: str
    importo: Decimal
    indirizzo_beneficiario: str | None = None
    civico_beneficiario: str | None = None
    cap_beneficiario: str | None = None
    localita_beneficiario: str | None = None
    provincia_beneficiario: str | None = None
    nazione_beneficiario: str | None = None
    causale: str | None = None


def _root(root: etree._Element, name: str) -> Reader:
    if root.tag != f"{{{ENTE_NS}}}{name}":
        raise DocumentInvalid(f"line {root.sourceline}: expected a {name} document")
    return Reader(root, ENTE_NS)


def bilancio_xml(element: etree._Element | None) -> str | None:
    """The bilancio subtree as MyPay keeps it: no namespace, no whitespace between elements."""
    if element is None:
        return None
    return "".join(_plain(element))


def _plain(element: etree._Element):
    name = element.tag.rsplit("}", 1)[-1]
    children = [child for child in element if isinstance(child.tag, str)]
    yield f"<{name}>"
    if children:
        for child in children:
            yield from _plain(child)
    else:
        yield _escape(element.text or "")
    yield f"</{name}>"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def bilancio_total(bilancio: str) -> Decimal:
    """Sum of every accertamento/importo of a stored bilancio (must equal the dovuto's amount).

    The stored string is the gateway's own output of bilancio_xml."""
    root = parse_bytes(bilancio.encode("utf-8"))
    return sum((parse_amount(node.text or "") for node in root.iter("importo")), Decimal("0"))


def parse_dovuti(root: etree._Element) -> Dovuti:
    doc = _root(root, "Dovuti")
    versamento = doc.need("datiVersamento")
    singoli = tuple(
        SingoloVersamentoDovuto(
            iud=item.text("identificativoUnivocoDovuto"),
            importo=item.amount("importoSingoloVersamento"),
            commissione_carico_pa=item.opt_amount("commissioneCaricoPA"),
            identificativo_tipo_dovuto=item.text("identificativoTipoDovuto"),
            causale=item.text("causaleVersamento"),
            dati_specifici_riscossione=item.text("datiSpecificiRiscossione"),
            marca_bollo=read_marca_bollo(item.child("datiMarcaBolloDigitale")),
            bilancio=bilancio_xml(_element(item.child("bilancio"))),
        )
        for item in versamento.children("datiSingoloVersamento"))
    return Dovuti(
        versione_oggetto=doc.text("versioneOggetto"),
        soggetto_pagatore=read_soggetto(doc.need("soggettoPagatore"), "Pagatore"),
        tipo_versamento=versamento.text("tipoVersamento"),
        iuv=versamento.opt("identificativoUnivocoVersamento"),
        singoli=singoli,
    )


def parse_versamento(root: etree._Element) -> Versamento:
    doc = _root(root, "Versamento")
    dati = doc.need("datiVersamento")
    soggetto = doc.child("soggettoPagatore")
    return Versamento(
        versione_oggetto=doc.text("versioneOggetto"),
        azione=doc.text("azione"),
        soggetto_pagatore=None if soggetto is None else read_soggetto(soggetto, "Pagatore"),
        data_esecuzione_pagamento=dati.opt_date("dataEsecuzionePagamento"),
        tipo_versamento=dati.opt("tipoVersamento"),
        iuv=dati.opt("identificativoUnivocoVersamento"),
        iud=dati.opt("identificativoUnivocoDovuto"),
        importo=dati.amount("importoSingoloVersamento"),
        commissione_carico_pa=dati.opt_amount("commissioneCaricoPA"),
        identificativo_tipo_dovuto=dati.text("identificativoTipoDovuto"),
        causale=dati.text("causaleVersamento"),
        dati_specifici_riscossione=dati.text("datiSpecificiRiscossione"),
        bilancio=bilancio_xml(_element(dati.child("bilancio"))),
    )


def parse_dovuti_enti_secondari(root: etree._Element) -> DovutiEntiSecondari:
    doc = _root(root, "DovutiEntiSecondari")
    dati = doc.need("datiVersamentoEntiSecondari")
    return DovutiEntiSecondari(
        versione_oggetto=doc.text("versioneOggetto"),
        codice_fiscale_beneficiario=dati.text("codiceFiscaleBeneficiario"),
        denominazione_beneficiario=dati.text("denominazioneBeneficiario"),
        iban_accredito_beneficiario=dati.text("ibanAccreditoBeneficiario"),
        indirizzo_beneficiario=dati.opt("indirizzoBeneficiario"),
        civico_beneficiario=dati.opt("civicoBeneficiario"),
        cap_beneficiario=dati.opt("capBeneficiario"),
        localita_beneficiario=dati.opt("localitaBeneficiario"),
        provincia_beneficiario=dati.opt("provinciaBeneficiario"),
        nazione_beneficiario=dati.opt("nazioneBeneficiario"),
        causale=dati.opt("causaleVersamento"),
        dati_specifici_riscossione=dati.text("datiSpecificiRiscossione"),
        importo=dati.amount("importoSingoloVersamento"),
    )


def _element(reader: Reader | None) -> etree._Element | None:
    return None if reader is None else reader.element
