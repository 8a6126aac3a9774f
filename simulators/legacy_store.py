"""The simulated node's tables for modello 1 (RPTs, their state history, RTs) and reporting flows.

Defined on the simulator's METADATA (so ``POST /sim/api/reset`` empties them too), in its own database.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, LargeBinary, String, Table, Text, UniqueConstraint
from sqlalchemy.engine import Engine

from simulators.store import METADATA as metadata
from simulators.store import Cents, Instant

# An accepted cart id (nodoInviaCarrelloRPT's identificativoCarrello, or a generated one for nodoInviaRPT).
rpt_cart = Table(
    "sim_rpt_cart", metadata,
    Column("id", Integer, primary_key=True),
    Column("node_cart_id", String(64), nullable=False, unique=True),
    Column("sim_cart_id", String(64)),  # the core's sim_cart id: the payment page /sim/pagamento/<id>
    Column("broker", String(35), nullable=False),
    Column("station", String(35), nullable=False),
    Column("psp_id", String(35)),
    Column("created_at", Instant, nullable=False),
)

rpt = Table(
    "sim_rpt", metadata,
    Column("id", Integer, primary_key=True),
    Column("rpt_cart_id", Integer, nullable=False, index=True),
    Column("position", Integer, nullable=False),  # 1-based place in the cart
    Column("broker", String(35), nullable=False),
    Column("station", String(35), nullable=False),
    Column("dominio", String(35), nullable=False),
    Column("iuv", String(35), nullable=False),
    Column("ccp", String(35), nullable=False),
    Column("message_id", String(35), nullable=False),
    Column("amount", Cents, nullable=False),
    Column("state", String(40), nullable=False),
    Column("xml", LargeBinary, nullable=False),
    Column("created_at", Instant, nullable=False),
    Column("updated_at", Instant, nullable=False),
    UniqueConstraint("dominio", "iuv", "ccp", name="uq_sim_rpt_triple"),
)

rpt_event = Table(
    "sim_rpt_event", metadata,
    Column("id", Integer, primary_key=True),
    Column("rpt_id", Integer, nullable=False, index=True),
    Column("at", Instant, nullable=False),
    Column("state", String(40), nullable=False),
    Column("description", String(255), nullable=False),
)

# One RT per RPT, kept for nodoChiediCopiaRT whatever happened to its delivery.
rt = Table(
    "sim_rt", metadata,
    Column("id", Integer, primary_key=True),
    Column("rpt_id", Integer, nullable=False, unique=True),
    Column("dominio", String(35), nullable=False),
    Column("iuv", String(35), nullable=False),
    Column("ccp", String(35), nullable=False),
    Column("psp_id", String(35), nullable=False),
    Column("esito", String(1), nullable=False),
    Column("amount", Cents, nullable=False),
    Column("payments", JSON, nullable=False),  # [{index, iur, amount, date}] for the reporting flows
    Column("tipo_firma", String(10), nullable=False, default=""),
    Column("xml", LargeBinary, nullable=False),
    # pending (to push), delivered, rejected (non-retryable KO), exhausted, withheld (scenario rt_never)
    Column("delivery", String(20), nullable=False),
    Column("pushes", Integer, nullable=False, default=1),  # how many OK deliveries are wanted (rt_twice: 2)
    Column("attempts", Integer, nullable=False, default=0),
    Column("delivered", Integer, nullable=False, default=0),
    Column("next_attempt_at", Instant),
    Column("locked_until", Instant),
    Column("last_error", Text),
    Column("created_at", Instant, nullable=False),
    Index("ix_sim_rt_delivery", "delivery", "next_attempt_at"),
)

# SOAP reporting flows as received by nodoInviaFlussoRendicontazione (one row per dataOraFlusso).
flow = Table(
    "sim_flow", metadata,
    Column("id", Integer, primary_key=True),
    Column("psp_id", String(35), nullable=False),
    Column("dominio", String(35), nullable=False),
    Column("flow_id", String(35), nullable=False),
    Column("flow_datetime", Instant, nullable=False),
    Column("xml", LargeBinary, nullable=False),
    Column("received_at", Instant, nullable=False),
    UniqueConstraint("psp_id", "flow_id", "flow_datetime", name="uq_sim_flow_version"),
    Index("ix_sim_flow_dominio", "dominio", "flow_datetime"),
)

# FdR flows: one row per (psp, name, revision); drafts have status CREATED/INSERTED.
fdr = Table(
    "sim_fdr", metadata,
    Column("id", Integer, primary_key=True),
    Column("psp_id", String(35), nullable=False),
    Column("fdr", String(35), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("organization_id", String(35), nullable=False),
    Column("status", String(10), nullable=False),
    Column("body", JSON, nullable=False),  # CreateFlowRequest as received (sender, receiver, totals...)
    Column("created", Instant, nullable=False),
    Column("updated", Instant, nullable=False),
    Column("published", Instant),
    UniqueConstraint("psp_id", "fdr", "revision", name="uq_sim_fdr_revision"),
    Index("ix_sim_fdr_org", "organization_id", "status", "published"),
)

fdr_payment = Table(
    "sim_fdr_payment", metadata,
    Column("id", Integer, primary_key=True),
    Column("fdr_pk", Integer, nullable=False),
    Column("index", Integer, nullable=False),
    Column("iuv", String(35), nullable=False),
    Column("iur", String(35), nullable=False),
    Column("id_transfer", Integer, nullable=False),
    Column("pay", Cents, nullable=False),
    Column("pay_status", String(20), nullable=False),
    Column("pay_date", String(40), nullable=False),
    UniqueConstraint("fdr_pk", "index", name="uq_sim_fdr_payment_index"),
)

# The daily reports the simulated PSPs made: reused on --revise so a revision keeps its flow name.
report = Table(
    "sim_report", metadata,
    Column("id", Integer, primary_key=True),
    Column("day", String(10), nullable=False),
    Column("psp_id", String(35), nullable=False),
    Column("dominio", String(35), nullable=False),
    Column("flow_id", String(35), nullable=False),
    Column("revision", Integer, nullable=False, default=1),
    Column("created_at", Instant, nullable=False),
    UniqueConstraint("day", "psp_id", "dominio", name="uq_sim_report_day"),
)


TABLES = (rpt_cart, rpt, rpt_event, rt, flow, fdr, fdr_payment, report)


def create_tables(engine: Engine) -> None:
    """Also called at mount time: the core may have created its tables before this module was imported."""
    metadata.create_all(engine, tables=list(TABLES), checkfirst=True)
