"""Debt positions shared by every way in: checking a Dovuti document (MyPay's InviaDovuti checks 4-11),
inserting new dovuti with their audit row, and finding the payable dovuti of an IUV (VerificaAvviso)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway import faults
from gateway.payments import identifiers, states
from gateway.payments.documents import DocumentInvalid, Dovuti, bilancio_total, parse_dovuti, validate
from gateway.payments.iuv import IuvError, notice_number
from gateway.places import COUNTRIES, PROVINCES
from storage.models import Dovuto, Ente, TipoDovuto

MARCA_BOLLO_DIGITALE = "MARCA_BOLLO_DIGITALE"
HASH_DOCUMENTO_MAX = 72  # a pagoPA limit MyPay enforces

# Countries and Italian provinces a payer address may name.
ISO_COUNTRIES = COUNTRIES
IT_PROVINCES = PROVINCES

_EMAIL = re.compile(r"[A-Za-z0-9_!#$%&'*+/=?`{|}~^.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_CAP_IT = re.compile(r"[0-9]{5}")
_CAP_OTHER = re.compile(r"[A-Za-z0-9]{1,16}")


@dataclass
class NewDovuto:
    """A checked position, ready for insert_dovuti (or for a payment basket)."""

    tipo_dovuto_id: int
    iud: str
    payer_type: str
    payer_code: str
    payer_name: str
    payer_address: str | None
    payer_civic: str | None
    payer_postal_code: str | None
    payer_city: str | None
    payer_province: str | None
    payer_country: str | None
    payer_email: str | None
    amount: Decimal
    fee_ente: Decimal | None
    due_date: date | None
    causale: str
    dati_specifici_riscossione: str
    tipo_versamento: str
    bilancio: str | None
    marca_bollo: dict | None
    iuv: str | None = None
    secondary: dict | None = None


def _fault(ente: Ente, code: str, string: str | None = None, description: str | None = None) -> faults.Fault:
    return faults.Fault(code, string, description, ente.cod_ipa)


def is_blank(value: str | None) -> bool:
    return value is None or not value.strip()


# --- anagrafica (showMyPay=NONE) ------------------------------------------------------------------

def is_valid_email(value: str | None) -> bool:
    return isinstance(value, str) and _EMAIL.fullmatch(value) is not None


def is_valid_cap(cap: str, country: str | None) -> bool:
    """MyPay's isValidCAP: five digits in Italy, 1-16 letters or digits elsewhere."""
    pattern = _CAP_IT if (country or "").upper() == "IT" else _CAP_OTHER
    return pattern.fullmatch(cap) is not None


def clean_text(value: str) -> str:
    """MyPay's address clean-up: accents dropped, anything outside printable ASCII becomes a space."""
    stripped = "".join(c for c in unicodedata.normalize("NFKD", value) if not unicodedata.combining(c))
    return "".join(c if 32 <= ord(c) <= 126 else " " for c in stripped)


def _is_printable_ascii(value: str) -> bool:
    return all(32 <= ord(c) <= 126 for c in value)


def anagrafica_error(payer: Any) -> str | None:
    """Why a payer's data are not complete enough to go straight to pagoPA, or None.

    As in MyPay every check runs and the *last* failing one names the problem.
    """
    error = None
    if not is_valid_email(payer.email):
        error = "email non valida"
    if not payer.anagrafica:
        error = "denominazione non valorizzata"
    if not is_blank(payer.cap):
        country = (payer.nazione or "").upper()
        if country not in ISO_COUNTRIES:
            error = "nazione non valorizzata"
        elif not is_valid_cap(payer.cap, country):
            error = "cap non valido"
    # Address and civic number are cleaned first, so only what survives the clean-up can fail.
    if not is_blank(payer.indirizzo) and not _is_printable_ascii(clean_text(payer.indirizzo)):
        error = "indirizzo non valido"
    if not is_blank(payer.civico) and not _is_printable_ascii(clean_text(payer.civico)):
        error = "civico non valido"
    return error


# --- Dovuti document checks -----------------------------------------------------------------------

def tipi_by_code(session: Session, ente: Ente, codes: set[str]) -> dict[str, TipoDovuto]:
    if not codes:
        return {}
    rows = session.scalars(select(TipoDovuto).where(TipoDovuto.ente_id == ente.id, TipoDovuto.code.in_(codes)))
    return {tipo.code: tipo for tipo in rows}


