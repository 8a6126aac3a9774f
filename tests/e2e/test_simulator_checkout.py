"""Checkout through the embedded simulator: POST /carts validation, the payment page, modello 3 end to end.

The gateway runs with the simulator mounted (``serve --with-simulator``, threaded: the gateway calls the
simulator which calls the gateway). Notices are created in the gateway's database; paying them must
leave the position COMPLETATO with the simulator's receipt. Helpers here are shared by the other
simulator test files.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from decimal import Decimal
from typing import Any, Iterator

import pytest
import requests
from sqlalchemy import select

from tests.conftest import BACKENDS, DemoEnte, RunningGateway, create_ente, new_database_url, start_gateway, stop_gateway

FAST_ENV = {
    "ENTE_GATEWAY_SIMULATOR_RETRY_SCHEDULE": "0.3",
    "ENTE_GATEWAY_SIMULATOR_POLL_INTERVAL": "0.1",
    "ENTE_GATEWAY_SIMULATOR_VERIFY_TIMEOUT": "7",
}
RETURN_URLS = {"returnOkUrl": "https://ente.example/esito/ok", "returnCancelUrl": "https://ente.example/esito/annullo",
               "returnErrorUrl": "https://ente.example/esito/errore"}


# --- shared helpers ----------------------------------------------------------------------------------
_RUNNING: dict[str, RunningGateway] = {}


def start_sim_gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RunningGateway:
    """One gateway with the simulator per backend, shared by the simulator test files (stopped at exit)."""
    backend = request.param
    if backend == "postgres":
        request.applymarker(pytest.mark.postgres)
    if backend not in _RUNNING:
        tmp = tmp_path_factory.mktemp(f"simgw-{backend}")
        url = new_database_url(backend, request, tmp)
        running = start_gateway(url, tmp, args=("--with-simulator", "--threads", "8"), **FAST_ENV)
        running.database = _database(url)  # type: ignore[attr-defined]
        _RUNNING[backend] = running
        request.config.add_cleanup(lambda: (running.database.dispose(), stop_gateway(running)))  # type: ignore
    return _RUNNING[backend]


def _database(url: str):
    from storage.db import Database

    return Database(url)


def sim(gateway: RunningGateway, path: str) -> str:
    return f"{gateway.url}/sim{path}"


def new_ente(gateway: RunningGateway) -> DemoEnte:
    return create_ente(gateway.database)  # type: ignore[attr-defined]


def make_notice(gateway: RunningGateway, ente: DemoEnte, amount: str = "12.34", tipo: str = "TARI") -> str:
    """A payable dovuto with an IUV (aux 3) in the gateway's database; returns its notice number."""
    from gateway.payments import iuv as iuvs
    from gateway.payments import states
    from storage.models import Dovuto, Ente, TipoDovuto

    with gateway.database.transaction() as session:  # type: ignore[attr-defined]
        row = session.scalar(select(Ente).where(Ente.cod_ipa == ente.cod_ipa))
        tipo_row = session.scalar(select(TipoDovuto).where(TipoDovuto.ente_id == row.id, TipoDovuto.code == tipo))
        iuv = iuvs.make_iuv17(row.segregation_code or "01", random.randrange(1, 10**11))
        dovuto = Dovuto(ente_id=row.id, tipo_dovuto_id=tipo_row.id, iud=uuid.uuid4().hex[:20], iuv=iuv,
                        notice_number=iuvs.notice_number(iuv), state=states.INSERIMENTO_DOVUTO, payer_type="F",
                        payer_code="RSSMRA80A01H501U", payer_name="Mario Rossi", amount=Decimal(amount),
                        causale=f"{tipo} 2026", dati_specifici_riscossione="9/0101100IM/", tipo_versamento="ALL")
        session.add(dovuto)
        states.record_creation(session, dovuto, reason="test simulator")
        return dovuto.notice_number


def dovuto_state(gateway: RunningGateway, notice_number: str) -> str:
    from storage.models import Dovuto

    with gateway.database.transaction() as session:  # type: ignore[attr-defined]
        return session.scalar(select(Dovuto.state).where(Dovuto.notice_number == notice_number))


def gateway_receipts(gateway: RunningGateway, fiscal_code: str, iuv: str) -> list[Any]:
    from storage.models import Receipt

    with gateway.database.transaction() as session:  # type: ignore[attr-defined]
        return [(r.receipt_id, r.psp_id, r.amount, r.deliveries)
                for r in session.scalars(select(Receipt).where(Receipt.fiscal_code == fiscal_code, Receipt.iuv == iuv))]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def sim_receipts(gateway: RunningGateway, **query: str) -> list[dict[str, Any]]:
    return requests.get(sim(gateway, "/api/receipts"), params=query, timeout=10).json()["receipts"]


def set_scenario(gateway: RunningGateway, name: str, **params: Any) -> None:
    response = requests.post(sim(gateway, "/api/scenario"), json={"name": name, **params}, timeout=10)
    assert response.status_code == 200, response.text


