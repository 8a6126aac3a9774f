"""Payment sessions end to end: zeep clients of MyPay's reference WSDL against a running gateway (both backends)
whose node is a small fake in this file. InviaDovuti / InviaCarrello / VerificaAvviso, the landing pages,
ChiediPagati* / EsitoCarrello / StoricoPagamenti, and every fault of §2.1 / §2.2 at least once."""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from decimal import Decimal
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import zeep
from lxml import etree
from sqlalchemy import select

from gateway.enti.credentials import mypay_cart_hash
from gateway.enti.registry import add_tipo_dovuto, set_tipo_dovuto_enabled
from gateway.payments import iuv as iuv_rules
from gateway.payments.node_side import IncomingReceipt, Subject, Transfer
from gateway.payments.psp_receipts import store_receipt
from storage.db import Database
from storage.models import Carrello, Dovuto, Ente, PaymentAttempt
from tests.conftest import REFERENCE, create_ente, new_database_url, start_gateway, stop_gateway

ENTE_WSDL = REFERENCE / "mypay" / "wsdl" / "pa-per-ente.wsdl"
PAGATI_XSD = REFERENCE / "mypay" / "wsdl" / "PagInf_Dovuti_Pagati_6_2_0.xsd"
BINDING = "{http://www.regione.veneto.it/pagamenti/ente/PagamentiTelematiciDovutiPagati}" \
          "PagamentiTelematiciDovutiPagatiBinding"
NS = "http://www.regione.veneto.it/schemas/2012/Pagamenti/Ente/"
CF = "RSSMRA80A01H501U"
CART_SECRET = "intermediario-secret-1"
ID_SESSION = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{11,13}$")
CHECKOUT_PAGE = "https://checkout.test/p/42"
WISP_PAGE = "https://wisp.test/carrello/7"

pytestmark = pytest.mark.skipif(not ENTE_WSDL.exists(), reason="reference contracts not available")


# --- the fake node ---------------------------------------------------------------------------------------

class FakeNode:
    """Checkout POST /carts and NodoPerPa; ``replies[path]`` decides the answer, ``requests`` records them."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        self.replies: dict[str, Callable[[bytes], tuple[int, dict[str, str], bytes]]] = {}
        self.reset()
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                node.requests.append((self.path, body))
                status, headers, payload = node.replies.get(self.path.split("/sim", 1)[-1],
                                                            lambda _b: (404, {}, b""))(body)
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

    def reset(self) -> None:
        self.replies["/checkout/v1/carts"] = lambda _b: (302, {"Location": CHECKOUT_PAGE}, b"")
        self.replies["/NodoPerPa"] = lambda _b: (200, {"Content-Type": "text/xml"}, rpt_answer("OK", WISP_PAGE))

    def carts(self) -> list[dict]:
        return [json.loads(body) for path, body in self.requests if path.endswith("/checkout/v1/carts")]


def rpt_answer(esito: str, url: str | None = None, fault: str | None = None) -> bytes:
    fault_xml = f"<fault><faultCode>{fault}</faultCode><faultString>no</faultString><id>Nodo</id></fault>" \
        if fault else ""
    return (f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            f'<ppt:nodoInviaCarrelloRPTRisposta xmlns:ppt="http://ws.pagamenti.telematici.gov/">{fault_xml}'
            f"<esitoComplessivoOperazione>{esito}</esitoComplessivoOperazione>{f'<url>{url}</url>' if url else ''}"
            f"</ppt:nodoInviaCarrelloRPTRisposta></s:Body></s:Envelope>").encode()


@pytest.fixture(scope="module")
def node():
    fake = FakeNode()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(request: pytest.FixtureRequest, node: FakeNode, tmp_path_factory: pytest.TempPathFactory):
    """A gateway per backend whose node is the fake above, with MyPay's cart-hash mode on."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
    tmp = tmp_path_factory.mktemp(f"sessions-{request.param}")
    url = new_database_url(request.param, request, tmp)
    running = start_gateway(url, tmp, ENTE_GATEWAY_NODE_URL=node.url, ENTE_GATEWAY_CART_HASH_SECRET=CART_SECRET)
    database = Database(url)
    running.db = database  # type: ignore[attr-defined]
    yield running
    database.dispose()
    stop_gateway(running)


@pytest.fixture(autouse=True)
def _fresh_node(node: FakeNode):
    node.reset()
    yield


@lru_cache(maxsize=None)
def _client() -> zeep.Client:
    return zeep.Client(str(ENTE_WSDL))


def service(gw: Any) -> Any:
    return _client().create_service(BINDING, gw.url + "/ente/PagamentiTelematiciDovutiPagati")


def header(cod_ipa: str) -> dict:
    return {"header": {"codIpaEnte": cod_ipa}}


@lru_cache(maxsize=None)
def pagati_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(PAGATI_XSD)))


