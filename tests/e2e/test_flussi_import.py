"""Import flows end to end: paaSILAutorizzaImportFlusso, HTTP upload, the import job, ChiediStato, downloads.

zeep clients are built from MyPay's reference WSDL; jobs run through gateway.jobs on the gateway's database
(or in a worker subprocess for the crash test). Both backends.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import requests
import zeep
from sqlalchemy import func, select, update

from bench.flussi_gen import generate
from gateway import jobs
from gateway.flussi import bookings
from gateway.flussi import tasks as _tasks  # noqa: F401 - registers the job handlers
from gateway.flussi.tracciati import TRACCIATI
from gateway.settings import Settings
from storage.models import Dovuto, DovutoTransition, ImportFlow, ImportRejection, Job
from storage.types import utcnow
from tests.conftest import REFERENCE, create_ente

WSDL = str(REFERENCE / "mypay" / "wsdl" / "pa-per-ente.wsdl")
BINDING = "{http://www.regione.veneto.it/pagamenti/ente/PagamentiTelematiciDovutiPagati}" \
          "PagamentiTelematiciDovutiPagatiBinding"
PATH = "/ente/PagamentiTelematiciDovutiPagati"
KINDS = [bookings.IMPORT_JOB, bookings.EXPORT_JOB]
_clients: dict[str, Any] = {}


def service(gw) -> Any:  # noqa: ANN001
    if gw.url not in _clients:
        _clients[gw.url] = zeep.Client(WSDL).create_service(BINDING, gw.url + PATH)
    return _clients[gw.url]


def settings_of(gw) -> Settings:  # noqa: ANN001
    return Settings(database_url=gw.database_url, public_url=gw.env["ENTE_GATEWAY_PUBLIC_URL"],
                    data_dir=Path(gw.env["ENTE_GATEWAY_DATA_DIR"]), secret_key=gw.env["ENTE_GATEWAY_SECRET_KEY"])


def run_jobs(gw, db) -> None:  # noqa: ANN001
    while jobs.run_one(db, KINDS, settings=settings_of(gw)):
        pass


def header(ente) -> dict:  # noqa: ANN001
    return {"header": {"codIpaEnte": ente.cod_ipa}}


def authorize(gw, ente) -> Any:  # noqa: ANN001
    grant = service(gw).paaSILAutorizzaImportFlusso(password=ente.password, _soapheaders=header(ente))
    assert grant.fault is None
    return grant


def post(grant, name: str, data: bytes, *, token: str | None = "grant") -> requests.Response:  # noqa: ANN001
    params = {"authorizationToken": grant.authorizationToken if token == "grant" else token} if token else {}
    return requests.post(grant.uploadUrl, params=params, files={"file": (name, data, "application/zip")}, timeout=30)


def zipped(name: str, csv_text: str | bytes, member: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member or name.replace(".zip", ".csv"),
                         csv_text.encode("utf-8") if isinstance(csv_text, str) else csv_text)
    return buffer.getvalue()


def row(version: str = "1_3", **values: str) -> str:
    tracciato = TRACCIATI[version]
    base = {"IUD": "X", "tipoIdentificativoUnivoco": "F", "codiceIdentificativoUnivoco": "RSSMRA80A01H501U",
            "anagraficaPagatore": "Mario Rossi", "indirizzoPagatore": "Via Roma", "civicoPagatore": "10",
            "capPagatore": "30100", "localitaPagatore": "Venezia", "provinciaPagatore": "VE",
            "nazionePagatore": "IT", "emailPagatore": "mario.rossi@example.org",
            "dataScadenzaPagamento": "2030-06-30", "importoDovuto": "120.50", "tipoDovuto": "TARI",
            "causaleVersamento": "Tassa rifiuti 2030", "datiSpecificiRiscossione": "9/0101100IM/",
            "flagGeneraIuv": "false", "azione": "I"}
    base.update(values)
    return ";".join(base.get(name, "") for name in tracciato.names)


def stato(gw, ente, token: str, **flags: bool) -> Any:  # noqa: ANN001
    return service(gw).paaSILChiediStatoImportFlusso(password=ente.password, requestToken=token,
                                                    _soapheaders=header(ente), **flags)


def upload_and_run(gw, db, ente, name: str, data: bytes) -> Any:  # noqa: ANN001
    grant = authorize(gw, ente)
    response = post(grant, name, data)
    assert response.status_code == 200, response.text
    assert response.json()["requestToken"] == grant.requestToken
    run_jobs(gw, db)
    return grant


def download_csv(url: str) -> list[str]:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        (member,) = archive.namelist()
        return archive.read(member).decode("utf-8").split("\n")[:-1]


def dovuti_of(db, ente) -> dict[str, Dovuto]:  # noqa: ANN001
    from storage.models import Ente

    with db.sessions() as session:
        ente_id = session.scalar(select(Ente.id).where(Ente.cod_ipa == ente.cod_ipa))
        return {d.iud: d for d in session.scalars(select(Dovuto).where(Dovuto.ente_id == ente_id))}


BAD_ROWS = {  # IUD -> (row, expected code in the scarti file)
    "": (dict(IUD=""), "PAA_IMPORT_SINTASSI_CSV"),
    "B-CF": (dict(IUD="B-CF", codiceIdentificativoUnivoco="RSSMRA80A01H501X"), "PAA_IMPORT_SINTASSI_CSV_COD_FISC"),
    "B-AMOUNT": (dict(IUD="B-AMOUNT", importoDovuto="12,50"), "PAA_IMPORT_SINTASSI_CSV"),
    "B-TIPO": (dict(IUD="B-TIPO", tipoDovuto="NON_ESISTE"), "PAA_IMPORT_SINTASSI_CSV_TIPO_DOVUTO_INESISTENTE"),
    "B-AZIONE": (dict(IUD="B-AZIONE", azione="X"), "PAA_IMPORT_SINTASSI_CSV_AZIONE"),
    "B-DATE": (dict(IUD="B-DATE", dataScadenzaPagamento="2030-02-30"), "PAA_IMPORT_SINTASSI_CSV"),
    "B-M": (dict(IUD="B-M", azione="M"), "PAA_IMPORT_ERROR"),
    "B-EMAIL": (dict(IUD="B-EMAIL", emailPagatore="not an email"), "PAA_IMPORT_SINTASSI_CSV_EMAIL"),
    "B-IUV": (dict(IUD="B-IUV", codIuv="01001234567890123"), "PAA_IMPORT_SINTASSI_CSV_IUV"),
    "B-VERS": (dict(IUD="B-VERS", tipoVersamento="ALL|BP"), "PAA_IMPORT_SINTASSI_CSV_TIPO_VERS"),
}


def test_import_flow_good_and_bad_rows_then_modify_and_annul(gateway, gateway_db, ente) -> None:
    t = TRACCIATI["1_3"]
    lines = [t.header,
             row(IUD="G-1", flagGeneraIuv="true"),
             row(IUD="G-2", tipoIdentificativoUnivoco="G", codiceIdentificativoUnivoco="01234567897",
                 tipoDovuto="MENSA", causaleVersamento='"Mensa; settembre"'),
             row(IUD="G-3", codIuv="01120000000012345"),
             row(IUD="G-4"), "", row(IUD="G-5"),
             row(IUD="G-1")]  # duplicate of an accepted IUD
    expected_bad = {"G-1": "PAA_IMPORT_IUD_DUPLICATO"}
    for iud, (values, code) in BAD_ROWS.items():
        lines.append(row(**values))
        expected_bad[iud] = code
    lines.append(row(IUD="B-COLS") + ";extra")
    expected_bad["B-COLS"] = "PAA_IMPORT_SINTASSI_CSV"
    name = f"{ente.cod_ipa}-F1-1_3.zip"
    grant = upload_and_run(gateway, gateway_db, ente, name, zipped(name, "\r\n".join(lines) + "\r\n"))

    answer = stato(gateway, ente, grant.requestToken, fileScarti=True, fileIUV=True, fileAvvisi=True)
    assert answer.fault is None and answer.stato == "IMPORT_ESEGUITO"
    assert answer.urlFileScarti and answer.urlFileIUV and answer.urlFileAvvisi
    quiet = stato(gateway, ente, grant.requestToken)
    assert (quiet.urlFileScarti, quiet.urlFileIUV, quiet.urlFileAvvisi) == (None, None, None)

    scarti = download_csv(answer.urlFileScarti)
    assert scarti[0] == t.header + ";cod_rifiuto;de_rifiuto"
    rejected = [line.split(";") for line in scarti[1:]]
    assert [(r[0], r[-2]) for r in rejected] == list(expected_bad.items())  # every bad row, in file order
    assert all(r[-1] for r in rejected)  # with its reason
    assert any(line.startswith(";") and line.endswith("|IUD NON PRESENTE") for line in scarti)
    assert scarti[-1].endswith("|Too many columns")

    dovuti = dovuti_of(gateway_db, ente)
    assert sorted(dovuti) == ["G-1", "G-2", "G-3", "G-4", "G-5"]
    assert {d.state for d in dovuti.values()} == {"INSERIMENTO_DOVUTO"}
    assert dovuti["G-1"].iuv.startswith("0100") and dovuti["G-1"].notice_number == "3" + dovuti["G-1"].iuv
    assert dovuti["G-3"].iuv == "01120000000012345" and dovuti["G-2"].causale == "Mensa; settembre"
    iuv_lines = download_csv(answer.urlFileIUV)
    assert len(iuv_lines) == 6 and iuv_lines[1].split(";")[1] == dovuti["G-1"].iuv
    avvisi = requests.get(answer.urlFileAvvisi, timeout=30)
    assert zipfile.ZipFile(io.BytesIO(avvisi.content)).namelist() == [
        f"avviso_{ente.fiscal_code}_{dovuti['G-1'].iuv}.pdf"]
    with gateway_db.sessions() as session:
        flow = session.scalar(select(ImportFlow).where(ImportFlow.request_token == grant.requestToken))
        assert (flow.rows_total, flow.rows_imported, flow.rows_rejected, flow.pdf_count) == (17, 5, 12, 1)

    # A second flow modifies and annuls what the first loaded; positions reflect it at once.
    second = [t.header, row(IUD="G-4", azione="M", importoDovuto="200.00", causaleVersamento="Rettifica"),
              row(IUD="G-5", azione="A"), row(IUD="G-6")]
    name2 = f"{ente.cod_ipa}-F2-1_3.zip"
    grant2 = upload_and_run(gateway, gateway_db, ente, name2, zipped(name2, "\n".join(second)))
    assert stato(gateway, ente, grant2.requestToken).stato == "IMPORT_ESEGUITO"
    dovuti = dovuti_of(gateway_db, ente)
    assert (str(dovuti["G-4"].amount), dovuti["G-4"].causale, dovuti["G-4"].state) == \
        ("200.00", "Rettifica", "INSERIMENTO_DOVUTO")
    assert dovuti["G-5"].state == "ANNULLATO" and dovuti["G-6"].state == "INSERIMENTO_DOVUTO"
    with gateway_db.sessions() as session:
        moves = session.execute(select(DovutoTransition.from_state, DovutoTransition.to_state)
                                .where(DovutoTransition.dovuto_id == dovuti["G-5"].id)
                                .order_by(DovutoTransition.id)).all()
    assert [tuple(m) for m in moves] == [(None, "INSERIMENTO_DOVUTO"), ("INSERIMENTO_DOVUTO", "ANNULLATO")]

    # An annulled position can be neither modified nor annulled again; another ente cannot ask.
    third = [t.header, row(IUD="G-5", azione="M"), row(IUD="G-5", azione="A")]
    name3 = f"{ente.cod_ipa}-F3-1_3.zip"
    grant3 = upload_and_run(gateway, gateway_db, ente, name3, zipped(name3, "\n".join(third)))
    scarti3 = download_csv(stato(gateway, ente, grant3.requestToken, fileScarti=True).urlFileScarti)
    assert [line.split(";")[-2] for line in scarti3[1:]] == ["PAA_IMPORT_ERROR", "PAA_IMPORT_ERROR"]
    other = create_ente(gateway_db)
    refused = stato(gateway, other, grant.requestToken, fileScarti=True)
    assert refused.fault.faultCode == "PAA_REQUEST_TOKEN_NON_VALIDO" and refused.stato is None


def test_upload_refusals_change_nothing(gateway, gateway_db, ente) -> None:
    name = f"{ente.cod_ipa}-U1-1_3.zip"
    good = zipped(name, TRACCIATI["1_3"].header + "\n" + row(IUD="U-1") + "\n")
    grant = authorize(gateway, ente)
    assert post(grant, name, good, token=None).status_code == 401
    assert post(grant, name, good, token=grant.authorizationToken[:-3] + "abc").status_code == 401
    assert post(grant, name, b"this is not a zip at all").status_code == 400
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name.replace(".zip", ".csv"), b"\0" * (40 * 1024 * 1024))
    assert post(grant, name, bomb.getvalue()).status_code == 400
    with gateway_db.sessions() as session:
        flow = session.scalar(select(ImportFlow).where(ImportFlow.request_token == grant.requestToken))
        assert (flow.state, flow.upload_path) == ("LOAD_IMPORT", None)
        assert session.scalar(select(func.count()).select_from(Job).where(
            Job.dedupe_key == f"import:{flow.id}")) == 0
    # The form-field variant of the token works; the token then works only once.
    response = requests.post(grant.uploadUrl, data={"authorizationToken": grant.authorizationToken},
                             files={"file": (name, good, "application/zip")}, timeout=30)
    assert response.status_code == 200
    assert post(grant, name, good).status_code == 409
    run_jobs(gateway, gateway_db)
    assert stato(gateway, ente, grant.requestToken).stato == "IMPORT_ESEGUITO"
    assert requests.get(gateway.url + "/flussi/download/forged-token", timeout=10).status_code == 404


@pytest.mark.parametrize("case", ["header", "encoding", "ente", "version", "no_csv", "duplicate"])
def test_flow_level_errors_abort_without_touching_positions(gateway, gateway_db, ente, case: str) -> None:
    header_line = TRACCIATI["1_3"].header
    name = f"{ente.cod_ipa}-E1-1_3.zip"
    content = zipped(name, header_line + "\n" + row(IUD="E-1") + "\n")
    expected = {"header": "PAA_IMPORT_INTESTAZIONE_ERR(20,22)", "encoding": "PAA_IMPORT_CODIFICA_ERR",
                "ente": f"PAA_IMPORT_ENTE_ERR(C_ALTRO,{ente.cod_ipa})", "version": "PAA_IMPORT_FILE_VERSIONE_ERR(1_9)",
                "no_csv": "PAA_IMPORT_NO_CSV", "duplicate": "PAA_IMPORT_FLUSSO_DUPLICATO"}[case]
    if case == "header":
        content = zipped(name, TRACCIATI["1_1"].header + "\n" + row(IUD="E-1") + "\n")
    elif case == "encoding":
        content = zipped(name, (header_line + "\n" + row(IUD="E-1", anagraficaPagatore="Niccolò") + "\n")
                         .encode("latin-1"))
    elif case == "ente":
        name = "C_ALTRO-E1-1_3.zip"
    elif case == "version":
        name = f"{ente.cod_ipa}-E1-1_9.zip"
    elif case == "no_csv":
        content = zipped(name, header_line + "\n", member="altro.csv")
    elif case == "duplicate":
        upload_and_run(gateway, gateway_db, ente, name, content)
    before = dovuti_of(gateway_db, ente)
    grant = upload_and_run(gateway, gateway_db, ente, name, content)
    assert stato(gateway, ente, grant.requestToken).stato == expected
    with gateway_db.sessions() as session:
        flow = session.scalar(select(ImportFlow).where(ImportFlow.request_token == grant.requestToken))
        assert (flow.state, flow.error_code) == ("IMPORT_ABORTITO", expected)
    after = dovuti_of(gateway_db, ente)
    assert set(after) == set(before) == ({"E-1"} if case == "duplicate" else set())
    assert all(after[iud].updated_at == before[iud].updated_at for iud in after)


WORKER = """
import sys
from gateway import jobs
from gateway.flussi import tasks
from gateway.settings import load_settings
from storage.db import Database
settings = load_settings()
while jobs.run_one(Database(settings.database_url), ["flussi.import"], settings=settings):
    pass
