"""The debt position behind a notice number, and how it is described to the pagoPA node (verify, getPayment).

Pure lookups: nothing here changes a position (paVerifyPaymentNotice has no side effects).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Sequence

from sqlalchemy import bindparam, select

from gateway import faults
from gateway.payments import iuv as iuv_rules
from gateway.payments import states
from storage.direct import Direct, Statement
from storage.models import Dovuto, Ente, TipoDovuto

# paGetPayment's dueDate is mandatory in the XSD; a position without one is payable "until further notice".
FAR_DUE_DATE = date(2099, 12, 31)
MARCA_BOLLO_DIGITALE = "MARCA_BOLLO_DIGITALE"
MAX_TEXT = 140
POSTAL_ABI = "07601"  # Poste Italiane: an IBAN with this ABI is a conto corrente postale (allCCP)


# --- values the node-facing operations answer with ----------------------------------------------

@dataclass(frozen=True)
class Subject:
    type: str
    code: str
    full_name: str
    street: str | None = None
    civic: str | None = None
    postal_code: str | None = None
    city: str | None = None
    province: str | None = None
    country: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Transfer:
    id_transfer: int
    amount: Decimal
    fiscal_code_pa: str
    remittance: str
    category: str
    iban: str | None = None
    company_name: str | None = None
    marca_bollo: dict[str, Any] | None = None  # tipoBollo, hashDocumento (bytes), provinciaResidenza
    mbd_attachment: bytes | None = None
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PaymentOption:
    amount: Decimal
    due_date: date | None
    description: str
    fiscal_code: str
    company_name: str
    office_name: str | None = None
    all_ccp: bool = False


@dataclass(frozen=True)
class PaymentData:
    iuv: str
    amount: Decimal
    due_date: date
    description: str
    company_name: str
    debtor: Subject
    transfers: list[Transfer]
    office_name: str | None = None
    retention_date: datetime | None = None


@dataclass(frozen=True)
class Secondary:
    """The secondary beneficiary's quota of a multi-beneficiary dovuto (Dovuto.secondary)."""

    fiscal_code: str
    name: str | None
    iban: str | None
    amount: Decimal
    causale: str | None
    category: str | None


# --- decoding and lookup -------------------------------------------------------------------------

def decode_notice(ente: Ente, notice_number: str) -> str | None:
    """The IUV of a notice number issued by this ente (its aux digit and segregation/application code), or None."""
    try:
        decoded = iuv_rules.parse_notice_number(notice_number)
    except iuv_rules.IuvError:
        return None
    if decoded.aux_digit != (ente.aux_digit or iuv_rules.AUX_DIGIT_IUV17):
        return None
    expected = ente.segregation_code if decoded.aux_digit == iuv_rules.AUX_DIGIT_IUV17 else ente.application_code
    if expected and decoded.code != expected:
        return None
    return decoded.iuv


@dataclass(frozen=True)
class Tipo:
    """What the node's calls read of a position's tipo dovuto."""

    code: str
    iban: str | None
    postal_iban: bool
    taxonomy_code: str | None
    due_date_required: bool
    enabled: bool


@dataclass(frozen=True)
class Position:
    """A dovuto as the node's calls see it: a plain snapshot read in one statement, no ORM object."""

    id: int
    state: str
    iuv: str | None
    carrello_id: int | None
    amount: Decimal
    due_date: date | None
    causale: str
    dati_specifici_riscossione: str
    marca_bollo: dict[str, Any] | None
    secondary: dict[str, Any] | None
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


_POSITION_COLUMNS = (Dovuto.id, Dovuto.state, Dovuto.iuv, Dovuto.carrello_id, Dovuto.amount, Dovuto.due_date,
                     Dovuto.causale, Dovuto.dati_specifici_riscossione, Dovuto.marca_bollo, Dovuto.secondary,
                     Dovuto.payer_type, Dovuto.payer_code, Dovuto.payer_name, Dovuto.payer_address,
                     Dovuto.payer_civic, Dovuto.payer_postal_code, Dovuto.payer_city, Dovuto.payer_province,
                     Dovuto.payer_country, Dovuto.payer_email)
_TIPO_COLUMNS = (TipoDovuto.code, TipoDovuto.iban, TipoDovuto.postal_iban, TipoDovuto.taxonomy_code,
                 TipoDovuto.due_date_required, TipoDovuto.enabled)
_POSITIONS = (select(*_POSITION_COLUMNS, *_TIPO_COLUMNS)
              .select_from(Dovuto).outerjoin(TipoDovuto, TipoDovuto.id == Dovuto.tipo_dovuto_id)
              .where(Dovuto.ente_id == bindparam("ente_id"), Dovuto.iuv == bindparam("iuv")).order_by(Dovuto.id))
POSITIONS = Statement(_POSITIONS)
POSITIONS_FOR_UPDATE = Statement(_POSITIONS.with_for_update(of=Dovuto))
_SPLIT = len(_POSITION_COLUMNS)


