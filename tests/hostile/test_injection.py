"""Wrong types in every field of a few operations, invalid base64, SQL injection strings and CSV formula injection.

Faults are the operation's faultBean; injected text is stored literally and harms nothing; formulas that reach
an exported CSV (paid through paSendRTV2, exported through paaSILPrenotaExportFlusso) come out neutralised.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import date
from typing import Any
from xml.sax.saxutils import escape

import requests
from sqlalchemy import func, inspect, select

from storage.models import Dovuto, Ente, Receipt
from tests.e2e.test_flussi_import import run_jobs, service
from tests.e2e.test_node_side import ids, pafn_service, receipt

NS = "http://www.regione.veneto.it/schemas/2012/Pagamenti/Ente/"
ENTE_PATH = "/ente/PagamentiTelematiciDovutiPagati"
FAULT = re.compile(rb"<faultCode>(CODE_)?PAA_[A-Z0-9_]+</faultCode>")
BAD_VALUES = ["not-a-value-\u03a9", "-1e309", "9" * 40, "x" * 4000, "<![CDATA[2030-01-01]]>x", ""]
SQL = ["' OR 1=1 --", "x'; DROP TABLE dovuto; --", "1\" OR \"1\"=\"1", "'); DELETE FROM ente;--"]
BOOLEANS = {"ricevuta", "incrementale"}
FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+cmd|' /C calc'!A0", "-1+1", "@SUM(1+1)"]


def ente_envelope(operation: str, children: str, cod_ipa: str | None = None) -> bytes:
    head = (f"<soapenv:Header><h:intestazionePPT xmlns:h='http://www.regione.veneto.it/pagamenti/ente/ppthead'>"
            f"<codIpaEnte>{escape(cod_ipa)}</codIpaEnte></h:intestazionePPT></soapenv:Header>") if cod_ipa else ""
    return (f"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'>{head}<soapenv:Body>"
            f"<ppt:{operation} xmlns:ppt='http://www.regione.veneto.it/pagamenti/ente/'>{children}</ppt:{operation}>"
            f"</soapenv:Body></soapenv:Envelope>").encode()


def node_envelope(operation: str, children: str) -> bytes:
    return (f"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'><soapenv:Body>"
            f"<pafn:{operation} xmlns:pafn='http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd'>{children}"
            f"</pafn:{operation}></soapenv:Body></soapenv:Envelope>").encode()


def post(gateway: Any, path: str, body: bytes) -> requests.Response:
    return requests.post(gateway.url + path, data=body, headers={"Content-Type": "text/xml; charset=utf-8"},
                         timeout=30)


def versamento(iud: str, *, causale: str = "TARI", name: str = "Mario Rossi", amount: str = "10.00") -> bytes:
    return (f'<Versamento xmlns="{NS}"><versioneOggetto>6.2.0</versioneOggetto><soggettoPagatore>'
            f"<identificativoUnivocoPagatore><tipoIdentificativoUnivoco>F</tipoIdentificativoUnivoco>"
            f"<codiceIdentificativoUnivoco>RSSMRA80A01H501U</codiceIdentificativoUnivoco>"
            f"</identificativoUnivocoPagatore><anagraficaPagatore>{escape(name)}</anagraficaPagatore>"
            f"</soggettoPagatore><datiVersamento><identificativoUnivocoDovuto>{escape(iud)}"
            f"</identificativoUnivocoDovuto><importoSingoloVersamento>{amount}</importoSingoloVersamento>"
            f"<identificativoTipoDovuto>TARI</identificativoTipoDovuto><causaleVersamento>{escape(causale)}"
            f"</causaleVersamento><datiSpecificiRiscossione>9/0101100IM/</datiSpecificiRiscossione>"
            f"</datiVersamento><azione>I</azione></Versamento>").encode()


def importa(gateway: Any, ente: Any, data: bytes) -> Any:
    return service(gateway).paaSILImportaDovuto(password=ente.password, dovuto=data, flagGeneraIuv=True,
                                               _soapheaders={"header": {"codIpaEnte": ente.cod_ipa}})


# --- wrong types ------------------------------------------------------------------------------------------
def _operations(ente: Any) -> list[tuple[str, str, str, dict[str, str]]]:
    """(path, operation, response element, fields in order) of a few operations with typed fields."""
    qr = f"<fiscalCode>{ente.fiscal_code}</fiscalCode><noticeNumber>301000000000000099</noticeNumber>"
    return [
        (ENTE_PATH, "paaSILPrenotaExportFlusso", "paaSILPrenotaExportFlussoRisposta",
         {"password": ente.password, "dateFrom": "2030-01-01", "dateTo": "2030-01-02",
          "identificativoTipoDovuto": "TARI", "versioneTracciato": "1.3"}),
        (ENTE_PATH, "paaSILPrenotaExportFlussoIncrementaleConRicevuta",
         "paaSILPrenotaExportFlussoIncrementaleConRicevutaRisposta",
         {"password": ente.password, "dateFrom": "2030-01-01T00:00:00", "dateTo": "2030-01-02T00:00:00",
          "ricevuta": "true", "incrementale": "true", "versioneTracciato": "1.3"}),
        ("/pa/paForNode", "paVerifyPaymentNoticeReq", "paVerifyPaymentNoticeRes",
         {"idPA": ente.fiscal_code, "idBrokerPA": "99999000013", "idStation": "99999000013_01", "qrCode": qr}),
        ("/pa/paForNode", "paGetPaymentV2Request", "paGetPaymentV2Response",
         {"idPA": ente.fiscal_code, "idBrokerPA": "99999000013", "idStation": "99999000013_01", "qrCode": qr,
          "amount": "10.00", "dueDate": "2030-01-01"}),
    ]


def test_wrong_types_in_every_field_get_the_operation_fault(gateway: Any, ente: Any, gateway_db: Any) -> None:
    for path, operation, response, fields in _operations(ente):
        for field in fields:
            for bad in BAD_VALUES:
                values = dict(fields, **{field: escape(bad) if "CDATA" not in bad else bad})
                children = "".join(f"<{k}>{v}</{k}>" for k, v in values.items())
                body = ente_envelope(operation, children, ente.cod_ipa) if path == ENTE_PATH \
                    else node_envelope(operation, children)
                answer = post(gateway, path, body)
                where = (operation, field, bad[:20])
                assert answer.status_code == 200, where
                assert response.encode() in answer.content and b"Traceback" not in answer.content, where
                if FAULT.search(answer.content) is None:
                    # Only a value the field may legally hold passes (an optional field left empty...).
                    # xsd:boolean fields read any other text as false, as JAXB's parseBoolean does in MyPay.
                    assert bad in ("", "<![CDATA[2030-01-01]]>x") or field in BOOLEANS, where
    with gateway_db.transaction() as session:
        ente_id = session.scalar(select(Ente.id).where(Ente.cod_ipa == ente.cod_ipa))
        assert session.scalar(select(func.count()).select_from(Receipt).where(Receipt.ente_id == ente_id)) == 0


def test_invalid_base64_is_a_contract_fault(gateway: Any, ente: Any) -> None:
    for bad in ("@@@not base64@@@", "QUJD=RA==", "====", "\u00e8\u00e8"):
        answer = post(gateway, ENTE_PATH, ente_envelope(
            "paaSILImportaDovuto", f"<password>{ente.password}</password><dovuto>{bad}</dovuto>"
                                   f"<flagGeneraIuv>true</flagGeneraIuv>", ente.cod_ipa))
        assert b"paaSILImportaDovutoRisposta" in answer.content and FAULT.search(answer.content), bad
        rt = post(gateway, "/pa/PaPerNodo", (
            "<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'><soapenv:Body>"
            "<ppt:paaInviaRT xmlns:ppt='http://ws.pagamenti.telematici.gov/'><tipoFirma></tipoFirma>"
            f"<rt>{bad}</rt></ppt:paaInviaRT></soapenv:Body></soapenv:Envelope>").encode())
        assert b"paaInviaRTRisposta" in rt.content and FAULT.search(rt.content) and b"<esito>KO</esito>" in rt.content


# --- SQL injection --------------------------------------------------------------------------------------
def test_sql_injection_strings_are_plain_data(gateway: Any, gateway_db: Any, ente: Any) -> None:
    with gateway_db.transaction() as session:
        enti_before = session.scalar(select(func.count()).select_from(Ente))
    for attack in SQL:
        refused = post(gateway, ENTE_PATH, ente_envelope(
            "paaSILChiediPagati", f"<codIpaEnte>{escape(attack)}</codIpaEnte><password>{ente.password}</password>"
                                  f"<idSession>x</idSession>"))
        assert b"<faultCode>PAA_ENTE_NON_VALIDO</faultCode>" in refused.content
        for field in ("idSession", "identificativoUnivocoDovuto", "identificativoUnivocoVersamento"):
            op = "paaSILChiediPagati" if field == "idSession" else "paaSILChiediPagatiConRicevuta"
            answer = post(gateway, ENTE_PATH, ente_envelope(
                op, f"<codIpaEnte>{ente.cod_ipa}</codIpaEnte><password>{ente.password}</password>"
                    f"<{field}>{escape(attack)}</{field}>"))
            assert FAULT.search(answer.content) and b"<pagati>" not in answer.content, (field, attack)
        iud = ("S-" + attack)[:35]
        stored = importa(gateway, ente, versamento(iud, causale=attack, name=attack[:70]))
        assert stored.fault is None, stored.fault
        with gateway_db.transaction() as session:
            row = session.scalar(select(Dovuto).join(Ente).where(Ente.cod_ipa == ente.cod_ipa, Dovuto.iud == iud))
            assert (row.causale, row.payer_name) == (attack, attack[:70])  # stored as sent
    with gateway_db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Ente)) == enti_before
        assert {"dovuto", "ente", "receipt"} <= set(inspect(session.connection()).get_table_names())


# --- CSV formula injection -----------------------------------------------------------------------------
def test_formulas_in_paid_dovuti_are_neutralised_in_the_export(gateway: Any, gateway_db: Any, ente: Any) -> None:
    paid_on = date(2031, 5, 4)  # receipt()'s paymentDateTime
    for n, formula in enumerate(FORMULAS):
        answer = importa(gateway, ente, versamento(f"F-{n}", causale=formula, name=formula, amount="10.00"))
        assert answer.fault is None, answer.fault
        iuv = answer.identificativoUnivocoVersamento
        sent = receipt(ente, "3" + iuv, iuv, "10.00")
        sent["transferList"]["transfer"][0]["remittanceInformation"] = formula
        sent["debtor"]["fullName"] = sent["payer"]["fullName"] = formula
        assert pafn_service(gateway).paSendRTV2(**ids(ente), receipt=sent).outcome == "OK"
    booking = service(gateway).paaSILPrenotaExportFlusso(password=ente.password, dateFrom=paid_on, dateTo=paid_on,
                                                         versioneTracciato="1.3",
                                                         _soapheaders={"header": {"codIpaEnte": ente.cod_ipa}})
    assert booking.fault is None
    run_jobs(gateway, gateway_db)
    status = service(gateway).paaSILChiediStatoExportFlusso(password=ente.password, requestToken=booking.requestToken,
                                                            _soapheaders={"header": {"codIpaEnte": ente.cod_ipa}})
    assert status.stato == "EXPORT_ESEGUITO", status
    archive = zipfile.ZipFile(io.BytesIO(requests.get(status.downloadUrl, timeout=30).content))
    (member,) = archive.namelist()
    rows = list(csv.reader(io.StringIO(archive.read(member).decode("utf-8")), delimiter=";"))
    header, data = rows[0], rows[1:]
    assert len(data) == len(FORMULAS)
    for row in data:
        for column, value in zip(header, row):
            assert value[:1] not in ("=", "+", "-", "@", "\t", "\r"), (column, value)
    text = "\n".join(";".join(row) for row in data)
    for formula in FORMULAS:
        assert "'" + formula in text  # neutralised, not dropped
