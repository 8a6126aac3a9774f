"""RPT (Richiesta Pagamento Telematico, modello 1): builder for the gateway, parser for the simulator
(pagopa-node.md 1.2.3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Sequence

from lxml import etree

from .common import PAY_NS, DocumentInvalid, Dominio, Istituto, MarcaBollo, Reader, Soggetto, Writer, \
    fmt_datetime, read_dominio, read_istituto, read_marca_bollo, read_soggetto, serialize


@dataclass(frozen=True)
class SingoloVersamentoRpt:
    importo: Decimal                           # importoSingoloVersamento, >= 0.01
    causale: str                               # 1..140
    dati_specifici_riscossione: str
    commissione_carico_pa: Decimal | None = None
    iban_accredito: str | None = None
    bic_accredito: str | None = None
    iban_appoggio: str | None = None
    bic_appoggio: str | None = None
    credenziali_pagatore: str | None = None
    marca_bollo: MarcaBollo | None = None


@dataclass(frozen=True)
class Rpt:
    dominio: Dominio
    identificativo_messaggio_richiesta: str
    data_ora_messaggio_richiesta: datetime
    soggetto_pagatore: Soggetto
    ente_beneficiario: Istituto
    data_esecuzione_pagamento: date
    tipo_versamento: str                       # BBT, BP, AD, CP, PO, OBEP, OTH, JIF, MYBK, PPAL
    iuv: str
    codice_contesto_pagamento: str
    singoli: Sequence[SingoloVersamentoRpt]
    importo_totale_da_versare: Decimal | None = None   # None: the sum of the singoli
    autenticazione_soggetto: str = "N/A"
    soggetto_versante: Soggetto | None = None
    iban_addebito: str | None = None
    bic_addebito: str | None = None
    firma_ricevuta: str = "0"
    versione_oggetto: str = "6.2.0"

    @property
    def totale(self) -> Decimal:
        if self.importo_totale_da_versare is not None:
            return self.importo_totale_da_versare
        return sum((s.importo for s in self.singoli), Decimal("0"))


def build_rpt(rpt: Rpt) -> bytes:
    w = Writer(PAY_NS)
    root = w.root("RPT")
    w.text(root, "versioneOggetto", rpt.versione_oggetto)
    w.dominio(root, rpt.dominio)
    w.text(root, "identificativoMessaggioRichiesta", rpt.identificativo_messaggio_richiesta)
    w.text(root, "dataOraMessaggioRichiesta", fmt_datetime(rpt.data_ora_messaggio_richiesta))
    w.text(root, "autenticazioneSoggetto", rpt.autenticazione_soggetto)
    if rpt.soggetto_versante is not None:
        w.soggetto(root, "soggettoVersante", "Versante", rpt.soggetto_versante)
    w.soggetto(root, "soggettoPagatore", "Pagatore", rpt.soggetto_pagatore)
    w.istituto(root, "enteBeneficiario", "Beneficiario", rpt.ente_beneficiario)
    dati = w.node(root, "datiVersamento")
    w.date(dati, "dataEsecuzionePagamento", rpt.data_esecuzione_pagamento)
    w.amount(dati, "importoTotaleDaVersare", rpt.totale)
    w.text(dati, "tipoVersamento", rpt.tipo_versamento)
    w.text(dati, "identificativoUnivocoVersamento", rpt.iuv)
    w.text(dati, "codiceContestoPagamento", rpt.codice_contesto_pagamento)   # lower-case c in the RPT
    w.text(dati, "ibanAddebito", rpt.iban_addebito)
    w.text(dati, "bicAddebito", rpt.bic_addebito)
    w.text(dati, "firmaRicevuta", rpt.firma_ricevuta)
    for singolo in rpt.singoli:
        item = w.node(dati, "datiSingoloVersamento")
        w.amount(item, "importoSingoloVersamento", singolo.importo)
        w.amount(item, "commissioneCaricoPA", singolo.commissione_carico_pa)
        w.text(item, "ibanAccredito", singolo.iban_accredito)
        w.text(item, "bicAccredito", singolo.bic_accredito)
        w.text(item, "ibanAppoggio", singolo.iban_appoggio)
        w.text(item, "bicAppoggio", singolo.bic_appoggio)
        w.text(item, "credenzialiPagatore", singolo.credenziali_pagatore)
        w.text(item, "causaleVersamento", singolo.causale)
        w.text(item, "datiSpecificiRiscossione", singolo.dati_specifici_riscossione)
        w.marca_bollo(item, singolo.marca_bollo)
    return serialize(root)


def parse_rpt(root: etree._Element) -> Rpt:
    if root.tag != f"{{{PAY_NS}}}RPT":
        raise DocumentInvalid(f"line {root.sourceline}: expected an RPT document")
    doc = Reader(root, PAY_NS)
    dati = doc.need("datiVersamento")
    versante = doc.child("soggettoVersante")
    return Rpt(
        versione_oggetto=doc.text("versioneOggetto"),
        dominio=read_dominio(doc.need("dominio")),
        identificativo_messaggio_richiesta=doc.text("identificativoMessaggioRichiesta"),
        data_ora_messaggio_richiesta=doc.datetime("dataOraMessaggioRichiesta"),
        autenticazione_soggetto=doc.text("autenticazioneSoggetto"),
        soggetto_versante=None if versante is None else read_soggetto(versante, "Versante"),
        soggetto_pagatore=read_soggetto(doc.need("soggettoPagatore"), "Pagatore"),
        ente_beneficiario=read_istituto(doc.need("enteBeneficiario"), "Beneficiario"),
        data_esecuzione_pagamento=dati.date("dataEsecuzionePagamento"),
        importo_totale_da_versare=dati.amount("importoTotaleDaVersare"),
        tipo_versamento=dati.text("tipoVersamento"),
        iuv=dati.text("identificativoUnivocoVersamento"),
        codice_contesto_pagamento=dati.text("codiceContestoPagamento"),
        iban_addebito=dati.opt("ibanAddebito"),
        bic_addebito=dati.opt("bicAddebito"),
        firma_ricevuta=dati.text("firmaRicevuta"),
        singoli=tuple(
            SingoloVersamentoRpt(
                importo=item.amount("importoSingoloVersamento"),
                commissione_carico_pa=item.opt_amount("commissioneCaricoPA"),
                iban_accredito=item.opt("ibanAccredito"),
                bic_accredito=item.opt("bicAccredito"),
                iban_appoggio=item.opt("ibanAppoggio"),
                bic_appoggio=item.opt("bicAppoggio"),
                credenziali_pagatore=item.opt("credenzialiPagatore"),
                causale=item.text("causaleVersamento"),
                dati_specifici_riscossione=item.text("datiSpecificiRiscossione"),
                marca_bollo=read_marca_bollo(item.child("datiMarcaBolloDigitale")),
            )
            for item in dati.children("datiSingoloVersamento")),
    )
