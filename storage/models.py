"""The gateway's tables. One row type per domain thing; the rules about them live in gateway/, not here.

Money is Numeric(14, 2) read as Decimal; timestamps are timezone-aware UTC on every backend. Raw
documents (RT, receipts, flows) are kept byte for byte as received.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, Date, ForeignKey, Index, Integer, LargeBinary, MetaData,
                        String, Text, UniqueConstraint, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage.types import Money, UtcDateTime, utcnow

# Deterministic constraint names: alembic can then alter them identically on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow, nullable=False)


class Ente(Timestamped, Base):
    """A creditor body served by the gateway, with its SIL credentials and IUV settings."""

    __tablename__ = "ente"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    cod_ipa: Mapped[str] = mapped_column(String(35), unique=True)
    fiscal_code: Mapped[str] = mapped_column(String(11), unique=True)
    name: Mapped[str] = mapped_column(String(140))
    # INSERITO (not live: the SIL checks fail), PRE-ESERCIZIO, ESERCIZIO.
    state: Mapped[str] = mapped_column(String(20), default="ESERCIZIO")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    aux_digit: Mapped[str] = mapped_column(String(1), default="3")
    segregation_code: Mapped[str | None] = mapped_column(String(2))
    application_code: Mapped[str | None] = mapped_column(String(2))
    # How payments are opened with the node: "checkout" (today's model) or "rpt" (legacy nodoInviaCarrelloRPT).
    payment_model: Mapped[str] = mapped_column(String(10), default="checkout")
    demand_payment_notice: Mapped[bool] = mapped_column(Boolean, default=False)
    email: Mapped[str | None] = mapped_column(String(256))
    office_name: Mapped[str | None] = mapped_column(String(140))
    cbill: Mapped[str | None] = mapped_column(String(5))

    tipi_dovuto: Mapped[list[TipoDovuto]] = relationship(back_populates="ente", cascade="all, delete-orphan")


class TipoDovuto(Timestamped, Base):
    """A kind of debt an ente collects (TARI, mensa...), with the account it is credited to."""

    __tablename__ = "tipo_dovuto"
    __table_args__ = (UniqueConstraint("ente_id", "code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ente_id: Mapped[int] = mapped_column(ForeignKey("ente.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(255))
    iban: Mapped[str | None] = mapped_column(String(34))
    postal_iban: Mapped[bool] = mapped_column(Boolean, default=False)
    # pagoPA taxonomy code used as transferCategory and in datiSpecificiRiscossione (e.g. 9/0101100IM/).
    taxonomy_code: Mapped[str | None] = mapped_column(String(140))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    cf_anonimo_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    due_date_required: Mapped[bool] = mapped_column(Boolean, default=False)
    print_due_date: Mapped[bool] = mapped_column(Boolean, default=True)
    fixed_amount: Mapped[Decimal | None] = mapped_column(Money)  # MARCA_BOLLO_DIGITALE's configured amount

    ente: Mapped[Ente] = relationship(back_populates="tipi_dovuto")


class Carrello(Timestamped, Base):
    """A payment session: what the SIL sent in one InviaDovuti / InviaCarrello / VerificaAvviso call."""

    __tablename__ = "carrello"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    id_session: Mapped[str] = mapped_column(String(64), unique=True)
    ente_id: Mapped[int] = mapped_column(ForeignKey("ente.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))  # ESTERNO_ANONIMO, ESTERNO_ANONIMO_MULTIENTE, AVVISO_ANONIMO_ENTE
    state: Mapped[str] = mapped_column(String(40), default="PREDISPOSTO")
    payment_model: Mapped[str] = mapped_column(String(10), default="checkout")
    return_url: Mapped[str | None] = mapped_column(Text)
    show_mypay: Mapped[str | None] = mapped_column(String(10))
    payer: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    node_cart_id: Mapped[str | None] = mapped_column(String(64), index=True)
    payment_url: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    dovuti: Mapped[list[Dovuto]] = relationship(back_populates="carrello")


class Dovuto(Timestamped, Base):
    """A debt position (posizione debitoria) of one payer towards one ente."""

    __tablename__ = "dovuto"
    __table_args__ = (
        UniqueConstraint("ente_id", "iud"),
        # The node's lookup (ente_id, iuv = X) implies the predicate on both databases; positions without an
        # IUV (most imported ones, until they get one) add no entry.
        Index("ix_dovuto_ente_iuv", "ente_id", "iuv", postgresql_where=text("iuv IS NOT NULL"),
              sqlite_where=text("iuv IS NOT NULL")),
        Index("ix_dovuto_payer", "payer_code", "state"),
        Index("ix_dovuto_ente_state_due", "ente_id", "state", "due_date"),
        # Only positions paid in a cart have a carrello: imported and SOAP-loaded ones (nearly all) add no
        # entry. A lookup by carrello_id (never IS NULL) implies the predicate on both databases.
        Index("ix_dovuto_carrello_id", "carrello_id", postgresql_where=text("carrello_id IS NOT NULL"),
              sqlite_where=text("carrello_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ente_id: Mapped[int] = mapped_column(ForeignKey("ente.id"))
    tipo_dovuto_id: Mapped[int | None] = mapped_column(ForeignKey("tipo_dovuto.id"))
    carrello_id: Mapped[int | None] = mapped_column(ForeignKey("carrello.id"))  # indexed above
    # Provenance, neither indexed nor a foreign key: no query selects dovuti by their flow, and only the
    # import job writes it, from its own flow row (import flows are never deleted). The key's check cost
    # ~4 µs of server CPU for every bulk-loaded row (a lookup and a row lock on import_flow).
    import_flow_id: Mapped[int | None] = mapped_column(BigId)
    iud: Mapped[str] = mapped_column(String(35))
    iuv: Mapped[str | None] = mapped_column(String(35))
    notice_number: Mapped[str | None] = mapped_column(String(18))
    iuv_generated: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(30), default="INSERIMENTO_DOVUTO")
    payer_type: Mapped[str] = mapped_column(String(1))
    payer_code: Mapped[str] = mapped_column(String(35))
    payer_name: Mapped[str] = mapped_column(String(70))
    payer_address: Mapped[str | None] = mapped_column(String(70))
    payer_civic: Mapped[str | None] = mapped_column(String(16))
    payer_postal_code: Mapped[str | None] = mapped_column(String(16))
    payer_city: Mapped[str | None] = mapped_column(String(35))
    payer_province: Mapped[str | None] = mapped_column(String(2))
    payer_country: Mapped[str | None] = mapped_column(String(2))
    payer_email: Mapped[str | None] = mapped_column(String(256))
    amount: Mapped[Decimal] = mapped_column(Money)
    fee_ente: Mapped[Decimal | None] = mapped_column(Money)
    due_date: Mapped[date | None] = mapped_column(Date)
    causale: Mapped[str] = mapped_column(String(1024))
    dati_specifici_riscossione: Mapped[str] = mapped_column(String(140))
    tipo_versamento: Mapped[str] = mapped_column(String(32), default="ALL")
    bilancio: Mapped[str | None] = mapped_column(Text)
    marca_bollo: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Multi-beneficiary: the secondary ente's quota (fiscal code, name, IBAN, amount, causale, taxonomy).
    secondary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    payment_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    carrello: Mapped[Carrello | None] = relationship(back_populates="dovuti")
    tipo_dovuto: Mapped[TipoDovuto | None] = relationship()
    transitions: Mapped[list[DovutoTransition]] = relationship(
        back_populates="dovuto", primaryjoin="Dovuto.id == foreign(DovutoTransition.dovuto_id)",
        order_by="DovutoTransition.id")


class DovutoTransition(Base):
    """Audit trail: every state change of a dovuto, when, why and by whom."""

    __tablename__ = "dovuto_transition"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No foreign key: the trail is append-only, written in the transaction that changes its dovuto, and dovuti
    # are never deleted; the key's check (a lookup and a row lock on dovuto) cost ~13 µs of server CPU for
    # every bulk-imported row, a third of the database's share of an import.
    dovuto_id: Mapped[int] = mapped_column(BigId, index=True)
    from_state: Mapped[str | None] = mapped_column(String(30))
    to_state: Mapped[str] = mapped_column(String(30))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    reason: Mapped[str | None] = mapped_column(String(255))
    actor: Mapped[str | None] = mapped_column(String(64))

    dovuto: Mapped[Dovuto] = relationship(back_populates="transitions",
                                          primaryjoin="Dovuto.id == foreign(DovutoTransition.dovuto_id)")


class PaymentAttempt(Timestamped, Base):
    """One attempt to pay a carrello or a notice through the node (a Checkout cart, an RPT, a payment token)."""

    __tablename__ = "payment_attempt"
    # paGetPayment writes one row per call, so every index is paid on the node's hot path: the lookups go by
    # (ente, IUV), by dovuto, by state; carrello and RPT message id only exist on some rows (partial indexes,
    # implied by their lookups' equality on both databases).
    __table_args__ = (Index("ix_payment_attempt_state_next", "state", "next_check_at"),
                      Index("ix_payment_attempt_ente_iuv", "ente_id", "iuv"),
                      Index("ix_payment_attempt_carrello_id", "carrello_id",
                            postgresql_where=text("carrello_id IS NOT NULL"),
                            sqlite_where=text("carrello_id IS NOT NULL")),
                      Index("ix_payment_attempt_request_message_id", "request_message_id",
                            postgresql_where=text("request_message_id IS NOT NULL"),
                            sqlite_where=text("request_message_id IS NOT NULL")))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ente_id: Mapped[int] = mapped_column(ForeignKey("ente.id"))  # indexed with iuv
    carrello_id: Mapped[int | None] = mapped_column(ForeignKey("carrello.id"))  # indexed above
    dovuto_id: Mapped[int | None] = mapped_column(ForeignKey("dovuto.id"), index=True)
    model: Mapped[str] = mapped_column(String(10))  # checkout | rpt | psp (notice paid at any PSP)
    iuv: Mapped[str | None] = mapped_column(String(35))
    ccp: Mapped[str | None] = mapped_column(String(35))  # codiceContestoPagamento / payment token
    request_message_id: Mapped[str | None] = mapped_column(String(35))  # indexed above
    rpt_xml: Mapped[bytes | None] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(30), default="STARTED")
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_check_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    checks: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class Receipt(Timestamped, Base):
    """A receipt (paSendRT[V2]) or RT (paaInviaRT / nodoChiediCopiaRT), stored once however often it comes."""

    __tablename__ = "receipt"
    __table_args__ = (UniqueConstraint("fiscal_code", "receipt_id"), Index("ix_receipt_fc_iuv", "fiscal_code", "iuv"),
                      # An ente's receipts, and the incremental export's window on them (date range per ente).
                      Index("ix_receipt_ente_created", "ente_id", "created_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ente_id: Mapped[int | None] = mapped_column(ForeignKey("ente.id"))  # indexed with created_at
    dovuto_id: Mapped[int | None] = mapped_column(ForeignKey("dovuto.id"), index=True)
    carrello_id: Mapped[int | None] = mapped_column(ForeignKey("carrello.id"), index=True)
    fiscal_code: Mapped[str] = mapped_column(String(11))
    receipt_id: Mapped[str] = mapped_column(String(64))
    iuv: Mapped[str] = mapped_column(String(35))
    notice_number: Mapped[str | None] = mapped_column(String(18))
    ccp: Mapped[str | None] = mapped_column(String(35))
    source: Mapped[str] = mapped_column(String(20))  # paSendRT, paSendRTV2, paaInviaRT, copiaRT, registra
    outcome: Mapped[str] = mapped_column(String(2))  # OK / KO
    esito_code: Mapped[str | None] = mapped_column(String(1))  # RT codiceEsitoPagamento 0..4
    amount: Mapped[Decimal] = mapped_column(Money)
    fee: Mapped[Decimal | None] = mapped_column(Money)
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    psp_id: Mapped[str | None] = mapped_column(String(35))
    psp_name: Mapped[str | None] = mapped_column(String(140))
    payer: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    tipo_firma: Mapped[str | None] = mapped_column(String(10))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    # Anomalies that never drop a receipt: unknown_position, annulled, already_paid, amount_mismatch...
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    deliveries: Mapped[int] = mapped_column(Integer, default=1)
    last_delivery_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    payments: Mapped[list[ReceiptPayment]] = relationship(back_populates="receipt", cascade="all, delete-orphan",
                                                          order_by="ReceiptPayment.index")


class ReceiptPayment(Base):
    """One transfer / datiSingoloPagamento of a receipt: the unit the PSP's reporting flow refers to."""

    __tablename__ = "receipt_payment"
    __table_args__ = (UniqueConstraint("receipt_id", "index"), Index("ix_receipt_payment_iuv_iur", "iuv", "iur"),
                      Index("ix_receipt_payment_outcome_date", "outcome_date"))  # the paid export's date range

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    receipt_id: Mapped[int] = mapped_column(ForeignKey("receipt.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    iuv: Mapped[str] = mapped_column(String(35))
    iur: Mapped[str] = mapped_column(String(35))
    amount: Mapped[Decimal] = mapped_column(Money)
    fiscal_code_pa: Mapped[str | None] = mapped_column(String(11))
    iban: Mapped[str | None] = mapped_column(String(34))
    causale: Mapped[str | None] = mapped_column(String(1024))
    dati_specifici_riscossione: Mapped[str | None] = mapped_column(String(140))
    outcome_date: Mapped[date | None] = mapped_column(Date)

    receipt: Mapped[Receipt] = relationship(back_populates="payments")


class IuvCounter(Base):
    """Per-ente progressive for generated IUVs; incremented atomically in the same transaction as the insert."""

    __tablename__ = "iuv_counter"

    ente_id: Mapped[int] = mapped_column(ForeignKey("ente.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True, default="IUV17")
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class ImportFlow(Timestamped, Base):
    """A bulk import of dovuti (paaSILAutorizzaImportFlusso booking, then the uploaded zip and its processing)."""

    __tablename__ = "import_flow"
    __table_args__ = (Index("ix_import_flow_ente_iuf", "ente_id", "iuf"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ente_id: Mapped[int] = mapped_column(ForeignKey("ente.id"), index=True)
    request_token: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(30), default="LOAD_IMPORT")
    error_code: Mapped[str | None] = mapped_column(String(255))
    iuf: Mapped[str | None] = mapped_column(String(100))
    file_name: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[str | None] = mapped_column(String(5))
    upload_path: Mapped[str | None] = mapped_column(Text)
    uploaded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_imported: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    pdf_count: Mapped[int] = mapped_column(Integer, default=0)
    # Resume point: every row up to this one is committed (imported or rejected) together with it.
    last_row_done: Mapped[int] = mapped_column(Integer, default=0)
    output_dir: Mapped[str | None] = mapped_column(Text)


class ImportRejection(Base):
    """A rejected row of an import flow, written to the scarti file when the flow ends."""

    __tablename__ = "import_rejection"
    __table_args__ = (UniqueConstraint("import_flow_id", "row_number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    import_flow_id: Mapped[int] = mapped_column(ForeignKey("import_flow.id", ondelete="CASCADE"))
    row_number: Mapped[int] = mapped_column(Integer)
    raw_line: Mapped[str] = mapped_column(Text)
    code: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(512))


class ExportFlow(Timestamped, Base):
    """A booked export (pagati, incremental with receipts, or expired dovuti) and the file it produced."""

    __tablename__ = "export_flow"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ente_id: Mapped[int] = mapped_column(ForeignKey("ente.id"), index=True)
    request_token: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # pagati | incrementale | scaduti
    state: Mapped[str] = mapped_column(String(40), default="LOAD_EXPORT")
    date_from: Mapped[datetime | None] = mapped_column(UtcDateTime)
    date_to: Mapped[datetime | None] = mapped_column(UtcDateTime)
    tipi_dovuto: Mapped[str | None] = mapped_column(Text)
    version: Mapped[str] = mapped_column(String(5), default="1.0")
    with_receipts: Mapped[bool] = mapped_column(Boolean, default=False)
    incremental: Mapped[bool] = mapped_column(Boolean, default=False)
    file_name: Mapped[str | None] = mapped_column(String(255))
    file_path: Mapped[str | None] = mapped_column(Text)
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class RendicontazioneFlow(Timestamped, Base):
    """A PSP's reporting flow for one ente; a newer revision supersedes the older one, which is kept."""

    __tablename__ = "rendicontazione_flow"
    __table_args__ = (UniqueConstraint("ente_id", "psp_id", "flow_id", "revision"),
                      Index("ix_rendicontazione_flow_lookup", "ente_id", "flow_date"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ente_id: Mapped[int] = mapped_column(ForeignKey("ente.id"))
    psp_id: Mapped[str] = mapped_column(String(35))
    flow_id: Mapped[str] = mapped_column(String(35))
    flow_datetime: Mapped[datetime] = mapped_column(UtcDateTime)
    flow_date: Mapped[date | None] = mapped_column(Date)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    kind: Mapped[str] = mapped_column(String(1), default="R")  # R rendicontazione, Q quadratura
    transport: Mapped[str] = mapped_column(String(4))  # fdr | soap
    regulation_id: Mapped[str | None] = mapped_column(String(35))
    regulation_date: Mapped[date | None] = mapped_column(Date)
    sender_name: Mapped[str | None] = mapped_column(String(140))
    total_payments: Mapped[int] = mapped_column(Integer, default=0)
    total_amount: Mapped[Decimal] = mapped_column(Money, default=0)
    state: Mapped[str] = mapped_column(String(20), default="IN_CARICAMENTO")  # IN_CARICAMENTO, OK, KO
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Why a flow is KO (invalid document...): shown to operators, never to the SIL.
    error: Mapped[str | None] = mapped_column(Text)


class RendicontazioneRow(Base):
    """One reported payment of a flow and the outcome of matching it with a receipt."""

    __tablename__ = "rendicontazione_row"
    __table_args__ = (Index("ix_rendicontazione_row_iuv_iur", "iuv", "iur"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("rendicontazione_flow.id", ondelete="CASCADE"), index=True)
    iuv: Mapped[str] = mapped_column(String(35))
    iur: Mapped[str] = mapped_column(String(35))
    index: Mapped[int | None] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Money)
    outcome_code: Mapped[str] = mapped_column(String(1))
    outcome_date: Mapped[date | None] = mapped_column(Date)
    # matched, no_receipt, amount_mismatch
    match_state: Mapped[str | None] = mapped_column(String(20))
    receipt_payment_id: Mapped[int | None] = mapped_column(ForeignKey("receipt_payment.id"), index=True)


class Job(Timestamped, Base):
    """Asynchronous work (imports, exports, flow fetches, receipt recovery), claimed with SKIP LOCKED."""

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_claim", "state", "run_after"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(10), default="queued")  # queued, running, done, failed
    # At most one queued/running job per key (e.g. "import:42"); NULL for jobs that may repeat.
    dedupe_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    run_after: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=10)
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
