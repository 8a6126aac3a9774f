"""A payer's open positions (ChiediPosizioniAperte), an ente's pending notices (ChiediAvvisiPendenti) and
payments made outside pagoPA (RegistraPagamento), with the Dovuti XML that describes one position."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from lxml import etree
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway import faults
from gateway.payments import states
from gateway.payments.documents import ENTE_NS, IdentificativoUnivoco, MarcaBollo, Soggetto
from gateway.payments.documents.common import Writer, serialize
from gateway.payments.dovuti import notice_number_of
from gateway.payments.results import PagamentoEsterno
from gateway.xml import parse_bytes
from storage.models import Dovuto, Ente, Receipt, ReceiptPayment, TipoDovuto

ROME = ZoneInfo("Europe/Rome")
DEFAULT_TIPO = "DEFAULT"
REGISTRA_SOURCE = "registra"
# MyPay's fillers for a payment registered without the data of a known position.
CAUSALE_PAGATO = "PAGATO"
DSR_UNKNOWN = "9/---"
ESITO_REGISTRA = "PAGATO CON RENDICONTAZIONE 9"


def today_rome() -> date:
    return datetime.now(ROME).date()


def start_of_day(day: date) -> datetime:
    """Midnight in Italy, the day boundary every date of the ente contract means."""
    return datetime.combine(day, time.min, tzinfo=ROME).astimezone(timezone.utc)


# --- Dovuti XML of one position -------------------------------------------------------------------

def _requalify(parent: etree._Element, plain: etree._Element) -> None:
    """Copy a namespace-free subtree (the stored bilancio) into the ente namespace."""
    node = etree.SubElement(parent, f"{{{ENTE_NS}}}{plain.tag}")
    children = [child for child in plain if isinstance(child.tag, str)]
    if children:
        for child in children:
            _requalify(node, child)
    else:
        node.text = plain.text


def dovuti_xml(dovuti: list[Dovuto]) -> bytes:
    """A Dovuti document (PagInf_Dovuti_Pagati 6.2.0) for dovuti of one payer, in the order given."""
    first = dovuti[0]
    w = Writer(ENTE_NS)
    root = w.root("Dovuti")
    w.text(root, "versioneOggetto", "6.2.0")
    w.soggetto(root, "soggettoPagatore", "Pagatore", Soggetto(
        identificativo=IdentificativoUnivoco(first.payer_type, first.payer_code), anagrafica=first.payer_name,
        indirizzo=first.payer_address, civico=first.payer_civic, cap=first.payer_postal_code,
        localita=first.payer_city, provincia=first.payer_province, nazione=first.payer_country,
        email=first.payer_email), provincia_max=2)
    versamento = w.node(root, "datiVersamento")
    w.text(versamento, "tipoVersamento", first.tipo_versamento or "ALL")
    w.text(versamento, "identificativoUnivocoVersamento", first.iuv)
    for dovuto in dovuti:
        item = w.node(versamento, "datiSingoloVersamento")
        w.text(item, "identificativoUnivocoDovuto", dovuto.iud)
        w.amount(item, "importoSingoloVersamento", dovuto.amount)
        w.amount(item, "commissioneCaricoPA", dovuto.fee_ente)
        w.text(item, "identificativoTipoDovuto", dovuto.tipo_dovuto.code if dovuto.tipo_dovuto else DEFAULT_TIPO)
        w.text(item, "causaleVersamento", dovuto.causale)
        w.text(item, "datiSpecificiRiscossione", dovuto.dati_specifici_riscossione)
        bollo = dovuto.marca_bollo
        # MyPay writes the document hash into provinciaResidenza here (a bug, not reproduced).
        w.marca_bollo(item, None if not bollo else MarcaBollo(bollo["tipo_bollo"], bollo["hash_documento"],
                                                               bollo["provincia_residenza"]))
        if dovuto.bilancio:
            _requalify(item, parse_bytes(dovuto.bilancio.encode("utf-8")))
    return serialize(root)


# --- PosizioniAperte / AvvisiPendenti -------------------------------------------------------------

@dataclass(frozen=True)
class OpenPosition:
    ente: Ente
    dovuto: Dovuto


def check_person(fault_id: str, person_type: str | None, person_code: str | None) -> tuple[str, str]:
    """MyPay's checkIdentificativoUnivocoPersonaFG: the (tipo, code) to look for, or its fault."""
    if person_type is None or not person_type.strip():
        raise faults.Fault(faults.PAA_TIPO_IDENTIFICATIVO_PAGATORE_NON_VALIDO,
                           "Tipo identificativo univoco non presente", id=fault_id)
    if person_type not in ("F", "G"):
        raise faults.Fault(faults.PAA_TIPO_IDENTIFICATIVO_PAGATORE_NON_VALIDO,
                           f"Tipo identificativo univoco non valido: {person_type}", id=fault_id)
    if person_code is None or not person_code.strip():
        raise faults.Fault(faults.PAA_CODICE_IDENTIFICATIVO_PAGATORE_NON_PRESENTE,
                           "Codice identificativo univoco non presente", id=fault_id)
    return person_type, person_code.strip().upper()


