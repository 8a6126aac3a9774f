"""Payment landing pages under /pagamento/: open a session or a notice with the node (302 to its page),
take the payer back from the node (302 to the ente's return URL), and serve a stored RT by signed link."""

from __future__ import annotations

import html
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from sqlalchemy import select

from gateway import faults, logs
from gateway.node.client import node_client
from gateway.node.model import NodeError
from gateway.payments import carts
from gateway.payments.dovuti import find_payable_by_iuv
from gateway.runtime import Runtime
from gateway.urls import InvalidToken, read_token
from storage.models import Carrello, Ente, Receipt

log = logs.get_logger(__name__)

RT_LINK_MAX_AGE = 365 * 24 * 3600

_PAGE = """<!DOCTYPE html>
<html lang="it"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}}
h1{{font-size:1.4rem}} p.en{{color:#555}} a{{color:#0066cc}}</style></head>
<body><h1>{title}</h1><p>{it}</p><p class="en" lang="en">{en}</p>{extra}</body></html>
"""


def _page(start_response: Callable, status: str, title: str, it: str, en: str, extra: str = "") -> list[bytes]:
    body = _PAGE.format(title=html.escape(title), it=html.escape(it), en=html.escape(en), extra=extra).encode()
    start_response(status, [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store")])
    return [body]


def _redirect(start_response: Callable, url: str) -> list[bytes]:
    start_response("302 Found", [("Location", url), ("Content-Length", "0"), ("Cache-Control", "no-store")])
    return [b""]


def with_query(url: str, **params: str) -> str:
    """Append parameters to the ente's URL, keeping the ones it already has."""
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class PaymentPages:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Length", "0")])
            return [b""]
        path = environ.get("PATH_INFO", "")[len("/pagamento/"):].strip("/")
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        parts = path.split("/") if path else []
        try:
            if parts == ["avviso"]:
                return self.notice(method, query, start_response)
            if parts == ["rt"]:
                return self.rt(query, start_response)
            if parts == ["esito"]:
                # Legacy (RPT) carts: the node sends the payer back to the station's return URL with the
                # identificativoCarrello the gateway gave it, not with the idSession.
                return self.back_from_node(query, start_response)
            if len(parts) == 1:
                return self.session(method, parts[0], start_response)
            if len(parts) == 2 and parts[1] == "esito":
                return self.back(parts[0], query.get("esito", ""), start_response)
        except Exception:  # noqa: BLE001 - a payer never sees a stack trace
            log.exception("payment page failed", path=environ.get("PATH_INFO"))
            return _page(start_response, "500 Internal Server Error", "Errore / Error",
                         "Si è verificato un errore imprevisto. Riprovare più tardi.",
                         "An unexpected error occurred. Please try again later.")
        return _page(start_response, "404 Not Found", "Pagina non trovata / Not found",
                     "La pagina richiesta non esiste.", "The requested page does not exist.")

    # -- opening -----------------------------------------------------------------------------------
    def _open(self, id_session: str, start_response: Callable) -> list[bytes]:
        try:
            url = carts.open_payment(self.runtime, node_client(self.runtime), id_session)
        except carts.CartNotPayable as exc:
            status = {404: "404 Not Found", 410: "410 Gone"}.get(exc.http_status, "409 Conflict")
            it, _, en = exc.reason.partition(" / ")
            return _page(start_response, status, "Pagamento non disponibile / Payment not available",
                         it.capitalize() + ".", (en or it).capitalize() + ".")
        except NodeError:
            return _page(start_response, "502 Bad Gateway", "pagoPA non disponibile / pagoPA unavailable",
                         "Il sistema pagoPA non ha accettato la richiesta o non è raggiungibile. Nessun addebito è "
                         "stato effettuato: riprovare tra qualche minuto.",
                         "The pagoPA system refused the request or could not be reached. Nothing was charged: "
                         "please try again in a few minutes.")
        return _redirect(start_response, url)

    def session(self, method: str, id_session: str, start_response: Callable) -> list[bytes]:
        if method == "HEAD":  # link checkers and previews must not open payments
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "0")])
            return [b""]
        return self._open(id_session, start_response)

    def notice(self, method: str, query: dict[str, str], start_response: Callable) -> list[bytes]:
        cod_ipa, iuv = query.get("ente", "").strip(), query.get("iuv", "").strip()
        if method == "HEAD":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "0")])
            return [b""]
        with self.runtime.database.transaction() as session:
            ente = session.scalar(select(Ente).where(Ente.cod_ipa == cod_ipa, Ente.enabled.is_(True))) \
                if cod_ipa else None
            try:
                dovuti = find_payable_by_iuv(session, ente, iuv) if ente is not None and iuv else None
            except faults.Fault:
                dovuti = None
            if not dovuti or len(dovuti) > carts.MAX_NOTICES:
                return _page(start_response, "404 Not Found", "Avviso non pagabile / Notice not payable",
                             "L'avviso indicato non esiste o non è più pagabile.",
                             "The notice does not exist or can no longer be paid.")
            carrello = carts.reusable_carrello(dovuti) or carts.carrello_for_notice(session, ente, dovuti,
                                                                                    return_url=None)
            id_session = carrello.id_session
        return self._open(id_session, start_response)

    # -- coming back ---------------------------------------------------------------------------------
    def back_from_node(self, query: dict[str, str], start_response: Callable) -> list[bytes]:
        cart_id = query.get("idCarrello", "").strip()
        with self.runtime.database.transaction() as session:
            carrello = session.scalar(select(Carrello).where(Carrello.node_cart_id == cart_id)) if cart_id else None
            id_session = carrello.id_session if carrello is not None else ""
        return self.back(id_session, query.get("esito", ""), start_response)

    def back(self, id_session: str, esito: str, start_response: Callable) -> list[bytes]:
        returned = carts.payer_returned(self.runtime, id_session, esito)
        if returned is None:
            return _page(start_response, "404 Not Found", "Sessione sconosciuta / Unknown session",
                         "La sessione di pagamento non esiste.", "The payment session does not exist.")
        if returned.return_url and returned.return_url.lower().startswith(("http://", "https://")):
            return _redirect(start_response, with_query(returned.return_url, idSession=returned.id_session,
                                                        esito=returned.esito))
        texts = {
            "OK": ("Operazione conclusa. L'esito definitivo del pagamento sarà comunicato dall'ente appena "
                   "pagoPA invierà la ricevuta.",
                   "Done. The final outcome will be known to the creditor as soon as pagoPA sends the receipt."),
            "ANNULLATO": ("Il pagamento è stato annullato.", "The payment was cancelled."),
            "KO": ("Il pagamento non è andato a buon fine.", "The payment did not succeed."),
        }
        it, en = texts[returned.esito]
        return _page(start_response, "200 OK", "Pagamento / Payment", it, en)

    # -- RT download -----------------------------------------------------------------------------------
    def rt(self, query: dict[str, str], start_response: Callable) -> list[bytes]:
        from gateway.payments.sil_sessions import RT_TOKEN_PURPOSE

        try:
            receipt_id = read_token(self.runtime.settings, RT_TOKEN_PURPOSE, query.get("token"), RT_LINK_MAX_AGE)
        except InvalidToken:
            return _page(start_response, "404 Not Found", "Link non valido / Invalid link",
                         "Il link non è valido o è scaduto.", "The link is not valid or has expired.")
        with self.runtime.database.transaction() as session:
            receipt = session.get(Receipt, int(receipt_id))
            raw = receipt.raw if receipt is not None else None
        if not raw:
            return _page(start_response, "404 Not Found", "Ricevuta non trovata / Receipt not found",
                         "La ricevuta non è disponibile.", "The receipt is not available.")
        start_response("200 OK", [("Content-Type", "application/xml"), ("Content-Length", str(len(raw))),
                                  ("Content-Disposition", f'attachment; filename="rt-{int(receipt_id)}.xml"')])
        return [raw]


def routes(runtime: Runtime) -> dict[str, Callable]:
    return {"/pagamento/": PaymentPages(runtime)}
