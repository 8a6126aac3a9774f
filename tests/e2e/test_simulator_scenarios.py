"""Every simulator scenario is observable through the real interfaces: receipt delivery (late, never,
twice, retried after KO), node faults and timeouts towards the gateway, automatic page outcomes, and the
``ente-gateway sim`` commands that set them.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest
import requests
from sqlalchemy import update

from tests.conftest import BACKENDS, RunningGateway
from tests.e2e.test_simulator_checkout import (RETURN_URLS, dovuto_state, gateway_receipts, make_notice, new_cart,
                                               new_ente, notice_item, set_scenario, sim, sim_receipts,
                                               start_sim_gateway, wait_for)


@pytest.fixture(scope="module", params=BACKENDS)
def sim_gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> RunningGateway:
    return start_sim_gateway(request, tmp_path_factory)


@pytest.fixture(autouse=True)
def _clear_scenarios(sim_gateway: RunningGateway) -> Iterator[None]:
    yield
    requests.post(sim(sim_gateway, "/api/scenario"), json={"name": "clear"}, timeout=10)


def pay(gateway: RunningGateway, fiscal_code: str, notice: str, wait: float = 0, **extra: Any) -> dict[str, Any]:
    return requests.post(sim(gateway, "/api/pay"), timeout=60,
                         json={"fiscalCode": fiscal_code, "noticeNumber": notice, "wait": wait, **extra}).json()


def test_rt_late_delivers_the_receipt_after_the_delay(sim_gateway: RunningGateway) -> None:
    ente = new_ente(sim_gateway)
    notice = make_notice(sim_gateway, ente)
    set_scenario(sim_gateway, "rt_late", seconds=1.5)
    started = time.monotonic()
    assert pay(sim_gateway, ente.fiscal_code, notice)["ok"]
    assert sim_receipts(sim_gateway, noticeNumber=notice)[0]["state"] == "PENDING"
    assert dovuto_state(sim_gateway, notice) == "INSERIMENTO_DOVUTO"
    assert wait_for(lambda: dovuto_state(sim_gateway, notice) == "COMPLETATO", timeout=10)
    assert time.monotonic() - started >= 1.4


def test_rt_never_keeps_the_receipt_retrievable_until_released(sim_gateway: RunningGateway) -> None:
    ente = new_ente(sim_gateway)
    notice = make_notice(sim_gateway, ente)
    set_scenario(sim_gateway, "rt_never")
    assert pay(sim_gateway, ente.fiscal_code, notice, wait=1)["ok"]
    [held] = sim_receipts(sim_gateway, fiscalCode=ente.fiscal_code, noticeNumber=notice)
    assert held["state"] == "HELD" and held["attempts"] == 0 and "<pafn:paSendRTV2Request" in held["xml"]
    assert sim_receipts(sim_gateway, iuv=notice[1:], state="HELD")[0]["receiptId"] == held["receiptId"]
    time.sleep(0.5)
    assert dovuto_state(sim_gateway, notice) == "INSERIMENTO_DOVUTO"
    released = requests.post(sim(sim_gateway, f"/api/receipts/{held['receiptId']}/deliver"), timeout=10)
    assert released.status_code == 200
    assert wait_for(lambda: dovuto_state(sim_gateway, notice) == "COMPLETATO")
    again = requests.post(sim(sim_gateway, f"/api/receipts/{held['receiptId']}/deliver"), timeout=10)
    assert again.status_code == 409


def test_rt_twice_delivers_the_same_receipt_twice_and_the_gateway_books_it_once(sim_gateway: RunningGateway) -> None:
    ente = new_ente(sim_gateway)
    notice = make_notice(sim_gateway, ente)
    set_scenario(sim_gateway, "rt_twice")
    assert pay(sim_gateway, ente.fiscal_code, notice)["ok"]
    assert wait_for(lambda: sim_receipts(sim_gateway, noticeNumber=notice)[0]["state"] == "DELIVERED")
    [receipt] = sim_receipts(sim_gateway, noticeNumber=notice)
    assert receipt["deliveries"] == 2 and receipt["attempts"] == 2
    calls = requests.get(sim(sim_gateway, "/api/calls"), params={"operation": "paSendRTV2"}, timeout=10).json()
    assert [c["outcome"] for c in calls["calls"] if c["subject"].endswith(notice)] == ["OK", "OK"]
    assert len(gateway_receipts(sim_gateway, ente.fiscal_code, notice[1:])) == 1


def test_receipt_refused_by_the_gateway_is_retried_until_accepted(sim_gateway: RunningGateway) -> None:
    from storage.models import Ente

    ente = new_ente(sim_gateway)
    notice = make_notice(sim_gateway, ente)
    set_scenario(sim_gateway, "rt_late", seconds=0.5)  # time to switch the ente off before the first attempt
    assert pay(sim_gateway, ente.fiscal_code, notice)["ok"]
    with sim_gateway.database.transaction() as session:  # type: ignore[attr-defined]
        session.execute(update(Ente).where(Ente.cod_ipa == ente.cod_ipa).values(enabled=False))
    assert wait_for(lambda: sim_receipts(sim_gateway, noticeNumber=notice)[0]["attempts"] >= 2)
    with sim_gateway.database.transaction() as session:  # type: ignore[attr-defined]
        session.execute(update(Ente).where(Ente.cod_ipa == ente.cod_ipa).values(enabled=True))
    assert wait_for(lambda: sim_receipts(sim_gateway, noticeNumber=notice)[0]["state"] == "DELIVERED")
    assert dovuto_state(sim_gateway, notice) == "COMPLETATO"
    calls = requests.get(sim(sim_gateway, "/api/calls"), params={"operation": "paSendRTV2"}, timeout=10).json()
    outcomes = [(c["outcome"], c["fault_code"]) for c in calls["calls"] if c["subject"].endswith(notice)]
    assert outcomes[0] == ("KO", "PAA_ID_DOMINIO_ERRATO") and outcomes[-1] == ("OK", None)


def test_node_fault_and_node_timeout_on_post_carts(sim_gateway: RunningGateway) -> None:
    item = {"noticeNumber": "301000000000000123", "fiscalCode": "80000000001", "amount": 100,
            "companyName": "Comune", "description": "TARI"}
    set_scenario(sim_gateway, "node_fault", code="PPT_SYSTEM_ERROR", operation="carts")
    faulty = new_cart(sim_gateway, [item])
    assert faulty.status_code == 500 and faulty.headers["Content-Type"] == "application/problem+json"
    assert "PPT_SYSTEM_ERROR" in faulty.json()["detail"]
    assert new_cart(sim_gateway, [item]).status_code == 302  # one use only
    set_scenario(sim_gateway, "node_timeout", seconds=1.2, operation="carts")
    started = time.monotonic()
    assert new_cart(sim_gateway, [item]).status_code == 302
    assert time.monotonic() - started >= 1.1
    started = time.monotonic()
    assert new_cart(sim_gateway, [item]).status_code == 302 and time.monotonic() - started < 1


def test_node_fault_for_psps(sim_gateway: RunningGateway) -> None:
    ente = new_ente(sim_gateway)
    notice = make_notice(sim_gateway, ente)
    set_scenario(sim_gateway, "node_fault", code="PPT_SYSTEM_ERROR", operation="verifyPaymentNotice")
    failed = pay(sim_gateway, ente.fiscal_code, notice)
    assert not failed["ok"] and failed["fault"]["faultCode"] == "PPT_SYSTEM_ERROR"
    assert pay(sim_gateway, ente.fiscal_code, notice, wait=10)["ok"]


@pytest.mark.parametrize("name, url", [("success", "returnOkUrl"), ("refused", "returnErrorUrl"),
                                       ("abandoned", "returnCancelUrl")])
def test_automatic_page_outcomes(sim_gateway: RunningGateway, name: str, url: str) -> None:
    ente = new_ente(sim_gateway)
    notice = make_notice(sim_gateway, ente)
    set_scenario(sim_gateway, name)
    page = requests.get(new_cart(sim_gateway, [notice_item(ente, notice)]).headers["Location"], allow_redirects=False,
                        timeout=30)
    assert page.status_code == 303 and page.headers["Location"] == RETURN_URLS[url]
    expected = "COMPLETATO" if name == "success" else "INSERIMENTO_DOVUTO"
    assert wait_for(lambda: dovuto_state(sim_gateway, notice) == expected)


def test_scenarios_through_the_cli(sim_gateway: RunningGateway) -> None:
    from click.testing import CliRunner

    from gateway.cli import main

    runner = CliRunner()
    env = {"ENTE_GATEWAY_SIMULATOR_URL": sim(sim_gateway, ""), "ENTE_GATEWAY_DATABASE_URL": sim_gateway.database_url}
    run = lambda *args: runner.invoke(main, list(args), env=env)  # noqa: E731
    assert run("sim", "scenario", "revised_report").exit_code == 0
    late = run("sim", "scenario", "rt_late", "--param", "seconds=2")
    assert late.exit_code == 0 and '"seconds": 2' in late.output and '"revised_report"' in late.output
    bogus = run("sim", "scenario", "bogus")
    assert bogus.exit_code == 1 and "unknown scenario" in bogus.output
    calls = run("sim", "calls", "--json")
    assert calls.exit_code == 0 and calls.output.startswith("[")
    assert run("sim", "reset").exit_code == 0
    assert requests.get(sim(sim_gateway, "/api/scenario"), timeout=10).json()["active"] == []
    assert requests.get(sim(sim_gateway, "/api/calls"), timeout=10).json()["calls"] == []
