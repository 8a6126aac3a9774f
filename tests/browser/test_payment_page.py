"""The simulator's payment page in a real browser (Debian's chromium through chromedriver, headless):
open a Checkout cart, choose a PSP, pay, land on the ente's return URL with the position paid.

Skipped with a clear reason when chromium/chromedriver are missing, unless ENTE_GATEWAY_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.conftest import ROOT, RunningGateway, new_database_url, start_gateway, stop_gateway
from tests.e2e.test_simulator_checkout import (FAST_ENV, _database, dovuto_state, make_notice, new_ente, notice_item,
                                               sim, wait_for)

pytestmark = pytest.mark.browser
ARTIFACTS = ROOT / "test-artifacts"


def _binaries() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def driver() -> Iterator[object]:
    found = _binaries()
    if found is None:
        if os.environ.get("ENTE_GATEWAY_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium/chromedriver not installed but ENTE_GATEWAY_REQUIRE_BROWSER=1")
        pytest.skip("chromium and chromedriver not installed (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1024,900"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(found[1]), options=options)
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def sim_gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("browser-gw")
    url = new_database_url("sqlite", request, tmp)
    running = start_gateway(url, tmp, args=("--with-simulator", "--threads", "8"), **FAST_ENV)
    running.database = _database(url)  # type: ignore[attr-defined]
    yield running
    running.database.dispose()  # type: ignore[attr-defined]
    stop_gateway(running)


def test_pay_a_cart_in_the_browser(driver, sim_gateway: RunningGateway) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    ente = new_ente(sim_gateway)
    notices = [make_notice(sim_gateway, ente, "1234.56"), make_notice(sim_gateway, ente, "10.00", "MENSA")]
    # The ente's return pages: any page of the gateway will do for the browser to land on.
    ok_url = f"{sim_gateway.url}/healthz?esito=ok"
    response = requests.post(sim(sim_gateway, "/checkout/v1/carts"), allow_redirects=False, timeout=10, json={
        "paymentNotices": [notice_item(ente, notices[0], 123456), notice_item(ente, notices[1], 1000)],
        "returnUrls": {"returnOkUrl": ok_url, "returnCancelUrl": f"{sim_gateway.url}/healthz?esito=annullo",
                       "returnErrorUrl": f"{sim_gateway.url}/healthz?esito=errore"}})
    assert response.status_code == 302

    driver.get(response.headers["Location"])
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "it"
    assert "Riepilogo del pagamento" in driver.find_element(By.TAG_NAME, "h1").text
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "1.234,56 €" in body and "1.244,56 €" in body and notices[0] in body
    radios = driver.find_elements(By.CSS_SELECTOR, "input[type=radio][name=psp]")
    assert len(radios) >= 2
    for radio in radios:  # every control has a visible label
        label = driver.find_element(By.CSS_SELECTOR, f"label[for='{radio.get_attribute('id')}']")
        assert label.is_displayed() and label.text
    bank = driver.find_element(By.ID, "psp-ABI99999")
    bank.click()
    assert bank.is_selected()
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "payment-page.png"))

    driver.find_element(By.ID, "pay").click()
    WebDriverWait(driver, 40).until(expected_conditions.url_to_be(ok_url))
    assert driver.current_url == ok_url
    for notice in notices:
        assert wait_for(lambda n=notice: dovuto_state(sim_gateway, n) == "COMPLETATO"), notice
    receipts = requests.get(sim(sim_gateway, "/api/receipts"), params={"fiscalCode": ente.fiscal_code},
                            timeout=10).json()["receipts"]
    assert {r["psp"] for r in receipts} == {"ABI99999"} and len(receipts) == 2
    assert Path(ARTIFACTS / "payment-page.png").stat().st_size > 1000
