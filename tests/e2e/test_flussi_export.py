"""Exports end to end: paaSILPrenotaExportFlusso(+IncrementaleConRicevuta, +Scaduti), the job, ChiediStato*, download.

Paid positions are made the way the node makes them: a dovuto, then a paSendRTV2 receipt stored through
gateway.payments.receipts. Both backends.
"""

from __future__ import annotations

import base64
import csv
import io
import subprocess
import sys
import time
import zipfile
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import requests
from sqlalchemy import select

from gateway import faults
from gateway.flussi import sil
from gateway.payments import psp_receipts, states
from gateway.payments.node_side import IncomingReceipt, Subject, Transfer
from gateway.runtime import Runtime
from storage.models import Dovuto, Ente, TipoDovuto
from storage.types import utcnow
from tests.conftest import create_ente
from tests.e2e.test_flussi_import import header, run_jobs, service, settings_of

PAID_ON = datetime(2030, 3, 10, 11, 30, tzinfo=timezone.utc)


def add_dovuto(db, ente, iud: str, iuv: str, amount: str, *, causale: str = "Tassa rifiuti",  # noqa: ANN001
               payer_name: str = "Mario Rossi", due: date | None = None) -> None:
    with db.transaction() as session:
        row = session.scalar(select(Ente).where(Ente.cod_ipa == ente.cod_ipa))
        tipo = session.scalar(select(TipoDovuto).where(TipoDovuto.ente_id == row.id, TipoDovuto.code == "TARI"))
        dovuto = Dovuto(ente_id=row.id, tipo_dovuto_id=tipo.id, iud=iud, iuv=iuv, notice_number="3" + iuv,
                        state=states.INSERIMENTO_DOVUTO,
                        payer_type="F", payer_code="RSSMRA80A01H501U", payer_name=payer_name, amount=Decimal(amount),
                        causale=causale, dati_specifici_riscossione="9/0101100IM/", due_date=due)
        session.add(dovuto)
        states.record_creation(session, dovuto, reason="test")


def pay(db, ente, iuv: str, amount: str, causale: str = "Tassa rifiuti") -> None:  # noqa: ANN001
    with db.transaction() as session:
        row = session.scalar(select(Ente).where(Ente.cod_ipa == ente.cod_ipa))
        stored = psp_receipts.store_receipt(session, row, IncomingReceipt(
            version="paSendRTV2", receipt_id=f"R{iuv}", notice_number="3" + iuv, fiscal_code=ente.fiscal_code,
            outcome="OK", iuv=iuv, amount=Decimal(amount), description="TARI", company_name=ente.name,
            debtor=Subject("F", "RSSMRA80A01H501U", "Mario Rossi"),
            transfers=[Transfer(1, Decimal(amount), ente.fiscal_code, causale, "9/0101100IM/",
                                iban="IT60X0542811101000000123456")],
            psp_id="ABI03069", psp_name="Banca Esempio", channel_id="ABI03069_01", raw=f"<receipt>{iuv}</receipt>".encode(),
            payment_datetime=PAID_ON, fee=Decimal("1.00")))
        assert not stored.duplicate


def export_rows(url: str) -> tuple[list[str], list[list[str]], str]:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        (member,) = archive.namelist()
        text = archive.read(member).decode("utf-8")
    parsed = list(csv.reader(io.StringIO(text), delimiter=";"))
    return parsed[0], parsed[1:], text


def booked_status(gw, db, ente, booking, scaduti: bool = False):  # noqa: ANN001, ANN201
    assert booking.fault is None, booking.fault
    run_jobs(gw, db)
    operation = service(gw).paaSILChiediStatoExportFlussoScaduti if scaduti else \
        service(gw).paaSILChiediStatoExportFlusso
    return operation(password=ente.password, requestToken=booking.requestToken, _soapheaders=header(ente))


