"""check_dovuti_document's fault codes and their order (MyPay's InviaDovuti checks 4-11), insert_dovuti,
find_payable_by_iuv and the IUV allocator, on crafted documents against both database backends."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from gateway import faults
from gateway.enti.registry import add_tipo_dovuto, set_tipo_dovuto_enabled
from gateway.payments import states
from gateway.payments.dovuti import check_dovuti_document, find_payable_by_iuv, insert_dovuti
from gateway.payments.iuv import is_valid_check_digits
from gateway.payments.iuv_allocator import allocate_iuv
from storage.models import Dovuto, DovutoTransition, Ente, TipoDovuto
from storage.db import Database
from tests.conftest import BACKENDS, create_ente, new_database_url

NS = "http://www.regione.veneto.it/schemas/2012/Pagamenti/Ente/"
CF = "RSSMRA80A01H501U"


def item(iud: str = "IUD-1", *, amount: str = "10.00", tipo: str = "TARI", causale: str = "Tassa rifiuti",
         dsr: str = "9/0101100IM/", bollo: str = "", bilancio: str = "") -> str:
    return (f"<datiSingoloVersamento><identificativoUnivocoDovuto>{iud}</identificativoUnivocoDovuto>"
            f"<importoSingoloVersamento>{amount}</importoSingoloVersamento>"
            f"<identificativoTipoDovuto>{tipo}</identificativoTipoDovuto>"
            f"<causaleVersamento>{causale}</causaleVersamento>"
            f"<datiSpecificiRiscossione>{dsr}</datiSpecificiRiscossione>{bollo}{bilancio}</datiSingoloVersamento>")


def document(*items: str, payer_type: str = "F", payer_code: str = CF, tipo_versamento: str = "ALL",
             iuv: str = "", extra_payer: str = "", email: str = "") -> bytes:
    items = items or (item(),)
    iuv_xml = f"<identificativoUnivocoVersamento>{iuv}</identificativoUnivocoVersamento>" if iuv else ""
    email_xml = f"<e-mailPagatore>{email}</e-mailPagatore>" if email else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?><Dovuti xmlns="{NS}"><versioneOggetto>6.2.0</versioneOggetto>'
            f"<soggettoPagatore><identificativoUnivocoPagatore><tipoIdentificativoUnivoco>{payer_type}"
            f"</tipoIdentificativoUnivoco><codiceIdentificativoUnivoco>{payer_code}</codiceIdentificativoUnivoco>"
            f"</identificativoUnivocoPagatore><anagraficaPagatore>Mario Rossi</anagraficaPagatore>{extra_payer}"
            f"{email_xml}</soggettoPagatore><datiVersamento><tipoVersamento>{tipo_versamento}</tipoVersamento>"
            f"{iuv_xml}{''.join(items)}</datiVersamento></Dovuti>").encode()


BOLLO = ("<datiMarcaBolloDigitale><tipoBollo>01</tipoBollo><hashDocumento>{hash}</hashDocumento>"
         "<provinciaResidenza>RM</provinciaResidenza></datiMarcaBolloDigitale>")
BILANCIO = ("<bilancio><capitolo><codCapitolo>C1</codCapitolo><accertamento><importo>{a}</importo></accertamento>"
            "<accertamento><importo>{b}</importo></accertamento></capitolo></bilancio>")


@pytest.fixture(scope="module", params=BACKENDS)
def database(request, tmp_path_factory):
    """One database per backend for the module: every test works on an ente of its own."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
    db = Database(new_database_url(request.param, request, tmp_path_factory.mktemp("dovuti")))
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def setup(database):
    demo = create_ente(database)
    with database.transaction() as session:
        add_tipo_dovuto(session, demo.cod_ipa, "MARCA_BOLLO_DIGITALE", "Bollo", None, "9/0101100IM/",
                        fixed_amount=Decimal("16.00"))
        add_tipo_dovuto(session, demo.cod_ipa, "SPONT", "Spontaneo", "IT60X0542811101000000123456",
                        "9/0101100IM/", cf_anonimo=True)
        add_tipo_dovuto(session, demo.cod_ipa, "OFF", "Disabilitato", "IT60X0542811101000000123456",
                        "9/0101100IM/", cf_anonimo=True)
        set_tipo_dovuto_enabled(session, demo.cod_ipa, "OFF", False)
    return database, demo


def run(setup, data: bytes | None, **kwargs):
    database, demo = setup
    with database.transaction() as session:
        ente = session.scalar(select(Ente).where(Ente.cod_ipa == demo.cod_ipa))
        return check_dovuti_document(session, ente, data, **kwargs)


