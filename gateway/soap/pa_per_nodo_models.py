"""Spyne models of PaPerNodo (legacy modello 1: the pagoPA node delivering RTs to the ente), wire-equivalent
to the schemas embedded in ``wsdl/PaPerNodo.wsdl``; local elements, header children included, are unqualified.
"""

from __future__ import annotations

from typing import Any

from spyne import ByteArray, ComplexModel, Integer32, Unicode

from gateway import faults

PPT_NS = "http://ws.pagamenti.telematici.gov/"
PPTHEAD_NS = "http://ws.pagamenti.telematici.gov/ppthead"
# Namespace of the WSDL definitions (binding, portType), not of any element.
PPT_WSDL_NS = "http://NodoPagamentiSPC.spcoop.gov.it/servizi/PagamentiTelematiciRT"

ESITO_OK = "OK"
ESITO_KO = "KO"

Text35 = Unicode(min_len=1, max_len=35)  # facets informative: Spyne runs with validator=None


def _required(cls: Any) -> Any:
    return cls.customize(min_occurs=1)


class intestazionePPT(ComplexModel):
    """SOAP header of paaInviaRT (an anonymous type in the contract, named after its element here)."""

    __namespace__ = PPTHEAD_NS
    _type_info = [
        ("identificativoIntermediarioPA", _required(Text35)),
        ("identificativoStazioneIntermediarioPA", _required(Text35)),
        ("identificativoDominio", _required(Text35)),
        ("identificativoUnivocoVersamento", _required(Text35)),
        ("codiceContestoPagamento", _required(Text35)),
    ]


class faultBean(ComplexModel):
    __namespace__ = PPT_NS
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


class risposta(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("fault", faultBean),
    ]


# --- paaInviaRT ------------------------------------------------------------------------------------

class paaInviaRT(ComplexModel):
    """``rt`` is the base64-decoded RT; Spyne hands a ByteArray over as a tuple of byte chunks."""

    __namespace__ = PPT_NS
    _type_info = [
        ("tipoFirma", Unicode(min_occurs=1, default="0")),
        ("rt", _required(ByteArray)),
    ]


class esitoPaaInviaRT(risposta):
    __namespace__ = PPT_NS
    _type_info = [
        ("esito", _required(Unicode)),
    ]


class paaInviaRTRisposta(ComplexModel):
    # The response root wraps one child of the same name: <ppt:paaInviaRTRisposta><paaInviaRTRisposta>.
    __namespace__ = PPT_NS
    _type_info = [
        ("paaInviaRTRisposta", _required(esitoPaaInviaRT)),
    ]


# --- paaInviaEsitoStorno ---------------------------------------------------------------------------

class paaInviaEsitoStorno(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("identificativoIntermediarioPA", _required(Text35)),
        ("identificativoStazioneIntermediarioPA", _required(Text35)),
        ("identificativoDominio", _required(Text35)),
        ("identificativoUnivocoVersamento", _required(Text35)),
        ("codiceContestoPagamento", _required(Text35)),
        ("er", _required(ByteArray)),
    ]


class tipoInviaEsitoStornoRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [
        ("esito", _required(Unicode)),
    ]


class paaInviaEsitoStornoRisposta(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("paaInviaEsitoStornoRisposta", _required(tipoInviaEsitoStornoRisposta)),
    ]


# --- paaInviaRichiestaRevoca -----------------------------------------------------------------------

class paaInviaRichiestaRevoca(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("identificativoDominio", _required(Text35)),
        ("identificativoUnivocoVersamento", _required(Text35)),
        ("codiceContestoPagamento", _required(Text35)),
        ("rr", _required(ByteArray)),
    ]


class tipoInviaRichiestaRevocaRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [
        ("esito", _required(Unicode)),
    ]


class paaInviaRichiestaRevocaRisposta(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("paaInviaRichiestaRevocaRisposta", _required(tipoInviaRichiestaRevocaRisposta)),
    ]


# operation -> (request type, response type, header type or None); element names are the type names.
OPERATIONS: dict[str, tuple[type, type, type | None]] = {
    "paaInviaRT": (paaInviaRT, paaInviaRTRisposta, intestazionePPT),
    "paaInviaEsitoStorno": (paaInviaEsitoStorno, paaInviaEsitoStornoRisposta, None),
    "paaInviaRichiestaRevoca": (paaInviaRichiestaRevoca, paaInviaRichiestaRevocaRisposta, None),
}


def esito(response_type: type, esito_value: str, fault: faultBean | None = None) -> Any:
    """Build ``response_type`` (one of the three ``...Risposta`` roots) around its single inner child."""
    (name, inner), = response_type._type_info.items()
    return response_type(**{name: inner(fault=fault, esito=esito_value)})


def fault_bean(fault: faults.Fault, default_id: str | None = None) -> faultBean:
    return faultBean(faultCode=fault.code, faultString=fault.string, id=fault.id or default_id or "",
                     description=fault.description, serial=fault.serial)


def fault_response(response_type: type, fault: faults.Fault, request: Any) -> Any:
    """``FaultMapper`` for ``gateway.soap.common.operation``: esito KO plus the faultBean.

    The request body carries no dominio for paaInviaRT (it is in the header), so ``id`` falls back to the
    body's ``identificativoDominio`` when there is one; callers wanting the header's should set ``fault.id``.
    """
    default_id = getattr(request, "identificativoDominio", None)
    return esito(response_type, ESITO_KO, fault_bean(fault, default_id))
