"""The payment notice ("avviso di pagamento") as a one-page A4 PDF, its pagoPA QR code and zip packaging.

Laid out after the pagoPA standard notice; the wording is our own.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import segno
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from gateway.payments.identifiers import MAX_AMOUNT, amount_to_cents

QR_PREFIX = "PAGOPA|002"

# Field limits of MyPay's avviso template (flussi-formats §4.1): longer values are cut, as MyPay does.
_MAX_OGGETTO = 90
_MAX_PAYER_NAME = 70
_MAX_CF = 16
_MAX_ADDRESS = 140
_MAX_ENTE_NAME = 50
_MAX_ENTE_INFO = 100

_NOTICE = re.compile(r"[0-9]{18}")
_CF_ENTE = re.compile(r"[0-9]{11}")  # idDominio: the pagoPA QR code carries the ente's 11-digit CF
_SAFE_NAME_PART = re.compile(r"[A-Za-z0-9]{1,35}")

_FONT = "Helvetica"
_FONT_BOLD = "Helvetica-Bold"
# Base-14 fonts only know Windows-1252; anything else would print as black boxes.
_FALLBACK_CHARS = str.maketrans({"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h", "ı": "i"})

_TEXT = (0.10, 0.10, 0.10)
_MUTED = (0.35, 0.35, 0.35)
_ACCENT = (0.00, 0.40, 0.80)
_BAND = (0.93, 0.95, 0.98)


class AvvisoError(ValueError):
    """Data that cannot go on a payment notice (amount out of range, malformed notice number…)."""


@dataclass(frozen=True)
class AvvisoData:
    ente_name: str
    ente_fiscal_code: str
    notice_number: str
    amount: Decimal
    causale: str  # "oggetto del pagamento"
    payer_name: str
    payer_fiscal_code: str
    payer_address: str | None = None  # may hold "\n": "via civico cap\nlocalita (prov) - nazione"
    ente_sector: str | None = None
    ente_info: str | None = None  # address, phone, e-mail
    due_date: date | None = None  # printed only when the tipo dovuto asks for it
    cbill: str | None = None


def _check_amount(amount: Decimal) -> int:
    if not isinstance(amount, Decimal):
        raise AvvisoError(f"amount must be a Decimal, got {type(amount).__name__}")
    try:
        cents = amount_to_cents(amount)
    except ValueError as exc:
        raise AvvisoError(str(exc)) from exc
    if amount > MAX_AMOUNT:
        raise AvvisoError(f"amount {amount} is above {MAX_AMOUNT}: no notice can be generated")
    if cents <= 0:
        raise AvvisoError(f"amount {amount} must be positive")
    return cents


def qr_payload(notice_number: str, fiscal_code: str, amount: Decimal) -> str:
    """The pagoPA QR payload: "PAGOPA|002|<notice number>|<ente CF>|<amount in cents>"."""
    if not isinstance(notice_number, str) or not _NOTICE.fullmatch(notice_number):
        raise AvvisoError(f"notice number must be 18 digits, got {notice_number!r}")
    if not isinstance(fiscal_code, str) or not _CF_ENTE.fullmatch(fiscal_code):
        raise AvvisoError(f"ente fiscal code must be 11 digits, got {fiscal_code!r}")
    return f"{QR_PREFIX}|{notice_number}|{fiscal_code}|{_check_amount(amount)}"


def format_amount_it(amount: Decimal) -> str:
    """Italian grouping as on the notice: 1234.5 -> "1.234,50"."""
    return f"{amount:,.2f}".translate(str.maketrans(",.", ".,"))


def format_notice_number(notice_number: str) -> str:
    """Groups of 4 digits from the left: "3010 0000 0000 0001 44"."""
    return " ".join(notice_number[i : i + 4] for i in range(0, len(notice_number), 4))


def avviso_entry_name(ente_fiscal_code: str, iuv: str) -> str:
    """Name of a notice inside the zip: avviso_<cfEnte>_<IUV>.pdf (as MyPay's ImportaDovuto azione S)."""
    for part in (ente_fiscal_code, iuv):
        if not isinstance(part, str) or not _SAFE_NAME_PART.fullmatch(part):
            raise AvvisoError(f"not usable in a file name: {part!r}")
    return f"avviso_{ente_fiscal_code}_{iuv}.pdf"


def zip_avvisi(items: list[tuple[str, bytes]]) -> bytes:
    """Zip (name, PDF bytes) pairs; names must be plain, distinct file names."""
    seen: set[str] = set()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, pdf in items:
            # A path in an entry name would let the archive write outside the folder it is unpacked in.
            if not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
                raise AvvisoError(f"zip entry name must be a plain file name, got {name!r}")
            if name in seen:
                raise AvvisoError(f"duplicate zip entry name {name!r}")
            seen.add(name)
            archive.writestr(name, pdf)
    return buffer.getvalue()


def _printable(text: str | None, limit: int | None = None) -> str:
    """Text the base-14 fonts can draw: accents kept, other letters reduced to their base form."""
    if not text:
        return ""
    # Control and format characters (NUL, BEL, bidi overrides…) become spaces; runs of blanks one space.
    text = " ".join("".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text).split())
    if limit is not None:
        text = text[:limit]
    out = []
    for ch in text.translate(_FALLBACK_CHARS):
        try:
            ch.encode("cp1252")
            out.append(ch)
            continue
        except UnicodeEncodeError:
            pass
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        try:
            base.encode("cp1252")
            out.append(base)
        except UnicodeEncodeError:
            out.append("?")
    return "".join(out)


