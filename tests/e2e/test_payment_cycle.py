"""The whole payment life-cycle over HTTP, as the two real counterparts drive it.

An ente client (zeep from MyPay's reference WSDL) sends dovuti; a client acting as the pagoPA node (zeep from
pagoPA's reference paForNode WSDL) verifies, gets and pays each notice with a receipt; the ente client reads
the outcome and a Pagati document that validates against the reference schema. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import uuid
from decimal import Decimal
from typing import Any

import pytest
import requests
import zeep
from lxml import etree
from sqlalchemy import select

from gateway.payments import states

from storage.models import Carrello, Dovuto, Ente, Receipt
from tests.conftest import REFERENCE, DemoEnte, create_ente

ENTE_BINDING = "{http://www.regione.veneto.it/pagamenti/ente/PagamentiTelematiciDovutiPagati}" \
               "PagamentiTelematiciDovutiPagatiBinding"
NODE_BINDING = "{http://pagopa-api.pagopa.gov.it/paForNode}paForNodeBinding"
PAY_I = "http://www.regione.veneto.it/schemas/2012/Pagamenti/Ente/"
CF = "RSSMRA80A01H501U"
STATION = {"idBrokerPA": "99999000013", "idStation": "99999000013_01"}


@pytest.fixture
def ente_client(gateway) -> Any:
    client = zeep.Client(str(REFERENCE / "mypay/wsdl/pa-per-ente.wsdl"))
    return client.create_service(ENTE_BINDING, gateway.url + "/ente/PagamentiTelematiciDovutiPagati")


@pytest.fixture
def node_client(gateway) -> Any:
    client = zeep.Client(str(REFERENCE / "pagopa/wsdl/paForNode.wsdl"))
    binding = next(iter(client.wsdl.bindings))
    return client.create_service(binding, gateway.url + "/pa/paForNode")


@pytest.fixture(scope="module")
def pagati_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(REFERENCE / "mypay/wsdl/PagInf_Dovuti_Pagati_6_2_0.xsd")))


def dovuti_document(*amounts: str, tipo: str = "TARI") -> bytes:
    items = "".join(
        f"<datiSingoloVersamento><identificativoUnivocoDovuto>IUD-{uuid.uuid4().hex[:16]}</identificativoUnivocoDovuto>"
        f"<importoSingoloVersamento>{amount}</importoSingoloVersamento>"
        f"<identificativoTipoDovuto>{tipo}</identificativoTipoDovuto><causaleVersamento>Tassa rifiuti {i}"
        f"</causaleVersamento><datiSpecificiRiscossione>9/0101100IM/</datiSpecificiRiscossione>"
        f"</datiSingoloVersamento>" for i, amount in enumerate(amounts))
    return (f'<Dovuti xmlns="{PAY_I}"><versioneOggetto>6.2.0</versioneOggetto><soggettoPagatore>'
            f"<identificativoUnivocoPagatore><tipoIdentificativoUnivoco>F</tipoIdentificativoUnivoco>"
            f"<codiceIdentificativoUnivoco>{CF}</codiceIdentificativoUnivoco></identificativoUnivocoPagatore>"
            f"<anagraficaPagatore>Mario Rossi</anagraficaPagatore></soggettoPagatore><datiVersamento>"
            f"<tipoVersamento>ALL</tipoVersamento>{items}</datiVersamento></Dovuti>").encode()


def notices_of(gateway_db, id_session: str) -> list[tuple[str, str, Decimal]]:
    """(ente fiscal code, notice number, amount) of every dovuto of a session: what the payer's page shows."""
    with gateway_db.transaction() as session:
        carrello = session.scalar(select(Carrello).where(Carrello.id_session == id_session))
        rows = session.scalars(select(Dovuto).where(Dovuto.carrello_id == carrello.id).order_by(Dovuto.id)).all()
        return [(session.get(Ente, d.ente_id).fiscal_code, d.notice_number, d.amount) for d in rows]


def pay_as_the_node(node_client: Any, fiscal_code: str, notice_number: str, receipt_id: str | None = None) -> str:
    """verify -> getPaymentV2 -> paSendRTV2, building the receipt from what the gateway answered."""
    qr = {"fiscalCode": fiscal_code, "noticeNumber": notice_number}
    verify = node_client.paVerifyPaymentNotice(idPA=fiscal_code, qrCode=qr, **STATION)
    assert verify["outcome"] == "OK", verify["fault"]
    data = node_client.paGetPaymentV2(idPA=fiscal_code, qrCode=qr, **STATION)
    assert data["outcome"] == "OK", data["fault"]
    payment = data["data"]
    assert payment["paymentAmount"] == verify["paymentList"]["paymentOptionDescription"]["amount"]
    receipt_id = receipt_id or uuid.uuid4().hex
    transfers = [{"idTransfer": t["idTransfer"], "transferAmount": t["transferAmount"],
                  "fiscalCodePA": t["fiscalCodePA"], "IBAN": t["IBAN"],
                  "remittanceInformation": t["remittanceInformation"], "transferCategory": t["transferCategory"]}
                 for t in payment["transferList"]["transfer"]]
    receipt = {"receiptId": receipt_id, "noticeNumber": notice_number, "fiscalCode": fiscal_code, "outcome": "OK",
               "creditorReferenceId": payment["creditorReferenceId"], "paymentAmount": payment["paymentAmount"],
               "description": payment["description"], "companyName": payment["companyName"],
               "debtor": payment["debtor"], "transferList": {"transfer": transfers}, "idPSP": "SIMPSP01",
               "PSPCompanyName": "PSP Simulato", "idChannel": "SIMPSP01_01", "channelDescription": "app",
               "paymentMethod": "CP", "fee": Decimal("1.00")}
    sent = node_client.paSendRTV2(idPA=fiscal_code, receipt=receipt, **STATION)
    assert sent["outcome"] == "OK", sent["fault"]
    return receipt_id


