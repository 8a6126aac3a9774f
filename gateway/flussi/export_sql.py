"""The paid export's CSV lines made by PostgreSQL: ``COPY (SELECT line …) TO STDOUT (FORMAT binary)``.

The SELECT gives, for every row, the whole line exporter.csv_line(exporter.paid_row(…)) gives in Python (same
formula neutralising, Europe/Rome times, two-decimal amounts, one-line base64, every field quoted, quotes doubled,
``\\n``), so the server formats while the worker only compresses: the Python path stays for SQLite and is the
reference the two are tested against.

Why it is shaped this way (1M rows, measured): one pre-assembled text column per row (one concat_ws) costs the
server one output call instead of seventy, and the binary COPY format needs no quoting pass at all; the line
is computed *before* the ORDER BY (rows keep exporter.paid_query's order: receipt, then payment index), in the
same query block, so that PostgreSQL's parallel workers format and sort their shares and the leader only merges
finished lines (formatting above an ordered subquery ran in the leader alone). The payer JSON is parsed once
per row by a lateral json_to_record (a ``::jsonb`` cast in a flattened query is re-evaluated for every reference).
"""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import Date, Select, String, Text, case, cast, column, func, literal, text, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from storage.models import Ente, ExportFlow, Receipt

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # tracciati.neutralise
# Listed twice on purpose: from nine entries PostgreSQL tests an IN list by one hash lookup instead of one
# comparison per entry, and the test runs for some forty fields of every row.
_FORMULA_CODES = [ord(c) for c in _FORMULA_START] * 2
_PAYER_KEYS = ("type", "code", "name", "address", "civic", "postal_code", "city", "province", "country", "email")
OPTIONS = "FORMAT binary"
_MAX_ARGS = 100  # PostgreSQL's limit on a function's arguments (concat_ws included)
_SEPARATOR = '";"'

# A field of the line: a str is a constant known in Python (already neutralised where the Python side does);
# an SQL expression is either escaped text (_text) or a value that cannot hold a quote (_plain). NULL -> "".
Field = str | ColumnElement


def _text(expr: Any) -> ColumnElement:
    """A leading = + - @ TAB CR gets an apostrophe (tracciati.neutralise), then quotes are doubled.

    ascii() of the first character (0 for "", NULL for NULL) is the cheapest test PostgreSQL has: this
    expression runs for some forty columns of every row. replace() hands back its input when there is no quote.
    """
    value = cast(expr, Text)
    neutralised = case((func.ascii(value).in_(_FORMULA_CODES), literal("'", String) + value), else_=value)
    return func.replace(neutralised, '"', '""')


def _plain(expr: Any) -> ColumnElement:
    """Digits, dates, base64: nothing to neutralise or escape."""
    return cast(expr, Text)


def _amount(expr: Any) -> ColumnElement:
    return _plain(func.round(expr, 2))


def _or(*values: Any) -> ColumnElement:
    """Python's ``a or b or …``: the first value neither NULL nor empty."""
    return func.coalesce(*[func.nullif(value, "") for value in values])


def csv_line(fields: Sequence[Field]) -> ColumnElement:
    """``"f1";"f2";…"\n`` by one concat_ws(): runs of constants are merged into one literal in Python.

    concat_ws would skip a NULL argument (and its separator), so every value is coalesced to "".
    """
    args: list[ColumnElement] = []
    constants: list[str] = []
    for field in fields:
        if isinstance(field, str):
            constants.append(field.replace('"', '""'))
            continue
        if constants:
            args.append(literal(_SEPARATOR.join(constants), String))
            constants = []
        args.append(func.coalesce(field, ""))
    if constants:
        args.append(literal(_SEPARATOR.join(constants), String))
    while len(args) >= _MAX_ARGS:  # nested, never needed by today's widest line (some 50 arguments)
        args = [func.concat_ws(_SEPARATOR, *args[:_MAX_ARGS - 1])] + args[_MAX_ARGS - 1:]
    return literal('"', String) + func.concat_ws(_SEPARATOR, *args) + literal('"\n', String)


