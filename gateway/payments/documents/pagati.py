"""Outbound Pagati / PagatiConRicevuta: one document per cart, built from the cart's receipt data
(ente-services.md 1.4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Sequence

from lxml import etree

from .common import ENTE_NS, Allegato, Dominio, Istituto, Soggetto, Writer, fmt_datetime, serialize

_CAUSALE_MAX = 140   # the Pagati causale is shorter than the Dovuti one (1024)


@dataclass(frozen=True)
class SingoloPagato:
    """One processed dovuto of the cart that has an IUR."""
    iud: str                                   # identificativoUnivocoDovuto
    importo: Decimal                           # singoloImportoPagato
    data_esito: date                           # dataEsitoSingoloPagamento
    iur: str                                   # identificativoUnivocoRiscossione
    causale: str
    dati_specifici_riscossione: str
    esito: str | None = None                   # esitoSingoloPagamento
    # PagatiConRicevuta only:
    indice: int | None = None                  # indiceDatiSingoloPagamento, 1..5
    commissioni_psp: Decimal | None = None     # commissioniApplicatePSP
    allegato: Allegato | None = None


@dataclass(frozen=True)
class RicevutaPagati:
    """Header and outcome of a cart's receipt."""
    dominio: Dominio
    identificativo_messaggio_ricevuta: str
    data_ora_messaggio_ricevuta: datetime
    riferimento_messaggio_richiesta: str
    riferimento_data_richiesta: date
    istituto_attestante: Istituto
    ente_beneficiario: Istituto
    soggetto_pagatore: Soggetto
    codice_esito_pagamento: str                # 0..4
    importo_totale_pagato: Decimal
    iuv: str
    codice_contesto_pagamento: str
    pagamenti: Sequence[SingoloPagato] = field(default_factory=tuple)
    versione_oggetto: str = "6.2.0"


def build_pagati(ricevuta: RicevutaPagati) -> bytes:
    return serialize(_build(ricevuta, "Pagati", con_ricevuta=False))


def build_pagati_con_ricevuta(ricevuta: RicevutaPagati) -> bytes:
    return serialize(_build(ricevuta, "PagatiConRicevuta", con_ricevuta=True))


def _build(ricevuta: RicevutaPagati, root_name: str, con_ricevuta: bool) -> etree._Element:
    w = Writer(ENTE_NS)
    root = w.root(root_name)
    w.text(root, "versioneOggetto", ricevuta.versione_oggetto)
    w.dominio(root, ricevuta.dominio)
    w.text(root, "identificativoMessaggioRicevuta", ricevuta.identificativo_messaggio_ricevuta)
    w.text(root, "dataOraMessaggioRicevuta", fmt_datetime(ricevuta.data_ora_messaggio_ricevuta))
    w.text(root, "riferimentoMessaggioRichiesta", ricevuta.riferimento_messaggio_richiesta)
    w.date(root, "riferimentoDataRichiesta", ricevuta.riferimento_data_richiesta)
    w.istituto(root, "istitutoAttestante", "Attestante", ricevuta.istituto_attestante)
    w.istituto(root, "enteBeneficiario", "Beneficiario", ricevuta.ente_beneficiario)
    # MyPay truncates the payer's province to two characters here (the RT allows 35).
    w.soggetto(root, "soggettoPagatore", "Pagatore", ricevuta.soggetto_pagatore, provincia_max=2)
    dati = w.node(root, "datiPagamento")
    w.text(dati, "codiceEsitoPagamento", str(ricevuta.codice_esito_pagamento))
    w.amount(dati, "importoTotalePagato", ricevuta.importo_totale_pagato)
    w.text(dati, "identificativoUnivocoVersamento", ricevuta.iuv)
    w.text(dati, "codiceContestoPagamento", ricevuta.codice_contesto_pagamento)
    for pagamento in ricevuta.pagamenti:
        item = w.node(dati, "datiSingoloPagamento")
        w.text(item, "identificativoUnivocoDovuto", pagamento.iud)
        w.amount(item, "singoloImportoPagato", pagamento.importo)
        w.text(item, "esitoSingoloPagamento", pagamento.esito)
        w.date(item, "dataEsitoSingoloPagamento", pagamento.data_esito)
        w.text(item, "identificativoUnivocoRiscossione", pagamento.iur)
        w.text(item, "causaleVersamento", pagamento.causale[:_CAUSALE_MAX])
        w.text(item, "datiSpecificiRiscossione", pagamento.dati_specifici_riscossione)
        if con_ricevuta:
            w.text(item, "indiceDatiSingoloPagamento",
                   None if pagamento.indice is None else str(pagamento.indice))
            w.amount(item, "commissioniApplicatePSP", pagamento.commissioni_psp)
            w.allegato(item, pagamento.allegato)
    return root
