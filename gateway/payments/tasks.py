"""Periodic housekeeping of payment attempts: expire spent modello-3 tokens, free legacy positions left hanging.

Registered in gateway.worker.PERIODIC (run every 30 s by the worker).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, or_, select, update

from gateway import logs, worker
from gateway.payments import receipts, states
from storage.db import Database
from storage.models import Dovuto, PaymentAttempt
from storage.types import utcnow

log = logs.get_logger(__name__)

# A legacy RPT attempt is released by this task only if the recovery job never looked at it and it expired
# this long ago: the RT (or nodoChiediCopiaRT) has had every chance to arrive. A late RT is still accepted.
LEGACY_GRACE = timedelta(hours=24)
RPT_LIFETIME = timedelta(minutes=30)  # for attempts recorded without expires_at
BATCH = 200


def release_stale_attempts(database: Database) -> tuple[int, int]:
    """Mark spent payment tokens EXPIRED; free PAGAMENTO_INIZIATO dovuti of forgotten RPT attempts.

    Returns (attempts expired, dovuti released). Idempotent and safe with several workers: every change is
    conditional on the state it replaces.
    """
    now = utcnow()
    with database.transaction() as session:
        expired = session.execute(
            update(PaymentAttempt)
            .where(PaymentAttempt.model == "psp", PaymentAttempt.state == receipts.ATTEMPT_STARTED,
                   PaymentAttempt.expires_at < now)
            .values(state=receipts.ATTEMPT_EXPIRED, updated_at=now)).rowcount or 0
    released = 0
    with database.transaction() as session:
        stale = session.scalars(
            select(PaymentAttempt)
            .where(PaymentAttempt.model == "rpt", PaymentAttempt.state == receipts.ATTEMPT_STARTED,
                   PaymentAttempt.next_check_at.is_(None), PaymentAttempt.checks == 0,
                   or_(PaymentAttempt.expires_at < now - LEGACY_GRACE,
                       and_(PaymentAttempt.expires_at.is_(None),
                            PaymentAttempt.created_at < now - LEGACY_GRACE - RPT_LIFETIME)))
            .order_by(PaymentAttempt.id).limit(BATCH).with_for_update(skip_locked=True)).all()
        for attempt in stale:
            attempt.state = receipts.ATTEMPT_EXPIRED
            query = select(Dovuto).where(Dovuto.state == states.PAGAMENTO_INIZIATO).with_for_update()
            if attempt.dovuto_id is not None:
                query = query.where(Dovuto.id == attempt.dovuto_id)
            else:
                query = query.where(Dovuto.ente_id == attempt.ente_id, Dovuto.iuv == attempt.iuv)
            for dovuto in session.scalars(query):
                states.move_dovuto(session, dovuto, states.INSERIMENTO_DOVUTO, actor="release_stale_attempts",
                                   reason=f"tentativo RPT {attempt.ccp} scaduto senza RT")
                released += 1
    if expired or released:
        log.info("stale payment attempts", expired=expired, released=released)
    return expired, released


if release_stale_attempts not in worker.PERIODIC:
    worker.PERIODIC.append(release_stale_attempts)