"""


def _final(db, request_token: str) -> tuple:  # noqa: ANN001
    with db.sessions() as session:
        flow = session.scalar(select(ImportFlow).where(ImportFlow.request_token == request_token))
        dovuti = session.scalar(select(func.count()).select_from(Dovuto).where(Dovuto.import_flow_id == flow.id))
        rejections = session.scalar(select(func.count()).select_from(ImportRejection)
                                    .where(ImportRejection.import_flow_id == flow.id))
        return flow, dovuti, rejections


def test_killed_worker_resumes_to_the_same_result(gateway, gateway_db, tmp_path: Path) -> None:
    rows = 20000  # large enough that the poll below always catches the worker mid-flow
    results = []
    for killed in (False, True):
        ente = create_ente(gateway_db)
        flow = generate(tmp_path, ente.cod_ipa, "K1", rows, version="1_3", bad=0.05, genera_iuv=0.0, seed=7)
        grant = authorize(gateway, ente)
        assert post(grant, flow.path.name, flow.path.read_bytes()).status_code == 200
        if killed:
            env = dict(gateway.env, ENTE_GATEWAY_FLUSSI_BATCH_SIZE="100", ENTE_GATEWAY_LOG_LEVEL="WARNING")
            process = subprocess.Popen([sys.executable, "-c", WORKER], env=env, cwd=Path(__file__).parents[2])
            deadline = time.monotonic() + 60
            done = 0
            while time.monotonic() < deadline and process.poll() is None:
                with gateway_db.sessions() as session:
                    done = session.scalar(select(ImportFlow.last_row_done)
                                          .where(ImportFlow.request_token == grant.requestToken)) or 0
                if done >= 500:
                    break
                time.sleep(0.005)
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            half, _, _ = _final(gateway_db, grant.requestToken)
            assert half.state == "IMPORT_IN_ELAB" and 0 < half.last_row_done < rows  # really killed mid-import
            with gateway_db.transaction() as session:  # the dead worker's lease runs out
                session.execute(update(Job).where(Job.state == "running", Job.kind == bookings.IMPORT_JOB)
                                .values(locked_until=utcnow()))
        run_jobs(gateway, gateway_db)
        final, dovuti, rejections = _final(gateway_db, grant.requestToken)
        answer = stato(gateway, ente, grant.requestToken, fileScarti=True, fileIUV=True)
        scarti = [line.split(";", 1)[1] for line in download_csv(answer.urlFileScarti)[1:]]
        iuv_lines = [line.split(";", 1)[1] for line in download_csv(answer.urlFileIUV)[1:]]
        assert (final.state, final.rows_imported, final.rows_rejected) == \
            ("IMPORT_ESEGUITO", len(flow.good_iuds), len(flow.bad_rows))
        assert dovuti == len(flow.good_iuds) and rejections == len(flow.bad_rows)
        results.append((scarti, iuv_lines))
    assert results[0] == results[1]  # same scarti and IUV files, row for row


def test_cli_import(gateway, gateway_db, ente, tmp_path: Path) -> None:
    name = f"{ente.cod_ipa}-CLI1-1_2.zip"
    lines = [TRACCIATI["1_2"].header, row("1_2", IUD="C-1"), row("1_2", IUD="C-2", importoDovuto="0")]
    (tmp_path / name).write_bytes(zipped(name, "\n".join(lines)))
    result = subprocess.run([sys.executable, "-m", "gateway.cli", "flussi", "import", str(tmp_path / name),
                             "--cod-ipa", ente.cod_ipa], env=gateway.env, capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr
    assert "IMPORT_ESEGUITO" in result.stdout and "importate: 1" in result.stdout
    scarti = [line for line in result.stdout.splitlines() if line.startswith("scarti: ")]
    assert len(scarti) == 1 and Path(scarti[0][8:]).is_file()
    assert dovuti_of(gateway_db, ente)["C-1"].state == "INSERIMENTO_DOVUTO"
