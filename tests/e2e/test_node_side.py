"""paForNode against the running gateway (zeep clients of the official WSDL): verify, getPayment[V2], sendRT[V2],
every PAA_* fault of verify/getPayment, multi-beneficiary and marca da bollo transfers, paDemandPaymentNotice.
"""

from __future__ import annotations

import base64
import random
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

import pytest
import zeep
from sqlalchemy import select

from gateway.payments import iuv as iuv_rules
from gateway.soap import pa_for_node_models as pafn
from storage.models import Dovuto, DovutoTransition, Ente, PaymentAttempt, Receipt, TipoDovuto
from tests.conftest import REFERENCE

PAFN_WSDL = REFERENCE / "pagopa" / "wsdl" / "paForNode.wsdl"
PAFN_BINDING = f"{{{pafn.PAFN_WSDL_NS}}}paForNodeBinding"
BROKER, STATION = "99999000013", "99999000013_01"
IBAN = "IT60X0542811101000000123456"
POSTAL_IBAN = "IT57N0760101600000012345678"
SECONDARY_CF = "80000000005"

pytestmark = pytest.mark.skipif(not PAFN_WSDL.exists(), reason="official pagoPA contracts not available")


@lru_cache(maxsize=None)
def _zeep_client() -> zeep.Client:
    return zeep.Client(str(PAFN_WSDL))


def pafn_service(gateway: Any) -> Any:
    return _zeep_client().create_service(PAFN_BINDING, gateway.url + "/pa/paForNode")


def ids(ente: Any, **override: str) -> dict[str, str]:
    values = {"idPA": ente.fiscal_code, "idBrokerPA": BROKER, "idStation": STATION}
    values.update(override)
    return values


def add_dovuto(database: Any, ente: Any, *, tipo: str = "TARI", amount: str = "150.00", state: str = "INSERIMENTO_DOVUTO",
               due_date: date | None = None, secondary: dict | None = None, marca_bollo: dict | None = None,
               carrello_id: int | None = None, causale: str = "TARI 2031 rata unica") -> tuple[str, str, int]:
    """A dovuto written straight into the gateway's database; returns (iuv, notice number, id)."""
    iuv = iuv_rules.make_iuv17("01", random.randint(1, iuv_rules.MAX_PROGRESSIVE))
    with database.transaction() as session:
        ente_row = session.scalar(select(Ente).where(Ente.fiscal_code == ente.fiscal_code))
        tipo_row = session.scalar(select(TipoDovuto).where(TipoDovuto.ente_id == ente_row.id, TipoDovuto.code == tipo))
        dovuto = Dovuto(ente_id=ente_row.id, tipo_dovuto_id=tipo_row.id, iud=uuid.uuid4().hex[:30], iuv=iuv,
                        notice_number=iuv_rules.notice_number(iuv), iuv_generated=True, state="INSERIMENTO_DOVUTO",
                        payer_type="F", payer_code="RSSMRA80A01H501U", payer_name="Mario Rossi",
                        payer_city="Roma", payer_country="IT", payer_email="mario@example.it",
                        amount=Decimal(amount), due_date=due_date, causale=causale,
                        dati_specifici_riscossione="9/0101100IM/", secondary=secondary, marca_bollo=marca_bollo,
                        carrello_id=carrello_id)
        session.add(dovuto)
        session.flush()
        from gateway.payments import states

        states.record_creation(session, dovuto, reason="test")
        if state != "INSERIMENTO_DOVUTO":
            states.move_dovuto(session, dovuto, state, reason="test")
        return iuv, dovuto.notice_number, dovuto.id


def receipt(ente: Any, notice: str, iuv: str, amount: str, *, receipt_id: str | None = None, outcome: str = "OK",
            transfers: list[dict] | None = None, fiscal_code: str | None = None, stand_in: bool = False) -> dict:
    subject = {"uniqueIdentifier": {"entityUniqueIdentifierType": "F", "entityUniqueIdentifierValue": "RSSMRA80A01H501U"},
               "fullName": "Mario Rossi"}
    transfers = transfers or [{"idTransfer": 1, "transferAmount": Decimal(amount), "fiscalCodePA": ente.fiscal_code,
                               "IBAN": IBAN, "remittanceInformation": "TARI", "transferCategory": "9/0101100IM/"}]
    return {"receiptId": receipt_id or uuid.uuid4().hex, "noticeNumber": notice,
            "fiscalCode": fiscal_code or ente.fiscal_code, "outcome": outcome, "creditorReferenceId": iuv,
            "paymentAmount": Decimal(amount), "description": "TARI", "companyName": ente.name, "debtor": subject,
            "transferList": {"transfer": transfers}, "idPSP": "SIMPSP01", "PSPCompanyName": "PSP Simulato",
            "idChannel": "SIMPSP01_01", "channelDescription": "app", "payer": subject, "paymentMethod": "creditCard",
            "fee": Decimal("1.00"), "paymentDateTime": datetime(2031, 5, 4, 10, 11, 12), "standIn": stand_in}