# --- documents ----------------------------------------------------------------------------------------------

def item(iud: str | None = None, *, amount: str = "10.00", tipo: str = "TARI", causale: str = "Tassa rifiuti",
         dsr: str = "9/0101100IM/", extra: str = "") -> str:
    iud = iud or "IUD-" + uuid.uuid4().hex[:12]
    return (f"<datiSingoloVersamento><identificativoUnivocoDovuto>{iud}</identificativoUnivocoDovuto>"
            f"<importoSingoloVersamento>{amount}</importoSingoloVersamento>"
            f"<identificativoTipoDovuto>{tipo}</identificativoTipoDovuto>"
            f"<causaleVersamento>{causale}</causaleVersamento>"
            f"<datiSpecificiRiscossione>{dsr}</datiSpecificiRiscossione>{extra}</datiSingoloVersamento>")


def dovuti(*items: str, payer_type: str = "F", payer_code: str = CF, tipo_versamento: str = "ALL", iuv: str = "",
           email: str = "mario@example.org") -> bytes:
    items = items or (item(),)
    iuv_xml = f"<identificativoUnivocoVersamento>{iuv}</identificativoUnivocoVersamento>" if iuv else ""
    email_xml = f"<e-mailPagatore>{email}</e-mailPagatore>" if email else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?><Dovuti xmlns="{NS}"><versioneOggetto>6.2.0</versioneOggetto>'
            f"<soggettoPagatore><identificativoUnivocoPagatore><tipoIdentificativoUnivoco>{payer_type}"
            f"</tipoIdentificativoUnivoco><codiceIdentificativoUnivoco>{payer_code}</codiceIdentificativoUnivoco>"
            f"</identificativoUnivocoPagatore><anagraficaPagatore>Mario Rossi</anagraficaPagatore>{email_xml}"
            f"</soggettoPagatore><datiVersamento><tipoVersamento>{tipo_versamento}</tipoVersamento>"
            f"{iuv_xml}{''.join(items)}</datiVersamento></Dovuti>").encode()


def secondario(iban: str = "IT60X0542811101000000123456", amount: str = "5.00") -> bytes:
    return (f'<DovutiEntiSecondari xmlns="{NS}"><versioneOggetto>6.2.0</versioneOggetto><datiVersamentoEntiSecondari>'
            f"<codiceFiscaleBeneficiario>80000000002</codiceFiscaleBeneficiario>"
            f"<denominazioneBeneficiario>Provincia</denominazioneBeneficiario>"
            f"<ibanAccreditoBeneficiario>{iban}</ibanAccreditoBeneficiario>"
            f"<datiSpecificiRiscossione>9/0101100IM/</datiSpecificiRiscossione>"
            f"<importoSingoloVersamento>{amount}</importoSingoloVersamento>"
            f"</datiVersamentoEntiSecondari></DovutiEntiSecondari>").encode()


# --- helpers ----------------------------------------------------------------------------------------------------

def invia(gw: Any, ente: Any, data: bytes, password: str | None = None, **extra: Any) -> Any:
    return service(gw).paaSILInviaDovuti(password=password or ente.password, dovuti=data,
                                         _soapheaders=header(ente.cod_ipa), **extra)


def fault_code(answer: Any) -> str | None:
    return answer.fault.faultCode if answer.fault is not None else None


def pagati_of(gw: Any, ente: Any, id_session: str) -> Any:
    return service(gw).paaSILChiediPagati(codIpaEnte=ente.cod_ipa, password=ente.password, idSession=id_session)


def cart_row(gw: Any, id_session: str) -> Carrello:
    with gw.db.transaction() as session:
        carrello = session.scalar(select(Carrello).where(Carrello.id_session == id_session))
        carrello.dovuti  # noqa: B018 - loaded before the session closes
        return carrello


def pay(gw: Any, ente: Any, dovuto_id: int, *, receipt_id: str | None = None) -> str:
    """A modello-3 receipt stored the way paSendRTV2 stores it (psp_receipts.store_receipt)."""
    receipt_id = receipt_id or uuid.uuid4().hex[:30]
    with gw.db.transaction() as session:
        dovuto = session.get(Dovuto, dovuto_id)
        ente_row = session.get(Ente, dovuto.ente_id)
        debtor = Subject("F", CF, "Mario Rossi")
        raw = f"<receipt><receiptId>{receipt_id}</receiptId></receipt>".encode()
        store_receipt(session, ente_row, IncomingReceipt(
            version="paSendRTV2", receipt_id=receipt_id, notice_number=dovuto.notice_number,
            fiscal_code=ente_row.fiscal_code, outcome="OK", iuv=dovuto.iuv, amount=dovuto.amount,
            description=dovuto.causale, company_name=ente_row.name, debtor=debtor,
            transfers=[Transfer(1, dovuto.amount, ente_row.fiscal_code, dovuto.causale, "0101100IM",
                                iban="IT60X0542811101000000123456")],
            psp_id="BCITITMM", psp_name="Banca Test", channel_id="BCITITMM_01", raw=raw, fee=Decimal("1.00")))
    return receipt_id


