"""paaSILImportaDovuto end to end: zeep from MyPay's reference WSDL against the running gateway (both backends).

Insert with and without a generated IUV, modify, annul, print (S), every fault path of §2.7 with its code,
the notice URL and zip (QR payload decoded from the rendered PDF), and 50 concurrent IUV generations.
"""

from __future__ import annotations

import io
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
import requests
import zeep
from sqlalchemy import select

from gateway.enti.registry import add_tipo_dovuto, set_tipo_dovuto_enabled
from gateway.payments.iuv import is_valid_check_digits
from storage.models import Dovuto, DovutoTransition, Ente
from tests.conftest import REFERENCE, create_ente

WSDL = str(REFERENCE / "mypay" / "wsdl" / "pa-per-ente.wsdl")
BINDING = "{http://www.regione.veneto.it/pagamenti/ente/PagamentiTelematiciDovutiPagati}" \
          "PagamentiTelematiciDovutiPagatiBinding"
PATH = "/ente/PagamentiTelematiciDovutiPagati"
NS = "http://www.regione.veneto.it/schemas/2012/Pagamenti/Ente/"
CF = "RSSMRA80A01H501U"

_local = threading.local()


def service(gateway) -> Any:
    # One zeep client per thread: the concurrency test calls from many threads at once.
    cache = getattr(_local, "services", None)
    if cache is None:
        cache = _local.services = {}
    if gateway.url not in cache:
        cache[gateway.url] = zeep.Client(WSDL).create_service(BINDING, gateway.url + PATH)
    return cache[gateway.url]


def versamento(azione: str = "I", iud: str | None = "IUD-1", *, iuv: str | None = None, amount: str = "10.00",
               tipo: str = "TARI", payer_type: str = "F", payer_code: str = CF, causale: str = "TARI 2026",
               payer: bool = True, tipo_versamento: str | None = None, bilancio: str = "",
               due: str | None = None) -> bytes:
    def opt(name: str, value: str | None) -> str:
        return f"<{name}>{value}</{name}>" if value is not None else ""
    soggetto = (f"<soggettoPagatore><identificativoUnivocoPagatore><tipoIdentificativoUnivoco>{payer_type}"
                f"</tipoIdentificativoUnivoco><codiceIdentificativoUnivoco>{payer_code}"
                f"</codiceIdentificativoUnivoco></identificativoUnivocoPagatore>"
                f"<anagraficaPagatore>Mario Rossi</anagraficaPagatore><indirizzoPagatore>Via Roma</indirizzoPagatore>"
                f"<civicoPagatore>1</civicoPagatore><capPagatore>30100</capPagatore>"
                f"<localitaPagatore>Venezia</localitaPagatore><provinciaPagatore>ve</provinciaPagatore>"
                f"<nazionePagatore>IT</nazionePagatore></soggettoPagatore>") if payer else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?><Versamento xmlns="{NS}"><versioneOggetto>6.2.0</versioneOggetto>'
            f"{soggetto}<datiVersamento>{opt('dataEsecuzionePagamento', due)}"
            f"{opt('tipoVersamento', tipo_versamento)}{opt('identificativoUnivocoVersamento', iuv)}"
            f"{opt('identificativoUnivocoDovuto', iud)}<importoSingoloVersamento>{amount}</importoSingoloVersamento>"
            f"<identificativoTipoDovuto>{tipo}</identificativoTipoDovuto><causaleVersamento>{causale}"
            f"</causaleVersamento><datiSpecificiRiscossione>9/0101100IM/</datiSpecificiRiscossione>{bilancio}"
            f"</datiVersamento><azione>{azione}</azione></Versamento>").encode()


SECONDARIO = (f'<?xml version="1.0" encoding="UTF-8"?><DovutiEntiSecondari xmlns="{NS}"><versioneOggetto>6.2.0'
              "</versioneOggetto><datiVersamentoEntiSecondari><codiceFiscaleBeneficiario>80007580279"
              "</codiceFiscaleBeneficiario><denominazioneBeneficiario>Provincia</denominazioneBeneficiario>"
              "<ibanAccreditoBeneficiario>IT60X0542811101000000123456</ibanAccreditoBeneficiario>"
              "<causaleVersamento>quota provincia</causaleVersamento><datiSpecificiRiscossione>9/0101100IM/tefa"
              "</datiSpecificiRiscossione><importoSingoloVersamento>2.00</importoSingoloVersamento>"
              "</datiVersamentoEntiSecondari></DovutiEntiSecondari>").encode()


