"""paaSILImportaDovuto: create (I), modify (M), annul (A) one debt position or print its notice (S),
with MyPay's checks in MyPay's order (ente-services §2.7), plus the notice PDF and its signed URL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import faults, logs
from gateway.enti.credentials import verify_password
from gateway.payments import dovuti as dv
from gateway.payments import identifiers, states
from gateway.payments.avviso import AvvisoData, AvvisoError, avviso_entry_name, render_avviso_pdf, zip_avvisi
from gateway.payments.documents import (DocumentInvalid, DovutiEntiSecondari, Versamento,
                                        parse_dovuti_enti_secondari, parse_versamento, validate)
from gateway.payments.iuv import InvalidIuvError, IuvError, validate_iuv_for_import
from gateway.payments.iuv_allocator import allocate_iuv
from gateway.payments.results import ImportaDovutoResult
from gateway.settings import Settings
from gateway.urls import make_token, public_url, read_token
from storage.models import Dovuto, Ente, TipoDovuto

log = logs.get_logger(__name__)

AZIONI = ("I", "M", "A", "S")
OP = "paaSILImportaDovuto"
AVVISO_TOKEN_PURPOSE = "avviso"
AVVISO_TOKEN_MAX_AGE = 2 * 365 * 24 * 3600  # MyPay signs the notice link for two years
AVVISO_PATH = "/avviso/"


@dataclass(frozen=True)
class CleanPayer:
    """soggettoPagatore after MyPay's clean-up (§2.7 step 12): bad optional data dropped, not refused."""

    type: str
    code: str
    name: str
    address: str | None
    civic: str | None
    postal_code: str | None
    city: str | None
    province: str | None
    country: str | None
    email: str | None


@dataclass(frozen=True)
class _Checked:
    versamento: Versamento
    ente: Ente
    tipo: TipoDovuto
    payer: CleanPayer
    iuv: str | None
    iud: str
    tipo_versamento: str
    fee: Decimal


def _fault(cod_ipa: str, code: str, string: str, description: str | None = None, serial: int | None = None):
    return faults.Fault(code, string, description, cod_ipa, serial)


def _action_fault(cod_ipa: str, iuv: str | None, iud: str | None, detail: str, code: str = faults.PAA_SYSTEM_ERROR):
    # MyPay's wording for every failure inside an action (Java prints a missing value as "null").
    return _fault(cod_ipa, code, f"{OP}: Errore import dovuto IUV [{_java(iuv)}] e IUD [{_java(iud)}]: {detail}")


def _java(value: str | None) -> str:
    return "null" if value is None else value


# --- checks ---------------------------------------------------------------------------------------

def parse_request(cod_ipa: str, data: bytes | None) -> Versamento:
    """Step 1: the Versamento document, parsed and validated before the ente is even looked at."""
    try:
        if not data:
            raise DocumentInvalid("documento Versamento mancante")
        return parse_versamento(validate("Versamento", data))
    except DocumentInvalid as exc:
        raise _fault(cod_ipa, faults.PAA_XML_NON_VALIDO, "XML dei dovuti non valido",
                     f"XML ricevuto per {OP} non conforme all' XSD per ente [{cod_ipa}]  XML Error: \n{exc.detail}") \
            from None


def check_ente(session: Session, cod_ipa: str, password: str | None) -> Ente:
    """Step 2, inline as in MyPay: unknown, then state INSERITO (serial 0), then password."""
    ente = session.scalar(select(Ente).where(Ente.cod_ipa == cod_ipa)) if cod_ipa else None
    if ente is None or not ente.enabled:
        raise _fault(cod_ipa, faults.PAA_ENTE_NON_VALIDO, f"codice IPA Ente [{cod_ipa}] non valido")
    if ente.state == "INSERITO":
        raise _fault(cod_ipa, faults.PAA_ENTE_NON_VALIDO, "Stato Ente Non Valido", serial=0)
    if not verify_password(password, ente.password_hash):
        raise _fault(cod_ipa, faults.PAA_ENTE_NON_VALIDO, f"Password non valida per ente [{cod_ipa}]")
    return ente


