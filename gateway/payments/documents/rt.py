"""RT (Ricevuta Telematica, modello 1): parser for the gateway, builder for the simulator
(pagopa-node.md 1.2.4). The RT spells CodiceContestoPagamento with a capital C."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Sequence

from lxml import etree

from .common import PAY_NS, Allegato, DocumentInvalid, Dominio, Istituto, Reader, Soggetto, Writer, \
    fmt_datetime, read_allegato, read_dominio, read_istituto, read_soggetto, serialize

# Outcomes MyPay treats as paid; they require datiSingoloPagamento.
ESITI_PAGATO = frozenset({"0", "2"})


@dataclass(frozen=True)
class SingoloPagamentoRt:
    importo: Decimal                           # singoloImportoPagato, may be 0.00
    data_esito: date
    iur: str                                   # identificativoUnivocoRiscossione
    causale: str
    dati_specifici_riscossione: str
    esito: str | None = None
    commissioni_psp: Decimal | None = None     # commissioniApplicatePSP
    commissioni_pa: Decimal | None = None      # commissioniApplicatePA, >= 0.01
    allegato: Allegato | None = None


@dataclass(frozen=True)
class Rt:
    dominio: Dominio
    identificativo_messaggio_ricevuta: str
    data_ora_messaggio_ricevuta: datetime
    riferimento_messaggio_richiesta: str       # the RPT's identificativoMessaggioRichiesta
    riferimento_data_richiesta: date
    istituto_attestante: Istituto
    ente_beneficiario: Istituto
    soggetto_pagatore: Soggetto
    codice_esito_pagamento: str                # 0..4
    importo_totale_pagato: Decimal
    iuv: str
    codice_contesto_pagamento: str             # written as CodiceContestoPagamento
    pagamenti: Sequence[SingoloPagamentoRt] = field(default_factory=tuple)
    soggetto_versante: Soggetto | None = None
    versione_oggetto: str = "6.2.0"

    @property
    def pagato(self) -> bool:
        return self.codice_esito_pagamento in ESITI_PAGATO


def build_rt(rt: Rt) -> bytes:
    w = Writer(PAY_NS)
    root = w.root("RT")
    w.text(root, "versioneOggetto", rt.versione_oggetto)
    w.dominio(root, rt.dominio)
    w.text(root, "identificativoMessaggioRicevuta", rt.identificativo_messaggio_ricevuta)
    w.text(root, "dataOraMessaggioRicevuta", fmt_datetime(rt.data_ora_messaggio_ricevuta))
    w.text(root, "riferimentoMessaggioRichiesta", rt.riferimento_messaggio_richiesta)
    w.date(root, "riferimentoDataRichiesta", rt.riferimento_data_richiesta)
    w.istituto(root, "istitutoAttestante", "Attestante", rt.istituto_attestante)
    w.istituto(root, "enteBeneficiario", "Beneficiario", rt.ente_beneficiario)
    if rt.soggetto_versante is not None:
        w.soggetto(root, "soggettoVersante", "Versante", rt.soggetto_versante)
    w.soggetto(root, "soggettoPagatore", "Pagatore", rt.soggetto_pagatore)
    dati = w.node(root, "datiPagamento")
    w.text(dati, "codiceEsitoPagamento", str(rt.codice_esito_pagamento))
    w.amount(dati, "importoTotalePagato", rt.importo_totale_pagato)
    w.text(dati, "identificativoUnivocoVersamento", rt.iuv)
    w.text(dati, "CodiceContestoPagamento", rt.codice_contesto_pagamento)
    for pagamento in rt.pagamenti:
        item = w.node(dati, "datiSingoloPagamento")
        w.amount(item, "singoloImportoPagato", pagamento.importo)
        w.text(item, "esitoSingoloPagamento", pagamento.esito)
        w.date(item, "dataEsitoSingoloPagamento", pagamento.data_esito)
        w.text(item, "identificativoUnivocoRiscossione", pagamento.iur)
        w.text(item, "causaleVersamento", pagamento.causale)
        w.text(item, "datiSpecificiRiscossione", pagamento.dati_specifici_riscossione)
        w.amount(item, "commissioniApplicatePSP", pagamento.commissioni_psp)
        w.amount(item, "commissioniApplicatePA", pagamento.commissioni_pa)
        w.allegato(item, pagamento.allegato)
    return serialize(root)


def parse_rt(root: etree._Element) -> Rt:
    if root.tag != f"{{{PAY_NS}}}RT":
        raise DocumentInvalid(f"line {root.sourceline}: expected an RT document")
    doc = Reader(root, PAY_NS)
    dati = doc.need("datiPagamento")
    versante = doc.child("soggettoVersante")
    return Rt(
        versione_oggetto=doc.text("versioneOggetto"),
        dominio=read_dominio(doc.need("dominio")),
        identificativo_messaggio_ricevuta=doc.text("identificativoMessaggioRicevuta"),
        data_ora_messaggio_ricevuta=doc.datetime("dataOraMessaggioRicevuta"),
        riferimento_messaggio_richiesta=doc.text("riferimentoMessaggioRichiesta"),
        riferimento_data_richiesta=doc.date("riferimentoDataRichiesta"),
        istituto_attestante=read_istituto(doc.need("istitutoAttestante"), "Attestante"),
        ente_beneficiario=read_istituto(doc.need("enteBeneficiario"), "Beneficiario"),
        soggetto_versante=None if versante is None else read_soggetto(versante, "Versante"),
        soggetto_pagatore=read_soggetto(doc.need("soggettoPagatore"), "Pagatore"),
        codice_esito_pagamento=dati.text("codiceEsitoPagamento"),
        importo_totale_pagato=dati.amount("importoTotalePagato"),
        iuv=dati.text("identificativoUnivocoVersamento"),
        codice_contesto_pagamento=dati.text("CodiceContestoPagamento"),
        pagamenti=tuple(
            SingoloPagamentoRt(
                importo=item.amount("singoloImportoPagato"),
                esito=item.opt("esitoSingoloPagamento"),
                data_esito=item.date("dataEsitoSingoloPagamento"),
                iur=item.text("identificativoUnivocoRiscossione"),
                causale=item.text("causaleVersamento"),
                dati_specifici_riscossione=item.text("datiSpecificiRiscossione"),
                commissioni_psp=item.opt_amount("commissioniApplicatePSP"),
                commissioni_pa=item.opt_amount("commissioniApplicatePA"),
                allegato=read_allegato(item.child("allegatoRicevuta")),
            )
            for item in dati.children("datiSingoloPagamento")),
    )
