"""The running gateway, called as real clients call it: zeep built from the reference WSDLs, hand-built
envelopes, hostile bodies. Every operation of the four contracts answers its behaviour or a contract fault.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import threading

import pytest
import requests
import zeep
from zeep.transports import Transport

from tests.conftest import REFERENCE

ENTE_WSDL = REFERENCE / "mypay/wsdl/pa-per-ente.wsdl"
SPC_WSDL = REFERENCE / "mypay/wsdl/mypivot-pa-per-ente.wsdl"
PA_FOR_NODE_WSDL = REFERENCE / "pagopa/wsdl/paForNode.wsdl"
PA_PER_NODO_WSDL = REFERENCE / "pagopa/gad/wsdl/PaPerNodo.wsdl"

ENTE_BINDING = "{http://www.regione.veneto.it/pagamenti/ente/PagamentiTelematiciDovutiPagati}" \
               "PagamentiTelematiciDovutiPagatiBinding"
ENTE_PATH = "/ente/PagamentiTelematiciDovutiPagati"

# Every known code an operation may answer with is a PAA_* or CODE_PAA_* string.
FAULT_CODE = re.compile(r"^(CODE_)?PAA_[A-Z0-9_]+$")


def _client(wsdl, gateway, path: str, binding: str | None = None):
    client = zeep.Client(str(wsdl), transport=Transport(timeout=30, operation_timeout=30))
    if binding is None:
        binding = next(iter(client.wsdl.bindings))
    return client.create_service(binding, gateway.url + path)


@pytest.fixture
def ente_service(gateway):
    return _client(ENTE_WSDL, gateway, ENTE_PATH, ENTE_BINDING)


def _header(cod_ipa: str) -> dict:
    return {"header": {"codIpaEnte": cod_ipa}}


def _assert_answer(response, *, ok_field: str | None = None) -> None:
    """Either a success or a faultBean with a contract code: never an empty or broken answer."""
    fault = response["fault"] if "fault" in response else None
    if fault is not None:
        assert FAULT_CODE.match(fault["faultCode"]), fault
        assert fault["faultString"]
    else:
        assert ok_field is None or response[ok_field] is not None


def _versamento() -> bytes:
    ns = "http://www.regione.veneto.it/schemas/2012/Pagamenti/Ente/"
    return (f'<Versamento xmlns="{ns}"><versioneOggetto>6.2.0</versioneOggetto><soggettoPagatore>'
            f"<identificativoUnivocoPagatore><tipoIdentificativoUnivoco>F</tipoIdentificativoUnivoco>"
            f"<codiceIdentificativoUnivoco>RSSMRA80A01H501U</codiceIdentificativoUnivoco>"
            f"</identificativoUnivocoPagatore><anagraficaPagatore>Mario Rossi</anagraficaPagatore>"
            f"</soggettoPagatore><datiVersamento><identificativoUnivocoDovuto>IUD-F-1</identificativoUnivocoDovuto>"
            f"<importoSingoloVersamento>10.00</importoSingoloVersamento>"
            f"<identificativoTipoDovuto>TARI</identificativoTipoDovuto><causaleVersamento>Tassa</causaleVersamento>"
            f"<datiSpecificiRiscossione>9/0101100IM/</datiSpecificiRiscossione></datiVersamento>"
            f"<azione>I</azione></Versamento>").encode()


def _ente_calls(cod_ipa: str, password: str) -> dict:
    """One call per operation of PagamentiTelematiciDovutiPagati (18), with plausible arguments."""
    person = {"tipoIdentificativoUnivoco": "F", "codiceIdentificativoUnivoco": "RSSMRA80A01H501U"}
    today = dt.date.today()
    return {
        "paaSILInviaDovuti": dict(password=password, dovuti=b"<Dovuti/>", _soapheaders=_header(cod_ipa)),
        "paaSILInviaCarrelloDovuti": dict(password=password, listaDovuti={"elementoListaDovuti": [
            {"codIpaEnte": cod_ipa, "password": "0" * 64, "dovuti": b"<Dovuti/>"}]}, _soapheaders=_header(cod_ipa)),
        "paaSILVerificaAvviso": dict(password=password, identificativoUnivocoVersamento="01000000000000099",
                                     _soapheaders=_header(cod_ipa)),
        "paaSILChiediPagati": dict(codIpaEnte=cod_ipa, password=password, idSession="unknown-session"),
        "paaSILChiediPagatiConRicevuta": dict(codIpaEnte=cod_ipa, password=password, idSession="unknown-session"),
        # A valid Versamento: ImportaDovuto parses the XML before it checks the ente (MyPay's order).
        "paaSILImportaDovuto": dict(password=password, dovuto=_versamento(), flagGeneraIuv=True,
                                    _soapheaders=_header(cod_ipa)),
        "paaSILRegistraPagamento": dict(codIpaEnte=cod_ipa, password=password,
                                        identificativoUnivocoVersamento="01000000000000099",
                                        singoloImportoPagato="10.00", dataEsitoSingoloPagamento=today,
                                        identificativoUnivocoRiscossione="IUR1", tipoIstitutoAttestante="G",
                                        codiceIstitutiAttestante="ABI03069", denominazioneAttestante="Banca"),
        "paaSILAutorizzaImportFlusso": dict(password=password, _soapheaders=_header(cod_ipa)),
        "paaSILChiediStatoImportFlusso": dict(password=password, requestToken="no-such-token",
                                              _soapheaders=_header(cod_ipa)),
        "paaSILPrenotaExportFlusso": dict(password=password, dateFrom=today, dateTo=today,
                                          _soapheaders=_header(cod_ipa)),
        "paaSILPrenotaExportFlussoScaduti": dict(password=password, dataScadenza=today, tipiDovuto="TARI",
                                                 _soapheaders=_header(cod_ipa)),
        "paaSILPrenotaExportFlussoIncrementaleConRicevuta": dict(
            password=password, dateFrom=dt.datetime.combine(today, dt.time()), ricevuta=True, incrementale=True,
            _soapheaders=_header(cod_ipa)),
        "paaSILChiediStatoExportFlusso": dict(password=password, requestToken="no-such-token",
                                              _soapheaders=_header(cod_ipa)),
        "paaSILChiediStatoExportFlussoScaduti": dict(password=password, requestToken="no-such-token",
                                                     _soapheaders=_header(cod_ipa)),
        "paaSILChiediAvvisiPendenti": dict(password=password, codIpaEnte=cod_ipa, dateFrom=today, dateTo=today),
        "paaSILChiediEsitoCarrelloDovuti": dict(codIpaEnte=cod_ipa, password=password,
                                                idSessionCarrello="unknown-session"),
        "paaSILChiediPosizioniAperte": dict(password=password, codIpaEnte=cod_ipa,
                                            identificativoUnivocoPersonaFG=person),
        "paaSILChiediStoricoPagamenti": dict(password=password, codIpaEnte=cod_ipa,
                                             identificativoUnivocoPersonaFG=person,
                                             dataFrom=dt.datetime.combine(today, dt.time())),
    }


def test_every_ente_operation_answers_with_its_behaviour_or_a_contract_fault(ente_service, ente):
    calls = _ente_calls(ente.cod_ipa, ente.password)
    assert len(calls) == 18
    for operation, kwargs in calls.items():
        response = getattr(ente_service, operation)(**kwargs)
        _assert_answer(response)


@pytest.mark.parametrize("operation", sorted(_ente_calls("X", "y")))
def test_wrong_password_gives_paa_ente_non_valido_on_every_operation(ente_service, ente, operation):
    kwargs = _ente_calls(ente.cod_ipa, "wrong-password")[operation]
    response = getattr(ente_service, operation)(**kwargs)
    assert response["fault"]["faultCode"] == "PAA_ENTE_NON_VALIDO", operation
    if "esito" in response:
        assert response["esito"] == "KO"


def test_unknown_ente_is_refused_without_revealing_anything(ente_service):
    response = ente_service.paaSILChiediPagati(codIpaEnte="C_NOBODY", password="whatever1", idSession="x")
    fault = response["fault"]
    assert fault["faultCode"] == "PAA_ENTE_NON_VALIDO"
    assert fault["faultString"] == "Codice IPA Ente [C_NOBODY] non valido o password errata"
    assert fault["id"] == "C_NOBODY"
    assert response["pagati"] is None


def test_missing_header_is_a_contract_fault(gateway):
    envelope = b"""<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
        xmlns:ppt="http://www.regione.veneto.it/pagamenti/ente/"><soapenv:Body>
        <ppt:paaSILAutorizzaImportFlusso><password>secret123</password></ppt:paaSILAutorizzaImportFlusso>
        </soapenv:Body></soapenv:Envelope>"""
    answer = requests.post(gateway.url + ENTE_PATH, data=envelope, headers={"Content-Type": "text/xml"})
    assert answer.status_code == 200
    assert b"<faultCode>PAA_ENTE_NON_VALIDO</faultCode>" in answer.content


def test_hand_built_envelope_in_the_style_of_php_software(gateway, ente):
    """Other prefixes, no SOAPAction, tabs and newlines, a loose XML declaration, children unqualified."""
    envelope = (f"<?xml version='1.0'?>\n<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\">\n"
                f"\t<S:Header>\n\t\t<h:intestazionePPT xmlns:h=\"http://www.regione.veneto.it/pagamenti/ente/ppthead\">"
                f"<codIpaEnte>{ente.cod_ipa}</codIpaEnte></h:intestazionePPT>\n\t</S:Header>\n"
                f"\t<S:Body>\n\t\t<x:paaSILAutorizzaImportFlusso xmlns:x=\"http://www.regione.veneto.it/pagamenti/ente/\">\n"
                f"\t\t\t<password>{ente.password}</password>\n\t\t</x:paaSILAutorizzaImportFlusso>\n\t</S:Body>\n"
                f"</S:Envelope>").encode()
    answer = requests.post(gateway.url + ENTE_PATH, data=envelope, headers={"Content-Type": "text/xml; charset=utf-8"})
    assert answer.status_code == 200
    # Clients read answers by tag name: the response root and its children keep the contract's names.
    assert b"paaSILAutorizzaImportFlussoRisposta" in answer.content
    assert re.search(rb"<(faultCode|uploadUrl)>", answer.content)


def test_flussi_spc_operations_answer(gateway, ente):
    service = _client(SPC_WSDL, gateway, "/ente/PagamentiTelematiciFlussiSPC")
    today = dt.date.today()
    listing = service.paaSILChiediElencoFlussiSPC(password=ente.password, codIpaEnte=ente.cod_ipa,
                                                  identificativoPsp="ABI03069", tipoFlusso="R",
                                                  dateFrom=today, dateTo=today)
    _assert_answer(listing)
    flow = service.paaSILChiediFlussoSPC(password=ente.password, codIpaEnte=ente.cod_ipa,
                                         identificativoPsp="ABI03069", tipoFlusso="R",
                                         identificativoFlusso="2026-01-01ABI03069-0001",
                                         dataOraFlusso=dt.datetime(2026, 1, 1, 10, 0, 0))
    _assert_answer(flow)
    bad = service.paaSILChiediFlussoSPC(password="wrong-pass", codIpaEnte=ente.cod_ipa,
                                        identificativoPsp="ABI03069", tipoFlusso="R",
                                        identificativoFlusso="x", dataOraFlusso=dt.datetime(2026, 1, 1))
    assert bad["fault"]["faultCode"] == "PAA_ENTE_NON_VALIDO"
    assert bad["stato"] == "KO"


def _node_identity(ente, gateway) -> dict:
    return {"idPA": ente.fiscal_code, "idBrokerPA": "99999000013", "idStation": "99999000013_01"}


def test_every_pa_for_node_operation_answers(gateway, ente):
    service = _client(PA_FOR_NODE_WSDL, gateway, "/pa/paForNode")
    identity = _node_identity(ente, gateway)
    qr = {"fiscalCode": ente.fiscal_code, "noticeNumber": "301000000000000099"}
    receipt = {
        "receiptId": "c" * 32, "noticeNumber": qr["noticeNumber"], "fiscalCode": ente.fiscal_code,
        "outcome": "OK", "creditorReferenceId": "01000000000000099", "paymentAmount": "10.00",
        "description": "x", "companyName": "Comune",
        "debtor": {"uniqueIdentifier": {"entityUniqueIdentifierType": "F",
                                        "entityUniqueIdentifierValue": "RSSMRA80A01H501U"}, "fullName": "Mario"},
        "transferList": {"transfer": [{"idTransfer": 1, "transferAmount": "10.00", "fiscalCodePA": ente.fiscal_code,
                                       "IBAN": "IT60X0542811101000000123456", "remittanceInformation": "x",
                                       "transferCategory": "9/0101100IM/"}]},
        "idPSP": "SIMPSP01", "PSPCompanyName": "PSP", "idChannel": "SIMPSP01_01", "channelDescription": "app",
    }
    answers = [
        service.paVerifyPaymentNotice(qrCode=qr, **identity),
        service.paGetPayment(qrCode=qr, **identity),
        service.paGetPaymentV2(qrCode=qr, **identity),
        service.paSendRT(receipt=receipt, **identity),
        service.paSendRTV2(receipt=receipt, **identity),
        service.paDemandPaymentNotice(idServizio="00001", idSoggettoServizio="00001",
                                      datiSpecificiServizioRequest=b"<x/>", **identity),
    ]
    for answer in answers:
        assert answer["outcome"] in ("OK", "KO")
        if answer["outcome"] == "KO":
            assert FAULT_CODE.match(answer["fault"]["faultCode"])


@pytest.mark.parametrize("field,value,code", [
    ("idPA", "00000000000", "PAA_ID_DOMINIO_ERRATO"),
    ("idBrokerPA", "11111111111", "PAA_ID_INTERMEDIARIO_ERRATO"),
    ("idStation", "11111111111_01", "PAA_STAZIONE_INT_ERRATA"),
])
def test_node_identity_is_checked(gateway, ente, field, value, code):
    service = _client(PA_FOR_NODE_WSDL, gateway, "/pa/paForNode")
    identity = _node_identity(ente, gateway) | {field: value}
    answer = service.paVerifyPaymentNotice(qrCode={"fiscalCode": ente.fiscal_code,
                                                   "noticeNumber": "301000000000000099"}, **identity)
    assert answer["outcome"] == "KO"
    assert answer["fault"]["faultCode"] == code


def test_paa_invia_rt_answers(gateway, ente):
    client = zeep.Client(str(PA_PER_NODO_WSDL))
    binding = next(iter(client.wsdl.bindings))
    service = client.create_service(binding, gateway.url + "/pa/PaPerNodo")
    header = {"identificativoIntermediarioPA": "99999000013", "identificativoStazioneIntermediarioPA": "99999000013_01",
              "identificativoDominio": ente.fiscal_code, "identificativoUnivocoVersamento": "01000000000000099",
              "codiceContestoPagamento": "n/a"}
    answer = service.paaInviaRT(tipoFirma="", rt=b"<RT/>", _soapheaders={"header": header})
    assert answer["esito"] in ("OK", "KO")
    if answer["esito"] == "KO":
        assert FAULT_CODE.match(answer["fault"]["faultCode"])


# --- hostile input -----------------------------------------------------------------------------------
def _post(gateway, path: str, body: bytes, **headers) -> requests.Response:
    return requests.post(gateway.url + path, data=body, headers={"Content-Type": "text/xml", **headers}, timeout=60)


def test_malformed_xml_gets_the_operation_fault(gateway):
    body = b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'><soapenv:Body>" \
           b"<ppt:paaSILChiediPagati xmlns:ppt='http://www.regione.veneto.it/pagamenti/ente/'><codIpaEnte>X" \
           b"</soapenv:Body>"
    answer = _post(gateway, ENTE_PATH, body)
    assert answer.status_code == 200
    assert b"paaSILChiediPagatiRisposta" in answer.content
    assert b"<faultCode>PAA_XML_NON_VALIDO</faultCode>" in answer.content
    assert b"Traceback" not in answer.content


def test_not_xml_at_all_is_a_soap_fault(gateway):
    answer = _post(gateway, ENTE_PATH, b"this is not xml")
    assert answer.status_code == 500
    assert b"Fault" in answer.content and b"Traceback" not in answer.content


XML_BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<pafn:paVerifyPaymentNoticeReq xmlns:pafn="http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd">
<idPA>&lol3;</idPA></pafn:paVerifyPaymentNoticeReq></soapenv:Body></soapenv:Envelope>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<ppt:paaSILChiediPagati xmlns:ppt="http://www.regione.veneto.it/pagamenti/ente/"><codIpaEnte>&x;</codIpaEnte>
<password>x</password><idSession>x</idSession></ppt:paaSILChiediPagati></soapenv:Body></soapenv:Envelope>"""


