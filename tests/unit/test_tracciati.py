"""CSV tracciati of the flussi: MyPay's line split, column layouts, row checks, flow names, export neutralising."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.flussi import rows as R
from gateway.flussi.importer import FlowError, parse_name
from gateway.flussi.tracciati import (EXPORT_BASE_COLUMNS, TRACCIATI, export_columns, neutralise, quote_field,
                                      split_line)

TIPI = {"TARI": R.Tipo(1, "TARI", True, False, False), "OFF": R.Tipo(2, "OFF", False, False, False),
        "DUE": R.Tipo(3, "DUE", True, False, True), "ANON": R.Tipo(4, "ANON", True, True, False),
        "MARCA_BOLLO_DIGITALE": R.Tipo(5, "MARCA_BOLLO_DIGITALE", True, False, False)}


def fields(version: str = "1_3", **values: str) -> list[str]:
    base = {"IUD": "IUD-1", "tipoIdentificativoUnivoco": "F", "codiceIdentificativoUnivoco": "RSSMRA80A01H501U",
            "anagraficaPagatore": "Mario Rossi", "dataScadenzaPagamento": "2030-06-30", "importoDovuto": "10.00",
            "tipoDovuto": "TARI", "causaleVersamento": "Causale", "datiSpecificiRiscossione": "9/0101100IM/",
            "azione": "I"}
    base.update(values)
    return [base.get(name, "") for name in TRACCIATI[version].names]


def check(version: str = "1_3", **values: str) -> R.Rejection | None:
    parsed = R.phase_a(TRACCIATI[version], 1, "raw", fields(version, **values))
    if isinstance(parsed, R.Rejection):
        return parsed
    return R.phase_b(parsed, version=version, tipi=TIPI, application_code="01")


def test_widths_and_azione_position() -> None:
    assert {v: (t.width, t.index("azione")) for v, t in TRACCIATI.items()} == {
        "1_0": (20, 19), "1_1": (20, 19), "1_2": (21, 20), "1_3": (22, 21), "1_4": (35, 34)}
    assert TRACCIATI["1_0"].columns[17].max_length == 140 and TRACCIATI["1_1"].columns[17].max_length == 1024
    assert TRACCIATI["1_1"].columns[12].mandatory and not TRACCIATI["1_2"].columns[12].mandatory
    assert len(EXPORT_BASE_COLUMNS) == 64
    assert len(export_columns("1.3", True)) == 64 + 6 + 4 and export_columns("1.0", False) == export_columns("1.1", False)


@pytest.mark.parametrize("line, expected", [
    ("a;b;;c", ["a", "b", "", "c"]),
    (" a ; b ;", ["a", "b", ""]),
    ('x;"a;b";y', ["x", "a;b", "y"]),
    ('x; "say \\"hi\\"; now" ;y', ["x", 'say "hi"; now', "y"]),
    ('x;ab"c;d', ["x", 'ab"c;d']),  # an unbalanced quote swallows the rest, as MyPay's split does
])
def test_split_line(line: str, expected: list[str]) -> None:
    assert split_line(line) == expected


def test_quote_field_round_trips() -> None:
    for value in ("plain", "a;b", 'say "hi"'):
        assert split_line("x;" + quote_field(value)) == ["x", value]


def test_phase_a_messages() -> None:
    assert check(IUD="").description == "|IUD NON PRESENTE"
    assert check(importoDovuto="12,5").description == "|IMPORTO_DOVUTO NON CONFROME: 12,5"
    assert check(dataScadenzaPagamento="2030-02-30").description == \
        "|dataScadenzaPagamento:wrong DATE pattern or wrong DATE data"
    assert check(flagGeneraIuv="yes").description == "|FLAG_GENERA_IUV NON CONFORME"
    assert check(anagraficaPagatore="x" * 71).description == "|ANAGRAFICA_PAGATORE TROPPO GRANDE"
    assert check(azione="II").description == "|AZIONE TROPPO GRANDE"
    too_many = R.phase_a(TRACCIATI["1_3"], 1, "raw", fields() + ["extra"])
    assert too_many.code == R.SINTASSI and "Too many columns" in too_many.description
    assert R.phase_a(TRACCIATI["1_3"], 1, "raw", fields()[:-1]).description == "|" + R.GENERIC_READ_ERROR


@pytest.mark.parametrize("values, code", [
    ({"IUD": "000123"}, "PAA_IMPORT_SINTASSI_CSV_IUD"),
    ({"codIuv": "12345"}, "PAA_IMPORT_SINTASSI_CSV_IUV"),
    ({"tipoDovuto": "NOPE"}, "PAA_IMPORT_SINTASSI_CSV_TIPO_DOVUTO_INESISTENTE"),
    ({"tipoDovuto": "OFF"}, "PAA_IMPORT_SINTASSI_CSV_TIPO_DOVUTO_NON_ATTIVO_PER_ENTE"),
    ({"tipoDovuto": "MARCA_BOLLO_DIGITALE"}, "PAA_IMPORT_SINTASSI_CSV_TIPO_DOVUTO_NON_VALIDO_MARCA_DA_BOLLO"),
    ({"codiceIdentificativoUnivoco": "RSSMRA80A01H501X"}, "PAA_IMPORT_SINTASSI_CSV_COD_FISC"),
    ({"tipoIdentificativoUnivoco": "G", "codiceIdentificativoUnivoco": "01234567890"}, "PAA_IMPORT_SINTASSI_CSV_P_IVA"),
    ({"tipoIdentificativoUnivoco": "X"}, "PAA_IMPORT_SINTASSI_CSV_ID_UNIV_FG"),
    ({"codiceIdentificativoUnivoco": "ANONIMO"}, "PAA_IMPORT_SINTASSI_CSV_COD_FISC"),
    ({"nazionePagatore": "XX"}, "PAA_IMPORT_SINTASSI_CSV_NAZ"),
    ({"nazionePagatore": "IT", "provinciaPagatore": "ZZ"}, "PAA_IMPORT_SINTASSI_CSV_PROV"),
    ({"capPagatore": "30-100"}, "PAA_IMPORT_SINTASSI_CSV_CAP"),
    ({"emailPagatore": "a b@c"}, "PAA_IMPORT_SINTASSI_CSV_EMAIL"),
    ({"tipoDovuto": "DUE", "dataScadenzaPagamento": ""}, "PAA_IMPORT_SINTASSI_CSV_DATA_SCADENZA_PAGAMENTO_NON_PRESENTE"),
    ({"importoDovuto": "0"}, "PAA_IMPORT_SINTASSI_CSV_IMPORTO"),
    ({"importoDovuto": "1000000000.00"}, "PAA_IMPORT_SINTASSI_CSV_IMPORTO"),
    ({"importoDovuto": "-5"}, "PAA_IMPORT_SINTASSI_CSV_IMPORTO"),
    ({"tipoVersamento": "ALL|BP"}, "PAA_IMPORT_SINTASSI_CSV_TIPO_VERS"),
    ({"datiSpecificiRiscossione": "9/ab"}, "PAA_IMPORT_SINTASSI_CSV_DATI_RISCOSS"),
    ({"bilancio": "<bilancio><capitolo><codCapitolo>C</codCapitolo><accertamento><importo>9.00</importo>"
                  "</accertamento></capitolo></bilancio>"}, "PAA_IMPORT_SINTASSI_CSV_BILANCIO"),
])
def test_phase_b_codes(values: dict[str, str], code: str) -> None:
    rejection = check(**values)
    assert rejection is not None and rejection.code == code, rejection
    assert rejection.description.startswith("|")


def test_valid_rows() -> None:
    assert check() is None
    assert check(codiceIdentificativoUnivoco="ANONIMO", tipoDovuto="ANON") is None
    assert check(bilancio="<bilancio><capitolo><codCapitolo>C</codCapitolo><accertamento><importo>4.00</importo>"
                          "</accertamento><accertamento><importo>6.00</importo></accertamento></capitolo>"
                          "</bilancio>") is None
    assert check(codIuv="01120000000012345") is None
    assert check("1_0", dataScadenzaPagamento="").code == R.SINTASSI  # mandatory before 1_2


def test_multi_beneficiary() -> None:
    good = dict(flagMultiBeneficiario="true", codiceFiscaleEnteSecondario="01234567897",
                denominazioneEnteSecondario="Provincia", ibanAccreditoEnteSecondario="IT60X0542811101000000123456",
                datiSpecificiRiscossioneEnteSecondario="9/0101108TS/", importoVersamentoEnteSecondario="5.00")
    parsed = R.phase_a(TRACCIATI["1_4"], 1, "raw", fields("1_4", **good))
    assert isinstance(parsed, R.Row) and parsed.secondary["amount"] == Decimal("5.00")
    assert R.phase_b(parsed, version="1_4", tipi=TIPI, application_code="01") is None
    bad = check("1_4", **dict(good, ibanAccreditoEnteSecondario="IT60", importoVersamentoEnteSecondario="0"))
    assert bad.code == ("PAA_IMPORT_SINTASSI_CSV_IBAN_ACCREDITO_ENTE_SECONDARIO|"
                        "PAA_IMPORT_SINTASSI_CSV_IMPORTO_VERS_ENTE_SECONDARIO")
    assert check("1_4", flagMultiBeneficiario="false", ibanAccreditoEnteSecondario="junk") is None  # ignored


@pytest.mark.parametrize("name, error", [
    ("C_X999-F1-1_3.zip", None),
    ("c_x999-F1-1_4.ZIP", None),
    ("C_X999-F1.zip", "PAA_IMPORT_NOME_FILE_ERR(C_X999-F1.zip)"),
    ("C_X999-F-1-1_3.zip", "PAA_IMPORT_NOME_FILE_ERR"),
    ("C_Y000-F1-1_3.zip", "PAA_IMPORT_ENTE_ERR(C_Y000,C_X999)"),
    ("C_X999-F1-2_0.zip", "PAA_IMPORT_FILE_VERSIONE_ERR(2_0)"),
    ("C_X999-F1-1_3.csv", "PAA_IMPORT_NOME_FILE_ERR(C_X999-F1-1_3.csv)"),
])
def test_flow_names(name: str, error: str | None) -> None:
    if error is None:
        assert parse_name(name, "C_X999").iuf == "F1"
    else:
        with pytest.raises(FlowError) as raised:
            parse_name(name, "C_X999")
        assert raised.value.code == error


def test_neutralise_formula_injection() -> None:
    assert [neutralise(v) for v in ("=1+1", "+39", "-x", "@SUM", "\tx", "\rx", "ok", "")] == \
        ["'=1+1", "'+39", "'-x", "'@SUM", "'\tx", "'\rx", "ok", ""]
