"""Simulator settings and registry: the gateway's station on the node and the simulated PSPs.

Read from the gateway's settings object when mounted (duck-typed: public_url, broker_id, station_id,
station_password, data_dir) or from ENTE_GATEWAY_* / ENTE_GATEWAY_SIMULATOR_* variables when standalone.
Every timer is configurable so that tests can run the real flows fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ENV = "ENTE_GATEWAY_"
SIM_ENV = "ENTE_GATEWAY_SIMULATOR_"

# Who the node says it is in its own faults (§4.1).
NODE_ID = "NodoDeiPagamentiSPC"

# The PSP ids an ente puts in nodoInviaRPT/Carrello when the payer chooses the PSP on WISP/Checkout
# (pagopa-node.md §1.2.1): accepted by the legacy node, never reported as PPT_PSP_SCONOSCIUTO.
WISP_PLACEHOLDERS = (("AGID_01", "97735020584", "97735020584_02"), ("AGID_01", "97735020584", "97735020584_03"))


@dataclass(frozen=True)
class Station:
    """The gateway's station on the node: every dominio it serves is routed to ``<gateway_url>/pa/...``."""

    broker_id: str
    station_id: str
    password: str
    domini: frozenset[str] | None = None  # None: any dominio (allow-list optional)
    version: int = 2  # paGetPaymentV2 / paSendRTV2

    def serves(self, fiscal_code: str) -> bool:
        return self.domini is None or fiscal_code in self.domini


@dataclass(frozen=True)
class Psp:
    """A simulated PSP with one channel; its ids end up in receipts and reporting flows."""

    id: str
    broker_id: str
    channel_id: str
    password: str
    name: str
    channel_description: str
    fiscal_code: str
    payment_method: str = "creditCard"  # stPaymentMethod of sendPaymentOutcome
    fee: str = "1.00"


DEFAULT_PSPS: tuple[Psp, ...] = (
    Psp("SIMPSP01", "SIMPSP01", "SIMPSP01_01", "simpsp0101", "PSP Simulato", "Canale simulato online",
        "99999000101", "creditCard", "1.00"),
    Psp("ABI99999", "99999000102", "99999000102_01", "bancasim01", "Banca Simulata S.p.A.",
        "Home banking simulato", "99999000102", "other", "0.50"),
    Psp("POSTSIM1", "99999000103", "99999000103_01", "postesim01", "Sportello Simulato",
        "Sportello fisico simulato", "99999000103", "cash", "2.00"),
)


@dataclass(frozen=True)
class SimSettings:
    gateway_url: str = "http://127.0.0.1:8080"  # the gateway: /pa/paForNode, /pa/PaPerNodo live here
    public_url: str = "http://127.0.0.1:8080/sim"  # the simulator as browsers and the gateway see it
    station: Station = Station("99999000013", "99999000013_01", "stationpwd1")
    psps: tuple[Psp, ...] = DEFAULT_PSPS
    data_dir: Path = Path("var")
    database_url: str = ""  # default: sqlite file data_dir/simulator.sqlite3
    verify_timeout: float = 7.0  # node -> EC wait for paVerifyPaymentNotice / paGetPayment (§5)
    send_rt_timeout: float = 15.0  # node -> EC wait for paSendRT
    retry_schedule: tuple[float, ...] = (1.0, 5.0, 30.0, 60.0)  # seconds after attempt 1, 2, ...; last repeats
    max_attempts: int = 48  # scheduler.paSendRtMaxRetry
    token_lifetime_ms: int = 1_800_000  # default paymentToken validity (30 min)
    receipt_duplicata_delivered: bool = True  # PAA_RECEIPT_DUPLICATA ends the retries (unverified, §4.2)
    poll_interval: float = 0.25  # how often each process looks for receipts due
    max_request_bytes: int = 5 * 1024 * 1024
    extra: dict[str, Any] = field(default_factory=dict)  # free room for the legacy/reporting modules

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{Path(self.data_dir).resolve() / 'simulator.sqlite3'}"

    def psp(self, psp_id: str | None) -> Psp | None:
        if not psp_id:
            return self.psps[0]
        return next((p for p in self.psps if p.id == psp_id), None)

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th failed delivery (1-based)."""
        schedule = self.retry_schedule or (60.0,)
        return schedule[min(attempt, len(schedule)) - 1]

    def with_overrides(self, **overrides: Any) -> "SimSettings":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _env(name: str, prefix: str = SIM_ENV) -> str | None:
    value = os.environ.get(prefix + name)
    return value if value not in (None, "") else None


def _schedule(value: str) -> tuple[float, ...]:
    return tuple(float(part) for part in value.replace(";", ",").split(",") if part.strip())


def _env_overrides() -> dict[str, Any]:
    """ENTE_GATEWAY_SIMULATOR_* variables (the simulator's own knobs)."""
    out: dict[str, Any] = {}
    if (value := _env("DATABASE_URL")):
        out["database_url"] = value
    if (value := _env("RETRY_SCHEDULE")):
        out["retry_schedule"] = _schedule(value)
    if (value := _env("MAX_ATTEMPTS")):
        out["max_attempts"] = int(value)
    if (value := _env("VERIFY_TIMEOUT")):
        out["verify_timeout"] = float(value)
    if (value := _env("SENDRT_TIMEOUT")):
        out["send_rt_timeout"] = float(value)
    if (value := _env("TOKEN_LIFETIME_MS")):
        out["token_lifetime_ms"] = min(int(value), 1_800_000)
    if (value := _env("POLL_INTERVAL")):
        out["poll_interval"] = float(value)
    if (value := _env("RECEIPT_DUPLICATA_DELIVERED")):
        out["receipt_duplicata_delivered"] = value.strip().lower() in {"1", "true", "yes", "on"}
    if (value := _env("GATEWAY_URL")):
        out["gateway_url"] = value.rstrip("/")
    return out


def _domini() -> frozenset[str] | None:
    value = _env("DOMINI")
    return frozenset(v.strip() for v in value.split(",") if v.strip()) if value else None


def from_gateway_settings(settings: Any) -> SimSettings:
    """Settings of a simulator mounted in the gateway's own process (``serve --with-simulator``, demo)."""
    public_url = str(settings.public_url).rstrip("/")
    simulator_url = getattr(settings, "simulator_url", "") or public_url + "/sim"
    station = Station(settings.broker_id, settings.station_id, settings.station_password, _domini())
    base = SimSettings(gateway_url=public_url, public_url=simulator_url.rstrip("/"), station=station,
                       data_dir=Path(settings.data_dir),
                       max_request_bytes=getattr(settings, "max_request_bytes", SimSettings.max_request_bytes))
    return base.with_overrides(**_env_overrides())


def from_environment(*, public_url: str | None = None) -> SimSettings:
    """Settings of a standalone simulator: the gateway is at ENTE_GATEWAY_PUBLIC_URL."""
    defaults = SimSettings()
    gateway_url = (_env("PUBLIC_URL", ENV) or defaults.gateway_url).rstrip("/")
    station = Station(_env("BROKER_ID", ENV) or defaults.station.broker_id,
                      _env("STATION_ID", ENV) or defaults.station.station_id,
                      _env("STATION_PASSWORD", ENV) or defaults.station.password, _domini())
    own_url = public_url or _env("URL") or defaults.public_url
    base = SimSettings(gateway_url=gateway_url, public_url=own_url.rstrip("/"), station=station,
                       data_dir=Path(_env("DATA_DIR", ENV) or "var"))
    return base.with_overrides(**_env_overrides())
