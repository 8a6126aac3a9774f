"""paSendRT and paSendRTV2 on the fast path: the receipt read into node_side.IncomingReceipt, raw XML included."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from gateway.payments import node_side as domain
from gateway.runtime import Runtime
from gateway.soap.fast import read, render
from gateway.soap.fast.verify import IDS, node_call
from gateway.soap.pa_for_node_models import OUTCOME_OK

_REQUEST = frozenset(IDS + ("receipt",))
_RECEIPT_REQUIRED = ("receiptId", "noticeNumber", "fiscalCode", "outcome", "creditorReferenceId", "paymentAmount",
                     "description", "companyName", "debtor", "transferList", "idPSP", "PSPCompanyName", "idChannel",
                     "channelDescription")
_RECEIPT_V1 = frozenset(_RECEIPT_REQUIRED + (
    "officeName", "pspFiscalCode", "pspPartitaIVA", "payer", "paymentMethod", "fee", "paymentDateTime",
    "applicationDate", "transferDate", "metadata", "standIn"))
_RECEIPT_V2 = _RECEIPT_V1 | {"paymentNote", "primaryCiIncurredFee", "idBundle", "idCiBundle"}
_SUBJECT_REQUIRED = ("uniqueIdentifier", "fullName")
_SUBJECT = frozenset(_SUBJECT_REQUIRED + ("streetName", "civicNumber", "postalCode", "city", "stateProvinceRegion",
                                          "country", "e-mail"))
_UID = frozenset({"entityUniqueIdentifierType", "entityUniqueIdentifierValue"})
_TRANSFER_V1_REQUIRED = ("idTransfer", "transferAmount", "fiscalCodePA", "IBAN", "remittanceInformation",
                         "transferCategory")
_TRANSFER_V1 = frozenset(_TRANSFER_V1_REQUIRED + ("metadata",))
_TRANSFER_V2_REQUIRED = ("idTransfer", "transferAmount", "fiscalCodePA", "remittanceInformation", "transferCategory")
_TRANSFER_V2 = _TRANSFER_V1 | {"companyName", "MBDAttachment"}
_TRANSFER_LIST = frozenset({"transfer"})
_METADATA = frozenset({"mapEntry"})
_MAP_ENTRY = frozenset({"key", "value"})
MAX_TRANSFERS = 5  # the XSD's bounds; beyond them Spyne decides
MAX_MAP_ENTRIES = 15


@dataclass(frozen=True)
class ReceiptRequest:
    call: domain.NodeCall
    receipt: domain.IncomingReceipt

    @property
    def id_pa(self) -> str:
        return self.call.id_pa or ""


def _subject(element: etree._Element | None) -> domain.Subject | None:
    if element is None:
        return None
    fields = read.single(element, _SUBJECT, _SUBJECT_REQUIRED)
    uid = read.single(fields["uniqueIdentifier"], _UID, _UID)
    return domain.Subject(type=read.text(uid["entityUniqueIdentifierType"]),
                          code=read.text(uid["entityUniqueIdentifierValue"]), full_name=read.text(fields["fullName"]),
                          street=read.opt_text(fields, "streetName"), civic=read.opt_text(fields, "civicNumber"),
                          postal_code=read.opt_text(fields, "postalCode"), city=read.opt_text(fields, "city"),
                          province=read.opt_text(fields, "stateProvinceRegion"),
                          country=read.opt_text(fields, "country"), email=read.opt_text(fields, "e-mail"))


def _metadata(element: etree._Element | None) -> tuple[tuple[str, str], ...]:
    if element is None:
        return ()
    entries = read.children(element, _METADATA, _METADATA, repeated=_METADATA)["mapEntry"]
    if len(entries) > MAX_MAP_ENTRIES:
        raise read.Unreadable("mapEntry")
    pairs = []
    for entry in entries:
        fields = read.single(entry, _MAP_ENTRY, _MAP_ENTRY)
        pairs.append((read.text(fields["key"]), read.text(fields["value"])))
    return tuple(pairs)


def _transfers(element: etree._Element, v2: bool) -> list[domain.Transfer]:
    items = read.children(element, _TRANSFER_LIST, _TRANSFER_LIST, repeated=_TRANSFER_LIST)["transfer"]
    if len(items) > MAX_TRANSFERS:
        raise read.Unreadable("transfer")
    result = []
    for item in items:
        fields = (read.single(item, _TRANSFER_V2, _TRANSFER_V2_REQUIRED) if v2
                  else read.single(item, _TRANSFER_V1, _TRANSFER_V1_REQUIRED))
        attachment = fields.get("MBDAttachment")
        result.append(domain.Transfer(
            id_transfer=read.integer(fields["idTransfer"]), amount=read.decimal(fields["transferAmount"]),
            fiscal_code_pa=read.text(fields["fiscalCodePA"]), remittance=read.text(fields["remittanceInformation"]),
            category=read.text(fields["transferCategory"]), iban=read.opt_text(fields, "IBAN"),
            company_name=read.opt_text(fields, "companyName"),
            mbd_attachment=read.binary(attachment) if attachment is not None else None,
            metadata=_metadata(fields.get("metadata"))))
    return result


def read_request(root: etree._Element, version: str) -> ReceiptRequest:
    v2 = version == "paSendRTV2"
    fields = read.single(root, _REQUEST, _REQUEST)
    call = node_call(fields)
    element = fields["receipt"]
    r = read.single(element, _RECEIPT_V2 if v2 else _RECEIPT_V1, _RECEIPT_REQUIRED)
    for name in ("pspFiscalCode", "pspPartitaIVA", "paymentNote", "idBundle", "idCiBundle"):
        read.opt_text(r, name)  # unused, but must be what Spyne would accept
    read.text(r["channelDescription"])
    read.opt_decimal(r, "primaryCiIncurredFee")
    stand_in = r.get("standIn")
    receipt = domain.IncomingReceipt(
        version=version, receipt_id=read.text(r["receiptId"]), notice_number=read.text(r["noticeNumber"]),
        fiscal_code=read.text(r["fiscalCode"]), outcome=read.text(r["outcome"]),
        iuv=read.text(r["creditorReferenceId"]), amount=read.decimal(r["paymentAmount"]),
        description=read.text(r["description"]), company_name=read.text(r["companyName"]),
        office_name=read.opt_text(r, "officeName"), debtor=_subject(r["debtor"]),
        transfers=_transfers(r["transferList"], v2), psp_id=read.text(r["idPSP"]),
        psp_name=read.text(r["PSPCompanyName"]), channel_id=read.text(r["idChannel"]), payer=_subject(r.get("payer")),
        payment_method=read.opt_text(r, "paymentMethod"), fee=read.opt_decimal(r, "fee"),
        payment_datetime=read.opt_datetime(r, "paymentDateTime"), application_date=read.opt_date(r, "applicationDate"),
        transfer_date=read.opt_date(r, "transferDate"),
        stand_in=read.boolean(stand_in) if stand_in is not None else False,
        metadata=_metadata(r.get("metadata")),
        # The receipt as it arrived, serialised as the Spyne path does (same parser options, same tree).
        raw=etree.tostring(element, encoding="UTF-8"))
    return ReceiptRequest(call, receipt)


def read_v1(root: etree._Element) -> ReceiptRequest:
    return read_request(root, "paSendRT")


def read_v2(root: etree._Element) -> ReceiptRequest:
    return read_request(root, "paSendRTV2")


def answer(runtime: Runtime, request: ReceiptRequest) -> str:
    domain.send_receipt(runtime, request.call, request.receipt)
    return render.leaf("outcome", OUTCOME_OK)
