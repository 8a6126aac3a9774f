"""SIL operations on payment sessions: InviaDovuti, InviaCarrello, VerificaAvviso, ChiediPagati*, EsitoCarrello, StoricoPagamenti."""

from __future__ import annotations

import hmac
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway import faults, logs
from gateway.enti.credentials import mypay_cart_hash, verify_password
from gateway.enti.registry import authenticate
from gateway.payments import carts, documents, identifiers, states
from gateway.payments.dovuti import NewDovuto, check_dovuti_document, find_payable_by_iuv, insert_dovuti
from gateway.payments.iuv import IuvError
from gateway.payments.iuv_allocator import allocate_iuv
from gateway.payments.pagati import build_cart_document, build_document
from gateway.payments.results import CartElement, EsitoCarrello, PagatiConRicevuta, SessionStarted, StoricoPagamento
from gateway.runtime import Runtime
from gateway.urls import make_token, public_url
from storage.models import Carrello, Dovuto, Ente, Receipt

log = logs.get_logger(__name__)

ROME = ZoneInfo("Europe/Rome")
BUILDABLE = frozenset({states.PAGATO, states.NON_PAGATO, states.PARZ_PAGATO, states.DECORR_TERM,
                       states.DECORR_TERM_PARZ})
OPEN_STATES = frozenset({states.INSERIMENTO_DOVUTO, states.PAGAMENTO_INIZIATO, states.SCADUTO})


def _fault(code: str, string: str, cod_ipa: str | None, description: str | None = None) -> faults.Fault:
    return faults.Fault(code, string, description, cod_ipa)


def _ente(session: Session, cod_ipa: str | None) -> Ente | None:
    cod_ipa = (cod_ipa or "").strip()
    return session.scalar(select(Ente).where(Ente.cod_ipa == cod_ipa, Ente.enabled.is_(True))) if cod_ipa else None


# --- starting a session ----------------------------------------------------------------------------

def _with_iuvs(session: Session, ente: Ente, items: list[NewDovuto]) -> list[NewDovuto]:
    """Every position paid through pagoPA today needs a notice number: one new IUV per dovuto."""
    for item in items:
        try:
            item.iuv, _notice = allocate_iuv(session, ente)
        except IuvError as exc:
            raise faults.system_error(f"IUV non generabile per ente {ente.cod_ipa}: {exc}", ente.cod_ipa) from None
    return items


def _check_cart_size(count: int, cod_ipa: str) -> None:
    if count > carts.MAX_NOTICES:
        raise _fault(faults.PAA_XML_NON_VALIDO, faults.FAULT_STRINGS[faults.PAA_XML_NON_VALIDO], cod_ipa,
                     f"un carrello può contenere al massimo {carts.MAX_NOTICES} dovuti (pagoPA), ricevuti {count}")


def _payer(item: NewDovuto) -> dict:
    return {"type": item.payer_type, "code": item.payer_code, "name": item.payer_name, "email": item.payer_email}


def invia_dovuti(runtime: Runtime, cod_ipa: str, password: str | None, dovuti: bytes | None, *,
                 return_url: str | None, show_mypay: str | None) -> SessionStarted:
    with runtime.database.transaction() as session:
        # MyPay's inline order here: unknown ente, state INSERITO, then the password.
        ente = _ente(session, cod_ipa)
        if ente is None:
            raise _fault(faults.PAA_ENTE_NON_VALIDO, f"codice IPA Ente [{cod_ipa}] non valido", cod_ipa)
        if ente.state == "INSERITO":
            raise _fault(faults.PAA_STATO_ENTE_NON_VALIDO, "Stato Ente Non Valido", cod_ipa)
        authenticate(session, cod_ipa, password, check_state=False)
        show = (show_mypay or "SHORT").strip().upper() or "SHORT"
        items = check_dovuti_document(session, ente, dovuti, strict_payer=show == "NONE")
        _check_cart_size(len(items), ente.cod_ipa)
        carrello = carts.create_carrello(session, ente, kind=carts.ESTERNO_ANONIMO, return_url=return_url,
                                         show_mypay=show, payer=_payer(items[0]))
        insert_dovuti(session, ente, _with_iuvs(session, ente, items), carrello_id=carrello.id,
                      reason="paaSILInviaDovuti", actor="SIL", iuv_generated=True)
        id_session = carrello.id_session
    log.info("session started", operation="paaSILInviaDovuti", id_session=id_session, dovuti=len(items))
    return SessionStarted(id_session, carts.landing_url(runtime, id_session))