def test_xml_bomb_is_refused_with_the_node_contract_fault(gateway):
    answer = _post(gateway, "/pa/paForNode", XML_BOMB)
    assert answer.status_code == 200
    assert b"paVerifyPaymentNoticeRes" in answer.content
    assert b"<outcome>KO</outcome>" in answer.content
    assert b"<faultCode>PAA_SINTASSI_EXTRAXSD</faultCode>" in answer.content
    assert b"lollol" not in answer.content


def test_external_entity_is_never_resolved(gateway):
    answer = _post(gateway, ENTE_PATH, EXTERNAL_ENTITY)
    assert b"root:" not in answer.content
    assert b"<faultCode>PAA_XML_NON_VALIDO</faultCode>" in answer.content


def test_twenty_megabyte_body_is_refused_and_the_gateway_keeps_serving(gateway):
    head = b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'><soapenv:Body>" \
           b"<ppt:paaSILInviaDovuti xmlns:ppt='http://www.regione.veneto.it/pagamenti/ente/'><dovuti>"
    body = head + b"A" * (20 * 1024 * 1024) + b"</dovuti></ppt:paaSILInviaDovuti></soapenv:Body></soapenv:Envelope>"
    answer = _post(gateway, ENTE_PATH, body, SOAPAction='"paaSILInviaDovuti"')
    assert answer.status_code == 413
    assert b"paaSILInviaDovutiRisposta" in answer.content
    assert requests.get(gateway.url + "/healthz", timeout=5).status_code == 200