def test_export_pagati_versions_formula_injection_and_empty(gateway, gateway_db, ente) -> None:
    add_dovuti = [("P-1", "01000000000000101", "10.00", "=HYPERLINK(\"http://x\")", "@Mario"),
                  ("P-2", "01000000000000202", "25.50", "Mensa", "Anna Verdi"),
                  ("P-3", "01000000000000303", "7.00", "Non pagato", "Luca Neri")]
    for iud, iuv, amount, causale, name in add_dovuti:
        add_dovuto(gateway_db, ente, iud, iuv, amount, causale=causale, payer_name=name)
    pay(gateway_db, ente, "01000000000000101", "10.00", causale=add_dovuti[0][3])
    pay(gateway_db, ente, "01000000000000202", "25.50")
    soap = service(gateway)
    booking = soap.paaSILPrenotaExportFlusso(password=ente.password, dateFrom=date(2030, 3, 1),
                                             dateTo=date(2030, 3, 10), versioneTracciato="1.3",
                                             _soapheaders=header(ente))
    status = booked_status(gateway, gateway_db, ente, booking)
    assert (status.fault, status.stato) == (None, "EXPORT_ESEGUITO") and status.downloadUrl
    columns, rows, text = export_rows(status.downloadUrl)
    assert len(columns) == 64 + 4 and columns[:3] == ["iuf", "numRigaFlusso", "codIud"]
    assert all(line.startswith('"') and line.endswith('"') for line in text.split("\n")[:-1])  # every field quoted
    by_iud = {r[2]: dict(zip(columns, r)) for r in rows}
    assert sorted(by_iud) == ["P-1", "P-2"]
    first = by_iud["P-1"]
    assert first["causaleVersamento"].startswith("'=HYPERLINK") and first["anagraficaPagatore"] == "'@Mario"
    assert (first["singoloImportoPagato"], first["dataEsitoSingoloPagamento"], first["codiceEsitoPagamento"]) == \
        ("10.00", "2030-03-10", "0")
    assert (first["identificativoUnivocoVersamento"], first["identificativoDominio"], first["tipoDovuto"]) == \
        ("01000000000000101", ente.fiscal_code, "TARI")

    # Nothing paid in the window: executed, no file.
    empty = soap.paaSILPrenotaExportFlusso(password=ente.password, dateFrom=date(2030, 4, 1),
                                           dateTo=date(2030, 4, 2), _soapheaders=header(ente))
    status = booked_status(gateway, gateway_db, ente, empty)
    assert (status.stato, status.downloadUrl) == ("EXPORT_ESEGUITO_NESSUN_DOVUTO_TROVATO", None)


def test_incremental_export_gives_each_payment_exactly_once(gateway, gateway_db, ente) -> None:
    soap = service(gateway)
    add_dovuto(gateway_db, ente, "I-1", "01000000000000404", "12.00")
    add_dovuto(gateway_db, ente, "I-2", "01000000000000505", "13.00")
    t0 = utcnow() - timedelta(seconds=1)
    pay(gateway_db, ente, "01000000000000404", "12.00")
    time.sleep(0.05)
    t1 = utcnow()
    time.sleep(0.05)
    pay(gateway_db, ente, "01000000000000505", "13.00")
    seen: list[str] = []
    window_start = t0
    for window_end in (t1, None):
        booking = soap.paaSILPrenotaExportFlussoIncrementaleConRicevuta(
            password=ente.password, dateFrom=window_start, dateTo=window_end, ricevuta=True, incrementale=True,
            versioneTracciato="1.2", _soapheaders=header(ente))
        assert booking.dateTo is not None
        if window_end is not None:
            assert booking.dateTo == window_end
        status = booked_status(gateway, gateway_db, ente, booking)
        columns, rows, _ = export_rows(status.downloadUrl)
        assert len(columns) == 64 + 6 + 1 and columns[-1] == "bilancio"
        for values in rows:
            record = dict(zip(columns, values))
            seen.append(record["codIud"])
            assert base64.b64decode(record["rt"]) == f"<receipt>{record['codIuv']}</receipt>".encode()
            assert record["numRtDatiPagDatiSingPagCommissioniApplicatePsp"] == "1.00"
        window_start = booking.dateTo  # the client's next dateFrom
    assert seen == ["I-1", "I-2"]


