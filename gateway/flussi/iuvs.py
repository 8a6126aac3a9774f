"""Generated IUVs for one import batch: the ente's counter locked once, read once and written once.

Hands out exactly what gateway.payments.iuv_allocator.allocate_iuv would, call after call in the same
transaction (same counter row, same layouts and errors), for one round trip at the first need and one at
the end instead of one per row. The row lock taken at the first need is held until the batch commits, so
a concurrent allocator waits and then counts on from our final value.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.payments.iuv import IuvError, make_iuv17, notice_number
from gateway.payments.iuv_allocator import KIND_IUV15, KIND_IUV17, IuvAllocationError, make_iuv15
from storage.models import Ente, IuvCounter


class IuvBlock:
    def __init__(self, session: Session, ente: Ente) -> None:
        self.session = session
        self.ente = ente
        self.kind: str | None = None
        self.start = 0  # the counter's value when first locked
        self.used = 0

    def _open(self) -> None:
        ente = self.ente
        if ente.aux_digit == "0":
            code = ente.application_code
            if not code or len(code) != 2 or not code.isdigit():
                raise IuvAllocationError(f"ente {ente.cod_ipa} has no application code for IUV15")
            self.kind = KIND_IUV15
        else:
            if not ente.segregation_code:
                raise IuvAllocationError(f"ente {ente.cod_ipa} has no segregation code for IUV17")
            self.kind = KIND_IUV17
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        table = IuvCounter.__table__
        # A no-op upsert: it creates the row if missing and, on PostgreSQL, locks it either way.
        statement = (insert(table).values(ente_id=ente.id, kind=self.kind, value=0)
                     .on_conflict_do_update(index_elements=[table.c.ente_id, table.c.kind],
                                            set_={"value": table.c.value})
                     .returning(table.c.value))
        self.start = int(self.session.execute(statement).scalar_one())

    def next(self) -> tuple[str, str]:
        """The next IUV and its notice number, as allocate_iuv would return them."""
        if self.kind is None:
            self._open()
        self.used += 1
        progressive = self.start + self.used
        ente = self.ente
        if self.kind == KIND_IUV15:
            code = ente.application_code or ""
            iuv = make_iuv15(code, progressive)
            return iuv, notice_number(iuv, code)
        try:
            iuv = make_iuv17(ente.segregation_code or "", progressive)
        except IuvError as exc:
            raise IuvAllocationError(str(exc)) from exc
        return iuv, notice_number(iuv)

    def close(self) -> None:
        """Write the counter back; nothing to do when no IUV was handed out."""
        if self.used:
            self.session.execute(update(IuvCounter).where(IuvCounter.ente_id == self.ente.id,
                                                          IuvCounter.kind == self.kind)
                                 .values(value=self.start + self.used))