def decode_twice(value: bytes) -> bytes:
    return base64.b64decode(value)  # zeep already undid the SOAP layer's base64: one more to go


def landing(url: str, **kwargs: Any) -> requests.Response:
    return requests.get(url, allow_redirects=False, timeout=30, **kwargs)


# --- the happy path ---------------------------------------------------------------------------------------------

def test_invia_dovuti_landing_and_pagati(gw: Any, node: FakeNode) -> None:
    ente = create_ente(gw.db)
    iuds = ["A-" + uuid.uuid4().hex[:10], "B-" + uuid.uuid4().hex[:10]]
    answer = invia(gw, ente, dovuti(item(iuds[0], amount="12.30"), item(iuds[1], amount="0.70", tipo="MENSA")),
                   enteSILInviaRispostaPagamentoUrl="https://ente.test/back?x=1")
    assert (fault_code(answer), answer.esito, answer.redirect) == (None, "OK", 1)
    id_session = answer.idSession
    assert ID_SESSION.match(id_session)
    assert answer.url == f"{gw.url}/pagamento/{id_session}"
    carrello = cart_row(gw, id_session)
    assert (carrello.state, carrello.kind, carrello.payment_model) == ("PREDISPOSTO", "ESTERNO_ANONIMO", "checkout")
    rows = sorted(carrello.dovuti, key=lambda d: d.id)
    assert [d.iud for d in rows] == iuds
    assert all(iuv_rules.is_valid_check_digits(d.iuv) and d.notice_number == "3" + d.iuv for d in rows)

    assert fault_code(pagati_of(gw, ente, id_session)) == "PAA_PAGAMENTO_NON_INIZIATO"

    response = landing(answer.url)
    assert response.status_code == 302 and response.headers["Location"] == CHECKOUT_PAGE
    cart = node.carts()[-1]
    assert cart["idCart"] == id_session
    assert [(n["noticeNumber"], n["fiscalCode"], n["amount"]) for n in cart["paymentNotices"]] == \
        [(rows[0].notice_number, ente.fiscal_code, 1230), (rows[1].notice_number, ente.fiscal_code, 70)]
    assert cart["returnUrls"]["returnOkUrl"] == f"{gw.url}/pagamento/{id_session}/esito?esito=ok"
    assert cart["emailNotice"] == "mario@example.org"
    carrello = cart_row(gw, id_session)
    assert carrello.state == "PAGAM_IN_CORSO" and carrello.payment_url == CHECKOUT_PAGE
    assert all(d.state == "INSERIMENTO_DOVUTO" for d in carrello.dovuti)  # Checkout does not lock positions
    with gw.db.transaction() as session:
        attempts = session.scalars(select(PaymentAttempt).where(PaymentAttempt.carrello_id == carrello.id)).all()
        assert sorted(a.iuv for a in attempts) == sorted(d.iuv for d in rows)
        assert {a.model for a in attempts} == {"checkout"}
    assert fault_code(pagati_of(gw, ente, id_session)) == "PAA_PAGAMENTO_IN_CORSO"

    receipt_ids = [pay(gw, ente, rows[0].id), pay(gw, ente, rows[1].id)]
    assert cart_row(gw, id_session).state == "PAGATO"

    answer = pagati_of(gw, ente, id_session)
    assert answer.fault is None
    xml = decode_twice(answer.pagati)  # double base64, as MyPay's clients expect
    root = etree.fromstring(xml)
    pagati_schema().assertValid(root)
    ns = {"e": NS}
    assert root.findtext("e:datiPagamento/e:codiceEsitoPagamento", namespaces=ns) == "0"
    assert root.findtext("e:datiPagamento/e:importoTotalePagato", namespaces=ns) == "13.00"
    assert root.findtext("e:identificativoMessaggioRicevuta", namespaces=ns) == receipt_ids[0]
    assert root.findtext("e:istitutoAttestante/e:identificativoUnivocoAttestante/e:codiceIdentificativoUnivoco",
                         namespaces=ns) == "BCITITMM"
    singoli = root.findall("e:datiPagamento/e:datiSingoloPagamento", ns)
    assert [(s.findtext("e:identificativoUnivocoDovuto", namespaces=ns),
             s.findtext("e:identificativoUnivocoRiscossione", namespaces=ns)) for s in singoli] == \
        list(zip(iuds, receipt_ids))

    with_receipt = service(gw).paaSILChiediPagatiConRicevuta(codIpaEnte=ente.cod_ipa, password=ente.password,
                                                             idSession=id_session)
    assert with_receipt.fault is None
    root = etree.fromstring(decode_twice(with_receipt.pagati))
    pagati_schema().assertValid(root)
    assert root.tag == f"{{{NS}}}PagatiConRicevuta"
    assert with_receipt.rt == f"<receipt><receiptId>{receipt_ids[0]}</receiptId></receipt>".encode()
    by_iuv = service(gw).paaSILChiediPagatiConRicevuta(codIpaEnte=ente.cod_ipa, password=ente.password,
                                                       identificativoUnivocoVersamento=rows[1].iuv)
    root = etree.fromstring(decode_twice(by_iuv.pagati))
    assert root.findtext("e:datiPagamento/e:identificativoUnivocoVersamento", namespaces=ns) == rows[1].iuv
    by_iud = service(gw).paaSILChiediPagatiConRicevuta(codIpaEnte=ente.cod_ipa, password=ente.password,
                                                       identificativoUnivocoDovuto=iuds[0])
    assert by_iud.fault is None and by_iud.rt.endswith(f"{receipt_ids[0]}</receiptId></receipt>".encode())

    esito = service(gw).paaSILChiediEsitoCarrelloDovuti(codIpaEnte=ente.cod_ipa, password=ente.password,
                                                        idSessionCarrello=id_session)
    [only] = esito.listaCarrelli.rispostaCarrello
    assert (only.codIpaEnte, only.esito) == (ente.cod_ipa, "Pagato")
    pagati_schema().assertValid(etree.fromstring(decode_twice(only.pagati)))

    storico = service(gw).paaSILChiediStoricoPagamenti(
        password=ente.password, codIpaEnte=ente.cod_ipa,
        identificativoUnivocoPersonaFG={"tipoIdentificativoUnivoco": "F", "codiceIdentificativoUnivoco": CF},
        dataFrom="2020-01-01T00:00:00")
    assert storico.fault is None and len(storico.paaSILStoricoPagamenti) == 1
    entry = storico.paaSILStoricoPagamenti[0]
    root = etree.fromstring(entry.ctPagatiConRicevuta)  # single-encoded here, as in MyPay
    pagati_schema().assertValid(root)
    assert entry.codIpaEnte == ente.cod_ipa
    assert requests.get(entry.urlDownloadRT, timeout=10).content == entry.rt


