"""Spyne models of the MyPivot contract ``PagamentiTelematiciFlussiSPC`` (its WSDL: wsdl/, same name).

Its body namespace is ``.../pagamenti/pa/``, not the ``.../ente/`` of DovutiPagati: same type names, other QNames.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from spyne import ComplexModel, Date, DateTime, Integer32, Unicode

from gateway import faults

PPT_NS = "http://www.regione.veneto.it/pagamenti/pa/"
SERVICE_NS = "http://www.regione.veneto.it/pagamenti/pa/PagamentiTelematiciFlussiSPC"
SERVICE_NAME = "PagamentiTelematiciFlussiSPC"

_stPassword = Unicode(min_len=8, max_len=15)


def _required(cls: Any) -> Any:
    return cls.customize(min_occurs=1)


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
    _type_info = [("fault", faultBean)]


# --- paaSILChiediElencoFlussiSPC -------------------------------------------------------------------

class paaSILChiediElencoFlussiSPC(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("password", _required(_stPassword)),
        ("codIpaEnte", _required(Unicode)),
        ("identificativoPsp", _required(Unicode)),
        ("tipoFlusso", _required(Unicode)),
        ("dateFrom", _required(Date)),
        ("dateTo", _required(Date)),
    ]


class tipoIdSPC(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("identificativoFlusso", _required(Unicode)),
        ("dataOraFlusso", _required(DateTime)),
    ]


class tipoElencoFlussiSPC(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("totRestituiti", _required(Integer32)),
        # No wrapper element around the repeated idSPC, hence no spyne Array.
        ("idSPC", tipoIdSPC.customize(min_occurs=0, max_occurs="unbounded", nillable=True)),
    ]


class paaSILChiediElencoFlussiSPCRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [("elencoFlussiSPC", tipoElencoFlussiSPC)]


# --- paaSILChiediFlussoSPC -------------------------------------------------------------------------

class paaSILChiediFlussoSPC(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("password", _required(_stPassword)),
        ("codIpaEnte", _required(Unicode)),
        ("identificativoPsp", _required(Unicode)),
        ("tipoFlusso", _required(Unicode)),
        ("identificativoFlusso", _required(Unicode)),
        ("dataOraFlusso", _required(DateTime)),
    ]


class paaSILChiediFlussoSPCRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [
        ("stato", _required(Unicode)),
        ("downloadUrl", _required(Unicode)),
    ]


class Operation(NamedTuple):
    request: type
    response: type
    header: bool  # always False: this contract has no SOAP header


OPERATIONS: dict[str, Operation] = {
    "paaSILChiediElencoFlussiSPC": Operation(paaSILChiediElencoFlussiSPC, paaSILChiediElencoFlussiSPCRisposta,
                                             False),
    "paaSILChiediFlussoSPC": Operation(paaSILChiediFlussoSPC, paaSILChiediFlussoSPCRisposta, False),
}


def fault_bean(fault: faults.Fault, default_id: str | None = None) -> faultBean:
    return faultBean(faultCode=fault.code, faultString=fault.string, id=fault.id or default_id or "",
                     description=fault.description, serial=fault.serial)


def fault_response(response_type: type, fault: faults.Fault, request: Any) -> Any:
    """The operation's own response carrying ``fault``; ChiediFlussoSPC also answers ``stato=KO``."""
    response = response_type(fault=fault_bean(fault, getattr(request, "codIpaEnte", None)))
    if "stato" in response_type.get_flat_type_info(response_type):
        response.stato = "KO"
    return response
