"""The flussi's fast paths give exactly what the plain ones give: line split, check digits, COPY text,
read-ahead, and the PostgreSQL-formatted export CSV against the Python formatter, byte for byte."""

from __future__ import annotations

import codecs
import io
import random
import zipfile
from contextlib import contextmanager
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.flussi import bulk, csvlines, readahead
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


@contextmanager
def _seeded_database(request: pytest.FixtureRequest, tmp_path: Path, *, ente_name: str | None = None):  # noqa: ANN202
    """A fresh PostgreSQL database with a demo ente whose paid positions _seed made: (database, ente, settings),
    disposed of when the block ends."""
    from gateway.enti.registry import get_ente
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
            if ente_name is not None:
                ente.name = ente_name
            tipo_id = session.query(TipoDovuto.id).filter(TipoDovuto.ente_id == ente.id).first()[0]
            ente_id = ente.id
        _seed(database, ente_id, tipo_id, demo.fiscal_code)
        yield database, demo, settings
    finally:
        database.dispose()


def _export_both_ways(database, settings, demo, tmp_path: Path, version: str,  # noqa: ANN001
                      receipts: bool) -> tuple[int, int, bytes, bytes]:
    """The same pagati export through COPY and through the Python formatter: (counts, CSVs) of each."""
    from gateway.enti.registry import get_ente
    from gateway.flussi import bookings, exporter

    day = datetime(2030, 3, 10, tzinfo=timezone.utc)
    with database.transaction() as session:
        ente = get_ente(session, demo.cod_ipa)
        flow = bookings.new_export(session, ente, kind="pagati", date_from=day, date_to=day, tipi_dovuto=None,
                                   version=version, with_receipts=receipts, enqueue=False)
        session.expunge_all()
    fast, slow = tmp_path / f"fast{version}{receipts}.zip", tmp_path / f"slow{version}{receipts}.zip"
    counted_fast = exporter._write_copy(database, settings, flow, ente, fast, "x", None, None)
    counted_slow = exporter._write_python(database, settings, flow, ente, slow, "x", None, None)
    return counted_fast, counted_slow, _csv(fast), _csv(slow)


@pytest.mark.postgres
def test_postgres_formatted_export_equals_the_python_formatter(request: pytest.FixtureRequest,
                                                               tmp_path: Path) -> None:
    with _seeded_database(request, tmp_path, ente_name="=Comune \"di\" prova") as (database, demo, settings):
        for version in ("1.0", "1.1", "1.2", "1.3"):
            for receipts in (False, True):
                counted, counted_slow, fast, slow = _export_both_ways(database, settings, demo, tmp_path, version,
                                                                      receipts)
                assert counted == counted_slow
                assert counted == 40 + 20
                assert fast == slow, (version, receipts)
        assert b"'=HYPERLINK" in fast and io.BytesIO(fast).read().count(b"\n") > 60


# --- import batches: COPY text, reserved ids and IUVs ---------------------------------------------------

