"""The "iniziato presso ente" operations as the SIL sees them: one function per paaSIL* operation.

Each function authenticates the ente, runs in its own transaction, and raises ``Fault`` for business
errors; the SOAP layer only translates.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal


from gateway import faults
from gateway.enti.registry import authenticate
from gateway.runtime import Runtime


@dataclass(frozen=True)
class SessionStarted:
    id_session: str
    url: str


@dataclass(frozen=True)
class CartElement:
    cod_ipa: str
    password: str | None
    dovuti: bytes | None


@dataclass(frozen=True)
class PagatiConRicevuta:
    pagati: bytes
    tipo_firma: str | None
    rt: bytes | None


@dataclass(frozen=True)
class EsitoCarrello:
    cod_ipa: str
    esito: str
    cart_id: str
    pagati: bytes | None = None
    rt: bytes | None = None


@dataclass(frozen=True)
class ImportaDovutoResult:
    iuv: str | None
    url_avviso: str | None
    zip_avviso: bytes | None


@dataclass(frozen=True)
class PagamentoEsterno:
    iuv: str
    ccp: str | None
    amount: Decimal
    date: date
    index: int | None
    iur: str
    attestante_type: str
    attestante_code: str
    attestante_name: str


@dataclass(frozen=True)
class PosizioneAperta:
    cod_ipa: str
    ente_name: str
    url: str | None
    dovuti: bytes


@dataclass(frozen=True)
class StoricoPagamento:
    cod_ipa: str
    ente_name: str
    pagati: bytes | None
    rt: bytes | None
    url_rt: str | None


@dataclass(frozen=True)
class AvvisoPendente:
    created_on: date
    dovuti: bytes


def mypay_base64(document: bytes | None) -> bytes | None:
    """MyPay base64-encodes Pagati itself before the SOAP layer encodes it again (wire-traps 2).

    Existing clients decode twice, so the gateway must send the same double encoding.
    """
    return base64.b64encode(document) if document is not None else None


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


def storico_pagamenti(runtime: Runtime, cod_ipa: str | None, password: str | None, person_type: str | None,
                      person_code: str | None, date_from: datetime | None,
                      date_to: datetime | None) -> tuple[datetime, list[StoricoPagamento]]:
    _auth(runtime, cod_ipa, password)
    raise _not_yet("paaSILChiediStoricoPagamenti")


def avvisi_pendenti(runtime: Runtime, cod_ipa: str, password: str | None, date_from: date | None,
                    date_to: date | None) -> list[AvvisoPendente]:
    _auth(runtime, cod_ipa, password)
    raise _not_yet("paaSILChiediAvvisiPendenti")


