"""The simulated node for PSPs (/sim/nodeForPsp) driven by a zeep client of the reference nodeForPsp.wsdl,
the counter payment of the control API and of ``ente-gateway sim pay``: each ends with the position
COMPLETATO in the gateway's database, or with the node's PPT_* fault.
"""

from __future__ import annotations

import re
import time
from datetime import date
from typing import Any, Iterator

import pytest
import requests
import zeep
from zeep.transports import Transport

from tests.conftest import BACKENDS, REFERENCE, RunningGateway
from tests.e2e.test_simulator_checkout import (dovuto_state, gateway_receipts, make_notice, new_ente, set_scenario,
                                               sim, sim_receipts, start_sim_gateway, wait_for)

WSDL = REFERENCE / "pagopa" / "wsdl" / "nodeForPsp.wsdl"
BINDING = "{http://pagopa-api.pagopa.gov.it/nodeForPsp}nodeForPspBinding"
PSP = {"idPSP": "SIMPSP01", "idBrokerPSP": "SIMPSP01", "idChannel": "SIMPSP01_01", "password": "simpsp0101"}

pytestmark = pytest.mark.skipif(not WSDL.is_file(), reason="reference nodeForPsp.wsdl not available")


@pytest.fixture(scope="module", params=BACKENDS)
def sim_gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RunningGateway:
    return start_sim_gateway(request, tmp_path_factory)


@pytest.fixture(autouse=True)
def _clear_scenarios(sim_gateway: RunningGateway) -> Iterator[None]:
    yield
    requests.post(sim(sim_gateway, "/api/scenario"), json={"name": "clear"}, timeout=10)


@pytest.fixture(scope="module")
def node(sim_gateway: RunningGateway) -> Any:
    client = zeep.Client(str(WSDL), transport=Transport(timeout=30, operation_timeout=30))
    return client.create_service(BINDING, sim(sim_gateway, "/nodeForPsp"))


def qr(fiscal_code: str, notice_number: str) -> dict[str, str]:
    return {"fiscalCode": fiscal_code, "noticeNumber": notice_number}


def details() -> dict[str, Any]:
    today = date.today()
    return {"paymentMethod": "cash", "paymentChannel": "frontOffice", "fee": "1.50",
            "payer": {"uniqueIdentifier": {"entityUniqueIdentifierType": "F",
                                           "entityUniqueIdentifierValue": "RSSMRA80A01H501U"},
                      "fullName": "Mario Rossi"},
            "applicationDate": today, "transferDate": today}


def assert_fault(answer: Any, code: str) -> Any:
    assert answer.outcome == "KO", answer
    assert answer.fault.faultCode == code, answer.fault
    return answer.fault


def test_verify_activate_outcome_pays_the_notice_and_delivers_the_receipt(sim_gateway: RunningGateway,
                                                                          node: Any) -> None:
    ente = new_ente(sim_gateway)
    notice = make_notice(sim_gateway, ente, "20.50")
    verified = node.verifyPaymentNotice(**PSP, qrCode=qr(ente.fiscal_code, notice))
    assert verified.outcome == "OK" and verified.fault is None
    assert verified.paymentList.paymentOptionDescription[0].amount == pytest.approx(20.5)
    assert verified.fiscalCodePA == ente.fiscal_code

    activated = node.activatePaymentNoticeV2(**PSP, idempotencyKey="SIMPSP01_0123456789",
                                             qrCode=qr(ente.fiscal_code, notice), amount="20.50")
    assert activated.outcome == "OK" and re.fullmatch(r"[0-9a-f]{32}", activated.paymentToken)
    assert activated.creditorReferenceId == notice[1:] and str(activated.totalAmount) == "20.50"
    [transfer] = activated.transferList.transfer
    assert transfer.IBAN == "IT60X0542811101000000123456" and transfer.fiscalCodePA == ente.fiscal_code
    # The same idempotency key gives the same token; another activation meanwhile is refused.
    again = node.activatePaymentNoticeV2(**PSP, idempotencyKey="SIMPSP01_0123456789",
                                         qrCode=qr(ente.fiscal_code, notice), amount="20.50")
    assert again.paymentToken == activated.paymentToken
    assert_fault(node.activatePaymentNoticeV2(**PSP, qrCode=qr(ente.fiscal_code, notice), amount="20.50"),
                 "PPT_PAGAMENTO_IN_CORSO")

    closed = node.sendPaymentOutcomeV2(**PSP, paymentTokens={"paymentToken": [activated.paymentToken]},
                                       outcome="OK", details=details())
    assert closed.outcome == "OK" and closed.fault is None
    assert wait_for(lambda: dovuto_state(sim_gateway, notice) == "COMPLETATO")
    [(receipt_id, psp_id, amount, _)] = gateway_receipts(sim_gateway, ente.fiscal_code, notice[1:])
    assert (receipt_id, psp_id, str(amount)) == (activated.paymentToken, "SIMPSP01", "20.50")
    [receipt] = sim_receipts(sim_gateway, noticeNumber=notice)
    assert "<fee>1.50</fee>" in receipt["xml"] and "<paymentMethod>cash</paymentMethod>" in receipt["xml"]
    assert "<fullName>Mario Rossi</fullName>" in receipt["xml"].split("<payer>")[1]

    # Closed once: a second outcome, or a paid notice, are refused.
    assert_fault(node.sendPaymentOutcomeV2(**PSP, paymentTokens={"paymentToken": [activated.paymentToken]},
                                           outcome="OK", details=details()), "PPT_ESITO_GIA_ACQUISITO")
    fault = assert_fault(node.verifyPaymentNotice(**PSP, qrCode=qr(ente.fiscal_code, notice)),
                         "PPT_ERRORE_EMESSO_DA_PAA")
    assert fault.originalFaultCode == "PAA_PAGAMENTO_DUPLICATO" and fault.id == ente.fiscal_code


