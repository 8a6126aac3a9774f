"""paForNode: the calls the pagoPA node makes on the ente (modello 3), translated to domain calls."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from lxml import etree
from spyne import ServiceBase

from gateway.payments import node_side as domain
from gateway.soap import pa_for_node_models as m
from gateway.soap.common import operation
from gateway.xml import local_name

SERVICE = "paForNode"


def _op(name: str):
    request, response = m.OPERATIONS[name]
    return operation(request, response, service=SERVICE, fault_response=m.fault_response,
                     request_element=request.get_type_name(), response_element=response.get_type_name())


def _call(req: Any) -> domain.NodeCall:
    return domain.NodeCall(req.idPA, req.idBrokerPA, req.idStation)


def _subject(subject: Any) -> domain.Subject | None:
    if subject is None:
        return None
    uid = subject.uniqueIdentifier
    return domain.Subject(type=getattr(uid, "entityUniqueIdentifierType", None) or "F",
                          code=getattr(uid, "entityUniqueIdentifierValue", None) or "",
                          full_name=subject.fullName or "", street=subject.streetName, civic=subject.civicNumber,
                          postal_code=subject.postalCode, city=subject.city,
                          province=subject.stateProvinceRegion, country=subject.country,
                          email=getattr(subject, "e-mail", None))


def _to_subject(subject: domain.Subject, cls: type = m.ctSubject) -> Any:
    result = cls(uniqueIdentifier=m.ctEntityUniqueIdentifier(entityUniqueIdentifierType=subject.type,
                                                              entityUniqueIdentifierValue=subject.code),
                 fullName=subject.full_name, streetName=subject.street, civicNumber=subject.civic,
                 postalCode=subject.postal_code, city=subject.city, stateProvinceRegion=subject.province,
                 country=subject.country)
    setattr(result, "e-mail", subject.email)
    return result


def _metadata(value: Any) -> tuple[tuple[str, str], ...]:
    entries = getattr(value, "mapEntry", None) or []
    return tuple((e.key, e.value) for e in entries)


def _to_metadata(entries: tuple[tuple[str, str], ...]) -> Any:
    if not entries:
        return None
    return m.ctMetadata(mapEntry=[m.ctMapEntry(key=k, value=v) for k, v in entries])


def _transfers(transfer_list: Any) -> list[domain.Transfer]:
    result = []
    for t in (getattr(transfer_list, "transfer", None) or []):
        mbd = getattr(t, "MBDAttachment", None)
        result.append(domain.Transfer(
            id_transfer=int(t.idTransfer), amount=Decimal(str(t.transferAmount)), fiscal_code_pa=t.fiscalCodePA,
            remittance=t.remittanceInformation, category=t.transferCategory, iban=getattr(t, "IBAN", None),
            company_name=getattr(t, "companyName", None),
            mbd_attachment=b"".join(mbd) if mbd is not None and not isinstance(mbd, bytes) else mbd,
            metadata=_metadata(getattr(t, "metadata", None))))
    return result


def _raw_receipt(ctx: Any) -> bytes:
    body = ctx.in_body_doc
    for child in body if body is not None else ():
        if local_name(child) == "receipt":
            return etree.tostring(child, encoding="UTF-8")
    return b""


def _receipt(ctx: Any, req: Any, version: str) -> domain.IncomingReceipt:
    r = req.receipt
    return domain.IncomingReceipt(
        version=version, receipt_id=r.receiptId, notice_number=r.noticeNumber, fiscal_code=r.fiscalCode,
        outcome=r.outcome, iuv=r.creditorReferenceId, amount=Decimal(str(r.paymentAmount)),
        description=r.description, company_name=r.companyName, office_name=r.officeName,
        debtor=_subject(r.debtor), transfers=_transfers(r.transferList), psp_id=r.idPSP,
        psp_name=r.PSPCompanyName, channel_id=r.idChannel, payer=_subject(r.payer),
        payment_method=r.paymentMethod, fee=Decimal(str(r.fee)) if r.fee is not None else None,
        payment_datetime=r.paymentDateTime, application_date=r.applicationDate, transfer_date=r.transferDate,
        stand_in=bool(r.standIn), metadata=_metadata(r.metadata), raw=_raw_receipt(ctx))


def _payment_list(option: domain.PaymentOption) -> Any:
    return m.ctPaymentOptionsDescriptionListPA(paymentOptionDescription=m.ctPaymentOptionDescriptionPA(
        amount=option.amount, options="EQ", dueDate=option.due_date, detailDescription=option.description,
        allCCP=option.all_ccp))


class paForNode(ServiceBase):
    @_op("paVerifyPaymentNotice")
    def paVerifyPaymentNotice(ctx, req):
        option = domain.verify_notice(ctx.udc, _call(req), req.qrCode.fiscalCode, req.qrCode.noticeNumber)
        return m.paVerifyPaymentNoticeRes(outcome=m.OUTCOME_OK, paymentList=_payment_list(option),
                                          paymentDescription=option.description, fiscalCodePA=option.fiscal_code,
                                          companyName=option.company_name, officeName=option.office_name)

    @_op("paGetPayment")
    def paGetPayment(ctx, req):
        data = domain.get_payment(ctx.udc, _call(req), req.qrCode.fiscalCode, req.qrCode.noticeNumber,
                                  amount=req.amount, v2=False)
        transfers = [m.ctTransferPA(idTransfer=t.id_transfer, transferAmount=t.amount, fiscalCodePA=t.fiscal_code_pa,
                                    IBAN=t.iban, remittanceInformation=t.remittance, transferCategory=t.category,
                                    metadata=_to_metadata(t.metadata)) for t in data.transfers]
        return m.paGetPaymentRes(outcome=m.OUTCOME_OK, data=m.ctPaymentPA(
            creditorReferenceId=data.iuv, paymentAmount=data.amount, dueDate=data.due_date,
            retentionDate=data.retention_date, description=data.description, companyName=data.company_name,
            officeName=data.office_name, debtor=_to_subject(data.debtor),
            transferList=m.ctTransferListPA(transfer=transfers)))

    @_op("paGetPaymentV2")
    def paGetPaymentV2(ctx, req):
        data = domain.get_payment(ctx.udc, _call(req), req.qrCode.fiscalCode, req.qrCode.noticeNumber,
                                  amount=req.amount, v2=True)
        transfers = [m.ctTransferPAV2(
            idTransfer=t.id_transfer, transferAmount=t.amount, fiscalCodePA=t.fiscal_code_pa,
            companyName=t.company_name, IBAN=t.iban,
            richiestaMarcaDaBollo=m.ctRichiestaMarcaDaBollo(**t.marca_bollo) if t.marca_bollo else None,
            remittanceInformation=t.remittance, transferCategory=t.category, metadata=_to_metadata(t.metadata))
            for t in data.transfers]
        return m.paGetPaymentV2Response(outcome=m.OUTCOME_OK, data=m.ctPaymentPAV2(
            creditorReferenceId=data.iuv, paymentAmount=data.amount, dueDate=data.due_date,
            retentionDate=data.retention_date, description=data.description, companyName=data.company_name,
            officeName=data.office_name, debtor=_to_subject(data.debtor),
            transferList=m.ctTransferListPAV2(transfer=transfers)))

    @_op("paSendRT")
    def paSendRT(ctx, req):
        domain.send_receipt(ctx.udc, _call(req), _receipt(ctx, req, "paSendRT"))
        return m.paSendRTRes(outcome=m.OUTCOME_OK)

    @_op("paSendRTV2")
    def paSendRTV2(ctx, req):
        domain.send_receipt(ctx.udc, _call(req), _receipt(ctx, req, "paSendRTV2"))
        return m.paSendRTV2Response(outcome=m.OUTCOME_OK)

    @_op("paDemandPaymentNotice")
    def paDemandPaymentNotice(ctx, req):
        data = req.datiSpecificiServizioRequest
        domain.demand_notice(ctx.udc, _call(req), req.idServizio,
                             b"".join(data) if data is not None and not isinstance(data, bytes) else data)
        return m.paDemandPaymentNoticeResponse(outcome=m.OUTCOME_OK)