def _batch_context(version: str, **overrides: object):  # noqa: ANN202
    from gateway.flussi.batch import BatchContext

    tipi = {code: R.Tipo(number, code, True, False, False) for number, code in ((7, "TARI"), (8, "MENSA"))}
    values: dict = dict(flow_id=42, ente_id=1, application_code="01", version=version,
                        tracciato=TRACCIATI[version], tipi=tipi, reason="import flusso X", copy_text=True)
    values.update(overrides)
    return BatchContext(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("version", sorted(TRACCIATI))
def test_insert_text_equals_copy_line_of_the_static_values(version: str) -> None:
    from bench.flussi_gen import _csv_field, _row
    from gateway.flussi.batch import _insert_text, _static

    rng = random.Random(11)
    context = _batch_context(version)
    checked = 0
    for number in range(1, 3001):
        fields = _row(rng, version, f"IUD-{number}", rng.choice(("TARI", "MENSA")), "I", rng.random() < 0.3)
        if number % 7 == 0:
            fields[17] += "\\ tab\there"  # the escaping path
        if number % 11 == 0:
            fields[13] = rng.choice(("12.5", "0012.50", "+3", "7"))  # amounts written otherwise
        if number % 13 == 0:
            fields[5] = fields[6] = fields[11] = ""  # optional fields left empty
        raw = ";".join(_csv_field(f) for f in fields)
        row = R.phase_a(TRACCIATI[version], number, raw, split_line(raw))
        assert isinstance(row, R.Row), row
        if R.phase_b(row, version=version, tipi=context.tipi, application_code="01") is not None:
            continue
        assert _insert_text(context, row, f"{row.amount:.2f}") == bulk.copy_line((row.iud,) + _static(context, row))
        checked += 1
    assert checked > 2000


def test_iuv_reservation_moves_the_counter_once_and_never_hands_out_twice(database) -> None:  # noqa: ANN001
    from gateway.flussi.iuvs import IuvReservation
    from gateway.payments.iuv import make_iuv17, notice_number
    from gateway.payments.iuv_allocator import IuvAllocationError, allocate_iuv
    from storage.models import Ente, IuvCounter
    from tests.conftest import create_ente

    demo = create_ente(database)
    with database.transaction() as session:
        ente = session.query(Ente).filter(Ente.cod_ipa == demo.cod_ipa).one()
        reservation = IuvReservation(session, ente.id, 3)
        handed = [reservation.next() for _ in range(2)]  # one of the three left unused: a gap
        assert handed == [(make_iuv17("01", p), notice_number(make_iuv17("01", p))) for p in (1, 2)]
        reservation.close()
    with database.transaction() as session:
        ente = session.query(Ente).filter(Ente.cod_ipa == demo.cod_ipa).one()
        assert session.query(IuvCounter.value).filter(IuvCounter.ente_id == ente.id).scalar() == 3
        assert allocate_iuv(session, ente)[0] == make_iuv17("01", 4)  # counts on after the reservation
        reservation = IuvReservation(session, ente.id, 1)
        assert reservation.next()[0] == make_iuv17("01", 5)
        with pytest.raises(RuntimeError):
            reservation.next()  # more than reserved: a bug in the caller's bound, never a reused IUV
    with database.transaction() as session:
        ente = session.query(Ente).filter(Ente.cod_ipa == demo.cod_ipa).one()
        ente.segregation_code = None
        reservation = IuvReservation(session, ente.id, 2)  # no error until a row needs an IUV
        with pytest.raises(IuvAllocationError):
            reservation.next()
        assert session.query(IuvCounter.value).filter(IuvCounter.ente_id == ente.id).scalar() == 5
        session.rollback()


def test_streamed_batches_reserve_bounds_and_keep_iuvs_unique(database, backend: str) -> None:  # noqa: ANN001
    """Rows decided inside the COPY (PostgreSQL) or one by one (SQLite): the same dovuti, rejections, audit rows
    and IUV lines; generated IUVs are unique across batches even where a rejected row left a gap."""
    from bench.flussi_gen import _csv_field, _row
    from gateway.flussi import bookings
    from gateway.flussi.batch import process_batch
    from gateway.payments.iuv import is_valid_check_digits
    from storage.models import Dovuto, DovutoTransition, Ente, ImportRejection, TipoDovuto
    from tests.conftest import create_ente

    demo = create_ente(database)
    with database.transaction() as session:
        ente = session.query(Ente).filter(Ente.cod_ipa == demo.cod_ipa).one()
        flow = bookings.new_import(session, ente)
        flow_id, ente_id = flow.id, ente.id
        tipi = {t.code: R.Tipo(t.id, t.code, True, False, False)
                for t in session.query(TipoDovuto).filter(TipoDovuto.ente_id == ente_id)}
    context = _batch_context("1_3", flow_id=flow_id, ente_id=ente_id, application_code=None, tipi=tipi,
                             copy_text=backend == "postgres")
    rng = random.Random(5)

    def line(iud: str, genera: bool) -> str:
        return ";".join(_csv_field(f) for f in _row(rng, "1_3", iud, "TARI", "I", genera))

    first = [(1, line("A-1", True)), (2, line("A-1", True)), (3, line("A-2", False)), (4, line("A-3", True)),
             (5, "broken;line")]
    second = [(6, line("A-1", True)), (7, line("A-4", True))]
    results = []
    for batch in (first, second):
        with database.transaction() as session:
            results.append(process_batch(session, context, batch))
    assert [(r.imported, r.rejected) for r in results] == [(3, 2), (1, 1)]
    assert results[0].avvisi_iuds == ["A-1", "A-3"] and results[1].avvisi_iuds == ["A-4"]
    with database.sessions() as session:
        dovuti = {d.iud: d for d in session.query(Dovuto).filter(Dovuto.ente_id == ente_id)}
        reasons = {t.dovuto_id: t.reason for t in session.query(DovutoTransition)}
        rejected = [(r.row_number, r.code) for r in session.query(ImportRejection).order_by(ImportRejection.row_number)]
    assert sorted(dovuti) == ["A-1", "A-2", "A-3", "A-4"]
    generated = [dovuti[iud].iuv for iud in ("A-1", "A-3", "A-4")]
    assert len(set(generated)) == 3 and all(is_valid_check_digits(iuv) for iuv in generated)
    assert dovuti["A-2"].iuv is None and dovuti["A-1"].iuv_generated and not dovuti["A-2"].iuv_generated
    assert generated[2] > generated[1] > generated[0]
    assert [d.notice_number for d in dovuti.values() if d.iuv] == ["3" + d.iuv for d in dovuti.values() if d.iuv]
    numbers = {"A-1": 1, "A-2": 3, "A-3": 4, "A-4": 7}
    assert {iud: reasons[d.id] for iud, d in dovuti.items()} == \
        {iud: f"import flusso X riga {n}" for iud, n in numbers.items()}
    assert rejected == [(2, "PAA_IMPORT_IUD_DUPLICATO"), (5, "PAA_IMPORT_SINTASSI_CSV"),
                        (6, "PAA_IMPORT_IUD_DUPLICATO")]  # A-1 already loaded by this flow
    assert [line.split(";")[1] for line in results[0].iuv_lines] == [generated[0], "", generated[1]]


# --- the export's binary COPY stream and its edge cases -------------------------------------------------

def _binary_copy(values: list[bytes]) -> bytes:
    from gateway.flussi.copy_binary import SIGNATURE

    rows = b"".join(b"\x00\x01" + len(v).to_bytes(4, "big") + v for v in values)
    return SIGNATURE + bytes(8) + rows + b"\xff\xff"


def test_binary_copy_values_whatever_the_cut_of_the_stream() -> None:
    from gateway.flussi.copy_binary import CopyFormatError, values

    lines = [b'"a";"b"\n', b"", b'"x\ny"\n' * 50, b"\x00\x01\xff\xff"]
    stream = _binary_copy(lines)
    header = stream[:19]
    as_sent = [header + stream[19:19 + 6 + len(lines[0]) + 0]]  # PostgreSQL: the header rides with row one
    position = 19 + 6 + len(lines[0])
    for line in lines[1:]:
        as_sent.append(stream[position:position + 6 + len(line)])
        position += 6 + len(line)
    as_sent.append(stream[position:])
    assert b"".join(as_sent) == stream
    assert [bytes(v) for v in values(memoryview(c) for c in as_sent)] == lines
    rng = random.Random(5)
    for _ in range(200):  # any other cut
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, 12)))
        pieces = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]
        assert [bytes(v) for v in values(pieces)] == lines
    for broken in (stream[:-2], stream[:30], b"not a copy", stream + b"\x00\x01",
                   _binary_copy([]).replace(b"\xff\xff", b"\x00\x01\xff\xff\xff\xff\xff\xff")):
        with pytest.raises(CopyFormatError):
            list(values([broken]))


