"""The "per flussi" operations as the SIL sees them: booking imports and exports, asking their state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from gateway import faults
from gateway.enti.registry import authenticate
from gateway.runtime import Runtime


@dataclass(frozen=True)
class ImportGrant:
    upload_url: str
    authorization_token: str
    request_token: str
    import_path: str


@dataclass(frozen=True)
class ImportStatus:
    stato: str
    url_scarti: str | None = None
    url_iuv: str | None = None
    url_avvisi: str | None = None


@dataclass(frozen=True)
class ExportBooking:
    request_token: str
    date_to: datetime | None = None


@dataclass(frozen=True)
class ExportStatus:
    stato: str
    download_url: str | None = None
    file_name: str | None = None
    file_path: str | None = None


def _auth(runtime: Runtime, cod_ipa: str, password: str | None, *, check_state: bool = True) -> None:
    with runtime.database.transaction() as session:
        authenticate(session, cod_ipa, password, check_state=check_state)


def _not_yet(operation: str) -> faults.Fault:
    return faults.system_error(f"{operation} non ancora disponibile su questo gateway")


def autorizza_import(runtime: Runtime, cod_ipa: str, password: str | None) -> ImportGrant:
    _auth(runtime, cod_ipa, password, check_state=False)
    raise _not_yet("paaSILAutorizzaImportFlusso")


def stato_import(runtime: Runtime, cod_ipa: str, password: str | None, request_token: str | None, *,
                 scarti: bool, iuv: bool, avvisi: bool) -> ImportStatus:
    _auth(runtime, cod_ipa, password, check_state=False)
    raise _not_yet("paaSILChiediStatoImportFlusso")


def prenota_export(runtime: Runtime, cod_ipa: str, password: str | None, *, date_from: date | None,
                   date_to: date | None, tipo_dovuto: str | None, version: str | None) -> ExportBooking:
    _auth(runtime, cod_ipa, password)
    raise _not_yet("paaSILPrenotaExportFlusso")


def prenota_export_incrementale(runtime: Runtime, cod_ipa: str, password: str | None, *, date_from: datetime | None,
                                date_to: datetime | None, tipo_dovuto: str | None, with_receipts: bool,
                                incremental: bool, version: str | None,
                                mypivot_password: str | None) -> ExportBooking:
    _auth(runtime, cod_ipa, password)
    raise _not_yet("paaSILPrenotaExportFlussoIncrementaleConRicevuta")


def prenota_export_scaduti(runtime: Runtime, cod_ipa: str, password: str | None, *, due_date: date | None,
                           tipi_dovuto: str | None) -> ExportBooking:
    _auth(runtime, cod_ipa, password, check_state=False)
    raise _not_yet("paaSILPrenotaExportFlussoScaduti")


def stato_export(runtime: Runtime, cod_ipa: str, password: str | None, request_token: str | None) -> ExportStatus:
    _auth(runtime, cod_ipa, password, check_state=False)
    raise _not_yet("paaSILChiediStatoExportFlusso")


def stato_export_scaduti(runtime: Runtime, cod_ipa: str, password: str | None,
                         request_token: str | None) -> ExportStatus:
    _auth(runtime, cod_ipa, password, check_state=False)
    raise _not_yet("paaSILChiediStatoExportFlussoScaduti")