def test_wrong_namespace_and_unknown_operation_are_contract_faults(gateway):
    wrong_ns = b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'><soapenv:Body>" \
               b"<x:paaSILChiediPagati xmlns:x='urn:wrong'><codIpaEnte>A</codIpaEnte></x:paaSILChiediPagati>" \
               b"</soapenv:Body></soapenv:Envelope>"
    answer = _post(gateway, ENTE_PATH, wrong_ns)
    assert b"<faultCode>PAA_XML_NON_VALIDO</faultCode>" in answer.content
    unknown = b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'><soapenv:Body>" \
              b"<ppt:nonExisting xmlns:ppt='http://www.regione.veneto.it/pagamenti/ente/'/></soapenv:Body>" \
              b"</soapenv:Envelope>"
    answer = _post(gateway, ENTE_PATH, unknown)
    assert answer.status_code == 500 and b"Fault" in answer.content


def test_wrong_types_get_the_operation_fault(gateway, ente):
    body = (f"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'>"
            f"<soapenv:Header><h:intestazionePPT xmlns:h='http://www.regione.veneto.it/pagamenti/ente/ppthead'>"
            f"<codIpaEnte>{ente.cod_ipa}</codIpaEnte></h:intestazionePPT></soapenv:Header><soapenv:Body>"
            f"<ppt:paaSILPrenotaExportFlusso xmlns:ppt='http://www.regione.veneto.it/pagamenti/ente/'>"
            f"<password>{ente.password}</password><dateFrom>not-a-date</dateFrom><dateTo>2026-13-45</dateTo>"
            f"</ppt:paaSILPrenotaExportFlusso></soapenv:Body></soapenv:Envelope>").encode()
    answer = _post(gateway, ENTE_PATH, body)
    assert answer.status_code == 200
    assert b"paaSILPrenotaExportFlussoRisposta" in answer.content
    assert re.search(rb"<faultCode>PAA_[A-Z_]+</faultCode>", answer.content)
    assert b"Traceback" not in answer.content


