"""Allocating IUVs from the per-ente database counter, atomically in the caller's transaction.

One ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` bumps the counter row: on PostgreSQL the row lock
it takes holds every concurrent allocator of the same ente until the caller commits (or rolls back,
which gives the number back); on SQLite the transaction already holds the write lock (BEGIN IMMEDIATE).
Either way no two transactions ever read the same value, whatever the number of processes.
"""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.payments.iuv import (AUX_DIGIT_IUV15, GENERATED_IUV_MARKER, MAX_PROGRESSIVE, IuvError, check_digits,
                                  make_iuv17, notice_number)
from storage.models import Ente, IuvCounter

KIND_IUV17 = "IUV17"
KIND_IUV15 = "IUV15"


class IuvAllocationError(IuvError):
    """The ente cannot get a generated IUV (missing codes, counter exhausted)."""


def next_progressive(session: Session, ente_id: int, kind: str) -> int:
    """Increment and return the (ente, kind) counter; the first value handed out is 1."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = IuvCounter.__table__
    statement = (insert(table).values(ente_id=ente_id, kind=kind, value=1)
                 .on_conflict_do_update(index_elements=[table.c.ente_id, table.c.kind],
                                        set_={"value": table.c.value + 1})
                 .returning(table.c.value))
    return int(session.execute(statement).scalar_one())


def make_iuv15(application_code: str, progressive: int) -> str:
    """A generated aux-digit-0 IUV: "00" + progressive (11 digits) + mod-93 check digits.

    The check digits cover aux digit + application code + the first 13 IUV digits (pagoPA rule); the
    leading "00" keeps generated IUVs apart from ente-supplied ones, which may not start with 00.
    """
    if not 1 <= progressive <= MAX_PROGRESSIVE:
        raise IuvAllocationError(f"IUV15 counter out of range: {progressive}")
    base = f"{GENERATED_IUV_MARKER}{progressive:011d}"
    return base + check_digits(AUX_DIGIT_IUV15, application_code + base)


def allocate_iuv(session: Session, ente: Ente) -> tuple[str, str]:
    """A new IUV of ``ente`` and its 18-digit notice number.

    Aux digit 3: MyPay's IUV17 from the segregation code. Aux digit 0: a 15-digit IUV (see make_iuv15)
    whose notice number carries the application code.
    """
    if ente.aux_digit == AUX_DIGIT_IUV15:
        code = ente.application_code
        if not code or len(code) != 2 or not code.isdigit():
            raise IuvAllocationError(f"ente {ente.cod_ipa} has no application code for IUV15")
        iuv = make_iuv15(code, next_progressive(session, ente.id, KIND_IUV15))
        return iuv, notice_number(iuv, code)
    if not ente.segregation_code:
        raise IuvAllocationError(f"ente {ente.cod_ipa} has no segregation code for IUV17")
    progressive = next_progressive(session, ente.id, KIND_IUV17)
    try:
        iuv = make_iuv17(ente.segregation_code, progressive)
    except IuvError as exc:
        raise IuvAllocationError(str(exc)) from exc
    return iuv, notice_number(iuv)
