"""Spyne models of the ente contract ``PagamentiTelematiciDovutiPagati`` (its WSDL: wsdl/, same name).

One class per complex type, named after it, children in contract order; they drive (de)serialisation only.
"""

from __future__ import annotations

import decimal
from typing import Any, NamedTuple

from spyne import (Boolean, ByteArray, ComplexModel, Date, DateTime, Decimal, Integer, Integer32,
                   Unicode)

from gateway import faults

PPT_NS = "http://www.regione.veneto.it/pagamenti/ente/"
PPTHEAD_NS = "http://www.regione.veneto.it/pagamenti/ente/ppthead"
PAY_I_NS = "http://www.regione.veneto.it/schemas/2012/Pagamenti/Ente/"
SERVICE_NS = "http://www.regione.veneto.it/pagamenti/ente/PagamentiTelematiciDovutiPagati"
SERVICE_NAME = "PagamentiTelematiciDovutiPagati"

# Simple types of the contract. Facets are informative: the application runs without Spyne validation.
_stText35 = Unicode(min_len=1, max_len=35)
_stText70 = Unicode(min_len=1, max_len=70)
_stText80 = Unicode(min_len=1, max_len=35)  # sic: MyPay's stText80 allows 35 characters
_stText100 = Unicode(min_len=1, max_len=35)  # sic, as stText80
_stText1 = Unicode(min_len=1, max_len=1)
_stPassword = Unicode(min_len=8, max_len=15)
_hashSHA256 = Unicode(min_len=64, max_len=64)
_stShowMyPay = Unicode(max_len=4, values=["SHORT", "NONE"])
# pay_i:stImporto is an xsd:decimal with two decimals: Decimal keeps "10.50" exact.
_stImporto = Decimal(ge=decimal.Decimal("0.00"), le=decimal.Decimal("999999999.99"),
                     pattern=r"\d+\.\d{2}")
_stIndice = Integer(ge=1, le=5)
_stTipoIdentificativoUnivocoPersFG = Unicode(values=["F", "G"])


def _required(cls: Any) -> Any:
    return cls.customize(min_occurs=1)


def _repeated(cls: Any, min_occurs: int = 0) -> Any:
    # Repeated elements have no wrapper in the contract, so no spyne Array here.
    return cls.customize(min_occurs=min_occurs, max_occurs="unbounded")


# --- header ----------------------------------------------------------------------------------------

class intestazionePPT(ComplexModel):
    __namespace__ = PPTHEAD_NS
    _type_info = [("codIpaEnte", _required(_stText35))]


# --- payload-schema type used in requests ------------------------------------------------------------

class ctIdentificativoUnivocoPersonaFG(ComplexModel):
    # Its schema is elementFormDefault="qualified": zeep sends these children in PAY_I_NS, hand-built
    # clients often unqualified; Spyne matches children by local name, so both forms are read.
    __namespace__ = PAY_I_NS
    _type_info = [
        ("tipoIdentificativoUnivoco", _required(_stTipoIdentificativoUnivocoPersFG)),
        ("codiceIdentificativoUnivoco", _required(_stText35)),
    ]


# --- fault model -----------------------------------------------------------------------------------

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


# --- paaSILInviaDovuti -----------------------------------------------------------------------------

class paaSILInviaDovuti(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("password", _stPassword),
        ("dovuti", _required(ByteArray)),
        ("enteSILInviaRispostaPagamentoUrl", Unicode),
        ("showMyPay", _stShowMyPay),
    ]


class paaSILInviaDovutiRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [
        ("esito", Unicode),
        ("idSession", Unicode),
        ("redirect", Integer32),
        ("url", Unicode),
    ]


# --- paaSILInviaCarrelloDovuti ---------------------------------------------------------------------

class elementoListaDovuti(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("codIpaEnte", _required(_stText35)),
        ("password", _required(_hashSHA256)),
        ("dovuti", _required(ByteArray)),
    ]