def _element_password_ok(runtime: Runtime, ente: Ente, password: str | None) -> bool:
    if verify_password(password, ente.password_hash):
        return True
    secret = runtime.settings.cart_hash_secret
    if not secret or not password:
        return False
    expected = mypay_cart_hash(secret, ente.fiscal_code)
    return hmac.compare_digest(password.strip().lower().encode(), expected.lower().encode())


def invia_carrello(runtime: Runtime, cod_ipa: str, password: str | None, elements: list[CartElement],
                   secondari: list[bytes], *, return_url: str | None) -> SessionStarted:
    with runtime.database.transaction() as session:
        header = authenticate(session, cod_ipa, password, check_state=False)
        if not elements:
            raise _fault(faults.PAA_XML_NON_VALIDO, faults.FAULT_STRINGS[faults.PAA_XML_NON_VALIDO], cod_ipa,
                         "listaDovuti vuota")
        # Every element's credentials are checked before any document is parsed.
        element_enti: list[Ente] = []
        for element in elements:
            ente = _ente(session, element.cod_ipa)
            element_ipa = (element.cod_ipa or "").strip()
            if ente is None:
                raise _fault(faults.PAA_ENTE_NON_VALIDO,
                             f"Codice IPA Ente [{element_ipa}] non valido o password errata", cod_ipa)
            if not _element_password_ok(runtime, ente, element.password):
                raise _fault(faults.PAA_ENTE_NON_VALIDO, f"Password non valida per ente [{element_ipa}]", cod_ipa)
            element_enti.append(ente)
        if secondari:
            if len(elements) > 1:
                raise _fault(faults.PAA_LIMITE_MASSIMO_DOVUTI_MULTIBENEFICIARI,
                             "Numero massimo di dovuti per carrello multibeneficiario superato", cod_ipa)
            if len(secondari) > 1:
                raise _fault(faults.PAA_LIMITE_MASSIMO_DOVUTI_ENTI_SECONDARI,
                             "Numero massimo di enti secondari superato", cod_ipa)
        seen: set[tuple[int, str]] = set()
        batches = [(ente, check_dovuti_document(session, ente, element.dovuti, seen_iuds=seen))
                   for ente, element in zip(element_enti, elements)]
        _check_cart_size(sum(len(items) for _, items in batches), cod_ipa)
        if secondari:
            primary_items = batches[0][1]
            if len(primary_items) > 1:
                raise _fault(faults.PAA_LIMITE_MASSIMO_DOVUTI_MULTIBENEFICIARI,
                             "Numero massimo di dovuti per carrello multibeneficiario superato", cod_ipa)
            primary_items[0].secondary = _secondary(secondari[0], cod_ipa)
        carrello = carts.create_carrello(session, header, kind=carts.ESTERNO_ANONIMO_MULTIENTE,
                                         return_url=return_url, show_mypay="SHORT", payer=_payer(batches[0][1][0]))
        for ente, items in batches:
            insert_dovuti(session, ente, _with_iuvs(session, ente, items), carrello_id=carrello.id,
                          reason="paaSILInviaCarrelloDovuti", actor="SIL", iuv_generated=True)
        id_session = carrello.id_session
    log.info("session started", operation="paaSILInviaCarrelloDovuti", id_session=id_session, elements=len(elements))
    return SessionStarted(id_session, carts.landing_url(runtime, id_session))