def test_export_checks_and_faults(gateway, gateway_db, ente) -> None:
    soap = service(gateway)

    def prenota(**values):  # noqa: ANN202
        arguments = dict(password=ente.password, dateFrom=date(2030, 1, 2), dateTo=date(2030, 1, 3))
        arguments.update(values)
        return soap.paaSILPrenotaExportFlusso(_soapheaders=header(ente), **arguments).fault

    assert prenota(dateTo=date(2030, 1, 1)).faultCode == "PAA_INTERVALLO_DATE_NON_VALIDO"
    assert prenota(versioneTracciato="1_3").faultCode == "PAA_VERSIONE_TRACCIATO_NON_VALIDA"
    assert prenota(identificativoTipoDovuto="NON_ESISTE").faultCode == "PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_VALIDO"
    assert prenota(password="wrong-password").faultCode == "PAA_ENTE_NON_VALIDO"
    assert prenota(identificativoTipoDovuto="MENSA") is None

    other = create_ente(gateway_db)
    booking = soap.paaSILPrenotaExportFlusso(password=other.password, dateFrom=date(2030, 1, 2),
                                             dateTo=date(2030, 1, 3), _soapheaders=header(other))
    stolen = soap.paaSILChiediStatoExportFlusso(password=ente.password, requestToken=booking.requestToken,
                                                _soapheaders=header(ente))
    assert stolen.fault.faultCode == "PAA_REQUEST_TOKEN_NON_VALIDO"
    assert soap.paaSILChiediStatoExportFlusso(password=ente.password, requestToken="nope",
                                              _soapheaders=header(ente)).fault.faultCode == "PAA_REQUEST_TOKEN_NON_VALIDO"

    scaduti = soap.paaSILPrenotaExportFlussoScaduti
    assert scaduti(password=ente.password, dataScadenza=date(2030, 1, 1), tipiDovuto=" ; ",
                   _soapheaders=header(ente)).fault.faultCode == "PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_INSERITO"
    assert scaduti(password=ente.password, dataScadenza=date(2030, 1, 1), tipiDovuto="TARI;NOPE",
                   _soapheaders=header(ente)).fault.faultCode == "PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_VALIDO"

    # The MyPivot password is checked when the gateway has one configured.
    runtime = Runtime(settings=settings_of(gateway).with_overrides(mypivot_password="pivot-secret"),
                      database=gateway_db)
    try:
        sil.prenota_export_incrementale(runtime, ente.cod_ipa, ente.password, date_from=datetime(2020, 1, 1),
                                        date_to=None, tipo_dovuto=None, with_receipts=False, incremental=True,
                                        version=None, mypivot_password="wrong")
        raise AssertionError("fault expected")
    except faults.Fault as fault:
        assert fault.code == "CODE_PAA_PASSWORD_ALLINEAMENTO_MYPIVOT_NON_VALIDA"


def test_export_scaduti(gateway, gateway_db, ente) -> None:
    add_dovuto(gateway_db, ente, "S-1", "01000000000000606", "30.00", due=date(2030, 1, 10))
    add_dovuto(gateway_db, ente, "S-2", "01000000000000707", "31.00", due=date(2030, 2, 10))
    booking = service(gateway).paaSILPrenotaExportFlussoScaduti(password=ente.password, dataScadenza=date(2030, 2, 1),
                                                               tipiDovuto="TARI", _soapheaders=header(ente))
    status = booked_status(gateway, gateway_db, ente, booking, scaduti=True)
    assert status.stato == "EXPORT_ESEGUITO" and status.nomeFile.endswith(".zip")
    assert status.pathFile.startswith("/EXPORT/")
    columns, rows, _ = export_rows(status.downloadUrl)
    assert [r[0] for r in rows] == ["S-1"] and columns[-1] == "stato"


