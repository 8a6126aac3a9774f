"""The flussi's fast paths give exactly what the plain ones give: line split, check digits, COPY text,
read-ahead, and the PostgreSQL-formatted export CSV against the Python formatter, byte for byte."""

from __future__ import annotations

import io
import random
import zipfile
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.flussi import bulk, readahead
from gateway.flussi import rows as R
from gateway.flussi.tracciati import TRACCIATI, _unquote, split_line
from gateway.payments import identifiers


def reference_split(line: str) -> list[str]:
    """The original split_line, kept here as the oracle of the optimised one."""
    pieces = line.split(";")
    if '"' not in line:
        return [piece.strip() for piece in pieces]
    fields: list[str] = []
    pending: str | None = None
    for piece in pieces:
        current = piece if pending is None else pending + ";" + piece
        if (current.count('"') - current.count('\\"')) % 2:
            pending = current
        else:
            current = current.strip()
            fields.append(_unquote(current) if '"' in current else current)
            pending = None
    if pending is not None:
        fields.append(_unquote(pending.strip()))
    return fields


def test_split_line_matches_the_reference_on_random_lines() -> None:
    rng = random.Random(3)
    alphabet = ['a', 'b', ' ', ';', '"', '\\', '\\"', ';"', '"; ', 'xyz']
    for _ in range(20000):
        line = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert split_line(line) == reference_split(line), line


def test_partita_iva_and_codice_fiscale_checks_agree_with_identifiers() -> None:
    rng = random.Random(5)
    for i in range(50000):
        code = "".join(rng.choice("0123456789") for _ in range(11)) if i % 4 else \
            "".join(rng.choice("0123456789a ") for _ in range(rng.randint(9, 12)))
        assert R._piva_ok(code) == identifiers.is_valid_partita_iva(code), code
    from bench.flussi_gen import random_cf

    for _ in range(5000):
        code = random_cf(rng)
        assert R._personal_cf_ok(code) and identifiers.is_valid_codice_fiscale(code)
        spoiled = code[:15] + chr((ord(code[15]) - 65 + rng.randint(1, 25)) % 26 + 65)
        assert not R._personal_cf_ok(spoiled) and not identifiers.is_valid_codice_fiscale(spoiled)


def test_fixed_positions_of_the_base_columns() -> None:
    # phase_a reads the 19 base columns by position: they must sit there in every version.
    for tracciato in TRACCIATI.values():
        assert tracciato.names[:19] == TRACCIATI["1_0"].names[:19]
    assert TRACCIATI["1_0"].names[:4] == ("IUD", "codIuv", "tipoIdentificativoUnivoco", "codiceIdentificativoUnivoco")
    assert TRACCIATI["1_0"].names[15:19] == ("tipoDovuto", "tipoVersamento", "causaleVersamento",
                                            "datiSpecificiRiscossione")


def test_address_and_civic_shortcuts() -> None:
    for text in ["Via Roma 1", "P.zza S. Marco, 3/a", "tab\there", "\x7f", "Via Città", "Straße 5", "ĳ", ""]:
        stripped = text  # the original _address_ok and _civic_ok, spelled out
        import unicodedata

        stripped = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
        assert R._address_ok(text) == all(32 <= ord(c) <= 126 for c in R._ADDRESS_KEEP.sub(" ", stripped))
        assert R._civic_ok(text) == all(32 <= ord(c) <= 126 for c in text)


def test_copy_line_escapes_only_what_copy_needs() -> None:
    assert bulk.copy_line((1, None, "a", True, False, Decimal("1.50"), date(2030, 1, 2))) == \
        "1\t\\N\ta\tt\tf\t1.50\t2030-01-02"
    assert bulk.copy_line(("tab\there", "back\\slash", "new\nline\r", "\\N")) == \
        "tab\\there\tback\\\\slash\tnew\\nline\\r\t\\\\N"
    assert bulk.copy_line(({"a": 1},)) == '{"a": 1}'


def test_read_ahead_keeps_order_raises_in_place_and_stops_its_source() -> None:
    assert list(readahead.read_ahead(iter(range(50)), depth=2)) == list(range(50))

    def failing():  # noqa: ANN202
        yield 1
        yield 2
        raise ValueError("boom")

    seen = []
    with pytest.raises(ValueError, match="boom"):
        for item in readahead.read_ahead(failing()):
            seen.append(item)
    assert seen == [1, 2]

    closed = []

    def endless():  # noqa: ANN202
        try:
            n = 0
            while True:
                n += 1
                yield n
        finally:
            closed.append(True)

    reader = readahead.read_ahead(endless())
    assert next(reader) == 1
    reader.close()
    assert closed == [True]


# --- the export's two formatters ------------------------------------------------------------------------

TRICKY = ["=HYPERLINK(\"http://x\")", "+39 041", "-meno", "@home", "\tTab", "\rCR", 'say "hi"; now', "a\nb",
          "Città è più", "", None, "plain"]


