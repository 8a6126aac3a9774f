"""Spyne models of paForNode (modello 3: the pagoPA node calling the ente), wire-equivalent to
``xsd/paForNode.xsd`` and ``xsd/sac-common-types-1.0.xsd``; both schemas leave local elements unqualified.
"""

from __future__ import annotations

from typing import Any

from spyne import Boolean, ByteArray, ComplexModel, Date, DateTime, Decimal, Integer32, Unicode

from gateway import faults

PAFN_NS = "http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd"
COMMON_NS = "http://pagopa-api.pagopa.gov.it/xsd/common-types/v1.0.0/"
# Namespace of the WSDL definitions (binding, portType), not of any element.
PAFN_WSDL_NS = "http://pagopa-api.pagopa.gov.it/paForNode"

OUTCOME_OK = "OK"
OUTCOME_KO = "KO"

# Simple types. Facets are documentation: the gateway runs Spyne with validator=None and checks business
# rules itself. Amounts always carry two decimals on the wire (pattern \d+\.\d{2}), hence str_format.
Text16 = Unicode(min_len=1, max_len=16)
Text20 = Unicode(min_len=1, max_len=20)
Text35 = Unicode(min_len=1, max_len=35)
Text70 = Unicode(min_len=1, max_len=70)
Text140 = Unicode(min_len=1, max_len=140)
Text210 = Unicode(min_len=1, max_len=210)
FiscalCodePA = Unicode(pattern="[0-9]{11}")
NoticeNumber = Unicode(pattern="[0-9]{18}")
NazioneProvincia = Unicode(pattern="[A-Z]{2,2}")
EMail = Unicode(max_len=256, pattern=r"[a-zA-Z0-9_\.\+\-]+@[a-zA-Z0-9\-]+(\.[a-zA-Z0-9\-]+)*")
Outcome = Unicode(values=[OUTCOME_OK, OUTCOME_KO])
Amount = Decimal(str_format="{:.2f}")
AmountNotZero = Decimal(str_format="{:.2f}")
AmountOption = Unicode(values=["EQ", "LS", "GT", "ANY"])
TransferType = Unicode(values=["POSTAL", "PAGOPA"])
IdTransfer = Integer32(ge=1, le=5)
IBAN = Unicode(min_len=1, max_len=35)
EntityUniqueIdentifierType = Unicode(values=["F", "G"])
EntityUniqueIdentifierValue = Unicode(min_len=2, max_len=16)
IdentificativoServizio = Unicode(min_len=5, max_len=5)
TipoBolloDigitale = Unicode(values=["01"])


def _required(cls: Any) -> Any:
    return cls.customize(min_occurs=1)


# --- sac-common-types ------------------------------------------------------------------------------

class ctFaultBean(ComplexModel):
    __namespace__ = COMMON_NS
    _type_info = [
        ("faultCode", _required(Unicode)),
        ("faultString", _required(Unicode)),
        ("id", _required(Unicode)),
        ("description", Unicode),
        ("serial", Integer32),
        ("originalFaultCode", Unicode),
        ("originalFaultString", Unicode),
        ("originalDescription", Unicode),
    ]


class ctResponse(ComplexModel):
    __namespace__ = COMMON_NS
    _type_info = [
        ("outcome", _required(Outcome)),
        ("fault", ctFaultBean),
    ]


class ctMapEntry(ComplexModel):
    __namespace__ = COMMON_NS
    _type_info = [
        ("key", _required(Text140)),
        ("value", _required(Text140)),
    ]


class ctMetadata(ComplexModel):
    __namespace__ = COMMON_NS
    _type_info = [
        ("mapEntry", ctMapEntry.customize(min_occurs=1, max_occurs=15)),
    ]


class ctRichiestaMarcaDaBollo(ComplexModel):
    __namespace__ = COMMON_NS
    _type_info = [
        ("hashDocumento", _required(ByteArray)),
        ("tipoBollo", _required(TipoBolloDigitale)),
        ("provinciaResidenza", _required(NazioneProvincia)),
    ]


# --- paForNode.xsd: shared complex types -----------------------------------------------------------

class ctEntityUniqueIdentifier(ComplexModel):
    __namespace__ = PAFN_NS
    _type_info = [
        ("entityUniqueIdentifierType", _required(EntityUniqueIdentifierType)),
        ("entityUniqueIdentifierValue", _required(EntityUniqueIdentifierValue)),
    ]


