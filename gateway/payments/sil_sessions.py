"""SIL operations on payment sessions: InviaDovuti, InviaCarrello, VerificaAvviso, ChiediPagati*, EsitoCarrello, StoricoPagamenti."""

from __future__ import annotations

from datetime import date, datetime

from gateway import faults
from gateway.enti.registry import authenticate
from gateway.payments.results import *  # noqa: F403 - the result types
from gateway.runtime import Runtime


def _not_yet(operation: str) -> faults.Fault:
    return faults.system_error(f"{operation} non ancora disponibile su questo gateway")


def _auth(runtime: Runtime, cod_ipa: str | None, password: str | None, *, check_state: bool = True) -> None:
    with runtime.database.transaction() as session:
        authenticate(session, cod_ipa, password, check_state=check_state)


def invia_dovuti(runtime: Runtime, cod_ipa: str, password: str | None, dovuti: bytes | None, *,
                 return_url: str | None, show_mypay: str | None) -> SessionStarted:
    _auth(runtime, cod_ipa, password)
    raise _not_yet("paaSILInviaDovuti")


def invia_carrello(runtime: Runtime, cod_ipa: str, password: str | None, elements: list[CartElement],
                   secondari: list[bytes], *, return_url: str | None) -> SessionStarted:
    _auth(runtime, cod_ipa, password, check_state=False)
    raise _not_yet("paaSILInviaCarrelloDovuti")


def verifica_avviso(runtime: Runtime, cod_ipa: str, password: str | None, iuv: str | None, *,
                    return_url: str | None) -> SessionStarted:
    _auth(runtime, cod_ipa, password)
    raise _not_yet("paaSILVerificaAvviso")


def chiedi_pagati(runtime: Runtime, cod_ipa: str, password: str | None, id_session: str | None) -> bytes:
    _auth(runtime, cod_ipa, password)
    raise _not_yet("paaSILChiediPagati")


def chiedi_pagati_con_ricevuta(runtime: Runtime, cod_ipa: str, password: str | None, *, id_session: str | None,
                               iuv: str | None, iud: str | None) -> PagatiConRicevuta:
    _auth(runtime, cod_ipa, password, check_state=False)
    raise _not_yet("paaSILChiediPagatiConRicevuta")


def chiedi_esito_carrello(runtime: Runtime, cod_ipa: str, password: str | None,
                          id_session: str | None) -> list[EsitoCarrello]:
    _auth(runtime, cod_ipa, password)
    raise _not_yet("paaSILChiediEsitoCarrelloDovuti")


def storico_pagamenti(runtime: Runtime, cod_ipa: str | None, password: str | None, person_type: str | None,
                      person_code: str | None, date_from: datetime | None,
                      date_to: datetime | None) -> tuple[datetime, list[StoricoPagamento]]:
    _auth(runtime, cod_ipa, password)
    raise _not_yet("paaSILChiediStoricoPagamenti")
