"""The state machine of a dovuto and of a carrello, written down once.

Dovuto (a debt position):

    INSERIMENTO_DOVUTO ──start──▶ PAGAMENTO_INIZIATO ──receipt OK──▶ COMPLETATO
          │  ▲                        │
          │  └──── refused / abandoned / token expired (payable again)
          ├──annul──▶ ANNULLATO
          └──due date passed (tipo requires it)──▶ SCADUTO

A receipt is never refused because of the state: a receipt for an ANNULLATO or SCADUTO position (or an
already COMPLETATO one, through another payment) still completes or flags it, see ``receipts``.
Every change writes a ``dovuto_transition`` row: when, from, to, why, who.

Carrello (a payment session): PREDISPOSTO → PAGAM_IN_CORSO → PAGATO | NON_PAGATO | PARZ_PAGATO |
DECORR_TERM | ABORT (abandoned) | SCADUTO.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from storage.models import Carrello, Dovuto, DovutoTransition
from storage.types import utcnow

INSERIMENTO_DOVUTO = "INSERIMENTO_DOVUTO"
PAGAMENTO_INIZIATO = "PAGAMENTO_INIZIATO"
COMPLETATO = "COMPLETATO"
ANNULLATO = "ANNULLATO"
SCADUTO = "SCADUTO"

PAYABLE = frozenset({INSERIMENTO_DOVUTO})
OPEN = frozenset({INSERIMENTO_DOVUTO, PAGAMENTO_INIZIATO})
FINAL = frozenset({COMPLETATO, ANNULLATO})

DOVUTO_TRANSITIONS: dict[str, frozenset[str]] = {
    INSERIMENTO_DOVUTO: frozenset({PAGAMENTO_INIZIATO, COMPLETATO, ANNULLATO, SCADUTO}),
    PAGAMENTO_INIZIATO: frozenset({INSERIMENTO_DOVUTO, COMPLETATO, SCADUTO}),
    SCADUTO: frozenset({COMPLETATO, INSERIMENTO_DOVUTO}),  # a late receipt, or the ente extends the due date
    ANNULLATO: frozenset({COMPLETATO}),  # a receipt for an annulled position is kept (and flagged)
    COMPLETATO: frozenset(),
}

# Carrello states (MyPay's names, as ChiediPagati maps them to faults).
NUOVO_CARRELLO = "NUOVO_CARRELLO"
PREDISPOSTO = "PREDISPOSTO"
PAGAM_IN_CORSO = "PAGAM_IN_CORSO"
PAGATO = "PAGATO"
NON_PAGATO = "NON_PAGATO"
PARZ_PAGATO = "PARZ_PAGATO"
DECORR_TERM = "DECORR_TERM"
DECORR_TERM_PARZ = "DECORR_TERM_PARZ"
ABORT = "ABORT"
CART_SCADUTO = "SCADUTO"

CART_FINAL = frozenset({PAGATO, NON_PAGATO, PARZ_PAGATO, DECORR_TERM, DECORR_TERM_PARZ, ABORT, CART_SCADUTO})
CART_TRANSITIONS: dict[str, frozenset[str]] = {
    NUOVO_CARRELLO: frozenset({PREDISPOSTO, PAGAM_IN_CORSO, CART_SCADUTO}),
    PREDISPOSTO: frozenset({PAGAM_IN_CORSO, ABORT, CART_SCADUTO, PAGATO, NON_PAGATO}),
    PAGAM_IN_CORSO: frozenset({PAGATO, NON_PAGATO, PARZ_PAGATO, DECORR_TERM, DECORR_TERM_PARZ, ABORT,
                               CART_SCADUTO, PREDISPOSTO}),
    # Receipts may arrive after the session was given up: the truth of the receipt wins.
    ABORT: frozenset({PAGATO, PARZ_PAGATO, NON_PAGATO}),
    CART_SCADUTO: frozenset({PAGATO, PARZ_PAGATO, NON_PAGATO}),
    NON_PAGATO: frozenset({PAGATO, PARZ_PAGATO}),
    DECORR_TERM: frozenset({PAGATO, PARZ_PAGATO}),
    PARZ_PAGATO: frozenset({PAGATO}),
    DECORR_TERM_PARZ: frozenset({PAGATO, PARZ_PAGATO}),
    PAGATO: frozenset(),
}

# Human descriptions (ChiediEsitoCarrelloDovuti answers the state *description*, as MyPay does).
CART_DESCRIPTIONS = {
    NUOVO_CARRELLO: "Nuovo carrello", PREDISPOSTO: "Predisposto", PAGAM_IN_CORSO: "Pagamento in corso",
    PAGATO: "Pagato", NON_PAGATO: "Non pagato", PARZ_PAGATO: "Parzialmente pagato",
    DECORR_TERM: "Decorrenza termini", DECORR_TERM_PARZ: "Decorrenza termini parziale", ABORT: "Annullato",
    CART_SCADUTO: "Scaduto",
}


class IllegalTransition(ValueError):
    """A state change the machine does not allow (a bug, or a race lost to another process)."""


def move_dovuto(session: Session, dovuto: Dovuto, to_state: str, *, reason: str, actor: str = "gateway") -> bool:
    """Apply a transition and audit it; False (and nothing written) when already in ``to_state``."""
    current = dovuto.state
    if current == to_state:
        return False
    if to_state not in DOVUTO_TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(f"dovuto {dovuto.id}: {current} -> {to_state} not allowed")
    now = utcnow()
    dovuto.state = to_state
    if to_state == PAGAMENTO_INIZIATO:
        dovuto.payment_started_at = now
    elif to_state == COMPLETATO:
        dovuto.paid_at = dovuto.paid_at or now
    session.add(DovutoTransition(dovuto=dovuto, from_state=current, to_state=to_state, at=now,
                                 reason=reason[:255], actor=actor[:64]))
    return True


def move_carrello(carrello: Carrello, to_state: str) -> bool:
    current = carrello.state
    if current == to_state:
        return False
    if to_state not in CART_TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(f"carrello {carrello.id}: {current} -> {to_state} not allowed")
    carrello.state = to_state
    if to_state in CART_FINAL:
        carrello.outcome_at = utcnow()
    return True


def record_creation(session: Session, dovuto: Dovuto, *, reason: str, actor: str = "gateway") -> None:
    """The first audit row of a new dovuto (from None to its initial state)."""
    session.add(DovutoTransition(dovuto=dovuto, from_state=None, to_state=dovuto.state, at=utcnow(),
                                 reason=reason[:255], actor=actor[:64]))
