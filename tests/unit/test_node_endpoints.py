"""The gateway reaches the node where the settings say, with pagoPA's API key when one is set.

A small HTTP server stands in for pagoPA's API gateway and records what it receives.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from gateway.node.client import NodeClient
from gateway.node.model import CartInfo, Notice, Payer
from gateway.node.recovery import call_node
from gateway.settings import Settings

COPIA_RT_ANSWER = (b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
                   b'<ppt:nodoChiediCopiaRTRisposta xmlns:ppt="http://ws.pagamenti.telematici.gov/">'
                   b'<fault><faultCode>PPT_RT_NONDISPONIBILE</faultCode><faultString>x</faultString>'
                   b'<id>NodoDeiPagamentiSPC</id></fault></ppt:nodoChiediCopiaRTRisposta></soapenv:Body>'
                   b'</soapenv:Envelope>')


@pytest.fixture
def api_gateway() -> Iterator[tuple[str, list[tuple[str, dict[str, str]]]]]:
    seen: list[tuple[str, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append((self.path, dict(self.headers)))
            if self.path.endswith("/carts"):
                self.send_response(302)
                self.send_header("Location", "https://checkout.example/c/123")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(COPIA_RT_ANSWER)))
            self.end_headers()
            self.wfile.write(COPIA_RT_ANSWER)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _notice() -> Notice:
    return Notice(dovuto_id=1, fiscal_code="80012345678", company_name="Comune", notice_number="301000000000000123",
                  iuv="01000000000000123", amount=Decimal("10.00"), description="TARI",
                  dati_specifici_riscossione="9/0101100IM/",
                  payer=Payer(type="F", code="RSSMRA80A01H501U", name="Mario Rossi"))


def test_checkout_cart_goes_to_the_checkout_url_with_its_api_key(api_gateway) -> None:
    base, seen = api_gateway
    settings = Settings(node_url="http://127.0.0.1:9/unused", checkout_url=base + "/checkout/ec/v1",
                        checkout_subscription_key="checkout-key")
    opened = NodeClient(settings).open_payment(
        CartInfo("s1", "checkout", "https://ente/ok", "https://ente/ko", "https://ente/err"), [_notice()])
    assert opened.url == "https://checkout.example/c/123"
    ((path, headers),) = seen
    assert path == "/checkout/ec/v1/carts" and headers["Ocp-Apim-Subscription-Key"] == "checkout-key"


def test_soap_calls_go_to_the_nodo_per_pa_url_with_the_node_key_and_none_when_unset(api_gateway) -> None:
    base, seen = api_gateway
    settings = Settings(nodo_per_pa_url=base + "/nodo/nodo-per-pa/v1", node_subscription_key="node-key")
    answer = call_node(settings, "nodoChiediCopiaRT", "80012345678", "01000000000000123", "ccp1")
    assert answer.fault_code == "PPT_RT_NONDISPONIBILE"
    call_node(Settings(node_url=base), "nodoChiediCopiaRT", "80012345678", "01000000000000123", "ccp1")
    (first_path, first), (second_path, second) = seen
    assert first_path == "/nodo/nodo-per-pa/v1" and first["Ocp-Apim-Subscription-Key"] == "node-key"
    assert first["SOAPAction"] == '"nodoChiediCopiaRT"'
    assert second_path == "/NodoPerPa" and "Ocp-Apim-Subscription-Key" not in second
