"""The simulated legacy node end to end: a zeep client of the reference NodoPerPa.wsdl against /sim/NodoPerPa
(every fault the brief lists), and RPT carts opened by the real gateway, paid on the simulator's page, their
RTs pushed with paaInviaRT (once, twice) and stored once by the gateway. Both backends."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
import zeep
from lxml import etree
from sqlalchemy import select, update

from gateway.payments import documents
from gateway.payments.documents import Dominio, IdentificativoUnivoco, Istituto, Rpt, SingoloVersamentoRpt, Soggetto
from storage.db import Database
from storage.models import Dovuto, Ente, PaymentAttempt, Receipt
from tests.conftest import REFERENCE, create_ente, new_database_url, start_gateway, stop_gateway

NODO_WSDL = REFERENCE / "pagopa" / "gad" / "wsdl" / "NodoPerPa.wsdl"
ENTE_WSDL = REFERENCE / "mypay" / "wsdl" / "pa-per-ente.wsdl"
RT_XSD = REFERENCE / "pagopa" / "gad" / "xsd" / "PagInf_RPT_RT_6_2_0.xsd"
NODO_BINDING = "{http://NodoPagamentiSPC.spcoop.gov.it/servizi/PagamentiTelematiciRPT}PagamentiTelematiciRPTbinding"
ENTE_BINDING = "{http://www.regione.veneto.it/pagamenti/ente/PagamentiTelematiciDovutiPagati}" \
               "PagamentiTelematiciDovutiPagatiBinding"
ENTE_NS = "http://www.regione.veneto.it/schemas/2012/Pagamenti/Ente/"
BROKER, STATION, PASSWORD = "99999000013", "99999000013_01", "stationpwd1"
WISP = {"identificativoPSP": "AGID_01", "identificativoIntermediarioPSP": "97735020584",
        "identificativoCanale": "97735020584_02"}
ROME = ZoneInfo("Europe/Rome")

pytestmark = pytest.mark.skipif(not NODO_WSDL.exists(), reason="reference contracts not available")

# Fast timers: the simulator retries RT deliveries quickly; recovery looks at attempts at once.
SIM_ENV = {"ENTE_GATEWAY_SIMULATOR_RETRY_SCHEDULE": "0.3", "ENTE_GATEWAY_SIMULATOR_POLL_INTERVAL": "0.1",
           "ENTE_GATEWAY_RECOVERY_AFTER_SECONDS": "0", "ENTE_GATEWAY_RECOVERY_SLOT_SECONDS": "1"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
    tmp = tmp_path_factory.mktemp(f"sim-legacy-{request.param}")
    url = new_database_url(request.param, request, tmp)
    running = start_gateway(url, tmp, args=("--with-simulator", "--threads", "8"), **SIM_ENV)
    running.db = Database(url)  # type: ignore[attr-defined]
    yield running
    running.db.dispose()  # type: ignore[attr-defined]
    stop_gateway(running)


@pytest.fixture(autouse=True)
def _clear_scenarios(gw: Any):
    requests.post(gw.url + "/sim/api/scenario", json={"name": "clear"}, timeout=10)
    yield
    requests.post(gw.url + "/sim/api/scenario", json={"name": "clear"}, timeout=10)


@lru_cache(maxsize=None)
def _nodo_client() -> zeep.Client:
    return zeep.Client(str(NODO_WSDL))


@lru_cache(maxsize=None)
def _ente_client() -> zeep.Client:
    return zeep.Client(str(ENTE_WSDL))


def nodo(gw: Any) -> Any:
    return _nodo_client().create_service(NODO_BINDING, gw.url + "/sim/NodoPerPa")


# --- RPT documents -------------------------------------------------------------------------------

def rpt_xml(dominio: str, iuv: str, ccp: str, amounts: tuple[str, ...] = ("10.00",), total: str | None = None,
            iban: str | None = "IT60X0542811101000000123456") -> bytes:
    now = datetime.now(ROME).replace(tzinfo=None, microsecond=0)
    rpt = Rpt(dominio=Dominio(dominio, STATION), identificativo_messaggio_richiesta=uuid.uuid4().hex,
              data_ora_messaggio_richiesta=now,
              soggetto_pagatore=Soggetto(IdentificativoUnivoco("F", "RSSMRA80A01H501U"), "Mario Rossi"),
              ente_beneficiario=Istituto(IdentificativoUnivoco("G", dominio), "Comune di Prova"),
              data_esecuzione_pagamento=now.date(), tipo_versamento="BBT", iuv=iuv, codice_contesto_pagamento=ccp,
              singoli=tuple(SingoloVersamentoRpt(Decimal(a), "Tassa rifiuti", "9/0101100IM/", iban_accredito=iban)
                            for a in amounts),
              importo_totale_da_versare=Decimal(total) if total else None)
    return documents.build_rpt(rpt)


def new_triple(dominio: str) -> tuple[str, str, str]:
    return dominio, f"{uuid.uuid4().int % 10**17:017d}", uuid.uuid4().hex


def invia_rpt(gw: Any, dominio: str, iuv: str, ccp: str, data: bytes, *, password: str = PASSWORD,
              station: str = STATION, broker: str = BROKER, header_dominio: str | None = None) -> Any:
    header = {"identificativoIntermediarioPA": broker, "identificativoStazioneIntermediarioPA": station,
              "identificativoDominio": header_dominio or dominio, "identificativoUnivocoVersamento": iuv,
              "codiceContestoPagamento": ccp}
    return nodo(gw).nodoInviaRPT(password=password, tipoFirma="", rpt=data, _soapheaders={"header": header}, **WISP)


def invia_carrello(gw: Any, cart_id: str, rpts: list[tuple[str, str, str, bytes]]) -> Any:
    header = {"identificativoIntermediarioPA": BROKER, "identificativoStazioneIntermediarioPA": STATION,
              "identificativoCarrello": cart_id}
    lista = {"elementoListaRPT": [{"identificativoDominio": d, "identificativoUnivocoVersamento": i,
                                   "codiceContestoPagamento": c, "tipoFirma": "", "rpt": x} for d, i, c, x in rpts]}
    return nodo(gw).nodoInviaCarrelloRPT(password=PASSWORD, listaRPT=lista, _soapheaders={"header": header}, **WISP)


def ask(gw: Any, operation: str, dominio: str, iuv: str, ccp: str, password: str = PASSWORD) -> Any:
    return getattr(nodo(gw), operation)(identificativoIntermediarioPA=BROKER, identificativoStazioneIntermediarioPA=STATION,
                                        password=password, identificativoDominio=dominio,
                                        identificativoUnivocoVersamento=iuv, codiceContestoPagamento=ccp)


def code(answer: Any) -> str | None:
    return answer.fault.faultCode if answer.fault is not None else None


def cart_id_of(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def pay(gw: Any, url: str, action: str = "pay") -> dict:
    response = requests.post(f"{gw.url}/sim/api/carts/{cart_id_of(url)}/{action}", json={}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def storico(answer: Any) -> list[str]:
    return [item.stato for item in answer.esito.elementoStoricoRPT]


# --- NodoPerPa through the reference WSDL ----------------------------------------------------------

def test_invia_rpt_accepted_then_state_copy_and_pending(gw: Any) -> None:
    dominio, iuv, ccp = new_triple("80000000001")
    answer = invia_rpt(gw, dominio, iuv, ccp, rpt_xml(dominio, iuv, ccp))
    assert (answer.esito, answer.redirect, code(answer)) == ("OK", 1, None)
    assert answer.url.startswith(gw.url + "/sim/pagamento/")
    stato = ask(gw, "nodoChiediStatoRPT", dominio, iuv, ccp)
    assert stato.esito.stato == "RPT_ACCETTATA_NODO"
    assert storico(stato) == ["RPT_RICEVUTA_NODO", "RPT_ACCETTATA_NODO"]
    assert code(ask(gw, "nodoChiediCopiaRT", dominio, iuv, ccp)) == "PPT_RT_NONDISPONIBILE"
    assert code(ask(gw, "nodoChiediCopiaRT", dominio, iuv, "other-ccp")) == "PPT_RT_SCONOSCIUTA"
    assert code(ask(gw, "nodoChiediStatoRPT", dominio, iuv, "other-ccp")) == "PPT_RPT_SCONOSCIUTA"
    pending = nodo(gw).nodoChiediListaPendentiRPT(identificativoIntermediarioPA=BROKER,
                                                  identificativoStazioneIntermediarioPA=STATION, password=PASSWORD,
                                                  identificativoDominio=dominio, dimensioneLista=100)
    assert code(pending) is None
    assert (iuv, ccp, "RPT_ACCETTATA_NODO") in {(p.identificativoUnivocoVersamento, p.codiceContestoPagamento, p.stato)
                                                for p in pending.listaRPTPendenti.rptPendente}
    assert pending.listaRPTPendenti.totRestituiti == len(pending.listaRPTPendenti.rptPendente)
    # Two RPTs are pending at least (this test's and the others of the module): a list of one is exceeded.
    other = new_triple(dominio)
    invia_rpt(gw, *other, rpt_xml(*other))
    too_many = nodo(gw).nodoChiediListaPendentiRPT(identificativoIntermediarioPA=BROKER,
                                                   identificativoStazioneIntermediarioPA=STATION, password=PASSWORD,
                                                   dimensioneLista=1)
    assert code(too_many) == "PPT_SUPERAMENTOSOGLIA"
    # Sent again: the same triple is a duplicate.
    assert code(invia_rpt(gw, dominio, iuv, ccp, rpt_xml(dominio, iuv, ccp))) == "PPT_RPT_DUPLICATA"


@pytest.mark.parametrize("case, expected", [
    ("password", "PPT_AUTENTICAZIONE"), ("dominio", "PPT_DOMINIO_SCONOSCIUTO"),
    ("station", "PPT_STAZIONE_INT_PA_SCONOSCIUTA"), ("broker", "PPT_INTERMEDIARIO_PA_SCONOSCIUTO"),
    ("xsd", "PPT_SINTASSI_XSD"), ("header", "PPT_SEMANTICA"), ("sum", "PPT_SEMANTICA")])
def test_invia_rpt_faults(gw: Any, case: str, expected: str) -> None:
    dominio, iuv, ccp = new_triple("80000000001")
    data = rpt_xml(dominio, iuv, ccp)
    kwargs: dict[str, Any] = {}
    if case == "password":
        kwargs["password"] = "wrongpass1"
    elif case == "dominio":
        dominio = "ABCDEFGHIJK"
        data = rpt_xml("80000000001", iuv, ccp)
    elif case == "station":
        kwargs["station"] = "99999000013_77"
    elif case == "broker":
        kwargs["broker"] = "12345678901"
    elif case == "xsd":
        data = data.replace(b"<tipoVersamento>BBT</tipoVersamento>", b"<tipoVersamento>XYZ</tipoVersamento>")
    elif case == "header":
        kwargs["header_dominio"] = "80000000009"
    elif case == "sum":
        data = rpt_xml(dominio, iuv, ccp, ("10.00", "5.00"), total="20.00")
    answer = invia_rpt(gw, dominio, iuv, ccp, data, **kwargs)
    assert answer.esito == "KO"
    assert answer.fault.faultCode == expected
    assert answer.fault.id == "NodoDeiPagamentiSPC"
    assert answer.url is None


def test_cart_all_or_nothing_and_duplicate_cart(gw: Any) -> None:
    good = new_triple("80000000001")
    bad = new_triple("80000000001")
    bad_xml = rpt_xml(*bad, ("10.00", "5.00"), total="99.00")
    cart = f"2026{good[0]}GW{uuid.uuid4().int % 10**18:018d}"
    refused = invia_carrello(gw, cart, [(*good, rpt_xml(*good)), (*bad, bad_xml)])
    assert refused.esitoComplessivoOperazione == "KO"
    assert refused.fault.faultCode == "PPT_SEMANTICA"
    assert [(f.faultCode, f.serial) for f in refused.listaErroriRPT.fault] == [("PPT_SEMANTICA", 2)]
    # Nothing of the refused cart was kept: the good RPT is unknown, and the cart id is still free.
    assert code(ask(gw, "nodoChiediStatoRPT", *good)) == "PPT_RPT_SCONOSCIUTA"
    accepted = invia_carrello(gw, cart, [(*good, rpt_xml(*good))])
    assert (accepted.esitoComplessivoOperazione, code(accepted)) == ("OK", None)
    again = invia_carrello(gw, cart, [(*good, rpt_xml(*good))])
    assert code(again) == "PPT_ID_CARRELLO_DUPLICATO"
    other_cart = cart[:-1] + ("1" if cart[-1] != "1" else "2")
    duplicate_rpt = invia_carrello(gw, other_cart, [(*good, rpt_xml(*good))])
    assert [(f.faultCode, f.serial) for f in duplicate_rpt.listaErroriRPT.fault] == [("PPT_RPT_DUPLICATA", 1)]


def test_node_fault_scenario_and_unsupported_operations(gw: Any) -> None:
    requests.post(gw.url + "/sim/api/scenario", json={"name": "node_fault", "code": "PPT_CANALE_IRRAGGIUNGIBILE",
                                                     "operation": "nodoInviaCarrelloRPT"}, timeout=10)
    triple = new_triple("80000000001")
    cart = f"2026{triple[0]}GW{uuid.uuid4().int % 10**18:018d}"
    answer = invia_carrello(gw, cart, [(*triple, rpt_xml(*triple))])
    assert (answer.esitoComplessivoOperazione, code(answer)) == ("KO", "PPT_CANALE_IRRAGGIUNGIBILE")
    assert invia_carrello(gw, cart, [(*triple, rpt_xml(*triple))]).esitoComplessivoOperazione == "OK"  # used up
    informativa = nodo(gw).nodoChiediInformativaPSP(identificativoIntermediarioPA=BROKER,
                                                    identificativoStazioneIntermediarioPA=STATION, password=PASSWORD)
    assert code(informativa) == "PPT_SYSTEM_ERROR" and "non supportata" in informativa.fault.description
    storno = nodo(gw).nodoInviaRichiestaStorno(identificativoIntermediarioPA=BROKER,
                                               identificativoStazioneIntermediarioPA=STATION, password=PASSWORD,
                                               identificativoDominio=triple[0],
                                               identificativoUnivocoVersamento=triple[1],
                                               codiceContestoPagamento=triple[2], rr=b"<rr/>")
    assert (storno.esito, code(storno)) == ("KO", "PPT_SYSTEM_ERROR")


def test_soap_quirks_hand_built_envelope(gw: Any) -> None:
    """No SOAPAction, odd prefixes, no header: dispatched on the body root; not XML gets a SOAP Fault."""
    body = (f'<?xml version="1.0"?><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/">\n\t<S:Body>'
            f'<x:nodoChiediCopiaRT xmlns:x="http://ws.pagamenti.telematici.gov/">'
            f"<identificativoIntermediarioPA>{BROKER}</identificativoIntermediarioPA>"
            f"<identificativoStazioneIntermediarioPA>{STATION}</identificativoStazioneIntermediarioPA>"
            f"<password>{PASSWORD}</password><identificativoDominio>80000000001</identificativoDominio>"
            f"<identificativoUnivocoVersamento>1</identificativoUnivocoVersamento>"
            f"<codiceContestoPagamento>n/a</codiceContestoPagamento></x:nodoChiediCopiaRT></S:Body></S:Envelope>")
    response = requests.post(gw.url + "/sim/NodoPerPa", data=body.encode(), timeout=10,
                             headers={"Content-Type": "text/xml"})
    assert response.status_code == 200
    assert b"<faultCode>PPT_RT_SCONOSCIUTA</faultCode>" in response.content
    garbage = requests.post(gw.url + "/sim/NodoPerPa", data=b"not xml", timeout=10)
    assert garbage.status_code == 500 and b"Fault" in garbage.content


# --- carts opened by the gateway ---------------------------------------------------------------------

def legacy_ente(gw: Any) -> Any:
    ente = create_ente(gw.db)
    with gw.db.transaction() as session:
        session.execute(update(Ente).where(Ente.cod_ipa == ente.cod_ipa).values(payment_model="rpt"))
    return ente


def dovuti_xml(amount: str = "12.50") -> bytes:
    item = (f"<datiSingoloVersamento><identificativoUnivocoDovuto>IUD-{uuid.uuid4().hex[:12]}"
            f"</identificativoUnivocoDovuto><importoSingoloVersamento>{amount}</importoSingoloVersamento>"
            f"<identificativoTipoDovuto>TARI</identificativoTipoDovuto><causaleVersamento>Tassa rifiuti"
            f"</causaleVersamento><datiSpecificiRiscossione>9/0101100IM/</datiSpecificiRiscossione>"
            f"</datiSingoloVersamento>")
    return (f'<?xml version="1.0" encoding="UTF-8"?><Dovuti xmlns="{ENTE_NS}"><versioneOggetto>6.2.0'
            f"</versioneOggetto><soggettoPagatore><identificativoUnivocoPagatore><tipoIdentificativoUnivoco>F"
            f"</tipoIdentificativoUnivoco><codiceIdentificativoUnivoco>RSSMRA80A01H501U"
            f"</codiceIdentificativoUnivoco></identificativoUnivocoPagatore><anagraficaPagatore>Mario Rossi"
            f"</anagraficaPagatore></soggettoPagatore><datiVersamento><tipoVersamento>ALL</tipoVersamento>"
            f"{item}</datiVersamento></Dovuti>").encode()


def open_legacy_payment(gw: Any, ente: Any) -> tuple[str, PaymentAttempt]:
    """InviaDovuti through MyPay's WSDL, then the landing page: the gateway sends nodoInviaCarrelloRPT."""
    service = _ente_client().create_service(ENTE_BINDING, gw.url + "/ente/PagamentiTelematiciDovutiPagati")
    answer = service.paaSILInviaDovuti(password=ente.password, dovuti=dovuti_xml(),
                                       _soapheaders={"header": {"codIpaEnte": ente.cod_ipa}})
    assert answer.fault is None, answer.fault
    landing = requests.get(answer.url, allow_redirects=False, timeout=30)
    assert landing.status_code in (302, 303), landing.text[:500]
    page = landing.headers["Location"]
    assert page.startswith(gw.url + "/sim/pagamento/")
    with gw.db.transaction() as session:
        attempt = session.scalar(select(PaymentAttempt).join(Ente, Ente.id == PaymentAttempt.ente_id)
                                 .where(Ente.cod_ipa == ente.cod_ipa, PaymentAttempt.model == "rpt"))
        session.expunge(attempt)
    return page, attempt