def test_invalid_base64_is_a_contract_fault(gateway, ente):
    body = (f"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'>"
            f"<soapenv:Header><h:intestazionePPT xmlns:h='http://www.regione.veneto.it/pagamenti/ente/ppthead'>"
            f"<codIpaEnte>{ente.cod_ipa}</codIpaEnte></h:intestazionePPT></soapenv:Header><soapenv:Body>"
            f"<ppt:paaSILInviaDovuti xmlns:ppt='http://www.regione.veneto.it/pagamenti/ente/'>"
            f"<password>{ente.password}</password><dovuti>@@@not base64@@@</dovuti>"
            f"</ppt:paaSILInviaDovuti></soapenv:Body></soapenv:Envelope>").encode()
    answer = _post(gateway, ENTE_PATH, body)
    assert b"paaSILInviaDovutiRisposta" in answer.content
    assert b"<esito>KO</esito>" in answer.content
    assert re.search(rb"<faultCode>PAA_[A-Z_]+</faultCode>", answer.content)


def test_gateway_keeps_serving_under_concurrent_hostile_and_valid_traffic(gateway, ente, ente_service):
    errors: list[BaseException] = []

    def hostile() -> None:
        try:
            for _ in range(10):
                _post(gateway, "/pa/paForNode", XML_BOMB)
                _post(gateway, ENTE_PATH, b"<<<")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=hostile) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(10):
        response = ente_service.paaSILChiediPagati(codIpaEnte=ente.cod_ipa, password="wrong-password", idSession="x")
        assert response["fault"]["faultCode"] == "PAA_ENTE_NON_VALIDO"
    for thread in threads:
        thread.join()
    assert not errors
    assert requests.get(gateway.url + "/healthz", timeout=5).status_code == 200


