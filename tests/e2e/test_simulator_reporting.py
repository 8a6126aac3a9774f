"""Reporting end to end: the simulated PSPs report a paid RPT through FdR (read back through the organisation
API, checked field by field against fdr_organization.json / fdr_psp.json) and as a SOAP FlussoRiversamento
(listed, downloaded, valid against the reference XSD); a revision supersedes; PSP-side REST and SOAP checks."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import pytest
import requests
import zeep
from lxml import etree

from tests.conftest import REFERENCE
from tests.e2e.test_simulator_legacy import (_clear_scenarios, gw, legacy_ente, nodo, open_legacy_payment,  # noqa: F401
                                             pay, receipts_of, wait_for)

OPENAPI = REFERENCE / "pagopa" / "openapi"
FLUSSO_XSD = REFERENCE / "pagopa" / "xsd-common" / "FlussoRiversamento_1_0_4.xsd"
NODO_PSP_WSDL = REFERENCE / "pagopa" / "gad" / "wsdl" / "NodoPerPsp.wsdl"
PSP_BINDING = "{http://PuntoAccessoPSP.spcoop.gov.it/servizi/PagamentiTelematiciPspNodo}PagamentiTelematiciPspNodobinding"
BROKER, STATION, PASSWORD = "99999000013", "99999000013_01", "stationpwd1"
PSP = {"id": "SIMPSP01", "broker": "SIMPSP01", "channel": "SIMPSP01_01", "password": "simpsp0101"}
NS = {"p": "http://www.digitpa.gov.it/schemas/2011/Pagamenti/"}


@lru_cache(maxsize=None)
def spec(name: str) -> dict:
    return json.loads((OPENAPI / name).read_text())


def conforms(value: Any, schema: dict, components: dict, path: str = "$") -> None:
    """Field-by-field check against an OpenAPI schema: names, required fields, JSON types, enums."""
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    kind = schema.get("type")
    if "enum" in schema:
        assert value in schema["enum"], f"{path}: {value!r} not in {schema['enum']}"
    if kind == "object" or "properties" in schema:
        assert isinstance(value, dict), f"{path}: not an object"
        properties = schema.get("properties", {})
        assert set(value) <= set(properties), f"{path}: unknown fields {set(value) - set(properties)}"
        for key in schema.get("required", []):
            assert key in value, f"{path}: missing {key}"
        for key, item in value.items():
            conforms(item, properties[key], components, f"{path}.{key}")
    elif kind == "array":
        assert isinstance(value, list), f"{path}: not an array"
        for position, item in enumerate(value):
            conforms(item, schema["items"], components, f"{path}[{position}]")
    elif kind == "string":
        assert isinstance(value, str), f"{path}: not a string"
        if schema.get("format") == "date-time":
            datetime.fromisoformat(value.replace("Z", "+00:00"))
    elif kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: not an integer"
    elif kind == "number":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{path}: not a number"


def check(value: Any, file: str, name: str) -> None:
    components = spec(file)["components"]["schemas"]
    conforms(value, components[name], components)


def report(gw: Any, **body: Any) -> list[dict]:
    response = requests.post(gw.url + "/sim/api/report", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["flows"]


def org(gw: Any, fiscal_code: str, tail: str = "", **params: Any) -> requests.Response:
    return requests.get(f"{gw.url}/sim/fdr-org/service/v1/organizations/{fiscal_code}/fdrs{tail}", params=params,
                        timeout=30)


def soap_list(gw: Any, fiscal_code: str) -> Any:
    return nodo(gw).nodoChiediElencoFlussiRendicontazione(
        identificativoIntermediarioPA=BROKER, identificativoStazioneIntermediarioPA=STATION, password=PASSWORD,
        identificativoDominio=fiscal_code)


def soap_get(gw: Any, fiscal_code: str, flow_id: str) -> Any:
    return nodo(gw).nodoChiediFlussoRendicontazione(
        identificativoIntermediarioPA=BROKER, identificativoStazioneIntermediarioPA=STATION, password=PASSWORD,
        identificativoDominio=fiscal_code, identificativoFlusso=flow_id)


def test_paid_rpt_reported_by_fdr_and_soap_then_revised(gw: Any) -> None:
    ente = legacy_ente(gw)
    page, attempt = open_legacy_payment(gw, ente)
    pay(gw, page)
    receipt = wait_for(lambda: receipts_of(gw, attempt))[0]
    fc = ente.fiscal_code

    flows = report(gw, dominio=fc, transport="both")
    assert len(flows) == 1 and flows[0]["revision"] == 1 and flows[0]["psp"] == "SIMPSP01"
    flow_id = flows[0]["flowId"]
    assert flow_id.startswith(datetime.now().strftime("%Y-%m-%d") + "SIMPSP01-")
    assert report(gw, dominio=fc, transport="both") == []  # already reported, not revising

    listed = org(gw, fc)
    assert listed.status_code == 200
    check(listed.json(), "fdr_organization.json", "PaginatedFlowsResponse")
    assert [(f["fdr"], f["pspId"], f["revision"]) for f in listed.json()["data"]] == [(flow_id, "SIMPSP01", 1)]
    assert listed.json()["metadata"] == {"pageSize": 1000, "pageNumber": 1, "totPage": 1}
    single = org(gw, fc, f"/{flow_id}/revisions/1/psps/SIMPSP01")
    check(single.json(), "fdr_organization.json", "SingleFlowResponse")
    assert single.json()["status"] == "PUBLISHED" and single.json()["computedSumPayments"] == 12.5
    assert "password" not in single.json()["sender"]
    payments = org(gw, fc, f"/{flow_id}/revisions/1/psps/SIMPSP01/payments", page=1, size=10)
    check(payments.json(), "fdr_organization.json", "PaginatedPaymentsResponse")
    [payment] = payments.json()["data"]
    assert (payment["iuv"], payment["iur"], payment["pay"], payment["payStatus"], payment["idTransfer"]) == \
        (attempt.iuv, receipt.payments[0].iur, 12.5, "EXECUTED", 1)

    listing = soap_list(gw, fc)
    assert [r.identificativoFlusso for r in listing.elencoFlussiRendicontazione.idRendicontazione] == [flow_id]
    xml = soap_get(gw, fc, flow_id).xmlRendicontazione
    schema = etree.XMLSchema(etree.parse(str(FLUSSO_XSD)))
    root = etree.fromstring(xml)
    assert schema.validate(root), schema.error_log
    assert root.findtext("p:identificativoFlusso", namespaces=NS) == flow_id
    assert root.findtext("p:datiSingoliPagamenti/p:identificativoUnivocoRiscossione", namespaces=NS) == \
        receipt.payments[0].iur
    unknown = soap_get(gw, fc, flow_id + "X")
    assert unknown.fault.faultCode == "PPT_ID_FLUSSO_SCONOSCIUTO"
    assert soap_get(gw, "80000000002", flow_id).fault.faultCode == "PPT_ID_FLUSSO_SCONOSCIUTO"

    # A revision with an amount mismatch planted: FdR revision 2 is the one listed; SOAP lists both versions
    # and hands out the newest.
    revised = report(gw, dominio=fc, transport="both", revise=True, amount_delta="1.00")
    assert [(f["flowId"], f["revision"]) for f in revised] == [(flow_id, 2)]
    assert [(f["fdr"], f["revision"]) for f in org(gw, fc).json()["data"]] == [(flow_id, 2)]
    assert org(gw, fc, f"/{flow_id}/revisions/2/psps/SIMPSP01/payments").json()["data"][0]["pay"] == 13.5
    versions = soap_list(gw, fc).elencoFlussiRendicontazione.idRendicontazione
    assert [v.identificativoFlusso for v in versions] == [flow_id, flow_id]
    assert versions[0].dataOraFlusso < versions[1].dataOraFlusso
    newest = etree.fromstring(soap_get(gw, fc, flow_id).xmlRendicontazione)
    assert newest.findtext("p:importoTotalePagamenti", namespaces=NS) == "13.50"

    extra = report(gw, dominio=fc, psp="ABI99999", extra_payment={"iuv": "RF99", "amount": "7.00"})
    assert extra[0]["payments"] == 1 and extra[0]["total"] == "7.00"


def test_fdr_psp_api_publish_and_errors(gw: Any) -> None:
    psp, org_id = "SIMPSP01", "80000000001"
    name = f"2026-01-15{psp}-T{uuid.uuid4().hex[:8]}"
    base = f"{gw.url}/sim/fdr-psp/service/v1/psps/{psp}/fdrs/{name}"
    body = {"fdr": name, "fdrDate": "2026-01-15T10:00:00Z",
            "sender": {"type": "LEGAL_PERSON", "id": "99999000101", "pspId": psp, "pspName": "PSP Simulato",
                       "pspBrokerId": "SIMPSP01", "channelId": "SIMPSP01_01", "password": "simpsp0101"},
            "receiver": {"id": org_id, "organizationId": org_id, "organizationName": "Comune di Prova"},
            "regulation": "SEPA - Bonifico 1", "regulationDate": "2026-01-16", "totPayments": 2, "sumPayments": 15.5}
    created = requests.post(base, json=body, timeout=10)
    assert created.status_code == 201 and created.json() == {"message": "Success"}
    again = requests.post(base, json=body, timeout=10)
    assert again.status_code == 400
    check(again.json(), "fdr_psp.json", "ErrorResponse")
    payment = {"iuv": "01234567890123456", "iur": "IUR1", "idTransfer": 1, "pay": 10.0, "payStatus": "EXECUTED",
               "payDate": "2026-01-15T09:00:00Z"}
    added = requests.put(base + "/payments/add", json={"payments": [
        {**payment, "index": 1}, {**payment, "index": 2, "iur": "IUR2", "pay": 5.5},
        {**payment, "index": 3, "iur": "IUR3", "pay": 1.0}]}, timeout=10)
    assert added.status_code == 200, added.text
    early = requests.post(base + "/publish", timeout=10)
    assert early.status_code == 400 and early.json()["appErrorCode"].startswith("FDR-")  # 3 payments, 2 declared
    assert requests.put(base + "/payments/del", json={"indexList": [3]}, timeout=10).status_code == 200
    assert requests.post(base + "/publish", timeout=10).status_code == 200
    flow = org(gw, org_id, f"/{name}/revisions/1/psps/{psp}").json()
    assert (flow["computedTotPayments"], flow["totPayments"], flow["sumPayments"]) == (2, 2, 15.5)
    missing = org(gw, org_id, f"/{name}/revisions/9/psps/{psp}")
    assert missing.status_code == 404
    check(missing.json(), "fdr_organization.json", "ErrorResponse")
    # Same name again: a new draft, then revision 2 supersedes 1 in the list.
    assert requests.post(base, json=body, timeout=10).status_code == 201
    requests.put(base + "/payments/add", json={"payments": [{**payment, "index": 1, "pay": 15.5}]}, timeout=10)
    body_fix = requests.post(base + "/publish", timeout=10)
    assert body_fix.status_code == 400  # totPayments 2 declared, 1 given
    requests.put(base + "/payments/add", json={"payments": [{**payment, "index": 2, "pay": 0.0,
                                                             "payStatus": "REVOKED"}]}, timeout=10)
    assert requests.post(base + "/publish", timeout=10).status_code == 200
    listed = org(gw, org_id, pspId=psp, publishedGt="2020-01-01T00:00:00Z", flowDate="2020-01-01T00:00:00Z")
    assert (name, 2) in {(f["fdr"], f["revision"]) for f in listed.json()["data"]}
    assert (name, 1) not in {(f["fdr"], f["revision"]) for f in listed.json()["data"]}


def test_soap_flow_sent_by_psp_checks(gw: Any) -> None:
    service = zeep.Client(str(NODO_PSP_WSDL)).create_service(PSP_BINDING, gw.url + "/sim/NodoPerPsp")
    flow_id = f"2026-01-15{PSP['id']}-X{uuid.uuid4().hex[:8]}"
    stamp = "2026-01-15T10:00:00"
    xml = (f'<FlussoRiversamento xmlns="{NS["p"]}"><versioneOggetto>1.0</versioneOggetto>'
           f"<identificativoFlusso>{flow_id}</identificativoFlusso><dataOraFlusso>{stamp}</dataOraFlusso>"
           f"<identificativoUnivocoRegolamento>SCT1</identificativoUnivocoRegolamento>"
           f"<dataRegolamento>2026-01-16</dataRegolamento><istitutoMittente><identificativoUnivocoMittente>"
           f"<tipoIdentificativoUnivoco>G</tipoIdentificativoUnivoco><codiceIdentificativoUnivoco>99999000101"
           f"</codiceIdentificativoUnivoco></identificativoUnivocoMittente></istitutoMittente><istitutoRicevente>"
           f"<identificativoUnivocoRicevente><tipoIdentificativoUnivoco>G</tipoIdentificativoUnivoco>"
           f"<codiceIdentificativoUnivoco>80000000001</codiceIdentificativoUnivoco></identificativoUnivocoRicevente>"
           f"</istitutoRicevente><numeroTotalePagamenti>1</numeroTotalePagamenti>"
           f"<importoTotalePagamenti>3.00</importoTotalePagamenti><datiSingoliPagamenti>"
           f"<identificativoUnivocoVersamento>1</identificativoUnivocoVersamento>"
           f"<identificativoUnivocoRiscossione>2</identificativoUnivocoRiscossione>"
           f"<singoloImportoPagato>3.00</singoloImportoPagato><codiceEsitoSingoloPagamento>9"
           f"</codiceEsitoSingoloPagamento><dataEsitoSingoloPagamento>2026-01-15</dataEsitoSingoloPagamento>"
           f"</datiSingoliPagamenti></FlussoRiversamento>").encode()

    def send(data: bytes, password: str = PSP["password"], when: str = stamp) -> Any:
        return service.nodoInviaFlussoRendicontazione(
            identificativoPSP=PSP["id"], identificativoIntermediarioPSP=PSP["broker"],
            identificativoCanale=PSP["channel"], password=password, identificativoDominio="80000000001",
            identificativoFlusso=flow_id, dataOraFlusso=when, xmlRendicontazione=data)

    assert send(xml, password="wrongpass1").fault.faultCode == "PPT_AUTENTICAZIONE"
    invalid = send(xml.replace(b"<codiceEsitoSingoloPagamento>9", b"<codiceEsitoSingoloPagamento>7"))
    assert (invalid.esito, invalid.fault.faultCode) == ("KO", "PPT_SINTASSI_XSD")
    assert send(xml, when="2026-01-15T11:00:00").fault.faultCode == "PPT_SEMANTICA"
    ok = send(xml)
    assert (ok.esito, ok.fault) == ("OK", None)
    assert send(xml).fault.faultCode == "PPT_SEMANTICA"  # same (PSP, id, dataOraFlusso) again
