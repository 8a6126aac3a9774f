"""Rendicontazione settings (ENTE_GATEWAY_REPORTING_*, ENTE_GATEWAY_FDR_*), derived from the gateway's Settings."""

from __future__ import annotations

import os
from dataclasses import dataclass

from gateway.settings import ENV_PREFIX, Settings

TRANSPORTS = ("fdr", "soap")


@dataclass(frozen=True)
class LegacyStation:
    """A station that still downloads flows with nodoChiedi*FlussoRendicontazione (deprecated 30 June 2026)."""

    broker_id: str
    station_id: str
    password: str


@dataclass(frozen=True)
class ReportingSettings:
    # How this gateway's own station fetches flows: FdR REST (today's platform) or legacy SOAP.
    transport: str
    fdr_url: str
    fdr_subscription_key: str
    nodo_per_pa_url: str
    node_subscription_key: str
    station: LegacyStation
    # Further stations configured legacy, each polled over SOAP for the enti it serves.
    legacy_stations: tuple[LegacyStation, ...]
    fetch_minutes: int
    unreported_days: int
    page_size: int
    timeout_seconds: float


def _env(name: str, default: str = "") -> str:
    value = os.environ.get(ENV_PREFIX + name)
    return value if value not in (None, "") else default


def _stations(value: str) -> tuple[LegacyStation, ...]:
    """``broker/station/password`` entries separated by commas."""
    out = []
    for item in value.split(","):
        parts = [p.strip() for p in item.strip().split("/")]
        if len(parts) == 3 and all(parts):
            out.append(LegacyStation(*parts))
        elif item.strip():
            raise ValueError("ENTE_GATEWAY_REPORTING_LEGACY_STATIONS entries are broker/station/password")
    return tuple(out)


def reporting_settings(settings: Settings) -> ReportingSettings:
    node = settings.node_url.rstrip("/")
    transport = _env("REPORTING_TRANSPORT", "fdr").lower()
    if transport not in TRANSPORTS:
        raise ValueError(f"ENTE_GATEWAY_REPORTING_TRANSPORT must be one of {', '.join(TRANSPORTS)}")
    return ReportingSettings(
        transport=transport,
        fdr_url=_env("FDR_URL", node + "/fdr-org/service/v1").rstrip("/"),
        fdr_subscription_key=_env("FDR_SUBSCRIPTION_KEY"),
        nodo_per_pa_url=settings.effective_nodo_per_pa_url,
        node_subscription_key=settings.node_subscription_key,
        station=LegacyStation(settings.broker_id, settings.station_id, settings.station_password),
        legacy_stations=_stations(_env("REPORTING_LEGACY_STATIONS")),
        fetch_minutes=int(_env("REPORTING_FETCH_MINUTES", "60")),
        unreported_days=int(_env("REPORTING_UNREPORTED_DAYS", "3")),
        page_size=min(1000, max(1, int(_env("REPORTING_PAGE_SIZE", "1000")))),
        timeout_seconds=float(_env("REPORTING_TIMEOUT", "30")),
    )
