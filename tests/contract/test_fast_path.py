"""The lxml fast path of paForNode answers exactly as Spyne does.

Two gateways share one database, one with ENTE_GATEWAY_FAST_PATH=1 and one with =0; the same request goes to
both and the HTTP answers must be byte-identical (status, Content-Type, body). Receipts are stored once, so
each path gets its own receipt and the stored rows are compared. The ``ente_gateway_fast_path_total``
counter tells which path answered, so the comparisons are known to exercise the fast handlers (and the
fall-backs to Spyne).
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Iterator

import pytest
import requests
import zeep
from hypothesis import HealthCheck, given, settings, strategies as st
from lxml import etree
from sqlalchemy import select

from gateway.payments import iuv as iuv_rules
from gateway.payments import states
from gateway.soap import pa_for_node_models as pafn
from storage.db import Database
from storage.models import Dovuto, Ente, Receipt, TipoDovuto
from tests.conftest import (BACKENDS, REFERENCE, RunningGateway, create_ente, new_database_url, start_gateway,
                            stop_gateway)

PAFN_WSDL = REFERENCE / "pagopa" / "wsdl" / "paForNode.wsdl"
PAFN_BINDING = f"{{{pafn.PAFN_WSDL_NS}}}paForNodeBinding"
BROKER, STATION = "99999000013", "99999000013_01"
IBAN = "IT60X0542811101000000123456"
POSTAL_IBAN = "IT57N0760101600000012345678"
SECONDARY_CF = "80000000005"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
XML = "text/xml; charset=utf-8"

pytestmark = pytest.mark.skipif(not PAFN_WSDL.exists(), reason="official pagoPA contracts not available")


# --- two gateways on one database ----------------------------------------------------------------------

@dataclass
class Pair:
    fast: RunningGateway
    spyne: RunningGateway
    db: Database

    @property
    def path(self) -> str:
        return "/pa/paForNode"


@pytest.fixture(scope="module", params=BACKENDS)
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
    tmp = tmp_path_factory.mktemp(f"fast-{request.param}")
    url = new_database_url(request.param, request, tmp)
    for folder in ("on", "off"):
        (tmp / folder).mkdir()
    fast = start_gateway(url, tmp / "on", workers=1, ENTE_GATEWAY_FAST_PATH="1")
    try:
        spyne = start_gateway(url, tmp / "off", workers=1, ENTE_GATEWAY_FAST_PATH="0")
    except Exception:
        stop_gateway(fast)
        raise
    db = Database(url)
    yield Pair(fast, spyne, db)
    db.dispose()
    stop_gateway(fast)
    stop_gateway(spyne)


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes


def post(gateway: RunningGateway, body: bytes | str, content_type: str | None = XML,
         soap_action: str | None = None) -> Answer:
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if soap_action is not None:
        headers["SOAPAction"] = soap_action
    data = body.encode() if isinstance(body, str) else body
    response = requests.post(gateway.url + "/pa/paForNode", data=data, headers=headers, timeout=15)
    return Answer(response.status_code, response.headers.get("Content-Type", ""), response.content)


def c14n(payload: bytes) -> bytes:
    return etree.tostring(etree.fromstring(payload), method="c14n")


def same(pair: Pair, body: bytes | str, **kwargs: Any) -> etree._Element:
    """The same request to both gateways: byte-identical answers. Returns the response root element."""
    fast, spyne = post(pair.fast, body, **kwargs), post(pair.spyne, body, **kwargs)
    assert (fast.status, fast.content_type) == (spyne.status, spyne.content_type)
    assert fast.body == spyne.body, f"\nfast:  {fast.body!r}\nspyne: {spyne.body!r}"
    assert c14n(fast.body) == c14n(spyne.body)
    return etree.fromstring(fast.body)[0][0]


_SAMPLE_RE = re.compile(r'^(ente_gateway_[a-z_]+_total)\{([^}]*)\} ([0-9.e+]+)$', re.MULTILINE)


def counters(gateway: RunningGateway) -> dict[tuple[str, frozenset], float]:
    text = requests.get(gateway.url + "/metrics", timeout=5).text
    result = {}
    for name, labels, value in _SAMPLE_RE.findall(text):
        result[(name, frozenset(re.findall(r'(\w+)="([^"]*)"', labels)))] = float(value)
    return result


def delta(before: dict, after: dict, name: str | None = None) -> dict:
    return {key: after[key] - before.get(key, 0) for key in after
            if after[key] != before.get(key, 0) and (name is None or key[0] == name)}


def served(before: dict, after: dict) -> dict[tuple[str, str], float]:
    """{(operation, "fast"|"spyne"): count} between two counters() snapshots of the fast gateway."""
    return {(dict(labels)["operation"], dict(labels)["path"]): value
            for (_, labels), value in delta(before, after, "ente_gateway_fast_path_total").items()}


# --- data --------------------------------------------------------------------------------------------

def ente_id(db: Database, fiscal_code: str) -> int:
    with db.transaction() as session:
        return session.scalar(select(Ente.id).where(Ente.fiscal_code == fiscal_code))


def add_tipo(db: Database, ente: Any, code: str, iban: str | None, **kwargs: Any) -> None:
    with db.transaction() as session:
        session.add(TipoDovuto(ente_id=ente_id(db, ente.fiscal_code), code=code, description=code, iban=iban,
                               taxonomy_code="9/0101100IM/", **kwargs))


def add_dovuto(db: Database, ente: Any, *, tipo: str = "TARI", amount: Decimal | str = "150.00",
               state: str = states.INSERIMENTO_DOVUTO, **fields: Any) -> tuple[str, str]:
    """A dovuto straight into the shared database; returns (iuv, notice number)."""
    # Not the random module: hypothesis seeds it, and the same IUV twice would be two open positions.
    iuv = iuv_rules.make_iuv17("01", 1 + uuid.uuid4().int % iuv_rules.MAX_PROGRESSIVE)
    values = dict(payer_type="F", payer_code="RSSMRA80A01H501U", payer_name="Mario Rossi", causale="TARI 2031",
                  dati_specifici_riscossione="9/0101100IM/")
    values.update(fields)
    with db.transaction() as session:
        tipo_row = session.scalar(select(TipoDovuto).where(TipoDovuto.ente_id == ente_id(db, ente.fiscal_code),
                                                           TipoDovuto.code == tipo))
        dovuto = Dovuto(ente_id=tipo_row.ente_id, tipo_dovuto_id=tipo_row.id, iud=uuid.uuid4().hex[:30], iuv=iuv,
                        notice_number=iuv_rules.notice_number(iuv), iuv_generated=True,
                        state=states.INSERIMENTO_DOVUTO, amount=Decimal(amount), **values)
        session.add(dovuto)
        session.flush()
        states.record_creation(session, dovuto, reason="test")
        if state != states.INSERIMENTO_DOVUTO:
            states.move_dovuto(session, dovuto, state, reason="test")
        return iuv, dovuto.notice_number


def envelope(inner: str, *, soap: str = "soapenv", ns: str = "pafn", header: str = "") -> str:
    return (f'<{soap}:Envelope xmlns:{soap}="{SOAP_NS}" xmlns:{ns}="{pafn.PAFN_NS}">{header}'
            f'<{soap}:Body>{inner}</{soap}:Body></{soap}:Envelope>')


def ids_xml(ente: Any, *, id_pa: str | None = None, broker: str = BROKER, station: str = STATION) -> str:
    return (f"<idPA>{id_pa or ente.fiscal_code}</idPA><idBrokerPA>{broker}</idBrokerPA>"
            f"<idStation>{station}</idStation>")


def notice_request(element: str, ente: Any, notice: str, *, fiscal_code: str | None = None, extra: str = "",
                   **ids: Any) -> str:
    qr = (f"<qrCode><fiscalCode>{fiscal_code or ente.fiscal_code}</fiscalCode>"
          f"<noticeNumber>{notice}</noticeNumber></qrCode>")
    return envelope(f"<pafn:{element}>{ids_xml(ente, **ids)}{qr}{extra}</pafn:{element}>")


NOTICE_OPERATIONS = {"paVerifyPaymentNotice": "paVerifyPaymentNoticeReq", "paGetPayment": "paGetPaymentReq",
                     "paGetPaymentV2": "paGetPaymentV2Request"}


def subject_xml(tag: str, *, full: bool) -> str:
    extra = ("<streetName>Via Roma &amp; C.</streetName><civicNumber>1</civicNumber><postalCode>00100</postalCode>"
             "<city>Roma</city><stateProvinceRegion>RM</stateProvinceRegion><country>IT</country>"
             "<e-mail>mario@example.it</e-mail>") if full else ""
    return (f"<{tag}><uniqueIdentifier><entityUniqueIdentifierType>F</entityUniqueIdentifierType>"
            f"<entityUniqueIdentifierValue>RSSMRA80A01H501U</entityUniqueIdentifierValue></uniqueIdentifier>"
            f"<fullName>Mario Rossi</fullName>{extra}</{tag}>")


def receipt_request(ente: Any, notice: str, iuv: str, receipt_id: str, *, v2: bool, amount: str = "150.00",
                    outcome: str = "OK", full: bool = False, station: str = STATION,
                    paid_at: str = "2031-05-04T10:11:12", stamp: bool = False) -> str:
    if stamp:
        account = f"<MBDAttachment>{base64.b64encode(b'<marcaDaBollo/>').decode()}</MBDAttachment>"
    else:
        account = f"<IBAN>{IBAN}</IBAN>"
    metadata = "<metadata><mapEntry><key>k1</key><value>v &lt;1&gt;</value></mapEntry>" \
               "<mapEntry><key>k2</key><value>v2</value></mapEntry></metadata>" if full else ""
    company = f"<companyName>{ente.name}</companyName>" if v2 and full else ""
    transfer = (f"<transfer><idTransfer>1</idTransfer><transferAmount>{amount}</transferAmount>"
                f"<fiscalCodePA>{ente.fiscal_code}</fiscalCodePA>{company}{account}"
                f"<remittanceInformation>TARI</remittanceInformation>"
                f"<transferCategory>9/0101100IM/</transferCategory>{metadata}</transfer>")
    optional = "<officeName>Ufficio tributi</officeName>" if full else ""
    body = (f"<receiptId>{receipt_id}</receiptId><noticeNumber>{notice}</noticeNumber>"
            f"<fiscalCode>{ente.fiscal_code}</fiscalCode><outcome>{outcome}</outcome>"
            f"<creditorReferenceId>{iuv}</creditorReferenceId><paymentAmount>{amount}</paymentAmount>"
            f"<description>TARI 2031</description><companyName>{ente.name}</companyName>{optional}"
            f"{subject_xml('debtor', full=full)}<transferList>{transfer}</transferList>"
            f"<idPSP>SIMPSP01</idPSP>")
    if full:
        body += "<pspFiscalCode>12345678901</pspFiscalCode><pspPartitaIVA>12345678901</pspPartitaIVA>"
    body += "<PSPCompanyName>PSP Simulato</PSPCompanyName><idChannel>SIMPSP01_01</idChannel>" \
            "<channelDescription>app</channelDescription>"
    if full:
        body += subject_xml("payer", full=True) + "<paymentMethod>creditCard</paymentMethod>"
        if v2:
            body += "<paymentNote>nota</paymentNote>"
        body += "<fee>1.50</fee>"
        if v2:
            body += ("<primaryCiIncurredFee>0.50</primaryCiIncurredFee><idBundle>b1</idBundle>"
                     "<idCiBundle>c1</idCiBundle>")
        body += (f"<paymentDateTime>{paid_at}</paymentDateTime><applicationDate>2031-05-04</applicationDate>"
                 f"<transferDate>2031-05-05</transferDate>{metadata}<standIn>true</standIn>")
    element = "paSendRTV2Request" if v2 else "paSendRTReq"
    return envelope(f"<pafn:{element}>{ids_xml(ente, station=station)}<receipt>{body}</receipt></pafn:{element}>")


def stored(db: Database, fiscal_code: str, receipt_id: str) -> dict[str, Any]:
    with db.transaction() as session:
        row = session.scalar(select(Receipt).where(Receipt.fiscal_code == fiscal_code,
                                                   Receipt.receipt_id == receipt_id))
        assert row is not None, receipt_id
        dovuto_state = session.get(Dovuto, row.dovuto_id).state if row.dovuto_id else None
        return {"source": row.source, "outcome": row.outcome, "esito": row.esito_code, "amount": row.amount,
                "fee": row.fee, "paid_at": row.paid_at, "psp": (row.psp_id, row.psp_name), "payer": row.payer,
                "flags": row.flags, "deliveries": row.deliveries, "raw": row.raw, "dovuto_state": dovuto_state,
                "payments": [(p.index, p.amount, p.fiscal_code_pa, p.iban, p.causale, p.dati_specifici_riscossione,
                              p.outcome_date) for p in row.payments]}


def without(record: dict[str, Any], *values: str) -> dict[str, Any]:
    """The stored receipt with its own identifiers blanked, to compare two receipts of two positions."""
    raw = record["raw"]
    for value in values:
        raw = raw.replace(value.encode(), b"@")
    return {**record, "raw": raw}


# --- tests ---------------------------------------------------------------------------------------------

def test_notice_answers_and_every_fault_are_identical(pair: Pair) -> None:
    ente = create_ente(pair.db)
    add_tipo(pair.db, ente, "POSTALE", POSTAL_IBAN, postal_iban=True)
    add_tipo(pair.db, ente, "SCAD", IBAN, due_date_required=True)
    add_tipo(pair.db, ente, "MARCA_BOLLO_DIGITALE", None)
    past = date.today() - timedelta(days=3)
    secondary = {"fiscal_code": SECONDARY_CF, "amount": "20.50", "iban": POSTAL_IBAN, "name": "Provincia & Co",
                 "causale": "Quota provinciale", "taxonomy": "0201102IM"}
    stamp = {"tipo_bollo": "01", "hash_documento": base64.b64encode(bytes(range(32))).decode(),
             "provincia_residenza": "RM"}
    notices = {
        "plain": add_dovuto(pair.db, ente, due_date=date(2031, 12, 31))[1],
        "full payer": add_dovuto(pair.db, ente, payer_address="Via <Roma>", payer_civic="1", payer_postal_code="00100",
                                 payer_city="Roma", payer_province="RM", payer_country="it",
                                 payer_email="m@example.it", causale="  Città & \"quote\" 'x'\r\n  ")[1],
        "multi-beneficiary": add_dovuto(pair.db, ente, secondary=secondary)[1],
        "postal, all CCP": add_dovuto(pair.db, ente, tipo="POSTALE", secondary=secondary)[1],
        "marca da bollo": add_dovuto(pair.db, ente, tipo="MARCA_BOLLO_DIGITALE", amount="16.00", marca_bollo=stamp)[1],
        "lenient past due": add_dovuto(pair.db, ente, due_date=past)[1],
        "paid": add_dovuto(pair.db, ente, state=states.COMPLETATO)[1],
        "annulled": add_dovuto(pair.db, ente, state=states.ANNULLATO)[1],
        "expired": add_dovuto(pair.db, ente, state=states.SCADUTO)[1],
        "past due": add_dovuto(pair.db, ente, tipo="SCAD", due_date=past)[1],
        "in progress": add_dovuto(pair.db, ente, state=states.PAGAMENTO_INIZIATO)[1],
        "unknown": iuv_rules.notice_number(iuv_rules.make_iuv17("01", 99_999_999_999)),
        "not ours": "347" + "0" * 15,
    }
    before_fast, before_spyne = counters(pair.fast), counters(pair.spyne)
    outcomes = {}
    for operation, element in NOTICE_OPERATIONS.items():
        for label, notice in notices.items():
            answer = same(pair, notice_request(element, ente, notice))
            outcomes[operation, label] = answer.findtext("outcome") + (answer.findtext("fault/faultCode") or "")
        plain = notices["plain"]
        for kwargs in ({"station": "99999000013_99"}, {"broker": "11111111111"}, {"id_pa": "12345678901"},
                       {"fiscal_code": "12345678901"}, {"station": "a&amp;b<![CDATA[<x>]]>"}):
            answer = same(pair, notice_request(element, ente, plain, **kwargs))
            assert answer.findtext("outcome") == "KO"
    assert outcomes["paVerifyPaymentNotice", "plain"] == "OK"
    assert outcomes["paGetPaymentV2", "marca da bollo"] == "OK"
    assert outcomes["paGetPayment", "marca da bollo"] == "KOPAA_SEMANTICA"
    assert outcomes["paGetPaymentV2", "paid"] == "KOPAA_PAGAMENTO_DUPLICATO"
    assert outcomes["paVerifyPaymentNotice", "in progress"] == "KOPAA_PAGAMENTO_IN_CORSO"
    assert outcomes["paGetPayment", "past due"] == "KOPAA_PAGAMENTO_SCADUTO"

    after_fast, after_spyne = counters(pair.fast), counters(pair.spyne)
    # Every one of them answered by the fast path, none by the Spyne gateway's (switched off) fast path.
    per_operation = len(notices) + 5
    assert served(before_fast, after_fast) == {(op, "fast"): per_operation for op in NOTICE_OPERATIONS}
    assert served(before_spyne, after_spyne) == {}
    # The same requests and faults counted, by operation and code.
    for name in ("ente_gateway_requests_total", "ente_gateway_faults_total"):
        assert delta(before_fast, after_fast, name) == delta(before_spyne, after_spyne, name)


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(amount=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999.99"), places=2),
       causale=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn")) | st.sampled_from("&<>\r\n"),
                       min_size=1, max_size=60),
       due_date=st.none() | st.dates(date(2030, 1, 1), date(2099, 12, 31)),
       email=st.none() | st.emails(), city=st.none() | st.text("abcàè &<>", min_size=1, max_size=20),
       secondary=st.none() | st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999.99"), places=2),
       postal=st.booleans(), requested=st.none() | st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999"),
                                                               places=2))
def test_generated_positions_are_identical(pair: Pair, amount: Decimal, causale: str, due_date: date | None,
                                           email: str | None, city: str | None, secondary: Decimal | None,
                                           postal: bool, requested: Decimal | None) -> None:
    ente = _hypothesis_ente(pair)
    second = None if secondary is None else {"fiscal_code": SECONDARY_CF, "amount": str(secondary),
                                             "iban": POSTAL_IBAN if postal else IBAN}
    _, notice = add_dovuto(pair.db, ente, tipo="POSTALE" if postal else "TARI", amount=amount, causale=causale,
                           due_date=due_date, payer_email=(email or "")[:256] or None, payer_city=city,
                           secondary=second)
    extra = "" if requested is None else f"<amount>{requested}</amount>"
    for element in NOTICE_OPERATIONS.values():
        answer = same(pair, notice_request(element, ente, notice, extra=extra if "Get" in element else ""))
        assert answer.findtext("outcome") == "OK", etree.tostring(answer)


_ENTI: dict[str, Any] = {}


def _hypothesis_ente(pair: Pair) -> Any:
    # One ente per backend for all generated examples (fixtures are not reset between examples).
    key = pair.fast.url
    if key not in _ENTI:
        _ENTI[key] = create_ente(pair.db)
        add_tipo(pair.db, _ENTI[key], "POSTALE", POSTAL_IBAN, postal_iban=True)
    return _ENTI[key]


@pytest.mark.parametrize("v2", [False, True], ids=["paSendRT", "paSendRTV2"])
def test_receipts_are_stored_and_answered_alike(pair: Pair, v2: bool) -> None:
    ente = create_ente(pair.db)
    add_tipo(pair.db, ente, "MARCA_BOLLO_DIGITALE", None)
    operation = "paSendRTV2" if v2 else "paSendRT"
    before = counters(pair.fast)
    variants = [dict(), dict(full=True), dict(full=True, paid_at="2031-05-04T10:11:12.1234567Z"),
                dict(full=True, paid_at="2031-05-04 10:11:12-01:30"), dict(outcome="KO"), dict(amount="149.00")]
    if v2:
        variants.append(dict(full=True, stamp=True))
    for variant in variants:
        records = []
        for gateway in (pair.fast, pair.spyne):
            iuv, notice = add_dovuto(pair.db, ente)
            token = uuid.uuid4().hex
            body = receipt_request(ente, notice, iuv, token, v2=v2, **variant)
            first, again = post(gateway, body), post(gateway, body)
            assert first == again and first.status == 200
            records.append((first.body, without(stored(pair.db, ente.fiscal_code, token), token, notice, iuv)))
        (fast_body, fast_row), (spyne_body, spyne_row) = records
        if not variant.get("full"):  # without paymentDateTime the receipt is dated on arrival
            assert abs(fast_row.pop("paid_at") - spyne_row.pop("paid_at")) < timedelta(minutes=5)
        assert fast_body == spyne_body and b"<outcome>OK</outcome>" in fast_body
        assert fast_row == spyne_row and fast_row["deliveries"] == 2, variant

    # A notice nobody knows: stored and flagged, answered OK, on both paths.
    for gateway in (pair.fast, pair.spyne):
        ghost = iuv_rules.make_iuv17("01", 1 + uuid.uuid4().int % iuv_rules.MAX_PROGRESSIVE)
        token = uuid.uuid4().hex
        post(gateway, receipt_request(ente, iuv_rules.notice_number(ghost), ghost, token, v2=v2))
        assert stored(pair.db, ente.fiscal_code, token)["flags"] == ["unknown_position"]
    # A receipt refused (wrong station), and a semantic fault (receiptId longer than 35): same bytes.
    iuv, notice = add_dovuto(pair.db, ente)
    same(pair, receipt_request(ente, notice, iuv, uuid.uuid4().hex, v2=v2, station="99999000013_99"))
    same(pair, receipt_request(ente, notice, iuv, "x" * 36, v2=v2))
    assert served(before, counters(pair.fast)) == {(operation, "fast"): 2 * len(variants) + 3}


def test_zeep_clients_of_the_official_wsdl_work_against_the_fast_path(pair: Pair) -> None:
    ente = create_ente(pair.db)
    iuv, notice = add_dovuto(pair.db, ente, due_date=date(2031, 12, 31))
    service = zeep.Client(str(PAFN_WSDL)).create_service(PAFN_BINDING, pair.fast.url + pair.path)
    ids = {"idPA": ente.fiscal_code, "idBrokerPA": BROKER, "idStation": STATION}
    qr = {"fiscalCode": ente.fiscal_code, "noticeNumber": notice}
    before = counters(pair.fast)

    verify = service.paVerifyPaymentNotice(**ids, qrCode=qr)
    option = verify.paymentList.paymentOptionDescription
    assert (verify.outcome, option.amount, option.dueDate, option.allCCP) == ("OK", Decimal("150.00"),
                                                                               date(2031, 12, 31), False)
    got = service.paGetPaymentV2(**ids, qrCode=qr, amount=Decimal("150.00"), dueDate=date(2031, 12, 31))
    assert got.outcome == "OK" and got.data.creditorReferenceId == iuv
    assert service.paGetPayment(**ids, qrCode=qr).data.transferList.transfer[0].IBAN == IBAN
    subject = {"uniqueIdentifier": {"entityUniqueIdentifierType": "F",
                                    "entityUniqueIdentifierValue": "RSSMRA80A01H501U"},
               "fullName": "Mario Rossi"}
    token = uuid.uuid4().hex
    receipt = {"receiptId": token, "noticeNumber": notice, "fiscalCode": ente.fiscal_code, "outcome": "OK",
               "creditorReferenceId": iuv, "paymentAmount": Decimal("150.00"), "description": "TARI",
               "companyName": ente.name, "debtor": subject,
               "transferList": {"transfer": [{"idTransfer": 1, "transferAmount": Decimal("150.00"),
                                              "fiscalCodePA": ente.fiscal_code, "IBAN": IBAN,
                                              "remittanceInformation": "TARI", "transferCategory": "9/0101100IM/"}]},
               "idPSP": "SIMPSP01", "PSPCompanyName": "PSP", "idChannel": "SIMPSP01_01", "channelDescription": "app",
               "payer": subject, "fee": Decimal("1.00"), "standIn": False}
    assert service.paSendRTV2(**ids, receipt=receipt).outcome == "OK"
    fault = service.paVerifyPaymentNotice(**ids, qrCode=qr).fault
    assert (fault.faultCode, fault.id, fault.serial) == ("PAA_PAGAMENTO_DUPLICATO", ente.fiscal_code, 0)
    assert served(before, counters(pair.fast)) == {("paVerifyPaymentNotice", "fast"): 2, ("paGetPaymentV2", "fast"): 1,
                                                   ("paGetPayment", "fast"): 1, ("paSendRTV2", "fast"): 1}
    with pair.db.transaction() as session:
        raw = session.scalar(select(Receipt.raw).where(Receipt.receipt_id == token))
    assert raw.startswith(b"<") and token.encode() in raw


def test_hand_built_envelopes_take_the_fast_path(pair: Pair) -> None:
    ente = create_ente(pair.db)
    _, notice = add_dovuto(pair.db, ente)
    ids, qr = ids_xml(ente), f"<fiscalCode>{ente.fiscal_code}</fiscalCode><noticeNumber>{notice}</noticeNumber>"
    q = (f"<ns2:idPA>{ente.fiscal_code}</ns2:idPA><ns2:idBrokerPA>{BROKER}</ns2:idBrokerPA>"
         f"<idStation>{STATION}</idStation>")
    bodies = [
        # other prefixes, Header present, SOAPAction quoted
        (envelope(f"<p:paVerifyPaymentNoticeReq>{ids}<qrCode>{qr}</qrCode></p:paVerifyPaymentNoticeReq>",
                  soap="S", ns="p", header="<S:Header/>"), {"soap_action": '"paVerifyPaymentNotice"'}),
        # qualified children, a loose declaration, tabs and newlines, no SOAPAction, bare text/xml
        (f"<?xml version='1.0'?>\n<e:Envelope xmlns:e=\"{SOAP_NS}\">\n\t<e:Body>\n\t\t"
         f"<ns2:paVerifyPaymentNoticeReq xmlns:ns2=\"{pafn.PAFN_NS}\">\n\t\t\t{q}\n\t\t\t<ns2:qrCode>\n{qr}\n"
         f"</ns2:qrCode>\n\t\t</ns2:paVerifyPaymentNoticeReq>\n\t</e:Body>\n</e:Envelope>\n",
         {"content_type": "text/xml"}),
        # default namespaces everywhere (children qualified through the default), no Header, SOAPAction bare
        (f'<Envelope xmlns="{SOAP_NS}"><Body><paGetPaymentV2Request xmlns="{pafn.PAFN_NS}">{ids}<qrCode>{qr}</qrCode>'
         f"<amount>150.00</amount><dueDate>2031-01-01</dueDate><paymentNote>n</paymentNote></paGetPaymentV2Request>"
         f"</Body></Envelope>", {"soap_action": "paGetPaymentV2"}),
        # a UTF-8 declaration and Content-Type charset spelled differently
        (f'<?xml version="1.0" encoding="utf-8"?>' + notice_request("paGetPaymentReq", ente, notice),
         {"content_type": 'text/xml; charset="UTF-8"'}),
    ]
    before = counters(pair.fast)
    for body, kwargs in bodies:
        assert same(pair, body, **kwargs).findtext("outcome") == "OK"
    assert sum(served(before, counters(pair.fast)).values()) == len(bodies)
    assert all(path == "fast" for _, path in served(before, counters(pair.fast)))


def test_requests_the_fast_path_cannot_read_fall_back_to_spyne(pair: Pair) -> None:
    ente = create_ente(pair.db)
    _, notice = add_dovuto(pair.db, ente)
    ids = ids_xml(ente)
    qr = f"<qrCode><fiscalCode>{ente.fiscal_code}</fiscalCode><noticeNumber>{notice}</noticeNumber></qrCode>"
    verify = "<pafn:paVerifyPaymentNoticeReq>{}</pafn:paVerifyPaymentNoticeReq>"
    get_v2 = "<pafn:paGetPaymentV2Request>{}</pafn:paGetPaymentV2Request>"
    cases = [
        (envelope(verify.format(ids)), {}),  # qrCode missing
        (envelope(verify.format(ids.replace(ente.fiscal_code, "") + qr)), {}),  # empty idPA
        (envelope(verify.format(ids.replace(ente.fiscal_code, f" {ente.fiscal_code}\n") + qr)), {}),  # spaces
        (envelope(verify.format(f'{ids}<qrCode xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                                f'xsi:nil="true"/>')), {}),
        (envelope(verify.format(f"{ids}{qr}<unexpected>1</unexpected>")), {}),
        (envelope(verify.format(f"{ids}{qr}<idPA>12345678901</idPA>")), {}),  # repeated: Spyne keeps the last
        (envelope(verify.format(ids.replace("<idPA>", '<o:idPA xmlns:o="urn:other">')
                                .replace("</idPA>", "</o:idPA>") + qr)), {}),
        (envelope(get_v2.format(f"{ids}{qr}<amount>abc</amount>")), {}),
        (envelope(get_v2.format(f"{ids}{qr}<amount>1E+2</amount>")), {}),
        (envelope(get_v2.format(f"{ids}{qr}<dueDate>2031-13-01</dueDate>")), {}),
        (envelope(verify.format(ids + qr)).replace(SOAP_NS, "http://www.w3.org/2003/05/soap-envelope"), {}),
        (envelope(verify.format(ids + qr)), {"content_type": None}),  # Spyne wants a Content-Type
        (envelope(verify.format(ids + qr)), {"content_type": "text/xml; charset=ISO-8859-1"}),
        (envelope("<pafn:paSendRTV2Request>" + ids + "<receipt/></pafn:paSendRTV2Request>"), {}),
        (envelope("<pafn:paSendRTReq>" + ids + "<receipt><receiptId>1</receiptId></receipt></pafn:paSendRTReq>"), {}),
    ]
    before = counters(pair.fast)
    for body, kwargs in cases:
        same(pair, body, **kwargs)
    paths = served(before, counters(pair.fast))
    assert {path for _, path in paths} == {"spyne"} and sum(paths.values()) == len(cases)

    # The same for a receipt with a bad attachment or date: Spyne's fault, and nothing stored.
    iuv, notice = add_dovuto(pair.db, ente)
    good = receipt_request(ente, notice, iuv, "tok-bad-1", v2=True, full=True, stamp=True)
    bad = [good.replace("<MBDAttachment>", "<MBDAttachment>A"),
           good.replace("2031-05-04T10:11:12", "2031-05-04T25:00:00"),
           good.replace("<fee>1.50</fee>", "<fee>x</fee>")]
    for body in bad:
        assert same(pair, body).findtext("outcome") == "KO"
    with pair.db.transaction() as session:
        assert session.scalar(select(Receipt.id).where(Receipt.receipt_id == "tok-bad-1")) is None


def test_the_switch_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.settings import load_settings

    monkeypatch.delenv("ENTE_GATEWAY_FAST_PATH", raising=False)
    assert load_settings().fast_path is True
    monkeypatch.setenv("ENTE_GATEWAY_FAST_PATH", "0")
    assert load_settings().fast_path is False
    monkeypatch.setenv("ENTE_GATEWAY_FAST_PATH", "1")
    assert load_settings().fast_path is True
