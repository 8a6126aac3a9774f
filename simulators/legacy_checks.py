"""Registry and payload checks of the simulated legacy node: who may call, and whether an RPT is acceptable.

Order of the checks follows the node: caller (broker, station, password), dominio, PSP, then the RPT
itself (base64, XSD, semantics). Every refusal is a NodeFault with the §4.1 code.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from decimal import Decimal

from gateway.payments import documents
from simulators.config import WISP_PLACEHOLDERS, SimSettings
from simulators.faults import NodeFault

_DOMINIO = re.compile(r"[0-9]{11}")


def check_station(settings: SimSettings, broker: str | None, station: str | None, password: str | None) -> None:
    configured = settings.station
    if not broker or broker != configured.broker_id:
        raise NodeFault("PPT_INTERMEDIARIO_PA_SCONOSCIUTO", f"intermediario PA {broker!s} sconosciuto")
    if not station or station != configured.station_id:
        raise NodeFault("PPT_STAZIONE_INT_PA_SCONOSCIUTA", f"stazione {station!s} sconosciuta")
    if password != configured.password:
        raise NodeFault("PPT_AUTENTICAZIONE", "password errata")


def check_dominio(settings: SimSettings, dominio: str | None) -> None:
    # The node knows the enti by fiscal code; with no allow-list configured, any well-formed one is "known".
    if not dominio or not _DOMINIO.fullmatch(dominio) or not settings.station.serves(dominio):
        raise NodeFault("PPT_DOMINIO_SCONOSCIUTO", f"dominio {dominio!s} sconosciuto")


def check_psp(settings: SimSettings, psp: str | None, broker: str | None, channel: str | None) -> None:
    if (psp, broker, channel) in WISP_PLACEHOLDERS:
        return
    known = settings.psp(psp) if psp else None
    if known is None:
        raise NodeFault("PPT_PSP_SCONOSCIUTO", f"PSP {psp!s} sconosciuto")
    if broker != known.broker_id:
        raise NodeFault("PPT_INTERMEDIARIO_PSP_SCONOSCIUTO", f"intermediario PSP {broker!s} sconosciuto")
    if channel != known.channel_id:
        raise NodeFault("PPT_CANALE_SCONOSCIUTO", f"canale {channel!s} sconosciuto")


def check_tipo_firma(tipo_firma: str | None) -> None:
    if tipo_firma not in (None, "", "0"):
        raise NodeFault("PPT_TIPOFIRMA_SCONOSCIUTO", f"tipoFirma {tipo_firma} non supportato")


@dataclass(frozen=True)
class AcceptedRpt:
    dominio: str
    iuv: str
    ccp: str
    message_id: str
    amount: Decimal
    company_name: str
    description: str
    xml: bytes


def check_rpt(settings: SimSettings, encoded: str | None, dominio: str | None, iuv: str | None,
              ccp: str | None, serial: int | None = None) -> AcceptedRpt:
    """Decode, validate (PagInf_RPT_RT 6.2.0) and cross-check one RPT against the identifiers sent with it."""
    if not encoded:
        raise NodeFault("PPT_SINTASSI_XSD", "rpt mancante", serial=serial)
    try:
        xml = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise NodeFault("PPT_SINTASSI_XSD", "rpt non e' base64 valido", serial=serial) from None
    try:
        root = documents.validate("RPT", xml)
        rpt = documents.parse_rpt(root)
    except documents.DocumentInvalid as exc:
        raise NodeFault("PPT_SINTASSI_XSD", f"RPT non valida: {exc.detail}"[:500], serial=serial) from None
    if (rpt.dominio.identificativo_dominio, rpt.iuv, rpt.codice_contesto_pagamento) != (dominio, iuv, ccp):
        raise NodeFault("PPT_SEMANTICA", "dominio/IUV/CCP della richiesta diversi da quelli dell'RPT", serial=serial)
    total = sum((s.importo for s in rpt.singoli), Decimal("0"))
    if total != rpt.importo_totale_da_versare:
        raise NodeFault("PPT_SEMANTICA", f"importoTotaleDaVersare {rpt.importo_totale_da_versare} diverso dalla "
                                         f"somma dei singoli versamenti {total}", serial=serial)
    for position, singolo in enumerate(rpt.singoli, start=1):
        if not singolo.iban_accredito and singolo.marca_bollo is None:
            raise NodeFault("PPT_SEMANTICA", f"datiSingoloVersamento {position} senza ibanAccredito ne' marca da "
                                             f"bollo", serial=serial)
    return AcceptedRpt(dominio=dominio or "", iuv=iuv or "", ccp=ccp or "",
                       message_id=rpt.identificativo_messaggio_richiesta, amount=total,
                       company_name=rpt.ente_beneficiario.denominazione[:140],
                       description=rpt.singoli[0].causale[:140], xml=xml)