def dovuto_row(database: Any, dovuto_id: int) -> Dovuto:
    with database.transaction() as session:
        return session.get(Dovuto, dovuto_id)


def assert_fault(answer: Any, code: str, fiscal_code: str) -> None:
    assert answer.outcome == "KO", answer
    assert answer.fault.faultCode == code, answer.fault
    assert answer.fault.id == fiscal_code and answer.fault.serial == 0
    assert answer.fault.description


# --------------------------------------------------------------------------------------------------

def test_verify_get_payment_send_rt_completes_the_dovuto(gateway, gateway_db, ente) -> None:
    service = pafn_service(gateway)
    iuv, notice, dovuto_id = add_dovuto(gateway_db, ente, due_date=date(2031, 12, 31))
    qr = {"fiscalCode": ente.fiscal_code, "noticeNumber": notice}

    verify = service.paVerifyPaymentNotice(**ids(ente), qrCode=qr)
    assert verify.outcome == "OK" and verify.fault is None
    option = verify.paymentList.paymentOptionDescription
    assert (option.amount, option.options, option.dueDate, option.allCCP) == \
        (Decimal("150.00"), "EQ", date(2031, 12, 31), False)
    assert option.detailDescription == "TARI 2031 rata unica"
    assert (verify.paymentDescription, verify.fiscalCodePA, verify.companyName) == \
        ("TARI 2031 rata unica", ente.fiscal_code, ente.name)

    got = service.paGetPaymentV2(**ids(ente), qrCode=qr, amount=Decimal("999.00"))
    assert got.outcome == "OK", got.fault
    data = got.data
    assert (data.creditorReferenceId, data.paymentAmount, data.dueDate) == (iuv, Decimal("150.00"), date(2031, 12, 31))
    assert data.companyName == ente.name and data.description == "TARI 2031 rata unica"
    assert data.debtor.uniqueIdentifier.entityUniqueIdentifierValue == "RSSMRA80A01H501U"
    assert data.debtor.fullName == "Mario Rossi" and getattr(data.debtor, "e-mail") == "mario@example.it"
    (transfer,) = data.transferList.transfer
    assert (transfer.idTransfer, transfer.transferAmount, transfer.fiscalCodePA, transfer.IBAN) == \
        (1, Decimal("150.00"), ente.fiscal_code, IBAN)
    assert transfer.transferCategory == "9/0101100IM/" and transfer.remittanceInformation == "TARI 2031 rata unica"

    # getPayment records the attempt but does not lock the notice: the node owns concurrency via its token.
    with gateway_db.transaction() as session:
        attempt = session.scalar(select(PaymentAttempt).where(PaymentAttempt.dovuto_id == dovuto_id))
        assert (attempt.model, attempt.state, attempt.iuv) == ("psp", "STARTED", iuv)
        assert timedelta(minutes=29) < attempt.expires_at - attempt.created_at <= timedelta(minutes=31)
    assert dovuto_row(gateway_db, dovuto_id).state == "INSERIMENTO_DOVUTO"
    assert service.paVerifyPaymentNotice(**ids(ente), qrCode=qr).outcome == "OK"

    token = uuid.uuid4().hex
    sent = receipt(ente, notice, iuv, "150.00", receipt_id=token)
    assert service.paSendRTV2(**ids(ente), receipt=sent).outcome == "OK"
    assert service.paSendRTV2(**ids(ente), receipt=sent).outcome == "OK"  # the same receipt again

    with gateway_db.transaction() as session:
        dovuto = session.get(Dovuto, dovuto_id)
        assert dovuto.state == "COMPLETATO" and dovuto.paid_at is not None
        trail = session.scalars(select(DovutoTransition).where(DovutoTransition.dovuto_id == dovuto_id)
                                .order_by(DovutoTransition.id)).all()
        assert [(t.from_state, t.to_state) for t in trail] == [(None, "INSERIMENTO_DOVUTO"),
                                                              ("INSERIMENTO_DOVUTO", "COMPLETATO")]
        assert token in trail[-1].reason and trail[-1].actor == "paSendRTV2"
        (stored,) = session.scalars(select(Receipt).where(Receipt.fiscal_code == ente.fiscal_code,
                                                          Receipt.iuv == iuv)).all()
        assert (stored.receipt_id, stored.deliveries, stored.outcome, stored.flags) == (token, 2, "OK", [])
        assert (stored.source, stored.amount, stored.dovuto_id, stored.psp_id) == \
            ("paSendRTV2", Decimal("150.00"), dovuto_id, "SIMPSP01")
        assert stored.raw.startswith(b"<") and b"receiptId" in stored.raw and token.encode() in stored.raw
        (payment,) = stored.payments
        assert (payment.index, payment.iuv, payment.iur, payment.amount, payment.fiscal_code_pa) == \
            (1, iuv, token, Decimal("150.00"), ente.fiscal_code)
        attempt = session.scalar(select(PaymentAttempt).where(PaymentAttempt.dovuto_id == dovuto_id))
        assert (attempt.state, attempt.ccp) == ("PAID", token)

    assert_fault(service.paVerifyPaymentNotice(**ids(ente), qrCode=qr), "PAA_PAGAMENTO_DUPLICATO", ente.fiscal_code)