def test_node_refusal_leaves_the_cart_payable_and_retry_works(gw: Any, node: FakeNode) -> None:
    ente = create_ente(gw.db)
    answer = invia(gw, ente, dovuti(item()))
    problem = json.dumps({"status": 400, "title": "Bad", "detail": "invalid notice"}).encode()
    node.replies["/checkout/v1/carts"] = lambda _b: (400, {"Content-Type": "application/problem+json"}, problem)
    response = landing(answer.url)
    assert response.status_code == 502 and "pagoPA" in response.text and "try again" in response.text
    assert "invalid notice" not in response.text
    carrello = cart_row(gw, answer.idSession)
    assert carrello.state == "PREDISPOSTO" and carrello.payment_url is None
    with gw.db.transaction() as session:
        assert session.scalars(select(PaymentAttempt).where(PaymentAttempt.carrello_id == carrello.id)).all() == []
    node.replies["/checkout/v1/carts"] = lambda _b: (302, {"Location": CHECKOUT_PAGE}, b"")
    assert landing(answer.url).headers["Location"] == CHECKOUT_PAGE
    assert cart_row(gw, answer.idSession).state == "PAGAM_IN_CORSO"
    assert landing(f"{gw.url}/pagamento/{uuid.uuid4()}").status_code == 404


def test_return_from_the_node(gw: Any) -> None:
    ente = create_ente(gw.db)
    answer = invia(gw, ente, dovuti(item()), enteSILInviaRispostaPagamentoUrl="https://ente.test/back?x=1")
    landing(answer.url)
    back = landing(f"{gw.url}/pagamento/{answer.idSession}/esito?esito=ok")
    assert back.status_code == 302
    target = urlsplit(back.headers["Location"])
    assert (target.netloc, target.path) == ("ente.test", "/back")
    assert parse_qs(target.query) == {"x": ["1"], "idSession": [answer.idSession], "esito": ["OK"]}
    assert cart_row(gw, answer.idSession).state == "PAGAM_IN_CORSO"  # a return is never proof of payment
    back = landing(f"{gw.url}/pagamento/{answer.idSession}/esito?esito=cancel")
    assert parse_qs(urlsplit(back.headers["Location"]).query)["esito"] == ["ANNULLATO"]
    assert cart_row(gw, answer.idSession).state == "ABORT"
    assert fault_code(pagati_of(gw, ente, answer.idSession)) == "PAA_PAGAMENTO_ANNULLATO"
    assert landing(answer.url).status_code == 410

    plain = invia(gw, ente, dovuti(item()))
    page = landing(f"{gw.url}/pagamento/{plain.idSession}/esito?esito=error")
    assert page.status_code == 200 and "non è andato a buon fine" in page.text


