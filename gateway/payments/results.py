"""What the "iniziato presso ente" operations answer, as plain values the SOAP layer translates."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal




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