def test_version_1_operations(sim_gateway: RunningGateway, node: Any) -> None:
    ente = new_ente(sim_gateway)
    notice = make_notice(sim_gateway, ente, "7.00")
    activated = node.activatePaymentNotice(**PSP, qrCode=qr(ente.fiscal_code, notice), amount="7.00",
                                           expirationTime=60000)
    assert activated.outcome == "OK" and activated.transferList.transfer[0].IBAN
    closed = node.sendPaymentOutcome(**PSP, paymentToken=activated.paymentToken, outcome="OK",
                                     details={k: v for k, v in details().items()})
    assert closed.outcome == "OK"
    assert wait_for(lambda: dovuto_state(sim_gateway, notice) == "COMPLETATO")


@pytest.mark.parametrize("change, code", [
    ({"password": "wrongpass1"}, "PPT_AUTENTICAZIONE"),
    ({"idPSP": "NOPSP"}, "PPT_PSP_SCONOSCIUTO"),
    ({"idBrokerPSP": "NOBROKER"}, "PPT_INTERMEDIARIO_PSP_SCONOSCIUTO"),
    ({"idChannel": "SIMPSP01_99"}, "PPT_CANALE_SCONOSCIUTO"),
])
def test_registry_faults(sim_gateway: RunningGateway, node: Any, change: dict[str, str], code: str) -> None:
    fault = assert_fault(node.verifyPaymentNotice(**{**PSP, **change}, qrCode=qr("80000000001", "3" + "0" * 17)), code)
    assert fault.id == "NodoDeiPagamentiSPC" and fault.faultString


def test_token_faults_and_ko_outcome(sim_gateway: RunningGateway, node: Any) -> None:
    assert_fault(node.sendPaymentOutcomeV2(**PSP, paymentTokens={"paymentToken": ["0" * 32]}, outcome="OK",
                                           details=details()), "PPT_TOKEN_SCONOSCIUTO")
    ente = new_ente(sim_gateway)
    notice = make_notice(sim_gateway, ente)
    token = node.activatePaymentNoticeV2(**PSP, qrCode=qr(ente.fiscal_code, notice), amount="12.34").paymentToken
    other = {"idPSP": "ABI99999", "idBrokerPSP": "99999000102", "idChannel": "99999000102_01", "password": "bancasim01"}
    assert_fault(node.sendPaymentOutcomeV2(**other, paymentTokens={"paymentToken": [token]}, outcome="OK",
                                           details=details()), "PPT_TOKEN_SCONOSCIUTO")
    # KO: no receipt, and the notice can be activated again at once.
    assert node.sendPaymentOutcomeV2(**PSP, paymentTokens={"paymentToken": [token]}, outcome="KO").outcome == "OK"
    assert node.activatePaymentNoticeV2(**PSP, qrCode=qr(ente.fiscal_code, notice), amount="12.34").outcome == "OK"
    assert sim_receipts(sim_gateway, noticeNumber=notice) == []
    assert dovuto_state(sim_gateway, notice) == "INSERIMENTO_DOVUTO"


def test_late_outcome_after_token_expiry_still_sends_the_receipt(sim_gateway: RunningGateway, node: Any) -> None:
    ente = new_ente(sim_gateway)
    notice = make_notice(sim_gateway, ente)
    token = node.activatePaymentNoticeV2(**PSP, qrCode=qr(ente.fiscal_code, notice), amount="12.34",
                                         expirationTime=300).paymentToken
    time.sleep(0.5)
    assert_fault(node.sendPaymentOutcomeV2(**PSP, paymentTokens={"paymentToken": [token]}, outcome="OK",
                                           details=details()), "PPT_TOKEN_SCADUTO")
    assert wait_for(lambda: dovuto_state(sim_gateway, notice) == "COMPLETATO")