def _secondary(data: bytes | None, cod_ipa: str) -> dict:
    """The secondary beneficiary of a multi-beneficiary cart (§2.2), stored on the primary dovuto."""
    try:
        doc = documents.parse_dovuti_enti_secondari(documents.validate("DovutiEntiSecondari", data or b""))
    except documents.DocumentInvalid as exc:
        raise _fault(faults.PAA_XML_NON_VALIDO, faults.FAULT_STRINGS[faults.PAA_XML_NON_VALIDO], cod_ipa,
                     exc.detail) from None
    try:
        problem = _secondary_problem(doc)
    except Exception as exc:  # noqa: BLE001 - MyPay's catch-all of this block
        raise _fault(faults.PAA_ERRORE_RECUPERO_DOVUTI_ENTI_SECONDARI, "Errore recupero dovuti enti secondari",
                     cod_ipa, type(exc).__name__) from None
    if problem:
        raise _fault(faults.PAA_ENTE_SECONDARIO_NON_VALIDO, f"Ente secondario non valido: {problem}", cod_ipa)
    return {"fiscal_code": doc.codice_fiscale_beneficiario.upper(), "name": doc.denominazione_beneficiario,
            "iban": doc.iban_accredito_beneficiario.upper(), "address": doc.indirizzo_beneficiario,
            "civic": doc.civico_beneficiario, "postal_code": doc.cap_beneficiario,
            "city": doc.localita_beneficiario, "province": doc.provincia_beneficiario,
            "country": doc.nazione_beneficiario, "dati_specifici_riscossione": doc.dati_specifici_riscossione,
            "causale": doc.causale, "amount": str(doc.importo)}


def _secondary_problem(doc: documents.DovutiEntiSecondari) -> str | None:
    from gateway.payments.dovuti import IT_PROVINCES, ISO_COUNTRIES, is_valid_cap

    code = doc.codice_fiscale_beneficiario
    if not (identifiers.is_valid_codice_fiscale(code) or identifiers.is_valid_partita_iva(code)):
        return "codiceFiscaleBeneficiario"
    if not identifiers.is_valid_iban(doc.iban_accredito_beneficiario.replace(" ", "")):
        return "ibanAccreditoBeneficiario"
    country = (doc.nazione_beneficiario or "").upper()
    if country and country not in ISO_COUNTRIES:
        return "nazioneBeneficiario"
    if doc.cap_beneficiario and not is_valid_cap(doc.cap_beneficiario, country or "IT"):
        return "capBeneficiario"
    if country in ("", "IT") and doc.provincia_beneficiario and doc.provincia_beneficiario.upper() not in IT_PROVINCES:
        return "provinciaBeneficiario"
    if not identifiers.is_valid_dati_specifici_riscossione(doc.dati_specifici_riscossione):
        return "datiSpecificiRiscossione"
    if doc.importo <= 0:
        return "importoSingoloVersamento"
    return None


def verifica_avviso(runtime: Runtime, cod_ipa: str, password: str | None, iuv: str | None, *,
                    return_url: str | None) -> SessionStarted:
    with runtime.database.transaction() as session:
        ente = authenticate(session, cod_ipa, password)
        dovuti = find_payable_by_iuv(session, ente, (iuv or "").strip())
        _check_cart_size(len(dovuti), ente.cod_ipa)
        carrello = carts.carrello_for_notice(session, ente, dovuti, return_url=return_url)
        id_session = carrello.id_session
    return SessionStarted(id_session, carts.landing_url(runtime, id_session))


# --- the outcome of a session ----------------------------------------------------------------------

def _visible_cart(session: Session, ente: Ente, id_session: str | None) -> Carrello | None:
    """The cart of that idSession if this ente created it or has a position in it; never another ente's."""
    if not id_session or not id_session.strip():
        return None
    carrello = session.scalar(select(Carrello).where(Carrello.id_session == id_session.strip()))
    if carrello is None:
        return None
    if carrello.ente_id == ente.id or any(d.ente_id == ente.id for d in carrello.dovuti):
        return carrello
    return None


