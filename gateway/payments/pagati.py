"""Pagati / PagatiConRicevuta for one ente's share of a cart, from its dovuti and their stored receipts.

An RT (modello 1) gives the header as the PSP wrote it. A modello-3 receipt has no RT, so the header is
filled from the receipt itself: identificativoMessaggioRicevuta = receiptId, istitutoAttestante = the PSP,
one datiSingoloPagamento per transfer to this ente with IUR = receiptId.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import logs
from gateway.payments import documents
from gateway.payments.documents import (Dominio, IdentificativoUnivoco, Istituto, RicevutaPagati, SingoloPagato,
                                        Soggetto)
from gateway.xml import parse_bytes
from storage.models import Carrello, Dovuto, Ente, Receipt
from storage.types import utcnow

log = logs.get_logger(__name__)

MAX_SINGOLI = 5  # datiSingoloPagamento maxOccurs
RT_SOURCES = frozenset({"paaInviaRT", "copiaRT"})
ROME = ZoneInfo("Europe/Rome")


@dataclass(frozen=True)
class CartDocument:
    pagati: bytes
    rt: bytes | None
    tipo_firma: str | None


def _cut(value: str | None, size: int) -> str | None:
    value = (value or "").strip()
    return value[:size] if value else None


def receipts_by_dovuto(session: Session, dovuti: list[Dovuto]) -> dict[int, Receipt]:
    """The receipt that decides each dovuto: the positive one if any, else the latest."""
    if not dovuti:
        return {}
    rows = session.scalars(select(Receipt).where(Receipt.dovuto_id.in_([d.id for d in dovuti]))
                           .order_by(Receipt.id)).all()
    chosen: dict[int, Receipt] = {}
    for receipt in rows:  # oldest first: a later receipt replaces a negative one, never a positive one
        current = chosen.get(receipt.dovuto_id)  # type: ignore[arg-type]
        if current is None or current.outcome != "OK":
            chosen[receipt.dovuto_id] = receipt  # type: ignore[index]
    return chosen


def _paid(receipt: Receipt | None) -> bool:
    return receipt is not None and receipt.outcome == "OK" and (receipt.esito_code in (None, "0", "2"))


def _parse_rt(receipt: Receipt) -> documents.Rt | None:
    if receipt.source not in RT_SOURCES:
        return None
    try:
        return documents.parse_rt(parse_bytes(receipt.raw))
    except Exception:  # noqa: BLE001 - a stored RT that cannot be re-read falls back to the receipt columns
        log.warning("stored RT not readable", receipt=receipt.id)
        return None


def _payer(dovuto: Dovuto) -> Soggetto:
    return Soggetto(IdentificativoUnivoco(dovuto.payer_type, dovuto.payer_code[:35]), dovuto.payer_name[:70],
                    indirizzo=_cut(dovuto.payer_address, 70), civico=_cut(dovuto.payer_civic, 16),
                    cap=_cut(dovuto.payer_postal_code, 16), localita=_cut(dovuto.payer_city, 35),
                    provincia=_cut(dovuto.payer_province, 2), nazione=_cut(dovuto.payer_country, 2),
                    email=_cut(dovuto.payer_email, 256))


def _singoli(ente: Ente, dovuto: Dovuto, receipt: Receipt, rt: documents.Rt | None) -> list[SingoloPagato]:
    if rt is not None:
        return [SingoloPagato(iud=dovuto.iud, importo=p.importo, data_esito=p.data_esito, iur=p.iur,
                              causale=p.causale, dati_specifici_riscossione=p.dati_specifici_riscossione,
                              esito=p.esito, indice=i, commissioni_psp=p.commissioni_psp, allegato=p.allegato)
                for i, p in enumerate(rt.pagamenti, start=1) if p.importo > 0 or rt.codice_esito_pagamento != "0"]
    paid_on = (receipt.paid_at or receipt.created_at or utcnow()).date()
    transfers = [p for p in receipt.payments if p.fiscal_code_pa in (None, "", ente.fiscal_code)]
    if not transfers:
        return [SingoloPagato(iud=dovuto.iud, importo=receipt.amount, data_esito=paid_on, iur=receipt.receipt_id[:35],
                              causale=dovuto.causale, dati_specifici_riscossione=dovuto.dati_specifici_riscossione,
                              esito="0", indice=1, commissioni_psp=receipt.fee)]
    return [SingoloPagato(iud=dovuto.iud, importo=p.amount, data_esito=p.outcome_date or paid_on,
                          # The ente's own causale and accounting code, as it sent them (a transfer's category
                          # is a bare taxonomy code, not a datiSpecificiRiscossione).
                          iur=(p.iur or receipt.receipt_id)[:35], causale=dovuto.causale,
                          dati_specifici_riscossione=dovuto.dati_specifici_riscossione,
                          esito="0", indice=p.index if 1 <= (p.index or 0) <= 5 else None,
                          commissioni_psp=receipt.fee if n == 0 else None)
            for n, p in enumerate(transfers)]


def _esito(paid: int, total: int, cart_state: str, receipt: Receipt | None, rt: documents.Rt | None) -> str:
    if total == 1 and rt is not None:
        return rt.codice_esito_pagamento
    if paid == total:
        return "0"
    if paid:
        return "4" if cart_state == "DECORR_TERM_PARZ" else "2"
    if cart_state == "DECORR_TERM":
        return "3"
    return receipt.esito_code if receipt is not None and receipt.esito_code in ("1", "3") else "1"


def build_cart_document(session: Session, carrello: Carrello, ente: Ente, *, con_ricevuta: bool) -> CartDocument:
    """One document for ``ente``'s positions in the cart (a multi-ente cart answers each ente apart)."""
    dovuti = [d for d in carrello.dovuti if d.ente_id == ente.id]
    return build_document(session, dovuti, ente, cart_state=carrello.state, created=carrello.created_at,
                          reference=carrello.id_session, con_ricevuta=con_ricevuta)