class ctSubject(ComplexModel):
    """Debtor or payer. ``e-mail`` is not a Python name: read it with ``getattr(subject, "e-mail")``."""

    __namespace__ = PAFN_NS
    _type_info = [
        ("uniqueIdentifier", _required(ctEntityUniqueIdentifier)),
        ("fullName", _required(Text70)),
        ("streetName", Text70),
        ("civicNumber", Text16),
        ("postalCode", Text16),
        ("city", Text35),
        ("stateProvinceRegion", Text35),
        ("country", NazioneProvincia),
        ("e-mail", EMail),
    ]


class ctQrCode(ComplexModel):
    __namespace__ = PAFN_NS
    _type_info = [
        ("fiscalCode", _required(FiscalCodePA)),
        ("noticeNumber", _required(NoticeNumber)),
    ]


class ctPaymentOptionDescriptionPA(ComplexModel):
    __namespace__ = PAFN_NS
    _type_info = [
        ("amount", _required(AmountNotZero)),
        ("options", _required(AmountOption)),
        ("dueDate", Date),
        ("detailDescription", Text140),
        ("allCCP", _required(Boolean)),
    ]


class ctPaymentOptionsDescriptionListPA(ComplexModel):
    __namespace__ = PAFN_NS
    _type_info = [
        ("paymentOptionDescription", _required(ctPaymentOptionDescriptionPA)),
    ]


class ctTransferPA(ComplexModel):
    __namespace__ = PAFN_NS
    _type_info = [
        ("idTransfer", _required(IdTransfer)),
        ("transferAmount", _required(AmountNotZero)),
        ("fiscalCodePA", _required(FiscalCodePA)),
        ("IBAN", _required(IBAN)),
        ("remittanceInformation", _required(Text140)),
        ("transferCategory", _required(Text140)),
        ("metadata", ctMetadata),
    ]


class ctTransferListPA(ComplexModel):
    __namespace__ = PAFN_NS
    _type_info = [
        ("transfer", ctTransferPA.customize(min_occurs=1, max_occurs=5)),
    ]


class ctTransferPAV2(ComplexModel):
    """IBAN and richiestaMarcaDaBollo are an xsd:choice: set exactly one (Spyne has no choice)."""

    __namespace__ = PAFN_NS
    _type_info = [
        ("idTransfer", _required(IdTransfer)),
        ("transferAmount", _required(AmountNotZero)),
        ("fiscalCodePA", _required(FiscalCodePA)),
        ("companyName", Text140),
        ("IBAN", IBAN),
        ("richiestaMarcaDaBollo", ctRichiestaMarcaDaBollo),
        ("remittanceInformation", _required(Text140)),
        ("transferCategory", _required(Text140)),
        ("metadata", ctMetadata),
    ]


class ctTransferListPAV2(ComplexModel):
    __namespace__ = PAFN_NS
    _type_info = [
        ("transfer", ctTransferPAV2.customize(min_occurs=1, max_occurs=5)),
    ]


class ctTransferPAReceiptV2(ComplexModel):
    """IBAN and MBDAttachment (the stamp, base64) are an xsd:choice: exactly one arrives."""

    __namespace__ = PAFN_NS
    _type_info = [
        ("idTransfer", _required(IdTransfer)),
        ("transferAmount", _required(AmountNotZero)),
        ("fiscalCodePA", _required(FiscalCodePA)),
        ("companyName", Text140),
        ("IBAN", IBAN),
        ("MBDAttachment", ByteArray),
        ("remittanceInformation", _required(Text140)),
        ("transferCategory", _required(Text140)),
        ("metadata", ctMetadata),
    ]


class ctTransferListPAReceiptV2(ComplexModel):
    __namespace__ = PAFN_NS
    _type_info = [
        ("transfer", ctTransferPAReceiptV2.customize(min_occurs=1, max_occurs=5)),
    ]


