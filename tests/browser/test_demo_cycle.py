"""The demo's whole journey in a real browser: an ente client (zeep, MyPay's reference WSDL) sends a cart,
the payer opens the returned URL, picks a PSP on the simulator's page, pays, lands back on the ente's portal,
and the ente reads the cart as paid with a receipt that validates.
"""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import zeep
from lxml import etree

from tests.browser.test_payment_page import ARTIFACTS, driver  # noqa: F401 - the chromium fixture
from tests.conftest import REFERENCE, RunningGateway, create_ente, free_port, new_database_url, start_gateway, \
    stop_gateway
from tests.e2e.test_payment_cycle import ENTE_BINDING, dovuti_document
from tests.e2e.test_simulator_checkout import FAST_ENV, _database, wait_for

pytestmark = pytest.mark.browser


class _Portal(BaseHTTPRequestHandler):
    """The ente's own portal, where the payer comes back."""

    visits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        _Portal.visits.append(self.path)
        body = "<html lang='it'><body><h1>Portale dell'ente</h1><p>Grazie.</p></body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(scope="module")
def portal() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Portal)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def demo_gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("demo-cycle")
    url = new_database_url("sqlite", request, tmp)
    running = start_gateway(url, tmp, args=("--with-simulator", "--threads", "8"), **FAST_ENV)
    running.database = _database(url)  # type: ignore[attr-defined]
    yield running
    running.database.dispose()  # type: ignore[attr-defined]
    stop_gateway(running)


def test_ente_cart_paid_in_the_browser(driver, demo_gateway: RunningGateway, portal: str) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    ente = create_ente(demo_gateway.database)  # type: ignore[attr-defined]
    service = zeep.Client(str(REFERENCE / "mypay/wsdl/pa-per-ente.wsdl")).create_service(
        ENTE_BINDING, demo_gateway.url + "/ente/PagamentiTelematiciDovutiPagati")
    sent = service.paaSILInviaCarrelloDovuti(
        password=ente.password, enteSILInviaRispostaPagamentoUrl=portal + "/ritorno",
        listaDovuti={"elementoListaDovuti": [{"codIpaEnte": ente.cod_ipa, "password": ente.password,
                                              "dovuti": dovuti_document("25.00", "7.50")}]},
        _soapheaders={"header": {"codIpaEnte": ente.cod_ipa}})
    assert sent["esito"] == "OK", sent["fault"]
    id_cart = sent["idSessionCarrello"]

    driver.get(sent["url"])  # gateway landing -> Checkout cart on the simulated node -> payment page
    WebDriverWait(driver, 30).until(expected_conditions.presence_of_element_located((By.ID, "pay")))
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "25,00" in body and "7,50" in body and "32,50" in body
    driver.find_elements(By.CSS_SELECTOR, "input[type=radio][name=psp]")[0].click()
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "demo-cycle-payment-page.png"))
    driver.find_element(By.ID, "pay").click()

    WebDriverWait(driver, 60).until(lambda d: d.current_url.startswith(portal + "/ritorno"))
    query = parse_qs(urlsplit(driver.current_url).query)
    assert query["idSession"] == [id_cart] and query["esito"] == ["OK"]
    driver.save_screenshot(str(ARTIFACTS / "demo-cycle-back-at-the-ente.png"))

    def paid() -> bool:
        answer = service.paaSILChiediEsitoCarrelloDovuti(codIpaEnte=ente.cod_ipa, password=ente.password,
                                                         idSessionCarrello=id_cart)
        return answer["fault"] is None and answer["listaCarrelli"]["rispostaCarrello"][0]["esito"] == "Pagato"

    assert wait_for(paid), "the receipts did not reach the gateway"
    answer = service.paaSILChiediEsitoCarrelloDovuti(codIpaEnte=ente.cod_ipa, password=ente.password,
                                                     idSessionCarrello=id_cart)
    cart = answer["listaCarrelli"]["rispostaCarrello"][0]
    schema = etree.XMLSchema(etree.parse(str(REFERENCE / "mypay/wsdl/PagInf_Dovuti_Pagati_6_2_0.xsd")))
    schema.assertValid(etree.fromstring(base64.b64decode(cart["pagati"])))
    assert cart["rt"] and b"receiptId" in cart["rt"]