def fault_of(setup, data: bytes | None, **kwargs) -> faults.Fault:
    with pytest.raises(faults.Fault) as caught:
        run(setup, data, **kwargs)
    assert caught.value.id == setup[1].cod_ipa
    return caught.value


def test_valid_document_gives_new_dovuti(setup):
    data = document(item("A", amount="12.50", bilancio=BILANCIO.format(a="10.00", b="2.50")), item("B"),
                    extra_payer="<provinciaPagatore>vr</provinciaPagatore>", tipo_versamento="bbt|po")
    items = run(setup, data)
    assert [i.iud for i in items] == ["A", "B"]
    assert items[0].amount == Decimal("12.50") and items[0].payer_province == "VR"
    assert items[0].tipo_versamento == "BBT|PO" and items[0].bilancio.startswith("<bilancio><capitolo>")


@pytest.mark.parametrize("data, code, string", [
    (b"<Dovuti/>", faults.PAA_XML_NON_VALIDO, "XML dei dovuti non valido"),
    (b"not xml", faults.PAA_XML_NON_VALIDO, "XML dei dovuti non valido"),
    (document(item(amount="0.00")), faults.PAA_XML_NON_VALIDO, "XML dei dovuti non valido"),
    (document(iuv="01000000000000144"), faults.PAA_IUV_NON_VALIDO, "l'inserimento dello IUV è deprecato"),
    (document(tipo_versamento="ALL|BP"), faults.PAA_TIPO_VERSAMENTO_NON_VALIDO, "Tipo versamento non valido [ALL|BP]"),
    (document(payer_code="RSSMRA80A01H501X"), faults.PAA_CODICE_FISCALE_NON_VALIDO,
     "Codice fiscale non valido [RSSMRA80A01H501X]"),
    (document(payer_type="G", payer_code="12345678901"), faults.PAA_P_IVA_NON_VALIDO, "P.IVA non valida [12345678901]"),
    (document(payer_code="ANONIMO"), faults.PAA_CODICE_FISCALE_NON_VALIDO, "Funzionalita CF ANONIMO non valida"),
    (document(item(tipo="SPONT"), item("B", tipo="TARI"), payer_code="ANONIMO"), faults.PAA_CODICE_FISCALE_NON_VALIDO,
     "Funzionalita CF ANONIMO non valida"),
    (document(item("000ABC")), faults.PAA_IUD_NON_VALIDO, "IdentificativoUnivocoDovuto non valido [000ABC]"),
    (document(item(tipo="NOPE")), faults.PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_VALIDO,
     "identificativoTipoDovuto [NOPE] non valido"),
    (document(item(tipo="OFF")), faults.PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_ABILITATO,
     "identificativoTipoDovuto [OFF] non abilitato"),
    (document(item(tipo="MARCA_BOLLO_DIGITALE", amount="10.00", bollo=BOLLO.format(hash="h"))),
     faults.PAA_IMPORTO_MARCA_BOLLO_DIGITALE_NON_VALIDA, None),
    (document(item(tipo="MARCA_BOLLO_DIGITALE", amount="16.00")), faults.PAA_MARCA_BOLLO_DIGITALE_NON_VALIDA,
     "dati marca da bollo mancanti o non validi"),
    (document(item(tipo="TARI", bollo=BOLLO.format(hash="h"))), faults.PAA_MARCA_BOLLO_DIGITALE_NON_VALIDA,
     "dati marca da bollo non supportati su tipo dovuto diverso da marca da bollo"),
    (document(item(amount="12.50", bilancio=BILANCIO.format(a="10.00", b="2.00"))),
     faults.PAA_IMPORTO_BILANCIO_NON_VALIDO, "Importo bilancio non congruente per dovuto con importo [12.50]"),
    (document(item(causale="   ")), faults.PAA_CAUSALE_NON_PRESENTE, "Causale versamento obbligatoria mancante"),
])
def test_single_fault(setup, data, code, string):
    fault = fault_of(setup, data)
    assert fault.code == code
    if string is not None:
        assert fault.string == string


def test_schema_error_is_in_description(setup):
    fault = fault_of(setup, document(item(amount="1.5")))
    assert fault.code == faults.PAA_XML_NON_VALIDO and "importoSingoloVersamento" in fault.description


def test_missing_document(setup):
    assert fault_of(setup, None).code == faults.PAA_XML_NON_VALIDO


def test_anonimo_accepted_when_every_tipo_allows_it(setup):
    items = run(setup, document(item(tipo="SPONT"), payer_code="ANONIMO"))
    assert items[0].payer_code == "ANONIMO"


def test_partita_iva_for_tipo_f(setup):
    assert run(setup, document(payer_code="00000000000"))[0].payer_type == "F"