class ctPaymentPA(ComplexModel):
    __namespace__ = PAFN_NS
    _type_info = [
        ("creditorReferenceId", _required(Text35)),
        ("paymentAmount", _required(AmountNotZero)),
        ("dueDate", _required(Date)),
        ("retentionDate", DateTime),
        ("lastPayment", Boolean),
        ("description", _required(Text140)),
        ("companyName", Text140),
        ("officeName", Text140),
        ("debtor", _required(ctSubject)),
        ("transferList", _required(ctTransferListPA)),
        ("metadata", ctMetadata),
    ]


class ctPaymentPAV2(ComplexModel):
    __namespace__ = PAFN_NS
    _type_info = [
        ("creditorReferenceId", _required(Text35)),
        ("paymentAmount", _required(AmountNotZero)),
        ("dueDate", _required(Date)),
        ("retentionDate", DateTime),
        ("lastPayment", Boolean),
        ("description", _required(Text140)),
        ("companyName", _required(Text140)),
        ("officeName", Text140),
        ("debtor", _required(ctSubject)),
        ("transferList", _required(ctTransferListPAV2)),
        ("metadata", ctMetadata),
    ]


class ctReceipt(ComplexModel):
    __namespace__ = PAFN_NS
    _type_info = [
        ("receiptId", _required(Unicode)),
        ("noticeNumber", _required(NoticeNumber)),
        ("fiscalCode", _required(FiscalCodePA)),
        ("outcome", _required(Outcome)),
        ("creditorReferenceId", _required(Text35)),
        ("paymentAmount", _required(Amount)),
        ("description", _required(Text140)),
        ("companyName", _required(Text140)),
        ("officeName", Text140),
        ("debtor", _required(ctSubject)),
        ("transferList", _required(ctTransferListPA)),
        ("idPSP", _required(Text35)),
        ("pspFiscalCode", Text70),
        ("pspPartitaIVA", Text20),
        ("PSPCompanyName", _required(Text70)),
        ("idChannel", _required(Text35)),
        ("channelDescription", _required(Text35)),
        ("payer", ctSubject),
        ("paymentMethod", Text35),
        ("fee", Amount),
        ("paymentDateTime", DateTime),
        ("applicationDate", Date),
        ("transferDate", Date),
        ("metadata", ctMetadata),
        ("standIn", Boolean),
    ]


class ctReceiptV2(ComplexModel):
    __namespace__ = PAFN_NS
    _type_info = [
        ("receiptId", _required(Unicode)),
        ("noticeNumber", _required(NoticeNumber)),
        ("fiscalCode", _required(FiscalCodePA)),
        ("outcome", _required(Outcome)),
        ("creditorReferenceId", _required(Text35)),
        ("paymentAmount", _required(Amount)),
        ("description", _required(Text140)),
        ("companyName", _required(Text140)),
        ("officeName", Text140),
        ("debtor", _required(ctSubject)),
        ("transferList", _required(ctTransferListPAReceiptV2)),
        ("idPSP", _required(Text35)),
        ("pspFiscalCode", Text70),
        ("pspPartitaIVA", Text20),
        ("PSPCompanyName", _required(Text70)),
        ("idChannel", _required(Text35)),
        ("channelDescription", _required(Text35)),
        ("payer", ctSubject),
        ("paymentMethod", Text35),
        ("paymentNote", Text210),
        ("fee", Amount),
        ("primaryCiIncurredFee", Amount),
        ("idBundle", Text70),
        ("idCiBundle", Text70),
        ("paymentDateTime", DateTime),
        ("applicationDate", Date),
        ("transferDate", Date),
        ("metadata", ctMetadata),
        ("standIn", Boolean),
    ]


# --- requests and responses ------------------------------------------------------------------------
# Type names equal the root element names; the operation names differ (paVerifyPaymentNotice takes
# paVerifyPaymentNoticeReq), so every operation passes request_element=REQUEST_ELEMENTS[name].

class paVerifyPaymentNoticeReq(ComplexModel):
    __namespace__ = PAFN_NS
    _type_info = [
        ("idPA", _required(Text35)),
        ("idBrokerPA", _required(Text35)),
        ("idStation", _required(Text35)),
        ("qrCode", _required(ctQrCode)),
    ]


class paVerifyPaymentNoticeRes(ctResponse):
    __namespace__ = PAFN_NS
    _type_info = [
        ("paymentList", ctPaymentOptionsDescriptionListPA),
        ("paymentDescription", Text140),
        ("fiscalCodePA", FiscalCodePA),
        ("companyName", Text140),
        ("officeName", Text140),
    ]


