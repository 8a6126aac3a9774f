"""RegistraPagamento, ChiediPosizioniAperte and ChiediAvvisiPendenti end to end (zeep from MyPay's reference
WSDL, both backends), plus the periodic expiry of overdue positions."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import zeep
from lxml import etree
from sqlalchemy import select

from gateway.enti.registry import add_tipo_dovuto
from gateway.payments.expiry import expire_dovuti
from gateway.worker import PERIODIC
from storage.models import Dovuto, Ente, Receipt, ReceiptPayment
from tests.conftest import REFERENCE, ROOT, create_ente

WSDL = str(REFERENCE / "mypay" / "wsdl" / "pa-per-ente.wsdl")
BINDING = "{http://www.regione.veneto.it/pagamenti/ente/PagamentiTelematiciDovutiPagati}" \
          "PagamentiTelematiciDovutiPagatiBinding"
PATH = "/ente/PagamentiTelematiciDovutiPagati"
NS = "http://www.regione.veneto.it/schemas/2012/Pagamenti/Ente/"
CF = "RSSMRA80A01H501U"
OTHER_CF = "VRDGPP80A01L736U"

_clients: dict[str, Any] = {}


def service(url: str) -> Any:
    if url not in _clients:
        _clients[url] = zeep.Client(WSDL).create_service(BINDING, url + PATH)
    return _clients[url]


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(ROOT / "xsd" / "PagInf_Dovuti_Pagati_6_2_0.xsd")))


def versamento(azione: str, iud: str, *, payer_code: str = CF, amount: str = "10.00", tipo: str = "TARI",
               due: str | None = None) -> bytes:
    due_xml = f"<dataEsecuzionePagamento>{due}</dataEsecuzionePagamento>" if due else ""
    bilancio = ("<bilancio><capitolo><codCapitolo>C1</codCapitolo><accertamento><codAccertamento>A1"
                f"</codAccertamento><importo>{amount}</importo></accertamento></capitolo></bilancio>")
    return (f'<?xml version="1.0" encoding="UTF-8"?><Versamento xmlns="{NS}"><versioneOggetto>6.2.0</versioneOggetto>'
            f"<soggettoPagatore><identificativoUnivocoPagatore><tipoIdentificativoUnivoco>F</tipoIdentificativoUnivoco>"
            f"<codiceIdentificativoUnivoco>{payer_code}</codiceIdentificativoUnivoco></identificativoUnivocoPagatore>"
            f"<anagraficaPagatore>Mario Rossi</anagraficaPagatore><e-mailPagatore>m@example.it</e-mailPagatore>"
            f"</soggettoPagatore><datiVersamento>{due_xml}<identificativoUnivocoDovuto>{iud}"
            f"</identificativoUnivocoDovuto><importoSingoloVersamento>{amount}</importoSingoloVersamento>"
            f"<identificativoTipoDovuto>{tipo}</identificativoTipoDovuto><causaleVersamento>Causale {iud}"
            f"</causaleVersamento><datiSpecificiRiscossione>9/0101100IM/</datiSpecificiRiscossione>{bilancio}"
            f"</datiVersamento><azione>{azione}</azione></Versamento>").encode()


def importa(gateway, ente, azione: str, iud: str, *, flag: bool = True, **kwargs: Any) -> str | None:
    answer = service(gateway.url).paaSILImportaDovuto(password=ente.password, dovuto=versamento(azione, iud, **kwargs),
                                                      flagGeneraIuv=flag,
                                                      _soapheaders={"header": {"codIpaEnte": ente.cod_ipa}})
    assert answer.fault is None, answer.fault
    return answer.identificativoUnivocoVersamento


def posizioni(url: str, cod_ipa: str | None, password: str, tipo: str | None = "F", code: str | None = CF) -> Any:
    # SkipValue: zeep would refuse to send a request without the (required) person element.
    person = zeep.xsd.SkipValue if tipo is None else {"tipoIdentificativoUnivoco": tipo,
                                                      "codiceIdentificativoUnivoco": code}
    return service(url).paaSILChiediPosizioniAperte(password=password, codIpaEnte=cod_ipa,
                                                    identificativoUnivocoPersonaFG=person)


def registra(gateway, ente, iuv: str, *, iur: str = "IUR-1", amount: str = "10.00", password: str | None = None) -> Any:
    return service(gateway.url).paaSILRegistraPagamento(
        codIpaEnte=ente.cod_ipa, password=password or ente.password, identificativoUnivocoVersamento=iuv,
        codiceContestoPagamento="n/a", singoloImportoPagato=Decimal(amount), dataEsitoSingoloPagamento=date(2026, 3, 2),
        indiceDatiSingoloPagamento=1, identificativoUnivocoRiscossione=iur, tipoIstitutoAttestante="B",
        codiceIstitutiAttestante="BPPIITRRXXX", denominazioneAttestante="Sportello ente")


def iuds_of(answer: Any, schema: etree.XMLSchema) -> list[str]:
    found = []
    for position in answer.paaSILPosizioniAperte:
        document = etree.fromstring(position.dovuti)
        schema.assertValid(document)
        found += [node.text for node in document.iter(f"{{{NS}}}identificativoUnivocoDovuto")]
    return found


def test_posizioni_aperte_own_ente_only_and_annulment(gateway, gateway_db, ente, schema):
    other = create_ente(gateway_db)
    iuv = importa(gateway, ente, "I", "POS-1")
    importa(gateway, ente, "I", "POS-2", flag=False)
    importa(gateway, ente, "I", "POS-3", payer_code=OTHER_CF)
    importa(gateway, other, "I", "POS-X")

    answer = posizioni(gateway.url, ente.cod_ipa, ente.password)
    assert answer.fault is None
    assert sorted(iuds_of(answer, schema)) == ["POS-1", "POS-2"]
    first = next(p for p in answer.paaSILPosizioniAperte if b"POS-1" in p.dovuti)
    assert (first.codIpaEnte, first.deNomeEnte) == (ente.cod_ipa, ente.name)
    assert first.urlPagamento == f"{gateway.url}/pagamento/avviso?iuv={iuv}&ente={ente.cod_ipa}"
    document = etree.fromstring(first.dovuti)
    assert document.findtext(f"{{{NS}}}datiVersamento/{{{NS}}}identificativoUnivocoVersamento") == iuv
    assert document.find(f".//{{{NS}}}bilancio/{{{NS}}}capitolo/{{{NS}}}accertamento") is not None

    # The other ente sees only its own position, even asking for the same person with its own password.
    assert iuds_of(posizioni(gateway.url, other.cod_ipa, other.password), schema) == ["POS-X"]
    # Another ente's password never opens this ente's positions.
    denied = posizioni(gateway.url, ente.cod_ipa, other.password)
    assert denied.fault.faultCode == "PAA_ENTE_NON_VALIDO" and not denied.paaSILPosizioniAperte

    importa(gateway, ente, "A", "POS-1", flag=False)
    assert iuds_of(posizioni(gateway.url, ente.cod_ipa, ente.password), schema) == ["POS-2"]


@pytest.mark.parametrize("tipo, code, fault_code", [
    (None, None, "PAA_TIPO_IDENTIFICATIVO_PAGATORE_NON_VALIDO"),
    ("X", CF, "PAA_TIPO_IDENTIFICATIVO_PAGATORE_NON_VALIDO"),
    ("F", " ", "PAA_CODICE_IDENTIFICATIVO_PAGATORE_NON_PRESENTE"),
])
def test_posizioni_aperte_person_faults(gateway, ente, tipo, code, fault_code):
    answer = posizioni(gateway.url, ente.cod_ipa, ente.password, tipo, code)
    assert (answer.fault.faultCode, answer.fault.id) == (fault_code, ente.cod_ipa)


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def admin_gateway(gateway, tmp_path):
    """The same app and database in MyPay's admin-password mode, served over HTTP from this process
    (a second gunicorn would cost seconds for one setting)."""
    from gateway.app import create_app
    from gateway.settings import Settings

    state: dict[str, Any] = {}

    def start(admin_cod_ipa: str) -> str:
        settings = Settings(database_url=gateway.database_url, public_url=gateway.url, data_dir=tmp_path,
                            secret_key="test-secret-key-0123456789abcdef", log_format="json",
                            admin_cod_ipa=admin_cod_ipa)
        server = make_server("127.0.0.1", 0, create_app(settings), handler_class=_Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        state["server"] = server
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    if "server" in state:
        state["server"].shutdown()
        state["server"].server_close()


def test_posizioni_aperte_admin_mode(gateway, gateway_db, admin_gateway, schema):
    admin, first, second = (create_ente(gateway_db) for _ in range(3))
    importa(gateway, first, "I", "ADM-1")
    importa(gateway, second, "I", "ADM-2")
    url = admin_gateway(admin.cod_ipa)
    everything = posizioni(url, None, admin.password)
    assert {"ADM-1", "ADM-2"} <= set(iuds_of(everything, schema))
    assert iuds_of(posizioni(url, second.cod_ipa, admin.password), schema) == ["ADM-2"]
    # In this mode an ente's own password is not the admin's: refused, with the admin's id.
    denied = posizioni(url, first.cod_ipa, first.password)
    assert (denied.fault.faultCode, denied.fault.id) == ("PAA_ENTE_NON_VALIDO", admin.cod_ipa)
    unknown = posizioni(url, "C_NOBODY", admin.password)
    assert (unknown.fault.faultCode, unknown.fault.id) == ("PAA_ENTE_NON_VALIDO", admin.cod_ipa)


def test_registra_pagamento_idempotent(gateway, gateway_db, ente, schema):
    iuv = importa(gateway, ente, "I", "REG-1", amount="42.00")
    for _ in range(2):  # the repeat changes nothing and still answers OK
        answer = registra(gateway, ente, iuv, amount="42.00")
        assert (answer.esito, answer.fault) == ("OK", None)
    with gateway_db.transaction() as session:
        dovuto = session.scalar(select(Dovuto).join(Ente, Ente.id == Dovuto.ente_id)
                                .where(Ente.cod_ipa == ente.cod_ipa, Dovuto.iud == "REG-1"))
        assert dovuto.state == "COMPLETATO"
        assert [t.to_state for t in dovuto.transitions] == ["INSERIMENTO_DOVUTO", "COMPLETATO"]
        receipts = session.scalars(select(Receipt).where(Receipt.fiscal_code == ente.fiscal_code)).all()
        assert len(receipts) == 1
        receipt = receipts[0]
        assert (receipt.receipt_id, receipt.source, receipt.outcome, receipt.esito_code, receipt.amount,
                receipt.dovuto_id, receipt.flags) == (f"REGISTRA-{iuv}-IUR-1", "registra", "OK", "0",
                                                      Decimal("42.00"), dovuto.id, [])
        assert b"<identificativoUnivocoRiscossione>IUR-1</identificativoUnivocoRiscossione>" in receipt.raw
        payments = session.scalars(select(ReceiptPayment).where(ReceiptPayment.receipt_id == receipt.id)).all()
        assert [(p.index, p.iuv, p.iur, p.amount) for p in payments] == [(1, iuv, "IUR-1", Decimal("42.00"))]
    # A paid position is no longer open.
    assert "REG-1" not in iuds_of(posizioni(gateway.url, ente.cod_ipa, ente.password), schema)


def test_registra_pagamento_unknown_iuv_and_faults(gateway, gateway_db, ente):
    answer = registra(gateway, ente, "01990000000000777", iur="IUR-9", amount="5.00")
    assert answer.esito == "OK"
    with gateway_db.transaction() as session:
        dovuto = session.scalar(select(Dovuto).join(Ente, Ente.id == Dovuto.ente_id)
                                .where(Ente.cod_ipa == ente.cod_ipa, Dovuto.iuv == "01990000000000777"))
        assert (dovuto.state, dovuto.tipo_dovuto.code, dovuto.amount) == ("COMPLETATO", "DEFAULT", Decimal("5.00"))
        receipt = session.scalar(select(Receipt).where(Receipt.dovuto_id == dovuto.id))
        assert receipt.flags == ["unknown_position"]
    assert registra(gateway, ente, "01990000000000777", iur="IUR-9", amount="5.00").esito == "OK"

    wrong = registra(gateway, ente, "01990000000000777", password="Wrong-pass1")
    assert (wrong.esito, wrong.fault.faultCode) == ("KO", "PAA_ENTE_NON_VALIDO")
    inserito = create_ente(gateway_db, state="INSERITO")
    state = registra(gateway, inserito, "01990000000000777")
    assert (state.esito, state.fault.faultCode, state.fault.serial) == ("KO", "PAA_STATO_ENTE_NON_VALIDO", 0)


def test_avvisi_pendenti(gateway, gateway_db, ente, schema):
    first = importa(gateway, ente, "I", "AVV-1")
    importa(gateway, ente, "I", "AVV-2", flag=False)  # no IUV: not a notice
    annulled = importa(gateway, ente, "I", "AVV-3")
    importa(gateway, ente, "A", "AVV-3", flag=False)
    today = date.today()

    def ask(date_from: date, date_to: date) -> Any:
        return service(gateway.url).paaSILChiediAvvisiPendenti(password=ente.password, codIpaEnte=ente.cod_ipa,
                                                               dateFrom=date_from, dateTo=date_to)

    answer = ask(today - timedelta(days=1), today + timedelta(days=1))
    assert answer.fault is None
    assert len(answer.paaSILAvvisoPendente) == 1
    pending = answer.paaSILAvvisoPendente[0]
    assert abs((pending.dtCreazioneCodIuv - today).days) <= 1
    document = etree.fromstring(pending.dovuti)
    schema.assertValid(document)
    assert document.findtext(f".//{{{NS}}}identificativoUnivocoVersamento") == first != annulled
    assert not ask(today + timedelta(days=2), today + timedelta(days=3)).paaSILAvvisoPendente
    assert ask(today, today - timedelta(days=1)).fault.faultCode == "PAA_INTERVALLO_DATE_NON_VALIDO"


def test_expiry_moves_overdue_positions(gateway, gateway_db, ente):
    assert expire_dovuti in PERIODIC
    with gateway_db.transaction() as session:
        add_tipo_dovuto(session, ente.cod_ipa, "MULTA", "Multe", "IT60X0542811101000000123456", "9/0101100IM/",
                        due_date_required=True)
    yesterday = (date.today() - timedelta(days=2)).isoformat()
    importa(gateway, ente, "I", "EXP-1", tipo="MULTA", due=yesterday)
    importa(gateway, ente, "I", "EXP-2", tipo="MULTA", due=(date.today() + timedelta(days=5)).isoformat())
    importa(gateway, ente, "I", "EXP-3", tipo="TARI", due=yesterday)  # due date not binding for TARI
    with gateway_db.transaction() as session:
        ente_id = session.scalar(select(Ente.id).where(Ente.cod_ipa == ente.cod_ipa))
    # Scoped to this test's ente: the session gateway's database is shared with other tests.
    assert expire_dovuti(gateway_db, ente_id=ente_id) == 1
    with gateway_db.transaction() as session:
        states = dict(session.execute(select(Dovuto.iud, Dovuto.state).join(Ente, Ente.id == Dovuto.ente_id)
                                      .where(Ente.cod_ipa == ente.cod_ipa)).all())
    assert states == {"EXP-1": "SCADUTO", "EXP-2": "INSERIMENTO_DOVUTO", "EXP-3": "INSERIMENTO_DOVUTO"}
    assert expire_dovuti(gateway_db, ente_id=ente_id) == 0
