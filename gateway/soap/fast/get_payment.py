"""paGetPayment and paGetPaymentV2 on the fast path: read like verify, answer with the payment data."""

from __future__ import annotations

from lxml import etree

from gateway.payments import node_side as domain
from gateway.runtime import Runtime
from gateway.soap.fast import read, render
from gateway.soap.fast.verify import IDS, NoticeRequest, node_call, qr_code
from gateway.soap.pa_for_node_models import OUTCOME_OK

_REQUIRED = IDS + ("qrCode",)
_ALLOWED = frozenset(_REQUIRED + ("amount", "paymentNote", "transferType", "dueDate"))


def read_request(root: etree._Element) -> NoticeRequest:
    fields = read.single(root, _ALLOWED, _REQUIRED)
    # Unused by the domain, but Spyne parses them: a value it could not parse must reach Spyne.
    read.opt_text(fields, "paymentNote")
    read.opt_text(fields, "transferType")
    read.opt_date(fields, "dueDate")
    return NoticeRequest(node_call(fields), *qr_code(fields["qrCode"]), amount=read.opt_decimal(fields, "amount"))


def _answer(runtime: Runtime, request: NoticeRequest, *, v2: bool) -> str:
    data = domain.get_payment(runtime, request.call, request.fiscal_code, request.notice_number,
                              amount=request.amount, v2=v2)
    payment = (render.leaf("creditorReferenceId", data.iuv) + render.amount("paymentAmount", data.amount)
               + render.a_date("dueDate", data.due_date) + render.a_datetime("retentionDate", data.retention_date)
               + render.leaf("description", data.description) + render.leaf("companyName", data.company_name)
               + render.leaf("officeName", data.office_name) + render.subject("debtor", data.debtor)
               + render.transfers(data.transfers, v2=v2))
    return render.leaf("outcome", OUTCOME_OK) + render.node("data", payment)


def answer_v1(runtime: Runtime, request: NoticeRequest) -> str:
    return _answer(runtime, request, v2=False)


def answer_v2(runtime: Runtime, request: NoticeRequest) -> str:
    return _answer(runtime, request, v2=True)