# --- what is served besides SOAP -----------------------------------------------------------------------
@pytest.mark.parametrize("path", [ENTE_PATH, "/ente/PagamentiTelematiciFlussiSPC", "/pa/paForNode", "/pa/PaPerNodo"])
def test_served_wsdl_loads_in_zeep_and_points_at_the_gateway(gateway, path):
    client = zeep.Client(gateway.url + path + "?wsdl")
    addresses = {port.binding_options["address"] for service in client.wsdl.services.values()
                 for port in service.ports.values()}
    assert addresses == {gateway.url + path}


def test_healthz_and_metrics(gateway, ente_service, ente):
    health = requests.get(gateway.url + "/healthz", timeout=5)
    assert health.status_code == 200 and health.json() == {"status": "ok", "database": "ok"}
    ente_service.paaSILChiediPagati(codIpaEnte=ente.cod_ipa, password="wrong-password", idSession="x")
    metrics = requests.get(gateway.url + "/metrics", timeout=5).text
    assert "ente_gateway_requests_total" in metrics
    assert 'fault_code="PAA_ENTE_NON_VALIDO"' in metrics
    assert "ente_gateway_request_seconds_bucket" in metrics


def test_request_id_is_returned_and_logged_without_secrets(gateway, ente_service, ente):
    answer = requests.post(gateway.url + ENTE_PATH, headers={"X-Request-ID": "abc123def", "Content-Type": "text/xml"},
                           data=b"<x/>")
    assert answer.headers["X-Request-ID"] == "abc123def"
    secret = "Secret-" + base64.b16encode(b"pw").decode()
    ente_service.paaSILChiediPagati(codIpaEnte=ente.cod_ipa, password=secret, idSession="x")
    log = gateway.log()
    assert "abc123def" in log
    assert secret not in log
    assert ente.password not in log
