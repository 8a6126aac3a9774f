"""Settings, read once at start-up from ENTE_GATEWAY_* environment variables (CLI flags override them)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

ENV_PREFIX = "ENTE_GATEWAY_"
# wsdl/ and xsd/ sit next to the packages in a checkout; an installed image points at them explicitly.
PROJECT_ROOT = Path(os.environ.get("ENTE_GATEWAY_CONTRACTS_DIR") or Path(__file__).resolve().parent.parent)
WSDL_DIR = PROJECT_ROOT / "wsdl"
XSD_DIR = PROJECT_ROOT / "xsd"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(ENV_PREFIX + name)
    return value if value not in (None, "") else default


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    value = _env(name)
    return int(value) if value is not None else default


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///ente-gateway.sqlite3"
    # Identity of this gateway on the pagoPA node: the intermediary (broker) and its station.
    broker_id: str = "99999000013"
    station_id: str = "99999000013_01"
    station_password: str = "stationpwd1"
    node_url: str = "http://127.0.0.1:8080/sim"
    # The node's endpoints, when they are not under node_url as the simulator serves them (production:
    # https://api.platform.pagopa.it/nodo/nodo-per-pa/v1 and …/checkout/ec/v1), and the API keys pagoPA's
    # gateway asks for (header Ocp-Apim-Subscription-Key), one per subscribed product.
    nodo_per_pa_url: str = ""
    checkout_url: str = ""
    node_subscription_key: str = ""
    checkout_subscription_key: str = ""
    public_url: str = "http://127.0.0.1:8080"
    simulator_url: str = ""
    data_dir: Path = Path("var")
    # Signs upload tokens and download URLs. Unset: a key kept in data_dir/secret.key (one host only);
    # several hosts must share ENTE_GATEWAY_SECRET_KEY.
    secret_key: str = ""
    log_format: str = "console"  # "json" in production
    log_level: str = "INFO"
    max_request_bytes: int = 5 * 1024 * 1024
    max_upload_bytes: int = 512 * 1024 * 1024
    # MyPay compatibility modes (see docs/compatibility.md).
    admin_cod_ipa: str = ""  # when set, PosizioniAperte/StoricoPagamenti check this ente's password
    cart_hash_secret: str = ""  # when set, InviaCarrelloDovuti elements may carry MyPay's sha256 hash
    mypivot_password: str = ""
    # Receipt recovery (gateway/node/recovery.py): attempts without outcome older than this are asked to the
    # node; then again after slot × (2^k − 1) seconds, at most recovery_max_tries times.
    recovery_after_seconds: int = 600
    recovery_slot_seconds: int = 60
    recovery_max_tries: int = 5
    # Lifetime of a modello-3 payment attempt (the node's payment token lasts at most 30 minutes).
    token_minutes: int = 30
    # PEM certificate that signs legacy RTs with an enveloped XML signature; unset: signatures are not checked.
    rt_signing_cert: str = ""
    # Hot paForNode operations answered by gateway/soap/fast (lxml) instead of Spyne; same bytes on the wire.
    fast_path: bool = True

    @property
    def signing_key(self) -> str:
        return self.secret_key or _local_secret(self.data_dir)

    @property
    def effective_nodo_per_pa_url(self) -> str:
        return (self.nodo_per_pa_url or self.node_url.rstrip("/") + "/NodoPerPa").rstrip("/")

    @property
    def effective_checkout_url(self) -> str:
        return (self.checkout_url or self.node_url.rstrip("/") + "/checkout/v1").rstrip("/")

    @property
    def effective_simulator_url(self) -> str:
        return self.simulator_url or self.public_url.rstrip("/") + "/sim"

    def with_overrides(self, **overrides: object) -> "Settings":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _local_secret(data_dir: Path) -> str:
    path = data_dir / "secret.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_hex(32).encode())
        except FileExistsError:  # pragma: no cover - another process won the race
            pass
        finally:
            os.close(fd)
    return path.read_text().strip()


def load_settings(**overrides: object) -> Settings:
    defaults = Settings()
    settings = Settings(
        database_url=_env("DATABASE_URL", defaults.database_url),
        broker_id=_env("BROKER_ID", defaults.broker_id),
        station_id=_env("STATION_ID", defaults.station_id),
        station_password=_env("STATION_PASSWORD", defaults.station_password),
        node_url=_env("NODE_URL", defaults.node_url),
        nodo_per_pa_url=_env("NODO_PER_PA_URL", ""),
        checkout_url=_env("CHECKOUT_URL", ""),
        node_subscription_key=_env("NODE_SUBSCRIPTION_KEY", ""),
        checkout_subscription_key=_env("CHECKOUT_SUBSCRIPTION_KEY", ""),
        public_url=_env("PUBLIC_URL", defaults.public_url),
        simulator_url=_env("SIMULATOR_URL", ""),
        data_dir=Path(_env("DATA_DIR", str(defaults.data_dir))),
        secret_key=_env("SECRET_KEY", ""),
        log_format=_env("LOG_FORMAT", defaults.log_format),
        log_level=_env("LOG_LEVEL", defaults.log_level),
        max_request_bytes=_env_int("MAX_REQUEST_BYTES", defaults.max_request_bytes),
        max_upload_bytes=_env_int("MAX_UPLOAD_BYTES", defaults.max_upload_bytes),
        admin_cod_ipa=_env("ADMIN_COD_IPA", ""),
        cart_hash_secret=_env("CART_HASH_SECRET", ""),
        mypivot_password=_env("MYPIVOT_PASSWORD", ""),
        token_minutes=_env_int("TOKEN_MINUTES", defaults.token_minutes),
        rt_signing_cert=_env("RT_SIGNING_CERT", ""),
        fast_path=_env_bool("FAST_PATH", defaults.fast_path),
        recovery_after_seconds=_env_int("RECOVERY_AFTER_SECONDS", defaults.recovery_after_seconds),
        recovery_slot_seconds=_env_int("RECOVERY_SLOT_SECONDS", defaults.recovery_slot_seconds),
        recovery_max_tries=_env_int("RECOVERY_MAX_TRIES", defaults.recovery_max_tries),
    )
    return settings.with_overrides(**overrides)
