"""Ente A, correctly authenticated, asks for ente B's idSession, IUV, IUD, requestTokens, flow id and notice link:
always a fault or not-found, and none of B's values (that A did not itself send) appears in the answer bytes.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
import zipfile
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import requests
from sqlalchemy import select

from storage.models import Carrello, Dovuto, Ente, RendicontazioneFlow
from tests.conftest import create_ente
from tests.e2e.test_flussi_import import run_jobs, service
from tests.e2e.test_node_side import ids, pafn_service, receipt
from tests.e2e.test_sessions import dovuti as dovuti_doc, item
from tests.hostile.test_injection import ENTE_PATH, FAULT, ente_envelope, node_envelope, post, versamento

SPC_PATH = "/ente/PagamentiTelematiciFlussiSPC"


def _spc_envelope(operation: str, children: str) -> bytes:
    return (f"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'><soapenv:Body>"
            f"<pa:{operation} xmlns:pa='http://www.regione.veneto.it/pagamenti/pa/'>{children}</pa:{operation}>"
            f"</soapenv:Body></soapenv:Envelope>").encode()


def _head(ente: Any) -> dict:
    return {"header": {"codIpaEnte": ente.cod_ipa}}


def _victim(gateway: Any, db: Any) -> dict[str, Any]:
    """Ente B with a paid position, a paid session, import and export bookings and a reporting flow."""
    b = create_ente(db)
    tag = uuid.uuid4().hex[:10].upper()
    secrets = {"name": f"SEGRETO {tag}", "causale": f"CAUSALE-B-{tag}", "iud": f"IUD-B-{tag}",
               "receipt": f"RCPT{tag}", "flow_marker": f"FLOWRAW{tag}", "cod_ipa": b.cod_ipa,
               "fiscal_code": b.fiscal_code}
    imported = service(gateway).paaSILImportaDovuto(
        password=b.password, dovuto=versamento(secrets["iud"], causale=secrets["causale"], name=secrets["name"]),
        flagGeneraIuv=True, _soapheaders=_head(b))
    assert imported.fault is None
    secrets["iuv"] = imported.identificativoUnivocoVersamento
    secrets["avviso_url"] = imported.urlFileAvviso
    sent = receipt(b, "3" + secrets["iuv"], secrets["iuv"], "10.00", receipt_id=secrets["receipt"])
    sent["debtor"]["fullName"] = secrets["name"]
    assert pafn_service(gateway).paSendRTV2(**ids(b), receipt=sent).outcome == "OK"

    started = service(gateway).paaSILInviaDovuti(password=b.password, dovuti=dovuti_doc(item(f"SES-{tag}")),
                                                 _soapheaders=_head(b))
    secrets["id_session"] = started.idSession
    with db.transaction() as session:
        carrello = session.scalar(select(Carrello).where(Carrello.id_session == started.idSession))
        (session_dovuto,) = carrello.dovuti
        secrets["session_iuv"] = session_dovuto.iuv
    sent = receipt(b, "3" + secrets["session_iuv"], secrets["session_iuv"], "10.00", receipt_id=f"RS{tag}")
    assert pafn_service(gateway).paSendRTV2(**ids(b), receipt=sent).outcome == "OK"

    secrets["import_token"] = service(gateway).paaSILAutorizzaImportFlusso(
        password=b.password, _soapheaders=_head(b)).requestToken
    secrets["export_token"] = service(gateway).paaSILPrenotaExportFlusso(
        password=b.password, dateFrom=date(2031, 5, 4), dateTo=date(2031, 5, 4), _soapheaders=_head(b)).requestToken
    secrets["scaduti_token"] = service(gateway).paaSILPrenotaExportFlussoScaduti(
        password=b.password, dataScadenza=date(2031, 5, 4), tipiDovuto="TARI", _soapheaders=_head(b)).requestToken
    run_jobs(gateway, db)

    flow_at = datetime(2031, 5, 5, 9, 0, tzinfo=timezone.utc)
    secrets["flow_id"] = f"2031-05-05SIMPSP01-{tag}"
    with db.transaction() as session:
        ente_id = session.scalar(select(Ente.id).where(Ente.cod_ipa == b.cod_ipa))
        session.add(RendicontazioneFlow(ente_id=ente_id, psp_id="SIMPSP01", flow_id=secrets["flow_id"],
                                        flow_datetime=flow_at, flow_date=date(2031, 5, 5), revision=1, transport="fdr",
                                        total_payments=1, total_amount=Decimal("10.00"), state="OK", current=True,
                                        raw=f"<flusso>{secrets['flow_marker']}</flusso>".encode()))
        secrets["dovuto_id"] = session.scalar(select(Dovuto.id).where(Dovuto.ente_id == ente_id,
                                                                     Dovuto.iud == secrets["iud"]))
    return secrets


def _assert_nothing_of_b(answer: requests.Response, request: bytes, secrets: dict[str, Any], where: str) -> None:
    assert answer.status_code == 200, where
    for key, value in secrets.items():
        if not isinstance(value, str) or key == "avviso_url":
            continue
        if value.encode() in request:
            continue  # A sent it: an echo of the request is no leak
        assert value.encode() not in answer.content, (where, key)
        encoded = base64.b64encode(value.encode())[:12]
        assert encoded not in answer.content, (where, key, "base64")


def test_ente_a_never_gets_ente_b_data(gateway: Any, gateway_db: Any) -> None:
    secrets = _victim(gateway, gateway_db)
    a = create_ente(gateway_db)
    creds = f"<codIpaEnte>{a.cod_ipa}</codIpaEnte><password>{a.password}</password>"
    person = ("<identificativoUnivocoPersonaFG><tipoIdentificativoUnivoco>F</tipoIdentificativoUnivoco>"
              "<codiceIdentificativoUnivoco>RSSMRA80A01H501U</codiceIdentificativoUnivoco>"
              "</identificativoUnivocoPersonaFG>")
    at_a = [  # (operation, children, SOAP header ente or None): all with A's valid credentials
        ("paaSILChiediPagati", creds + f"<idSession>{secrets['id_session']}</idSession>", None),
        ("paaSILChiediPagatiConRicevuta", creds + f"<idSession>{secrets['id_session']}</idSession>", None),
        ("paaSILChiediPagatiConRicevuta", creds + f"<identificativoUnivocoVersamento>{secrets['iuv']}"
                                                  f"</identificativoUnivocoVersamento>", None),
        ("paaSILChiediPagatiConRicevuta", creds + f"<identificativoUnivocoDovuto>{secrets['iud']}"
                                                  f"</identificativoUnivocoDovuto>", None),
        ("paaSILChiediEsitoCarrelloDovuti", creds + f"<idSessionCarrello>{secrets['id_session']}"
                                                    f"</idSessionCarrello>", None),
        ("paaSILVerificaAvviso", f"<password>{a.password}</password><identificativoUnivocoVersamento>"
                                 f"{secrets['iuv']}</identificativoUnivocoVersamento>", a.cod_ipa),
        ("paaSILChiediStatoImportFlusso", f"<password>{a.password}</password><requestToken>"
                                          f"{secrets['import_token']}</requestToken>", a.cod_ipa),
        ("paaSILChiediStatoExportFlusso", f"<password>{a.password}</password><requestToken>"
                                          f"{secrets['export_token']}</requestToken>", a.cod_ipa),
        ("paaSILChiediStatoExportFlussoScaduti", f"<password>{a.password}</password><requestToken>"
                                                 f"{secrets['scaduti_token']}</requestToken>", a.cod_ipa),
        ("paaSILChiediPosizioniAperte", f"<password>{a.password}</password><codIpaEnte>{secrets['cod_ipa']}"
                                        f"</codIpaEnte>{person}", None),
        ("paaSILChiediPosizioniAperte", f"<password>{a.password}</password><codIpaEnte>{a.cod_ipa}"
                                        f"</codIpaEnte>{person}", None),
        ("paaSILChiediStoricoPagamenti", f"<password>{a.password}</password><codIpaEnte>{secrets['cod_ipa']}"
                                         f"</codIpaEnte>{person}<dataFrom>2020-01-01T00:00:00</dataFrom>", None),
        ("paaSILChiediStoricoPagamenti", f"<password>{a.password}</password><codIpaEnte>{a.cod_ipa}"
                                         f"</codIpaEnte>{person}<dataFrom>2020-01-01T00:00:00</dataFrom>", None),
        ("paaSILRegistraPagamento", creds + f"<identificativoUnivocoVersamento>{secrets['session_iuv']}"
                                            f"</identificativoUnivocoVersamento><singoloImportoPagato>10.00"
                                            f"</singoloImportoPagato><dataEsitoSingoloPagamento>2031-05-04"
                                            f"</dataEsitoSingoloPagamento><identificativoUnivocoRiscossione>X"
                                            f"</identificativoUnivocoRiscossione>", None),
    ]
    for operation, children, header_ente in at_a:
        body = ente_envelope(operation, children, header_ente)
        answer = post(gateway, ENTE_PATH, body)
        where = f"{operation}: {children[-80:]}"
        assert f"{operation}Risposta".encode() in answer.content, where
        if operation not in ("paaSILChiediPosizioniAperte", "paaSILChiediStoricoPagamenti",
                             "paaSILRegistraPagamento"):
            assert FAULT.search(answer.content) or b"<stato>KO" in answer.content, where
        _assert_nothing_of_b(answer, body, secrets, where)

    # ImportaDovuto of B's IUD from A modifies or annuls nothing of B's.
    for azione in ("M", "A"):
        data = versamento(secrets["iud"]).replace(b"<azione>I</azione>", f"<azione>{azione}</azione>".encode())
        answer = service(gateway).paaSILImportaDovuto(password=a.password, dovuto=data, flagGeneraIuv=False,
                                                     _soapheaders=_head(a))
        assert answer.fault is not None, azione
    with gateway_db.transaction() as session:
        mine = session.get(Dovuto, secrets["dovuto_id"])
        assert (mine.state, mine.causale) == ("COMPLETATO", secrets["causale"])

    # FlussiSPC: B's flow by its id and time; A's list shows none of B's flows.
    local = "2031-05-05T11:00:00"  # dataOraFlusso in Rome time
    for psp in ("SIMPSP01", ""):
        body = _spc_envelope("paaSILChiediFlussoSPC", f"<password>{a.password}</password><codIpaEnte>{a.cod_ipa}"
                             f"</codIpaEnte><identificativoPsp>{psp}</identificativoPsp><tipoFlusso>R</tipoFlusso>"
                             f"<identificativoFlusso>{secrets['flow_id']}</identificativoFlusso>"
                             f"<dataOraFlusso>{local}</dataOraFlusso>")
        answer = post(gateway, SPC_PATH, body)
        assert b"<stato>KO</stato>" in answer.content and b"<downloadUrl>http" not in answer.content
        _assert_nothing_of_b(answer, body, secrets, "paaSILChiediFlussoSPC")
    body = _spc_envelope("paaSILChiediElencoFlussiSPC", f"<password>{a.password}</password><codIpaEnte>{a.cod_ipa}"
                         f"</codIpaEnte><identificativoPsp></identificativoPsp><tipoFlusso>R</tipoFlusso>"
                         f"<dateFrom>2031-05-01</dateFrom><dateTo>2031-05-10</dateTo>")
    answer = post(gateway, SPC_PATH, body)
    assert b"<totRestituiti>0</totRestituiti>" in answer.content
    _assert_nothing_of_b(answer, body, secrets, "paaSILChiediElencoFlussiSPC")

    # paForNode: A's identity asking B's notice number.
    body = node_envelope("paVerifyPaymentNoticeReq", f"<idPA>{a.fiscal_code}</idPA><idBrokerPA>99999000013</idBrokerPA>"
                         f"<idStation>99999000013_01</idStation><qrCode><fiscalCode>{a.fiscal_code}</fiscalCode>"
                         f"<noticeNumber>3{secrets['iuv']}</noticeNumber></qrCode>")
    answer = post(gateway, "/pa/paForNode", body)
    assert b"<faultCode>PAA_PAGAMENTO_SCONOSCIUTO</faultCode>" in answer.content
    _assert_nothing_of_b(answer, body, secrets, "paVerifyPaymentNotice")

    # A's own export of the same day holds only A's row (the RegistraPagamento above, on an IUV A sent).
    booking = service(gateway).paaSILPrenotaExportFlusso(password=a.password, dateFrom=date(2031, 5, 4),
                                                         dateTo=date(2031, 5, 4), _soapheaders=_head(a))
    run_jobs(gateway, gateway_db)
    status = service(gateway).paaSILChiediStatoExportFlusso(password=a.password, requestToken=booking.requestToken,
                                                            _soapheaders=_head(a))
    assert status.stato == "EXPORT_ESEGUITO"
    exported = requests.get(status.downloadUrl, timeout=30)
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        (member,) = archive.namelist()
        text = archive.read(member)
    assert text.count(b"\n") == 2  # the header and A's one row
    for key in ("name", "causale", "iud", "receipt", "iuv", "cod_ipa"):
        assert secrets[key].encode() not in text, key


def test_notice_link_cannot_be_turned_into_another_entes(gateway: Any, gateway_db: Any) -> None:
    secrets = _victim(gateway, gateway_db)
    a = create_ente(gateway_db)
    # The landing page by IUV needs the notice's own ente: A's code with B's IUV finds nothing.
    page = requests.get(f"{gateway.url}/pagamento/avviso", params={"ente": a.cod_ipa, "iuv": secrets["iuv"]},
                        allow_redirects=False, timeout=30)
    assert page.status_code == 404 and secrets["name"].encode() not in page.content
    own = service(gateway).paaSILImportaDovuto(password=a.password, dovuto=versamento("A-LINK"), flagGeneraIuv=True,
                                               _soapheaders=_head(a))
    assert requests.get(own.urlFileAvviso, timeout=30).status_code == 200
    prefix, token = own.urlFileAvviso.rsplit("/", 1)
    payload, rest = token.split(".", 1)
    forged_payload = base64.urlsafe_b64encode(json.dumps({"d": secrets["dovuto_id"]}).encode()).rstrip(b"=")
    for forged in (f"{prefix}/{forged_payload.decode()}.{rest}", own.urlFileAvviso.replace(
            "/avviso/", "/avviso/x"), secrets["avviso_url"] + "x"):
        answer = requests.get(forged, timeout=30)
        assert answer.status_code in (403, 404) and secrets["name"].encode() not in answer.content, forged