def _cart_state_fault(carrello: Carrello | None, id_session: str | None, cod_ipa: str) -> None:
    if carrello is None:
        raise _fault(faults.PAA_ID_SESSION_NON_VALIDO, f"idSession [{id_session}] non valido per l Ente specificato",
                     cod_ipa)
    state = carrello.state
    if state in (states.NUOVO_CARRELLO, states.PREDISPOSTO):
        raise _fault(faults.PAA_PAGAMENTO_NON_INIZIATO,
                     f"Pagamento non iniziato per idSession specificato [{id_session}]", cod_ipa)
    if state == states.PAGAM_IN_CORSO:
        raise _fault(faults.PAA_PAGAMENTO_IN_CORSO, f"Pagamento in corso per idSession specificato [{id_session}]",
                     cod_ipa)
    if state == states.ABORT:
        raise _fault(faults.PAA_PAGAMENTO_ANNULLATO,
                     f"Pagamento annullato per idSession specificato [{id_session}]", cod_ipa)
    if state in (states.CART_SCADUTO, "SCADUTO_ELABORATO"):
        raise _fault(faults.PAA_PAGAMENTO_SCADUTO, f"Pagamento scaduto per idSession specificato [{id_session}]",
                     cod_ipa)
    if state not in BUILDABLE:
        raise faults.system_error(f"Errore interno per idSession: {id_session}", cod_ipa)


def chiedi_pagati(runtime: Runtime, cod_ipa: str, password: str | None, id_session: str | None) -> bytes:
    with runtime.database.transaction() as session:
        ente = authenticate(session, cod_ipa, password)
        carrello = _visible_cart(session, ente, id_session)
        _cart_state_fault(carrello, id_session, ente.cod_ipa)
        return build_cart_document(session, carrello, ente, con_ricevuta=False).pagati  # type: ignore[arg-type]


def chiedi_pagati_con_ricevuta(runtime: Runtime, cod_ipa: str, password: str | None, *, id_session: str | None,
                               iuv: str | None, iud: str | None) -> PagatiConRicevuta:
    # No state check here, as in MyPay: an ente still INSERITO is answered.
    with runtime.database.transaction() as session:
        ente = authenticate(session, cod_ipa, password, check_state=False)
        keys = [key.strip() for key in (id_session, iuv, iud) if key is not None and key.strip()]
        if len(keys) > 1:
            raise faults.system_error("Errore, è stato specificato più di un paramero tra idSession, "
                                      "identificativoUnivocoVersamento e identificativoUnivocoDovuto.", ente.cod_ipa)
        if id_session and id_session.strip():
            carrello = _visible_cart(session, ente, id_session)
            _cart_state_fault(carrello, id_session, ente.cod_ipa)
            doc = build_cart_document(session, carrello, ente, con_ricevuta=True)  # type: ignore[arg-type]
        elif iuv and iuv.strip():
            rows = list(session.scalars(select(Dovuto).where(Dovuto.ente_id == ente.id, Dovuto.iuv == iuv.strip())
                                        .order_by(Dovuto.id)))
            if not rows:
                raise _fault(faults.PAA_IUV_NON_VALIDO, f"IUV [{iuv}] non valido per ente [{ente.cod_ipa}]",
                             ente.cod_ipa)
            doc = _position_document(session, ente, rows, f"IUV [{iuv}]")
        elif iud and iud.strip():
            rows = list(session.scalars(select(Dovuto).where(Dovuto.ente_id == ente.id, Dovuto.iud == iud.strip())))
            if not rows:
                raise _fault(faults.PAA_IUD_NON_VALIDO, f"IUD [{iud}] non valido per ente [{ente.cod_ipa}]",
                             ente.cod_ipa)
            doc = _position_document(session, ente, rows, f"IUD [{iud}]")
        else:
            raise faults.system_error("Errore, nessun campo di input valorizzato tra idSession, "
                                      "identificativoUnivocoVersamento e identificativoUnivocoDovuto.", ente.cod_ipa)
        return PagatiConRicevuta(pagati=doc.pagati, tipo_firma=doc.tipo_firma, rt=doc.rt)


