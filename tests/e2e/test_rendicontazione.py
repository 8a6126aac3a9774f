"""Rendicontazione end to end: payments through the simulator, the day's flows published by the simulated PSPs
(FdR with a revision, and SOAP for a station configured legacy), ``ente-gateway flows fetch``, reconciliation,
the FlussiSPC operations through zeep from MyPivot's reference WSDL, the signed download, the report CLI.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest
import requests
import zeep
from lxml import etree
from sqlalchemy import select

from gateway import jobs
from gateway.settings import load_settings
from storage.db import Database
from storage.models import Ente, Job, Receipt, RendicontazioneFlow, RendicontazioneRow
from tests.conftest import REFERENCE, BACKENDS, create_ente, new_database_url, start_gateway, stop_gateway

ROME = ZoneInfo("Europe/Rome")
SPC_WSDL = str(REFERENCE / "mypay" / "wsdl" / "mypivot-pa-per-ente.wsdl")
SPC_BINDING = "{http://www.regione.veneto.it/pagamenti/pa/PagamentiTelematiciFlussiSPC}PagamentiTelematiciFlussiSPCbinding"
SPC_PATH = "/ente/PagamentiTelematiciFlussiSPC"
ENTE_WSDL = str(REFERENCE / "mypay" / "wsdl" / "pa-per-ente.wsdl")
ENTE_BINDING = "{http://www.regione.veneto.it/pagamenti/ente/PagamentiTelematiciDovutiPagati}" \
               "PagamentiTelematiciDovutiPagatiBinding"
ENTE_PATH = "/ente/PagamentiTelematiciDovutiPagati"
ENTE_NS = "http://www.regione.veneto.it/schemas/2012/Pagamenti/Ente/"
FLUSSO_XSD = REFERENCE / "pagopa" / "xsd-common" / "FlussoRiversamento_1_0_4.xsd"
PAY_NS = "http://www.digitpa.gov.it/schemas/2011/Pagamenti/"


@pytest.fixture(scope="module", params=BACKENDS)
def simgw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A gateway with the simulator mounted (the node, the PSPs and their reporting live under /sim)."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
    tmp = tmp_path_factory.mktemp(f"rend-{request.param}")
    running = start_gateway(new_database_url(request.param, request, tmp), tmp,
                            args=("--with-simulator", "--threads", "8"))
    yield running
    stop_gateway(running)


@pytest.fixture
def db(simgw: Any) -> Iterator[Database]:
    database = Database(simgw.database_url)
    yield database
    database.dispose()


def spc(gateway: Any) -> Any:
    path = SPC_PATH
    return zeep.Client(SPC_WSDL).create_service(SPC_BINDING, gateway.url + path)


def cli(gateway: Any, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "gateway.cli", *args], env={**gateway.env, **env},
                          capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def sim(gateway: Any, path: str, body: dict[str, Any]) -> Any:
    answer = requests.post(f"{gateway.url}/sim/api/{path}", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def versamento(iud: str, amount: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><Versamento xmlns="{ENTE_NS}"><versioneOggetto>6.2.0'
            f"</versioneOggetto><soggettoPagatore><identificativoUnivocoPagatore><tipoIdentificativoUnivoco>F"
            f"</tipoIdentificativoUnivoco><codiceIdentificativoUnivoco>RSSMRA80A01H501U</codiceIdentificativoUnivoco>"
            f"</identificativoUnivocoPagatore><anagraficaPagatore>Mario Rossi</anagraficaPagatore>"
            f"</soggettoPagatore><datiVersamento><identificativoUnivocoDovuto>{iud}</identificativoUnivocoDovuto>"
            f"<importoSingoloVersamento>{amount}</importoSingoloVersamento><identificativoTipoDovuto>TARI"
            f"</identificativoTipoDovuto><causaleVersamento>TARI {iud}</causaleVersamento>"
            f"<datiSpecificiRiscossione>9/0101100IM/</datiSpecificiRiscossione></datiVersamento><azione>I</azione>"
            f"</Versamento>").encode()


def pay(gateway: Any, db: Database, ente: Any, iud: str, amount: str, psp: str) -> str:
    """A dovuto made with paaSILImportaDovuto and paid at a simulated PSP; returns its IUV once receipted."""
    service = zeep.Client(ENTE_WSDL).create_service(ENTE_BINDING, gateway.url + ENTE_PATH)
    answer = service.paaSILImportaDovuto(password=ente.password, dovuto=versamento(iud, amount), flagGeneraIuv=True,
                                         _soapheaders={"header": {"codIpaEnte": ente.cod_ipa}})
    assert answer.esito == "OK", answer.fault
    iuv = answer.identificativoUnivocoVersamento
    sim(gateway, "pay", {"fiscalCode": ente.fiscal_code, "noticeNumber": "3" + iuv, "psp": psp, "wait": 20})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with db.transaction() as session:
            if session.scalar(select(Receipt.id).where(Receipt.fiscal_code == ente.fiscal_code, Receipt.iuv == iuv)):
                return iuv
        time.sleep(0.1)
    raise AssertionError(f"no receipt for {iuv}")


def fetch(gateway: Any, db: Database, ente: Any, transport: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """The fetch run in this process (same code as the CLI and the job); returns the new flows stored."""
    from gateway.rendicontazione.fetch import fetch_all

    monkeypatch.setenv("ENTE_GATEWAY_REPORTING_TRANSPORT", transport)
    settings = load_settings(database_url=gateway.database_url, node_url=gateway.env["ENTE_GATEWAY_NODE_URL"])
    (report,), unavailable = fetch_all(db, settings, ente.cod_ipa)
    assert unavailable == [] and report.refused == []
    return report.new_flows


def snapshot(db: Database, fiscal_code: str) -> list[tuple]:
    with db.transaction() as session:
        ente_id = session.scalar(select(Ente.id).where(Ente.fiscal_code == fiscal_code))
        flows = session.execute(select(RendicontazioneFlow.id, RendicontazioneFlow.psp_id, RendicontazioneFlow.flow_id,
                                       RendicontazioneFlow.revision, RendicontazioneFlow.current,
                                       RendicontazioneFlow.state, RendicontazioneFlow.updated_at)
                                .where(RendicontazioneFlow.ente_id == ente_id)
                                .order_by(RendicontazioneFlow.id)).all()
        rows = session.execute(select(RendicontazioneRow.id, RendicontazioneRow.flow_id, RendicontazioneRow.match_state,
                                      RendicontazioneRow.receipt_payment_id)
                               .join(RendicontazioneFlow, RendicontazioneFlow.id == RendicontazioneRow.flow_id)
                               .where(RendicontazioneFlow.ente_id == ente_id)
                               .order_by(RendicontazioneRow.id)).all()
    return [tuple(f) for f in flows] + [tuple(r) for r in rows]


def flows_of(db: Database, fiscal_code: str) -> list[RendicontazioneFlow]:
    with db.transaction() as session:
        found = session.scalars(select(RendicontazioneFlow).join(Ente, Ente.id == RendicontazioneFlow.ente_id)
                                .where(Ente.fiscal_code == fiscal_code)
                                .order_by(RendicontazioneFlow.id)).all()
        session.expunge_all()
        return list(found)


def states(db: Database, flow_pk: int) -> dict[str, int]:
    with db.transaction() as session:
        out: dict[str, int] = {}
        for state in session.scalars(select(RendicontazioneRow.match_state)
                                     .where(RendicontazioneRow.flow_id == flow_pk)):
            out[state] = out.get(state, 0) + 1
        return out


def test_flows_fetched_reconciled_and_served(simgw: Any, db: Database, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    ente = create_ente(db)
    other = create_ente(db)
    today = datetime.now(ROME).date()
    # Three payments at one PSP, one at a second PSP (reported over SOAP), one at a third never reported.
    plan = [("R-1", "10.00", "SIMPSP01"), ("R-2", "20.00", "SIMPSP01"), ("R-3", "30.50", "SIMPSP01"),
            ("R-4", "40.00", "ABI99999"), ("R-5", "5.00", "POSTSIM1")]
    with ThreadPoolExecutor(len(plan)) as pool:
        paid = list(pool.map(lambda p: pay(simgw, db, ente, *p), plan))
    iuvs, legacy_iuv = paid[:3], paid[3]

    # Revision 1 over FdR: clean.
    (first,) = sim(simgw, "report", {"dominio": ente.fiscal_code, "psp": "SIMPSP01", "transport": "fdr"})["flows"]
    assert first["payments"] == 3
    done = cli(simgw, "flows", "fetch", "--cod-ipa", ente.cod_ipa)
    assert "1 new flows, 3 payments" in done.stdout
    (rev1,) = flows_of(db, ente.fiscal_code)
    assert (rev1.transport, rev1.revision, rev1.current, rev1.state, rev1.total_payments) == ("fdr", 1, True, "OK", 3)
    assert rev1.total_amount == Decimal("60.50") and rev1.flow_date == today
    assert states(db, rev1.id) == {"matched": 3}

    # Revision 2 of the same flow with the planted anomalies: one payment without receipt, one amount changed.
    sim(simgw, "report", {"dominio": ente.fiscal_code, "psp": "SIMPSP01", "transport": "fdr", "revise": True,
                          "extra_payment": {"iuv": "99000000000000777", "iur": "IUR-NO-RECEIPT", "amount": "7.00"},
                          "amount_delta": "1.50"})
    # The second PSP's flow goes through the legacy SOAP reporting.
    sim(simgw, "report", {"dominio": ente.fiscal_code, "psp": "ABI99999", "transport": "soap"})
    assert fetch(simgw, db, ente, "fdr", monkeypatch) == 1
    assert fetch(simgw, db, ente, "soap", monkeypatch) == 1
    rev1, rev2, legacy = flows_of(db, ente.fiscal_code)
    assert (rev1.revision, rev1.current) == (1, False)
    assert (rev2.flow_id, rev2.revision, rev2.current, rev2.total_payments) == (rev1.flow_id, 2, True, 4)
    assert states(db, rev2.id) == {"matched": 2, "amount_mismatch": 1, "no_receipt": 1}
    assert (legacy.transport, legacy.psp_id, legacy.current, legacy.state) == ("soap", "ABI99999", True, "OK")
    assert states(db, legacy.id) == {"matched": 1}
    with db.transaction() as session:
        mismatch = session.execute(select(RendicontazioneRow.iuv, RendicontazioneRow.amount).where(
            RendicontazioneRow.flow_id == rev2.id, RendicontazioneRow.match_state == "amount_mismatch")).one()
        # The simulator changes the first payment it reports, whichever the concurrent payments made first.
        assert mismatch.amount == Decimal(plan[iuvs.index(mismatch.iuv)][1]) + Decimal("1.50")
        legacy_row = session.execute(select(RendicontazioneRow.iuv).where(
            RendicontazioneRow.flow_id == legacy.id)).scalar_one()
        assert legacy_row == legacy_iuv

    # Idempotent: further runs, through either transport, change nothing.
    before = snapshot(db, ente.fiscal_code)
    assert "0 new flows" in cli(simgw, "flows", "fetch", "--cod-ipa", ente.cod_ipa).stdout
    assert fetch(simgw, db, ente, "soap", monkeypatch) == 0
    assert fetch(simgw, db, ente, "fdr", monkeypatch) == 0
    assert snapshot(db, ente.fiscal_code) == before

    # --- FlussiSPC through zeep -----------------------------------------------------------------
    service = spc(simgw)
    listed = service.paaSILChiediElencoFlussiSPC(password=ente.password, codIpaEnte=ente.cod_ipa,
                                                 identificativoPsp="", tipoFlusso="R", dateFrom=today,
                                                 dateTo=today)
    assert listed.fault is None and listed.elencoFlussiSPC.totRestituiti == 3
    assert sorted(i.identificativoFlusso for i in listed.elencoFlussiSPC.idSPC) == sorted(
        [rev1.flow_id, rev1.flow_id, legacy.flow_id])
    one = service.paaSILChiediElencoFlussiSPC(password=ente.password, codIpaEnte=ente.cod_ipa,
                                              identificativoPsp="ABI99999", tipoFlusso="R",
                                              dateFrom=today - timedelta(days=3), dateTo=today)
    (item,) = one.elencoFlussiSPC.idSPC
    assert item.identificativoFlusso == legacy.flow_id
    assert item.dataOraFlusso.tzinfo is None and item.dataOraFlusso.microsecond == 0
    assert item.dataOraFlusso == legacy.flow_datetime.astimezone(ROME).replace(tzinfo=None, microsecond=0)
    raw_answer = _raw_elenco(simgw, ente, today)
    assert b"<dataOraFlusso>" in raw_answer and b"+" not in raw_answer.split(b"<dataOraFlusso>")[1][:25]

    # Nothing of this ente for another ente, and no flows before today.
    assert service.paaSILChiediElencoFlussiSPC(password=other.password, codIpaEnte=other.cod_ipa,
                                               identificativoPsp="", tipoFlusso="R", dateFrom=today,
                                               dateTo=today).elencoFlussiSPC.totRestituiti == 0
    assert service.paaSILChiediElencoFlussiSPC(password=ente.password, codIpaEnte=ente.cod_ipa,
                                               identificativoPsp="", tipoFlusso="R", dateFrom=today - timedelta(5),
                                               dateTo=today - timedelta(1)).elencoFlussiSPC.totRestituiti == 0
    quadratura = service.paaSILChiediElencoFlussiSPC(password=ente.password, codIpaEnte=ente.cod_ipa,
                                                     identificativoPsp="", tipoFlusso="Q", dateFrom=today,
                                                     dateTo=today)
    assert quadratura.fault is None and quadratura.elencoFlussiSPC.totRestituiti == 0

    current_dt = rev2.flow_datetime.astimezone(ROME).replace(tzinfo=None, microsecond=0)
    got = service.paaSILChiediFlussoSPC(password=ente.password, codIpaEnte=ente.cod_ipa, identificativoPsp="SIMPSP01",
                                        tipoFlusso="R", identificativoFlusso=rev2.flow_id, dataOraFlusso=current_dt)
    assert got.fault is None and got.stato == "OK" and got.downloadUrl
    downloaded = requests.get(got.downloadUrl, timeout=30)
    assert downloaded.status_code == 200
    schema = etree.XMLSchema(etree.parse(str(FLUSSO_XSD)))
    document = etree.fromstring(downloaded.content)
    schema.assertValid(document)
    assert len(document.findall(f"{{{PAY_NS}}}datiSingoliPagamenti")) == 4
    assert document.findtext(f"{{{PAY_NS}}}identificativoFlusso") == rev2.flow_id
    # The legacy flow is served as the PSP sent it.
    got_legacy = service.paaSILChiediFlussoSPC(password=ente.password, codIpaEnte=ente.cod_ipa,
                                               identificativoPsp="ABI99999", tipoFlusso="R",
                                               identificativoFlusso=legacy.flow_id, dataOraFlusso=item.dataOraFlusso)
    assert got_legacy.stato == "OK"
    with db.transaction() as session:
        raw = session.scalar(select(RendicontazioneFlow.raw).where(RendicontazioneFlow.id == legacy.id))
    assert requests.get(got_legacy.downloadUrl, timeout=30).content == raw

    # A signed URL is bound to its ente and cannot be tampered with.
    assert requests.get(got.downloadUrl.replace("securityToken=", "securityToken=x"), timeout=30).status_code == 403
    with db.transaction() as session:
        other_id = session.scalar(select(Ente.id).where(Ente.cod_ipa == other.cod_ipa))
    moved = got.downloadUrl.replace(f"/rendicontazione/download/{rev2.ente_id}?", f"/rendicontazione/download/{other_id}?")
    assert requests.get(moved, timeout=30).status_code == 403

    # Not found, another ente, quadratura: KO without URL.
    for password, cod_ipa, kind, flow_dt in ((ente.password, ente.cod_ipa, "R", current_dt - timedelta(hours=5)),
                                             (other.password, other.cod_ipa, "R", current_dt),
                                             (ente.password, ente.cod_ipa, "Q", current_dt)):
        ko = service.paaSILChiediFlussoSPC(password=password, codIpaEnte=cod_ipa, identificativoPsp="SIMPSP01",
                                           tipoFlusso=kind, identificativoFlusso=rev2.flow_id, dataOraFlusso=flow_dt)
        assert ko.stato == "KO" and not ko.downloadUrl and ko.fault is None

    # --- report CLI: exactly the planted anomalies ------------------------------------------------
    out = tmp_path / "report.csv"
    done = cli(simgw, "flows", "report", "--cod-ipa", ente.cod_ipa, "--date", today.isoformat(), "--out", str(out),
               "--unreported-days", "0")
    assert "flows: 2" in done.stdout and "payments: 5" in done.stdout
    assert "matched: 3" in done.stdout and "no_receipt: 1" in done.stdout and "amount_mismatch: 1" in done.stdout
    assert "receipts not yet reported: 1" in done.stdout
    with open(out, newline="") as handle:
        records = list(csv.DictReader(handle, delimiter=";"))
    anomalies = sorted((r["match_state"], r["iuv"]) for r in records if r["match_state"] != "matched")
    assert anomalies == sorted([("no_receipt", "99000000000000777"), ("amount_mismatch", mismatch.iuv),
                                ("not_reported", anomalies[-1][1])])
    assert [r["psp_id"] for r in records if r["match_state"] == "not_reported"] == ["POSTSIM1"]
    # With the default 3 days, today's unreported receipt is not an anomaly yet.
    assert "receipts not yet reported: 0" in cli(simgw, "flows", "report", "--cod-ipa", ente.cod_ipa,
                                                 "--date", today.isoformat()).stdout


def _raw_elenco(gateway: Any, ente: Any, day: date) -> bytes:
    body = (f'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            f'xmlns:pa="http://www.regione.veneto.it/pagamenti/pa/"><soapenv:Body><pa:paaSILChiediElencoFlussiSPC>'
            f"<password>{ente.password}</password><codIpaEnte>{ente.cod_ipa}</codIpaEnte>"
            f"<identificativoPsp>ABI99999</identificativoPsp><tipoFlusso>R</tipoFlusso><dateFrom>{day}</dateFrom>"
            f"<dateTo>{day}</dateTo></pa:paaSILChiediElencoFlussiSPC></soapenv:Body></soapenv:Envelope>")
    answer = requests.post(gateway.url + SPC_PATH, data=body.encode(), timeout=30,
                           headers={"Content-Type": "text/xml; charset=utf-8"})
    assert answer.status_code == 200
    return answer.content


def test_spc_faults(simgw: Any, db: Database) -> None:
    ente = create_ente(db)
    service = spc(simgw)
    today = date.today()
    wrong = service.paaSILChiediElencoFlussiSPC(password="Wrong-pass1", codIpaEnte=ente.cod_ipa, identificativoPsp="",
                                                tipoFlusso="R", dateFrom=today, dateTo=today)
    assert wrong.fault.faultCode == "PAA_ENTE_NON_VALIDO" and wrong.elencoFlussiSPC is None
    swapped = service.paaSILChiediElencoFlussiSPC(password=ente.password, codIpaEnte=ente.cod_ipa,
                                                  identificativoPsp="", tipoFlusso="R", dateFrom=today,
                                                  dateTo=today - timedelta(days=1))
    assert (swapped.fault.faultCode, swapped.fault.faultString) == ("PAA_ENTE_NON_VALIDO",
                                                                    "Intervallo data Extraction non valida")
    bad_kind = service.paaSILChiediElencoFlussiSPC(password=ente.password, codIpaEnte=ente.cod_ipa,
                                                   identificativoPsp="", tipoFlusso="X", dateFrom=today, dateTo=today)
    assert (bad_kind.fault.faultCode, bad_kind.fault.serial) == ("CODE_PAA_ERRORE_INTERNO", 1)
    # A missing date (hand-built envelope: zeep refuses to leave out a required field).
    body = (f'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            f'xmlns:pa="http://www.regione.veneto.it/pagamenti/pa/"><soapenv:Body><pa:paaSILChiediElencoFlussiSPC>'
            f"<password>{ente.password}</password><codIpaEnte>{ente.cod_ipa}</codIpaEnte>"
            f"<identificativoPsp></identificativoPsp><tipoFlusso>R</tipoFlusso><dateTo>{today}</dateTo>"
            f"</pa:paaSILChiediElencoFlussiSPC></soapenv:Body></soapenv:Envelope>")
    answer = requests.post(simgw.url + SPC_PATH, data=body.encode(), timeout=30,
                           headers={"Content-Type": "text/xml; charset=utf-8"})
    assert b"<faultCode>PAA_ENTE_NON_VALIDO</faultCode>" in answer.content
    assert b"<faultString>Data inizio non valida</faultString>" in answer.content

    ko = service.paaSILChiediFlussoSPC(password="Wrong-pass1", codIpaEnte=ente.cod_ipa, identificativoPsp="X",
                                       tipoFlusso="R", identificativoFlusso="F1", dataOraFlusso=datetime(2026, 1, 1))
    assert ko.stato == "KO" and ko.fault.faultCode == "PAA_ENTE_NON_VALIDO"
    odd = service.paaSILChiediFlussoSPC(password=ente.password, codIpaEnte=ente.cod_ipa, identificativoPsp="X",
                                        tipoFlusso="Z", identificativoFlusso="F1", dataOraFlusso=datetime(2026, 1, 1))
    assert odd.stato == "KO" and odd.fault.faultCode == "CODE_PAA_ERRORE_INTERNO"


def test_node_unreachable_retries_later_and_writes_nothing(simgw: Any, db: Database) -> None:
    ente = create_ente(db)
    dead = "http://127.0.0.1:9/sim"  # discard port: connection refused
    done = cli(simgw, "flows", "fetch", "--cod-ipa", ente.cod_ipa, check=False, ENTE_GATEWAY_NODE_URL=dead)
    assert done.returncode == 1 and "node unavailable" in done.stderr
    # The worker's job asks to run again later instead of failing.
    from gateway.rendicontazione import tasks

    with db.transaction() as session:
        ente_id = session.scalar(select(Ente.id).where(Ente.cod_ipa == ente.cod_ipa))
        job = jobs.enqueue(session, tasks.FETCH_JOB, {"ente_id": ente_id}, dedupe_key=f"test-fetch:{ente_id}")
        job_id = job.id
    settings = load_settings(database_url=simgw.database_url, node_url=dead)
    with db.transaction() as session:
        # Only our job is due: others may be queued by the gateway's own scheduling.
        session.query(Job).filter(Job.kind == tasks.FETCH_JOB, Job.id != job_id, Job.state == "queued") \
            .update({"run_after": datetime.now(ROME) + timedelta(hours=1)})
    assert jobs.run_one(db, kinds=[tasks.FETCH_JOB], settings=settings)
    with db.transaction() as session:
        job = session.get(Job, job_id)
        assert (job.state, job.attempts) == ("queued", 0) and "not reachable" in job.last_error
    assert flows_of(db, ente.fiscal_code) == []