def build_document(session: Session, dovuti: list[Dovuto], ente: Ente, *, cart_state: str, created: datetime | None,
                   reference: str, con_ricevuta: bool) -> CartDocument:
    """The document of some positions of one ente (a cart's share, or the positions of one IUV / IUD)."""
    dovuti = sorted(dovuti, key=lambda d: d.id)
    receipts = receipts_by_dovuto(session, dovuti)
    head_dovuto = next((d for d in dovuti if _paid(receipts.get(d.id))), None) \
        or next((d for d in dovuti if d.id in receipts), None) or (dovuti[0] if dovuti else None)
    if head_dovuto is None:
        raise LookupError(f"no position of ente {ente.cod_ipa} in {reference}")
    head = receipts.get(head_dovuto.id)
    rt = _parse_rt(head) if head is not None else None

    singoli: list[SingoloPagato] = []
    paid = 0
    for dovuto in dovuti:
        receipt = receipts.get(dovuto.id)
        if not _paid(receipt):
            continue
        paid += 1
        singoli.extend(_singoli(ente, dovuto, receipt, rt if receipt is head else _parse_rt(receipt)))  # type: ignore[arg-type]
    total_paid = sum((s.importo for s in singoli), Decimal("0"))
    created = created or utcnow()

    if rt is not None:
        ricevuta = RicevutaPagati(
            dominio=rt.dominio, identificativo_messaggio_ricevuta=rt.identificativo_messaggio_ricevuta,
            data_ora_messaggio_ricevuta=rt.data_ora_messaggio_ricevuta,
            riferimento_messaggio_richiesta=rt.riferimento_messaggio_richiesta,
            riferimento_data_richiesta=rt.riferimento_data_richiesta, istituto_attestante=rt.istituto_attestante,
            ente_beneficiario=rt.ente_beneficiario, soggetto_pagatore=rt.soggetto_pagatore,
            codice_esito_pagamento=_esito(paid, len(dovuti), cart_state, head, rt),
            importo_totale_pagato=total_paid, iuv=rt.iuv, codice_contesto_pagamento=rt.codice_contesto_pagamento,
            pagamenti=tuple(singoli[:MAX_SINGOLI]), versione_oggetto=rt.versione_oggetto)
    else:
        when: datetime = (head.paid_at or head.created_at or created) if head is not None else created
        psp_code = (head.psp_id if head is not None else None) or "n/a"
        ricevuta = RicevutaPagati(
            dominio=Dominio(ente.fiscal_code),
            identificativo_messaggio_ricevuta=(head.receipt_id if head is not None else reference)[:35],
            data_ora_messaggio_ricevuta=when.astimezone(ROME).replace(tzinfo=None),  # local time, as the RTs
            riferimento_messaggio_richiesta=((head.ccp if head is not None else None) or head_dovuto.iuv
                                             or reference)[:35],
            riferimento_data_richiesta=created.astimezone(ROME).date(),
            istituto_attestante=Istituto(IdentificativoUnivoco("B", psp_code[:35]),
                                         ((head.psp_name if head is not None else None) or psp_code)[:70]),
            ente_beneficiario=Istituto(IdentificativoUnivoco("G", ente.fiscal_code), ente.name[:70]),
            soggetto_pagatore=_payer(head_dovuto),
            codice_esito_pagamento=_esito(paid, len(dovuti), cart_state, head, None),
            importo_totale_pagato=total_paid, iuv=(head.iuv if head is not None else head_dovuto.iuv) or "n/a",
            codice_contesto_pagamento=((head.ccp if head is not None else None) or "n/a")[:35],
            pagamenti=tuple(singoli[:MAX_SINGOLI]))
    build = documents.build_pagati_con_ricevuta if con_ricevuta else documents.build_pagati
    return CartDocument(pagati=build(ricevuta), rt=head.raw if head is not None else None,
                        tipo_firma=head.tipo_firma if head is not None else None)