def _position_document(session: Session, ente: Ente, rows: list[Dovuto], what: str):  # type: ignore[no-untyped-def]
    """ChiediPagatiConRicevuta by IUV / IUD: open positions first, then the processed ones."""
    open_rows = [d for d in rows if d.state in OPEN_STATES]
    where = f"per ente [ {ente.cod_ipa} ], {what}"
    if open_rows:
        first = open_rows[0]
        if first.state == states.INSERIMENTO_DOVUTO:
            tipo = first.tipo_dovuto
            if tipo is not None and tipo.due_date_required and first.due_date and first.due_date < date.today():
                raise faults.system_error(f"Dovuto scaduto {where}", ente.cod_ipa)
            raise _fault(faults.PAA_PAGAMENTO_NON_INIZIATO, f"Pagamento non iniziato {where}", ente.cod_ipa)
        if first.state == states.SCADUTO:
            raise _fault(faults.PAA_PAGAMENTO_SCADUTO, f"Pagamento scaduto {where}", ente.cod_ipa)
        raise _fault(faults.PAA_PAGAMENTO_IN_CORSO, f"Pagamento in corso {where}", ente.cod_ipa)
    paid = [d for d in rows if d.state == states.COMPLETATO]
    if not paid:
        # Only annulled positions are left (MyPay: processed in state ABORT / ANNULLATO).
        raise _fault(faults.PAA_PAGAMENTO_ANNULLATO, f"Pagamento abortito {where}", ente.cod_ipa)
    # Several carts: the latest one that holds a paid position.
    latest = max(paid, key=lambda d: (d.paid_at or d.updated_at, d.id))
    group = [d for d in paid if d.carrello_id == latest.carrello_id]
    carrello = latest.carrello
    return build_document(session, group, ente, cart_state=carrello.state if carrello else states.PAGATO,
                          created=carrello.created_at if carrello else latest.created_at,
                          reference=carrello.id_session if carrello else (latest.iuv or latest.iud),
                          con_ricevuta=True)


def chiedi_esito_carrello(runtime: Runtime, cod_ipa: str, password: str | None,
                          id_session: str | None) -> list[EsitoCarrello]:
    with runtime.database.transaction() as session:
        ente = authenticate(session, cod_ipa, password)
        carrello = _visible_cart(session, ente, id_session)
        if carrello is None:
            raise _fault(faults.PAA_ID_SESSION_NON_VALIDO,
                         f"idSession [{id_session}] non valido per l Ente specificato", "n/a")
        # The cart's creator sees every ente's share; a participant sees only its own.
        ente_ids = sorted({d.ente_id for d in carrello.dovuti}, key=lambda i: (i != carrello.ente_id, i))
        if carrello.ente_id != ente.id:
            ente_ids = [ente.id]
        description = states.CART_DESCRIPTIONS.get(carrello.state, carrello.state)
        answers: list[EsitoCarrello] = []
        for ente_id in ente_ids:
            share_ente = session.get(Ente, ente_id)
            assert share_ente is not None
            pagati = rt = None
            if carrello.state in BUILDABLE:
                doc = build_cart_document(session, carrello, share_ente, con_ricevuta=True)
                pagati, rt = doc.pagati, doc.rt
            answers.append(EsitoCarrello(cod_ipa=share_ente.cod_ipa, esito=description,
                                         cart_id=carrello.id_session, pagati=pagati, rt=rt))
        return answers


# --- payment history ----------------------------------------------------------------------------------

def _history_scope(session: Session, runtime: Runtime, cod_ipa: str | None, password: str | None) -> Ente | None:
    """Who may read: MyPay's admin ente when configured (then cod IPA is an optional filter), else the ente itself."""
    admin = runtime.settings.admin_cod_ipa
    if admin:
        authenticate(session, admin, password, check_state=False, fault_id=admin)
        if cod_ipa and cod_ipa.strip():
            ente = _ente(session, cod_ipa)
            if ente is None:
                raise _fault(faults.PAA_ENTE_NON_VALIDO, f"codice IPA Ente [{cod_ipa}] non valido", cod_ipa)
            return ente
        return None
    return authenticate(session, cod_ipa, password)


