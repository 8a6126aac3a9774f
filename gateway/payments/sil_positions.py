"""SIL operations on debt positions: ImportaDovuto, RegistraPagamento, PosizioniAperte, AvvisiPendenti."""

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


def importa_dovuto(runtime: Runtime, cod_ipa: str, password: str | None, dovuto: bytes | None, *,
                   flag_genera_iuv: bool, secondari: list[bytes]) -> ImportaDovutoResult:
    _auth(runtime, cod_ipa, password)
    raise _not_yet("paaSILImportaDovuto")


def registra_pagamento(runtime: Runtime, cod_ipa: str, password: str | None, payment: PagamentoEsterno) -> None:
    _auth(runtime, cod_ipa, password)
    raise _not_yet("paaSILRegistraPagamento")


def posizioni_aperte(runtime: Runtime, cod_ipa: str | None, password: str | None, person_type: str | None,
                     person_code: str | None) -> list[PosizioneAperta]:
    _auth(runtime, cod_ipa, password)
    raise _not_yet("paaSILChiediPosizioniAperte")


def avvisi_pendenti(runtime: Runtime, cod_ipa: str, password: str | None, date_from: date | None,
                    date_to: date | None) -> list[AvvisoPendente]:
    _auth(runtime, cod_ipa, password)
    raise _not_yet("paaSILChiediAvvisiPendenti")