def _payable_now(dovuto: Dovuto, today: date) -> bool:
    tipo = dovuto.tipo_dovuto
    if tipo is None or not tipo.enabled:
        return False
    return not (tipo.due_date_required and dovuto.due_date is not None and dovuto.due_date < today)


def open_positions(session: Session, enti: list[Ente], person_type: str, person_code: str) -> list[OpenPosition]:
    """The payable dovuti of a person at the given enti (never any other ente's), oldest first."""
    by_id = {ente.id: ente for ente in enti}
    if not by_id:
        return []
    rows = session.scalars(
        select(Dovuto).where(Dovuto.ente_id.in_(by_id), Dovuto.payer_type == person_type,
                             Dovuto.payer_code == person_code, Dovuto.state == states.INSERIMENTO_DOVUTO)
        .order_by(Dovuto.id))
    today = today_rome()
    return [OpenPosition(by_id[d.ente_id], d) for d in rows if _payable_now(d, today)]


def pending_notices(session: Session, ente: Ente, date_from: date | None, date_to: date | None) -> list[Dovuto]:
    """The payable notices (dovuti with an IUV) an ente created between two days, both included."""
    if date_from is None:
        raise faults.Fault(faults.PAA_DATE_FROM_NON_VALIDO, "Data inizio non valida", id=ente.cod_ipa)
    if date_to is None:
        raise faults.Fault(faults.PAA_DATE_TO_NON_VALIDO, "Data fine non valida", id=ente.cod_ipa)
    if date_to < date_from:
        raise faults.Fault(faults.PAA_INTERVALLO_DATE_NON_VALIDO,
                           "L'intervallo data inizio e data fine non è valido", id=ente.cod_ipa)
    rows = session.scalars(
        select(Dovuto).where(Dovuto.ente_id == ente.id, Dovuto.iuv.is_not(None),
                             Dovuto.state == states.INSERIMENTO_DOVUTO,
                             Dovuto.created_at >= start_of_day(date_from),
                             Dovuto.created_at < start_of_day(date_to + timedelta(days=1)))
        .order_by(Dovuto.created_at, Dovuto.id))
    today = today_rome()
    return [d for d in rows if _payable_now(d, today)]


def created_on(dovuto: Dovuto) -> date:
    return dovuto.created_at.astimezone(ROME).date()


# --- RegistraPagamento ----------------------------------------------------------------------------

def registra_receipt_id(iuv: str, iur: str) -> str:
    receipt_id = f"REGISTRA-{iuv}-{iur}"
    if len(receipt_id) <= 64:
        return receipt_id
    # Long RF references and IURs: a digest keeps the id unique within the column.
    return "REGISTRA-" + hashlib.sha256(f"{iuv}|{iur}".encode()).hexdigest()[:55]


def _registra_xml(ente: Ente, payment: PagamentoEsterno) -> bytes:
    root = etree.Element("registraPagamento")
    for name, value in (("codIpaEnte", ente.cod_ipa), ("identificativoDominio", ente.fiscal_code),
                        ("identificativoUnivocoVersamento", payment.iuv),
                        ("codiceContestoPagamento", payment.ccp), ("singoloImportoPagato", f"{payment.amount:.2f}"),
                        ("dataEsitoSingoloPagamento", payment.date.isoformat()),
                        ("indiceDatiSingoloPagamento", None if payment.index is None else str(payment.index)),
                        ("identificativoUnivocoRiscossione", payment.iur),
                        ("esitoSingoloPagamento", ESITO_REGISTRA),
                        ("tipoIstitutoAttestante", payment.attestante_type),
                        ("codiceIstitutiAttestante", payment.attestante_code),
                        ("denominazioneAttestante", payment.attestante_name)):
        if value is not None:
            etree.SubElement(root, name).text = value
    return serialize(root)


def _default_tipo(session: Session, ente: Ente) -> TipoDovuto:
    tipo = session.scalar(select(TipoDovuto).where(TipoDovuto.ente_id == ente.id, TipoDovuto.code == DEFAULT_TIPO))
    if tipo is None:
        tipo = TipoDovuto(ente_id=ente.id, code=DEFAULT_TIPO, description="Pagamenti registrati dall'ente",
                          taxonomy_code=DSR_UNKNOWN, enabled=True)
        session.add(tipo)
        session.flush()
    return tipo


