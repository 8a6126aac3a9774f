"""Periodic work: payable dovuti whose tipo makes the due date binding move to SCADUTO once it has passed.

Registered in gateway.worker.PERIODIC on import (gateway.payments.tasks imports this module).
"""

from __future__ import annotations

from sqlalchemy import select

from gateway import logs, worker
from gateway.payments import states
from gateway.payments.positions import today_rome
from storage.db import Database
from storage.models import Dovuto, TipoDovuto

log = logs.get_logger(__name__)

BATCH = 500


def expire_dovuti(database: Database, *, batch: int = BATCH, ente_id: int | None = None) -> int:
    """Move overdue payable dovuti (of every ente, or of ``ente_id``) to SCADUTO in short transactions.

    Returns how many moved.
    """
    moved = 0
    today = today_rome()
    while True:
        with database.transaction() as session:
            query = (select(Dovuto).join(TipoDovuto, Dovuto.tipo_dovuto_id == TipoDovuto.id)
                     .where(Dovuto.state == states.INSERIMENTO_DOVUTO, TipoDovuto.due_date_required.is_(True),
                            Dovuto.due_date.is_not(None), Dovuto.due_date < today))
            if ente_id is not None:
                query = query.where(Dovuto.ente_id == ente_id)
            # SKIP LOCKED: a position being paid or modified right now is left for the next round.
            rows = session.scalars(query.order_by(Dovuto.id).limit(batch)
                                   .with_for_update(skip_locked=True, of=Dovuto)).all()
            for dovuto in rows:
                states.move_dovuto(session, dovuto, states.SCADUTO, reason="data di scadenza superata",
                                   actor="expiry")
        moved += len(rows)
        if len(rows) < batch:
            break
    if moved:
        log.info("dovuti expired", count=moved)
    return moved


if expire_dovuti not in worker.PERIODIC:
    worker.PERIODIC.append(expire_dovuti)