def decode_twice(value: bytes) -> bytes:
    """MyPay sends Pagati base64-encoded twice (wire-traps 2): zeep decodes once, the client once more."""
    return base64.b64decode(value)


def test_single_dovuto_from_sending_to_pagati(gateway, gateway_db, ente, ente_client, node_client, pagati_schema):
    sent = ente_client.paaSILInviaDovuti(password=ente.password, dovuti=dovuti_document("120.50"),
                                         enteSILInviaRispostaPagamentoUrl="https://portale.example/esito",
                                         _soapheaders={"header": {"codIpaEnte": ente.cod_ipa}})
    assert sent["esito"] == "OK" and sent["fault"] is None
    assert sent["url"].startswith(gateway.url + "/pagamento/") and sent["redirect"] == 1
    id_session = sent["idSession"]

    before = ente_client.paaSILChiediPagati(codIpaEnte=ente.cod_ipa, password=ente.password, idSession=id_session)
    assert before["fault"]["faultCode"] == "PAA_PAGAMENTO_NON_INIZIATO"

    [(fiscal_code, notice, amount)] = notices_of(gateway_db, id_session)
    assert fiscal_code == ente.fiscal_code and len(notice) == 18 and amount == Decimal("120.50")
    receipt_id = pay_as_the_node(node_client, fiscal_code, notice)

    answer = ente_client.paaSILChiediPagati(codIpaEnte=ente.cod_ipa, password=ente.password, idSession=id_session)
    assert answer["fault"] is None
    pagati = etree.fromstring(decode_twice(answer["pagati"]))
    pagati_schema.assertValid(pagati)
    ns = {"p": PAY_I}
    assert pagati.findtext("p:datiPagamento/p:codiceEsitoPagamento", namespaces=ns) == "0"
    assert Decimal(pagati.findtext("p:datiPagamento/p:importoTotalePagato", namespaces=ns)) == Decimal("120.50")
    assert pagati.findtext("p:datiPagamento/p:datiSingoloPagamento/p:identificativoUnivocoRiscossione",
                           namespaces=ns) == receipt_id

    with_receipt = ente_client.paaSILChiediPagatiConRicevuta(codIpaEnte=ente.cod_ipa, password=ente.password,
                                                             idSession=id_session)
    assert with_receipt["fault"] is None and receipt_id.encode() in with_receipt["rt"]
    pagati_schema.assertValid(etree.fromstring(decode_twice(with_receipt["pagati"])))


def test_cart_of_three_dovuti_of_two_enti(gateway, gateway_db, ente, ente_client, node_client, pagati_schema):
    other: DemoEnte = create_ente(gateway_db)
    elements = [{"codIpaEnte": ente.cod_ipa, "password": ente.password, "dovuti": dovuti_document("10.00", "20.00")},
                {"codIpaEnte": other.cod_ipa, "password": other.password, "dovuti": dovuti_document("30.00")}]
    sent = ente_client.paaSILInviaCarrelloDovuti(password=ente.password, listaDovuti={"elementoListaDovuti": elements},
                                                 _soapheaders={"header": {"codIpaEnte": ente.cod_ipa}})
    assert sent["esito"] == "OK", sent["fault"]
    id_cart = sent["idSessionCarrello"]
    notices = notices_of(gateway_db, id_cart)
    assert sorted(n[0] for n in notices) == sorted([ente.fiscal_code, ente.fiscal_code, other.fiscal_code])

    for fiscal_code, notice, _amount in notices:
        pay_as_the_node(node_client, fiscal_code, notice)

    outcome = ente_client.paaSILChiediEsitoCarrelloDovuti(codIpaEnte=ente.cod_ipa, password=ente.password,
                                                          idSessionCarrello=id_cart)
    assert outcome["fault"] is None
    answers = outcome["listaCarrelli"]["rispostaCarrello"]
    assert {a["codIpaEnte"] for a in answers} == {ente.cod_ipa, other.cod_ipa}
    for answer in answers:
        assert answer["esito"] == "Pagato"
        pagati_schema.assertValid(etree.fromstring(decode_twice(answer["pagati"])))
        assert answer["rt"]


