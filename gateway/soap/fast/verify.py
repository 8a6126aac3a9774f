"""paVerifyPaymentNotice on the fast path: the identity fields and the qrCode, then node_side.verify_notice."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from lxml import etree

from gateway.payments import node_side as domain
from gateway.runtime import Runtime
from gateway.soap.fast import read, render
from gateway.soap.pa_for_node_models import OUTCOME_OK

IDS = ("idPA", "idBrokerPA", "idStation")
_ALLOWED = frozenset(IDS + ("qrCode",))
_QR = frozenset({"fiscalCode", "noticeNumber"})


@dataclass(frozen=True)
class NoticeRequest:
    call: domain.NodeCall
    fiscal_code: str
    notice_number: str
    amount: Decimal | None = None

    @property
    def id_pa(self) -> str:
        return self.call.id_pa or ""


def node_call(fields: read.Fields) -> domain.NodeCall:
    return domain.NodeCall(read.text(fields["idPA"]), read.text(fields["idBrokerPA"]), read.text(fields["idStation"]))


def qr_code(element: etree._Element) -> tuple[str, str]:
    fields = read.single(element, _QR, _QR)
    return read.text(fields["fiscalCode"]), read.text(fields["noticeNumber"])


def read_request(root: etree._Element) -> NoticeRequest:
    fields = read.single(root, _ALLOWED, _ALLOWED)
    return NoticeRequest(node_call(fields), *qr_code(fields["qrCode"]))


def answer(runtime: Runtime, request: NoticeRequest) -> str:
    option = domain.verify_notice(runtime, request.call, request.fiscal_code, request.notice_number)
    description = (render.amount("amount", option.amount) + render.leaf("options", "EQ")
                   + render.a_date("dueDate", option.due_date) + render.leaf("detailDescription", option.description)
                   + render.boolean("allCCP", option.all_ccp))
    return (render.leaf("outcome", OUTCOME_OK)
            + render.node("paymentList", render.node("paymentOptionDescription", description))
            + render.leaf("paymentDescription", option.description) + render.leaf("fiscalCodePA", option.fiscal_code)
            + render.leaf("companyName", option.company_name) + render.leaf("officeName", option.office_name))