def _cleaned(value: str | None) -> str | None:
    return None if dv.is_blank(value) else (dv.clean_text(value).strip() or None)  # type: ignore[arg-type]


def clean_payer(soggetto: Any) -> CleanPayer:
    country = (soggetto.nazione or "").upper() or None
    if country not in dv.ISO_COUNTRIES:
        country = None
    province = (soggetto.provincia or "").upper() or None
    if country != "IT" or province not in dv.IT_PROVINCES:
        province = None
    cap = soggetto.cap if soggetto.cap and dv.is_valid_cap(soggetto.cap, country) else None
    address = _cleaned(soggetto.indirizzo)
    civic = _cleaned(soggetto.civico)
    return CleanPayer(type=soggetto.identificativo.tipo, code=soggetto.identificativo.codice.upper(),
                      name=soggetto.anagrafica, address=address, civic=civic, postal_code=cap,
                      city=soggetto.localita, province=province, country=country, email=soggetto.email)


def _generated_here(session: Session, ente: Ente, iuv: str) -> bool:
    return session.scalar(select(Dovuto.id).where(Dovuto.ente_id == ente.id, Dovuto.iuv == iuv,
                                                  Dovuto.iuv_generated.is_(True)).limit(1)) is not None


def check_request(session: Session, ente: Ente, versamento: Versamento, flag_genera_iuv: bool) -> _Checked:
    """Steps 3-12 of §2.7, first failure raised."""
    cod_ipa = ente.cod_ipa
    azione = versamento.azione
    if azione not in AZIONI:
        raise _fault(cod_ipa, faults.PAA_AZIONE_NON_VALIDO, f"azione non valida [{azione}]")
    iuv = versamento.iuv if not dv.is_blank(versamento.iuv) else None
    # Deliberately not MyPay: M/A/S may name an IUV the gateway generated for this ente (MyPay refuses
    # its own "00" marker there unless flagGeneraIuv, which azione S then refuses: its notices could
    # never be printed).
    own_generated = azione != "I" and iuv is not None and _generated_here(session, ente, iuv)
    try:
        # The IUV15 switch-off: only enti that still issue aux-digit-0 notices may create new ones.
        validate_iuv_for_import(iuv, application_code=ente.application_code,
                                flag_genera_iuv=flag_genera_iuv or own_generated,
                                allow_iuv15=azione != "I" or ente.aux_digit == "0")
    except InvalidIuvError:
        raise _fault(cod_ipa, faults.PAA_IUV_NON_VALIDO,
                     f"IdentificativoUnivocoVersamento non valido [{iuv}] per ente [{cod_ipa}]") from None

    fee = versamento.commissione_carico_pa if versamento.commissione_carico_pa is not None else Decimal("0")
    if fee > identifiers.MAX_AMOUNT:
        raise _fault(cod_ipa, faults.PAA_IMPORTO_SINGOLO_VERSAMENTO_NON_VALIDO, f"commissioneCaricoPA non valido [{fee}]")
    amount = versamento.importo
    if amount == 0 or amount > identifiers.MAX_AMOUNT:
        raise _fault(cod_ipa, faults.PAA_IMPORTO_SINGOLO_VERSAMENTO_NON_VALIDO,
                     f"ImportoSingoloVersamento non valido: {amount}]")
    if versamento.bilancio is not None and dv.bilancio_total(versamento.bilancio) != amount:
        raise _fault(cod_ipa, faults.PAA_IMPORTO_BILANCIO_NON_VALIDO,
                     f"Importo bilancio non congruente per dovuto con importo [{amount}]")

    code = versamento.identificativo_tipo_dovuto
    if dv.is_blank(code):
        raise _fault(cod_ipa, faults.PAA_IDENT_TIPO_DOVUTO_NON_PRESENTE,
                     f"{OP}: identificativoTipoDovuto non specificato ")
    tipo = dv.tipi_by_code(session, ente, {code}).get(code)
    if tipo is None:
        raise _fault(cod_ipa, faults.PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_VALIDO,
                     f"Error tipo dovuto [{code}] non censito per ente [{cod_ipa}]")
    if not tipo.enabled:
        raise _fault(cod_ipa, faults.PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_ABILITATO,
                     f"identificativoTipoDovuto [{code}] non abilitato")
    if code == dv.MARCA_BOLLO_DIGITALE:
        raise _fault(cod_ipa, faults.PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_VALIDO,
                     f"Error tipo dovuto [{code}] non abilitato per funzione di import")

    soggetto = versamento.soggetto_pagatore
    if soggetto is None:
        raise _fault(cod_ipa, faults.PAA_SOGG_PAG_NON_VALORIZZATO, f"{OP}: soggettoPagatore non valorizzato. ")
    if not identifiers.is_valid_tipo_versamento(versamento.tipo_versamento):
        raise _fault(cod_ipa, faults.PAA_TIPO_VERSAMENTO_NON_VALIDO,
                     f"{OP}: Tipo versamento non valido: {versamento.tipo_versamento}")
    iud = versamento.iud
    if not identifiers.is_valid_iud(iud):
        raise _fault(cod_ipa, faults.PAA_IUD_NON_VALIDO, f"{OP}: IdentificativoUnivocoDovuto non valido: {iud}")
    if dv.is_blank(versamento.causale):
        raise _fault(cod_ipa, faults.PAA_CAUSALE_NON_PRESENTE, f"{OP}: causaleVersamento non specificato ")
    if not identifiers.is_valid_dati_specifici_riscossione(versamento.dati_specifici_riscossione):
        raise _fault(cod_ipa, faults.PAA_DATI_SPECIFICI_RISCOSSIONE_NON_VALIDO,
                     f"{OP}: DatiSpecificiRiscossione non valido: {versamento.dati_specifici_riscossione}")

    payer_code = soggetto.identificativo.codice.upper()
    code_fault = identifiers.payer_id_fault(soggetto.identificativo.tipo, payer_code, tipo.cf_anonimo_allowed)
    if code_fault is not None:
        if payer_code == identifiers.ANONIMO:
            what = identifiers.ANONIMO_FAULT_STRING
        else:
            what = "P.IVA non valida" if code_fault == faults.PAA_P_IVA_NON_VALIDO else "Codice fiscale non valido"
        raise _fault(cod_ipa, code_fault, f"{OP}: {what} [{payer_code}]")

    return _Checked(versamento=versamento, ente=ente, tipo=tipo, payer=clean_payer(soggetto), iuv=iuv, iud=iud,
                    tipo_versamento=dv.normalise_tipo_versamento(versamento.tipo_versamento), fee=fee)