def test_legacy_rpt_cart(gw: Any, node: FakeNode) -> None:
    ente = create_ente(gw.db)
    with gw.db.transaction() as session:
        session.scalar(select(Ente).where(Ente.cod_ipa == ente.cod_ipa)).payment_model = "rpt"
    refused = invia(gw, ente, dovuti(item()))
    node.replies["/NodoPerPa"] = lambda _b: (200, {}, rpt_answer("KO", fault="PPT_SEMANTICA"))
    assert landing(refused.url).status_code == 502
    carrello = cart_row(gw, refused.idSession)
    assert carrello.state == "PREDISPOSTO" and all(d.state == "INSERIMENTO_DOVUTO" for d in carrello.dovuti)
    with gw.db.transaction() as session:
        [attempt] = session.scalars(select(PaymentAttempt).where(PaymentAttempt.carrello_id == carrello.id)).all()
        assert attempt.state == "REFUSED" and attempt.rpt_xml

    node.reset()
    answer = invia(gw, ente, dovuti(item(), item(tipo="MENSA")))
    response = landing(answer.url)
    assert response.status_code == 302 and response.headers["Location"] == WISP_PAGE
    carrello = cart_row(gw, answer.idSession)
    assert carrello.state == "PAGAM_IN_CORSO" and carrello.node_cart_id
    assert all(d.state == "PAGAMENTO_INIZIATO" for d in carrello.dovuti)
    with gw.db.transaction() as session:
        attempts = session.scalars(select(PaymentAttempt).where(PaymentAttempt.carrello_id == carrello.id)).all()
        assert {(a.model, a.state) for a in attempts} == {("rpt", "STARTED")}
        assert sorted(a.iuv for a in attempts) == sorted(d.iuv for d in carrello.dovuti)
        assert all(a.ccp and a.request_message_id and b"<RPT" in a.rpt_xml for a in attempts)
    # The node accepted the cart already: reopening goes back to its page without a second nodoInviaCarrelloRPT.
    sent = len(node.requests)
    assert landing(answer.url).headers["Location"] == WISP_PAGE and len(node.requests) == sent


# --- InviaCarrello, VerificaAvviso ----------------------------------------------------------------------------------

def test_invia_carrello_two_enti(gw: Any, node: FakeNode) -> None:
    owner, other = create_ente(gw.db), create_ente(gw.db)
    elements = [
        {"codIpaEnte": owner.cod_ipa, "password": owner.password, "dovuti": dovuti(item(), item(tipo="MENSA"))},
        # MyPay's per-element hash, accepted because the gateway runs with a cart-hash secret.
        {"codIpaEnte": other.cod_ipa, "password": mypay_cart_hash(CART_SECRET, other.fiscal_code).upper(),
         "dovuti": dovuti(item(amount="3.00"))},
    ]
    answer = service(gw).paaSILInviaCarrelloDovuti(password=owner.password,
                                                   listaDovuti={"elementoListaDovuti": elements},
                                                   _soapheaders=header(owner.cod_ipa))
    assert (fault_code(answer), answer.esito, answer.redirect) == (None, "OK", 1)
    carrello = cart_row(gw, answer.idSessionCarrello)
    assert carrello.kind == "ESTERNO_ANONIMO_MULTIENTE" and len(carrello.dovuti) == 3
    assert landing(answer.url).status_code == 302
    assert {n["fiscalCode"] for n in node.carts()[-1]["paymentNotices"]} == {owner.fiscal_code, other.fiscal_code}

    esito = service(gw).paaSILChiediEsitoCarrelloDovuti(codIpaEnte=owner.cod_ipa, password=owner.password,
                                                        idSessionCarrello=answer.idSessionCarrello)
    assert [(r.codIpaEnte, r.esito) for r in esito.listaCarrelli.rispostaCarrello] == \
        [(owner.cod_ipa, "Pagamento in corso"), (other.cod_ipa, "Pagamento in corso")]
    mine = service(gw).paaSILChiediEsitoCarrelloDovuti(codIpaEnte=other.cod_ipa, password=other.password,
                                                       idSessionCarrello=answer.idSessionCarrello)
    assert [r.codIpaEnte for r in mine.listaCarrelli.rispostaCarrello] == [other.cod_ipa]
    stranger = create_ente(gw.db)
    refused = service(gw).paaSILChiediEsitoCarrelloDovuti(codIpaEnte=stranger.cod_ipa, password=stranger.password,
                                                          idSessionCarrello=answer.idSessionCarrello)
    assert fault_code(refused) == "PAA_ID_SESSION_NON_VALIDO" and refused.listaCarrelli is None

    for ente in (owner, other):
        with gw.db.transaction() as session:
            ids = session.scalars(select(Dovuto.id).join(Ente, Ente.id == Dovuto.ente_id)
                                  .where(Dovuto.carrello_id == carrello.id, Ente.cod_ipa == ente.cod_ipa)).all()
        for dovuto_id in ids:
            pay(gw, ente, dovuto_id)
    esito = service(gw).paaSILChiediEsitoCarrelloDovuti(codIpaEnte=owner.cod_ipa, password=owner.password,
                                                        idSessionCarrello=answer.idSessionCarrello)
    shares = esito.listaCarrelli.rispostaCarrello
    assert [r.esito for r in shares] == ["Pagato", "Pagato"]
    totals = [etree.fromstring(decode_twice(r.pagati)).findtext(f"{{{NS}}}datiPagamento/{{{NS}}}importoTotalePagato")
              for r in shares]
    assert totals == ["20.00", "3.00"]