def test_annulled_and_expired_notices_are_refused_to_the_node(gateway, gateway_db, ente, ente_client, node_client):
    header = {"header": {"codIpaEnte": ente.cod_ipa}}
    versamento = (f'<Versamento xmlns="{PAY_I}"><versioneOggetto>6.2.0</versioneOggetto><soggettoPagatore>'
                  f"<identificativoUnivocoPagatore><tipoIdentificativoUnivoco>F</tipoIdentificativoUnivoco>"
                  f"<codiceIdentificativoUnivoco>{CF}</codiceIdentificativoUnivoco></identificativoUnivocoPagatore>"
                  f"<anagraficaPagatore>Mario Rossi</anagraficaPagatore></soggettoPagatore><datiVersamento>"
                  f"<identificativoUnivocoDovuto>{{iud}}</identificativoUnivocoDovuto>"
                  f"<importoSingoloVersamento>15.00</importoSingoloVersamento>"
                  f"<identificativoTipoDovuto>TARI</identificativoTipoDovuto><causaleVersamento>TARI</causaleVersamento>"
                  f"<datiSpecificiRiscossione>9/0101100IM/</datiSpecificiRiscossione></datiVersamento>"
                  f"<azione>{{azione}}</azione></Versamento>")
    iud = "IUD-" + uuid.uuid4().hex[:12]
    created = ente_client.paaSILImportaDovuto(password=ente.password, flagGeneraIuv=True,
                                              dovuto=versamento.format(iud=iud, azione="I").encode(),
                                              _soapheaders=header)
    assert created["esito"] == "OK", created["fault"]
    iuv = created["identificativoUnivocoVersamento"]
    notice = "3" + iuv
    qr = {"fiscalCode": ente.fiscal_code, "noticeNumber": notice}
    assert node_client.paVerifyPaymentNotice(idPA=ente.fiscal_code, qrCode=qr, **STATION)["outcome"] == "OK"

    annulled = ente_client.paaSILImportaDovuto(password=ente.password, flagGeneraIuv=False,
                                               dovuto=versamento.format(iud=iud, azione="A").encode(),
                                               _soapheaders=header)
    assert annulled["esito"] == "OK", annulled["fault"]
    answer = node_client.paVerifyPaymentNotice(idPA=ente.fiscal_code, qrCode=qr, **STATION)
    assert answer["outcome"] == "KO" and answer["fault"]["faultCode"] == "PAA_PAGAMENTO_ANNULLATO"

    # Expired: the position's due date passed and the gateway's expiry sweep moved it to SCADUTO.
    iud2 = "IUD-" + uuid.uuid4().hex[:12]
    created = ente_client.paaSILImportaDovuto(password=ente.password, flagGeneraIuv=True,
                                              dovuto=versamento.format(iud=iud2, azione="I").encode(),
                                              _soapheaders=header)
    with gateway_db.transaction() as session:
        dovuto = session.scalar(select(Dovuto).where(Dovuto.iud == iud2))
        states.move_dovuto(session, dovuto, states.SCADUTO, reason="test: due date passed", actor="test")
    qr2 = {"fiscalCode": ente.fiscal_code, "noticeNumber": "3" + created["identificativoUnivocoVersamento"]}
    for call in (node_client.paVerifyPaymentNotice, node_client.paGetPaymentV2):
        answer = call(idPA=ente.fiscal_code, qrCode=qr2, **STATION)
        assert answer["outcome"] == "KO" and answer["fault"]["faultCode"] == "PAA_PAGAMENTO_SCADUTO"


def test_duplicated_receipt_is_stored_once_and_acknowledged_twice(gateway, gateway_db, ente, ente_client,
                                                                  node_client):
    sent = ente_client.paaSILInviaDovuti(password=ente.password, dovuti=dovuti_document("9.99"),
                                         _soapheaders={"header": {"codIpaEnte": ente.cod_ipa}})
    [(fiscal_code, notice, _)] = notices_of(gateway_db, sent["idSession"])
    receipt_id = pay_as_the_node(node_client, fiscal_code, notice)
    # The node re-sends the same receipt (it retries up to 48 times when it did not get our answer).
    with gateway_db.transaction() as session:
        stored = session.scalar(select(Receipt).where(Receipt.receipt_id == receipt_id))
        raw = stored.raw
    # Sent again by hand, byte for byte as stored: an identical re-delivery.
    envelope = (f'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
                f'xmlns:pafn="http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd"><soapenv:Body>'
                f"<pafn:paSendRTV2Request><idPA>{fiscal_code}</idPA><idBrokerPA>99999000013</idBrokerPA>"
                f"<idStation>99999000013_01</idStation>{raw.decode()}</pafn:paSendRTV2Request>"
                f"</soapenv:Body></soapenv:Envelope>").encode()
    again = requests.post(gateway.url + "/pa/paForNode", data=envelope, headers={"Content-Type": "text/xml"})
    assert again.status_code == 200 and b"<outcome>OK</outcome>" in again.content
    with gateway_db.transaction() as session:
        rows = session.scalars(select(Receipt).where(Receipt.receipt_id == receipt_id)).all()
        assert len(rows) == 1 and rows[0].deliveries == 2