def parse_secondari(cod_ipa: str, secondari: list[bytes]) -> dict | None:
    """The multi-beneficiary quota (at most one DovutiEntiSecondari) as stored in Dovuto.secondary."""
    present = [item for item in secondari if item]
    if len(present) > 1:
        raise _fault(cod_ipa, faults.PAA_LIMITAZIONE_ENTI_SECONDARI_ERROR,
                     "XML dei dovuti Enti secondari supera il limite consentito da PagoPA.",
                     f"XML ricevuto per {OP} non conforme all' XSD per enti secondari "
                     f"[{faults.PAA_LIMITAZIONE_ENTI_SECONDARI_ERROR}]")
    if not present:
        return None
    try:
        doc: DovutiEntiSecondari = parse_dovuti_enti_secondari(validate("DovutiEntiSecondari", present[0]))
    except DocumentInvalid as exc:
        raise _fault(cod_ipa, faults.PAA_XML_NON_VALIDO, "XML dei dovuti Enti secondari non valido",
                     f"XML ricevuto per {OP} non conforme all' XSD per ente [{cod_ipa}]  XML Error: \n{exc.detail}") \
            from None
    dsr = doc.dati_specifici_riscossione
    # No taxonomy table here: the schema already pins the "9/<taxonomy code>/" shape MyPay looks up.
    taxonomy = dsr[: dsr.rfind("/") + 1]
    if not identifiers.is_valid_dati_specifici_riscossione(dsr) or len(taxonomy) < 3:
        detail = f"{OP} codice tassonomico dati specifici riscossione Ente Secondario non valido: [{dsr}]"
        raise _fault(cod_ipa, faults.PAA_DATI_SPECIFICI_RISCOSSIONE_NON_VALIDO, detail, detail)
    return {"fiscal_code": doc.codice_fiscale_beneficiario, "name": doc.denominazione_beneficiario,
            "iban": doc.iban_accredito_beneficiario, "amount": str(doc.importo), "causale": doc.causale,
            "dati_specifici_riscossione": dsr, "taxonomy": taxonomy,
            "address": doc.indirizzo_beneficiario, "civic": doc.civico_beneficiario,
            "postal_code": doc.cap_beneficiario, "city": doc.localita_beneficiario,
            "province": doc.provincia_beneficiario, "country": doc.nazione_beneficiario}