def test_multi_beneficiary_cart(gw: Any) -> None:
    ente = create_ente(gw.db)
    element = {"codIpaEnte": ente.cod_ipa, "password": ente.password, "dovuti": dovuti(item())}
    answer = service(gw).paaSILInviaCarrelloDovuti(
        password=ente.password, listaDovuti={"elementoListaDovuti": [element]},
        listaDovutiEntiSecondari={"elementoListaDovutiEntiSecondari": [{"dovutiEntiSecondari": secondario()}]},
        _soapheaders=header(ente.cod_ipa))
    assert fault_code(answer) is None
    [dovuto] = cart_row(gw, answer.idSessionCarrello).dovuti
    assert dovuto.secondary["fiscal_code"] == "80000000002" and Decimal(dovuto.secondary["amount"]) == Decimal("5.00")


def test_verifica_avviso(gw: Any, node: FakeNode) -> None:
    ente = create_ente(gw.db)
    first = invia(gw, ente, dovuti(item()))
    [dovuto] = cart_row(gw, first.idSession).dovuti
    answer = service(gw).paaSILVerificaAvviso(password=ente.password, identificativoUnivocoVersamento=dovuto.iuv,
                                              _soapheaders=header(ente.cod_ipa))
    assert (fault_code(answer), answer.esito) == (None, "OK")
    carrello = cart_row(gw, answer.idSession)
    assert carrello.kind == "AVVISO_ANONIMO_ENTE" and [d.id for d in carrello.dovuti] == [dovuto.id]
    unknown = service(gw).paaSILVerificaAvviso(password=ente.password, identificativoUnivocoVersamento="01999",
                                               _soapheaders=header(ente.cod_ipa))
    assert (fault_code(unknown), unknown.esito) == ("PAA_IUV_NON_VALIDO", "KO")
    response = landing(f"{gw.url}/pagamento/avviso?ente={ente.cod_ipa}&iuv={dovuto.iuv}")
    assert response.status_code == 302 and node.carts()[-1]["paymentNotices"][0]["noticeNumber"] == \
        dovuto.notice_number
    assert landing(f"{gw.url}/pagamento/avviso?ente={ente.cod_ipa}&iuv=0123").status_code == 404


# --- faults ----------------------------------------------------------------------------------------------------------

BOLLO = ("<datiMarcaBolloDigitale><tipoBollo>01</tipoBollo><hashDocumento>{h}</hashDocumento>"
         "<provinciaResidenza>RM</provinciaResidenza></datiMarcaBolloDigitale>")
BILANCIO = ("<bilancio><capitolo><codCapitolo>C1</codCapitolo><accertamento><importo>4.00</importo></accertamento>"
            "</capitolo></bilancio>")

INVIA_DOVUTI_FAULTS = [
    ("xml", b"<Dovuti/>", "PAA_XML_NON_VALIDO"),
    ("iuv", dovuti(item(), iuv="010000000000123"), "PAA_IUV_NON_VALIDO"),
    ("tipo_versamento", dovuti(item(), tipo_versamento="XYZ"), "PAA_TIPO_VERSAMENTO_NON_VALIDO"),
    ("cf", dovuti(item(), payer_code="RSSMRA80A01H501X"), "PAA_CODICE_FISCALE_NON_VALIDO"),
    ("anonimo", dovuti(item(), payer_code="ANONIMO"), "PAA_CODICE_FISCALE_NON_VALIDO"),
    ("piva", dovuti(item(), payer_type="G", payer_code="12345678901"), "PAA_P_IVA_NON_VALIDO"),
    ("iud", dovuti(item("000123")), "PAA_IUD_NON_VALIDO"),
    ("tipo", dovuti(item(tipo="NOPE")), "PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_VALIDO"),
    ("tipo_off", dovuti(item(tipo="OFF")), "PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_ABILITATO"),
    ("bollo_amount", dovuti(item(tipo="MARCA_BOLLO_DIGITALE", amount="2.00", extra=BOLLO.format(h="abc"))),
     "PAA_IMPORTO_MARCA_BOLLO_DIGITALE_NON_VALIDA"),
    ("bollo_data", dovuti(item(extra=BOLLO.format(h="abc"))), "PAA_MARCA_BOLLO_DIGITALE_NON_VALIDA"),
    # PAA_DATI_SPECIFICI_RISCOSSIONE_NON_VALIDO cannot be reached over SOAP: the XSD has MyPay's very pattern.
    ("dsr", dovuti(item(dsr="7/abc")), "PAA_XML_NON_VALIDO"),
    ("amount", dovuti(item(amount="0.00")), "PAA_XML_NON_VALIDO"),  # likewise: the XSD refuses 0.00 first
    ("bilancio", dovuti(item(amount="5.00", extra=BILANCIO)), "PAA_IMPORTO_BILANCIO_NON_VALIDO"),
    ("causale", dovuti(item(causale=" ")), "PAA_CAUSALE_NON_PRESENTE"),
]