@pytest.mark.parametrize("data, code", [
    # IUV before tipoVersamento before the payer before any item.
    (document(item("000X", tipo="NOPE"), iuv="123", tipo_versamento="XX", payer_code="BAD"), faults.PAA_IUV_NON_VALIDO),
    (document(item("000X", tipo="NOPE"), tipo_versamento="XX", payer_code="BAD"),
     faults.PAA_TIPO_VERSAMENTO_NON_VALIDO),
    (document(item("000X", tipo="NOPE"), payer_code="BAD"), faults.PAA_CODICE_FISCALE_NON_VALIDO),
    # Within an item: IUD, tipo, bollo, bilancio, causale.
    (document(item("000X", tipo="NOPE")), faults.PAA_IUD_NON_VALIDO),
    (document(item(tipo="NOPE", causale=" ", bilancio=BILANCIO.format(a="1.00", b="1.00"))),
     faults.PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_VALIDO),
    (document(item(bollo=BOLLO.format(hash="h"), causale=" ", bilancio=BILANCIO.format(a="1.00", b="1.00"))),
     faults.PAA_MARCA_BOLLO_DIGITALE_NON_VALIDA),
    (document(item(causale=" ", bilancio=BILANCIO.format(a="1.00", b="1.00"))), faults.PAA_IMPORTO_BILANCIO_NON_VALIDO),
    # Items in document order: the first bad one decides.
    (document(item("A", causale=" "), item("000B")), faults.PAA_CAUSALE_NON_PRESENTE),
    # The strict payer checks come after every item.
    (document(item(tipo="NOPE"), email="m@localhost"), faults.PAA_IDENTIFICATIVO_TIPO_DOVUTO_NON_VALIDO),
])
def test_fault_order(setup, data, code):
    assert fault_of(setup, data, strict_payer=True).code == code


def test_marca_bollo_hash_limit(setup):
    ok = document(item(tipo="MARCA_BOLLO_DIGITALE", amount="16.00", bollo=BOLLO.format(hash="h" * 70)))
    assert run(setup, ok)[0].marca_bollo["hash_documento"] == "h" * 70


def test_strict_payer(setup):
    assert fault_of(setup, document(), strict_payer=True).code == faults.PAA_ANAGRAFICA_NON_VALIDA
    bad_cap = document(email="m@example.it", extra_payer="<capPagatore>ABC</capPagatore><nazionePagatore>IT"
                                                          "</nazionePagatore>")
    fault = fault_of(setup, bad_cap, strict_payer=True)
    assert fault.code == faults.PAA_ANAGRAFICA_NON_VALIDA and "cap non valido" in fault.string
    good = document(email="m@example.it", extra_payer="<indirizzoPagatore>Via Roma</indirizzoPagatore>"
                                                      "<capPagatore>00100</capPagatore><nazionePagatore>IT"
                                                      "</nazionePagatore>")
    assert run(setup, good, strict_payer=True)[0].payer_email == "m@example.it"
    assert run(setup, document())  # not strict: email optional


def test_duplicates_in_input_and_persisted(setup):
    database, demo = setup
    seen: set = set()
    run(setup, document(item("A")), seen_iuds=seen)
    fault = fault_of(setup, document(item("A")), seen_iuds=seen)
    assert (fault.code, fault.string) == (faults.PAA_IUD_DUPLICATO, "IUD [A] duplicato in input per ente")
    assert fault_of(setup, document(item("B"), item("B")), seen_iuds=set()).code == faults.PAA_IUD_DUPLICATO
    with database.transaction() as session:
        ente = session.scalar(select(Ente).where(Ente.cod_ipa == demo.cod_ipa))
        items = check_dovuti_document(session, ente, document(item("P")))
        rows = insert_dovuti(session, ente, items, carrello_id=None, reason="test", actor="unit")
        assert rows[0].state == states.INSERIMENTO_DOVUTO
    fault = fault_of(setup, document(item("P")))
    assert (fault.code, fault.string) == (faults.PAA_IUD_DUPLICATO, "IUD [P] già inviato")
    with database.transaction() as session:
        ente = session.scalar(select(Ente).where(Ente.cod_ipa == demo.cod_ipa))
        # A duplicate that slipped past the check (another request won the race) is a fault, not a 500.
        with pytest.raises(faults.Fault) as caught:
            insert_dovuti(session, ente, items, carrello_id=None, reason="test", actor="unit")
        assert caught.value.code == faults.PAA_IUD_DUPLICATO
        # The transaction is still usable after the savepoint rolled back.
        assert session.scalar(select(Dovuto.id).where(Dovuto.ente_id == ente.id, Dovuto.iud == "P")) == rows[0].id
        audit = session.scalars(select(DovutoTransition).where(DovutoTransition.dovuto_id == rows[0].id)).all()
        assert [(a.from_state, a.to_state) for a in audit] == [(None, states.INSERIMENTO_DOVUTO)]