def _wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Word-wrap to `width`, breaking inside words that alone are wider (codes, e-mail addresses)."""
    lines: list[str] = []
    for line in simpleSplit(text, font, size, width):
        while stringWidth(line, font, size) > width and len(line) > 1:
            cut = len(line) - 1
            while cut > 1 and stringWidth(line[:cut], font, size) > width:
                cut -= 1
            lines.append(line[:cut])
            line = line[cut:]
        lines.append(line)
    return lines


class _Page:
    """A thin drawing helper over the reportlab canvas, with y measured from the top of the page."""

    def __init__(self, canvas: Canvas) -> None:
        self.c = canvas
        self.width, self.height = A4

    def text(self, x: float, top: float, text: str, *, size: float = 9, bold: bool = False,
             color: tuple[float, float, float] = _TEXT, align: str = "left") -> None:
        self.c.setFillColorRGB(*color)
        self.c.setFont(_FONT_BOLD if bold else _FONT, size)
        y = self.height - top
        if align == "right":
            self.c.drawRightString(x, y, text)
        else:
            self.c.drawString(x, y, text)

    def paragraph(self, x: float, top: float, width: float, text: str, *, size: float = 9,
                  bold: bool = False, color: tuple[float, float, float] = _TEXT, max_lines: int = 3,
                  leading: float | None = None) -> float:
        """Wrap `text` into `width`; return the top of the line after it."""
        leading = leading or size * 1.25
        font = _FONT_BOLD if bold else _FONT
        lines = _wrap(text, font, size, width)[:max_lines] if text else []
        for line in lines:
            top += leading
            self.text(x, top, line, size=size, bold=bold, color=color)
        return top

    def rule(self, top: float, x0: float = 15 * mm, x1: float | None = None) -> None:
        self.c.setStrokeColorRGB(*_MUTED)
        self.c.setLineWidth(0.5)
        self.c.line(x0, self.height - top, x1 if x1 is not None else self.width - 15 * mm, self.height - top)

    def band(self, top: float, height: float) -> None:
        self.c.setFillColorRGB(*_BAND)
        self.c.rect(0, self.height - top - height, self.width, height, stroke=0, fill=1)

    def qr(self, payload: str, x: float, top: float, size: float) -> None:
        """Draw the QR code as vector squares (sharp at any zoom and print resolution)."""
        code = segno.make(payload, error="m", micro=False, boost_error=False)
        rows = code.matrix
        module = size / len(rows)
        y_top = self.height - top
        self.c.setFillColorRGB(0, 0, 0)
        for r, row in enumerate(rows):
            c = 0
            while c < len(row):
                if not row[c]:
                    c += 1
                    continue
                start = c
                while c < len(row) and row[c]:
                    c += 1
                # One rectangle per run of dark modules keeps the PDF small.
                self.c.rect(x + start * module, y_top - (r + 1) * module, (c - start) * module, module,
                            stroke=0, fill=1)


def render_avviso_pdf(data: AvvisoData) -> bytes:
    """Render the notice; raise AvvisoError for data that cannot be printed (e.g. amount too large)."""
    payload = qr_payload(data.notice_number, data.ente_fiscal_code, data.amount)
    amount_text = f"{format_amount_it(data.amount)} Euro"
    notice_text = format_notice_number(data.notice_number)
    due_text = data.due_date.strftime("%d/%m/%Y") if data.due_date else None

    ente_name = _printable(data.ente_name, _MAX_ENTE_NAME)
    causale = _printable(data.causale, _MAX_OGGETTO)
    payer_name = _printable(data.payer_name, _MAX_PAYER_NAME)
    payer_cf = _printable(data.payer_fiscal_code, _MAX_CF).upper()
    address_lines = [_printable(line) for line in (data.payer_address or "")[:_MAX_ADDRESS].splitlines()]
    sector = _printable(data.ente_sector)
    info = _printable(data.ente_info, _MAX_ENTE_INFO)
    cbill = _printable(data.cbill) or "-"

    buffer = io.BytesIO()
    # invariant: no creation date or random id in the file, so the same notice gives the same bytes.
    canvas = Canvas(buffer, pagesize=A4, invariant=1, pageCompression=1)
    canvas.setTitle(f"Avviso di pagamento {data.notice_number}")
    canvas.setAuthor(ente_name)
    canvas.setSubject(causale)
    p = _Page(canvas)
    left, right = 15 * mm, p.width - 15 * mm
    col2 = p.width / 2 + 5 * mm
    col_width = p.width / 2 - 20 * mm

    # Header: title, object of the payment, the pagoPA mark.
    p.text(left, 22 * mm, "AVVISO DI PAGAMENTO", size=18, bold=True, color=_ACCENT)
    p.text(right, 22 * mm, "pagoPA", size=16, bold=True, color=_ACCENT, align="right")
    p.paragraph(left, 25 * mm, right - left, causale, size=11, max_lines=2)

    # Creditor and debtor, side by side.
    top = 45 * mm
    p.text(left, top, "ENTE CREDITORE", size=8, bold=True, color=_MUTED)
    ente_cf_text = f"Cod. Fiscale {data.ente_fiscal_code}"
    p.text(left + col_width, top, ente_cf_text, size=8, color=_MUTED, align="right")
    y = p.paragraph(left, top + 1 * mm, col_width, ente_name, size=11, bold=True, max_lines=2)
    y = p.paragraph(left, y, col_width, sector, size=9, max_lines=2)
    p.paragraph(left, y, col_width, info, size=8, color=_MUTED, max_lines=3)

    p.text(col2, top, "DESTINATARIO AVVISO", size=8, bold=True, color=_MUTED)
    p.text(right, top, f"Cod. Fiscale {payer_cf}", size=8, color=_MUTED, align="right")
    y = p.paragraph(col2, top + 1 * mm, col_width, payer_name, size=11, bold=True, max_lines=2)
    for line in address_lines[:3]:
        y = p.paragraph(col2, y, col_width, line, size=9, max_lines=2)

    # How much and when; where to pay.
    band_top = 80 * mm
    p.band(band_top, 52 * mm)
    top = band_top + 8 * mm
    p.text(left, top, "QUANTO E QUANDO PAGARE?", size=10, bold=True, color=_ACCENT)
    p.text(left, top + 10 * mm, amount_text, size=20, bold=True)
    if due_text:
        p.text(left, top + 17 * mm, f"entro il {due_text}", size=11, bold=True)
    p.paragraph(
        left, top + 20 * mm, col_width,
        "L'importo può essere aggiornato dall'ente al momento del pagamento, ad esempio per "
        "interessi, sanzioni o riduzioni: paga sempre l'importo che ti viene mostrato.",
        size=8, color=_MUTED, max_lines=4,
    )
    p.text(col2, top, "DOVE PAGARE?", size=10, bold=True, color=_ACCENT)
    y = p.paragraph(
        col2, top + 1 * mm, col_width,
        "ONLINE: sul sito o nell'app del tuo ente creditore, della tua banca o di un altro "
        "prestatore di servizi di pagamento aderente a pagoPA, con carta, conto o CBILL.",
        size=8.5, max_lines=4,
    )
    p.paragraph(
        col2, y + 2 * mm, col_width,
        "DI PERSONA: negli sportelli bancari e negli uffici postali, nelle ricevitorie, nelle "
        "tabaccherie, negli ATM e nei punti vendita abilitati a pagoPA.",
        size=8.5, max_lines=4,
    )

    # The payment slip: QR code and the data a cashier or an app needs.
    top = 142 * mm
    p.text(left, top, "BANCHE E ALTRI CANALI", size=10, bold=True, color=_ACCENT)
    p.paragraph(
        left, top + 1 * mm, right - left,
        "Inquadra il codice QR con l'app della tua banca o di pagamento, oppure comunica il codice "
        "avviso e il codice fiscale dell'ente a qualsiasi canale pagoPA.",
        size=8.5, max_lines=2,
    )
    p.rule(top + 13 * mm)
    slip_top = top + 18 * mm
    qr_size = 40 * mm  # the quiet zone is the white space around it
    p.qr(payload, left + 2 * mm, slip_top + 2 * mm, qr_size)

    fields_x = left + qr_size + 12 * mm
    value_width = right - fields_x - 30 * mm  # the amount sits at the right of these fields
    y = slip_top
    for label, value, size, bold in (
        ("Destinatario", payer_name, 10, True),
        ("Ente Creditore", ente_name, 10, True),
        ("Oggetto del pagamento", causale, 9, False),
    ):
        p.text(fields_x, y + 3 * mm, label, size=7.5, color=_MUTED)
        y = p.paragraph(fields_x, y + 3.5 * mm, value_width, value, size=size, bold=bold, max_lines=2)
        y += 1.5 * mm
    p.text(right, slip_top + 3 * mm, "Euro", size=7.5, color=_MUTED, align="right")
    p.text(right, slip_top + 9 * mm, format_amount_it(data.amount), size=13, bold=True, align="right")

    grid_top = max(y, slip_top + 26 * mm) + 4 * mm
    for x, label, value in (
        (fields_x, "Codice CBILL", cbill),
        (fields_x + 25 * mm, "Codice Avviso", notice_text),
        (fields_x + 80 * mm, "Cod. Fiscale Ente Creditore", data.ente_fiscal_code),
    ):
        p.text(x, grid_top, label, size=7.5, color=_MUTED)
        p.text(x, grid_top + 5 * mm, value, size=10, bold=True)
    p.rule(max(grid_top + 10 * mm, slip_top + qr_size + 6 * mm))

    # Bilingual footer.
    foot = p.height - 20 * mm
    p.paragraph(left, foot, right - left,
                "Il codice QR contiene il codice avviso, il codice fiscale dell'ente e l'importo: "
                "controllali prima di confermare il pagamento.", size=8, color=_MUTED, max_lines=2)
    p.paragraph(left, foot + 8 * mm, right - left,
                "Payment notice: scan the QR code with your banking or payment app, or give the notice "
                "code and the creditor's tax code to any pagoPA payment provider.",
                size=8, color=_MUTED, max_lines=2)

    canvas.showPage()
    canvas.save()
    return buffer.getvalue()
