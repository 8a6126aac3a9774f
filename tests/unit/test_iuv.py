"""IUV generation, notice numbers, mod-93 check digits and the ImportaDovuto IUV rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.payments.iuv import (
    MAX_PROGRESSIVE,
    DecodedNotice,
    InvalidIuvError,
    IuvError,
    NoticeNumberError,
    check_digits,
    iuv_from_notice,
    is_valid_check_digits,
    is_valid_rf_reference,
    make_iuv17,
    make_rf_reference,
    notice_number,
    parse_notice_number,
    rf_check_digits,
    validate_iuv_for_import,
)

segregation_codes = st.integers(0, 99).map(lambda n: f"{n:02d}")
progressives = st.integers(1, MAX_PROGRESSIVE)
digit_strings = lambda n: st.text("0123456789", min_size=n, max_size=n)  # noqa: E731


# --- check digits and the generator ------------------------------------------------------------------
def test_check_digits_is_mod93_left_padded() -> None:
    assert check_digits("3", "010000000000001") == f"{3010000000000001 % 93:02d}" == "44"
    assert check_digits("0", "0") == "00"
    assert check_digits("3", "000000000000000") == f"{3 * 10**15 % 93:02d}" == "03"  # left-padded


@pytest.mark.parametrize("aux,digits", [("", "1"), ("33", "1"), ("3", ""), ("3", "1_0"), ("3", "١٢"), ("x", "1")])
def test_check_digits_refuses_non_ascii_digits(aux: str, digits: str) -> None:
    with pytest.raises(IuvError):
        check_digits(aux, digits)


def test_make_iuv17_matches_mypay_layout() -> None:
    # <segregation 2> + "00" + <progressive 11> + CC, CC = int("3" + first 15 digits) % 93
    assert make_iuv17("01", 1) == "010000000000001" + "44"
    assert make_iuv17("47", 12345678901) == "470012345678901" + f"{3470012345678901 % 93:02d}"


@pytest.mark.parametrize("segr", ["1", "001", "ab", "", None, "٠١"])
def test_make_iuv17_refuses_bad_segregation_code(segr: object) -> None:
    with pytest.raises(IuvError):
        make_iuv17(segr, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("progressive", [0, -1, MAX_PROGRESSIVE + 1, True, 1.0, "1"])
def test_make_iuv17_refuses_bad_progressive(progressive: object) -> None:
    with pytest.raises(IuvError):
        make_iuv17("01", progressive)  # type: ignore[arg-type]


@given(segregation_codes, progressives)
def test_generated_iuv_is_17_digits_with_valid_check_digits(segr: str, progressive: int) -> None:
    iuv = make_iuv17(segr, progressive)
    assert len(iuv) == 17 and iuv.isascii() and iuv.isdigit()
    assert iuv.startswith(segr + "00")
    assert int(iuv[4:15]) == progressive
    assert is_valid_check_digits(iuv)
    assert iuv[15:] == f"{int('3' + iuv[:15]) % 93:02d}"


@given(segregation_codes, progressives, progressives)
def test_distinct_progressives_give_distinct_iuvs(segr: str, a: int, b: int) -> None:
    assert (make_iuv17(segr, a) == make_iuv17(segr, b)) == (a == b)


@given(segregation_codes, progressives)
def test_generated_iuv_passes_import_validation_only_with_flag_genera_iuv(segr: str, progressive: int) -> None:
    iuv = make_iuv17(segr, progressive)
    validate_iuv_for_import(iuv, application_code=segr, flag_genera_iuv=True, allow_iuv15=False)
    # "00" in positions 3-4 is reserved for generated IUVs: an ente cannot send one as its own.
    with pytest.raises(InvalidIuvError):
        validate_iuv_for_import(iuv, application_code=segr, flag_genera_iuv=False, allow_iuv15=False)


# --- notice number <-> IUV ---------------------------------------------------------------------------
def test_notice_number_layouts() -> None:
    assert notice_number("01000000000000144") == "301000000000000144"
    assert notice_number("123456789012345", "07") == "007123456789012345"


@pytest.mark.parametrize(
    "iuv,app",
    [("123456789012345", None), ("123456789012345", "7"), ("1234567890123456", "07"), ("RF00", "07"),
     ("0100000000000014A", None), ("", None)],
)
def test_notice_number_refuses(iuv: str, app: str | None) -> None:
    with pytest.raises(IuvError):
        notice_number(iuv, app)


@given(digit_strings(17))
def test_notice_round_trip_iuv17(iuv: str) -> None:
    notice = notice_number(iuv)
    assert len(notice) == 18 and notice[0] == "3"
    assert iuv_from_notice(notice) == iuv


@given(digit_strings(15), digit_strings(2))
def test_notice_round_trip_iuv15(iuv: str, app: str) -> None:
    notice = notice_number(iuv, app)
    assert len(notice) == 18 and notice[0] == "0"
    assert parse_notice_number(notice) == DecodedNotice("0", app, iuv)
    assert iuv_from_notice(notice) == iuv


@pytest.mark.parametrize(
    "notice",
    ["30100000000000014", "3010000000000001444", "", "30100000000000014X", "٣01000000000000144",
     "401000000000000144", "901000000000000144", "101000000000000144", "201000000000000144"],
)
def test_iuv_from_notice_refuses(notice: str) -> None:
    with pytest.raises(NoticeNumberError):
        iuv_from_notice(notice)
    with pytest.raises(ValueError):  # callers may catch the standard type
        iuv_from_notice(notice)


def test_aux_1_and_2_only_on_request() -> None:
    assert iuv_from_notice("212345678901234567", allow_aux_1_2=True) == "12345678901234567"
    assert parse_notice_number("112345678901234567", allow_aux_1_2=True) == DecodedNotice("1", None, "12345678901234567")


def test_bare_iuv_accepted_only_on_request() -> None:
    assert iuv_from_notice("01000000000000144", accept_bare_iuv=True) == "01000000000000144"
    assert iuv_from_notice("123456789012345", accept_bare_iuv=True) == "123456789012345"
    with pytest.raises(NoticeNumberError):
        iuv_from_notice("01000000000000144")
    with pytest.raises(NoticeNumberError):
        iuv_from_notice("0100000000000014x", accept_bare_iuv=True)


def test_is_valid_check_digits() -> None:
    assert is_valid_check_digits("301000000000000144")
    assert is_valid_check_digits("01000000000000144")
    assert not is_valid_check_digits("01000000000000145")
    base = "07" + "1234567890123"
    good15 = "1234567890123" + check_digits("0", base)
    assert is_valid_check_digits(good15, application_code="07")
    assert is_valid_check_digits("0" + base + good15[-2:])
    assert not is_valid_check_digits(good15)  # no application code: cannot tell
    assert not is_valid_check_digits("201000000000000144")  # aux 2: no verifiable rule
    assert not is_valid_check_digits("abc")


# --- ImportaDovuto / flussi IUV rules ---------------------------------------------------------------
def _ok(iuv: str | None, app: str | None = "47", flag: bool = False, iuv15: bool = True) -> None:
    validate_iuv_for_import(iuv, application_code=app, flag_genera_iuv=flag, allow_iuv15=iuv15)


def _refused(iuv: str | None, app: str | None = "47", flag: bool = False, iuv15: bool = True) -> None:
    with pytest.raises(InvalidIuvError):
        _ok(iuv, app, flag, iuv15)


def test_blank_iuv_passes() -> None:
    _ok(None)
    _ok("")
    _ok("   ")


def test_iuv15_rules() -> None:
    _ok("123456789012345")
    _refused("003456789012345")  # starts with 00
    _refused("123456789012345", iuv15=False)  # IUV15 creation switched off
    _refused("12345678901234A")


def test_iuv17_rules() -> None:
    _ok("47123456789012345")
    _refused("48123456789012345")  # not the ente's application code
    _refused("47003456789012345")  # 00 reserved for generated IUVs
    _ok("47003456789012345", flag=True)
    _ok("99993456789012345", flag=True)
    _refused("47123456789012345", app=None)
    _refused("4712345678901234X", flag=True)  # divergence from MyPay: digits only


def test_iuv25_rules() -> None:
    _ok("RF23011200000000012300001")  # any 25 chars not ending in 0000 is the new format
    _ok("ABCDEF99XXXXXXXXXXXXX0000")  # old format: ends in 0000 with 99 in positions 7-8
    _refused("ABCDEF12XXXXXXXXXXXXX0000")
    _ok("ABCDEF12XXXXXXXXXXXXX0001")
    # MyPay quirk, kept: the IUV25 its own generator makes ends in "00"+"00", so validaIUV refuses it.
    _refused(make_rf_reference("01" + "12" + "0" * 12 + "1" + "0000"))


@pytest.mark.parametrize("length", [1, 14, 16, 18, 24, 26, 35])
def test_other_lengths_refused(length: int) -> None:
    _refused("1" * length, flag=True)


def test_invalid_iuv_error_is_a_value_error() -> None:
    assert issubclass(InvalidIuvError, ValueError) and issubclass(NoticeNumberError, ValueError)


# --- RF creditor reference (IUV25) ------------------------------------------------------------------
def test_rf_check_digits_iso11649() -> None:
    assert rf_check_digits("539007547034") == "18"  # ISO 11649's own example, RF18539007547034
    assert is_valid_rf_reference("RF18539007547034")
    assert not is_valid_rf_reference("RF19539007547034")
    assert not is_valid_rf_reference("RF18 5390 0754 7034")  # no separators on the wire


@given(st.text("0123456789", min_size=21, max_size=21))
def test_rf_matches_mypay_formula(body: str) -> None:
    assert rf_check_digits(body) == f"{98 - int(body + '271500') % 97:02d}"
    ref = make_rf_reference(body)
    assert len(ref) == 25 and is_valid_rf_reference(ref)