def test_verify_and_get_payment_faults(gateway, gateway_db, ente) -> None:
    service = pafn_service(gateway)
    yesterday = date.today() - timedelta(days=2)
    with gateway_db.transaction() as session:
        ente_id = session.scalar(select(Ente.id).where(Ente.fiscal_code == ente.fiscal_code))
        session.add(TipoDovuto(ente_id=ente_id, code="SCAD", description="Scadenza", iban=IBAN,
                               taxonomy_code="9/0101100IM/", due_date_required=True))
    _, paid, _ = add_dovuto(gateway_db, ente, state="COMPLETATO")
    _, annulled, _ = add_dovuto(gateway_db, ente, state="ANNULLATO")
    _, expired, _ = add_dovuto(gateway_db, ente, state="SCADUTO")
    _, past_due, _ = add_dovuto(gateway_db, ente, tipo="SCAD", due_date=yesterday)
    _, started, _ = add_dovuto(gateway_db, ente, state="PAGAMENTO_INIZIATO")
    _, payable, _ = add_dovuto(gateway_db, ente)
    unknown = iuv_rules.notice_number(iuv_rules.make_iuv17("01", 99_999_999_999))
    foreign_segregation = "3" + "47" + payable[3:]
    # Past its due date, but the tipo does not require it: still payable.
    _, lenient, _ = add_dovuto(gateway_db, ente, due_date=yesterday)

    cases = [(unknown, "PAA_PAGAMENTO_SCONOSCIUTO"), (foreign_segregation, "PAA_PAGAMENTO_SCONOSCIUTO"),
             (paid, "PAA_PAGAMENTO_DUPLICATO"), (annulled, "PAA_PAGAMENTO_ANNULLATO"),
             (expired, "PAA_PAGAMENTO_SCADUTO"), (past_due, "PAA_PAGAMENTO_SCADUTO"),
             (started, "PAA_PAGAMENTO_IN_CORSO")]
    for notice, code in cases:
        qr = {"fiscalCode": ente.fiscal_code, "noticeNumber": notice}
        assert_fault(service.paVerifyPaymentNotice(**ids(ente), qrCode=qr), code, ente.fiscal_code)
        assert_fault(service.paGetPayment(**ids(ente), qrCode=qr), code, ente.fiscal_code)
        assert_fault(service.paGetPaymentV2(**ids(ente), qrCode=qr), code, ente.fiscal_code)

    qr = {"fiscalCode": ente.fiscal_code, "noticeNumber": payable}
    assert_fault(service.paVerifyPaymentNotice(**ids(ente, idStation="99999000013_99"), qrCode=qr),
                 "PAA_STAZIONE_INT_ERRATA", ente.fiscal_code)
    assert_fault(service.paGetPayment(**ids(ente, idBrokerPA="11111111111"), qrCode=qr),
                 "PAA_ID_INTERMEDIARIO_ERRATO", ente.fiscal_code)
    assert_fault(service.paVerifyPaymentNotice(**ids(ente, idPA="12345678901"),
                                               qrCode={"fiscalCode": "12345678901", "noticeNumber": payable}),
                 "PAA_ID_DOMINIO_ERRATO", "12345678901")
    assert service.paVerifyPaymentNotice(**ids(ente), qrCode=qr).outcome == "OK"
    lenient_qr = {"fiscalCode": ente.fiscal_code, "noticeNumber": lenient}
    assert service.paGetPayment(**ids(ente), qrCode=lenient_qr).outcome == "OK"