def test_find_payable_by_iuv(setup):
    database, demo = setup
    with database.transaction() as session:
        ente = session.scalar(select(Ente).where(Ente.cod_ipa == demo.cod_ipa))
        add_tipo_dovuto(session, demo.cod_ipa, "SCAD", "Con scadenza", "IT60X0542811101000000123456",
                        "9/0101100IM/", due_date_required=True)
        items = check_dovuti_document(session, ente, document(item("FP-A"), item("FP-B")))
        for new, iuv in zip(items, ("01000000000000144", "01000000000000245")):
            new.iuv = iuv
        rows = insert_dovuti(session, ente, items, carrello_id=None, reason="test", actor="unit")
        assert [d.id for d in find_payable_by_iuv(session, ente, "01000000000000144")] == [rows[0].id]
        assert rows[0].notice_number == "301000000000000144"

        with pytest.raises(faults.Fault) as caught:
            find_payable_by_iuv(session, ente, "01000000000000999")
        assert caught.value.code == faults.PAA_IUV_NON_VALIDO
        assert caught.value.string.startswith("Error nessun dovuto trovato per IUV [01000000000000999]")

        states.move_dovuto(session, rows[1], states.PAGAMENTO_INIZIATO, reason="test")
        with pytest.raises(faults.Fault) as caught:
            find_payable_by_iuv(session, ente, "01000000000000245")
        assert caught.value.string == "non ci sono dovuti pagabili per il dato IUV [01000000000000245]"

        set_tipo_dovuto_enabled(session, demo.cod_ipa, "TARI", False)
        with pytest.raises(faults.Fault) as caught:
            find_payable_by_iuv(session, ente, "01000000000000144")
        assert caught.value.code == faults.PAA_IUV_NON_VALIDO
        assert caught.value.description == "il dovuto [TARI] associato allo IUV risulta disabilitato o non presente"
        set_tipo_dovuto_enabled(session, demo.cod_ipa, "TARI", True)

        rows[0].tipo_dovuto = session.scalar(select(TipoDovuto).where(TipoDovuto.code == "SCAD",
                                                                      TipoDovuto.ente_id == ente.id))
        rows[0].due_date = date.today() - timedelta(days=1)
        session.flush()
        with pytest.raises(faults.Fault) as caught:
            find_payable_by_iuv(session, ente, "01000000000000144")
        assert caught.value.code == faults.PAA_IUV_SCADUTO
        rows[0].due_date = date.today()
        assert find_payable_by_iuv(session, ente, "01000000000000144")


def test_allocate_iuv_sequence_and_check_digits(database):
    demo = create_ente(database, segregation_code="47")
    with database.transaction() as session:
        ente = session.scalar(select(Ente).where(Ente.cod_ipa == demo.cod_ipa))
        allocated = [allocate_iuv(session, ente) for _ in range(5)]
    with database.transaction() as session:
        ente = session.scalar(select(Ente).where(Ente.cod_ipa == demo.cod_ipa))
        allocated.append(allocate_iuv(session, ente))
    iuvs = [iuv for iuv, _ in allocated]
    assert len(set(iuvs)) == 6
    assert all(iuv.startswith("4700") for iuv in iuvs)
    assert [int(iuv[4:15]) for iuv in iuvs] == [1, 2, 3, 4, 5, 6]
    for iuv, notice in allocated:
        assert len(iuv) == 17 and notice == "3" + iuv and is_valid_check_digits(iuv)


def test_allocate_iuv_rolled_back_number_is_reused(database):
    demo = create_ente(database)
    with pytest.raises(RuntimeError):
        with database.transaction() as session:
            ente = session.scalar(select(Ente).where(Ente.cod_ipa == demo.cod_ipa))
            allocate_iuv(session, ente)
            raise RuntimeError("caller failed")
    with database.transaction() as session:
        ente = session.scalar(select(Ente).where(Ente.cod_ipa == demo.cod_ipa))
        assert int(allocate_iuv(session, ente)[0][4:15]) == 1


def test_allocate_iuv15_for_aux_digit_0(database):
    demo = create_ente(database)
    with database.transaction() as session:
        ente = session.scalar(select(Ente).where(Ente.cod_ipa == demo.cod_ipa))
        ente.aux_digit, ente.application_code = "0", "12"
        iuv, notice = allocate_iuv(session, ente)
    assert len(iuv) == 15 and iuv.startswith("00") and notice == "012" + iuv
    assert is_valid_check_digits(notice)
