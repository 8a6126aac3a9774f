"""The benchmark's data: one ente (registered through gateway.enti.registry, like the CLI), payable dovuti in
bulk with their IUVs and notice numbers, and paid carrelli for paaSILChiediPagati.

Payable positions with an even index are read by verify/getPayment; odd ones receive the paSendRTV2
receipts, so a receipt never turns a position that the lookups measure into a paid one.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, insert, select, text

from bench.envelopes import Identity
from gateway.enti.registry import NewEnte, add_ente, add_tipo_dovuto, get_ente
from gateway.payments import states
from gateway.payments.iuv import make_iuv17, notice_number
from gateway.payments.iuv_allocator import KIND_IUV17
from storage.db import Database
from storage.models import Carrello, Dovuto, IuvCounter, PaymentAttempt, Receipt, ReceiptPayment
from storage.types import utcnow

COD_IPA = "C_BENCH"
FISCAL_CODE = "80012345678"
PASSWORD = "Bench-password-1"
IBAN = "IT60X0542811101000000123456"
AMOUNT = Decimal("100.00")
SEGREGATION = "01"
PAYER = "RSSMRA80A01H501U"
CHUNK = 20_000
# How many values of each kind the Lua script cycles through (spread over the whole table).
SAMPLE = 4_000


@dataclass
class Seeded:
    identity: Identity
    size: int
    lookup: list[tuple[str, str]] = field(default_factory=list)  # (notice number, IUV) read by verify/get
    receipts: list[tuple[str, str]] = field(default_factory=list)  # (notice number, IUV) paid by paSendRTV2
    sessions: list[str] = field(default_factory=list)  # idSession of paid carrelli


def identity(broker_id: str, station_id: str) -> Identity:
    return Identity(FISCAL_CODE, COD_IPA, PASSWORD, broker_id, station_id, IBAN, AMOUNT)


def _iuv(index: int) -> str:
    return make_iuv17(SEGREGATION, index + 1)


def _pairs(indexes: list[int]) -> list[tuple[str, str]]:
    return [(notice_number(_iuv(i)), _iuv(i)) for i in indexes]


def mypay_session_id(now: datetime) -> str:
    """MyPay's idSession: a UUID whose last group is the time (yyMMddHHmmssSSS) as a hex number."""
    stamp = int(now.strftime("%y%m%d%H%M%S") + f"{now.microsecond // 1000:03d}")
    head = str(uuid.uuid4()).rsplit("-", 1)[0]
    return f"{head}-{stamp:x}"


def create_ente(database: Database, broker_id: str, station_id: str) -> Identity:
    with database.transaction() as session:
        add_ente(session, NewEnte(cod_ipa=COD_IPA, fiscal_code=FISCAL_CODE, name="Comune benchmark",
                                  password=PASSWORD, segregation_code=SEGREGATION))
        for code in ("TARI", "MENSA"):
            add_tipo_dovuto(session, COD_IPA, code, f"Tipo {code}", IBAN, "9/0101100IM/")
    return identity(broker_id, station_id)


def _dovuto_row(ente_id: int, tipo_id: int, index: int, now: datetime, due: date) -> dict:
    iuv = _iuv(index)
    return dict(ente_id=ente_id, tipo_dovuto_id=tipo_id, iud=f"BENCH{index:012d}", iuv=iuv,
                notice_number=notice_number(iuv), iuv_generated=True, state=states.INSERIMENTO_DOVUTO,
                payer_type="F", payer_code=PAYER, payer_name="Mario Rossi", payer_email="mario.rossi@example.it",
                amount=AMOUNT, due_date=due, causale="Tassa rifiuti benchmark",
                dati_specifici_riscossione="9/0101100IM/", tipo_versamento="ALL", created_at=now, updated_at=now)