@pytest.fixture
def faulty_ente(gw: Any) -> Any:
    ente = create_ente(gw.db, tipi=("TARI", "OFF"))
    with gw.db.transaction() as session:
        set_tipo_dovuto_enabled(session, ente.cod_ipa, "OFF", False)
        add_tipo_dovuto(session, ente.cod_ipa, "MARCA_BOLLO_DIGITALE", "Bollo", None, fixed_amount=Decimal("16.00"))
    return ente


def test_invia_dovuti_faults(gw: Any, faulty_ente: Any) -> None:
    ente = faulty_ente
    for name, data, code in INVIA_DOVUTI_FAULTS:
        answer = invia(gw, ente, data)
        assert (name, fault_code(answer), answer.esito, answer.idSession) == (name, code, "KO", None)
        assert answer.fault.id == ente.cod_ipa
    # duplicate IUD: persisted by a first call
    iud = "DUP-" + uuid.uuid4().hex[:8]
    assert fault_code(invia(gw, ente, dovuti(item(iud)))) is None
    assert fault_code(invia(gw, ente, dovuti(item(iud)))) == "PAA_IUD_DUPLICATO"
    # showMyPay NONE needs a complete payer
    assert fault_code(invia(gw, ente, dovuti(item(), email=""), showMyPay="NONE")) == "PAA_ANAGRAFICA_NON_VALIDA"
    # credentials and ente state
    assert fault_code(invia(gw, ente, dovuti(item()), password="Wrong-password-1")) == "PAA_ENTE_NON_VALIDO"
    ghost = type(ente)("C_NOPE" + uuid.uuid4().hex[:4].upper(), "80000000000", "x" * 10, "")
    assert fault_code(invia(gw, ghost, dovuti(item()))) == "PAA_ENTE_NON_VALIDO"
    inserito = create_ente(gw.db, state="INSERITO")
    assert fault_code(invia(gw, inserito, dovuti(item()))) == "PAA_STATO_ENTE_NON_VALIDO"
    with gw.db.transaction() as session:  # nothing was written by the refused calls
        ente_id = session.scalar(select(Ente.id).where(Ente.cod_ipa == ente.cod_ipa))
        assert len(session.scalars(select(Dovuto).where(Dovuto.ente_id == ente_id)).all()) == 1


def test_invia_carrello_faults(gw: Any) -> None:
    owner, other = create_ente(gw.db), create_ente(gw.db)

    def call(elements: list[dict], secondari: list[bytes] | None = None, password: str | None = None) -> Any:
        extra = {"listaDovutiEntiSecondari": {"elementoListaDovutiEntiSecondari": [
            {"dovutiEntiSecondari": s} for s in secondari]}} if secondari else {}
        return service(gw).paaSILInviaCarrelloDovuti(password=password or owner.password,
                                                     listaDovuti={"elementoListaDovuti": elements},
                                                     _soapheaders=header(owner.cod_ipa), **extra)

    def el(ente: Any, data: bytes | None = None, password: str | None = None) -> dict:
        return {"codIpaEnte": ente.cod_ipa, "password": password or ente.password, "dovuti": data or dovuti(item())}

    assert fault_code(call([el(owner)], password="Wrong-password-1")) == "PAA_ENTE_NON_VALIDO"
    ghost = type(owner)("C_GHOST" + uuid.uuid4().hex[:4].upper(), "80000000000", "Whatever-1", "")
    # credentials are checked before any document is read: an invalid document does not matter here
    assert fault_code(call([el(owner), el(ghost, b"<junk/>")])) == "PAA_ENTE_NON_VALIDO"
    assert fault_code(call([el(owner), el(other, b"<junk/>", password="0" * 64)])) == "PAA_ENTE_NON_VALIDO"
    iud = "DUP-" + uuid.uuid4().hex[:8]
    duplicate = call([el(owner, dovuti(item(iud))), el(owner, dovuti(item(iud)))])
    assert (fault_code(duplicate), duplicate.fault.faultString) == ("PAA_IUD_DUPLICATO",
                                                                   f"IUD [{iud}] duplicato in input per ente")
    assert fault_code(call([el(owner, dovuti(item(tipo="NOPE")))])) == "PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_VALIDO"
    assert fault_code(call([el(other, b"<Dovuti/>")])) == "PAA_XML_NON_VALIDO"
    six = call([el(owner, dovuti(item(), item(), item())), el(other, dovuti(item(), item(), item()))])
    assert fault_code(six) == "PAA_XML_NON_VALIDO" and "5" in six.fault.description
    assert fault_code(call([el(owner), el(other)], [secondario()])) == "PAA_LIMITE_MASSIMO_DOVUTI_MULTIBENEFICIARI"
    assert fault_code(call([el(owner, dovuti(item(), item()))], [secondario()])) == \
        "PAA_LIMITE_MASSIMO_DOVUTI_MULTIBENEFICIARI"
    assert fault_code(call([el(owner)], [secondario(), secondario()])) == "PAA_LIMITE_MASSIMO_DOVUTI_ENTI_SECONDARI"
    assert fault_code(call([el(owner)], [b"<DovutiEntiSecondari/>"])) == "PAA_XML_NON_VALIDO"
    assert fault_code(call([el(owner)], [secondario(iban="IT00X0000000000000000000000")])) == \
        "PAA_ENTE_SECONDARIO_NON_VALIDO"