def importa(gateway, ente, data: bytes, *, flag: bool | None = None, password: str | None = None,
            cod_ipa: str | None = None, secondari: list[bytes] | None = None) -> Any:
    extra: dict[str, Any] = {}
    if secondari is not None:
        extra["listaDovutiEntiSecondari"] = {"elementoListaDovutiEntiSecondari": [
            {"dovutiEntiSecondari": item} for item in secondari]}
    return service(gateway).paaSILImportaDovuto(
        password=password or ente.password, dovuto=data, flagGeneraIuv=flag,
        _soapheaders={"header": {"codIpaEnte": cod_ipa or ente.cod_ipa}}, **extra)


def ok(answer: Any) -> Any:
    assert answer.fault is None, answer.fault
    assert answer.esito == "OK"
    return answer


def fault(answer: Any, code: str) -> Any:
    assert answer.esito == "KO" and answer.fault is not None, answer
    assert answer.fault.faultCode == code, answer.fault
    return answer.fault


def row(gateway_db, ente, iud: str) -> Dovuto:
    with gateway_db.transaction() as session:
        found = session.scalar(select(Dovuto).join(Ente, Ente.id == Dovuto.ente_id)
                               .where(Ente.cod_ipa == ente.cod_ipa, Dovuto.iud == iud))
        if found is not None:
            found.transitions  # noqa: B018 - load before the session closes
        return found


def qr_payloads(pdf: bytes) -> list[str]:
    import pypdfium2
    import zxingcpp

    image = pypdfium2.PdfDocument(pdf)[0].render(scale=2).to_pil()
    return [r.text for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode]