def iud_exists(session: Session, ente: Ente, iud: str) -> bool:
    return session.scalar(select(Dovuto.id).where(Dovuto.ente_id == ente.id, Dovuto.iud == iud).limit(1)) is not None


def parse_dovuti_document(ente: Ente, data: bytes | None) -> Dovuti:
    """Checks 4 (schema) of InviaDovuti: the parsed document or PAA_XML_NON_VALIDO with the schema error."""
    if not data:
        raise _fault(ente, faults.PAA_XML_NON_VALIDO, description="documento Dovuti mancante")
    try:
        return parse_dovuti(validate("Dovuti", data))
    except DocumentInvalid as exc:
        raise _fault(ente, faults.PAA_XML_NON_VALIDO, description=exc.detail) from None


def check_payer_id(ente: Ente, tipo: str, code: str, allow_anonimo: bool) -> None:
    """CF / P.IVA of the payer (check 9); UnknownPayerTypeError for a tipo other than F/G, as MyPay throws."""
    code_fault = identifiers.payer_id_fault(tipo, code, allow_anonimo)
    if code_fault is None:
        return
    if code == identifiers.ANONIMO:
        raise _fault(ente, code_fault, identifiers.ANONIMO_FAULT_STRING)
    if code_fault == faults.PAA_P_IVA_NON_VALIDO:
        raise _fault(ente, code_fault, f"P.IVA non valida [{code}]")
    raise _fault(ente, code_fault, f"Codice fiscale non valido [{code}]")


def check_dovuti_document(session: Session, ente: Ente, data: bytes | None, *, strict_payer: bool = False,
                          seen_iuds: set[tuple[int, str]] | None = None) -> list[NewDovuto]:
    """MyPay's InviaDovuti checks 4-11 in its order; the first failure is raised as a Fault (id = cod IPA).

    ``seen_iuds`` collects (ente id, IUD) across the elements of one request (InviaCarrello) so the same
    IUD twice is refused; ``strict_payer`` adds the showMyPay=NONE anagrafica checks.
    """
    dovuti = parse_dovuti_document(ente, data)
    payer = dovuti.soggetto_pagatore
    province = payer.provincia.upper() if payer.provincia is not None else None  # MyPay issue #45

    if not dovuti.singoli:
        raise _fault(ente, faults.PAA_XML_NON_VALIDO, "dati singolo versamento mancanti")
    if not is_blank(dovuti.iuv):
        raise _fault(ente, faults.PAA_IUV_NON_VALIDO, "l'inserimento dello IUV è deprecato")
    if not identifiers.is_valid_tipo_versamento(dovuti.tipo_versamento):
        raise _fault(ente, faults.PAA_TIPO_VERSAMENTO_NON_VALIDO,
                     f"Tipo versamento non valido [{dovuti.tipo_versamento}]")

    codes = {item.identificativo_tipo_dovuto for item in dovuti.singoli}
    tipi = tipi_by_code(session, ente, codes)
    # ANONIMO only when every tipo of the request allows it.
    allow_anonimo = all(code in tipi and tipi[code].enabled and tipi[code].cf_anonimo_allowed for code in codes)
    payer_type = payer.identificativo.tipo
    payer_code = payer.identificativo.codice
    check_payer_id(ente, payer_type, payer_code, allow_anonimo)

    items: list[NewDovuto] = []
    for item in dovuti.singoli:
        iud = item.iud
        if not identifiers.is_valid_iud(iud):
            raise _fault(ente, faults.PAA_IUD_NON_VALIDO, f"IdentificativoUnivocoDovuto non valido [{iud}]")
        if seen_iuds is not None:
            if (ente.id, iud) in seen_iuds:
                raise _fault(ente, faults.PAA_IUD_DUPLICATO, f"IUD [{iud}] duplicato in input per ente")
            seen_iuds.add((ente.id, iud))
        if iud_exists(session, ente, iud):
            raise _fault(ente, faults.PAA_IUD_DUPLICATO, f"IUD [{iud}] già inviato")
        code = item.identificativo_tipo_dovuto
        tipo = tipi.get(code)
        if tipo is None:
            raise _fault(ente, faults.PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_VALIDO,
                         f"identificativoTipoDovuto [{code}] non valido")
        if not tipo.enabled:
            raise _fault(ente, faults.PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_ABILITATO,
                         f"identificativoTipoDovuto [{code}] non abilitato")
        _check_marca_bollo(ente, item, code, tipo)
        if not identifiers.is_valid_dati_specifici_riscossione(item.dati_specifici_riscossione):
            raise _fault(ente, faults.PAA_DATI_SPECIFICI_RISCOSSIONE_NON_VALIDO,
                         f"DatiSpecificiRiscossione non valido [{item.dati_specifici_riscossione}]")
        if item.importo == 0:
            raise _fault(ente, faults.PAA_IMPORTO_SINGOLO_VERSAMENTO_NON_VALIDO,
                         f"ImportoSingoloVersamento non valido [{item.importo}]")
        if item.bilancio is not None and bilancio_total(item.bilancio) != item.importo:
            raise _fault(ente, faults.PAA_IMPORTO_BILANCIO_NON_VALIDO,
                         f"Importo bilancio non congruente per dovuto con importo [{item.importo}]")
        if is_blank(item.causale):
            raise _fault(ente, faults.PAA_CAUSALE_NON_PRESENTE, "Causale versamento obbligatoria mancante")
        bollo = item.marca_bollo
        items.append(NewDovuto(
            tipo_dovuto_id=tipo.id, iud=iud, payer_type=payer_type, payer_code=payer_code.upper(),
            payer_name=payer.anagrafica, payer_address=payer.indirizzo, payer_civic=payer.civico,
            payer_postal_code=payer.cap, payer_city=payer.localita, payer_province=province,
            payer_country=payer.nazione, payer_email=payer.email, amount=item.importo,
            fee_ente=item.commissione_carico_pa, due_date=None, causale=item.causale,
            dati_specifici_riscossione=item.dati_specifici_riscossione,
            tipo_versamento=normalise_tipo_versamento(dovuti.tipo_versamento), bilancio=item.bilancio,
            marca_bollo=None if bollo is None else {"tipo_bollo": bollo.tipo_bollo,
                                                    "hash_documento": bollo.hash_documento,
                                                    "provincia_residenza": bollo.provincia_residenza}))

    if strict_payer:
        error = anagrafica_error(payer)
        if error is not None:
            raise _fault(ente, faults.PAA_ANAGRAFICA_NON_VALIDA,
                         f"paaSILInviaDovuti: Anagrafica Pagatore non valida [{error}]")
    return items