# --- actions --------------------------------------------------------------------------------------

def _new_dovuto(checked: _Checked, iuv: str | None, secondary: dict | None) -> dv.NewDovuto:
    v, p = checked.versamento, checked.payer
    return dv.NewDovuto(
        tipo_dovuto_id=checked.tipo.id, iud=checked.iud, payer_type=p.type, payer_code=p.code, payer_name=p.name,
        payer_address=p.address, payer_civic=p.civic, payer_postal_code=p.postal_code, payer_city=p.city,
        payer_province=p.province, payer_country=p.country, payer_email=p.email, amount=v.importo,
        fee_ente=checked.fee, due_date=v.data_esecuzione_pagamento, causale=v.causale,
        dati_specifici_riscossione=v.dati_specifici_riscossione, tipo_versamento=checked.tipo_versamento,
        bilancio=v.bilancio, marca_bollo=None, iuv=iuv, secondary=secondary)


def _iuv_taken(session: Session, ente: Ente, iuv: str, except_id: int | None = None) -> bool:
    query = select(Dovuto.id).where(Dovuto.ente_id == ente.id, Dovuto.iuv == iuv, Dovuto.state != states.ANNULLATO)
    if except_id is not None:
        query = query.where(Dovuto.id != except_id)
    return session.scalar(query.limit(1)) is not None


def _payable_by_iud(session: Session, checked: _Checked, iuv: str | None, not_payable: str) -> Dovuto:
    ente = checked.ente
    # FOR UPDATE: a concurrent M/A/payment start on the same position waits for this one (PostgreSQL).
    dovuto = session.scalar(select(Dovuto).where(Dovuto.ente_id == ente.id, Dovuto.iud == checked.iud)
                            .with_for_update())
    if dovuto is None:
        raise _action_fault(ente.cod_ipa, iuv, checked.iud, "Errore generazione iuv: Dovuto non trovato per IUD "
                                                             f"[{checked.iud}] e codice IPA Ente [{ente.cod_ipa}]")
    if dovuto.state != states.INSERIMENTO_DOVUTO:
        raise _action_fault(ente.cod_ipa, iuv, checked.iud, f"Errore generazione iuv: {not_payable}")
    return dovuto


def _generate(session: Session, checked: _Checked) -> str:
    try:
        return allocate_iuv(session, checked.ente)[0]
    except IuvError as exc:
        raise _action_fault(checked.ente.cod_ipa, None, checked.iud, f"Errore generazione iuv: {exc}") from None


def insert(session: Session, checked: _Checked, flag_genera_iuv: bool, secondary: dict | None, actor: str) -> Dovuto:
    ente, iuv, generated = checked.ente, checked.iuv, False
    if dv.iud_exists(session, ente, checked.iud):
        raise _action_fault(ente.cod_ipa, iuv, checked.iud, "IUD duplicato", faults.PAA_IUD_DUPLICATO)
    if iuv is not None and _iuv_taken(session, ente, iuv):
        raise _action_fault(ente.cod_ipa, iuv, checked.iud, "IUV duplicato", faults.PAA_IUV_DUPLICATO)
    if iuv is None and flag_genera_iuv:
        iuv, generated = _generate(session, checked), True
    try:
        [row] = dv.insert_dovuti(session, ente, [_new_dovuto(checked, iuv, secondary)], carrello_id=None,
                                 reason=f"{OP} azione I", actor=actor, iuv_generated=generated)
    except faults.Fault as fault:  # another request inserted the same IUD meanwhile
        raise _action_fault(ente.cod_ipa, iuv, checked.iud, "IUD duplicato", fault.code) from None
    return row