def new_cart(gateway: RunningGateway, notices: list[dict[str, Any]], **extra: Any) -> requests.Response:
    body = {"paymentNotices": notices, "returnUrls": RETURN_URLS, **extra}
    return requests.post(sim(gateway, "/checkout/v1/carts"), json=body, allow_redirects=False, timeout=30)


def notice_item(ente: DemoEnte, notice_number: str, cents: int = 1234) -> dict[str, Any]:
    return {"noticeNumber": notice_number, "fiscalCode": ente.fiscal_code, "amount": cents,
            "companyName": ente.name, "description": "TARI 2026"}


# --- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=BACKENDS)
def sim_gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RunningGateway:
    return start_sim_gateway(request, tmp_path_factory)


@pytest.fixture(autouse=True)
def _clear_scenarios(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "sim_gateway" in request.fixturenames:
        gateway = request.getfixturevalue("sim_gateway")
        requests.post(sim(gateway, "/api/scenario"), json={"name": "clear"}, timeout=10)


# --- POST /carts -------------------------------------------------------------------------------------
GOOD = {"noticeNumber": "301000000000000123", "fiscalCode": "80000000001", "amount": 1000,
        "companyName": "Comune di Prova", "description": "TARI"}


@pytest.mark.parametrize("body, detail", [
    ({"paymentNotices": [], "returnUrls": RETURN_URLS}, "paymentNotices"),
    ({"paymentNotices": [GOOD] * 6, "returnUrls": RETURN_URLS}, "paymentNotices"),
    ({"paymentNotices": [{**GOOD, "noticeNumber": "30100000000000012"}], "returnUrls": RETURN_URLS}, "noticeNumber"),
    ({"paymentNotices": [{**GOOD, "noticeNumber": "30100000000000012X"}], "returnUrls": RETURN_URLS}, "noticeNumber"),
    ({"paymentNotices": [{**GOOD, "fiscalCode": "8000000000"}], "returnUrls": RETURN_URLS}, "fiscalCode"),
    ({"paymentNotices": [{**GOOD, "amount": 0}], "returnUrls": RETURN_URLS}, "amount"),
    ({"paymentNotices": [{**GOOD, "amount": 10.5}], "returnUrls": RETURN_URLS}, "amount"),
    ({"paymentNotices": [{**GOOD, "amount": "1000"}], "returnUrls": RETURN_URLS}, "amount"),
    ({"paymentNotices": [{k: v for k, v in GOOD.items() if k != "description"}], "returnUrls": RETURN_URLS},
     "description"),
    ({"paymentNotices": [GOOD]}, "returnUrls"),
    ({"paymentNotices": [GOOD], "returnUrls": {"returnOkUrl": "https://x/ok", "returnCancelUrl": "https://x/c"}},
     "returnErrorUrl"),
    ([GOOD], "JSON object"),
])
def test_post_carts_rejects_invalid_requests_with_problem_json(sim_gateway: RunningGateway, body: Any,
                                                               detail: str) -> None:
    response = requests.post(sim(sim_gateway, "/checkout/v1/carts"), json=body, allow_redirects=False, timeout=10)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400 and problem["title"] and detail in problem["detail"]
    assert set(problem) == {"type", "title", "status", "detail", "instance"}


def test_post_carts_rejects_non_json_and_v2_needs_waiting_url(sim_gateway: RunningGateway) -> None:
    response = requests.post(sim(sim_gateway, "/checkout/v1/carts"), data=b"{not json", timeout=10,
                             headers={"Content-Type": "application/json"}, allow_redirects=False)
    assert response.status_code == 400 and response.json()["detail"] == "the body is not valid JSON"
    v2 = requests.post(sim(sim_gateway, "/checkout/v2/carts"), allow_redirects=False, timeout=10,
                       json={"paymentNotices": [GOOD], "returnUrls": RETURN_URLS})
    assert v2.status_code == 400 and "returnWaitingUrl" in v2.json()["detail"]


def test_post_carts_redirects_to_the_payment_page(sim_gateway: RunningGateway) -> None:
    response = new_cart(sim_gateway, [GOOD, {**GOOD, "noticeNumber": "301000000000000124", "amount": 123456}],
                        idCart="CART-1", emailNotice="mario.rossi@example.org", allCCP=False)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert re.fullmatch(re.escape(sim(sim_gateway, "/pagamento/")) + r"[0-9a-f]{32}", location)
    cart = requests.get(sim(sim_gateway, "/api/carts/" + location.rsplit("/", 1)[1]), timeout=10).json()
    assert cart["state"] == "CREATED" and cart["idCart"] == "CART-1" and cart["total"] == "1244.56"
    assert [n["amount"] for n in cart["notices"]] == ["10.00", "1234.56"]  # cents became euro
    page = requests.get(location, timeout=10)
    assert page.status_code == 200 and 'lang="it"' in page.text
    assert "1.234,56 €" in page.text and "1.244,56 €" in page.text and "301000000000000124" in page.text
    for label in ("Paga", "Rifiuta", "Abbandona", 'type="radio"', "<label for=\"psp-SIMPSP01\""):
        assert label in page.text


# --- paying a cart -----------------------------------------------------------------------------------
def test_paying_a_cart_runs_modello_3_and_completes_every_position(sim_gateway: RunningGateway) -> None:
    ente = new_ente(sim_gateway)
    first, second = make_notice(sim_gateway, ente, "12.34"), make_notice(sim_gateway, ente, "5.00", "MENSA")
    response = new_cart(sim_gateway, [notice_item(ente, first, 1234), notice_item(ente, second, 500)])
    page_url = response.headers["Location"]

    paid = requests.post(page_url, data={"psp": "ABI99999", "action": "pay"}, allow_redirects=False, timeout=40)
    assert paid.status_code == 303 and paid.headers["Location"] == RETURN_URLS["returnOkUrl"]

    for notice in (first, second):
        assert wait_for(lambda n=notice: dovuto_state(sim_gateway, n) == "COMPLETATO"), notice
        [receipt] = sim_receipts(sim_gateway, fiscalCode=ente.fiscal_code, noticeNumber=notice)
        assert wait_for(lambda n=notice: sim_receipts(sim_gateway, noticeNumber=n)[0]["state"] == "DELIVERED")
        assert re.fullmatch(r"[0-9a-f]{32}", receipt["receiptId"]) and receipt["psp"] == "ABI99999"
        assert "<PSPCompanyName>Banca Simulata S.p.A.</PSPCompanyName>" in receipt["xml"]
        assert [(r[0], r[1]) for r in gateway_receipts(sim_gateway, ente.fiscal_code, notice[1:])] == \
            [(receipt["receiptId"], "ABI99999")]
    calls = requests.get(sim(sim_gateway, "/api/calls"), timeout=10).json()["calls"]
    mine = [c for c in calls if c["subject"] and ente.fiscal_code in c["subject"]]
    assert [c["operation"] for c in mine if c["operation"] != "paSendRTV2"] == \
        ["paVerifyPaymentNotice", "paVerifyPaymentNotice", "paGetPaymentV2", "paGetPaymentV2"]
    assert all(c["outcome"] == "OK" for c in mine)
    # A second submit (double click) does not pay twice: the page tells what happened.
    again = requests.post(page_url, data={"psp": "SIMPSP01", "action": "pay"}, allow_redirects=False, timeout=10)
    assert again.status_code == 200 and "Pagamento eseguito" in again.text and RETURN_URLS["returnOkUrl"] in again.text


def test_refuse_and_abandon_send_the_payer_back_without_receipts(sim_gateway: RunningGateway) -> None:
    ente = new_ente(sim_gateway)
    notice = make_notice(sim_gateway, ente)
    refused = requests.post(new_cart(sim_gateway, [notice_item(ente, notice)]).headers["Location"],
                            data={"action": "refuse", "psp": "SIMPSP01"}, allow_redirects=False, timeout=10)
    assert refused.status_code == 303 and refused.headers["Location"] == RETURN_URLS["returnErrorUrl"]
    cart_url = new_cart(sim_gateway, [notice_item(ente, notice)]).headers["Location"]
    abandoned = requests.post(sim(sim_gateway, "/api/carts/" + cart_url.rsplit("/", 1)[1] + "/abandon"), json={},
                              timeout=10).json()
    assert abandoned["state"] == "ABANDONED" and abandoned["redirectUrl"] == RETURN_URLS["returnCancelUrl"]
    assert dovuto_state(sim_gateway, notice) == "INSERIMENTO_DOVUTO"
    assert sim_receipts(sim_gateway, noticeNumber=notice) == []


@pytest.mark.parametrize("case, code, words", [
    ("paid", "PAA_PAGAMENTO_DUPLICATO", "già pagato"),
    ("unknown", "PAA_PAGAMENTO_SCONOSCIUTO", "non è stato trovato"),
])
def test_ente_faults_show_a_specific_message_and_lead_to_the_error_url(sim_gateway: RunningGateway, case: str,
                                                                        code: str, words: str) -> None:
    ente = new_ente(sim_gateway)
    notice = make_notice(sim_gateway, ente)
    if case == "paid":
        assert requests.post(sim(sim_gateway, "/api/pay"), timeout=40,
                             json={"fiscalCode": ente.fiscal_code, "noticeNumber": notice}).json()["ok"]
    else:
        notice = "3" + "01" + "9" * 15
    page_url = new_cart(sim_gateway, [notice_item(ente, notice)]).headers["Location"]
    answer = requests.post(page_url, data={"action": "pay", "psp": "SIMPSP01"}, allow_redirects=False, timeout=20)
    assert answer.status_code == 200 and words in answer.text
    assert f'href="{RETURN_URLS["returnErrorUrl"]}"' in answer.text
    cart = requests.get(sim(sim_gateway, "/api/carts/" + page_url.rsplit("/", 1)[1]), timeout=10).json()
    assert cart["state"] == "ERROR" and cart["notices"][0]["faultCode"] == code
