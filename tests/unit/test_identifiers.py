"""Codice fiscale, partita IVA, IBAN, payer id faults, tipoVersamento, IUD, datiSpecificiRiscossione, amounts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.faults import PAA_CODICE_FISCALE_NON_VALIDO, PAA_P_IVA_NON_VALIDO
from gateway.payments.identifiers import (
    ANONIMO,
    AmountError,
    UnknownPayerTypeError,
    amount_to_cents,
    format_amount,
    is_valid_codice_fiscale,
    is_valid_dati_specifici_riscossione,
    is_valid_iban,
    is_valid_iud,
    is_valid_partita_iva,
    is_valid_tipo_versamento,
    parse_amount,
    payer_id_fault,
)

GOOD_CF16 = [
    "RSSMRA80A01H501U",
    "rssmra80a01h501u",  # MyPay upper-cases before checking
    "MRTMTT91D08F205J",
    "RSSMRA80A01H50MM",  # omocodia: last digit replaced by a letter
    "RSSMRAULALMHRLMD",  # omocodia on every digit
]
BAD_CF16 = [
    "RSSMRA80A01H501V",  # wrong check character
    "RSSMRA80A01H50MU",  # omocodic variant with the check character of the plain one
    "RSSMRA80Z01H501U",  # no month Z
    "RSSMRA80A01H501",  # 15 characters
    "RSSMRA80A01H501UX",
    "RSSMRA 80A01H501U",  # stdnum would strip the space
    "RSSMRA80A01H501U ",
    "RSS-MRA80A01H501U",
]
GOOD_PIVA = ["80007580279", "97735020584", "00743110157"]
BAD_PIVA = ["80007580278", "8000758027", "800075802790", "8000758027A", "IT80007580279", "800 0758027", "٨0007580279"]


@pytest.mark.parametrize("value", GOOD_CF16 + GOOD_PIVA)
def test_good_codici_fiscali(value: str) -> None:
    assert is_valid_codice_fiscale(value)


@pytest.mark.parametrize("value", BAD_CF16 + BAD_PIVA + ["", "ANONIMO", None])
def test_bad_codici_fiscali(value: str | None) -> None:
    assert not is_valid_codice_fiscale(value)


@pytest.mark.parametrize("value", GOOD_PIVA)
def test_good_partite_iva(value: str) -> None:
    assert is_valid_partita_iva(value)
    assert is_valid_partita_iva(value, strict=True)


@pytest.mark.parametrize("value", BAD_PIVA + ["", None, "RSSMRA80A01H501U"])
def test_bad_partite_iva(value: str | None) -> None:
    assert not is_valid_partita_iva(value)


@pytest.mark.parametrize("value", ["00000000000", "12345678903"])
def test_luhn_only_numbers_pass_like_mypay_but_not_strict(value: str) -> None:
    # MyPay's isValidPIVA is a bare Luhn check; stdnum also checks serial and office code (890 here).
    assert is_valid_partita_iva(value)
    assert not is_valid_partita_iva(value, strict=True)


@given(st.text("0123456789", min_size=10, max_size=10))
def test_exactly_one_check_digit_makes_a_partita_iva(body: str) -> None:
    assert sum(is_valid_partita_iva(body + d) for d in "0123456789") == 1


# --- payer id ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "tipo,code,anonimo,fault",
    [
        ("F", "RSSMRA80A01H501U", False, None),
        ("F", "80007580279", False, None),  # sole traders etc. carry a P.IVA with tipo F
        ("F", "RSSMRA80A01H501V", False, PAA_CODICE_FISCALE_NON_VALIDO),
        ("G", "80007580279", False, None),
        ("G", "RSSMRA80A01H501U", False, PAA_P_IVA_NON_VALIDO),
        ("G", "80007580278", False, PAA_P_IVA_NON_VALIDO),
        ("F", ANONIMO, True, None),
        ("F", ANONIMO, False, PAA_CODICE_FISCALE_NON_VALIDO),
        ("G", ANONIMO, True, PAA_P_IVA_NON_VALIDO),  # never for legal persons
        ("F", "anonimo", True, PAA_CODICE_FISCALE_NON_VALIDO),  # compared as given; ImportaDovuto upper-cases first
        ("F", "", False, PAA_CODICE_FISCALE_NON_VALIDO),
    ],
)
def test_payer_id_fault(tipo: str, code: str, anonimo: bool, fault: str | None) -> None:
    assert payer_id_fault(tipo, code, anonimo) == fault


@pytest.mark.parametrize("tipo", ["A", "B", "f", "", "ANONIMO"])
def test_payer_id_unknown_tipo_raises(tipo: str) -> None:
    with pytest.raises(UnknownPayerTypeError):
        payer_id_fault(tipo, "RSSMRA80A01H501U", True)


# --- tipoVersamento ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "ALL", "all", "BBT", "bbt|bp", "BBT|BP|AD|CP|PO|OBEP", " PO | CP ", "OBEP|", "ALL|"],
)
def test_good_tipo_versamento(value: str | None) -> None:
    assert is_valid_tipo_versamento(value)


@pytest.mark.parametrize(
    "value", ["ALL|BBT", "BP|all", "XYZ", "BBT,BP", "|BBT", "BBT||BP", "BBT| ", "|", "MYBANK", "POX"],
)
def test_bad_tipo_versamento(value: str) -> None:
    assert not is_valid_tipo_versamento(value)


@given(st.lists(st.sampled_from(["BBT", "BP", "AD", "CP", "PO", "OBEP"]), min_size=1, max_size=6), st.randoms())
def test_any_combination_without_all_is_valid(names: list[str], rnd) -> None:  # type: ignore[no-untyped-def]
    value = "|".join(n.lower() if rnd.random() < 0.5 else n for n in names)
    assert is_valid_tipo_versamento(value)
    assert not is_valid_tipo_versamento(value + "|ALL")


# --- datiSpecificiRiscossione, IUD -------------------------------------------------------------------
@pytest.mark.parametrize("value", ["9/0101100IM/", "0/abc", "1/" + "x" * 138, "2/a\u00a0b"])
def test_good_dati_specifici_riscossione(value: str) -> None:
    assert is_valid_dati_specifici_riscossione(value)


@pytest.mark.parametrize(
    "value", ["3/0101100IM/", "9/ab", "9/" + "x" * 139, "9/abc def", "9/abc\n", " 9/abc", "90101100IM", "", None],
)
def test_bad_dati_specifici_riscossione(value: str | None) -> None:
    assert not is_valid_dati_specifici_riscossione(value)


@pytest.mark.parametrize("value", ["1", "IUD-2026-0001", "00x", "x" * 35, "0a0"])
def test_good_iud(value: str) -> None:
    assert is_valid_iud(value)


@pytest.mark.parametrize("value", ["", "   ", None, "000abc", "000", "x" * 36])
def test_bad_iud(value: str | None) -> None:
    assert not is_valid_iud(value)


# --- amounts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,expected",
    [("0", "0.00"), ("12", "12.00"), ("12.5", "12.50"), ("1234.56", "1234.56"), ("999999999.99", "999999999.99")],
)
def test_parse_amount(text: str, expected: str) -> None:
    parsed = parse_amount(text)
    assert parsed == Decimal(expected) and str(parsed) == expected


@pytest.mark.parametrize(
    "text",
    ["", " 1.00", "1.00 ", "1,00", "1.000,00", "1.234", "1e3", "1E+2", "NaN", "nan", "Infinity", "-1.00", "+1.00",
     ".5", "5.", "1_000", "١٢", "0x10", None, 1.5],
)
def test_parse_amount_refuses(text: object) -> None:
    with pytest.raises(AmountError):
        parse_amount(text)  # type: ignore[arg-type]


def test_format_amount_and_cents() -> None:
    assert format_amount(Decimal("1234.5")) == "1234.50"
    assert format_amount(Decimal("1E+2")) == "100.00"
    assert format_amount(Decimal("-0")) == "0.00"
    assert amount_to_cents(Decimal("120.50")) == 12050
    assert amount_to_cents(Decimal("0.01")) == 1
    assert amount_to_cents(Decimal("999999999.99")) == 99999999999


@pytest.mark.parametrize("value", [Decimal("0.001"), Decimal("NaN"), Decimal("Infinity"), 1.5, 2])
def test_amount_conversions_refuse_inexact(value: object) -> None:
    with pytest.raises(AmountError):
        format_amount(value)  # type: ignore[arg-type]
    with pytest.raises(AmountError):
        amount_to_cents(value)  # type: ignore[arg-type]


@given(st.integers(0, 99999999999))
def test_amount_round_trip(cents: int) -> None:
    amount = Decimal(cents).scaleb(-2)
    text = format_amount(amount)
    assert parse_amount(text) == amount
    assert amount_to_cents(parse_amount(text)) == cents


@given(st.text(max_size=20))
def test_parse_amount_never_returns_non_finite(text: str) -> None:
    try:
        parsed = parse_amount(text)
    except AmountError:
        return
    assert parsed.is_finite() and parsed >= 0 and parsed.as_tuple().exponent == -2


# --- IBAN -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["IT60X0542811101000000123456", "it60x0542811101000000123456", "DE89370400440532013000"])
def test_good_iban(value: str) -> None:
    assert is_valid_iban(value)


@pytest.mark.parametrize(
    "value", ["IT60X0542811101000000123457", "IT60 X054 2811 1010 0000 0123 456", "IT60X054281110100000012345", "", None],
)
def test_bad_iban(value: str | None) -> None:
    assert not is_valid_iban(value)
