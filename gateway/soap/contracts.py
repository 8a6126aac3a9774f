"""The four contracts the gateway serves: where, with which WSDL, and how their faults look on the wire."""

from __future__ import annotations

from typing import Any

from lxml import etree

from gateway import faults
from gateway.settings import WSDL_DIR
from gateway.soap import ente_models, flussi_spc_models, pa_for_node_models, pa_per_nodo_models
from gateway.soap.common import build_application
from gateway.soap.endpoint import Contract
from gateway.soap.envelopes import ContractFaults, OperationShape
from gateway.xml import local_name


def _child_text(root: etree._Element | None, name: str) -> str:
    if root is None:
        return ""
    for element in root.iter():
        if local_name(element) == name and element.text:
            return element.text.strip()
    return ""


def _ente_faults() -> ContractFaults:
    shapes = {}
    for name, spec in ente_models.OPERATIONS.items():
        fields = spec.response.get_flat_type_info(spec.response)
        shapes[name] = OperationShape(spec.response.get_type_name(), (("esito", "KO"),) if "esito" in fields else ())
    return ContractFaults(ente_models.PPT_NS, shapes, {name: name for name in shapes})


def _flussi_spc_faults() -> ContractFaults:
    shapes = {"paaSILChiediElencoFlussiSPC": OperationShape("paaSILChiediElencoFlussiSPCRisposta"),
              "paaSILChiediFlussoSPC": OperationShape("paaSILChiediFlussoSPCRisposta", (("stato", "KO"),))}
    return ContractFaults(flussi_spc_models.PPT_NS, shapes, {name: name for name in shapes})


def _pa_for_node_faults() -> ContractFaults:
    shapes = {request.get_type_name(): OperationShape(response.get_type_name(), (("outcome", "KO"),), outcome_first=True)
              for request, response in pa_for_node_models.OPERATIONS.values()}
    actions = {name: request.get_type_name() for name, (request, _) in pa_for_node_models.OPERATIONS.items()}
    return ContractFaults(pa_for_node_models.PAFN_NS, shapes, actions)


def _pa_per_nodo_faults() -> ContractFaults:
    shapes = {name: OperationShape(response.get_type_name(), (("esito", "KO"),), wrapper=response.get_type_name())
              for name, (_request, response, _header) in pa_per_nodo_models.OPERATIONS.items()}
    return ContractFaults(pa_per_nodo_models.PPT_NS, shapes, {name: name for name in shapes})


def build_all() -> list[tuple[Contract, Any]]:
    from gateway.soap.ente import PagamentiTelematiciDovutiPagati
    from gateway.soap.flussi_spc import PagamentiTelematiciFlussiSPC
    from gateway.soap.pa_for_node import paForNode
    from gateway.soap import fast
    from gateway.soap.pa_per_nodo import PagamentiTelematiciRT

    return [
        (Contract("PagamentiTelematiciDovutiPagati", "/ente/PagamentiTelematiciDovutiPagati",
                  WSDL_DIR / "PagamentiTelematiciDovutiPagati.wsdl", _ente_faults(),
                  malformed_code=faults.PAA_XML_NON_VALIDO, invalid_code=faults.PAA_XML_NON_VALIDO,
                  fault_id=lambda root: _child_text(root, "codIpaEnte")),
         build_application([PagamentiTelematiciDovutiPagati], ente_models.PPT_NS, "PagamentiTelematiciDovutiPagati")),
        (Contract("PagamentiTelematiciFlussiSPC", "/ente/PagamentiTelematiciFlussiSPC",
                  WSDL_DIR / "PagamentiTelematiciFlussiSPC.wsdl", _flussi_spc_faults(),
                  malformed_code=faults.CODE_PAA_ERRORE_INTERNO, invalid_code=faults.CODE_PAA_ERRORE_INTERNO,
                  fault_id=lambda root: _child_text(root, "codIpaEnte")),
         build_application([PagamentiTelematiciFlussiSPC], flussi_spc_models.PPT_NS, "PagamentiTelematiciFlussiSPC")),
        (Contract("paForNode", "/pa/paForNode", WSDL_DIR / "paForNode.wsdl", _pa_for_node_faults(),
                  malformed_code=faults.PAA_SINTASSI_EXTRAXSD, invalid_code=faults.PAA_SINTASSI_XSD,
                  fault_id=lambda root: _child_text(root, "idPA"), fast=fast.for_runtime),
         build_application([paForNode], pa_for_node_models.PAFN_NS, "paForNode")),
        (Contract("PaPerNodo", "/pa/PaPerNodo", WSDL_DIR / "PaPerNodo.wsdl", _pa_per_nodo_faults(),
                  malformed_code=faults.PAA_SINTASSI_EXTRAXSD, invalid_code=faults.PAA_SINTASSI_XSD,
                  fault_id=lambda root: _child_text(root, "identificativoDominio")),
         build_application([PagamentiTelematiciRT], pa_per_nodo_models.PPT_NS, "PagamentiTelematiciRT")),
    ]