def receipts_of(gw: Any, attempt: PaymentAttempt) -> list[Receipt]:
    with gw.db.transaction() as session:
        rows = list(session.scalars(select(Receipt).where(Receipt.ente_id == attempt.ente_id,
                                                          Receipt.iuv == attempt.iuv)))
        for row in rows:
            row.payments  # noqa: B018 - loaded before the session closes
            session.expunge(row)
        return rows


def dovuto_state(gw: Any, attempt: PaymentAttempt) -> str:
    with gw.db.transaction() as session:
        return session.scalar(select(Dovuto.state).where(Dovuto.ente_id == attempt.ente_id, Dovuto.iuv == attempt.iuv))


def test_rpt_cart_paid_rt_delivered_and_receipt_stored(gw: Any) -> None:
    ente = legacy_ente(gw)
    page, attempt = open_legacy_payment(gw, ente)
    result = pay(gw, page)
    assert result["state"] == "PAID"
    stored = wait_for(lambda: receipts_of(gw, attempt))
    assert len(stored) == 1 and stored[0].source == "paaInviaRT" and stored[0].esito_code == "0"
    assert stored[0].amount == Decimal("12.50")
    assert wait_for(lambda: dovuto_state(gw, attempt) == "COMPLETATO")
    # The RT pushed is the one nodoChiediCopiaRT returns, valid against the reference schema, capital-C CCP.
    copy = ask(gw, "nodoChiediCopiaRT", stored[0].fiscal_code, attempt.iuv, attempt.ccp)
    assert code(copy) is None and copy.rt == stored[0].raw
    schema = etree.XMLSchema(etree.parse(str(RT_XSD)))
    root = etree.fromstring(copy.rt)
    assert schema.validate(root), schema.error_log
    ns = {"p": "http://www.digitpa.gov.it/schemas/2011/Pagamenti/"}
    assert root.findtext("p:datiPagamento/p:CodiceContestoPagamento", namespaces=ns) == attempt.ccp
    stato = wait_for(lambda: (lambda s: s if s.esito.stato == "RT_ACCETTATA_PA" else None)(
        ask(gw, "nodoChiediStatoRPT", stored[0].fiscal_code, attempt.iuv, attempt.ccp)))
    assert storico(stato)[-4:] == ["RPT_ACCETTATA_PSP", "RT_RICEVUTA_NODO", "RT_ACCETTATA_NODO", "RT_ACCETTATA_PA"]


