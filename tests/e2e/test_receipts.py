"""Receipts through the running gateway: paSendRT[V2] never dropped (unknown, annulled, mismatched, late,
concurrent, KO), carrello settlement, and paaInviaRT against its RPT (happy path, duplicates, faults, esito 1).
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any

import pytest
import zeep
from sqlalchemy import select, update

from gateway.payments import documents, iuv as iuv_rules, states
from gateway.payments.documents import (Dominio, IdentificativoUnivoco, Istituto, Rpt, Rt, SingoloPagamentoRt,
                                        SingoloVersamentoRpt, Soggetto)
from gateway.payments.tasks import release_stale_attempts
from gateway.soap import pa_per_nodo_models as ppt
from storage.models import Carrello, Dovuto, Ente, PaymentAttempt, Receipt
from tests.conftest import REFERENCE
from tests.e2e.test_node_side import (BROKER, IBAN, STATION, add_dovuto, assert_fault, dovuto_row, ids,
                                      pafn_service, receipt)

PPT_WSDL = REFERENCE / "pagopa" / "gad" / "wsdl" / "PaPerNodo.wsdl"
PPT_BINDING = f"{{{ppt.PPT_WSDL_NS}}}PagamentiTelematiciRTbinding"

pytestmark = pytest.mark.skipif(not PPT_WSDL.exists(), reason="official pagoPA contracts not available")


@lru_cache(maxsize=None)
def _ppt_client() -> zeep.Client:
    return zeep.Client(str(PPT_WSDL))


def ppt_service(gateway: Any) -> Any:
    return _ppt_client().create_service(PPT_BINDING, gateway.url + "/pa/PaPerNodo")


def receipts_for(database: Any, fiscal_code: str, iuv: str) -> list[Receipt]:
    with database.transaction() as session:
        rows = session.scalars(select(Receipt).where(Receipt.fiscal_code == fiscal_code, Receipt.iuv == iuv)
                               .order_by(Receipt.id)).all()
        for row in rows:
            _ = list(row.payments)
        return rows


def new_carrello(database: Any, ente: Any, state: str = states.PAGAM_IN_CORSO) -> int:
    with database.transaction() as session:
        ente_id = session.scalar(select(Ente.id).where(Ente.fiscal_code == ente.fiscal_code))
        carrello = Carrello(id_session=uuid.uuid4().hex, ente_id=ente_id, kind="ESTERNO_ANONIMO", state=state)
        session.add(carrello)
        session.flush()
        return carrello.id


def carrello_state(database: Any, carrello_id: int) -> str:
    with database.transaction() as session:
        return session.get(Carrello, carrello_id).state


# --- paSendRT[V2] ---------------------------------------------------------------------------------

def test_receipts_are_never_dropped(gateway, gateway_db, ente) -> None:
    service = pafn_service(gateway)
    # Unknown notice, delivered in stand-in: stored and flagged, answered OK.
    ghost_iuv = iuv_rules.make_iuv17("01", 99_999_999_998)
    ghost = receipt(ente, iuv_rules.notice_number(ghost_iuv), ghost_iuv, "10.00", stand_in=True)
    assert service.paSendRT(**ids(ente), receipt=ghost).outcome == "OK"
    (stored,) = receipts_for(gateway_db, ente.fiscal_code, ghost_iuv)
    assert stored.flags == ["unknown_position", "stand_in"] and stored.dovuto_id is None
    assert stored.source == "paSendRT"

    # Annulled position: the money was taken, so the receipt completes it (flagged).
    iuv, notice, annulled_id = add_dovuto(gateway_db, ente, state="ANNULLATO")
    assert service.paSendRTV2(**ids(ente), receipt=receipt(ente, notice, iuv, "150.00")).outcome == "OK"
    assert dovuto_row(gateway_db, annulled_id).state == "COMPLETATO"
    assert receipts_for(gateway_db, ente.fiscal_code, iuv)[0].flags == ["annulled"]

    # Expired position: same.
    iuv, notice, expired_id = add_dovuto(gateway_db, ente, state="SCADUTO")
    assert service.paSendRTV2(**ids(ente), receipt=receipt(ente, notice, iuv, "150.00")).outcome == "OK"
    assert dovuto_row(gateway_db, expired_id).state == "COMPLETATO"
    assert receipts_for(gateway_db, ente.fiscal_code, iuv)[0].flags == ["expired"]

    # Amount not matching the position: stored, flagged, the position completed.
    iuv, notice, mismatch_id = add_dovuto(gateway_db, ente)
    assert service.paSendRT(**ids(ente), receipt=receipt(ente, notice, iuv, "149.00")).outcome == "OK"
    assert receipts_for(gateway_db, ente.fiscal_code, iuv)[0].flags == ["amount_mismatch"]
    assert dovuto_row(gateway_db, mismatch_id).state == "COMPLETATO"

    # A second, different receipt for a paid position: kept and flagged already_paid.
    assert service.paSendRT(**ids(ente), receipt=receipt(ente, notice, iuv, "150.00")).outcome == "OK"
    first, second = receipts_for(gateway_db, ente.fiscal_code, iuv)
    assert second.flags == ["already_paid"]

    # Wrong station: the receipt is refused with the station fault (the node retries once it is fixed).
    answer = service.paSendRT(**ids(ente, idStation="99999000013_99"), receipt=receipt(ente, notice, iuv, "150.00"))
    assert_fault(answer, "PAA_STAZIONE_INT_ERRATA", ente.fiscal_code)


def test_negative_receipt_leaves_the_position_payable(gateway, gateway_db, ente) -> None:
    service = pafn_service(gateway)
    iuv, notice, dovuto_id = add_dovuto(gateway_db, ente)
    qr = {"fiscalCode": ente.fiscal_code, "noticeNumber": notice}
    assert service.paGetPayment(**ids(ente), qrCode=qr).outcome == "OK"
    assert service.paSendRT(**ids(ente), receipt=receipt(ente, notice, iuv, "150.00", outcome="KO")).outcome == "OK"
    (stored,) = receipts_for(gateway_db, ente.fiscal_code, iuv)
    assert (stored.outcome, stored.flags) == ("KO", [])
    assert dovuto_row(gateway_db, dovuto_id).state == "INSERIMENTO_DOVUTO"
    assert service.paVerifyPaymentNotice(**ids(ente), qrCode=qr).outcome == "OK"
    assert service.paGetPayment(**ids(ente), qrCode=qr).outcome == "OK"  # payable again at once


def test_receipt_after_the_attempt_expired_is_accepted(gateway, gateway_db, ente) -> None:
    service = pafn_service(gateway)
    iuv, notice, dovuto_id = add_dovuto(gateway_db, ente)
    qr = {"fiscalCode": ente.fiscal_code, "noticeNumber": notice}
    assert service.paGetPaymentV2(**ids(ente), qrCode=qr).outcome == "OK"
    with gateway_db.transaction() as session:
        session.execute(update(PaymentAttempt).where(PaymentAttempt.dovuto_id == dovuto_id)
                        .values(expires_at=datetime.now(timezone.utc) - timedelta(minutes=1)))
    expired, _ = release_stale_attempts(gateway_db)
    assert expired >= 1
    with gateway_db.transaction() as session:
        assert session.scalar(select(PaymentAttempt.state).where(PaymentAttempt.dovuto_id == dovuto_id)) == "EXPIRED"
    assert service.paVerifyPaymentNotice(**ids(ente), qrCode=qr).outcome == "OK"  # payable again

    # The late sendPaymentOutcome OK still produces a receipt (pagopa-node.md 5): accepted like any other.
    token = uuid.uuid4().hex
    assert service.paSendRTV2(**ids(ente), receipt=receipt(ente, notice, iuv, "150.00", receipt_id=token)).outcome == "OK"
    assert dovuto_row(gateway_db, dovuto_id).state == "COMPLETATO"
    (stored,) = receipts_for(gateway_db, ente.fiscal_code, iuv)
    assert stored.flags == []


def test_concurrent_deliveries_store_one_receipt(gateway, gateway_db, ente) -> None:
    iuv, notice, dovuto_id = add_dovuto(gateway_db, ente)
    sent = receipt(ente, notice, iuv, "150.00", receipt_id=uuid.uuid4().hex)

    def deliver(_: int) -> str:
        answer = pafn_service(gateway).paSendRTV2(**ids(ente), receipt=sent)
        return answer.outcome if answer.fault is None else answer.fault.faultCode

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(deliver, range(20)))
    assert outcomes == ["OK"] * 20
    (stored,) = receipts_for(gateway_db, ente.fiscal_code, iuv)
    assert stored.deliveries == 20 and len(stored.payments) == 1
    with gateway_db.transaction() as session:
        dovuto = session.get(Dovuto, dovuto_id)
        assert dovuto.state == "COMPLETATO" and len(dovuto.transitions) == 2


def test_carrello_paid_when_all_its_dovuti_are(gateway, gateway_db, ente) -> None:
    service = pafn_service(gateway)
    carrello_id = new_carrello(gateway_db, ente)
    first = add_dovuto(gateway_db, ente, carrello_id=carrello_id)
    second = add_dovuto(gateway_db, ente, carrello_id=carrello_id)
    with gateway_db.transaction() as session:  # the Checkout session the landing page opened
        ente_id = session.scalar(select(Ente.id).where(Ente.fiscal_code == ente.fiscal_code))
        session.add(PaymentAttempt(ente_id=ente_id, carrello_id=carrello_id, model="checkout", state="STARTED"))
    assert service.paSendRTV2(**ids(ente), receipt=receipt(ente, first[1], first[0], "150.00")).outcome == "OK"
    assert carrello_state(gateway_db, carrello_id) == states.PARZ_PAGATO
    assert service.paSendRTV2(**ids(ente), receipt=receipt(ente, second[1], second[0], "150.00")).outcome == "OK"
    assert carrello_state(gateway_db, carrello_id) == states.PAGATO
    with gateway_db.transaction() as session:
        assert session.scalar(select(PaymentAttempt.state).where(PaymentAttempt.carrello_id == carrello_id,
                                                                 PaymentAttempt.model == "checkout")) == "PAID"


# --- paaInviaRT ------------------------------------------------------------------------------------

PAGATORE = Soggetto(IdentificativoUnivoco("F", "RSSMRA80A01H501U"), "Mario Rossi")
PSP = Istituto(IdentificativoUnivoco("B", "SIMPSP01"), "PSP Simulato")


def legacy_attempt(database: Any, ente: Any, *, amount: str = "150.00", carrello: bool = True) -> dict[str, Any]:
    """A dovuto in PAGAMENTO_INIZIATO with its RPT stored as the landing page records it."""
    carrello_id = new_carrello(database, ente) if carrello else None
    iuv, notice, dovuto_id = add_dovuto(database, ente, amount=amount, carrello_id=carrello_id,
                                        state="PAGAMENTO_INIZIATO")
    ccp, message_id = uuid.uuid4().hex[:20], "RPT" + uuid.uuid4().hex[:20]
    rpt = Rpt(dominio=Dominio(ente.fiscal_code, STATION), identificativo_messaggio_richiesta=message_id,
              data_ora_messaggio_richiesta=datetime(2031, 5, 4, 10, 0, 0), soggetto_pagatore=PAGATORE,
              ente_beneficiario=Istituto(IdentificativoUnivoco("G", ente.fiscal_code), ente.name),
              data_esecuzione_pagamento=date(2031, 5, 4), tipo_versamento="PO", iuv=iuv,
              codice_contesto_pagamento=ccp,
              singoli=(SingoloVersamentoRpt(Decimal(amount), "TARI", "9/0101100IM/", iban_accredito=IBAN),))
    rpt_xml = documents.build_rpt(rpt)
    documents.validate("RPT", rpt_xml)
    with database.transaction() as session:
        ente_id = session.scalar(select(Ente.id).where(Ente.fiscal_code == ente.fiscal_code))
        session.add(PaymentAttempt(ente_id=ente_id, carrello_id=carrello_id, dovuto_id=dovuto_id, model="rpt",
                                   iuv=iuv, ccp=ccp, request_message_id=message_id, rpt_xml=rpt_xml,
                                   expires_at=datetime.now(timezone.utc) + timedelta(minutes=30)))
    return {"iuv": iuv, "notice": notice, "dovuto_id": dovuto_id, "carrello_id": carrello_id, "ccp": ccp,
            "message_id": message_id, "rpt": rpt}


def build_rt(ente: Any, attempt: dict[str, Any], *, esito: str = "0", amount: str | None = None,
             receipt_id: str | None = None) -> bytes:
    rpt: Rpt = attempt["rpt"]
    paid = Decimal(amount) if amount is not None else (rpt.totale if esito == "0" else Decimal("0.00"))
    pagamenti = (SingoloPagamentoRt(paid, date(2031, 5, 4), "IUR" + uuid.uuid4().hex[:10], "TARI", "9/0101100IM/"),)
    rt = Rt(dominio=Dominio(ente.fiscal_code, STATION), identificativo_messaggio_ricevuta=receipt_id or uuid.uuid4().hex,
            data_ora_messaggio_ricevuta=datetime(2031, 5, 4, 10, 5, 0),
            riferimento_messaggio_richiesta=attempt["message_id"], riferimento_data_richiesta=date(2031, 5, 4),
            istituto_attestante=PSP, ente_beneficiario=rpt.ente_beneficiario, soggetto_pagatore=PAGATORE,
            codice_esito_pagamento=esito, importo_totale_pagato=paid, iuv=attempt["iuv"],
            codice_contesto_pagamento=attempt["ccp"], pagamenti=pagamenti)
    data = documents.build_rt(rt)
    documents.validate("RT", data)
    return data


def header(ente: Any, attempt: dict[str, Any], **override: str) -> dict[str, str]:
    values = {"identificativoIntermediarioPA": BROKER, "identificativoStazioneIntermediarioPA": STATION,
              "identificativoDominio": ente.fiscal_code, "identificativoUnivocoVersamento": attempt["iuv"],
              "codiceContestoPagamento": attempt["ccp"]}
    values.update(override)
    return {"header": values}


def test_paa_invia_rt_happy_path_and_duplicates(gateway, gateway_db, ente) -> None:
    service = ppt_service(gateway)
    attempt = legacy_attempt(gateway_db, ente)
    rt = build_rt(ente, attempt)
    answer = service.paaInviaRT(tipoFirma="", rt=rt, _soapheaders=header(ente, attempt))
    assert answer.esito == "OK" and answer.fault is None
    # The very same RT again (a retry, or after nodoChiediCopiaRT fetched it): OK, no double booking.
    assert service.paaInviaRT(tipoFirma="", rt=rt, _soapheaders=header(ente, attempt)).esito == "OK"

    with gateway_db.transaction() as session:
        dovuto = session.get(Dovuto, attempt["dovuto_id"])
        assert dovuto.state == "COMPLETATO"
        assert [(t.from_state, t.to_state) for t in dovuto.transitions][-1] == ("PAGAMENTO_INIZIATO", "COMPLETATO")
        (stored,) = session.scalars(select(Receipt).where(Receipt.fiscal_code == ente.fiscal_code,
                                                          Receipt.iuv == attempt["iuv"])).all()
        assert (stored.source, stored.esito_code, stored.outcome, stored.deliveries) == ("paaInviaRT", "0", "OK", 2)
        assert stored.raw == rt and stored.ccp == attempt["ccp"] and stored.amount == Decimal("150.00")
        (payment,) = stored.payments
        assert (payment.index, payment.amount, payment.iban) == (1, Decimal("150.00"), IBAN)
        assert payment.iur.startswith("IUR")
        state = session.scalar(select(PaymentAttempt.state).where(PaymentAttempt.ccp == attempt["ccp"]))
        assert state == "PAID"
    assert carrello_state(gateway_db, attempt["carrello_id"]) == states.PAGATO

    # A different RT for the same triple: refused, nothing changes.
    other = build_rt(ente, attempt)
    answer = service.paaInviaRT(tipoFirma="", rt=other, _soapheaders=header(ente, attempt))
    assert answer.esito == "KO" and answer.fault.faultCode == "PAA_RT_DUPLICATA"
    assert (answer.fault.id, answer.fault.serial) == (ente.fiscal_code, 0)
    assert len(receipts_for(gateway_db, ente.fiscal_code, attempt["iuv"])) == 1


def test_paa_invia_rt_faults(gateway, gateway_db, ente) -> None:
    service = ppt_service(gateway)
    attempt = legacy_attempt(gateway_db, ente)

    unknown = dict(attempt, ccp="unknown-ccp", message_id="unknown-message")
    answer = service.paaInviaRT(tipoFirma="", rt=build_rt(ente, unknown), _soapheaders=header(ente, unknown))
    assert (answer.esito, answer.fault.faultCode, answer.fault.id) == ("KO", "PAA_RPT_SCONOSCIUTA", ente.fiscal_code)

    answer = service.paaInviaRT(tipoFirma="", rt=b"<RT>not valid", _soapheaders=header(ente, attempt))
    assert (answer.esito, answer.fault.faultCode) == ("KO", "PAA_SINTASSI_XSD")
    bad_schema = build_rt(ente, attempt).replace(b"<versioneOggetto>6.2.0</versioneOggetto>", b"")
    answer = service.paaInviaRT(tipoFirma="", rt=bad_schema, _soapheaders=header(ente, attempt))
    assert answer.fault.faultCode == "PAA_SINTASSI_XSD" and answer.fault.description.startswith("line ")

    # The RT contradicts its RPT: wrong amount for esito 0.
    answer = service.paaInviaRT(tipoFirma="", rt=build_rt(ente, attempt, amount="149.00"),
                                _soapheaders=header(ente, attempt))
    assert (answer.fault.faultCode, answer.esito) == ("PAA_SEMANTICA", "KO")
    assert "importoTotalePagato" in answer.fault.description

    # Header naming another station.
    answer = service.paaInviaRT(tipoFirma="", rt=build_rt(ente, attempt),
                                _soapheaders=header(ente, attempt, identificativoStazioneIntermediarioPA="X_99"))
    assert answer.fault.faultCode == "PAA_STAZIONE_INT_ERRATA"
    assert receipts_for(gateway_db, ente.fiscal_code, attempt["iuv"]) == []
    assert dovuto_row(gateway_db, attempt["dovuto_id"]).state == "PAGAMENTO_INIZIATO"


def test_paa_invia_rt_esito_1_makes_the_position_payable_again(gateway, gateway_db, ente) -> None:
    service = ppt_service(gateway)
    attempt = legacy_attempt(gateway_db, ente)
    qr = {"fiscalCode": ente.fiscal_code, "noticeNumber": attempt["notice"]}
    assert_fault(pafn_service(gateway).paVerifyPaymentNotice(**ids(ente), qrCode=qr), "PAA_PAGAMENTO_IN_CORSO",
                 ente.fiscal_code)
    answer = service.paaInviaRT(tipoFirma="", rt=build_rt(ente, attempt, esito="1"),
                                _soapheaders=header(ente, attempt))
    assert answer.esito == "OK", answer.fault
    assert dovuto_row(gateway_db, attempt["dovuto_id"]).state == "INSERIMENTO_DOVUTO"
    assert carrello_state(gateway_db, attempt["carrello_id"]) == states.NON_PAGATO
    (stored,) = receipts_for(gateway_db, ente.fiscal_code, attempt["iuv"])
    assert (stored.esito_code, stored.outcome) == ("1", "KO")
    assert pafn_service(gateway).paVerifyPaymentNotice(**ids(ente), qrCode=qr).outcome == "OK"


def test_forgotten_legacy_attempt_is_released(gateway, gateway_db, ente) -> None:
    attempt = legacy_attempt(gateway_db, ente, carrello=False)
    with gateway_db.transaction() as session:
        session.execute(update(PaymentAttempt).where(PaymentAttempt.ccp == attempt["ccp"])
                        .values(expires_at=datetime.now(timezone.utc) - timedelta(days=2)))
    _, released = release_stale_attempts(gateway_db)
    assert released >= 1
    with gateway_db.transaction() as session:
        dovuto = session.get(Dovuto, attempt["dovuto_id"])
        assert dovuto.state == "INSERIMENTO_DOVUTO"
        assert dovuto.transitions[-1].actor == "release_stale_attempts"
        assert session.scalar(select(PaymentAttempt.state).where(PaymentAttempt.ccp == attempt["ccp"])) == "EXPIRED"
    # The RT that finally arrives is still accepted and completes the position.
    answer = ppt_service(gateway).paaInviaRT(tipoFirma="", rt=build_rt(ente, attempt),
                                             _soapheaders=header(ente, attempt))
    assert answer.esito == "OK", answer.fault
    assert dovuto_row(gateway_db, attempt["dovuto_id"]).state == "COMPLETATO"


def test_concurrent_inserts_of_an_unknown_receipt_race_on_the_unique_constraint(database) -> None:
    """No position to lock: the unique (fiscal_code, receipt_id) constraint decides, the losers count a delivery."""
    from tests.conftest import create_ente
    from gateway.payments.node_side import IncomingReceipt, Subject, Transfer
    from gateway.payments.psp_receipts import store_receipt

    demo = create_ente(database)
    ghost_iuv = iuv_rules.make_iuv17("01", 99_999_999_997)
    incoming = IncomingReceipt(
        version="paSendRTV2", receipt_id=uuid.uuid4().hex, notice_number=iuv_rules.notice_number(ghost_iuv),
        fiscal_code=demo.fiscal_code, outcome="OK", iuv=ghost_iuv, amount=Decimal("10.00"), description="x",
        company_name="x", debtor=Subject("F", "RSSMRA80A01H501U", "Mario Rossi"),
        transfers=[Transfer(1, Decimal("10.00"), demo.fiscal_code, "x", "9/0101100IM/", iban=IBAN)],
        psp_id="SIMPSP01", psp_name="PSP", channel_id="SIMPSP01_01", raw=b"<receipt/>")

    def deliver(_: int) -> bool:
        with database.transaction() as session:
            ente_row = session.scalar(select(Ente).where(Ente.fiscal_code == demo.fiscal_code))
            return store_receipt(session, ente_row, incoming).duplicate

    with ThreadPoolExecutor(max_workers=10) as pool:
        duplicates = list(pool.map(deliver, range(20)))
    assert duplicates.count(False) == 1
    (stored,) = receipts_for(database, demo.fiscal_code, ghost_iuv)
    assert stored.deliveries == 20 and stored.flags == ["unknown_position"]