def storico_pagamenti(runtime: Runtime, cod_ipa: str | None, password: str | None, person_type: str | None,
                      person_code: str | None, date_from: datetime | date | None,
                      date_to: datetime | date | None) -> tuple[datetime, list[StoricoPagamento]]:
    with runtime.database.transaction() as session:
        scope = _history_scope(session, runtime, cod_ipa, password)
        fault_id = cod_ipa or runtime.settings.admin_cod_ipa or ""
        if not person_type or not person_type.strip():
            raise _fault(faults.PAA_TIPO_IDENTIFICATIVO_PAGATORE_NON_VALIDO, "Tipo identificativo univoco non presente",
                         fault_id)
        if person_type not in ("F", "G"):
            raise _fault(faults.PAA_TIPO_IDENTIFICATIVO_PAGATORE_NON_VALIDO,
                         f"Tipo identificativo univoco non valido: {person_type}", fault_id)
        if not person_code or not person_code.strip():
            raise _fault(faults.PAA_CODICE_IDENTIFICATIVO_PAGATORE_NON_PRESENTE,
                         "Codice identificativo univoco non presente", fault_id)
        now = datetime.now(ROME)
        start = _midnight(date_from) if date_from is not None else _midnight(now)
        # As MyPay: a given dataTo is truncated to its midnight (and compared with payment *dates*, so that
        # whole day counts); none means now.
        end = _midnight(date_to) if date_to is not None else now
        if end < start:
            raise _fault(faults.PAA_INTERVALLO_DATE_NON_VALIDO,
                         f"Data di inizio [{start:%Y-%m-%d}] successiva alla data di fine [{end:%Y-%m-%d}]", fault_id)
        until = end + timedelta(days=1) if date_to is not None else end
        history = _history(session, runtime, scope, person_type, person_code.strip(), start, until)
        return end, history


RT_TOKEN_PURPOSE = "rt-download"


def rt_download_url(runtime: Runtime, receipt_id: int) -> str:
    """A signed link to the stored RT / receipt (MyPay's landing/rt link, but not guessable)."""
    return public_url(runtime.settings, "/pagamento/rt", token=make_token(runtime.settings, RT_TOKEN_PURPOSE, receipt_id))


def _midnight(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        local = value.astimezone(ROME) if value.tzinfo else value.replace(tzinfo=ROME)
        return datetime.combine(local.date(), time(), tzinfo=ROME)
    return datetime.combine(value, time(), tzinfo=ROME)


def _history(session: Session, runtime: Runtime, scope: Ente | None, person_type: str, person_code: str,
             start: datetime, end: datetime) -> list[StoricoPagamento]:
    query = (select(Dovuto).where(Dovuto.state == states.COMPLETATO, Dovuto.payer_type == person_type,
                                  func.lower(Dovuto.payer_code) == person_code.lower(),
                                  Dovuto.paid_at >= start, Dovuto.paid_at < end)
             .order_by(Dovuto.paid_at, Dovuto.id))
    if scope is not None:
        query = query.where(Dovuto.ente_id == scope.id)
    groups: dict[tuple[int, object], list[Dovuto]] = {}
    for dovuto in session.scalars(query):
        key = (dovuto.ente_id, dovuto.carrello_id if dovuto.carrello_id is not None else f"d{dovuto.id}")
        groups.setdefault(key, []).append(dovuto)
    history: list[StoricoPagamento] = []
    for (ente_id, _), dovuti in groups.items():
        ente = session.get(Ente, ente_id)
        assert ente is not None
        carrello = dovuti[0].carrello
        doc = build_document(session, dovuti, ente, cart_state=carrello.state if carrello else states.PAGATO,
                             created=carrello.created_at if carrello else dovuti[0].created_at,
                             reference=carrello.id_session if carrello else (dovuti[0].iuv or dovuti[0].iud),
                             con_ricevuta=True)
        receipt_id = session.scalar(select(Receipt.id).where(Receipt.dovuto_id == dovuti[0].id,
                                                             Receipt.outcome == "OK").order_by(Receipt.id).limit(1))
        url_rt = None
        if receipt_id is not None and doc.rt:
            url_rt = rt_download_url(runtime, receipt_id)
        history.append(StoricoPagamento(cod_ipa=ente.cod_ipa, ente_name=ente.name, pagati=doc.pagati, rt=doc.rt,
                                        url_rt=url_rt))
    return history