def test_queries_never_leak_another_entes_data(gw: Any) -> None:
    ente, stranger = create_ente(gw.db), create_ente(gw.db)
    answer = invia(gw, ente, dovuti(item()))
    svc = service(gw)
    wrong = svc.paaSILChiediPagati(codIpaEnte=ente.cod_ipa, password="Wrong-password-1", idSession=answer.idSession)
    assert (fault_code(wrong), wrong.pagati) == ("PAA_ENTE_NON_VALIDO", None)
    unknown = svc.paaSILChiediPagati(codIpaEnte="C_UNKNOWN", password="x", idSession=answer.idSession)
    assert fault_code(unknown) == "PAA_ENTE_NON_VALIDO"
    theirs = svc.paaSILChiediPagati(codIpaEnte=stranger.cod_ipa, password=stranger.password,
                                    idSession=answer.idSession)
    assert (fault_code(theirs), theirs.pagati) == ("PAA_ID_SESSION_NON_VALIDO", None)
    assert theirs.fault.id == stranger.cod_ipa
    theirs = svc.paaSILChiediPagatiConRicevuta(codIpaEnte=stranger.cod_ipa, password=stranger.password,
                                               idSession=answer.idSession)
    assert (fault_code(theirs), theirs.pagati, theirs.rt) == ("PAA_ID_SESSION_NON_VALIDO", None, None)
    two_keys = svc.paaSILChiediPagatiConRicevuta(codIpaEnte=ente.cod_ipa, password=ente.password,
                                                 idSession=answer.idSession, identificativoUnivocoDovuto="X")
    assert fault_code(two_keys) == "PAA_SYSTEM_ERROR"
    no_key = svc.paaSILChiediPagatiConRicevuta(codIpaEnte=ente.cod_ipa, password=ente.password)
    assert fault_code(no_key) == "PAA_SYSTEM_ERROR"
    assert fault_code(svc.paaSILChiediPagatiConRicevuta(codIpaEnte=ente.cod_ipa, password=ente.password,
                                                        identificativoUnivocoDovuto="NOPE")) == "PAA_IUD_NON_VALIDO"
    [dovuto] = cart_row(gw, answer.idSession).dovuti
    not_started = svc.paaSILChiediPagatiConRicevuta(codIpaEnte=ente.cod_ipa, password=ente.password,
                                                    identificativoUnivocoVersamento=dovuto.iuv)
    assert fault_code(not_started) == "PAA_PAGAMENTO_NON_INIZIATO"
    storico = svc.paaSILChiediStoricoPagamenti(
        password=ente.password, codIpaEnte=ente.cod_ipa, dataFrom="2030-01-02T00:00:00", dataTo="2030-01-01T00:00:00",
        identificativoUnivocoPersonaFG={"tipoIdentificativoUnivoco": "F", "codiceIdentificativoUnivoco": CF})
    assert fault_code(storico) == "PAA_INTERVALLO_DATE_NON_VALIDO"
    storico = svc.paaSILChiediStoricoPagamenti(
        password=stranger.password, codIpaEnte=ente.cod_ipa, dataFrom="2020-01-01T00:00:00",
        identificativoUnivocoPersonaFG={"tipoIdentificativoUnivoco": "F", "codiceIdentificativoUnivoco": CF})
    assert fault_code(storico) == "PAA_ENTE_NON_VALIDO"
