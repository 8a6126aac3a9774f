"""Where flow files live under settings.data_dir, and the signed expiring URLs that serve them.

Layout (as MyPay's, under one folder per ente): flussi/<codIpa>/IMPORT/<requestToken>/upload.zip,
flussi/<codIpa>/IMPORT_ELABORATI/<yyyy_MM>/<requestToken>/<name>_{SCARTI,IUV,AVVISI_PDF}.zip,
flussi/<codIpa>/EXPORT/<yyyy_MM>/<name>.zip. Database rows keep paths relative to data_dir.
"""

from __future__ import annotations

from pathlib import Path

from gateway import urls
from gateway.settings import Settings

DOWNLOAD_PATH = "/flussi/download/"
UPLOAD_PATH = "/flussi/upload"
DOWNLOAD_MAX_AGE = 48 * 3600
UPLOAD_MAX_AGE = 24 * 3600
IMPORT_PATH = "/IMPORT"  # what paaSILAutorizzaImportFlusso answers as importPath (MyPay: "/" + its import folder)


def ente_root(cod_ipa: str) -> Path:
    return Path("flussi") / cod_ipa


def absolute(settings: Settings, relative: str | Path) -> Path:
    return Path(settings.data_dir) / relative


def upload_dir(cod_ipa: str, request_token: str) -> Path:
    return ente_root(cod_ipa) / "IMPORT" / request_token


def output_dir(cod_ipa: str, month: str, request_token: str) -> Path:
    return ente_root(cod_ipa) / "IMPORT_ELABORATI" / month / request_token


def export_dir(cod_ipa: str, month: str) -> Path:
    return ente_root(cod_ipa) / "EXPORT" / month


def download_url(settings: Settings, ente_id: int, relative: str | Path) -> str:
    token = urls.make_token(settings, "download", {"e": ente_id, "p": str(relative)})
    return urls.public_url(settings, DOWNLOAD_PATH + token)


def resolve_download(settings: Settings, token: str, cod_ipa_of) -> Path:  # noqa: ANN001
    """The file a download token names, checked against its ente's folder; raises urls.InvalidToken."""
    payload = urls.read_token(settings, "download", token, DOWNLOAD_MAX_AGE)
    if not isinstance(payload, dict) or not isinstance(payload.get("e"), int) or not isinstance(payload.get("p"), str):
        raise urls.InvalidToken("bad payload")
    cod_ipa = cod_ipa_of(payload["e"])
    if cod_ipa is None:
        raise urls.InvalidToken("unknown ente")
    base = absolute(settings, ente_root(cod_ipa)).resolve()
    path = absolute(settings, payload["p"]).resolve()
    # A token is signed by us, but the ente's folder check keeps one ente's token off another's files.
    if base not in path.parents or not path.is_file():
        raise urls.InvalidToken("file not available")
    return path