def positions_for_iuv(db: Direct, ente_id: int, iuv: str, *,
                      for_update: bool = False) -> list[tuple[Position, Tipo | None]]:
    """Every dovuto of the ente carrying this IUV with its tipo: one statement on ix_dovuto_ente_iuv."""
    rows = db.rows(POSITIONS_FOR_UPDATE if for_update else POSITIONS, ente_id=ente_id, iuv=iuv)
    return [(Position(*row[:_SPLIT]), Tipo(*row[_SPLIT:]) if row[_SPLIT] is not None else None) for row in rows]


def pick(rows: Sequence[tuple[Position, Tipo | None]]) -> tuple[Position, Tipo | None] | None:
    """The position a notice stands for: the open one, else the paid one, else the latest closed one."""
    for wanted in (states.OPEN, {states.COMPLETATO}):
        matching = [row for row in rows if row[0].state in wanted]
        if matching:
            return matching[-1]
    return rows[-1] if rows else None


def _fault(code: str, ente: Ente, description: str) -> faults.Fault:
    return faults.Fault(code, description=description, id=ente.fiscal_code, serial=0)


def find_payable(db: Direct, ente: Ente, fiscal_code: str | None, notice_number: str | None, *,
                 today: date) -> tuple[Position, Tipo | None]:
    """The payable position of a notice, or the PAA_* fault the node expects (pagopa-node.md 1.3.1)."""
    if fiscal_code != ente.fiscal_code:
        raise _fault(faults.PAA_PAGAMENTO_SCONOSCIUTO, ente,
                     f"avviso dell'ente {fiscal_code}, non di {ente.fiscal_code}")
    iuv = decode_notice(ente, notice_number or "")
    if iuv is None:
        raise _fault(faults.PAA_PAGAMENTO_SCONOSCIUTO, ente, f"numero avviso {notice_number} non emesso da questo ente")
    rows = positions_for_iuv(db, ente.id, iuv)
    open_rows = [row for row in rows if row[0].state in states.OPEN]
    if len(open_rows) > 1:
        raise faults.Fault(faults.PAA_SYSTEM_ERROR, description=f"più posizioni aperte per lo IUV {iuv}",
                           id=ente.fiscal_code, serial=0)
    chosen = pick(rows)
    if chosen is None:
        raise _fault(faults.PAA_PAGAMENTO_SCONOSCIUTO, ente, f"nessuna posizione per lo IUV {iuv}")
    dovuto, tipo = chosen
    if dovuto.state == states.COMPLETATO:
        raise _fault(faults.PAA_PAGAMENTO_DUPLICATO, ente, f"posizione {iuv} già pagata")
    if dovuto.state == states.ANNULLATO:
        raise _fault(faults.PAA_PAGAMENTO_ANNULLATO, ente, f"posizione {iuv} annullata")
    if dovuto.state == states.SCADUTO or (
            tipo is not None and tipo.due_date_required and dovuto.due_date is not None and dovuto.due_date < today):
        raise _fault(faults.PAA_PAGAMENTO_SCADUTO, ente, f"posizione {iuv} scaduta")
    if dovuto.state == states.PAGAMENTO_INIZIATO:
        raise _fault(faults.PAA_PAGAMENTO_IN_CORSO, ente, f"pagamento della posizione {iuv} in corso presso l'ente")
    if tipo is not None and not tipo.enabled:
        # MyPay answers its own PAA_TIPO_DOVUTO_NON_ABILITATO_PER_ENTE; the node only knows the standard codes.
        raise _fault(faults.PAA_PAGAMENTO_SCONOSCIUTO, ente, f"tipo dovuto {tipo.code} non abilitato")
    return dovuto, tipo


# --- amounts and transfers -----------------------------------------------------------------------

def _get(data: dict[str, Any], *names: str) -> Any:
    for name in names:
        value = data.get(name)
        if value not in (None, ""):
            return value
    return None


def secondary_of(dovuto: Position) -> Secondary | None:
    data = dovuto.secondary
    if not data:
        return None
    amount = _get(data, "amount", "importo")
    fiscal_code = _get(data, "fiscal_code", "codice_fiscale", "codiceFiscaleBeneficiario")
    if amount is None or fiscal_code is None:
        return None
    return Secondary(
        fiscal_code=str(fiscal_code), name=_get(data, "name", "denominazione", "denominazioneBeneficiario"),
        iban=_get(data, "iban", "iban_accredito", "ibanAccreditoBeneficiario"), amount=Decimal(str(amount)),
        causale=_get(data, "causale", "causaleVersamento"),
        category=_get(data, "taxonomy", "taxonomy_code", "dati_specifici_riscossione", "datiSpecificiRiscossione"))


def total_amount(dovuto: Position) -> Decimal:
    """What the payer pays for the notice: the ente's quota plus a secondary beneficiary's, if any."""
    secondary = secondary_of(dovuto)
    return Decimal(dovuto.amount) + (secondary.amount if secondary else Decimal("0"))


