"""The FlussiSPC operations as the SIL sees them: list the reporting flows, get one flow's download URL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from gateway import faults
from gateway.enti.registry import authenticate
from gateway.runtime import Runtime


@dataclass(frozen=True)
class FlowRef:
    flow_id: str
    flow_datetime: datetime


@dataclass(frozen=True)
class FlowDownload:
    stato: str
    download_url: str | None


def elenco_flussi(runtime: Runtime, cod_ipa: str, password: str | None, *, psp_id: str | None, kind: str | None,
                  date_from: date | None, date_to: date | None) -> list[FlowRef]:
    with runtime.database.transaction() as session:
        authenticate(session, cod_ipa, password)
    raise faults.Fault(faults.CODE_PAA_ERRORE_INTERNO, faults.FAULT_STRINGS[faults.CODE_PAA_ERRORE_INTERNO],
                       "paaSILChiediElencoFlussiSPC non ancora disponibile su questo gateway", serial=1)


def flusso(runtime: Runtime, cod_ipa: str, password: str | None, *, psp_id: str | None, kind: str | None,
           flow_id: str | None, flow_datetime: datetime | None) -> FlowDownload:
    with runtime.database.transaction() as session:
        authenticate(session, cod_ipa, password)
    raise faults.Fault(faults.CODE_PAA_ERRORE_INTERNO, faults.FAULT_STRINGS[faults.CODE_PAA_ERRORE_INTERNO],
                       "paaSILChiediFlussoSPC non ancora disponibile su questo gateway", serial=1)