def test_insert_with_generated_iuv_and_notice_url(gateway, gateway_db, ente):
    answer = ok(importa(gateway, ente, versamento(iud="GEN-1", amount="123.45"), flag=True))
    iuv = answer.identificativoUnivocoVersamento
    assert len(iuv) == 17 and iuv.startswith("0100") and is_valid_check_digits(iuv)
    assert answer.base64ZipAvviso is None
    dovuto = row(gateway_db, ente, "GEN-1")
    assert (dovuto.state, dovuto.iuv, dovuto.notice_number, dovuto.iuv_generated) == \
        ("INSERIMENTO_DOVUTO", iuv, "3" + iuv, True)
    assert (dovuto.payer_province, dovuto.amount) == ("VE", Decimal("123.45"))
    assert [(t.from_state, t.to_state) for t in dovuto.transitions] == [(None, "INSERIMENTO_DOVUTO")]

    response = requests.get(answer.urlFileAvviso, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/pdf"
    assert qr_payloads(response.content) == [f"PAGOPA|002|3{iuv}|{ente.fiscal_code}|12345"]
    assert requests.get(answer.urlFileAvviso[:-3] + "xyz", timeout=10).status_code == 404
    assert requests.get(gateway.url + "/avviso/not-a-token", timeout=10).status_code == 404


def test_insert_without_flag_and_with_given_iuv(gateway, gateway_db, ente):
    answer = ok(importa(gateway, ente, versamento(iud="PLAIN-1")))
    assert (answer.identificativoUnivocoVersamento, answer.urlFileAvviso) == (None, None)
    assert row(gateway_db, ente, "PLAIN-1").iuv is None

    given = "01990000000001234"  # application code 01, not the generated "00" marker
    answer = ok(importa(gateway, ente, versamento(iud="GIVEN-1", iuv=given)))
    assert (answer.identificativoUnivocoVersamento, answer.urlFileAvviso) == (None, None)
    assert row(gateway_db, ente, "GIVEN-1").notice_number == "3" + given
    fault(importa(gateway, ente, versamento(iud="GIVEN-2", iuv=given)), "PAA_IUV_DUPLICATO")
    fault(importa(gateway, ente, versamento(iud="GIVEN-1")), "PAA_IUD_DUPLICATO")

    # A supplied IUV with flagGeneraIuv: kept, not returned, but the notice link is given (as MyPay).
    answer = ok(importa(gateway, ente, versamento(iud="GIVEN-3", iuv="01000000000099999"), flag=True))
    assert answer.identificativoUnivocoVersamento is None and answer.urlFileAvviso


def test_modify_and_annul(gateway, gateway_db, ente):
    created = ok(importa(gateway, ente, versamento(iud="MOD-1"), flag=True))
    iuv = created.identificativoUnivocoVersamento
    answer = ok(importa(gateway, ente, versamento("M", "MOD-1", amount="20.50", causale="Nuova causale",
                                                  due="2030-01-31"), flag=True))
    assert answer.identificativoUnivocoVersamento is None  # the position keeps its IUV
    dovuto = row(gateway_db, ente, "MOD-1")
    assert (dovuto.amount, dovuto.causale, dovuto.iuv, str(dovuto.due_date)) == \
        (Decimal("20.50"), "Nuova causale", iuv, "2030-01-31")
    assert qr_payloads(requests.get(answer.urlFileAvviso, timeout=10).content) == \
        [f"PAGOPA|002|3{iuv}|{ente.fiscal_code}|2050"]

    ok(importa(gateway, ente, versamento("A", "MOD-1")))
    dovuto = row(gateway_db, ente, "MOD-1")
    assert dovuto.state == "ANNULLATO"
    assert [t.to_state for t in dovuto.transitions] == ["INSERIMENTO_DOVUTO", "ANNULLATO"]
    assert requests.get(created.urlFileAvviso, timeout=10).status_code == 410

    again = fault(importa(gateway, ente, versamento("A", "MOD-1")), "PAA_SYSTEM_ERROR")
    assert again.faultString.startswith("paaSILImportaDovuto: Errore import dovuto IUV [null] e IUD [MOD-1]: ")
    fault(importa(gateway, ente, versamento("M", "MOD-1")), "PAA_SYSTEM_ERROR")
    missing = fault(importa(gateway, ente, versamento("M", "NOPE-1")), "PAA_SYSTEM_ERROR")
    assert "Dovuto non trovato per IUD [NOPE-1]" in missing.faultString


def test_print_notice_zip(gateway, ente):
    iuv = ok(importa(gateway, ente, versamento(iud="PRN-1"), flag=True)).identificativoUnivocoVersamento
    answer = ok(importa(gateway, ente, versamento("S", "PRN-1", iuv=iuv, amount="7.00")))
    with zipfile.ZipFile(io.BytesIO(answer.base64ZipAvviso)) as archive:
        assert archive.namelist() == [f"avviso_{ente.fiscal_code}_{iuv}.pdf"]
        pdf = archive.read(archive.namelist()[0])
    # Drawn from the request, as MyPay does: the amount asked for, not the stored one.
    assert qr_payloads(pdf) == [f"PAGOPA|002|3{iuv}|{ente.fiscal_code}|700"]
    assert answer.urlFileAvviso is None and answer.identificativoUnivocoVersamento is None
    fault(importa(gateway, ente, versamento("S", "PRN-1", iuv=iuv), flag=True), "PAA_SYSTEM_ERROR")
    fault(importa(gateway, ente, versamento("S", "PRN-1")), "PAA_SYSTEM_ERROR")
    fault(importa(gateway, ente, versamento("S", "PRN-1", iuv="01990000000000001")), "PAA_IUV_NON_VALIDO")


def test_secondary_ente_is_stored(gateway, gateway_db, ente):
    ok(importa(gateway, ente, versamento(iud="MB-1"), flag=True, secondari=[SECONDARIO]))
    secondary = row(gateway_db, ente, "MB-1").secondary
    assert (secondary["fiscal_code"], secondary["iban"], secondary["amount"], secondary["taxonomy"]) == \
        ("80007580279", "IT60X0542811101000000123456", "2.00", "9/0101100IM/")
    fault(importa(gateway, ente, versamento(iud="MB-2"), secondari=[SECONDARIO, SECONDARIO]),
          "PAA_LIMITAZIONE_ENTI_SECONDARI_ERROR")
    fault(importa(gateway, ente, versamento(iud="MB-3"), secondari=[b"<DovutiEntiSecondari/>"]), "PAA_XML_NON_VALIDO")


BILANCIO_KO = ("<bilancio><capitolo><codCapitolo>C</codCapitolo><accertamento><importo>9.00</importo>"
               "</accertamento></capitolo></bilancio>")


@pytest.mark.parametrize("data, code", [
    (b"<Versamento/>", "PAA_XML_NON_VALIDO"),
    (versamento(amount="0.00"), "PAA_XML_NON_VALIDO"),
    (versamento("X"), "PAA_AZIONE_NON_VALIDO"),
    (versamento(iuv="123456"), "PAA_IUV_NON_VALIDO"),
    (versamento(iuv="99990000000000001"), "PAA_IUV_NON_VALIDO"),
    (versamento(iuv="010012345678901"), "PAA_IUV_NON_VALIDO"),  # IUV15 for an aux-digit-3 ente
    (versamento(bilancio=BILANCIO_KO), "PAA_IMPORTO_BILANCIO_NON_VALIDO"),
    (versamento(tipo="NOPE"), "PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_VALIDO"),
    (versamento(tipo="OFF"), "PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_ABILITATO"),
    (versamento(tipo="MARCA_BOLLO_DIGITALE"), "PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_VALIDO"),
    (versamento(payer=False), "PAA_SOGG_PAG_NON_VALORIZZATO"),
    (versamento(tipo_versamento="ALL|BP"), "PAA_TIPO_VERSAMENTO_NON_VALIDO"),
    (versamento(iud="000123"), "PAA_IUD_NON_VALIDO"),
    (versamento(iud=None), "PAA_IUD_NON_VALIDO"),
    (versamento(causale="  "), "PAA_CAUSALE_NON_PRESENTE"),
    (versamento(payer_code="RSSMRA80A01H501X"), "PAA_CODICE_FISCALE_NON_VALIDO"),
    (versamento(payer_type="G", payer_code="12345678901"), "PAA_P_IVA_NON_VALIDO"),
    (versamento(payer_code="ANONIMO"), "PAA_CODICE_FISCALE_NON_VALIDO"),
    # Order: the azione is checked before the IUV, the tipo before the payer, the IUD before the causale.
    (versamento("X", iuv="123"), "PAA_AZIONE_NON_VALIDO"),
    (versamento(tipo="NOPE", payer=False), "PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_VALIDO"),
    (versamento(iud="000X", causale=" ", payer_code="BAD"), "PAA_IUD_NON_VALIDO"),
])
def test_fault_paths(gateway, gateway_db, ente, data, code):
    with gateway_db.transaction() as session:
        add_tipo_dovuto(session, ente.cod_ipa, "OFF", "Spento", "IT60X0542811101000000123456", "9/0101100IM/")
        set_tipo_dovuto_enabled(session, ente.cod_ipa, "OFF", False)
        add_tipo_dovuto(session, ente.cod_ipa, "MARCA_BOLLO_DIGITALE", "Bollo", None, "9/0101100IM/",
                        fixed_amount=Decimal("16.00"))
    answer = fault(importa(gateway, ente, data), code)
    assert answer.id == ente.cod_ipa


def test_ente_faults(gateway, gateway_db, ente):
    unknown = fault(importa(gateway, ente, versamento(), cod_ipa="C_NOBODY"), "PAA_ENTE_NON_VALIDO")
    assert unknown.faultString == "codice IPA Ente [C_NOBODY] non valido"
    wrong = fault(importa(gateway, ente, versamento(), password="Wrong-pass1"), "PAA_ENTE_NON_VALIDO")
    assert wrong.faultString == f"Password non valida per ente [{ente.cod_ipa}]"
    # The XML is checked before the ente (MyPay's order).
    fault(importa(gateway, ente, b"<x/>", cod_ipa="C_NOBODY"), "PAA_XML_NON_VALIDO")
    inserito = create_ente(gateway_db, state="INSERITO")
    state = fault(importa(gateway, inserito, versamento()), "PAA_ENTE_NON_VALIDO")
    assert (state.faultString, state.serial) == ("Stato Ente Non Valido", 0)


def test_concurrent_generated_iuvs_are_distinct(gateway, gateway_db, ente):
    def one(n: int) -> str:
        answer = importa(gateway, ente, versamento(iud=f"CONC-{n}"), flag=True)
        assert answer.fault is None, answer.fault
        return answer.identificativoUnivocoVersamento

    with ThreadPoolExecutor(max_workers=10) as pool:
        iuvs = list(pool.map(one, range(50)))
    assert len(set(iuvs)) == 50
    assert all(len(iuv) == 17 and is_valid_check_digits(iuv) for iuv in iuvs)
    assert sorted(int(iuv[4:15]) for iuv in iuvs) == list(range(1, 51))
    with gateway_db.transaction() as session:
        stored = session.scalars(select(Dovuto.iuv).join(Ente, Ente.id == Dovuto.ente_id)
                                 .where(Ente.cod_ipa == ente.cod_ipa)).all()
        transitions = session.scalars(select(DovutoTransition.id)
                                      .join(Dovuto, Dovuto.id == DovutoTransition.dovuto_id)
                                      .join(Ente, Ente.id == Dovuto.ente_id).where(Ente.cod_ipa == ente.cod_ipa)).all()
    assert sorted(stored) == sorted(iuvs) and len(transitions) == 50