class paGetPaymentReq(ComplexModel):
    __namespace__ = PAFN_NS
    _type_info = [
        ("idPA", _required(Text35)),
        ("idBrokerPA", _required(Text35)),
        ("idStation", _required(Text35)),
        ("qrCode", _required(ctQrCode)),
        ("amount", Amount),
        ("paymentNote", Text210),
        ("transferType", TransferType),
        ("dueDate", Date),
    ]


class paGetPaymentRes(ctResponse):
    __namespace__ = PAFN_NS
    _type_info = [
        ("data", ctPaymentPA),
    ]


class paGetPaymentV2Request(ComplexModel):
    __namespace__ = PAFN_NS
    _type_info = [
        ("idPA", _required(Text35)),
        ("idBrokerPA", _required(Text35)),
        ("idStation", _required(Text35)),
        ("qrCode", _required(ctQrCode)),
        ("amount", Amount),
        ("paymentNote", Text210),
        ("transferType", TransferType),
        ("dueDate", Date),
    ]


class paGetPaymentV2Response(ctResponse):
    __namespace__ = PAFN_NS
    _type_info = [
        ("data", ctPaymentPAV2),
    ]


class paSendRTReq(ComplexModel):
    __namespace__ = PAFN_NS
    _type_info = [
        ("idPA", _required(Text35)),
        ("idBrokerPA", _required(Text35)),
        ("idStation", _required(Text35)),
        ("receipt", _required(ctReceipt)),
    ]


class paSendRTRes(ctResponse):
    __namespace__ = PAFN_NS
    _type_info: list = []


class paSendRTV2Request(ComplexModel):
    __namespace__ = PAFN_NS
    _type_info = [
        ("idPA", _required(Text35)),
        ("idBrokerPA", _required(Text35)),
        ("idStation", _required(Text35)),
        ("receipt", _required(ctReceiptV2)),
    ]


class paSendRTV2Response(ctResponse):
    __namespace__ = PAFN_NS
    _type_info: list = []


class paDemandPaymentNoticeRequest(ComplexModel):
    __namespace__ = PAFN_NS
    _type_info = [
        ("idPA", _required(Text35)),
        ("idBrokerPA", _required(Text35)),
        ("idStation", _required(Text35)),
        ("idServizio", _required(IdentificativoServizio)),
        ("idSoggettoServizio", _required(IdentificativoServizio)),
        ("datiSpecificiServizioRequest", _required(ByteArray)),
    ]


class paDemandPaymentNoticeResponse(ctResponse):
    __namespace__ = PAFN_NS
    _type_info = [
        ("qrCode", ctQrCode),
        ("paymentList", ctPaymentOptionsDescriptionListPA),
        ("paymentDescription", Text140),
        ("fiscalCodePA", FiscalCodePA),
        ("companyName", Text140),
        ("officeName", Text140),
    ]


# operation -> (request type, response type); root element names are the type names.
OPERATIONS: dict[str, tuple[type, type]] = {
    "paVerifyPaymentNotice": (paVerifyPaymentNoticeReq, paVerifyPaymentNoticeRes),
    "paGetPayment": (paGetPaymentReq, paGetPaymentRes),
    "paGetPaymentV2": (paGetPaymentV2Request, paGetPaymentV2Response),
    "paSendRT": (paSendRTReq, paSendRTRes),
    "paSendRTV2": (paSendRTV2Request, paSendRTV2Response),
    "paDemandPaymentNotice": (paDemandPaymentNoticeRequest, paDemandPaymentNoticeResponse),
}


def fault_bean(fault: faults.Fault, default_id: str | None = None) -> ctFaultBean:
    # ``id`` is mandatory in the contract: the ente's fiscal code unless the fault names another.
    return ctFaultBean(faultCode=fault.code, faultString=fault.string, id=fault.id or default_id or "",
                       description=fault.description, serial=fault.serial)


def fault_response(response_type: type, fault: faults.Fault, request: Any) -> Any:
    """``FaultMapper`` for ``gateway.soap.common.operation``: outcome KO plus the faultBean."""
    return response_type(outcome=OUTCOME_KO, fault=fault_bean(fault, getattr(request, "idPA", None)))