class listaDovuti(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [("elementoListaDovuti", _repeated(elementoListaDovuti, min_occurs=1))]


class elementoListaDovutiEntiSecondari(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [("dovutiEntiSecondari", _required(ByteArray))]


class listaDovutiEntiSecondari(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [("elementoListaDovutiEntiSecondari",
                   _repeated(elementoListaDovutiEntiSecondari, min_occurs=1))]


class paaSILInviaCarrelloDovuti(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("password", _required(_stPassword)),
        ("listaDovuti", _required(listaDovuti)),
        ("listaDovutiEntiSecondari", listaDovutiEntiSecondari),
        ("enteSILInviaRispostaPagamentoUrl", Unicode),
    ]


class paaSILInviaCarrelloDovutiRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [
        ("esito", Unicode),
        ("idSessionCarrello", Unicode),
        ("redirect", Integer32),
        ("url", Unicode),
    ]


# --- paaSILVerificaAvviso --------------------------------------------------------------------------

class paaSILVerificaAvviso(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("password", _stPassword),
        ("identificativoUnivocoVersamento", _required(_stText35)),
        ("enteSILInviaRispostaPagamentoUrl", Unicode),
    ]


class paaSILVerificaAvvisoRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [
        ("esito", Unicode),
        ("idSession", Unicode),
        ("redirect", Integer32),
        ("url", Unicode),
    ]


# --- paaSILChiediPagati ----------------------------------------------------------------------------

class paaSILChiediPagati(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("codIpaEnte", _required(_stText35)),
        ("password", _stPassword),
        ("idSession", _required(Unicode)),
    ]


class paaSILChiediPagatiRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [("pagati", ByteArray)]


# --- paaSILChiediPagatiConRicevuta -----------------------------------------------------------------

class paaSILChiediPagatiConRicevuta(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("codIpaEnte", _required(_stText35)),
        ("password", _stPassword),
        ("idSession", Unicode),
        ("identificativoUnivocoVersamento", _stText35),
        ("identificativoUnivocoDovuto", _stText35),
    ]


class paaSILChiediPagatiConRicevutaRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [
        ("pagati", ByteArray),
        ("tipoFirma", Unicode),
        ("rt", ByteArray),
    ]


# --- paaSILChiediEsitoCarrelloDovuti ---------------------------------------------------------------

class paaSILChiediEsitoCarrelloDovuti(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("codIpaEnte", _required(_stText35)),
        ("password", _stPassword),
        ("idSessionCarrello", _required(Unicode)),
    ]


class rispostaCarrello(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("esito", _required(Unicode)),
        ("codIpaEnte", _required(_stText35)),
        ("codIdentificativoUnivocoCarrello", _required(_stText35)),
        ("pagati", ByteArray),
        ("rt", ByteArray),
    ]


class listaCarrelli(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [("rispostaCarrello", _repeated(rispostaCarrello, min_occurs=1))]


class paaSILChiediEsitoCarrelloDovutiRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [("listaCarrelli", _required(listaCarrelli))]


# --- paaSILImportaDovuto ---------------------------------------------------------------------------

class paaSILImportaDovuto(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("password", _stPassword),
        ("dovuto", _required(ByteArray)),
        ("flagGeneraIuv", Boolean),
        ("listaDovutiEntiSecondari", listaDovutiEntiSecondari),
    ]


class paaSILImportaDovutoRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [
        ("esito", Unicode),
        ("identificativoUnivocoVersamento", _stText35),
        ("urlFileAvviso", Unicode),
        ("base64ZipAvviso", ByteArray),
    ]


# --- paaSILRegistraPagamento -----------------------------------------------------------------------

class paaSILRegistraPagamento(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("codIpaEnte", _required(_stText35)),
        ("password", _stPassword),
        ("identificativoUnivocoVersamento", _required(_stText35)),
        ("codiceContestoPagamento", _stText35),
        ("singoloImportoPagato", _required(_stImporto)),
        ("dataEsitoSingoloPagamento", _required(Date)),
        ("indiceDatiSingoloPagamento", _stIndice),
        ("identificativoUnivocoRiscossione", _required(_stText35)),
        ("tipoIstitutoAttestante", _required(_stText1)),
        ("codiceIstitutiAttestante", _required(_stText35)),
        ("denominazioneAttestante", _required(_stText70)),
    ]


class paaSILRegistraPagamentoRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [("esito", Unicode)]


# --- import flows ----------------------------------------------------------------------------------

class paaSILAutorizzaImportFlusso(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [("password", _stPassword)]


class paaSILAutorizzaImportFlussoRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [
        ("uploadUrl", _required(Unicode)),
        ("authorizationToken", _required(Unicode)),
        ("requestToken", _required(Unicode)),
        ("importPath", _required(Unicode)),
    ]


class paaSILChiediStatoImportFlusso(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("requestToken", _required(Unicode)),
        ("password", _stPassword),
        ("fileScarti", Boolean),
        ("fileIUV", Boolean),
        ("fileAvvisi", Boolean),
    ]


class paaSILChiediStatoImportFlussoRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [
        ("stato", _required(Unicode)),
        ("urlFileScarti", Unicode),
        ("urlFileIUV", Unicode),
        ("urlFileAvvisi", Unicode),
    ]


# --- export flows ----------------------------------------------------------------------------------

class paaSILPrenotaExportFlusso(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("password", _stPassword),
        ("dateFrom", _required(Date)),
        ("dateTo", _required(Date)),
        ("identificativoTipoDovuto", _stText35),
        ("versioneTracciato", _stText35),
    ]


class paaSILPrenotaExportFlussoRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [("requestToken", _required(Unicode))]


class paaSILPrenotaExportFlussoIncrementaleConRicevuta(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("password", _stPassword),
        ("dateFrom", _required(DateTime)),
        ("dateTo", DateTime),
        ("identificativoTipoDovuto", _stText35),
        ("ricevuta", _required(Boolean)),
        ("incrementale", _required(Boolean)),
        ("versioneTracciato", _stText35),
        ("passwordMypivot", _stPassword),
    ]


class paaSILPrenotaExportFlussoIncrementaleConRicevutaRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [
        ("requestToken", _required(Unicode)),
        ("dateTo", _required(DateTime)),
    ]


class paaSILPrenotaExportFlussoScaduti(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("password", _stPassword),
        ("dataScadenza", _required(Date)),
        ("tipiDovuto", _required(Unicode)),
    ]


class paaSILPrenotaExportFlussoScadutiRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [("requestToken", _required(Unicode))]


class paaSILChiediStatoExportFlusso(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("password", _stPassword),
        ("requestToken", _required(Unicode)),
    ]


class paaSILChiediStatoExportFlussoRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [
        ("stato", _required(Unicode)),
        ("downloadUrl", _required(Unicode)),
    ]


class paaSILChiediStatoExportFlussoScaduti(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("password", _stPassword),
        ("requestToken", _required(Unicode)),
    ]


class paaSILChiediStatoExportFlussoScadutiRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [
        ("stato", _required(Unicode)),
        ("nomeFile", _required(Unicode)),
        ("downloadUrl", _required(Unicode)),
        ("pathFile", _required(Unicode)),
    ]


# --- paaSILChiediAvvisiPendenti (declared by MyPay, never implemented there) --------------------

class paaSILChiediAvvisiPendenti(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("password", _stPassword),
        ("codIpaEnte", _required(_stText35)),
        ("dateFrom", _required(Date)),
        ("dateTo", _required(Date)),
    ]


class paaSILAvvisoPendente(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("dtCreazioneCodIuv", _required(Date)),
        ("dovuti", ByteArray),
    ]


class paaSILChiediAvvisiPendentiRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [("paaSILAvvisoPendente", _repeated(paaSILAvvisoPendente))]


# --- paaSILChiediPosizioniAperte -------------------------------------------------------------------

class paaSILChiediPosizioniAperte(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("password", _stPassword),
        ("codIpaEnte", _stText35),
        ("identificativoUnivocoPersonaFG", _required(ctIdentificativoUnivocoPersonaFG)),
    ]


class paaSILPosizioniAperte(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("codIpaEnte", _required(_stText80)),
        ("deNomeEnte", _required(_stText100)),
        ("urlPagamento", Unicode),
        ("dovuti", _required(ByteArray)),
    ]


class paaSILChiediPosizioniAperteRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [("paaSILPosizioniAperte", _repeated(paaSILPosizioniAperte))]


# --- paaSILChiediStoricoPagamenti ------------------------------------------------------------------

class paaSILChiediStoricoPagamenti(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("password", _stPassword),
        ("codIpaEnte", _stText35),
        ("identificativoUnivocoPersonaFG", _required(ctIdentificativoUnivocoPersonaFG)),
        ("dataFrom", _required(DateTime)),
        ("dataTo", DateTime),
    ]


class paaSILStoricoPagamenti(ComplexModel):
    __namespace__ = PPT_NS
    _type_info = [
        ("ctPagatiConRicevuta", ByteArray),
        ("urlDownloadRT", Unicode),
        ("rt", ByteArray),
        ("codIpaEnte", _required(_stText80)),
        ("deNomeEnte", _required(_stText100)),
    ]


class paaSILChiediStoricoPagamentiRisposta(risposta):
    __namespace__ = PPT_NS
    _type_info = [
        ("dateTo", _required(DateTime)),
        ("paaSILStoricoPagamenti", _repeated(paaSILStoricoPagamenti)),
    ]


# --- operation table -------------------------------------------------------------------------------

class Operation(NamedTuple):
    request: type
    response: type
    header: bool  # True where the contract binds intestazionePPT in the SOAP header


OPERATIONS: dict[str, Operation] = {
    "paaSILInviaDovuti": Operation(paaSILInviaDovuti, paaSILInviaDovutiRisposta, True),
    "paaSILInviaCarrelloDovuti": Operation(paaSILInviaCarrelloDovuti, paaSILInviaCarrelloDovutiRisposta, True),
    "paaSILVerificaAvviso": Operation(paaSILVerificaAvviso, paaSILVerificaAvvisoRisposta, True),
    "paaSILChiediPagati": Operation(paaSILChiediPagati, paaSILChiediPagatiRisposta, False),
    "paaSILChiediPagatiConRicevuta": Operation(paaSILChiediPagatiConRicevuta,
                                               paaSILChiediPagatiConRicevutaRisposta, False),
    "paaSILImportaDovuto": Operation(paaSILImportaDovuto, paaSILImportaDovutoRisposta, True),
    "paaSILRegistraPagamento": Operation(paaSILRegistraPagamento, paaSILRegistraPagamentoRisposta, False),
    "paaSILAutorizzaImportFlusso": Operation(paaSILAutorizzaImportFlusso,
                                             paaSILAutorizzaImportFlussoRisposta, True),
    "paaSILChiediStatoImportFlusso": Operation(paaSILChiediStatoImportFlusso,
                                               paaSILChiediStatoImportFlussoRisposta, True),
    "paaSILPrenotaExportFlusso": Operation(paaSILPrenotaExportFlusso, paaSILPrenotaExportFlussoRisposta, True),
    "paaSILPrenotaExportFlussoScaduti": Operation(paaSILPrenotaExportFlussoScaduti,
                                                  paaSILPrenotaExportFlussoScadutiRisposta, True),
    "paaSILPrenotaExportFlussoIncrementaleConRicevuta": Operation(
        paaSILPrenotaExportFlussoIncrementaleConRicevuta,
        paaSILPrenotaExportFlussoIncrementaleConRicevutaRisposta, True),
    "paaSILChiediStatoExportFlusso": Operation(paaSILChiediStatoExportFlusso,
                                               paaSILChiediStatoExportFlussoRisposta, True),
    "paaSILChiediStatoExportFlussoScaduti": Operation(paaSILChiediStatoExportFlussoScaduti,
                                                      paaSILChiediStatoExportFlussoScadutiRisposta, True),
    "paaSILChiediAvvisiPendenti": Operation(paaSILChiediAvvisiPendenti, paaSILChiediAvvisiPendentiRisposta, False),
    "paaSILChiediEsitoCarrelloDovuti": Operation(paaSILChiediEsitoCarrelloDovuti,
                                                 paaSILChiediEsitoCarrelloDovutiRisposta, False),
    "paaSILChiediPosizioniAperte": Operation(paaSILChiediPosizioniAperte,
                                             paaSILChiediPosizioniAperteRisposta, False),
    "paaSILChiediStoricoPagamenti": Operation(paaSILChiediStoricoPagamenti,
                                              paaSILChiediStoricoPagamentiRisposta, False),
}

# gateway.soap.common.operation hands ``header`` straight to spyne's ``_in_header``, which must be a tuple.
HEADER = (intestazionePPT,)


# --- faults ----------------------------------------------------------------------------------------

def fault_bean(fault: faults.Fault, default_id: str | None = None) -> faultBean:
    # ``id`` is mandatory in the contract: a strict client refuses a faultBean without it.
    return faultBean(faultCode=fault.code, faultString=fault.string, id=fault.id or default_id or "",
                     description=fault.description, serial=fault.serial)


def fault_response(response_type: type, fault: faults.Fault, request: Any) -> Any:
    """The operation's own response carrying ``fault``; ``esito`` is KO where the response has one.

    The fault id defaults to the body's codIpaEnte; header operations must set ``Fault.id`` themselves.
    """
    response = response_type(fault=fault_bean(fault, getattr(request, "codIpaEnte", None)))
    if "esito" in response_type.get_flat_type_info(response_type):
        response.esito = "KO"
    return response
