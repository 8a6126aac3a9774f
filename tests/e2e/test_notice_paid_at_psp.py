"""A notice created by paaSILImportaDovuto and paid at a PSP with `ente-gateway sim pay` appears as paid to the
ente: the operator's CLI and the ente's SOAP client, against one gateway with the simulator mounted.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from typing import Iterator

import pytest
import zeep
from lxml import etree

from tests.conftest import REFERENCE, RunningGateway, create_ente, new_database_url, start_gateway, stop_gateway
from tests.e2e.test_payment_cycle import CF, ENTE_BINDING, PAY_I
from tests.e2e.test_simulator_checkout import FAST_ENV, _database


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def sim_gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("psp-counter")
    url = new_database_url(request.param, request, tmp)
    running = start_gateway(url, tmp, args=("--with-simulator", "--threads", "8"), **FAST_ENV)
    running.database = _database(url)  # type: ignore[attr-defined]
    yield running
    running.database.dispose()  # type: ignore[attr-defined]
    stop_gateway(running)


def test_imported_notice_paid_with_sim_pay_is_paid_for_the_ente(sim_gateway: RunningGateway) -> None:
    ente = create_ente(sim_gateway.database)  # type: ignore[attr-defined]
    service = zeep.Client(str(REFERENCE / "mypay/wsdl/pa-per-ente.wsdl")).create_service(
        ENTE_BINDING, sim_gateway.url + "/ente/PagamentiTelematiciDovutiPagati")
    iud = "IUD-" + uuid.uuid4().hex[:12]
    versamento = (f'<Versamento xmlns="{PAY_I}"><versioneOggetto>6.2.0</versioneOggetto><soggettoPagatore>'
                  f"<identificativoUnivocoPagatore><tipoIdentificativoUnivoco>F</tipoIdentificativoUnivoco>"
                  f"<codiceIdentificativoUnivoco>{CF}</codiceIdentificativoUnivoco></identificativoUnivocoPagatore>"
                  f"<anagraficaPagatore>Mario Rossi</anagraficaPagatore></soggettoPagatore><datiVersamento>"
                  f"<identificativoUnivocoDovuto>{iud}</identificativoUnivocoDovuto>"
                  f"<importoSingoloVersamento>42.00</importoSingoloVersamento>"
                  f"<identificativoTipoDovuto>TARI</identificativoTipoDovuto><causaleVersamento>TARI 2026"
                  f"</causaleVersamento><datiSpecificiRiscossione>9/0101100IM/</datiSpecificiRiscossione>"
                  f"</datiVersamento><azione>I</azione></Versamento>").encode()
    created = service.paaSILImportaDovuto(password=ente.password, dovuto=versamento, flagGeneraIuv=True,
                                          _soapheaders={"header": {"codIpaEnte": ente.cod_ipa}})
    assert created["esito"] == "OK", created["fault"]
    iuv = created["identificativoUnivocoVersamento"]
    before = service.paaSILChiediPagatiConRicevuta(codIpaEnte=ente.cod_ipa, password=ente.password,
                                                   identificativoUnivocoVersamento=iuv)
    assert before["fault"]["faultCode"] == "PAA_PAGAMENTO_NON_INIZIATO"

    env = dict(os.environ, ENTE_GATEWAY_SIMULATOR_URL=sim_gateway.url + "/sim")
    paid = subprocess.run([sys.executable, "-m", "gateway.cli", "sim", "pay", "--fiscal-code", ente.fiscal_code,
                           "--notice-number", "3" + iuv], env=env, capture_output=True, text=True, timeout=120)
    assert paid.returncode == 0, paid.stdout + paid.stderr

    after = service.paaSILChiediPagatiConRicevuta(codIpaEnte=ente.cod_ipa, password=ente.password,
                                                  identificativoUnivocoVersamento=iuv)
    assert after["fault"] is None
    pagati = etree.fromstring(base64.b64decode(after["pagati"]))
    etree.XMLSchema(etree.parse(str(REFERENCE / "mypay/wsdl/PagInf_Dovuti_Pagati_6_2_0.xsd"))).assertValid(pagati)
    ns = {"p": PAY_I}
    assert pagati.findtext("p:datiPagamento/p:codiceEsitoPagamento", namespaces=ns) == "0"
    assert pagati.findtext("p:datiPagamento/p:identificativoUnivocoVersamento", namespaces=ns) == iuv
    assert after["rt"]
