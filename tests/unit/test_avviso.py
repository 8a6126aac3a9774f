"""The avviso PDF: QR payload, rendering, what a reader and a QR scanner find in it, zip packaging."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
import segno
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.payments.avviso import (
    AvvisoData,
    AvvisoError,
    avviso_entry_name,
    format_amount_it,
    format_notice_number,
    qr_payload,
    render_avviso_pdf,
    zip_avvisi,
)
from gateway.payments.iuv import make_iuv17, notice_number

NOTICE = notice_number(make_iuv17("01", 1))  # 301000000000000144
CF_ENTE = "80007580279"

DATA = AvvisoData(
    ente_name="Comune di Esempio",
    ente_fiscal_code=CF_ENTE,
    notice_number=NOTICE,
    amount=Decimal("1234.56"),
    causale="TARI 2026 prima rata",
    payer_name="Mario Rossi",
    payer_fiscal_code="rssmra80a01h501u",
    payer_address="Via Roma 1 30100\nVenezia (VE) - IT",
    ente_sector="Settore Tributi",
    ente_info="Piazza Municipio 1, Venezia - tributi@example.it",
    due_date=date(2026, 12, 31),
    cbill="AB12C",
)


# --- pure formatting --------------------------------------------------------------------------------
def test_qr_payload() -> None:
    assert qr_payload(NOTICE, CF_ENTE, Decimal("120.50")) == "PAGOPA|002|301000000000000144|80007580279|12050"
    assert qr_payload(NOTICE, CF_ENTE, Decimal("0.01")).endswith("|1")  # cents, no padding
    assert qr_payload(NOTICE, CF_ENTE, Decimal("999999999.99")).endswith("|99999999999")


@pytest.mark.parametrize(
    "notice,cf,amount",
    [
        (NOTICE, CF_ENTE, Decimal("1000000000.00")),  # above 999,999,999.99
        (NOTICE, CF_ENTE, Decimal("0")),
        (NOTICE, CF_ENTE, Decimal("-1")),
        (NOTICE, CF_ENTE, Decimal("1.001")),
        (NOTICE, CF_ENTE, Decimal("NaN")),
        (NOTICE, CF_ENTE, 1.5),
        (NOTICE[:-1], CF_ENTE, Decimal("1")),
        (NOTICE + "|", CF_ENTE, Decimal("1")),
        (NOTICE, "8000758027", Decimal("1")),
        (NOTICE, "80007580279|1", Decimal("1")),
    ],
)
def test_qr_payload_refuses(notice: str, cf: str, amount: object) -> None:
    with pytest.raises(AvvisoError):
        qr_payload(notice, cf, amount)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "amount,text",
    [("0.5", "0,50"), ("12", "12,00"), ("1234.56", "1.234,56"), ("1234567.8", "1.234.567,80"),
     ("999999999.99", "999.999.999,99")],
)
def test_format_amount_it(amount: str, text: str) -> None:
    assert format_amount_it(Decimal(amount)) == text


def test_format_notice_number() -> None:
    assert format_notice_number("301000000000000144") == "3010 0000 0000 0001 44"


# --- the PDF ----------------------------------------------------------------------------------------
def _page_text_and_image(pdf: bytes):  # type: ignore[no-untyped-def]
    pdfium = pytest.importorskip("pypdfium2")
    document = pdfium.PdfDocument(pdf)
    assert len(document) == 1
    page = document[0]
    assert (round(page.get_width()), round(page.get_height())) == (595, 842)  # A4 in points
    return page.get_textpage().get_text_range(), page.render(scale=2).to_pil()


def test_pdf_is_a_pdf_and_deterministic() -> None:
    pdf = render_avviso_pdf(DATA)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert render_avviso_pdf(DATA) == pdf  # no timestamps or random ids


def test_pdf_text() -> None:
    text, _ = _page_text_and_image(render_avviso_pdf(DATA))
    for expected in (
        "AVVISO DI PAGAMENTO",
        "3010 0000 0000 0001 44",
        "1.234,56 Euro",
        "31/12/2026",
        CF_ENTE,
        "Comune di Esempio",
        "RSSMRA80A01H501U",  # payer CF upper-cased
        "Mario Rossi",
        "Venezia (VE) - IT",
        "TARI 2026 prima rata",
        "AB12C",
        "Inquadra il codice QR",
        "scan the QR code",
    ):
        assert expected in text, expected


def test_pdf_without_optional_fields() -> None:
    data = replace(DATA, due_date=None, cbill=None, payer_address=None, ente_sector=None, ente_info=None)
    text, _ = _page_text_and_image(render_avviso_pdf(data))
    assert "entro il" not in text
    assert "3010 0000 0000 0001 44" in text


def test_pdf_qr_code_decodes_to_the_payload() -> None:
    zxingcpp = pytest.importorskip("zxingcpp")
    _, image = _page_text_and_image(render_avviso_pdf(DATA))
    found = [r.text for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode]
    assert found == ["PAGOPA|002|301000000000000144|80007580279|123456"]


def test_segno_qr_decodes_to_the_payload() -> None:
    # Same QR parameters as the PDF, checked without a PDF rasterizer.
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    payload = qr_payload(NOTICE, CF_ENTE, Decimal("120.50"))
    png = io.BytesIO()
    segno.make(payload, error="m", micro=False, boost_error=False).save(png, kind="png", scale=8)
    png.seek(0)
    assert [r.text for r in zxingcpp.read_barcodes(Image.open(png))] == [payload]


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 99999999999), st.integers(1, 10**11 - 1))
def test_pdf_qr_round_trip(cents: int, progressive: int) -> None:
    zxingcpp = pytest.importorskip("zxingcpp")
    notice = notice_number(make_iuv17("47", progressive))
    data = replace(DATA, notice_number=notice, amount=Decimal(cents).scaleb(-2))
    text, image = _page_text_and_image(render_avviso_pdf(data))
    assert format_notice_number(notice) in text
    assert [r.text for r in zxingcpp.read_barcodes(image)] == [f"PAGOPA|002|{notice}|{CF_ENTE}|{cents}"]


def test_pdf_refuses_amount_above_maximum() -> None:
    with pytest.raises(AvvisoError):
        render_avviso_pdf(replace(DATA, amount=Decimal("1000000000.00")))


def test_pdf_survives_hostile_text() -> None:
    data = replace(
        DATA,
        payer_name="Łukasz Żółć <b>&amp;</b> 日本 " + "x" * 300,
        causale="\x00\x07tab\there\r\nnewline " * 20,
        ente_name="E" * 200,
        payer_address="\n".join(["riga"] * 50),
    )
    text, _ = _page_text_and_image(render_avviso_pdf(data))
    assert "Lukasz Zólc <b>&amp;</b>" in text  # drawn literally, non-Latin letters reduced, never markup
    assert "\x00" not in text and "\x07" not in text and "tab here" in text
    assert "3010 0000 0000 0001 44" in text


# --- zip --------------------------------------------------------------------------------------------
def test_entry_name() -> None:
    assert avviso_entry_name(CF_ENTE, "01000000000000144") == "avviso_80007580279_01000000000000144.pdf"
    for cf, iuv in (("../x", "1"), (CF_ENTE, "a/b"), (CF_ENTE, ""), ("", "1")):
        with pytest.raises(AvvisoError):
            avviso_entry_name(cf, iuv)


def test_zip_avvisi_round_trip() -> None:
    pdf = render_avviso_pdf(DATA)
    names = [avviso_entry_name(CF_ENTE, "01000000000000144"), avviso_entry_name(CF_ENTE, "01000000000000245")]
    blob = zip_avvisi([(names[0], pdf), (names[1], b"%PDF-other")])
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == names
        assert archive.read(names[0]) == pdf


@pytest.mark.parametrize("names", [["a.pdf", "a.pdf"], ["../a.pdf"], ["dir/a.pdf"], ["a\\b.pdf"], [""], [".."]])
def test_zip_avvisi_refuses_bad_names(names: list[str]) -> None:
    with pytest.raises(AvvisoError):
        zip_avvisi([(name, b"x") for name in names])
