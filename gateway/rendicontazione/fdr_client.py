"""Client of pagoPA's FdR REST API for organisations (fdr_organization.json): published flows, one flow, its payments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Iterator
from urllib.parse import quote

import requests

from gateway.payments.documents import FlussoHeader, IdentificativoUnivoco, PagamentoFlusso
from gateway.payments.documents.common import parse_datetime

from .clock import rome_date, rome_naive
from .errors import NodeRefused, NodeUnavailable

# FdR payStatus -> FlussoRiversamento codiceEsitoSingoloPagamento (mapping given by the OpenAPI description).
PAY_STATUS = {"EXECUTED": "0", "REVOKED": "3", "STAND_IN": "4", "STAND_IN_NO_RPT": "8", "NO_RPT": "9"}
SENDER_TYPE = {"LEGAL_PERSON": "G", "ABI_CODE": "A", "BIC_CODE": "B"}


@dataclass(frozen=True)
class PublishedFlow:
    fdr: str
    psp_id: str
    revision: int
    published: datetime | None
    flow_date: datetime | None


def instant(value: Any) -> datetime | None:
    """An FdR Instant (ISO-8601, UTC when no offset is given) as an aware datetime."""
    if not value:
        return None
    parsed = parse_datetime(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _scalar(value: Any) -> Any:
    # The OpenAPI examples wrap scalars in one-element lists; tolerate servers that do the same.
    return value[0] if isinstance(value, list) and len(value) == 1 else value


class FdrClient:
    def __init__(self, base_url: str, *, subscription_key: str = "", timeout: float = 30.0,
                 http: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http or requests.Session()
        self.http.trust_env = False
        self.timeout = timeout
        self.headers = {"Accept": "application/json"}
        if subscription_key:
            self.headers["Ocp-Apim-Subscription-Key"] = subscription_key

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        url = self.base_url + path
        try:
            response = self.http.get(url, params={k: v for k, v in (params or {}).items() if v is not None},
                                     headers=self.headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise NodeUnavailable(f"FdR not reachable: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise NodeUnavailable(f"FdR answered HTTP {response.status_code}")
        if response.status_code != 200:
            code = f"HTTP {response.status_code}"
            try:
                code = str(_scalar(response.json().get("appErrorCode")) or code)
            except ValueError:
                pass
            raise NodeRefused(code, path)
        try:
            body = response.json()
        except ValueError as exc:
            raise NodeUnavailable("FdR answered a body that is not JSON") from exc
        if not isinstance(body, dict):
            raise NodeUnavailable("FdR answered an unexpected JSON document")
        return body

    def _pages(self, path: str, params: dict[str, Any], size: int) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            body = self._get(path, {**params, "page": page, "size": size})
            data = body.get("data") or []
            yield from data
            total_pages = int(_scalar((body.get("metadata") or {}).get("totPage")) or 0)
            if page >= total_pages or not data:
                return
            page += 1

    def published_flows(self, organization_id: str, *, published_gt: datetime | None = None,
                        psp_id: str | None = None, flow_date: datetime | None = None,
                        size: int = 1000) -> Iterator[PublishedFlow]:
        params = {"publishedGt": _fmt_instant(published_gt), "pspId": psp_id, "flowDate": _fmt_instant(flow_date)}
        for item in self._pages(f"/organizations/{quote(organization_id, safe='')}/fdrs", params, size):
            yield PublishedFlow(fdr=str(_scalar(item["fdr"])), psp_id=str(_scalar(item["pspId"])),
                                revision=int(_scalar(item["revision"])), published=instant(item.get("published")),
                                flow_date=instant(item.get("flowDate")))

    def _flow_path(self, organization_id: str, fdr: str, revision: int, psp_id: str) -> str:
        return (f"/organizations/{quote(organization_id, safe='')}/fdrs/{quote(fdr, safe='')}"
                f"/revisions/{int(revision)}/psps/{quote(psp_id, safe='')}")

    def flow(self, organization_id: str, fdr: str, revision: int, psp_id: str) -> dict[str, Any]:
        return self._get(self._flow_path(organization_id, fdr, revision, psp_id))

    def payments(self, organization_id: str, fdr: str, revision: int, psp_id: str, *,
                 size: int = 1000) -> Iterator[dict[str, Any]]:
        yield from self._pages(self._flow_path(organization_id, fdr, revision, psp_id) + "/payments", {}, size)


def _fmt_instant(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")


def _amount(value: Any) -> Decimal:
    try:
        # Through str: a JSON float such as 10.1 must not become 10.0999999...
        return Decimal(str(_scalar(value))).quantize(Decimal("0.01"))
    except (InvalidOperation, TypeError) as exc:
        raise NodeRefused("FDR-INVALID", f"bad amount {value!r}") from exc


def flow_datetime(flow: dict[str, Any]) -> datetime:
    """The flow's version time: fdrDate (FlussoRiversamento's dataOraFlusso), else its publication."""
    value = instant(flow.get("fdrDate")) or instant(flow.get("published"))
    if value is None:
        raise NodeRefused("FDR-INVALID", "flow without fdrDate")
    return value


def to_header(flow: dict[str, Any], count: int, total: Decimal) -> FlussoHeader:
    """The FlussoRiversamento header of an FdR flow (field mapping from the OpenAPI descriptions)."""
    sender = flow.get("sender") or {}
    receiver = flow.get("receiver") or {}
    regulation_date = flow.get("regulationDate")
    return FlussoHeader(
        identificativo_flusso=str(_scalar(flow["fdr"])),
        data_ora_flusso=rome_naive(flow_datetime(flow)),
        identificativo_univoco_regolamento=str(_scalar(flow.get("regulation")) or "")[:35],
        data_regolamento=date.fromisoformat(str(regulation_date)[:10]) if regulation_date else date.today(),
        mittente=IdentificativoUnivoco(tipo=SENDER_TYPE.get(str(sender.get("type")), "B"),
                                       codice=str(sender.get("id") or sender.get("pspId") or "")),
        denominazione_mittente=sender.get("pspName") or None,
        codice_bic_banca_di_riversamento=flow.get("bicCodePouringBank") or None,
        ricevente=str(receiver.get("organizationId") or ""),
        denominazione_ricevente=receiver.get("organizationName") or None,
        numero_totale_pagamenti=count,
        importo_totale_pagamenti=total,
    )


def to_payment(item: dict[str, Any]) -> PagamentoFlusso:
    status = str(_scalar(item.get("payStatus")))
    pay_date = instant(item.get("payDate"))
    id_transfer = _scalar(item.get("idTransfer"))
    return PagamentoFlusso(
        iuv=str(_scalar(item["iuv"])), iur=str(_scalar(item["iur"])), importo=_amount(item["pay"]),
        codice_esito=PAY_STATUS.get(status, status), data_esito=rome_date(pay_date) if pay_date else date.today(),
        indice=int(id_transfer) if id_transfer is not None else None)