def _check_marca_bollo(ente: Ente, item: Any, code: str, tipo: TipoDovuto) -> None:
    bollo = item.marca_bollo
    if code == MARCA_BOLLO_DIGITALE:
        if tipo.fixed_amount is None or item.importo != tipo.fixed_amount:
            raise _fault(ente, faults.PAA_IMPORTO_MARCA_BOLLO_DIGITALE_NON_VALIDA,
                         f"importoSingoloVersamento non valido per tipo dovuto {MARCA_BOLLO_DIGITALE}")
        if bollo is None or is_blank(bollo.tipo_bollo) or is_blank(bollo.hash_documento) \
                or is_blank(bollo.provincia_residenza):
            raise _fault(ente, faults.PAA_MARCA_BOLLO_DIGITALE_NON_VALIDA, "dati marca da bollo mancanti o non validi")
        if len(bollo.hash_documento) > HASH_DOCUMENTO_MAX:
            raise _fault(ente, faults.PAA_MARCA_BOLLO_DIGITALE_NON_VALIDA,
                         f"hashDocumento non può contenere più di {HASH_DOCUMENTO_MAX} caratteri")
    elif bollo is not None and not (is_blank(bollo.tipo_bollo) and is_blank(bollo.hash_documento)
                                    and is_blank(bollo.provincia_residenza)):
        raise _fault(ente, faults.PAA_MARCA_BOLLO_DIGITALE_NON_VALIDA,
                     "dati marca da bollo non supportati su tipo dovuto diverso da marca da bollo")


def normalise_tipo_versamento(value: str | None) -> str:
    """Blank becomes ALL; tokens upper-cased and trimmed (the value was checked already)."""
    if is_blank(value):
        return identifiers.TIPO_VERSAMENTO_ALL
    tokens = [token.strip().upper() for token in value.split("|") if token.strip()]  # type: ignore[union-attr]
    return "|".join(tokens) or identifiers.TIPO_VERSAMENTO_ALL


# --- insert ---------------------------------------------------------------------------------------

def notice_number_of(ente: Ente, iuv: str | None) -> str | None:
    """The 18-digit notice number of a 15/17-digit IUV, None for RF references or no IUV."""
    if not iuv:
        return None
    try:
        return notice_number(iuv, ente.application_code)
    except IuvError:
        return None


