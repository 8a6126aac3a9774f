"""Checks and conversions of the identifiers and amounts the ente contracts carry.

Codice fiscale, partita IVA, IBAN, tipoVersamento, IUD, datiSpecificiRiscossione and euro amounts,
following MyPay's rules (ente-services §2.1/§2.7, flussi-formats §1.5).
"""

from __future__ import annotations

import re
from decimal import Decimal

from stdnum import iban as _iban
from stdnum import luhn
from stdnum.it import codicefiscale as _cf
from stdnum.it import iva as _iva

from gateway.faults import PAA_CODICE_FISCALE_NON_VALIDO, PAA_P_IVA_NON_VALIDO

ANONIMO = "ANONIMO"
# MyPay's faultString when ANONIMO is refused (sic, no accent): clients may match it.
ANONIMO_FAULT_STRING = "Funzionalita CF ANONIMO non valida"

TIPI_VERSAMENTO = frozenset({"BBT", "BP", "AD", "CP", "PO", "OBEP", "ALL"})
TIPO_VERSAMENTO_ALL = "ALL"

IUD_MAX_LENGTH = 35  # stText35 in PagInf_Dovuti_Pagati_6_2_0.xsd
MAX_AMOUNT = Decimal("999999999.99")
_CENT = Decimal("0.01")

# stdnum's compact() strips spaces, dashes, colons (and "IT" for P.IVA) before checking; a wire value
# carrying them is not the same identifier, so the raw shape is checked first.
_CF16 = re.compile(r"[A-Za-z0-9]{16}")
_ELEVEN_DIGITS = re.compile(r"[0-9]{11}")
_IBAN = re.compile(r"[A-Za-z]{2}[0-9]{2}[A-Za-z0-9]{1,30}")  # stIBANIdentifier of the pagoPA XSDs
# re.ASCII: Java's \S (MyPay) treats only ASCII whitespace as space; Python's default would also
# refuse e.g. a no-break space that MyPay accepts.
_DATI_SPECIFICI_RISCOSSIONE = re.compile(r"[0129]/\S{3,138}", re.ASCII)
_AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]{1,2})?")


class UnknownPayerTypeError(ValueError):
    """tipoIdentificativoUnivoco other than F or G: MyPay throws here (the XSD already forbids it)."""


class AmountError(ValueError):
    """An amount text or value that is not a plain euro amount with at most two decimals."""


def is_valid_codice_fiscale(value: str | None) -> bool:
    """A personal CF (16 chars, check char, omocodia letters accepted) or an 11-digit numeric CF.

    Case-insensitive, as MyPay upper-cases before checking. The 11-digit numeric CF of legal
    persons uses the partita IVA check (see is_valid_partita_iva).
    """
    if not isinstance(value, str):
        return False
    if _CF16.fullmatch(value):
        return _cf.is_valid(value)
    return is_valid_partita_iva(value)


def is_valid_partita_iva(value: str | None, *, strict: bool = False) -> bool:
    """11 digits with a correct Luhn check digit: exactly MyPay's `isValidPIVA`.

    `strict` adds stdnum's checks of the province office code (digits 8-10) and of a non-zero
    serial, which MyPay lacks: real numbers pass, placeholders such as 00000000000 do not.
    """
    if not isinstance(value, str) or not _ELEVEN_DIGITS.fullmatch(value):
        return False
    return _iva.is_valid(value) if strict else luhn.is_valid(value)


def payer_id_fault(tipo: str, code: str, allow_anonimo: bool) -> str | None:
    """Fault code for a payer id (tipoIdentificativoUnivoco + codiceIdentificativoUnivoco), or None.

    Mirrors MyPay's `isValidCodIdUnivocoConAnonimo`: ANONIMO passes only when allowed and tipo is not
    G; tipo G needs a partita IVA; tipo F a codice fiscale or a partita IVA (sole traders,
    professionals, provisional CFs). `code` is compared as given: ImportaDovuto upper-cases it first,
    InviaDovuti does not. When refusing ANONIMO, answer with ANONIMO_FAULT_STRING.
    """
    if tipo not in ("F", "G"):
        raise UnknownPayerTypeError(f"tipoIdentificativoUnivoco must be F or G, got {tipo!r}")
    if allow_anonimo and code == ANONIMO and tipo != "G":
        return None
    if tipo == "G":
        return None if is_valid_partita_iva(code) else PAA_P_IVA_NON_VALIDO
    return None if is_valid_codice_fiscale(code) else PAA_CODICE_FISCALE_NON_VALIDO


def is_valid_tipo_versamento(value: str | None) -> bool:
    """Blank, or a `|`-separated list of BBT, BP, AD, CP, PO, OBEP, ALL (any case); ALL only alone.

    Tokens are trimmed and trailing empty tokens ignored, as Java's split does in MyPay ("BBT|" passes).
    Unlike MyPay, which looks for "ALL" case-sensitively, "all|BP" is refused too.
    """
    if value is None or not value.strip():
        return True
    tokens = value.split("|")
    while tokens and tokens[-1] == "":
        tokens.pop()
    if not tokens:
        return False  # "|" alone: Java's split gives no token and MyPay passes it; nothing to store
    names = [token.strip().upper() for token in tokens]
    if any(name not in TIPI_VERSAMENTO for name in names):
        return False
    return TIPO_VERSAMENTO_ALL not in names or len(names) == 1


def is_valid_dati_specifici_riscossione(value: str | None) -> bool:
    """`[0129]/` followed by 3 to 138 non-space characters, the whole string (MyPay's pattern)."""
    return isinstance(value, str) and _DATI_SPECIFICI_RISCOSSIONE.fullmatch(value) is not None


def is_valid_iud(value: str | None) -> bool:
    """Not blank, not starting with 000 (MyPay's own generated IUDs), at most 35 characters."""
    if not isinstance(value, str) or not value.strip():
        return False
    return not value.startswith("000") and len(value) <= IUD_MAX_LENGTH


def parse_amount(text: str) -> Decimal:
    """Parse "1234.5" / "1234.56" into a Decimal with two decimals; raise AmountError otherwise.

    Only digits and a dot: no sign, grouping, comma, exponent, NaN or infinity, no surrounding
    spaces. The 999,999,999.99 ceiling and the zero check are the caller's (they have fault codes).
    """
    if not isinstance(text, str) or not _AMOUNT.fullmatch(text):
        raise AmountError(f"not an amount with a dot and at most two decimals: {text!r}")
    return Decimal(text).quantize(_CENT)


def _exact_cents(amount: Decimal) -> Decimal:
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise AmountError(f"amount must be a finite Decimal, got {amount!r}")
    quantized = amount.quantize(_CENT)
    if quantized != amount:
        raise AmountError(f"amount has fractions of a cent: {amount}")
    return quantized if quantized else abs(quantized)  # no "-0.00" on the wire


def format_amount(amount: Decimal) -> str:
    """The wire form of an amount: "1234.56" (always two decimals, no grouping)."""
    return f"{_exact_cents(amount):f}"


def amount_to_cents(amount: Decimal) -> int:
    """Whole euro cents of an amount; refuses fractions of a cent rather than rounding them away."""
    return int(_exact_cents(amount) * 100)


def is_valid_iban(value: str | None) -> bool:
    """An IBAN without spaces (either case): country structure and mod-97 check digits via stdnum."""
    if not isinstance(value, str) or not _IBAN.fullmatch(value):
        return False
    return _iban.is_valid(value)