def modify(session: Session, checked: _Checked, flag_genera_iuv: bool, secondary: dict | None) -> tuple[Dovuto, bool]:
    """Azione M on a payable dovuto; True when a new IUV was generated for it."""
    ente = checked.ente
    dovuto = _payable_by_iud(session, checked, checked.iuv, "Dovuto non modificabile")
    iuv, generated = checked.iuv, False
    if iuv is None:
        # Deliberately not MyPay: an existing notice keeps its IUV (a new one would orphan the printed notice).
        iuv = dovuto.iuv
        if iuv is None and flag_genera_iuv:
            iuv, generated = _generate(session, checked), True
    if iuv is not None and iuv != dovuto.iuv and _iuv_taken(session, ente, iuv, except_id=dovuto.id):
        raise _action_fault(ente.cod_ipa, iuv, checked.iud, "IUV duplicato", faults.PAA_IUV_DUPLICATO)
    new = _new_dovuto(checked, iuv, secondary)
    for field in ("tipo_dovuto_id", "payer_type", "payer_code", "payer_name", "payer_address", "payer_civic",
                  "payer_postal_code", "payer_city", "payer_province", "payer_country", "payer_email", "amount",
                  "fee_ente", "due_date", "causale", "dati_specifici_riscossione", "tipo_versamento", "bilancio",
                  "secondary"):
        setattr(dovuto, field, getattr(new, field))
    if iuv != dovuto.iuv:
        dovuto.iuv, dovuto.notice_number = iuv, dv.notice_number_of(ente, iuv)
        dovuto.iuv_generated = generated
    session.flush()
    return dovuto, generated


def annul(session: Session, checked: _Checked, actor: str) -> Dovuto:
    dovuto = _payable_by_iud(session, checked, checked.iuv, "Dovuto non annullabile")
    states.move_dovuto(session, dovuto, states.ANNULLATO, reason=f"{OP} azione A", actor=actor)
    return dovuto


def print_request(session: Session, checked: _Checked, flag_genera_iuv: bool) -> "Notice":
    """Azione S: the notice of an open IUV, drawn from the *request* data as MyPay does."""
    ente, iuv = checked.ente, checked.iuv
    if flag_genera_iuv or iuv is None:
        raise _action_fault(ente.cod_ipa, iuv, checked.iud,
                            "Errore richiesta azione 'S' prevede presenza di 'IUV' e assenza 'flag_genera_iuv'")
    if not dv.open_dovuti_by_iuv(session, ente, iuv):
        raise _fault(ente.cod_ipa, faults.PAA_IUV_NON_VALIDO,
                     f"Error nessun dovuto trovato per IUV [{iuv}] ed ente [{ente.cod_ipa}]")
    p, v = checked.payer, checked.versamento
    try:
        data = avviso_data(ente, checked.tipo, iuv=iuv, notice=dv.notice_number_of(ente, iuv), amount=v.importo,
                           causale=v.causale, payer_name=p.name, payer_code=p.code, address=p.address,
                           civic=p.civic, postal_code=p.postal_code, city=p.city, province=p.province,
                           country=p.country, due_date=v.data_esecuzione_pagamento)
    except AvvisoError as exc:
        raise _action_fault(ente.cod_ipa, iuv, checked.iud, f"Errore generazione pdf: {exc}") from None
    return Notice(iuv, data)


# --- the notice -----------------------------------------------------------------------------------