def _placeholder(session: Session, ente: Ente, payment: PagamentoEsterno, paid_at: datetime, actor: str) -> Dovuto:
    """MyPay's placeholder for an IUV it never issued: a completed dovuto of tipo DEFAULT."""
    dovuto = Dovuto(ente_id=ente.id, tipo_dovuto_id=_default_tipo(session, ente).id,
                    iud="000" + uuid.uuid4().hex, iuv=payment.iuv, notice_number=notice_number_of(ente, payment.iuv),
                    state=states.COMPLETATO, payer_type="F", payer_code="ANONIMO", payer_name="ANONIMO",
                    amount=payment.amount, causale=CAUSALE_PAGATO, dati_specifici_riscossione=DSR_UNKNOWN,
                    tipo_versamento="ALL", paid_at=paid_at)
    session.add(dovuto)
    session.flush()
    states.record_creation(session, dovuto, reason="paaSILRegistraPagamento: IUV sconosciuto", actor=actor)
    return dovuto


def registra_pagamento(session: Session, ente: Ente, payment: PagamentoEsterno, *, actor: str) -> Receipt:
    """Close the positions of an IUV as paid outside pagoPA and store the payment as a receipt.

    Idempotent on (ente, IUV, IUR): a repeated call finds its receipt and changes nothing.
    """
    receipt_id = registra_receipt_id(payment.iuv, payment.iur)
    # Lock the IUV's positions first: a concurrent repeat then waits here and finds the receipt below.
    candidates = list(session.scalars(select(Dovuto).where(Dovuto.ente_id == ente.id, Dovuto.iuv == payment.iuv)
                                      .order_by(Dovuto.id).with_for_update()))
    existing = _find_receipt(session, ente, receipt_id)
    if existing is not None:
        return existing
    try:
        with session.begin_nested():
            return _record(session, ente, payment, candidates, receipt_id, actor)
    except IntegrityError:
        # The same call for an IUV with no position, concurrently: the other one stored it.
        raced = _find_receipt(session, ente, receipt_id)
        if raced is None:
            raise
        return raced


def _find_receipt(session: Session, ente: Ente, receipt_id: str) -> Receipt | None:
    return session.scalar(select(Receipt).where(Receipt.fiscal_code == ente.fiscal_code,
                                                Receipt.receipt_id == receipt_id))


def _record(session: Session, ente: Ente, payment: PagamentoEsterno, candidates: list[Dovuto], receipt_id: str,
            actor: str) -> Receipt:
    paid_at = start_of_day(payment.date)
    flags: list[str] = []
    open_ones = [d for d in candidates if d.state not in states.FINAL]
    if open_ones:
        targets = open_ones
    elif any(d.state == states.COMPLETATO for d in candidates):
        targets = [d for d in candidates if d.state == states.COMPLETATO]
        flags.append("already_paid")
    elif candidates:
        targets = candidates  # annulled: the payment still happened, so it completes them (flagged)
        flags.append("annulled")
    else:
        targets = [_placeholder(session, ente, payment, paid_at, actor)]
        flags.append("unknown_position")
    for dovuto in targets:
        if dovuto.state != states.COMPLETATO:
            dovuto.paid_at = paid_at
            states.move_dovuto(session, dovuto, states.COMPLETATO, reason="paaSILRegistraPagamento", actor=actor)
    main = targets[0]
    if sum((d.amount for d in targets), Decimal("0")) != payment.amount:
        flags.append("amount_mismatch")
    tipo = main.tipo_dovuto
    receipt = Receipt(
        ente_id=ente.id, dovuto_id=main.id, carrello_id=main.carrello_id, fiscal_code=ente.fiscal_code,
        receipt_id=receipt_id, iuv=payment.iuv, notice_number=main.notice_number, ccp=payment.ccp,
        source=REGISTRA_SOURCE, outcome="OK", esito_code="0", amount=payment.amount, paid_at=paid_at,
        psp_id=payment.attestante_code, psp_name=payment.attestante_name,
        payer={"type": main.payer_type, "code": main.payer_code, "name": main.payer_name},
        raw=_registra_xml(ente, payment), flags=flags)
    receipt.payments.append(ReceiptPayment(
        index=payment.index or 1, iuv=payment.iuv, iur=payment.iur, amount=payment.amount,
        fiscal_code_pa=ente.fiscal_code, iban=tipo.iban if tipo is not None else None,
        causale=(main.causale or CAUSALE_PAGATO)[:1024],
        dati_specifici_riscossione=main.dati_specifici_riscossione or DSR_UNKNOWN, outcome_date=payment.date))
    session.add(receipt)
    session.flush()
    return receipt
