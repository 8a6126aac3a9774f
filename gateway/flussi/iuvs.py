"""Generated IUVs for one import batch, in one or two round trips instead of one per row.

IuvBlock (SQLite; rows decided one by one): the ente's counter locked once, read once and written once. It
hands out exactly what gateway.payments.iuv_allocator.allocate_iuv would, call after call in the same
transaction (same counter row, same layouts and errors), for one round trip at the first need and one at
the end instead of one per row. The row lock taken at the first need is held until the batch commits, so
a concurrent allocator waits and then counts on from our final value.

IuvReservation (PostgreSQL, rows decided inside the batch's COPY stream): the counter moved once, before
the rows are decided, by an upper bound of what they need; unused IUVs are gaps.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.payments.iuv import IuvError, make_iuv17, notice_number
from gateway.payments.iuv_allocator import KIND_IUV15, KIND_IUV17, IuvAllocationError, make_iuv15
from storage.models import Ente, IuvCounter


def _kind(ente: Ente) -> str:
    """The counter an ente's generated IUVs come from, or IuvAllocationError when it lacks the codes."""
    if ente.aux_digit == "0":
        code = ente.application_code
        if not code or len(code) != 2 or not code.isdigit():
            raise IuvAllocationError(f"ente {ente.cod_ipa} has no application code for IUV15")
        return KIND_IUV15
    if not ente.segregation_code:
        raise IuvAllocationError(f"ente {ente.cod_ipa} has no segregation code for IUV17")
    return KIND_IUV17


class IuvBlock:
    def __init__(self, session: Session, ente_id: int) -> None:
        self.session = session
        self.ente_id = ente_id
        self.ente: Ente | None = None  # loaded at the first need: most batches generate no IUV
        self.kind: str | None = None
        self.start = 0  # the counter's value when first locked
        self.used = 0

    def load(self) -> Ente:
        if self.ente is None:
            self.ente = self.session.get(Ente, self.ente_id)
            assert self.ente is not None
        return self.ente

    def _open(self) -> None:
        self.kind = _kind(self.load())
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        table = IuvCounter.__table__
        # A no-op upsert: it creates the row if missing and, on PostgreSQL, locks it either way.
        statement = (insert(table).values(ente_id=self.ente.id, kind=self.kind, value=0)
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
        ente = self.load()
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
            self.session.execute(update(IuvCounter).where(IuvCounter.ente_id == self.ente_id,
                                                          IuvCounter.kind == self.kind)
                                 .values(value=self.start + self.used))


class IuvReservation:
    """PostgreSQL: ``count`` generated IUVs of one batch reserved by one counter upsert before its COPY starts.

    The batch's COPY stream cannot query the database, so the counter moves by an upper bound of what the
    batch may need, up front; what the rows do not use stays a gap (pagoPA needs unique IUVs, not
    contiguous ones). The upsert's row lock is held until the batch commits, and the counter commits
    together with the dovuti that carry its IUVs, so a crash rolls both back and no IUV is ever handed
    out twice. IUVs, check digits and errors are allocate_iuv's; an ente that cannot get IUVs raises at
    the first row that needs one, as IuvBlock does, and leaves the counter alone.
    """

    def __init__(self, session: Session, ente_id: int, count: int) -> None:
        self.block = IuvBlock(session, ente_id)
        self.error: IuvAllocationError | None = None
        self.limit = count
        if not count:
            return
        try:
            self.block.kind = _kind(self.block.load())
        except IuvAllocationError as exc:
            self.error = exc  # raised where a row needs an IUV, not before
            return
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        table = IuvCounter.__table__
        statement = (insert(table).values(ente_id=ente_id, kind=self.block.kind, value=count)
                     .on_conflict_do_update(index_elements=[table.c.ente_id, table.c.kind],
                                            set_={"value": table.c.value + count})
                     .returning(table.c.value))
        self.block.start = int(session.execute(statement).scalar_one()) - count

    def next(self) -> tuple[str, str]:
        """The next reserved IUV and its notice number."""
        if self.error is not None:
            raise self.error
        if self.block.used >= self.limit:
            raise RuntimeError("more generated IUVs needed than reserved")  # a bug in the caller's bound
        return self.block.next()

    def close(self) -> None:
        """Nothing to write: the counter already stands past every reserved IUV."""
