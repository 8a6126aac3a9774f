"""NodoPerPsp of the simulated node, at /sim/NodoPerPsp: nodoInviaFlussoRendicontazione (§2.1) only.

The other PSP-side operations of the legacy contract are answered PPT_SYSTEM_ERROR: the modello-3 ones
live at /sim/nodeForPsp.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable
from zoneinfo import ZoneInfo

from lxml import etree
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from gateway.payments import documents
from simulators import legacy_store as t
from simulators import soap
from simulators.faults import NodeFault
from simulators.legacy_checks import check_dominio
from simulators.legacy_soap import esito_ko, soap_app
from simulators.store import utcnow

if TYPE_CHECKING:
    from simulators.app import Simulator

PATH = "/NodoPerPsp"
ROME = ZoneInfo("Europe/Rome")
_FLOW_ID = re.compile(r"(\d{4}-\d{2}-\d{2})([^-]+)-(.+)")


def parse_datetime(value: str | None) -> datetime:
    """xs:dateTime, local Italian time when it has no offset (how the node writes its own)."""
    try:
        moment = datetime.fromisoformat((value or "").replace("Z", "+00:00"))
    except ValueError:
        raise NodeFault("PPT_SINTASSI_XSD", f"dataOraFlusso non valida: {value}") from None
    return moment.replace(tzinfo=ROME) if moment.tzinfo is None else moment


def receive_flow(sim: "Simulator", *, psp_id: str | None, broker: str | None, channel: str | None,
                 password: str | None, dominio: str | None, flow_id: str | None, flow_datetime: str | None,
                 encoded: str | None) -> None:
    """The §2.1 checks, then the flow is stored as one more version of (PSP, identificativoFlusso)."""
    psp = sim.settings.psp(psp_id) if psp_id else None
    if psp is None:
        raise NodeFault("PPT_PSP_SCONOSCIUTO", f"PSP {psp_id} sconosciuto")
    if broker != psp.broker_id:
        raise NodeFault("PPT_INTERMEDIARIO_PSP_SCONOSCIUTO", f"intermediario PSP {broker} sconosciuto")
    if channel != psp.channel_id:
        raise NodeFault("PPT_CANALE_SCONOSCIUTO", f"canale {channel} sconosciuto")
    if password != psp.password:
        raise NodeFault("PPT_AUTENTICAZIONE", "password del canale errata")
    check_dominio(sim.settings, dominio)
    try:
        xml = base64.b64decode("".join((encoded or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise NodeFault("PPT_SINTASSI_XSD", "xmlRendicontazione non e' base64 valido") from None
    try:
        documents.validate("FlussoRiversamento", xml)
        header, rows = documents.parse_flusso(xml)
        rows_list = list(rows)
    except documents.DocumentInvalid as exc:
        raise NodeFault("PPT_SINTASSI_XSD", f"flusso non valido: {exc.detail}"[:500]) from None
    declared = parse_datetime(flow_datetime)
    inner = header.data_ora_flusso if header.data_ora_flusso.tzinfo else header.data_ora_flusso.replace(tzinfo=ROME)
    if header.identificativo_flusso != flow_id:
        raise NodeFault("PPT_SEMANTICA", "identificativoFlusso diverso da quello del flusso")
    if inner != declared:
        raise NodeFault("PPT_SEMANTICA", "dataOraFlusso diversa da quella del flusso")
    match = _FLOW_ID.fullmatch(flow_id or "")
    if match is None or match.group(2) != psp.id:
        raise NodeFault("PPT_SEMANTICA", f"identificativoFlusso {flow_id} non conforme per il PSP {psp.id}")
    if header.ricevente != dominio:
        raise NodeFault("PPT_SEMANTICA", "istitutoRicevente diverso da identificativoDominio")
    if header.numero_totale_pagamenti != len(rows_list) or \
            header.importo_totale_pagamenti != sum((r.importo for r in rows_list), Decimal("0")):
        raise NodeFault("PPT_SEMANTICA", "numeroTotalePagamenti/importoTotalePagamenti diversi dai singoli pagamenti")
    try:
        with sim.store.begin() as conn:
            newer = conn.execute(select(t.flow.c.id).where(
                t.flow.c.psp_id == psp.id, t.flow.c.flow_id == flow_id,
                t.flow.c.flow_datetime >= declared.astimezone(timezone.utc))).first()
            if newer is not None:
                raise NodeFault("PPT_SEMANTICA", "flusso gia' ricevuto con dataOraFlusso uguale o successiva")
            conn.execute(insert(t.flow).values(psp_id=psp.id, dominio=dominio, flow_id=flow_id,
                                               flow_datetime=declared, xml=xml, received_at=utcnow()))
    except IntegrityError:
        raise NodeFault("PPT_SEMANTICA", "flusso gia' ricevuto con la stessa dataOraFlusso") from None


def _invia_flusso(sim: "Simulator") -> Callable:
    def handler(req: soap.Request, header: Any, answer: etree._Element) -> None:
        receive_flow(sim, psp_id=req.text("identificativoPSP", required=False),
                     broker=req.text("identificativoIntermediarioPSP", required=False),
                     channel=req.text("identificativoCanale", required=False),
                     password=req.text("password", required=False),
                     dominio=req.text("identificativoDominio", required=False),
                     flow_id=req.text("identificativoFlusso", required=False),
                     flow_datetime=req.text("dataOraFlusso", required=False),
                     encoded=req.text("xmlRendicontazione", required=False))
        soap.add(answer, "esito", "OK")
    return handler


def app(sim: "Simulator") -> Callable:
    return soap_app({"nodoInviaFlussoRendicontazione": _invia_flusso(sim)},
                    {"nodoInviaFlussoRendicontazione": esito_ko}, sim.settings.max_request_bytes)