def test_multi_beneficiary_get_payment_v1_and_v2(gateway, gateway_db, ente) -> None:
    service = pafn_service(gateway)
    secondary = {"fiscal_code": SECONDARY_CF, "name": "Provincia di Esempio", "iban": POSTAL_IBAN,
                 "amount": "20.50", "causale": "Quota provinciale", "dati_specifici_riscossione": "9/0201102IM/"}
    iuv, notice, _ = add_dovuto(gateway_db, ente, amount="100.00", secondary=secondary)
    qr = {"fiscalCode": ente.fiscal_code, "noticeNumber": notice}

    option = service.paVerifyPaymentNotice(**ids(ente), qrCode=qr).paymentList.paymentOptionDescription
    assert option.amount == Decimal("120.50") and option.allCCP is False  # the ente's IBAN is not postal

    for v2 in (False, True):
        answer = (service.paGetPaymentV2 if v2 else service.paGetPayment)(**ids(ente), qrCode=qr)
        assert answer.outcome == "OK", answer.fault
        data = answer.data
        assert data.paymentAmount == Decimal("120.50") and data.dueDate == date(2099, 12, 31)
        first, second = data.transferList.transfer
        assert sum(t.transferAmount for t in (first, second)) == data.paymentAmount
        assert (first.idTransfer, first.fiscalCodePA, first.IBAN, first.transferAmount) == \
            (1, ente.fiscal_code, IBAN, Decimal("100.00"))
        assert (second.idTransfer, second.fiscalCodePA, second.IBAN, second.transferAmount) == \
            (2, SECONDARY_CF, POSTAL_IBAN, Decimal("20.50"))
        assert (second.remittanceInformation, second.transferCategory) == ("Quota provinciale", "0201102IM")
        if v2:
            assert (first.companyName, second.companyName) == (ente.name, "Provincia di Esempio")


def test_marca_da_bollo_needs_get_payment_v2(gateway, gateway_db, ente) -> None:
    service = pafn_service(gateway)
    from gateway.enti.registry import add_tipo_dovuto

    with gateway_db.transaction() as session:
        add_tipo_dovuto(session, ente.cod_ipa, "MARCA_BOLLO_DIGITALE", "Marca da bollo", None, "9/0301109AP/")
    digest = bytes(range(32))
    stamp = {"tipo_bollo": "01", "hash_documento": base64.b64encode(digest).decode(), "provincia_residenza": "RM"}
    iuv, notice, dovuto_id = add_dovuto(gateway_db, ente, tipo="MARCA_BOLLO_DIGITALE", amount="16.00",
                                        marca_bollo=stamp, causale="Bollo certificato")
    qr = {"fiscalCode": ente.fiscal_code, "noticeNumber": notice}

    answer = service.paGetPaymentV2(**ids(ente), qrCode=qr)
    assert answer.outcome == "OK", answer.fault
    (transfer,) = answer.data.transferList.transfer
    assert transfer.IBAN is None and transfer.transferCategory == "9/0301109AP/"
    assert (transfer.richiestaMarcaDaBollo.hashDocumento, transfer.richiestaMarcaDaBollo.tipoBollo,
            transfer.richiestaMarcaDaBollo.provinciaResidenza) == (digest, "01", "RM")
    # V1 has no place for a stamp: a clear semantic fault rather than a transfer without IBAN.
    assert_fault(service.paGetPayment(**ids(ente), qrCode=qr), "PAA_SEMANTICA", ente.fiscal_code)

    # The receipt carries the stamp document (MBDAttachment) instead of an IBAN.
    token = uuid.uuid4().hex
    transfers = [{"idTransfer": 1, "transferAmount": Decimal("16.00"), "fiscalCodePA": ente.fiscal_code,
                  "MBDAttachment": b"<marcaDaBollo/>", "remittanceInformation": "Bollo",
                  "transferCategory": "9/0301109AP/"}]
    sent = receipt(ente, notice, iuv, "16.00", receipt_id=token, transfers=transfers)
    assert service.paSendRTV2(**ids(ente), receipt=sent).outcome == "OK"
    assert dovuto_row(gateway_db, dovuto_id).state == "COMPLETATO"


def test_demand_payment_notice_is_honest(gateway, gateway_db, ente) -> None:
    service = pafn_service(gateway)
    answer = service.paDemandPaymentNotice(**ids(ente), idServizio="00001", idSoggettoServizio="00042",
                                           datiSpecificiServizioRequest=b"<dati/>")
    assert_fault(answer, "PAA_SYSTEM_ERROR", ente.fiscal_code)
    assert "non abilitato" in answer.fault.description