def _seed(database, ente_id: int, tipo_id: int, fiscal_code: str) -> None:  # noqa: ANN001
    from storage.models import Dovuto, Receipt, ReceiptPayment

    rng = random.Random(11)
    times = [datetime(2030, 3, 31, 0, 30, tzinfo=timezone.utc), datetime(2030, 10, 27, 0, 59, 59, tzinfo=timezone.utc),
             datetime(2030, 10, 27, 1, 0, 1, tzinfo=timezone.utc), datetime(2030, 7, 1, 22, 15, 7, 123456,
                                                                           tzinfo=timezone.utc), None]
    with database.transaction() as session:
        for n in range(40):
            text = TRICKY[n % len(TRICKY)]
            dovuto = Dovuto(ente_id=ente_id, tipo_dovuto_id=tipo_id if n % 7 else None, iud=f"{text or 'X'}-{n}"[:35],
                            iuv=f"01000000000{n:06d}", state="COMPLETATO", payer_type="F",
                            payer_code="RSSMRA80A01H501U", payer_name=text or "Nome", payer_address=text,
                            payer_province="VE" if n % 3 == 0 else (None if n % 3 == 1 else ""),
                            payer_email=text, amount=Decimal(rng.randint(1, 10**9)) / 100,
                            causale=text or "Causale", dati_specifici_riscossione="9/0101100IM/",
                            bilancio=text if n % 2 else None)
            session.add(dovuto)
            session.flush()
            payer = None if n % 5 == 0 else {"type": "F", "code": text, "name": "Versante " + (text or ""),
                                                "email": None, "city": "Venezia"}
            receipt = Receipt(ente_id=ente_id, dovuto_id=dovuto.id, fiscal_code=fiscal_code, receipt_id=f"R{n}",
                              iuv=dovuto.iuv, ccp=text, source="paSendRTV2", outcome="OK",
                              esito_code=None if n % 4 == 0 else ("" if n % 4 == 1 else "0"),
                              amount=dovuto.amount, fee=None if n % 2 else Decimal("1.5"),
                              paid_at=times[n % len(times)], psp_id=text, psp_name="PSP " + str(n), payer=payer,
                              tipo_firma=text[:10] if text is not None else None,
                              raw=b"" if n % 6 == 0 else bytes(range(256)) * (n % 3 + 1),
                              flags=[])
            for index in range(1 + n % 2):
                receipt.payments.append(ReceiptPayment(
                    index=0 if n % 9 == 0 and index == 0 else index + 1, iuv=dovuto.iuv, iur=text or f"IUR{n}",
                    amount=Decimal("12.3") + index, fiscal_code_pa=None if index else fiscal_code,
                    causale=None if n % 3 else ("" if n % 2 else "Causale pagamento " + (text or "")),
                    dati_specifici_riscossione=None if n % 2 else "", outcome_date=date(2030, 3, 10)))
            session.add(receipt)


def _csv(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        (member,) = archive.namelist()
        return archive.read(member)


@pytest.mark.postgres
def test_postgres_formatted_export_equals_the_python_formatter(request: pytest.FixtureRequest,
                                                               tmp_path: Path) -> None:
    from gateway.enti.registry import get_ente
    from gateway.flussi import bookings, exporter
    from gateway.settings import Settings
    from storage.db import Database
    from storage.models import TipoDovuto
    from tests.conftest import create_ente, new_database_url

    database = Database(new_database_url("postgres", request, tmp_path))
    try:
        demo = create_ente(database)
        settings = Settings(database_url=database.url, data_dir=tmp_path, secret_key="k" * 32)
        with database.transaction() as session:
            ente = get_ente(session, demo.cod_ipa)
            ente.name = "=Comune \"di\" prova"
            tipo_id = session.query(TipoDovuto.id).filter(TipoDovuto.ente_id == ente.id).first()[0]
            ente_id = ente.id
        _seed(database, ente_id, tipo_id, demo.fiscal_code)
        day = datetime(2030, 3, 10, tzinfo=timezone.utc)
        for version in ("1.0", "1.1", "1.2", "1.3"):
            for receipts in (False, True):
                with database.transaction() as session:
                    ente = get_ente(session, demo.cod_ipa)
                    flow = bookings.new_export(session, ente, kind="pagati", date_from=day, date_to=day,
                                               tipi_dovuto=None, version=version, with_receipts=receipts,
                                               enqueue=False)
                    session.expunge_all()
                fast, slow = tmp_path / f"fast{version}{receipts}.zip", tmp_path / f"slow{version}{receipts}.zip"
                counted = exporter._write_copy(database, settings, flow, ente, fast, "x", None, None)
                assert counted == exporter._write_python(database, settings, flow, ente, slow, "x", None, None)
                assert counted == 40 + 20
                assert _csv(fast) == _csv(slow), (version, receipts)
        assert b"'=HYPERLINK" in _csv(fast) and io.BytesIO(_csv(fast)).read().count(b"\n") > 60
    finally:
        database.dispose()