def test_envelope_errors(sim_gateway: RunningGateway) -> None:
    url = sim(sim_gateway, "/nodeForPsp")
    bad = requests.post(url, data=b"<not-xml", headers={"SOAPAction": '"verifyPaymentNotice"'}, timeout=10)
    assert bad.status_code == 200 and "<faultCode>PPT_SINTASSI_EXTRAXSD</faultCode>" in bad.text
    assert "verifyPaymentNoticeRes" in bad.text
    unknown = requests.post(url, data=b"<x/>", timeout=10)
    assert unknown.status_code == 500 and "PPT_SINTASSI_EXTRAXSD" in unknown.text
    # Hand-written envelope: odd prefixes, no header, tabs; password missing -> PPT_SINTASSI_XSD.
    body = ("<?xml version='1.0'?>\n<S:Envelope xmlns:S='http://schemas.xmlsoap.org/soap/envelope/'>\t<S:Body>"
            "<n:verifyPaymentNoticeReq xmlns:n='http://pagopa-api.pagopa.gov.it/node/nodeForPsp.xsd'>\n"
            "<idPSP>SIMPSP01</idPSP><idBrokerPSP>SIMPSP01</idBrokerPSP><idChannel>SIMPSP01_01</idChannel>"
            "<qrCode><fiscalCode>80000000001</fiscalCode><noticeNumber>301000000000000001</noticeNumber></qrCode>"
            "</n:verifyPaymentNoticeReq></S:Body></S:Envelope>")
    syntax = requests.post(url, data=body.encode(), timeout=10)
    assert "<faultCode>PPT_SINTASSI_XSD</faultCode>" in syntax.text and "<outcome>KO</outcome>" in syntax.text
    unsupported = requests.post(url, timeout=10, data=body.replace("verifyPaymentNoticeReq", "demandPaymentNoticeRequest")
                                .encode())
    assert "demandPaymentNoticeResponse" in unsupported.text and "PPT_SYSTEM_ERROR" in unsupported.text
    hostile = requests.post(url, data=b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', timeout=10)
    assert hostile.status_code == 500 and "PPT_SINTASSI_EXTRAXSD" in hostile.text


def test_station_timeout_gives_ppt_stazione_int_pa_timeout(sim_gateway: RunningGateway, node: Any) -> None:
    ente = new_ente(sim_gateway)
    notice = make_notice(sim_gateway, ente)
    set_scenario(sim_gateway, "station_timeout", seconds=0.0001)
    fault = assert_fault(node.verifyPaymentNotice(**PSP, qrCode=qr(ente.fiscal_code, notice)),
                         "PPT_STAZIONE_INT_PA_TIMEOUT")
    assert fault.id == "NodoDeiPagamentiSPC"
    assert node.verifyPaymentNotice(**PSP, qrCode=qr(ente.fiscal_code, notice)).outcome == "OK"  # used up
    assert dovuto_state(sim_gateway, notice) == "INSERIMENTO_DOVUTO"


def test_control_api_pay(sim_gateway: RunningGateway) -> None:
    ente = new_ente(sim_gateway)
    notice = make_notice(sim_gateway, ente, "99.90")
    result = requests.post(sim(sim_gateway, "/api/pay"), timeout=60,
                           json={"fiscalCode": ente.fiscal_code, "noticeNumber": notice, "psp": "POSTSIM1"}).json()
    assert result["ok"] and result["receipt"]["state"] == "DELIVERED" and result["receipt"]["gatewayAnswer"] == "OK"
    assert [s["operation"] for s in result["steps"]] == ["verifyPaymentNotice", "activatePaymentNoticeV2",
                                                         "sendPaymentOutcomeV2", "paSendRTV2"]
    assert dovuto_state(sim_gateway, notice) == "COMPLETATO"
    assert gateway_receipts(sim_gateway, ente.fiscal_code, notice[1:])[0][1] == "POSTSIM1"
    ko = requests.post(sim(sim_gateway, "/api/pay"), timeout=60,
                       json={"fiscalCode": ente.fiscal_code, "noticeNumber": notice}).json()
    assert not ko["ok"] and ko["fault"]["originalFaultCode"] == "PAA_PAGAMENTO_DUPLICATO"
    bad = requests.post(sim(sim_gateway, "/api/pay"), json={"fiscalCode": "1", "noticeNumber": notice}, timeout=10)
    assert bad.status_code == 400


def test_cli_sim_pay(sim_gateway: RunningGateway) -> None:
    ente = new_ente(sim_gateway)
    notice = make_notice(sim_gateway, ente)
    from click.testing import CliRunner

    from gateway.cli import main

    runner = CliRunner()
    env = {"ENTE_GATEWAY_SIMULATOR_URL": sim(sim_gateway, ""), "ENTE_GATEWAY_DATABASE_URL": sim_gateway.database_url}
    done = runner.invoke(main, ["sim", "pay", "--fiscal-code", ente.fiscal_code, "--notice-number", notice,
                                "--psp", "ABI99999"], env=env)
    assert done.exit_code == 0, done.output
    assert '"ok": true' in done.output and '"state": "DELIVERED"' in done.output
    assert dovuto_state(sim_gateway, notice) == "COMPLETATO"
    again = runner.invoke(main, ["sim", "pay", "--fiscal-code", ente.fiscal_code, "--notice-number", notice], env=env)
    assert again.exit_code == 1 and "PAA_PAGAMENTO_DUPLICATO" in again.output