def _payer() -> Any:
    """The receipt's payer (versante) as columns, parsed once; NULL, JSON null or a non-object give NULLs."""
    document = case((func.json_typeof(Receipt.payer) == "object", Receipt.payer))
    return (func.json_to_record(document)
            .table_valued(*[column(key, Text) for key in _PAYER_KEYS])
            .render_derived(name="payer_fields", with_types=True))


def paid_select(flow: ExportFlow, ente: Ente, query: Select, station: str, ente_name: str) -> Select:
    """``query`` (exporter.paid_query: its filters, joins and ORDER BY) selecting one finished CSV line per row.

    ``ente_name`` comes already neutralised (csv_fields.text), as it does for the Python formatter.
    """
    (iuf, iud, iuv, receipt_id, paid_at, ccp, psp_id, psp_name, _payer_json, esito, total, fee, tipo_firma, index,
     iur, amount, outcome_date, causale, dsr, p_type, p_code, p_name, p_address, p_civic, p_cap, p_city, p_prov,
     p_country, p_email, d_causale, d_dsr, bilancio, tipo, *rest) = list(query.selected_columns)
    payer = _payer()
    empty8 = [""] * 8
    fields: list[Field] = [
        _text(iuf), "", _text(iud), _text(iuv), "6.2.0", ente.fiscal_code, station, _text(receipt_id),
        _plain(func.to_char(paid_at, 'YYYY-MM-DD"T"HH24:MI:SS')), "", _plain(cast(paid_at, Date)), "G",
        _text(psp_id), _text(psp_name), *empty8, "G", ente.fiscal_code, ente_name, *empty8,
        *[_text(payer.c[key]) for key in _PAYER_KEYS],
        _text(p_type), _text(p_code), _text(p_name), _text(p_address), _text(p_civic), _text(p_cap), _text(p_city),
        _text(func.left(p_prov, 2)), _text(p_country), _text(p_email),
        _plain(func.coalesce(_or(esito), "0")), _amount(total), _text(iuv), _text(ccp), _amount(amount), "ESEGUITO",
        _plain(outcome_date), _text(iur),
        _text(func.left(func.coalesce(_or(causale, d_causale), ""), 1024)), _text(_or(dsr, d_dsr)), _text(tipo)]
    if flow.with_receipts:
        (raw,) = rest
        encoded = func.translate(func.encode(raw, "base64"), "\n", "")
        fields += [_text(tipo_firma), _plain(case((func.length(raw) > 0, encoded), else_="")),
                   _plain(func.coalesce(func.nullif(index, 0), 1)), _amount(fee), "", ""]
    if flow.version in ("1.2", "1.3"):
        fields.append(_text(bilancio))
    if flow.version == "1.3":
        fields += ["", "", ""]
    return query.outerjoin(payer, true()).with_only_columns(csv_line(fields).label("line"))


# What the statement relies on, for its transaction only: times in Europe/Rome and dates as YYYY-MM-DD without
# a call per value (to_char and timezone() were some 7% of the server's time), no JIT (compiling the wide
# line expression in every parallel worker cost 1-3 s more than it saved on 1M rows), and the memory of each
# sorting process (leader and parallel workers: beyond it the sort spills; 256MB measured no faster).
SESSION = ("SET LOCAL TimeZone = 'Europe/Rome'", "SET LOCAL DateStyle = 'ISO, YMD'", "SET LOCAL jit = off",
           "SET LOCAL work_mem = '64MB'")


def prepare(session: Session) -> None:
    """Set, in the open transaction, what the statement relies on (SESSION)."""
    for statement in SESSION:
        session.execute(text(statement))


def copy_statement(session: Session, query: Select) -> tuple[str, dict[str, Any]]:
    """``COPY (query) TO STDOUT`` for psycopg, with the query's parameters (merged client-side by psycopg)."""
    compiled = query.compile(dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True})
    return f"COPY ({compiled.string}) TO STDOUT WITH ({OPTIONS})", dict(compiled.params)
