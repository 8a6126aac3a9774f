"""The paid export's CSV rows made by PostgreSQL: ``COPY (SELECT …) TO STDOUT`` in CSV, every field quoted.

The SELECT gives, column for column, the text exporter.paid_row gives in Python (same formula neutralising,
Europe/Rome times, two-decimal amounts, one-line base64), so the server formats and quotes while the worker
only compresses: the Python path stays for SQLite and is the reference the two are tested against.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, String, Text, case, cast, func, literal, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from storage.models import Ente, ExportFlow

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # tracciati.neutralise
_PAYER_KEYS = ("type", "code", "name", "address", "civic", "postal_code", "city", "province", "country", "email")
OPTIONS = "FORMAT csv, DELIMITER ';', FORCE_QUOTE *"  # MyPay's writer: `;`, every field in quotes


_FORMULA_CODES = [ord(c) for c in _FORMULA_START]


def _text(expr: Any) -> ColumnElement:
    """None -> "", a leading = + - @ TAB CR gets an apostrophe (tracciati.neutralise).

    ascii() of the first character (0 for "", NULL for NULL) is the cheapest test PostgreSQL has: this
    expression runs for some forty columns of every row.
    """
    value = cast(expr, Text)
    return case((func.ascii(value).in_(_FORMULA_CODES), literal("'", String) + value),
                else_=func.coalesce(value, ""))


def _raw(expr: Any) -> ColumnElement:
    return func.coalesce(cast(expr, Text), "")


def _amount(expr: Any) -> ColumnElement:
    return func.coalesce(cast(func.round(expr, 2), Text), "")


def _constant(value: str) -> ColumnElement:
    return literal(value, String)


def _or(*values: Any) -> ColumnElement:
    """Python's ``a or b or …``: the first value neither NULL nor empty."""
    return func.coalesce(*[func.nullif(value, "") for value in values])


def paid_select(flow: ExportFlow, ente: Ente, query: Select, station: str, ente_name: str) -> Select:
    """The formatted columns over ``query`` (exporter.paid_query: its columns, in paid_row's order).

    The ordered query is a subquery kept whole by OFFSET 0, so the server sorts the narrow raw rows and
    formats each once afterwards (formatting first would sort wide text rows, on disk beyond work_mem);
    a scan of an ordered subquery keeps its order.
    """
    # The payer JSON parsed once per row (jsonb), not once for each of its ten columns.
    inner = [cast(column, JSONB).label("payer") if column.name == "payer" else column
             for column in query.selected_columns]
    source = query.with_only_columns(*inner).offset(0).subquery("paid")
    (iuf, iud, iuv, receipt_id, paid_at, ccp, psp_id, psp_name, payer, esito, total, fee, tipo_firma, index, iur,
     amount, outcome_date, causale, dsr, p_type, p_code, p_name, p_address, p_civic, p_cap, p_city, p_prov,
     p_country, p_email, d_causale, d_dsr, bilancio, tipo, *rest) = list(source.c)
    local = func.timezone("Europe/Rome", paid_at)
    empty8 = [_constant("")] * 8
    columns = [_text(iuf), _constant(""), _text(iud), _text(iuv), _constant("6.2.0"), _constant(ente.fiscal_code),
               _constant(station), _text(receipt_id), _raw(func.to_char(local, 'YYYY-MM-DD"T"HH24:MI:SS')),
               _constant(""), _raw(func.to_char(local, "YYYY-MM-DD")), _constant("G"), _text(psp_id),
               _text(psp_name), *empty8, _constant("G"), _constant(ente.fiscal_code), _constant(ente_name),
               *empty8, *[_text(payer[key].as_string()) for key in _PAYER_KEYS],
               _text(p_type), _text(p_code), _text(p_name), _text(p_address), _text(p_civic), _text(p_cap),
               _text(p_city), _text(func.left(p_prov, 2)), _text(p_country), _text(p_email),
               func.coalesce(_or(esito), "0"), _amount(total), _text(iuv), _text(ccp), _amount(amount),
               _constant("ESEGUITO"), _raw(func.to_char(outcome_date, "YYYY-MM-DD")), _text(iur),
               _text(func.left(func.coalesce(_or(causale, d_causale), ""), 1024)), _text(_or(dsr, d_dsr)),
               _text(tipo)]
    if flow.with_receipts:
        (raw,) = rest
        encoded = func.translate(func.encode(raw, "base64"), "\n", "")
        columns += [_text(tipo_firma), case((func.length(raw) > 0, encoded), else_=""),
                    cast(func.coalesce(func.nullif(index, 0), 1), Text), _amount(fee), _constant(""),
                    _constant("")]
    if flow.version in ("1.2", "1.3"):
        columns.append(_text(bilancio))
    if flow.version == "1.3":
        columns += [_constant("")] * 3
    return select(*columns).select_from(source)


def copy_statement(session: Session, query: Select) -> tuple[str, dict[str, Any]]:
    """``COPY (query) TO STDOUT`` for psycopg, with the query's parameters (merged client-side by psycopg)."""
    compiled = query.compile(dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True})
    return f"COPY ({compiled.string}) TO STDOUT WITH ({OPTIONS})", dict(compiled.params)
