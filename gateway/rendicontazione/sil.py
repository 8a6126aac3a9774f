"""The FlussiSPC operations as the SIL sees them: list the reporting flows, get one flow's download URL.

ente-services.md §3: verificaEnte with the state check; date faults reuse PAA_ENTE_NON_VALIDO as MyPay
does; anything unexpected is CODE_PAA_ERRORE_INTERNO with serial 1, never a stack trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import defer

from gateway import faults, logs
from gateway.enti.registry import authenticate
from gateway.runtime import Runtime
from storage.models import RendicontazioneFlow

from . import web
from .clock import aware, day_bounds, rome_naive

log = logs.get_logger(__name__)

RENDICONTAZIONE, QUADRATURA = "R", "Q"


@dataclass(frozen=True)
class FlowRef:
    flow_id: str
    flow_datetime: datetime  # Rome local, no offset, no fraction (as MyPay answers)


@dataclass(frozen=True)
class FlowDownload:
    stato: str
    download_url: str | None


def _internal(description: str) -> faults.Fault:
    return faults.Fault(faults.CODE_PAA_ERRORE_INTERNO, faults.FAULT_STRINGS[faults.CODE_PAA_ERRORE_INTERNO],
                        description, serial=1)


def _kind(kind: str | None) -> str:
    value = (kind or "").strip().upper()
    if value not in (RENDICONTAZIONE, QUADRATURA):
        raise _internal(f"tipoFlusso non valido: {kind!r} (ammessi R, Q)")
    return value


def elenco_flussi(runtime: Runtime, cod_ipa: str, password: str | None, *, psp_id: str | None, kind: str | None,
                  date_from: date | None, date_to: date | None) -> list[FlowRef]:
    try:
        with runtime.database.transaction() as session:
            ente = authenticate(session, cod_ipa, password)
            if date_from is None:
                raise faults.Fault(faults.PAA_ENTE_NON_VALIDO, "Data inizio non valida", id=cod_ipa)
            if date_to is None:
                raise faults.Fault(faults.PAA_ENTE_NON_VALIDO, "Data fine non valida", id=cod_ipa)
            if date_to < date_from:
                raise faults.Fault(faults.PAA_ENTE_NON_VALIDO, "Intervallo data Extraction non valida", id=cod_ipa)
            if _kind(kind) == QUADRATURA:
                return []  # no source of flussi di quadratura yet: an honest empty list
            start, end = day_bounds(date_from, date_to)
            query = (select(RendicontazioneFlow.flow_id, RendicontazioneFlow.flow_datetime)
                     .where(RendicontazioneFlow.ente_id == ente.id, RendicontazioneFlow.kind == RENDICONTAZIONE,
                            RendicontazioneFlow.state == "OK", RendicontazioneFlow.flow_datetime >= start,
                            RendicontazioneFlow.flow_datetime < end)
                     .order_by(RendicontazioneFlow.flow_datetime, RendicontazioneFlow.flow_id,
                               RendicontazioneFlow.revision.desc()))
            if psp_id and psp_id.strip():
                query = query.where(RendicontazioneFlow.psp_id == psp_id.strip())
            out: list[FlowRef] = []
            seen: set[tuple[str, datetime]] = set()
            for flow_id, when in session.execute(query):
                ref = FlowRef(flow_id, rome_naive(when))
                # Two revisions with one dataOraFlusso would look identical to the SIL: list it once.
                if (ref.flow_id, ref.flow_datetime) not in seen:
                    seen.add((ref.flow_id, ref.flow_datetime))
                    out.append(ref)
            return out
    except faults.Fault:
        raise
    except Exception:  # noqa: BLE001 - MyPay's contract: "Errore interno a pa", serial 1
        log.exception("paaSILChiediElencoFlussiSPC failed")
        raise _internal("Errore interno durante la ricerca dei flussi") from None


def flusso(runtime: Runtime, cod_ipa: str, password: str | None, *, psp_id: str | None, kind: str | None,
           flow_id: str | None, flow_datetime: datetime | None) -> FlowDownload:
    try:
        with runtime.database.transaction() as session:
            ente = authenticate(session, cod_ipa, password)
            if _kind(kind) == QUADRATURA or not (flow_id or "").strip():
                return FlowDownload("KO", None)
            query = (select(RendicontazioneFlow).options(defer(RendicontazioneFlow.raw))
                     .where(RendicontazioneFlow.ente_id == ente.id, RendicontazioneFlow.kind == RENDICONTAZIONE,
                            RendicontazioneFlow.flow_id == flow_id.strip(), RendicontazioneFlow.state == "OK")
                     .order_by(RendicontazioneFlow.current.desc(), RendicontazioneFlow.revision.desc()))
            if psp_id and psp_id.strip():
                query = query.where(RendicontazioneFlow.psp_id == psp_id.strip())
            wanted = aware(flow_datetime).replace(microsecond=0) if flow_datetime is not None else None
            for flow in session.scalars(query):
                if wanted is None or flow.flow_datetime.replace(microsecond=0) == wanted:
                    return FlowDownload("OK", web.download_url(runtime.settings, ente.id, flow))
            return FlowDownload("KO", None)
    except faults.Fault:
        raise
    except Exception:  # noqa: BLE001
        log.exception("paaSILChiediFlussoSPC failed")
        raise _internal("Errore interno durante la ricerca del flusso") from None
