"""Export rows of a secondary beneficiary (tracciato 1.3, tipo dovuto ``EXPORT_ENTE_SECONDARIO``).

When a multi-beneficiary notice of another ente is paid, the receipt carries a transfer to this ente. It has
no dovuto here, so MyPay builds its row from the receipt: the transfer's amount, the payer and debtor as the
receipt names them, the primary ente in the 1.3 columns ``cod_fiscale_pa1``, ``de_nome_pa1`` and
``cod_tassonomico_dovuto_pa1`` (flussi-formats §2.2, §2.4). Only an export booked with the pseudo tipo dovuto
``EXPORT_ENTE_SECONDARIO`` at version 1.3 asks for them, as in MyPay.

Window: incremental by when the gateway recorded the receipt, as the paid rows; otherwise by the payment's
day, inclusive, like the paid rows (MyPay compares timestamps here, which drops the last day's payments).
"""

from __future__ import annotations

import base64
from typing import Any, Iterator

from lxml import etree
from sqlalchemy import Select, and_, false, select
from sqlalchemy.orm import aliased

from gateway.flussi.csv_fields import EMPTY8, ROME, RowContext, amount, safe, text
from gateway.xml import UnsafeXml, local_name, parse_bytes
from storage.models import Ente, ExportFlow, Receipt, ReceiptPayment

EXPORT_ENTE_SECONDARIO = "EXPORT_ENTE_SECONDARIO"
VERSION = "1.3"
RECEIPT_SOURCES = ("paSendRT", "paSendRTV2")  # the node's receipts; an RT names no secondary ente
_SUBJECT_FIELDS = ("fullName", "streetName", "civicNumber", "postalCode", "city", "stateProvinceRegion", "country",
                   "e-mail")


def wanted(flow: ExportFlow) -> bool:
    """Is this a booking for secondary-beneficiary rows (which then replace the paid positions)?"""
    return flow.kind != "scaduti" and flow.tipi_dovuto == EXPORT_ENTE_SECONDARIO


def query(flow: ExportFlow, ente: Ente) -> Select:
    """The transfers credited to ``ente`` by receipts of other enti, in receipt order."""
    r, p = Receipt, ReceiptPayment
    first = aliased(ReceiptPayment)  # the primary ente's transfer: its taxonomy is cod_tassonomico_dovuto_pa1
    statement = (select(r.receipt_id, r.iuv, r.paid_at, r.psp_id, r.psp_name, r.fee, r.fiscal_code, r.raw,
                        p.amount, p.causale, p.dati_specifici_riscossione, first.dati_specifici_riscossione)
                 .select_from(p).join(r, r.id == p.receipt_id)
                 .outerjoin(first, and_(first.receipt_id == r.id, first.index == 1))
                 .where(p.fiscal_code_pa == ente.fiscal_code, r.fiscal_code != ente.fiscal_code,
                        r.outcome == "OK", r.source.in_(RECEIPT_SOURCES), p.amount > 0))
    if flow.version != VERSION:
        return statement.where(false())  # MyPay reads receipts for the 1.3 tracciato only
    if flow.incremental:
        statement = statement.where(r.created_at >= flow.date_from, r.created_at < flow.date_to)
    else:
        statement = statement.where(p.outcome_date >= flow.date_from.date(),  # type: ignore[union-attr]
                                    p.outcome_date <= flow.date_to.date())  # type: ignore[union-attr]
    return statement.order_by(r.id, p.index)


def row(values: tuple, ctx: RowContext) -> list[str]:
    (receipt_id, iuv, paid_at, psp_id, psp_name, fee, primary_fiscal_code, raw, transfer_amount, causale, category,
     primary_category) = values
    receipt = _receipt_fields(raw)
    local = paid_at.astimezone(ROME) if paid_at else None
    moment = f"{local:%Y-%m-%dT%H:%M:%S}" if local else ""
    day = f"{local:%Y-%m-%d}" if local else ""
    identifiers = safe([iuv, receipt_id])
    description = causale or receipt.get("description")
    fields = (["", "", "", identifiers[0], "", ctx.fiscal_code, ctx.station, identifiers[1], moment, identifiers[1],
               day, "G"] + safe([psp_id, psp_name]) + EMPTY8 + ["G", ctx.fiscal_code, ctx.ente_name, "", ""]
              + [""] * 6 + _subject(receipt, "payer") + _subject(receipt, "debtor")
              + ["0", amount(transfer_amount), identifiers[0], identifiers[1], amount(transfer_amount), "0", day,
                 identifiers[1]]
              + safe([(description or "")[:1024], _riscossione(category), EXPORT_ENTE_SECONDARIO]))
    if ctx.with_receipts:
        fields += ["", base64.b64encode(raw).decode("ascii") if raw else "", "2", amount(fee), "", ""]
    return fields + ["", text(primary_fiscal_code), text(receipt.get("companyName")), text(primary_category)]


def _riscossione(category: str | None) -> str | None:
    """A transfer's category is a bare taxonomy code; MyPay writes it as datiSpecificiRiscossione ``9/<code>/``."""
    if not category:
        return None
    return category if category.startswith("9/") else f"9/{category}/"


def _subject(receipt: dict[str, Any], role: str) -> list[str]:
    subject = receipt.get(role) or {}
    return safe([subject.get("type"), subject.get("code")] + [subject.get(name) for name in _SUBJECT_FIELDS])


def _receipt_fields(raw: bytes | None) -> dict[str, Any]:
    """What the row reads from the stored receipt XML: description, companyName, payer and debtor."""
    try:
        root = parse_bytes(raw or b"")
    except UnsafeXml:
        return {}
    fields: dict[str, Any] = {}
    for name, child in _children(root):
        if name in ("description", "companyName"):
            fields[name] = _value(child)
        elif name in ("payer", "debtor"):
            fields[name] = _subject_fields(child)
    return fields


def _subject_fields(element: etree._Element) -> dict[str, str | None]:
    subject: dict[str, str | None] = {}
    for name, child in _children(element):
        if name == "uniqueIdentifier":
            parts = dict(_children(child))
            for key, part_name in (("type", "entityUniqueIdentifierType"), ("code", "entityUniqueIdentifierValue")):
                if part_name in parts:
                    subject[key] = _value(parts[part_name])
        elif name in _SUBJECT_FIELDS:
            subject[name] = _value(child)
    return subject


def _children(element: etree._Element) -> Iterator[tuple[str, etree._Element]]:
    """The child elements by local name (comments and processing instructions skipped)."""
    return ((local_name(child), child) for child in element if isinstance(child.tag, str))


def _value(element: etree._Element) -> str | None:
    return (element.text or "").strip() or None
