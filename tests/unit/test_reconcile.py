"""Reconciliation rules on crafted rows, and storing crafted flows (revisions, invalid documents) on both backends."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from gateway.payments.documents import FlussoHeader, IdentificativoUnivoco, PagamentoFlusso, build_flusso
from gateway.rendicontazione import reconcile, report
from gateway.rendicontazione.reconcile import AMOUNT_MISMATCH, MATCHED, NO_RECEIPT, Candidate, build_index, classify
from gateway.rendicontazione.soap_client import unpack
from gateway.rendicontazione.store import FetchedFlow, flow_date, psp_from_flow_id, store_flow
from gateway.rendicontazione.validation import validate_file
from storage.models import Ente, Receipt, ReceiptPayment, RendicontazioneFlow, RendicontazioneRow
from tests.conftest import create_ente

D = Decimal


def test_classify_by_iuv_iur_and_index() -> None:
    index = build_index([Candidate(1, "IUV1", "R1", 1, D("10.00")), Candidate(2, "IUV1", "R1", 2, D("2.00")),
                         Candidate(3, "IUV2", "R2", 1, D("5.00"))])
    assert classify("IUV1", "R1", 1, D("10.00"), index) == reconcile.Outcome(MATCHED, 1)
    assert classify("IUV1", "R1", 2, D("2.00"), index) == reconcile.Outcome(MATCHED, 2)
    assert classify("IUV1", "R1", 2, D("2.50"), index) == reconcile.Outcome(AMOUNT_MISMATCH, 2)
    # Reported without receipt: unknown IUV, or a known IUV with another IUR (another payment of it).
    assert classify("IUV9", "R1", 1, D("10.00"), index) == reconcile.Outcome(NO_RECEIPT, None)
    assert classify("IUV1", "R9", 1, D("10.00"), index) == reconcile.Outcome(NO_RECEIPT, None)
    # Several transfers and an index none of them has: not guessed.
    assert classify("IUV1", "R1", 4, D("10.00"), index).state == NO_RECEIPT
    # No index (optional in the XSD): the transfer with that amount; a single transfer numbered differently too.
    assert classify("IUV1", "R1", None, D("2.00"), index) == reconcile.Outcome(MATCHED, 2)
    assert classify("IUV2", "R2", 3, D("5.00"), index) == reconcile.Outcome(MATCHED, 3)
    assert classify("IUV2", "R2", None, D("6.00"), index) == reconcile.Outcome(AMOUNT_MISMATCH, 3)


def test_flow_identity_helpers() -> None:
    assert psp_from_flow_id("2024-05-17ABI03069-S0000001") == "ABI03069"
    assert flow_date("2024-05-17ABI03069-S0000001", datetime(2024, 5, 18, tzinfo=timezone.utc)) == date(2024, 5, 17)
    assert flow_date("FLOW-X", datetime(2024, 5, 17, 23, 30, tzinfo=timezone.utc)) == date(2024, 5, 18)  # Rome


def _receipt(session, ente: Ente, iuv: str, iur: str, transfers: list[tuple[int, str]], paid: datetime) -> None:
    row = Receipt(ente_id=ente.id, fiscal_code=ente.fiscal_code, receipt_id=iur, iuv=iuv, source="paSendRTV2",
                  outcome="OK", amount=sum((D(a) for _, a in transfers), D("0")), paid_at=paid, raw=b"<r/>",
                  psp_id="PSP1")
    row.payments = [ReceiptPayment(index=i, iuv=iuv, iur=iur, amount=D(a), fiscal_code_pa=ente.fiscal_code)
                    for i, a in transfers]
    session.add(row)


def _flow(tmp: Path, fiscal_code: str, flow_id: str, moment: datetime, rows: list[PagamentoFlusso],
          name: str = "flow.xml") -> Path:
    header = FlussoHeader(identificativo_flusso=flow_id, data_ora_flusso=moment,
                          identificativo_univoco_regolamento="SCT1", data_regolamento=date(2026, 3, 2),
                          mittente=IdentificativoUnivoco("G", "99999000101"), ricevente=fiscal_code)
    path = tmp / name
    path.write_bytes(build_flusso(header, rows))
    return path


def test_store_reconcile_revisions_and_report(database, tmp_path: Path) -> None:
    demo = create_ente(database)
    paid = datetime(2026, 3, 1, 10, tzinfo=timezone.utc)
    with database.transaction() as session:
        ente = session.scalar(select(Ente).where(Ente.cod_ipa == demo.cod_ipa))
        ente_id, fc = ente.id, ente.fiscal_code
        _receipt(session, ente, "IUVA", "RA", [(1, "10.00"), (2, "3.00")], paid)
        _receipt(session, ente, "IUVB", "RB", [(1, "20.00")], paid)
        _receipt(session, ente, "IUVC", "RC", [(1, "7.00")], paid)  # never reported
    flow_id = "2026-03-01PSP1-S0000001"
    day = date(2026, 3, 1)
    rows = [PagamentoFlusso("IUVA", "RA", D("10.00"), "0", day, 1), PagamentoFlusso("IUVA", "RA", D("3.00"), "0", day, 2),
            PagamentoFlusso("IUVB", "RB", D("21.00"), "0", day, 1), PagamentoFlusso("IUVX", "RX", D("4.00"), "9", day, 1)]
    first = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
    path = _flow(tmp_path, fc, flow_id, first, rows)
    validate_file(path)
    stored = store_flow(database, ente_id, fc, FetchedFlow("soap", "PSP1", flow_id, first, None, None, path))
    assert stored.counts == {MATCHED: 2, AMOUNT_MISMATCH: 1, NO_RECEIPT: 1}
    # The same version again (another worker won the race) is not stored twice.
    assert store_flow(database, ente_id, fc, FetchedFlow("soap", "PSP1", flow_id, first, 1, None, path)) is None

    # A newer version becomes current; the older one is kept.
    second = datetime(2026, 3, 2, 11, tzinfo=timezone.utc)
    fixed = rows[:2] + [PagamentoFlusso("IUVB", "RB", D("20.00"), "0", day, 1)]
    path2 = _flow(tmp_path, fc, flow_id, second, fixed, "flow2.xml")
    again = store_flow(database, ente_id, fc, FetchedFlow("soap", "PSP1", flow_id, second, None, None, path2))
    assert again.counts == {MATCHED: 3, AMOUNT_MISMATCH: 0, NO_RECEIPT: 0}
    with database.transaction() as session:
        versions = session.execute(select(RendicontazioneFlow.revision, RendicontazioneFlow.current,
                                          RendicontazioneFlow.total_amount)
                                   .where(RendicontazioneFlow.ente_id == ente_id)
                                   .order_by(RendicontazioneFlow.revision)).all()
        assert [tuple(v) for v in versions] == [(1, False, D("38.00")), (2, True, D("33.00"))]
        ente = session.get(Ente, ente_id)
        summary = report.summary(session, ente, day, 3, now=datetime(2026, 3, 10, tzinfo=timezone.utc))
        assert (summary.flows, summary.payments, summary.counts[MATCHED], summary.not_reported) == (1, 3, 3, 1)
        unreported = [r for r in report.details(session, ente, day, 3, now=datetime(2026, 3, 10, tzinfo=timezone.utc))
                      if r["match_state"] == report.NOT_REPORTED]
        assert [(r["iuv"], r["receipt_amount"]) for r in unreported] == [("IUVC", D("7.00"))]
        # Not yet N days old on the report's day: not an anomaly.
        assert report.summary(session, ente, day, 3, now=datetime(2026, 3, 2, tzinfo=timezone.utc)).not_reported == 0


def test_late_receipt_is_matched_on_the_next_run(database, tmp_path: Path) -> None:
    demo = create_ente(database)
    with database.transaction() as session:
        ente_id, fc = session.execute(select(Ente.id, Ente.fiscal_code).where(Ente.cod_ipa == demo.cod_ipa)).one()
    moment = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
    path = _flow(tmp_path, fc, "2026-03-01PSP1-L1", moment,
                 [PagamentoFlusso("IUVL", "RL", D("9.00"), "0", date(2026, 3, 1), 1)])
    assert store_flow(database, ente_id, fc, FetchedFlow("fdr", "PSP1", "2026-03-01PSP1-L1", moment, 1, moment,
                                                         path)).counts[NO_RECEIPT] == 1
    with database.transaction() as session:
        _receipt(session, session.get(Ente, ente_id), "IUVL", "RL", [(1, "9.00")], moment)
    with database.transaction() as session:
        assert reconcile.rematch(session, ente_id, fc) == 1
        assert session.scalar(select(RendicontazioneRow.match_state).join(RendicontazioneFlow).where(
            RendicontazioneFlow.ente_id == ente_id)) == MATCHED


def test_invalid_or_foreign_flow_is_kept_as_ko(database, tmp_path: Path) -> None:
    demo = create_ente(database)
    with database.transaction() as session:
        ente_id, fc = session.execute(select(Ente.id, Ente.fiscal_code).where(Ente.cod_ipa == demo.cod_ipa)).one()
    moment = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
    # Addressed to another ente: stored KO, no rows.
    path = _flow(tmp_path, "12345678901", "2026-03-01PSP1-K1", moment,
                 [PagamentoFlusso("IUVK", "RK", D("1.00"), "0", date(2026, 3, 1), 1)])
    stored = store_flow(database, ente_id, fc, FetchedFlow("soap", "PSP1", "2026-03-01PSP1-K1", moment, None, None,
                                                           path))
    assert stored.state == "KO" and stored.rows == 0
    with database.transaction() as session:
        flow = session.scalar(select(RendicontazioneFlow).where(RendicontazioneFlow.ente_id == ente_id))
        assert (flow.state, flow.current) == ("KO", False) and "12345678901" in flow.error
        assert session.scalar(select(RendicontazioneRow.id).where(RendicontazioneRow.flow_id == flow.id)) is None


def test_validation_is_strict_but_reads_stand_in_codes(tmp_path: Path) -> None:
    moment = datetime(2026, 3, 2, 9)
    good = _flow(tmp_path, "12345678901", "F1", moment, [PagamentoFlusso("I", "R", D("1.00"), "4", date(2026, 3, 1))])
    validate_file(good)  # esito 4 (stand-in) is newer than the XSD: read, not refused
    bad = tmp_path / "bad.xml"
    bad.write_bytes(good.read_bytes().replace(b"<singoloImportoPagato>1.00", b"<singoloImportoPagato>x"))
    try:
        validate_file(bad)
    except Exception as exc:  # noqa: BLE001
        assert "singoloImportoPagato" in str(exc)
    else:
        raise AssertionError("invalid amount accepted")


def test_unpack_sniffs_zip_gzip_and_plain(tmp_path: Path) -> None:
    import gzip
    import zipfile

    xml = b"<?xml version='1.0'?><FlussoRiversamento/>"
    plain, zipped, gzipped = tmp_path / "p", tmp_path / "z", tmp_path / "g"
    plain.write_bytes(xml)
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("flow.xml", xml)
    gzipped.write_bytes(gzip.compress(xml))
    for source in (plain, zipped, gzipped):
        target = tmp_path / (source.name + ".out")
        unpack(source, target)
        assert target.read_bytes() == xml