def avviso_data(ente: Ente, tipo: TipoDovuto | None, *, iuv: str, notice: str | None, amount: Decimal, causale: str,
                payer_name: str, payer_code: str, address: str | None, civic: str | None, postal_code: str | None,
                city: str | None, province: str | None, country: str | None, due_date: date | None) -> AvvisoData:
    if notice is None:
        raise AvvisoError(f"IUV {iuv} has no notice number (only 15- and 17-digit IUVs do)")
    line1 = " ".join(part for part in (address, civic, postal_code) if part)
    line2 = city or ""
    if province:
        line2 += f" ({province})"
    if country:
        line2 += f" - {country}"
    info = " - ".join(part for part in (ente.office_name, ente.email) if part) or None
    return AvvisoData(ente_name=ente.name, ente_fiscal_code=ente.fiscal_code, notice_number=notice, amount=amount,
                      causale=causale, payer_name=payer_name, payer_fiscal_code=payer_code,
                      payer_address="\n".join(line for line in (line1, line2.strip()) if line) or None,
                      ente_sector=tipo.description if tipo is not None else None, ente_info=info,
                      due_date=due_date if tipo is None or tipo.print_due_date else None, cbill=ente.cbill)


def dovuto_avviso_data(ente: Ente, dovuto: Dovuto) -> AvvisoData:
    return avviso_data(ente, dovuto.tipo_dovuto, iuv=dovuto.iuv or "", notice=dovuto.notice_number,
                       amount=dovuto.amount, causale=dovuto.causale, payer_name=dovuto.payer_name,
                       payer_code=dovuto.payer_code, address=dovuto.payer_address, civic=dovuto.payer_civic,
                       postal_code=dovuto.payer_postal_code, city=dovuto.payer_city, province=dovuto.payer_province,
                       country=dovuto.payer_country, due_date=dovuto.due_date)


def avviso_url(settings: Settings, dovuto_id: int) -> str:
    """The long-lived public link to a dovuto's notice PDF (served by avviso_web)."""
    return public_url(settings, AVVISO_PATH + make_token(settings, AVVISO_TOKEN_PURPOSE, {"d": dovuto_id}))


def read_avviso_token(settings: Settings, token: str) -> int:
    """The dovuto id of a notice link; gateway.urls.InvalidToken when forged or expired."""
    payload = read_token(settings, AVVISO_TOKEN_PURPOSE, token, AVVISO_TOKEN_MAX_AGE)
    return int(payload["d"])


@dataclass(frozen=True)
class Notice:
    iuv: str
    data: AvvisoData


def zipped_notice(notice: Notice) -> bytes:
    """The zip MyPay answers to azione S: one entry avviso_<cfEnte>_<IUV>.pdf."""
    name = avviso_entry_name(notice.data.ente_fiscal_code, notice.iuv)
    return zip_avvisi([(name, render_avviso_pdf(notice.data))])


# --- the operation --------------------------------------------------------------------------------

def importa_dovuto(session: Session, settings: Settings, cod_ipa: str, password: str | None, data: bytes | None, *,
                   flag_genera_iuv: bool, secondari: list[bytes]) -> tuple[ImportaDovutoResult, Notice | None]:
    """Run one ImportaDovuto in ``session``; for azione S the notice data to render once the transaction ends.

    The IUV is answered only when the gateway generated it; urlFileAvviso only for I/M with
    flagGeneraIuv and a notice IUV (15/17 digits), as MyPay.
    """
    versamento = parse_request(cod_ipa, data)
    ente = check_ente(session, cod_ipa, password)
    checked = check_request(session, ente, versamento, flag_genera_iuv)
    actor = f"{ente.cod_ipa}-WS_USER"
    azione = versamento.azione
    if azione == "S":
        return ImportaDovutoResult(iuv=None, url_avviso=None, zip_avviso=None), \
            print_request(session, checked, flag_genera_iuv)
    if azione == "A":
        annul(session, checked, actor)
        return ImportaDovutoResult(iuv=None, url_avviso=None, zip_avviso=None), None
    secondary = parse_secondari(ente.cod_ipa, secondari)
    if azione == "I":
        dovuto = insert(session, checked, flag_genera_iuv, secondary, actor)
        generated = dovuto.iuv_generated
    else:
        dovuto, generated = modify(session, checked, flag_genera_iuv, secondary)
    url = None
    if flag_genera_iuv and dovuto.iuv and len(dovuto.iuv) in (15, 17):
        url = avviso_url(settings, dovuto.id)
    log.info("dovuto imported", azione=azione, dovuto_id=dovuto.id, iuv_generated=generated)
    return ImportaDovutoResult(iuv=dovuto.iuv if generated else None, url_avviso=url, zip_avviso=None), None