def category(dati_specifici_riscossione: str | None, taxonomy: str | None) -> str:
    """transferCategory: the tipo's taxonomy code, else the code part of datiSpecificiRiscossione (9/<code>/)."""
    if taxonomy:
        return taxonomy[:MAX_TEXT]
    value = dati_specifici_riscossione or ""
    if len(value) > 2 and value[1] == "/":
        value = value[2:]
    return (value.rstrip("/") or value or "n/a")[:MAX_TEXT]


def is_postal(iban: str | None) -> bool:
    iban = (iban or "").replace(" ", "").upper()
    return iban.startswith("IT") and iban[5:10] == POSTAL_ABI


def _marca_bollo(dovuto: Position) -> dict[str, Any] | None:
    data = dovuto.marca_bollo
    if not data:
        return None
    digest = _get(data, "hash_documento", "hashDocumento") or ""
    if isinstance(digest, str):
        try:
            digest = base64.b64decode(digest, validate=True)
        except (binascii.Error, ValueError):
            digest = digest.encode()
    return {"hashDocumento": digest, "tipoBollo": _get(data, "tipo_bollo", "tipoBollo") or "01",
            "provinciaResidenza": _get(data, "provincia_residenza", "provinciaResidenza")}


def _text(value: str | None) -> str:
    return ((value or "").strip() or "n/a")[:MAX_TEXT]


def transfers(ente: Ente, dovuto: Position, tipo: Tipo | None, *, v2: bool) -> list[Transfer]:
    """Transfer 1 is the ente's quota, transfer 2 the secondary beneficiary's; amounts add up to the total."""
    stamp = _marca_bollo(dovuto) if (tipo is not None and tipo.code == MARCA_BOLLO_DIGITALE) else None
    if stamp is not None and not v2:
        raise faults.Fault(faults.PAA_SEMANTICA, id=ente.fiscal_code, serial=0,
                           description="la posizione contiene una marca da bollo digitale: serve paGetPaymentV2")
    if stamp is None and not (tipo and tipo.iban):
        raise faults.Fault(faults.PAA_SYSTEM_ERROR, id=ente.fiscal_code, serial=0,
                           description="nessun IBAN configurato per il tipo dovuto")
    result = [Transfer(
        id_transfer=1, amount=Decimal(dovuto.amount), fiscal_code_pa=ente.fiscal_code,
        remittance=_text(dovuto.causale), category=category(dovuto.dati_specifici_riscossione,
                                                            tipo.taxonomy_code if tipo else None),
        iban=None if stamp else tipo.iban if tipo else None, company_name=ente.name[:MAX_TEXT] if v2 else None,
        marca_bollo=stamp)]
    secondary = secondary_of(dovuto)
    if secondary is not None:
        result.append(Transfer(
            id_transfer=2, amount=secondary.amount, fiscal_code_pa=secondary.fiscal_code,
            remittance=_text(secondary.causale or dovuto.causale),
            category=category(secondary.category, None), iban=secondary.iban,
            company_name=((secondary.name or "")[:MAX_TEXT] or None) if v2 else None))
    return result


def payment_option(ente: Ente, dovuto: Position, tipo: Tipo | None) -> PaymentOption:
    secondary = secondary_of(dovuto)
    stamp = tipo is not None and tipo.code == MARCA_BOLLO_DIGITALE
    primary_postal = tipo is not None and (tipo.postal_iban or is_postal(tipo.iban))
    all_ccp = not stamp and primary_postal and (secondary is None or is_postal(secondary.iban))
    return PaymentOption(amount=total_amount(dovuto), due_date=dovuto.due_date, description=_text(dovuto.causale),
                         fiscal_code=ente.fiscal_code, company_name=ente.name[:MAX_TEXT],
                         office_name=ente.office_name, all_ccp=bool(all_ccp))


def debtor(dovuto: Position) -> Subject:
    country = (dovuto.payer_country or "").upper()
    return Subject(type=dovuto.payer_type if dovuto.payer_type in ("F", "G") else "F",
                   code=dovuto.payer_code[:16], full_name=dovuto.payer_name[:70],
                   street=dovuto.payer_address, civic=dovuto.payer_civic, postal_code=dovuto.payer_postal_code,
                   city=dovuto.payer_city, province=dovuto.payer_province,
                   country=country if len(country) == 2 and country.isalpha() else None, email=dovuto.payer_email)


def payment_data(ente: Ente, dovuto: Position, tipo: Tipo | None, *, v2: bool) -> PaymentData:
    items = transfers(ente, dovuto, tipo, v2=v2)
    return PaymentData(iuv=dovuto.iuv or "", amount=sum((t.amount for t in items), Decimal("0")),
                       due_date=dovuto.due_date or FAR_DUE_DATE, description=_text(dovuto.causale),
                       company_name=ente.name[:MAX_TEXT], debtor=debtor(dovuto), transfers=items,
                       office_name=ente.office_name)