def add_dovuti(database: Database, target: int, progress=None) -> int:
    """Top the ente up to ``target`` payable positions (bulk insert); returns how many it has."""
    now = utcnow()
    due = (now + timedelta(days=365)).date()
    with database.transaction() as session:
        ente = get_ente(session, COD_IPA)
        tipo_id = next(t.id for t in ente.tipi_dovuto if t.code == "TARI")
        ente_id = ente.id
        # "BENCH0%": the payable positions only, not the BENCHPAID... ones of the paid carrelli.
        have = session.scalar(select(func.count()).select_from(Dovuto)
                              .where(Dovuto.ente_id == ente_id, Dovuto.iud.like("BENCH0%"))) or 0
        last_id = session.scalar(select(func.max(Dovuto.id))) or 0
    for start in range(have, target, CHUNK):
        stop = min(target, start + CHUNK)
        with database.transaction() as session:
            session.execute(insert(Dovuto), [_dovuto_row(ente_id, tipo_id, i, now, due) for i in range(start, stop)])
        if progress:
            progress(stop)
    with database.transaction() as session:
        # The creation audit row every dovuto has (states.record_creation), written in one statement.
        session.execute(text("INSERT INTO dovuto_transition (dovuto_id, from_state, to_state, at, reason, actor) "
                             "SELECT id, NULL, state, created_at, 'benchmark seed', 'bench' FROM dovuto "
                             "WHERE ente_id = :ente AND id > :last"), {"ente": ente_id, "last": last_id})
        # Generated IUVs continue after the seeded ones (the allocator's counter).
        counter = session.get(IuvCounter, (ente_id, KIND_IUV17))
        if counter is None:
            session.add(IuvCounter(ente_id=ente_id, kind=KIND_IUV17, value=target))
        else:
            counter.value = max(counter.value, target)
    return max(have, target)


def add_paid_carts(database: Database, count: int) -> list[str]:
    """Carrelli paid through Checkout: one completed dovuto each, its receipt and attempt."""
    sessions = []
    with database.transaction() as session:
        ente = get_ente(session, COD_IPA)
        tipo = next(t for t in ente.tipi_dovuto if t.code == "TARI")
        base = 10**9  # IUV progressives far from the payable positions'
        for n in range(count):
            now = utcnow()
            iuv = _iuv(base + n)
            cart = Carrello(id_session=mypay_session_id(now), ente_id=ente.id, kind="ESTERNO_ANONIMO",
                            state=states.PAGAM_IN_CORSO, payment_model="checkout",
                            payer={"type": "F", "code": PAYER, "name": "Mario Rossi"})
            dovuto = Dovuto(**_dovuto_row(ente.id, tipo.id, base + n, now, (now + timedelta(days=30)).date()),
                            carrello=cart)
            dovuto.iud = f"BENCHPAID{n:09d}"
            session.add_all([cart, dovuto])
            session.flush()
            states.record_creation(session, dovuto, reason="benchmark seed", actor="bench")
            states.move_dovuto(session, dovuto, states.PAGAMENTO_INIZIATO, reason="benchmark seed", actor="bench")
            states.move_dovuto(session, dovuto, states.COMPLETATO, reason="benchmark seed receipt", actor="bench")
            states.move_carrello(cart, states.PAGATO)
            token = uuid.uuid4().hex
            session.add(PaymentAttempt(ente_id=ente.id, carrello_id=cart.id, dovuto_id=dovuto.id, model="checkout",
                                       iuv=iuv, ccp=token, state="PAID"))
            receipt = Receipt(ente_id=ente.id, dovuto_id=dovuto.id, carrello_id=cart.id, fiscal_code=FISCAL_CODE,
                              receipt_id=token, iuv=iuv, notice_number=notice_number(iuv), ccp=token,
                              source="paSendRTV2", outcome="OK", esito_code="0", amount=AMOUNT, fee=Decimal("1.00"),
                              paid_at=now, psp_id="BENCHPSP01", psp_name="PSP benchmark",
                              payer={"type": "F", "code": PAYER, "full_name": "Mario Rossi"},
                              raw=f"<receipt><receiptId>{token}</receiptId></receipt>".encode(), flags=[])
            receipt.payments.append(ReceiptPayment(index=1, iuv=iuv, iur=token[:35], amount=AMOUNT,
                                                   fiscal_code_pa=FISCAL_CODE, iban=IBAN,
                                                   causale="Tassa rifiuti benchmark",
                                                   dati_specifici_riscossione="9/0101100IM/",
                                                   outcome_date=now.date()))
            session.add(receipt)
            sessions.append(cart.id_session)
    return sessions


def seed(database: Database, *, size: int, carts: int, broker_id: str, station_id: str, progress=None) -> Seeded:
    ident = create_ente(database, broker_id, station_id)
    add_dovuti(database, size, progress)
    result = Seeded(ident, size, sessions=add_paid_carts(database, carts))
    sample(result)
    return result


def sample(seeded: Seeded) -> None:
    """Pick the values the load cycles through, spread over the whole table (not its first pages)."""
    rng = random.Random(seeded.size)
    evens = range(0, seeded.size, 2)
    odds = range(1, seeded.size, 2)
    seeded.lookup = _pairs(rng.sample(evens, min(SAMPLE, len(evens))))
    seeded.receipts = _pairs(rng.sample(odds, min(SAMPLE, len(odds))))


def resize(database: Database, seeded: Seeded, size: int, progress=None) -> None:
    seeded.size = add_dovuti(database, size, progress)
    sample(seeded)
