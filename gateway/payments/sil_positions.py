"""SIL operations on debt positions: ImportaDovuto, RegistraPagamento, PosizioniAperte, AvvisiPendenti.

Each function authenticates as MyPay does for that operation, runs in one transaction and raises
``Fault`` for business errors; the SOAP layer only translates.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import faults
from gateway.enti.credentials import verify_password
from gateway.enti.registry import authenticate
from gateway.payments import importa, positions
from gateway.payments.avviso import AvvisoError
from gateway.payments.results import *  # noqa: F403 - the result types
from gateway.payments.results import AvvisoPendente, ImportaDovutoResult, PagamentoEsterno, PosizioneAperta
from gateway.runtime import Runtime
from gateway.urls import public_url
from storage.models import Ente

PAYMENT_LANDING = "/pagamento/avviso"


def importa_dovuto(runtime: Runtime, cod_ipa: str, password: str | None, dovuto: bytes | None, *,
                   flag_genera_iuv: bool, secondari: list[bytes]) -> ImportaDovutoResult:
    with runtime.database.transaction() as session:
        result, notice = importa.importa_dovuto(session, runtime.settings, cod_ipa, password, dovuto,
                                                flag_genera_iuv=flag_genera_iuv, secondari=secondari)
    if notice is None:
        return result
    # Azione S: drawn after the transaction, so no database lock is held while the PDF renders.
    try:
        archive = importa.zipped_notice(notice)
    except AvvisoError as exc:
        raise faults.Fault(faults.PAA_SYSTEM_ERROR, f"{importa.OP}: Errore import dovuto IUV [{notice.iuv}]: "
                                                    f"Errore generazione pdf: {exc}", id=cod_ipa) from None
    return ImportaDovutoResult(iuv=None, url_avviso=None, zip_avviso=archive)


def _check_ente_inline(session: Session, cod_ipa: str | None, password: str | None) -> Ente:
    """RegistraPagamento's own checks: unknown, state INSERITO (its own code, serial 0), password."""
    cod_ipa = (cod_ipa or "").strip()
    ente = session.scalar(select(Ente).where(Ente.cod_ipa == cod_ipa)) if cod_ipa else None
    if ente is None or not ente.enabled:
        raise faults.Fault(faults.PAA_ENTE_NON_VALIDO, f"codice IPA Ente [{cod_ipa}] non valido", id=cod_ipa)
    if ente.state == "INSERITO":
        raise faults.Fault(faults.PAA_STATO_ENTE_NON_VALIDO, "Stato Ente Non Valido", id=cod_ipa, serial=0)
    if not verify_password(password, ente.password_hash):
        raise faults.Fault(faults.PAA_ENTE_NON_VALIDO, f"Password non valida per ente [{cod_ipa}]", id=cod_ipa)
    return ente


def registra_pagamento(runtime: Runtime, cod_ipa: str, password: str | None, payment: PagamentoEsterno) -> None:
    with runtime.database.transaction() as session:
        ente = _check_ente_inline(session, cod_ipa, password)
        positions.registra_pagamento(session, ente, payment, actor=f"{ente.cod_ipa}-WS_USER")


def _visible_enti(session: Session, runtime: Runtime, cod_ipa: str | None, password: str | None) -> tuple[list[Ente], str]:
    """The enti whose positions the caller may see, and the fault id to use.

    Default: the requested ente's own password, and only that ente. With settings.admin_cod_ipa,
    MyPay's mode: the admin ente's password opens every ente, codIpaEnte narrowing to one.
    """
    admin = runtime.settings.admin_cod_ipa
    if not admin:
        return [authenticate(session, cod_ipa, password)], (cod_ipa or "").strip()
    authenticate(session, admin, password)
    cod_ipa = (cod_ipa or "").strip()
    if not cod_ipa:
        return list(session.scalars(select(Ente).where(Ente.enabled.is_(True)))), admin
    ente = session.scalar(select(Ente).where(Ente.cod_ipa == cod_ipa))
    if ente is None or not ente.enabled:
        raise faults.Fault(faults.PAA_ENTE_NON_VALIDO, f"codice IPA Ente [{cod_ipa}] non valido", id=admin)
    return [ente], admin


def posizioni_aperte(runtime: Runtime, cod_ipa: str | None, password: str | None, person_type: str | None,
                     person_code: str | None) -> list[PosizioneAperta]:
    with runtime.database.transaction() as session:
        enti, fault_id = _visible_enti(session, runtime, cod_ipa, password)
        tipo, code = positions.check_person(fault_id, person_type, person_code)
        found = positions.open_positions(session, enti, tipo, code)
        return [PosizioneAperta(
            cod_ipa=p.ente.cod_ipa, ente_name=p.ente.name,
            url=public_url(runtime.settings, PAYMENT_LANDING, iuv=p.dovuto.iuv, ente=p.ente.cod_ipa)
            if p.dovuto.iuv else None,
            dovuti=positions.dovuti_xml([p.dovuto])) for p in found]


def avvisi_pendenti(runtime: Runtime, cod_ipa: str, password: str | None, date_from: date | None,
                    date_to: date | None) -> list[AvvisoPendente]:
    with runtime.database.transaction() as session:
        ente = authenticate(session, cod_ipa, password)
        return [AvvisoPendente(created_on=positions.created_on(d), dovuti=positions.dovuti_xml([d]))
                for d in positions.pending_notices(session, ente, date_from, date_to)]