def test_cli_export(gateway, gateway_db, ente, tmp_path: Path) -> None:
    add_dovuto(gateway_db, ente, "C-1", "01000000000000808", "40.00")
    pay(gateway_db, ente, "01000000000000808", "40.00")
    out = tmp_path / "export.zip"
    result = subprocess.run([sys.executable, "-m", "gateway.cli", "flussi", "export", "--cod-ipa", ente.cod_ipa,
                             "--from", "2030-03-10", "--to", "2030-03-10", "--version", "1.1", "--receipts",
                             "--out", str(out)], env=gateway.env, capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr
    assert "righe: 1" in result.stdout
    with zipfile.ZipFile(out) as archive:
        (member,) = archive.namelist()
        assert member.startswith(f"{ente.cod_ipa}-") and member.endswith("-1_1.csv")
        lines = archive.read(member).decode().split("\n")
    assert len(lines) == 3 and '"C-1"' in lines[1]


SECONDARY_RECEIPT = """<receipt><receiptId>{receipt_id}</receiptId><noticeNumber>3{iuv}</noticeNumber>\
<fiscalCode>{primary}</fiscalCode><outcome>OK</outcome><creditorReferenceId>{iuv}</creditorReferenceId>\
<paymentAmount>100.00</paymentAmount><description>Trasporto scolastico</description>\
<companyName>{company}</companyName><debtor><uniqueIdentifier><entityUniqueIdentifierType>F\
</entityUniqueIdentifierType><entityUniqueIdentifierValue>RSSMRA80A01H501U</entityUniqueIdentifierValue>\
</uniqueIdentifier><fullName>=Mario Rossi</fullName><city>Venezia</city><e-mail>mario@example.org</e-mail></debtor>\
<transferList/><idPSP>ABI03069</idPSP><PSPCompanyName>Banca Esempio</PSPCompanyName>\
<payer><uniqueIdentifier><entityUniqueIdentifierType>G</entityUniqueIdentifierType>\
<entityUniqueIdentifierValue>01234567890</entityUniqueIdentifierValue></uniqueIdentifier>\
<fullName>Ditta Versante</fullName></payer></receipt>"""


def test_secondary_beneficiary_rows_in_the_1_3_export(gateway, gateway_db, ente) -> None:
    """A multi-beneficiary payment of ente A crediting ente B: B's 1.3 export with tipo EXPORT_ENTE_SECONDARIO
    has the row, built from the receipt; A's own export keeps only its own transfer."""
    beneficiary = create_ente(gateway_db)
    iuv = "01000000000000909"
    add_dovuto(gateway_db, ente, "MB-1", iuv, "100.00")
    raw = SECONDARY_RECEIPT.format(receipt_id=f"R{iuv}", iuv=iuv, primary=ente.fiscal_code, company=ente.name)
    with gateway_db.transaction() as session:
        row = session.scalar(select(Ente).where(Ente.cod_ipa == ente.cod_ipa))
        psp_receipts.store_receipt(session, row, IncomingReceipt(
            version="paSendRTV2", receipt_id=f"R{iuv}", notice_number="3" + iuv, fiscal_code=ente.fiscal_code,
            outcome="OK", iuv=iuv, amount=Decimal("100.00"), description="Trasporto scolastico",
            company_name=ente.name, debtor=Subject("F", "RSSMRA80A01H501U", "=Mario Rossi"),
            transfers=[Transfer(1, Decimal("70.00"), ente.fiscal_code, "Quota comune", "0101100IM",
                                iban="IT60X0542811101000000123456"),
                       Transfer(2, Decimal("30.00"), beneficiary.fiscal_code, None, "9/0201102IM/",
                                iban="IT60X0542811101000000654321")],
            psp_id="ABI03069", psp_name="Banca Esempio", channel_id="ABI03069_01", raw=raw.encode(),
            payment_datetime=PAID_ON, fee=Decimal("1.50")))
    soap = service(gateway)

    def export(who, version: str, tipo: str | None):  # noqa: ANN001, ANN202
        booking = soap.paaSILPrenotaExportFlussoIncrementaleConRicevuta(
            password=who.password, dateFrom=datetime(2030, 3, 1, tzinfo=timezone.utc),
            dateTo=datetime(2030, 3, 11, tzinfo=timezone.utc), identificativoTipoDovuto=tipo, ricevuta=True,
            incrementale=False, versioneTracciato=version, _soapheaders=header(who))
        return booked_status(gateway, gateway_db, who, booking)

    status = export(beneficiary, "1.3", "EXPORT_ENTE_SECONDARIO")
    assert status.stato == "EXPORT_ESEGUITO", status
    columns, rows, _ = export_rows(status.downloadUrl)
    assert len(columns) == 64 + 6 + 4
    (values,) = rows
    assert len(values) == len(columns)
    record = dict(zip(columns, values))
    assert (record["iuf"], record["codIud"], record["codIuv"], record["tipoDovuto"]) == \
        ("", "", iuv, "EXPORT_ENTE_SECONDARIO")
    assert (record["identificativoDominio"], record["enteBenefCodiceIdentificativoUnivoco"],
            record["denominazioneBeneficiario"]) == (beneficiary.fiscal_code, beneficiary.fiscal_code, beneficiary.name)
    assert (record["singoloImportoPagato"], record["importoTotalePagato"], record["codiceEsitoPagamento"],
            record["esitoSingoloPagamento"]) == ("30.00", "30.00", "0", "0")
    assert (record["identificativoMessaggioRicevuta"], record["identificativoUnivocoRiscoss"],
            record["codiceContestoPagamento"]) == (f"R{iuv}",) * 3
    assert (record["dataOraMessaggioRicevuta"], record["dataEsitoSingoloPagamento"]) == \
        ("2030-03-10T12:30:00", "2030-03-10")  # Europe/Rome
    assert (record["codiceIdentificativoUnivoco"], record["denominazioneAttestante"]) == ("ABI03069", "Banca Esempio")
    assert (record["soggPagCodiceIdentificativoUnivoco"], record["anagraficaPagatore"], record["localitaPagatore"],
            record["emailPagatore"]) == ("RSSMRA80A01H501U", "'=Mario Rossi", "Venezia", "mario@example.org")
    assert (record["soggVersTipoIdentificativoUnivoco"], record["anagraficaVersante"]) == ("G", "Ditta Versante")
    assert (record["causaleVersamento"], record["datiSpecificiRiscossione"]) == \
        ("Trasporto scolastico", "9/0201102IM/")
    assert (record["indiceDatiSingoloPagamento"], record["numRtDatiPagDatiSingPagCommissioniApplicatePsp"]) == \
        ("2", "1.50")
    assert base64.b64decode(record["rt"]) == raw.encode()
    assert (record["cod_fiscale_pa1"], record["de_nome_pa1"], record["cod_tassonomico_dovuto_pa1"]) == \
        (ente.fiscal_code, ente.name, "0101100IM")

    # Other tracciati have no such rows (as MyPay), and the primary ente exports only its own quota.
    assert export(beneficiary, "1.2", "EXPORT_ENTE_SECONDARIO").stato == "EXPORT_ESEGUITO_NESSUN_DOVUTO_TROVATO"
    assert export(beneficiary, "1.3", None).stato == "EXPORT_ESEGUITO_NESSUN_DOVUTO_TROVATO"
    own = export(ente, "1.3", None)
    _, own_rows, _ = export_rows(own.downloadUrl)
    assert [(r[2], r[57]) for r in own_rows] == [("MB-1", "70.00")]
    assert export(ente, "1.3", "EXPORT_ENTE_SECONDARIO").stato == "EXPORT_ESEGUITO_NESSUN_DOVUTO_TROVATO"