def test_refused_payment_gives_negative_rt(gw: Any) -> None:
    ente = legacy_ente(gw)
    page, attempt = open_legacy_payment(gw, ente)
    assert pay(gw, page, "refuse")["state"] == "REFUSED"
    stored = wait_for(lambda: receipts_of(gw, attempt))
    assert stored[0].esito_code == "1" and stored[0].amount == Decimal("0.00")
    assert wait_for(lambda: dovuto_state(gw, attempt) == "INSERIMENTO_DOVUTO")


def test_rt_twice_stores_one_receipt(gw: Any) -> None:
    requests.post(gw.url + "/sim/api/scenario", json={"name": "rt_twice"}, timeout=10)
    ente = legacy_ente(gw)
    page, attempt = open_legacy_payment(gw, ente)
    pay(gw, page)
    stored = wait_for(lambda: [r for r in receipts_of(gw, attempt) if r.deliveries >= 2])
    assert len(receipts_of(gw, attempt)) == 1 and stored[0].deliveries == 2

    def pushes() -> list[str]:
        calls = requests.get(gw.url + "/sim/api/calls", params={"operation": "paaInviaRT", "limit": 500},
                             timeout=10).json()
        return [c["outcome"] for c in calls.get("calls", calls) if attempt.ccp in (c.get("subject") or "")]

    assert wait_for(lambda: pushes() == ["OK", "OK"])
