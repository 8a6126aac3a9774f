"""Fetch the PSPs' reporting flows of each ente: FdR REST by default, legacy SOAP for stations configured so.

Incremental (FdR: publishedGt = newest publication stored; SOAP: (flow id, dataOraFlusso) pairs not stored)
and idempotent; one transaction per flow, so a node that goes away mid-run leaves nothing half-written.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import requests
from sqlalchemy import func, select

from gateway import logs
from gateway.payments.documents import DocumentInvalid, write_flusso
from gateway.settings import Settings
from storage.db import Database
from storage.models import Ente, RendicontazioneFlow

from . import fdr_client, reconcile
from .config import LegacyStation, ReportingSettings, reporting_settings
from .errors import NodeRefused, NodeUnavailable
from .soap_client import NodoPerPaClient
from .store import FetchedFlow, psp_from_flow_id, store_flow
from .validation import validate_file

log = logs.get_logger(__name__)


@dataclass
class FetchReport:
    cod_ipa: str
    new_flows: int = 0
    rows: int = 0
    ko_flows: int = 0
    rematched: int = 0
    refused: list[str] = field(default_factory=list)


def active_enti(database: Database, cod_ipa: str | None = None) -> list[int]:
    with database.transaction() as session:
        query = select(Ente.id).where(Ente.enabled.is_(True), Ente.state != "INSERITO").order_by(Ente.id)
        if cod_ipa:
            query = query.where(Ente.cod_ipa == cod_ipa)
        return list(session.scalars(query))


def fetch_ente(database: Database, settings: Settings, ente_id: int, *,
               http: requests.Session | None = None) -> FetchReport:
    """Raises NodeUnavailable when the node cannot be reached: the flows stored until then stay."""
    config = reporting_settings(settings)
    http = http or requests.Session()
    with database.transaction() as session:
        ente = session.get(Ente, ente_id)
        if ente is None:
            raise LookupError(f"no ente {ente_id}")
        cod_ipa, fiscal_code = ente.cod_ipa, ente.fiscal_code
    report = FetchReport(cod_ipa)
    bound = log.bind(cod_ipa_ente=cod_ipa)
    if config.transport == "fdr":
        _fetch_fdr(database, config, ente_id, fiscal_code, report, http)
    stations = ((config.station,) if config.transport == "soap" else ()) + config.legacy_stations
    for station in stations:
        _fetch_soap(database, config, station, ente_id, fiscal_code, report, http)
    with database.transaction() as session:
        report.rematched = reconcile.rematch(session, ente_id, fiscal_code)
    bound.info("reporting flows fetched", new_flows=report.new_flows, rows=report.rows, ko=report.ko_flows,
               rematched=report.rematched)
    return report


def _stored(report: FetchReport, stored) -> None:  # noqa: ANN001
    if stored is None:
        return
    report.new_flows += 1
    report.rows += stored.rows
    report.ko_flows += stored.state == "KO"


# --- FdR -----------------------------------------------------------------------------------------

def _fetch_fdr(database: Database, config: ReportingSettings, ente_id: int, fiscal_code: str,
               report: FetchReport, http: requests.Session) -> None:
    client = fdr_client.FdrClient(config.fdr_url, subscription_key=config.fdr_subscription_key,
                                  timeout=config.timeout_seconds, http=http)
    with database.transaction() as session:
        mine = (RendicontazioneFlow.ente_id == ente_id, RendicontazioneFlow.transport == "fdr")
        newest = session.scalar(select(func.max(RendicontazioneFlow.published_at)).where(*mine))
        known = {tuple(row) for row in session.execute(
            select(RendicontazioneFlow.psp_id, RendicontazioneFlow.flow_id, RendicontazioneFlow.revision).where(*mine))}
    try:
        listed = [flow for flow in client.published_flows(fiscal_code, published_gt=newest, size=config.page_size)
                  if (flow.psp_id, flow.fdr, flow.revision) not in known]
    except NodeRefused as exc:
        # E.g. the organisation is not (yet) known to FdR: nothing to fetch, and retrying will not help.
        report.refused.append(f"FdR list: {exc}")
        log.warning("FdR flow list refused", error=str(exc))
        return
    # Oldest publication first: publishedGt then never skips a flow left behind by an interrupted run.
    listed.sort(key=lambda f: (f.published is None, f.published or f.flow_date, f.revision))
    for item in listed:
        try:
            fetched_path, flow = _download_fdr(client, config, fiscal_code, item)
        except NodeRefused as exc:
            report.refused.append(f"{item.fdr}/{item.revision}: {exc}")
            log.warning("FdR flow refused", flow_id=item.fdr, revision=item.revision, error=str(exc))
            continue
        try:
            fetched = FetchedFlow("fdr", item.psp_id, item.fdr, fdr_client.flow_datetime(flow), item.revision,
                                  item.published or fdr_client.instant(flow.get("published")), fetched_path)
            _stored(report, store_flow(database, ente_id, fiscal_code, fetched))
        finally:
            fetched_path.unlink(missing_ok=True)


def _download_fdr(client: fdr_client.FdrClient, config: ReportingSettings, fiscal_code: str,
                  item: fdr_client.PublishedFlow) -> tuple[Path, dict]:
    """The flow as the FlussoRiversamento XML the ente will download, built from the FdR data."""
    flow = client.flow(fiscal_code, item.fdr, item.revision, item.psp_id)
    raw = list(client.payments(fiscal_code, item.fdr, item.revision, item.psp_id, size=config.page_size))
    raw.sort(key=lambda p: int(fdr_client._scalar(p.get("index")) or 0))
    payments = [fdr_client.to_payment(p) for p in raw]
    del raw
    if not payments:
        raise NodeRefused("FDR-EMPTY", "published flow without payments")
    total = sum((p.importo for p in payments), Decimal("0"))
    header = fdr_client.to_header(flow, len(payments), total)
    handle = tempfile.NamedTemporaryFile(prefix="fdr-", suffix=".xml", delete=False)
    with handle:
        write_flusso(handle, header, payments)
    return Path(handle.name), flow


# --- legacy SOAP ---------------------------------------------------------------------------------

def _fetch_soap(database: Database, config: ReportingSettings, station: LegacyStation, ente_id: int,
                fiscal_code: str, report: FetchReport, http: requests.Session) -> None:
    client = NodoPerPaClient(config.nodo_per_pa_url, timeout=config.timeout_seconds, http=http,
                             api_key=config.node_subscription_key)
    try:
        listed = client.list_flows(station, fiscal_code)
    except NodeRefused as exc:
        # E.g. this station does not serve the ente: nothing to fetch through it.
        report.refused.append(f"{station.station_id}: {exc}")
        log.info("flow list refused", station=station.station_id, error=str(exc))
        return
    with database.transaction() as session:
        known = {(psp, flow_id, when.replace(microsecond=0)) for psp, flow_id, when in session.execute(
            select(RendicontazioneFlow.psp_id, RendicontazioneFlow.flow_id, RendicontazioneFlow.flow_datetime)
            .where(RendicontazioneFlow.ente_id == ente_id))}
    seen: set[tuple[str, str, object]] = set()
    for item in sorted(listed, key=lambda f: f.flow_datetime):
        psp_id = psp_from_flow_id(item.flow_id)
        key = (psp_id, item.flow_id, item.flow_datetime.replace(microsecond=0))
        if key in known or key in seen:
            continue
        seen.add(key)
        with tempfile.TemporaryDirectory(prefix="fdr-soap-") as tmp:
            path = Path(tmp) / "flow.xml"
            try:
                client.download_flow(station, fiscal_code, item.flow_id, path)
            except NodeRefused as exc:
                report.refused.append(f"{item.flow_id}: {exc}")
                log.warning("flow download refused", flow_id=item.flow_id, error=str(exc))
                continue
            invalid = None
            try:
                validate_file(path)
            except DocumentInvalid as exc:
                invalid = str(exc)
                log.warning("invalid reporting flow stored as KO", flow_id=item.flow_id, error=invalid)
            fetched = FetchedFlow("soap", psp_id, item.flow_id, item.flow_datetime, None, None, path)
            _stored(report, store_flow(database, ente_id, fiscal_code, fetched, invalid))


def fetch_all(database: Database, settings: Settings, cod_ipa: str | None = None) -> tuple[list[FetchReport],
                                                                                             list[str]]:
    """Every active ente (or one); the enti the node could not be reached for are named in the second list."""
    reports, unavailable = [], []
    http = requests.Session()
    for ente_id in active_enti(database, cod_ipa):
        try:
            reports.append(fetch_ente(database, settings, ente_id, http=http))
        except NodeUnavailable as exc:
            unavailable.append(f"ente {ente_id}: {exc}")
    return reports, unavailable
