"""The "per flussi" operations as the SIL sees them: booking imports and exports, asking their state.

Checks and fault codes follow MyPay (ente-services §2.8-2.14); the work itself runs in jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select

from gateway import faults, urls
from gateway.enti.registry import authenticate
from gateway.flussi import bookings, files, outputs
from gateway.flussi.secondary import EXPORT_ENTE_SECONDARIO
from gateway.flussi.tracciati import EXPORT_VERSIONS
from gateway.runtime import Runtime
from storage.models import Ente, ExportFlow, TipoDovuto
from storage.types import utcnow

ROME = ZoneInfo("Europe/Rome")


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


def upload_token(runtime: Runtime, ente: Ente, request_token: str) -> str:
    return urls.make_token(runtime.settings, "upload", {"e": ente.id, "c": ente.cod_ipa, "r": request_token})


def autorizza_import(runtime: Runtime, cod_ipa: str, password: str | None) -> ImportGrant:
    with runtime.database.transaction() as session:
        ente = authenticate(session, cod_ipa, password, check_state=False)
        flow = bookings.new_import(session, ente)
        token = upload_token(runtime, ente, flow.request_token)
        return ImportGrant(upload_url=urls.public_url(runtime.settings, files.UPLOAD_PATH), authorization_token=token,
                           request_token=flow.request_token, import_path=files.IMPORT_PATH)


def _token_fault(cod_ipa: str, request_token: str | None, text: str) -> faults.Fault:
    return faults.Fault(faults.PAA_REQUEST_TOKEN_NON_VALIDO, text.format(cod_ipa=cod_ipa, token=request_token))


def stato_import(runtime: Runtime, cod_ipa: str, password: str | None, request_token: str | None, *,
                 scarti: bool, iuv: bool, avvisi: bool) -> ImportStatus:
    with runtime.database.transaction() as session:
        ente = authenticate(session, cod_ipa, password, check_state=False)
        flow = bookings.find_import(session, request_token)
        if flow is None:
            raise _token_fault(cod_ipa, request_token, "nessun record trovato per Ente [{cod_ipa}] e requestToken [{token}]")
        if flow.ente_id != ente.id:
            raise _token_fault(cod_ipa, request_token, "Ente [{cod_ipa}] non autorizzato per requestToken [{token}]")
        if not flow.state:
            raise _token_fault(cod_ipa, request_token, "Ente [{cod_ipa}] - token in attesa elaborazione [{token}]")
        stato = flow.error_code or flow.state
        if flow.state != bookings.IMPORT_ESEGUITO:
            return ImportStatus(stato=stato)
        produced = outputs.import_outputs(runtime.settings, flow)

        def url(kind: str, wanted: bool) -> str | None:
            relative = produced.get(kind)
            return files.download_url(runtime.settings, ente.id, relative) if wanted and relative else None

        return ImportStatus(stato=stato, url_scarti=url("scarti", scarti), url_iuv=url("iuv", iuv),
                            url_avvisi=url("avvisi", avvisi))


# --- exports ---------------------------------------------------------------------------------------------
def _day_start(value: date | datetime) -> datetime:
    day = value.astimezone(ROME).date() if isinstance(value, datetime) and value.tzinfo else (
        value.date() if isinstance(value, datetime) else value)
    return datetime.combine(day, time(), timezone.utc)  # a calendar day, kept as midnight UTC


def _aware(value: datetime) -> datetime:
    # A dateTime without offset is Italian local time, as MyPay (a JVM in Europe/Rome) reads it.
    return value if value.tzinfo else value.replace(tzinfo=ROME)


def _check_dates(date_from: object, date_to: object) -> None:
    if date_from is None:
        raise faults.Fault(faults.PAA_DATE_FROM_NON_VALIDO, "Data inizio non valida")
    if date_to is None:
        raise faults.Fault(faults.PAA_DATE_TO_NON_VALIDO, "Data fine non valida")
    if date_to < date_from:  # type: ignore[operator]
        raise faults.Fault(faults.PAA_INTERVALLO_DATE_NON_VALIDO, "L'intervallo data inizio e data fine non è valido")


def _check_tipo(session, ente: Ente, tipo: str | None) -> str | None:  # noqa: ANN001
    tipo = (tipo or "").strip() or None
    if tipo and tipo != EXPORT_ENTE_SECONDARIO and session.scalar(
            select(TipoDovuto.id).where(TipoDovuto.ente_id == ente.id, TipoDovuto.code == tipo)) is None:
        raise faults.Fault(faults.PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_VALIDO,
                           f"Identificativo tipo dovuto [{tipo}] non valido per ente [{ente.cod_ipa}]")
    return tipo


def _check_version(cod_ipa: str, version: str | None) -> str:
    version = (version or "").strip() or "1.0"
    if version not in EXPORT_VERSIONS:
        raise faults.Fault(faults.PAA_VERSIONE_TRACCIATO_NON_VALIDA, f"Versione tracciato non valida per ente [{cod_ipa}]")
    return version


def _check_mypivot(runtime: Runtime, mypivot_password: str | None) -> None:
    configured = runtime.settings.mypivot_password
    if configured and mypivot_password and mypivot_password != configured:
        # MyPay puts the offered password in the fault id (ente-services §1.3); we do not echo secrets.
        raise faults.Fault(faults.CODE_PAA_PASSWORD_ALLINEAMENTO_MYPIVOT_NON_VALIDA,
                           "Password allineamento MyPivot non valida", id="")


def prenota_export(runtime: Runtime, cod_ipa: str, password: str | None, *, date_from: date | None,
                   date_to: date | None, tipo_dovuto: str | None, version: str | None) -> ExportBooking:
    with runtime.database.transaction() as session:
        ente = authenticate(session, cod_ipa, password)
        _check_dates(date_from, date_to)
        tipo = _check_tipo(session, ente, tipo_dovuto)
        checked = _check_version(cod_ipa, version)
        flow = bookings.new_export(session, ente, kind="pagati", date_from=_day_start(date_from),  # type: ignore[arg-type]
                                   date_to=_day_start(date_to), tipi_dovuto=tipo, version=checked)  # type: ignore[arg-type]
        return ExportBooking(flow.request_token)


def prenota_export_incrementale(runtime: Runtime, cod_ipa: str, password: str | None, *, date_from: datetime | None,
                                date_to: datetime | None, tipo_dovuto: str | None, with_receipts: bool,
                                incremental: bool, version: str | None,
                                mypivot_password: str | None) -> ExportBooking:
    with runtime.database.transaction() as session:
        ente = authenticate(session, cod_ipa, password)
        effective_to = _aware(date_to) if date_to is not None else utcnow().astimezone(ROME)
        start = _aware(date_from) if date_from is not None else None
        _check_dates(start, effective_to)
        _check_mypivot(runtime, mypivot_password)
        tipo = _check_tipo(session, ente, tipo_dovuto)
        checked = _check_version(cod_ipa, version)
        if incremental:
            window = (start, effective_to)
        else:
            window = (_day_start(start), _day_start(effective_to))  # type: ignore[arg-type]
        flow = bookings.new_export(session, ente, kind="incrementale" if incremental else "pagati",
                                   date_from=window[0], date_to=window[1], tipi_dovuto=tipo, version=checked,
                                   with_receipts=with_receipts, incremental=incremental)
        return ExportBooking(flow.request_token, effective_to)


def prenota_export_scaduti(runtime: Runtime, cod_ipa: str, password: str | None, *, due_date: date | None,
                           tipi_dovuto: str | None) -> ExportBooking:
    with runtime.database.transaction() as session:
        ente = authenticate(session, cod_ipa, password, check_state=False)
        if due_date is None:
            raise faults.Fault(faults.PAA_DATE_FROM_NON_VALIDO, "Data inizio non valida")
        codes = [code.strip() for code in (tipi_dovuto or "").split(";") if code.strip()]
        if not codes:
            raise faults.Fault(faults.PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_INSERITO, "Identificativo tipo dovuto non inserito")
        known = set(session.scalars(select(TipoDovuto.code).where(TipoDovuto.ente_id == ente.id,
                                                                    TipoDovuto.code.in_(codes))))
        for code in codes:
            if code not in known:
                raise faults.Fault(faults.PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_VALIDO,
                                   f"Identificativo tipo dovuto [{code}] non valido per ente [{cod_ipa}]")
        flow = bookings.new_export(session, ente, kind="scaduti", date_from=None, date_to=_day_start(due_date),
                                   tipi_dovuto=";".join(codes), version="1.0")
        return ExportBooking(flow.request_token)


def _export_flow(session, ente: Ente, cod_ipa: str, request_token: str | None, kinds: tuple[str, ...]) -> ExportFlow:  # noqa: ANN001
    flow = bookings.find_export(session, request_token)
    if flow is None or flow.kind not in kinds:
        raise _token_fault(cod_ipa, request_token, "nessun record trovato per Ente [{cod_ipa}] e requestToken [{token}]")
    if flow.ente_id != ente.id:
        raise _token_fault(cod_ipa, request_token, "Ente [{cod_ipa}] non autorizzato per requestToken [{token}]")
    return flow


def _export_status(runtime: Runtime, ente: Ente, flow: ExportFlow) -> ExportStatus:
    if flow.state != bookings.EXPORT_ESEGUITO:
        return ExportStatus(stato=flow.state)
    if not flow.file_path or not files.absolute(runtime.settings, flow.file_path).is_file():
        return ExportStatus(stato=bookings.EXPORT_NESSUN_DOVUTO)
    return ExportStatus(stato=flow.state, download_url=files.download_url(runtime.settings, ente.id, flow.file_path),
                        file_name=flow.file_name, file_path="/" + flow.file_path.split("/", 2)[-1])


def stato_export(runtime: Runtime, cod_ipa: str, password: str | None, request_token: str | None) -> ExportStatus:
    with runtime.database.transaction() as session:
        ente = authenticate(session, cod_ipa, password, check_state=False)
        return _export_status(runtime, ente, _export_flow(session, ente, cod_ipa, request_token,
                                                          ("pagati", "incrementale")))


def stato_export_scaduti(runtime: Runtime, cod_ipa: str, password: str | None,
                         request_token: str | None) -> ExportStatus:
    with runtime.database.transaction() as session:
        ente = authenticate(session, cod_ipa, password, check_state=False)
        return _export_status(runtime, ente, _export_flow(session, ente, cod_ipa, request_token, ("scaduti",)))
