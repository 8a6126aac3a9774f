"""IUV and notice number (numero avviso) rules of AgID/pagoPA, as MyPay applies them.

Covers mod-93 check digits, MyPay's IUV17 generator, IUV <-> notice number, the ImportaDovuto IUV
validation and the ISO 11649 (RF) check of 25-character creditor references.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from stdnum import iso11649
from stdnum.iso7064 import mod_97_10

IUV15_LENGTH = 15
IUV17_LENGTH = 17
IUV25_LENGTH = 25
NOTICE_LENGTH = 18

AUX_DIGIT_IUV15 = "0"
AUX_DIGIT_IUV17 = "3"

# MyPay's "sistema informativo" id: IUVs it generates carry "00" right after the segregation code,
# which is why ente-supplied IUV17s may not (see validate_iuv_for_import).
GENERATED_IUV_MARKER = "00"
MAX_PROGRESSIVE = 10**11 - 1

# str.isdigit() and int() accept non-ASCII digits ("٣", "³") and int() even "1_0"; wire values may not.
_DIGITS = re.compile(r"[0-9]+")
_TWO_DIGITS = re.compile(r"[0-9]{2}")


class IuvError(ValueError):
    """An IUV or notice number that cannot be built, decoded or accepted."""


class NoticeNumberError(IuvError):
    """A notice number (or IUV given in its place) that cannot be decoded to an IUV."""


class InvalidIuvError(IuvError):
    """An IUV refused by the ImportaDovuto / flussi rules (fault PAA_IUV_NON_VALIDO)."""


class DecodedNotice(NamedTuple):
    aux_digit: str
    # Application code for aux 0, segregation code for aux 3 (both are the first two IUV17 digits
    # there), None for aux 1/2 which carry neither.
    code: str | None
    iuv: str


def _is_digits(value: str, length: int | None = None) -> bool:
    return bool(_DIGITS.fullmatch(value)) and (length is None or len(value) == length)


def check_digits(aux_digit: str, digits: str) -> str:
    """Mod-93 check digits ("CC") of `aux_digit + digits`, left-padded to 2 digits."""
    if not _is_digits(aux_digit, 1) or not _is_digits(digits):
        raise IuvError(f"check digits need ASCII digits, got aux={aux_digit!r} digits={digits!r}")
    return f"{int(aux_digit + digits) % 93:02d}"


def make_iuv17(segregation_code: str, progressive: int) -> str:
    """MyPay's IUV17: segregation code (2) + "00" + progressive (11, zero-padded) + CC (aux digit 3).

    `progressive` comes from the per-ente database counter (generator IUV17, tipo PO).
    """
    if not _TWO_DIGITS.fullmatch(segregation_code or ""):
        raise IuvError(f"segregation code must be 2 digits, got {segregation_code!r}")
    # bool is an int subclass; True would silently become progressive 1.
    if isinstance(progressive, bool) or not isinstance(progressive, int):
        raise IuvError(f"progressive must be an int, got {type(progressive).__name__}")
    # MyPay treats 0 as a failed counter read; above 11 digits the IUV would grow past 17.
    if not 1 <= progressive <= MAX_PROGRESSIVE:
        raise IuvError(f"progressive must be in 1..{MAX_PROGRESSIVE}, got {progressive}")
    base = f"{segregation_code}{GENERATED_IUV_MARKER}{progressive:011d}"
    return base + check_digits(AUX_DIGIT_IUV17, base)


def notice_number(iuv: str, application_code: str | None = None) -> str:
    """The 18-digit notice number of an IUV: IUV17 -> "3" + IUV; IUV15 -> "0" + application code + IUV."""
    if not _is_digits(iuv or ""):
        raise IuvError(f"IUV must be ASCII digits to have a notice number, got {iuv!r}")
    if len(iuv) == IUV17_LENGTH:
        return AUX_DIGIT_IUV17 + iuv
    if len(iuv) == IUV15_LENGTH:
        if not _TWO_DIGITS.fullmatch(application_code or ""):
            raise IuvError(f"a 15-digit IUV needs a 2-digit application code, got {application_code!r}")
        return AUX_DIGIT_IUV15 + application_code + iuv  # type: ignore[operator]
    raise IuvError(f"only 15- or 17-digit IUVs have a notice number, got {len(iuv)} digits")


def parse_notice_number(notice: str, *, allow_aux_1_2: bool = False) -> DecodedNotice:
    """Split an 18-digit notice number into aux digit, application/segregation code and IUV.

    Aux digits 1 and 2 (17-digit IUV right after the aux digit) are refused unless asked for: the
    gateway never issues them, and mapping "2"+X and "3"+X to the same IUV X would let a notice the
    ente never issued find one of its dovuti.
    """
    if not isinstance(notice, str) or len(notice) != NOTICE_LENGTH:
        size = len(notice) if isinstance(notice, str) else type(notice).__name__
        raise NoticeNumberError(f"a notice number has {NOTICE_LENGTH} digits, got {size}")
    if not _is_digits(notice):
        raise NoticeNumberError("a notice number has only ASCII digits")
    aux = notice[0]
    if aux == AUX_DIGIT_IUV15:
        return DecodedNotice(aux, notice[1:3], notice[3:])
    if aux == AUX_DIGIT_IUV17:
        return DecodedNotice(aux, notice[1:3], notice[1:])
    if aux in ("1", "2") and allow_aux_1_2:
        return DecodedNotice(aux, None, notice[1:])
    raise NoticeNumberError(f"unsupported aux digit {aux!r} (expected 0 or 3)")


def iuv_from_notice(notice: str, *, accept_bare_iuv: bool = False, allow_aux_1_2: bool = False) -> str:
    """The IUV inside a notice number; raises NoticeNumberError when it cannot be decoded.

    `accept_bare_iuv` reproduces MyPay's lookup helper, which takes a 15- or 17-digit input as the
    IUV itself. The check digits are not verified, as in MyPay: ente-supplied IUVs need not carry them.
    """
    if accept_bare_iuv and isinstance(notice, str) and len(notice) in (IUV15_LENGTH, IUV17_LENGTH):
        if not _is_digits(notice):
            raise NoticeNumberError("an IUV used as notice number has only ASCII digits")
        return notice
    return parse_notice_number(notice, allow_aux_1_2=allow_aux_1_2).iuv


def is_valid_check_digits(value: str, *, application_code: str | None = None) -> bool:
    """Whether the last two digits are the mod-93 check of everything before them (aux digit included).

    `value` is an 18-digit notice number (aux 0 or 3), a 17-digit IUV (aux 3 implied) or a
    15-digit IUV (aux 0, needs `application_code`). Aux 1 and 2 have no mod-93 rule we can verify: False.
    """
    try:
        if isinstance(value, str) and len(value) == NOTICE_LENGTH:
            notice = value
        else:
            notice = notice_number(value, application_code)
    except (IuvError, TypeError):
        return False
    if not _is_digits(notice) or notice[0] not in (AUX_DIGIT_IUV15, AUX_DIGIT_IUV17):
        return False
    return check_digits(notice[0], notice[1:16]) == notice[16:]


def rf_check_digits(body: str) -> str:
    """ISO 11649 check digits of a creditor reference body (the part after "RFxx").

    Same as MyPay's `98 - int(body + "271500") % 97` for numeric bodies.
    """
    if not re.fullmatch(r"[0-9A-Za-z]{1,21}", body or ""):
        raise IuvError(f"an RF body is 1..21 letters or digits, got {body!r}")
    # ISO 11649 moves "RF" + check digits behind the body before the ISO 7064 mod 97-10 check.
    return mod_97_10.calc_check_digits(body.upper() + "RF")


def make_rf_reference(body: str) -> str:
    """A creditor reference "RF" + check digits + body (MyPay's IUV25 layout puts a 21-char body here)."""
    return "RF" + rf_check_digits(body.upper()) + body.upper()


def is_valid_rf_reference(value: str) -> bool:
    """ISO 11649 check of an RF creditor reference, with no spaces allowed (stdnum would strip them)."""
    if not isinstance(value, str) or not re.fullmatch(r"RF[0-9]{2}[0-9A-Za-z]{1,21}", value):
        return False
    return iso11649.is_valid(value)


def validate_iuv_for_import(
    iuv: str | None,
    *,
    application_code: str | None,
    flag_genera_iuv: bool,
    allow_iuv15: bool,
) -> None:
    """Apply MyPay's `validaIUV` (ImportaDovuto and import flows); raise InvalidIuvError on refusal.

    A blank IUV passes (none given). `allow_iuv15` is the caller's verdict on the IUV15 switch-off
    date (azione I only). Deliberate divergence: 15- and 17-character IUVs must be ASCII digits,
    which MyPay does not check but without which no notice number or QR code can be made.
    Check digits are not recomputed, as in MyPay.
    """
    if iuv is None or not iuv.strip():
        return
    length = len(iuv)
    if length in (IUV15_LENGTH, IUV17_LENGTH) and not _is_digits(iuv):
        raise InvalidIuvError(f"IUV of {length} characters must be digits only")
    if length == IUV15_LENGTH:
        if iuv.startswith("00"):
            raise InvalidIuvError("IUV of 15 digits must not start with 00")
        if not allow_iuv15:
            raise InvalidIuvError("IUV of 15 digits is no longer accepted for new dovuti")
        return
    if length == IUV17_LENGTH:
        if flag_genera_iuv:
            return
        if not application_code or not iuv.startswith(application_code):
            raise InvalidIuvError(f"IUV of 17 digits must start with the application code {application_code!r}")
        if iuv[2:4] == GENERATED_IUV_MARKER:
            raise InvalidIuvError("IUV of 17 digits must not have 00 in positions 3-4 (kept for generated IUVs)")
        return
    if length == IUV25_LENGTH:
        # Old ente format: ends with 0000 and has 99 in positions 7-8; any other 25-char value is
        # the newer format, accepted unchecked as MyPay does.
        if iuv.endswith("0000") and iuv[6:8] != "99":
            raise InvalidIuvError("IUV of 25 characters ending with 0000 must have 99 in positions 7-8")
        return
    raise InvalidIuvError(f"IUV must have 15, 17 or 25 characters, got {length}")