def new_dovuto_row(ente: Ente, item: NewDovuto, *, carrello_id: int | None, import_flow_id: int | None,
                   iuv_generated: bool = False) -> Dovuto:
    return Dovuto(
        ente_id=ente.id, tipo_dovuto_id=item.tipo_dovuto_id, carrello_id=carrello_id,
        import_flow_id=import_flow_id, iud=item.iud, iuv=item.iuv, notice_number=notice_number_of(ente, item.iuv),
        iuv_generated=iuv_generated, state=states.INSERIMENTO_DOVUTO, payer_type=item.payer_type,
        payer_code=item.payer_code, payer_name=item.payer_name, payer_address=item.payer_address,
        payer_civic=item.payer_civic, payer_postal_code=item.payer_postal_code, payer_city=item.payer_city,
        payer_province=item.payer_province, payer_country=item.payer_country, payer_email=item.payer_email,
        amount=item.amount, fee_ente=item.fee_ente, due_date=item.due_date, causale=item.causale,
        dati_specifici_riscossione=item.dati_specifici_riscossione, tipo_versamento=item.tipo_versamento,
        bilancio=item.bilancio, marca_bollo=item.marca_bollo, secondary=item.secondary)


def insert_dovuti(session: Session, ente: Ente, items: list[NewDovuto], *, carrello_id: int | None,
                  import_flow_id: int | None = None, reason: str, actor: str,
                  iuv_generated: bool = False) -> list[Dovuto]:
    """Insert ``items`` in state INSERIMENTO_DOVUTO, each with its creation audit row.

    A concurrent request that inserted the same IUD first (the unique constraint fires) gives
    PAA_IUD_DUPLICATO; the savepoint keeps the caller's transaction usable on PostgreSQL.
    """
    rows = [new_dovuto_row(ente, item, carrello_id=carrello_id, import_flow_id=import_flow_id,
                           iuv_generated=iuv_generated) for item in items]
    try:
        with session.begin_nested():
            for row in rows:
                session.add(row)
                states.record_creation(session, row, reason=reason, actor=actor)
            session.flush()
    except IntegrityError:
        for item in items:
            if iud_exists(session, ente, item.iud):
                raise _fault(ente, faults.PAA_IUD_DUPLICATO, f"IUD [{item.iud}] già inviato") from None
        raise
    return rows


# --- VerificaAvviso lookup ------------------------------------------------------------------------

def open_dovuti_by_iuv(session: Session, ente: Ente, iuv: str) -> list[Dovuto]:
    """The dovuti of (ente, IUV) still in MyPay's open table: neither paid nor annulled."""
    return list(session.scalars(
        select(Dovuto).where(Dovuto.ente_id == ente.id, Dovuto.iuv == iuv, Dovuto.state.not_in(states.FINAL))
        .order_by(Dovuto.id)))


def find_payable_by_iuv(session: Session, ente: Ente, iuv: str, *, today: date | None = None) -> list[Dovuto]:
    """MyPay's VerificaAvviso rules: the payable dovuti of an IUV, or PAA_IUV_NON_VALIDO / PAA_IUV_SCADUTO."""
    today = today or date.today()
    disabled_note: str | None = None
    payable: list[Dovuto] = []
    for dovuto in open_dovuti_by_iuv(session, ente, iuv or ""):
        tipo = dovuto.tipo_dovuto
        if tipo is None or not tipo.enabled:
            code = tipo.code if tipo is not None else None
            disabled_note = disabled_note or \
                f"il dovuto [{code}] associato allo IUV risulta disabilitato o non presente"
            continue
        if dovuto.state != states.INSERIMENTO_DOVUTO:
            raise _fault(ente, faults.PAA_IUV_NON_VALIDO, f"non ci sono dovuti pagabili per il dato IUV [{iuv}]")
        if tipo.due_date_required and dovuto.due_date is not None and dovuto.due_date < today:
            raise _fault(ente, faults.PAA_IUV_SCADUTO, f"alcuni dovuti sono scaduti per il dato IUV [{iuv}]")
        payable.append(dovuto)
    if not payable:
        raise _fault(ente, faults.PAA_IUV_NON_VALIDO,
                     f"Error nessun dovuto trovato per IUV [{iuv}] ed ente [{ente.cod_ipa}]", disabled_note)
    return payable