@pytest.mark.postgres
def test_postgres_export_in_small_blocks_with_every_kind_of_payer(request: pytest.FixtureRequest,
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Payer as SQL NULL, JSON null, {} and with odd values; blocks of a few rows (the reading thread)."""
    from sqlalchemy import text

    from gateway.flussi import exporter

    with _seeded_database(request, tmp_path) as (database, demo, settings):
        with database.transaction() as session:
            session.execute(text("UPDATE receipt SET payer = CASE id % 4 WHEN 0 THEN NULL WHEN 1 THEN 'null'::json "
                                 "WHEN 2 THEN '{}'::json ELSE json_build_object('name', '\"q\"; x', 'city', "
                                 "'=1+2', 'email', E'a\\\\b\\nc', 'type', 'F', 'other', 'ignored') END"))
        monkeypatch.setattr(exporter, "CHUNK", 700)  # a handful of rows per block
        counted, counted_slow, fast, slow = _export_both_ways(database, settings, demo, tmp_path, "1.3", True)
        assert counted == counted_slow == 60
        assert fast == slow
        assert b'"""q""; x"' in fast and b"\"'=1+2\"" in fast


def _reference_lines(data: bytes) -> list[str]:
    """The line-by-line reader the import used before csvlines: TextIOWrapper, strict utf-8-sig, newline=""."""
    out: list[str] = []
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", errors="strict", newline="")
    try:
        for line in text:
            out.append(line.rstrip("\r\n"))
    except UnicodeDecodeError:
        out.append("<error>")
    return out


def _block_lines(data: bytes, block: int) -> list[str]:
    out: list[str] = []
    try:
        for lines in csvlines.line_blocks(io.BufferedReader(io.BytesIO(data)), block):
            out += lines
    except UnicodeDecodeError:
        out.append("<error>")
    return out


def test_line_blocks_give_the_lines_of_the_text_reader_whatever_the_block_size() -> None:
    rng = random.Random(11)
    alphabet = [b"a", b";", b" ", b"\n", b"\r", b"\r\n", "\u00e8".encode(), "\u20ac".encode(), codecs.BOM_UTF8]
    for i in range(20000):
        parts = [rng.choice(alphabet) for _ in range(rng.randint(0, 12))]
        if i % 3 == 0:
            parts.insert(0, codecs.BOM_UTF8)
        if i % 10 == 0:
            parts.insert(rng.randint(0, len(parts)), rng.choice([b"\xff", b"\xc3"]))
        data = b"".join(parts)
        expected = _reference_lines(data)
        for block in (1, 2, 3, 7, 1 << 20):
            got = _block_lines(data, block)
            if expected[-1:] == ["<error>"]:
                # Both fail; the block reader may give a few more whole lines before the bad bytes.
                assert got[-1] == "<error>", (data, block)
            else:
                assert got == expected, (data, block)


def test_row_batches_number_non_blank_rows_and_resume_after_skip(tmp_path: Path) -> None:
    from gateway.flussi.importer import row_batches, scan

    lines = ["h1;h2"] + [("" if n % 7 == 0 else "  " if n % 11 == 0 else f"r{n};x") for n in range(1, 400)]
    path = tmp_path / "flow.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("flow.csv", "\r\n".join(lines) + "\r\n")
    rows = [line for line in lines[1:] if line.strip()]
    expected = list(enumerate(rows, 1))
    assert scan(path, "flow.csv", 2) == ("h1;h2", len(rows))
    for skip in (0, 1, 50, len(rows) - 1, len(rows)):
        for size in (1, 7, 1000):
            batches = list(row_batches(path, "flow.csv", skip, size))
            assert all(len(batch) == size for batch in batches[:-1])
            assert [row for batch in batches for row in batch] == expected[skip:]
