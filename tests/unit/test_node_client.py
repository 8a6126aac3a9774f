"""NodeClient against a small in-test HTTP server: the Checkout CartRequest field by field (checkout_v1.json),
ProblemJson errors, timeouts, and nodoInviaCarrelloRPT's envelope and answers."""

from __future__ import annotations

import base64
import json
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from lxml import etree

from gateway.node.client import NodeClient
from gateway.node.model import CartInfo, NodeError, Notice, Payer
from gateway.payments import documents
from gateway.settings import Settings
from tests.conftest import REFERENCE

CHECKOUT_OAS = REFERENCE / "pagopa" / "openapi" / "checkout_v1.json"
PPT = "http://ws.pagamenti.telematici.gov/"
PPTHEAD = "http://ws.pagamenti.telematici.gov/ppthead"


class FakeNode:
    """Records every request; answers with whatever the test set in ``reply``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.reply: tuple[int, dict[str, str], bytes] = (302, {"Location": "https://checkout.example/c/1"}, b"")
        self.delay = 0.0
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                node.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                time.sleep(node.delay)
                status, headers, payload = node.reply
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sim"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def node():
    fake = FakeNode()
    yield fake
    fake.close()


def _notice(n: int = 1, **overrides: Any) -> Notice:
    values = dict(dovuto_id=n, fiscal_code="80012345678", company_name="Comune di Prova " + "x" * 150,
                  notice_number=f"30101000000000{n:02d}10", iuv=f"0101000000000{n:02d}10", amount=Decimal("12.30"),
                  description="TARI 2025 rata " + "y" * 200, dati_specifici_riscossione="9/0101100IM/",
                  payer=Payer("F", "RSSMRA80A01H501U", "Mario Rossi", email="mario@example.org"),
                  iban="IT60X0542811101000000123456")
    values.update(overrides)
    return Notice(**values)


def _cart(model: str = "checkout", email: str | None = "mario@example.org") -> CartInfo:
    base = "https://gw.example/pagamento/abc/esito?esito="
    return CartInfo("abc-123", model, base + "ok", base + "cancel", base + "error", email)


def _client(node: FakeNode, **timeouts: float) -> NodeClient:
    settings = Settings(node_url=node.url)
    return NodeClient(settings, timeout=(timeouts.get("connect", 2.0), timeouts.get("read", 2.0)))


def test_checkout_cart_request_matches_the_contract(node: FakeNode) -> None:
    oas = json.loads(CHECKOUT_OAS.read_text())["components"]["schemas"]
    opened = _client(node).open_payment(_cart(), [_notice(1), _notice(2, amount=Decimal("0.01"))])
    assert opened.url == "https://checkout.example/c/1"
    request = node.requests[0]
    assert request["path"] == "/sim/checkout/v1/carts"
    assert request["headers"]["Content-Type"].startswith("application/json")
    body = json.loads(request["body"])
    cart_schema, notice_schema = oas["CartRequest"], oas["PaymentNotice"]
    assert set(cart_schema["required"]) <= set(body)
    assert set(body) <= set(cart_schema["properties"])
    assert 1 <= len(body["paymentNotices"]) <= cart_schema["properties"]["paymentNotices"]["maxItems"]
    for notice in body["paymentNotices"]:
        assert set(notice) == set(notice_schema["required"])
        assert len(notice["noticeNumber"]) == 18 and len(notice["fiscalCode"]) == 11
        assert isinstance(notice["amount"], int) and notice["amount"] >= notice_schema["properties"]["amount"]["minimum"]
        assert len(notice["companyName"]) <= 140 and len(notice["description"]) <= 140
    # integer euro cents, never decimal euros
    assert [n["amount"] for n in body["paymentNotices"]] == [1230, 1]
    assert body["paymentNotices"][0]["noticeNumber"] == "301010000000000110"
    assert body["paymentNotices"][0]["fiscalCode"] == "80012345678"
    assert body["returnUrls"] == {"returnOkUrl": _cart().return_ok, "returnCancelUrl": _cart().return_cancel,
                                  "returnErrorUrl": _cart().return_error}
    assert set(body["returnUrls"]) == set(cart_schema["properties"]["returnUrls"]["required"])
    assert body["idCart"] == "abc-123"
    assert body["emailNotice"] == "mario@example.org"
    assert body["allCCP"] is False


def test_checkout_without_email_and_with_postal_ibans(node: FakeNode) -> None:
    _client(node).open_payment(_cart(email=None), [_notice(1, postal_iban=True)])
    body = json.loads(node.requests[0]["body"])
    assert "emailNotice" not in body
    assert body["allCCP"] is True


def test_checkout_problem_json_becomes_node_error(node: FakeNode) -> None:
    problem = {"type": "about:blank", "title": "Bad", "status": 400, "detail": "noticeNumber invalid"}
    node.reply = (400, {"Content-Type": "application/problem+json"}, json.dumps(problem).encode())
    with pytest.raises(NodeError) as caught:
        _client(node).open_payment(_cart(), [_notice()])
    assert "noticeNumber invalid" in caught.value.detail and not caught.value.transport
    node.reply = (500, {"Content-Type": "application/json"}, b'{"status":500,"detail":"boom"}')
    with pytest.raises(NodeError, match="boom"):
        _client(node).open_payment(_cart(), [_notice()])


def test_checkout_timeout_and_unreachable(node: FakeNode) -> None:
    node.delay = 1.5
    with pytest.raises(NodeError) as caught:
        _client(node, read=0.3).open_payment(_cart(), [_notice()])
    assert caught.value.transport
    dead = NodeClient(Settings(node_url="http://127.0.0.1:9"), timeout=(0.5, 0.5))
    with pytest.raises(NodeError) as caught:
        dead.open_payment(_cart(), [_notice()])
    assert caught.value.transport


def test_more_than_five_notices_refused_before_any_call(node: FakeNode) -> None:
    with pytest.raises(NodeError):
        _client(node).open_payment(_cart(), [_notice(i) for i in range(1, 7)])
    assert node.requests == []


def _rpt_answer(esito: str, url: str | None = None, fault: str | None = None) -> bytes:
    fault_xml = (f"<fault><faultCode>{fault}</faultCode><faultString>refused</faultString>"
                 f"<id>NodoDeiPagamentiSPC</id></fault>") if fault else ""
    url_xml = f"<url>{url}</url>" if url else ""
    return (f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            f'<ppt:nodoInviaCarrelloRPTRisposta xmlns:ppt="{PPT}">{fault_xml}'
            f"<esitoComplessivoOperazione>{esito}</esitoComplessivoOperazione>{url_xml}"
            f"</ppt:nodoInviaCarrelloRPTRisposta></s:Body></s:Envelope>").encode()


def test_rpt_cart_envelope_and_rpts(node: FakeNode) -> None:
    node.reply = (200, {"Content-Type": "text/xml"}, _rpt_answer("OK", "https://wisp.example/p/9"))
    prepared: list = []
    opened = _client(node).open_payment(_cart("rpt"), [_notice(1), _notice(2)],
                                        on_prepared=lambda cart_id, rpts: prepared.append((cart_id, rpts)))
    assert opened.url == "https://wisp.example/p/9"
    assert prepared and prepared[0][0] == opened.cart_id and len(opened.cart_id) <= 35
    request = node.requests[0]
    assert request["path"] == "/sim/NodoPerPa"
    assert request["headers"]["SOAPAction"].strip('"') == "nodoInviaCarrelloRPT"
    envelope = etree.fromstring(request["body"])
    header = envelope.find(f".//{{{PPTHEAD}}}intestazioneCarrelloPPT")
    assert [child.tag for child in header] == ["identificativoIntermediarioPA", "identificativoStazioneIntermediarioPA",
                                               "identificativoCarrello"]  # unqualified children
    assert header.findtext("identificativoIntermediarioPA") == "99999000013"
    assert header.findtext("identificativoStazioneIntermediarioPA") == "99999000013_01"
    body = envelope.find(f".//{{{PPT}}}nodoInviaCarrelloRPT")
    assert body.findtext("password") == "stationpwd1"
    assert (body.findtext("identificativoPSP"), body.findtext("identificativoIntermediarioPSP"),
            body.findtext("identificativoCanale")) == ("AGID_01", "97735020584", "97735020584_02")
    items = body.findall("listaRPT/elementoListaRPT")
    assert len(items) == 2
    ccps = set()
    for item, rpt in zip(items, opened.rpts):
        xml = base64.b64decode(item.findtext("rpt"))
        parsed = documents.parse_rpt(documents.validate("RPT", xml))  # valid against PagInf_RPT_RT 6.2.0
        assert item.findtext("identificativoDominio") == parsed.dominio.identificativo_dominio == "80012345678"
        assert item.findtext("identificativoUnivocoVersamento") == parsed.iuv == rpt.iuv
        assert item.findtext("codiceContestoPagamento") == parsed.codice_contesto_pagamento == rpt.ccp
        assert parsed.identificativo_messaggio_richiesta == rpt.request_message_id
        assert parsed.singoli[0].iban_accredito == "IT60X0542811101000000123456"
        assert parsed.singoli[0].dati_specifici_riscossione == "9/0101100IM/"
        assert parsed.totale == Decimal("12.30")
        assert parsed.soggetto_pagatore.identificativo.codice == "RSSMRA80A01H501U"
        ccps.add(rpt.ccp)
    assert len(ccps) == 2


def test_rpt_cart_refused_and_soap_fault(node: FakeNode) -> None:
    node.reply = (200, {"Content-Type": "text/xml"}, _rpt_answer("KO", fault="PPT_ID_CARRELLO_DUPLICATO"))
    with pytest.raises(NodeError) as caught:
        _client(node).open_payment(_cart("rpt"), [_notice()])
    assert caught.value.code == "PPT_ID_CARRELLO_DUPLICATO" and not caught.value.transport
    node.reply = (500, {"Content-Type": "text/xml"},
                  b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>'
                  b"<faultcode>s:Server</faultcode><faultstring>down</faultstring></s:Fault></s:Body></s:Envelope>")
    with pytest.raises(NodeError, match="down"):
        _client(node).open_payment(_cart("rpt"), [_notice()])
    node.reply = (502, {}, b"<html>bad gateway</html")
    with pytest.raises(NodeError):
        _client(node).open_payment(_cart("rpt"), [_notice()])
