"""Contract tests of the ente SOAP services: our WSDLs and Spyne models against MyPay's reference WSDLs.

Round trips run over real HTTP with zeep clients built from the *reference* WSDLs, and hand-built envelopes.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests
import zeep
from lxml import etree
from spyne import (Boolean, ByteArray, ComplexModelBase, Date, DateTime, Decimal, Integer, Integer32,
                   ServiceBase, Unicode)
from spyne.server.wsgi import WsgiApplication
from zeep.xsd.types.complex import ComplexType

from gateway import faults
from gateway.soap import ente_models, flussi_spc_models
from gateway.soap.common import build_application, operation

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT.parent / "shared" / "reference" / "mypay" / "wsdl"
OUR_ENTE_WSDL = ROOT / "wsdl" / "PagamentiTelematiciDovutiPagati.wsdl"
OUR_FLUSSI_WSDL = ROOT / "wsdl" / "PagamentiTelematiciFlussiSPC.wsdl"
REF_ENTE_WSDL = REFERENCE / "pa-per-ente.wsdl"
REF_FLUSSI_WSDL = REFERENCE / "mypivot-pa-per-ente.wsdl"

ENTE_BINDING = ("{http://www.regione.veneto.it/pagamenti/ente/PagamentiTelematiciDovutiPagati}"
                "PagamentiTelematiciDovutiPagatiBinding")
FLUSSI_BINDING = ("{http://www.regione.veneto.it/pagamenti/pa/PagamentiTelematiciFlussiSPC}"
                  "PagamentiTelematiciFlussiSPCbinding")

XSD_NS = "http://www.w3.org/2001/XMLSchema"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
SOAP_BINDING_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
PPT = ente_models.PPT_NS
PAY_I = ente_models.PAY_I_NS

CONTRACTS = [
    pytest.param(OUR_ENTE_WSDL, REF_ENTE_WSDL, ENTE_BINDING, 18, id="DovutiPagati"),
    pytest.param(OUR_FLUSSI_WSDL, REF_FLUSSI_WSDL, FLUSSI_BINDING, 2, id="FlussiSPC"),
]


@pytest.fixture(scope="module")
def clients() -> dict[Path, zeep.Client]:
    return {path: zeep.Client(str(path)) for path in (OUR_ENTE_WSDL, OUR_FLUSSI_WSDL, REF_ENTE_WSDL,
                                                      REF_FLUSSI_WSDL)}


# --- a. WSDL against WSDL -----------------------------------------------------------------------------

class SchemaIndex:
    """Named type nodes of every schema reachable from a WSDL: zeep drops facets, lxml keeps them."""

    def __init__(self, wsdl: Path) -> None:
        self.types: dict[str, etree._Element] = {}
        self._load(wsdl.resolve(), set())

    def _load(self, path: Path, seen: set[Path]) -> None:
        seen.add(path)
        root = etree.parse(str(path)).getroot()
        schemas = [root] if root.tag == f"{{{XSD_NS}}}schema" \
            else root.iterfind(f"{{{WSDL_NS}}}types/{{{XSD_NS}}}schema")
        for schema in schemas:
            tns = schema.get("targetNamespace")
            for node in schema:
                if node.tag in (f"{{{XSD_NS}}}simpleType", f"{{{XSD_NS}}}complexType") and node.get("name"):
                    self.types[f"{{{tns}}}{node.get('name')}"] = node
                elif node.tag in (f"{{{XSD_NS}}}import", f"{{{XSD_NS}}}include") and node.get("schemaLocation"):
                    target = (path.parent / node.get("schemaLocation")).resolve()
                    if target not in seen:
                        self._load(target, seen)

    def facets(self, qname: str | None) -> tuple:
        node = self.types.get(qname or "")
        if node is None or node.tag != f"{{{XSD_NS}}}simpleType":
            return ()
        restriction = node.find(f"{{{XSD_NS}}}restriction")
        assert restriction is not None, f"{qname}: only restrictions are expected in these contracts"
        base = _resolve_qname(restriction.get("base"), restriction)
        own = tuple((etree.QName(child).localname, child.get("value")) for child in restriction
                    if isinstance(child.tag, str) and child.tag != f"{{{XSD_NS}}}annotation")
        return ((base, own),) + self.facets(base)


def _resolve_qname(value: str, node: etree._Element) -> str:
    prefix, _, local = value.rpartition(":")
    return f"{{{node.nsmap[prefix or None]}}}{local}"


def _builtin_name(xsd_type: Any) -> str:
    return next(cls.__name__ for cls in type(xsd_type).__mro__ if cls.__module__ == "zeep.xsd.types.builtins")


def describe_element(element: Any, index: SchemaIndex, stack: tuple[str, ...] = ()) -> tuple:
    return (str(element.qname), element.min_occurs, element.max_occurs, bool(element.nillable), element.default,
            describe_type(element.type, index, stack))


def describe_type(xsd_type: Any, index: SchemaIndex, stack: tuple[str, ...]) -> tuple:
    qname = str(xsd_type.qname) if xsd_type.qname is not None else None
    if isinstance(xsd_type, ComplexType):
        if qname is not None and qname in stack:
            return ("complex", qname, "<recursion>")
        bases = tuple(str(value_class._xsd_type.qname) for value_class in xsd_type._extension_types)
        attributes = tuple(str(attribute.qname) for _, attribute in xsd_type.attributes)
        children = tuple(describe_element(child, index, stack + (qname or "",)) for _, child in xsd_type.elements)
        return ("complex", qname, bases, attributes, children)
    return ("simple", qname, _builtin_name(xsd_type), index.facets(qname))


def describe_operation(client: zeep.Client, binding: str, name: str, index: SchemaIndex) -> dict[str, Any]:
    op = client.wsdl.bindings[binding]._operations[name]
    abstract_parts = {part_name: str(part.element.qname)
                      for part_name, part in op.abstract.input_message.parts.items()}
    output_parts = {part_name: str(part.element.qname)
                    for part_name, part in op.abstract.output_message.parts.items()}
    return {
        "soapAction": op.soapaction,
        "wsaAction": op.abstract.wsa_action,
        "input parts": abstract_parts,
        "output parts": output_parts,
        "input body": describe_element(op.input.body, index),
        "input header": tuple(describe_element(part, index) for _, part in op.input.header.type.elements),
        "output body": describe_element(op.output.body, index),
        "output header": tuple(describe_element(part, index) for _, part in op.output.header.type.elements),
    }


@pytest.mark.parametrize("ours, reference, binding, count", CONTRACTS)
def test_every_operation_is_wire_equivalent_to_mypay(clients: dict[Path, zeep.Client], ours: Path,
                                                     reference: Path, binding: str, count: int) -> None:
    our_client, ref_client = clients[ours], clients[reference]
    our_ops = sorted(our_client.wsdl.bindings[binding]._operations)
    assert our_ops == sorted(ref_client.wsdl.bindings[binding]._operations)
    assert len(our_ops) == count
    our_index, ref_index = SchemaIndex(ours), SchemaIndex(reference)
    for name in our_ops:
        expected = describe_operation(ref_client, binding, name, ref_index)
        assert describe_operation(our_client, binding, name, our_index) == expected, name
        assert expected["soapAction"] == name


def test_comparison_sees_unqualified_children_header_and_facets(clients: dict[Path, zeep.Client]) -> None:
    # Guards the comparator itself: it must look at the very details that break clients.
    described = describe_operation(clients[OUR_ENTE_WSDL], ENTE_BINDING, "paaSILChiediPosizioniAperte",
                                   SchemaIndex(OUR_ENTE_WSDL))
    qname, *_, (_, _, bases, _, children) = described["input body"]
    assert qname == f"{{{PPT}}}paaSILChiediPosizioniAperte" and bases == ()
    password, _, person = children
    assert password[0] == "password" and password[1:3] == (0, 1)
    assert password[5] == ("simple", f"{{{PPT}}}stPassword", "String",
                           ((f"{{{XSD_NS}}}string", (("minLength", "8"), ("maxLength", "15"))),))
    assert person[0] == "identificativoUnivocoPersonaFG" and person[1] == 1
    assert [child[0] for child in person[5][4]] == [f"{{{PAY_I}}}tipoIdentificativoUnivoco",
                                                   f"{{{PAY_I}}}codiceIdentificativoUnivoco"]
    header = describe_operation(clients[OUR_ENTE_WSDL], ENTE_BINDING, "paaSILInviaDovuti",
                                SchemaIndex(OUR_ENTE_WSDL))["input header"]
    assert [part[0] for part in header] == [f"{{{ente_models.PPTHEAD_NS}}}intestazionePPT"]
    response = describe_operation(clients[OUR_ENTE_WSDL], ENTE_BINDING, "paaSILInviaDovuti",
                                  SchemaIndex(OUR_ENTE_WSDL))["output body"]
    assert response[5][2] == (f"{{{PPT}}}risposta",)
    assert [child[0] for child in response[5][4]] == ["fault", "esito", "idSession", "redirect", "url"]


# Attributes whose value is a QName: compared resolved, since prefixes are free.
_QNAME_ATTRIBUTES = {"type", "base", "element", "message", "binding"}
# Children whose order carries no meaning: compared sorted.
_UNORDERED = {f"{{{WSDL_NS}}}definitions", f"{{{WSDL_NS}}}types", f"{{{XSD_NS}}}schema",
              f"{{{WSDL_NS}}}portType", f"{{{WSDL_NS}}}binding", f"{{{WSDL_NS}}}service", f"{{{WSDL_NS}}}input"}


def canonical(node: etree._Element) -> tuple:
    attributes = []
    for key, value in node.attrib.items():
        if key in _QNAME_ATTRIBUTES and node.tag != f"{{{WSDL_NS}}}definitions":
            value = _resolve_qname(value, node)
        elif key == "schemaLocation":
            value = os.path.basename(value)
        elif key == "location" and node.tag == f"{{{SOAP_BINDING_NS}}}address":
            value = "<endpoint>"
        attributes.append((key, value))
    children = [canonical(child) for child in node if isinstance(child.tag, str)]
    if node.tag in _UNORDERED:
        children.sort(key=repr)
    text = (node.text or "").strip()
    return (node.tag, tuple(sorted(attributes)), text, tuple(children))


@pytest.mark.parametrize("ours, reference, binding, count", CONTRACTS)
def test_whole_wsdl_document_matches_reference_apart_from_layout(ours: Path, reference: Path, binding: str,
                                                                 count: int) -> None:
    # Catches what zeep does not expose: xmime hints, wsam/wsaw output Actions, soap:body parts, defaults.
    assert canonical(etree.parse(str(ours)).getroot()) == canonical(etree.parse(str(reference)).getroot())


@pytest.mark.parametrize("wsdl, address", [
    (OUR_ENTE_WSDL, "http://localhost:8080/ente/PagamentiTelematiciDovutiPagati"),
    (OUR_FLUSSI_WSDL, "http://localhost:8080/ente/PagamentiTelematiciFlussiSPC"),
])
def test_project_wsdl_points_at_project_files(wsdl: Path, address: str) -> None:
    root = etree.parse(str(wsdl)).getroot()
    assert root.find(f".//{{{SOAP_BINDING_NS}}}address").get("location") == address
    for schema in root.iter(f"{{{XSD_NS}}}schema"):
        assert schema.get("elementFormDefault") is None  # children stay unqualified
    for imported in root.iter(f"{{{XSD_NS}}}import"):
        location = imported.get("schemaLocation")
        assert location.startswith("../xsd/") and (wsdl.parent / location).is_file()
    text = wsdl.read_text()
    assert "Regione Veneto" not in text and "GNU" not in text


# --- models against the WSDL ----------------------------------------------------------------------

# Most specific first: spyne Integer32 < Integer < Decimal, Date < DateTime.
_SPYNE_FOR_BUILTIN = [(Integer32, "Int"), (Integer, "Integer"), (Decimal, "Decimal"), (Boolean, "Boolean"),
                      (ByteArray, "Base64Binary"), (Date, "Date"), (DateTime, "DateTime"), (Unicode, "String")]


def _check_model(model: Any, element: Any, path: str) -> None:
    xsd_type = element.type
    if isinstance(xsd_type, ComplexType):
        assert issubclass(model, ComplexModelBase), path
        assert model.get_type_name() == etree.QName(xsd_type.qname).localname, path
        assert model.get_namespace() == etree.QName(xsd_type.qname).namespace, path
        fields = list(model.get_flat_type_info(model).items())
        children = [child for _, child in xsd_type.elements]
        assert [name for name, _ in fields] == [child.name for child in children], path
        for (name, field), child in zip(fields, children):
            where = f"{path}/{name}"
            assert field.Attributes.min_occurs == child.min_occurs, where
            max_occurs = "unbounded" if field.Attributes.max_occurs == decimal.Decimal("inf") \
                else field.Attributes.max_occurs
            assert max_occurs == child.max_occurs, where
            _check_model(field, child, where)
    else:
        spyne_type = next(spyne for spyne, builtin in _SPYNE_FOR_BUILTIN if issubclass(model, spyne))
        assert (spyne_type, _builtin_name(xsd_type)) in _SPYNE_FOR_BUILTIN, path


@pytest.mark.parametrize("wsdl, binding, models", [
    (OUR_ENTE_WSDL, ENTE_BINDING, ente_models),
    (OUR_FLUSSI_WSDL, FLUSSI_BINDING, flussi_spc_models),
])
def test_models_mirror_the_wsdl(clients: dict[Path, zeep.Client], wsdl: Path, binding: str, models: Any) -> None:
    operations = clients[wsdl].wsdl.bindings[binding]._operations
    assert sorted(models.OPERATIONS) == sorted(operations)
    for name, (request, response, header) in models.OPERATIONS.items():
        op = operations[name]
        assert request.get_type_name() == etree.QName(op.input.body.qname).localname == name
        assert response.get_type_name() == etree.QName(op.output.body.qname).localname
        _check_model(request, op.input.body, name)
        _check_model(response, op.output.body, response.get_type_name())
        header_parts = [part for _, part in op.input.header.type.elements]
        assert bool(header_parts) == header, name
        for part in header_parts:
            assert ente_models.intestazionePPT.get_namespace() == etree.QName(part.qname).namespace
            _check_model(ente_models.intestazionePPT, part, "intestazionePPT")


# --- b. round trips over HTTP -------------------------------------------------------------------------

class Recorder:
    """What each test operation received, and what it must answer next."""

    def __init__(self) -> None:
        self.requests: dict[str, Any] = {}
        self.headers: dict[str, Any] = {}
        self.answers: dict[str, Callable[[Any], Any]] = {}


RECORDER = Recorder()


def _handler(name: str) -> Callable:
    def handle(ctx: Any, request: Any) -> Any:
        RECORDER.requests[name] = request
        RECORDER.headers[name] = ctx.in_header
        return RECORDER.answers[name](request)

    handle.__name__ = name
    return handle


def _service(models: Any, class_name: str) -> type:
    methods = {}
    for name, (request, response, header) in models.OPERATIONS.items():
        methods[name] = operation(request, response, service=models.SERVICE_NAME,
                                  fault_response=models.fault_response,
                                  header=ente_models.HEADER if header else None)(_handler(name))
    return type(class_name, (ServiceBase,), methods)



class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def _serve(application: Any) -> tuple[WSGIServer, str]:
    server = make_server("127.0.0.1", 0, WsgiApplication(application), handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/"


@pytest.fixture(scope="module")
def endpoints() -> Iterator[dict[str, str]]:
    ente_app = build_application([_service(ente_models, "EnteContractService")], ente_models.PPT_NS,
                                 ente_models.SERVICE_NAME)
    flussi_app = build_application([_service(flussi_spc_models, "FlussiContractService")],
                                   flussi_spc_models.PPT_NS, flussi_spc_models.SERVICE_NAME)
    servers = [_serve(ente_app), _serve(flussi_app)]
    yield {"ente": servers[0][1], "flussi": servers[1][1]}
    for server, _ in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def ente(endpoints: dict[str, str], clients: dict[Path, zeep.Client]) -> Any:
    return clients[REF_ENTE_WSDL].create_service(ENTE_BINDING, endpoints["ente"])


@pytest.fixture(scope="module")
def flussi(endpoints: dict[str, str], clients: dict[Path, zeep.Client]) -> Any:
    return clients[REF_FLUSSI_WSDL].create_service(FLUSSI_BINDING, endpoints["flussi"])


def _joined(value: Any) -> bytes:
    # Spyne hands a ByteArray over as a sequence of chunks.
    return b"".join(value)


DOVUTI_XML = b'<?xml version="1.0"?><Dovuti xmlns="http://www.regione.veneto.it/schemas/2012/Pagamenti/Ente/"/>'
HEADER = {"header": {"codIpaEnte": "C_A123"}}


def test_invia_dovuti_header_and_base64_round_trip(ente: Any) -> None:
    RECORDER.answers["paaSILInviaDovuti"] = lambda request: ente_models.paaSILInviaDovutiRisposta(
        esito="OK", idSession="f0e1d2c3-aaaa-bbbb-cccc-0190a1b2c3d4", redirect=1, url="https://gw/landing?id=7")
    answer = ente.paaSILInviaDovuti(password="Secret-123", dovuti=DOVUTI_XML,
                                    enteSILInviaRispostaPagamentoUrl="https://ente/back", showMyPay="NONE",
                                    _soapheaders=HEADER)
    request = RECORDER.requests["paaSILInviaDovuti"]
    assert RECORDER.headers["paaSILInviaDovuti"].codIpaEnte == "C_A123"
    assert _joined(request.dovuti) == DOVUTI_XML
    assert (request.password, request.enteSILInviaRispostaPagamentoUrl, request.showMyPay) == \
        ("Secret-123", "https://ente/back", "NONE")
    assert (answer.fault, answer.esito, answer.idSession, answer.redirect, answer.url) == \
        (None, "OK", "f0e1d2c3-aaaa-bbbb-cccc-0190a1b2c3d4", 1, "https://gw/landing?id=7")


def test_fault_reaches_client_as_fault_bean_with_esito_ko(ente: Any) -> None:
    def refuse(request: Any) -> Any:
        raise faults.Fault(faults.PAA_ENTE_NON_VALIDO, "Password non valida per ente [C_A123]", id="C_A123")

    RECORDER.answers["paaSILInviaDovuti"] = refuse
    answer = ente.paaSILInviaDovuti(password="Wrong-123", dovuti=DOVUTI_XML, _soapheaders=HEADER)
    assert answer.fault.faultCode == "PAA_ENTE_NON_VALIDO"
    assert answer.fault.faultString == "Password non valida per ente [C_A123]"
    assert answer.fault.id == "C_A123"
    assert answer.esito == "KO" and answer.idSession is None


def test_unexpected_error_becomes_paa_system_error(ente: Any) -> None:
    def crash(request: Any) -> Any:
        raise RuntimeError("database is down")

    RECORDER.answers["paaSILChiediPagati"] = crash
    answer = ente.paaSILChiediPagati(codIpaEnte="C_A123", password="Secret-123", idSession="abc")
    assert (answer.fault.faultCode, answer.fault.faultString, answer.fault.id) == \
        ("PAA_SYSTEM_ERROR", "PAA SYSTEM ERROR", "C_A123")
    assert "database" not in (answer.fault.description or "")


def test_chiedi_pagati_con_ricevuta_round_trip(ente: Any) -> None:
    pagati = base64.b64encode(b"<PagatiConRicevuta/>")  # the contract's double base64 is the service's job
    RECORDER.answers["paaSILChiediPagatiConRicevuta"] = lambda request: \
        ente_models.paaSILChiediPagatiConRicevutaRisposta(pagati=pagati, tipoFirma="", rt=b"<RT/>")
    answer = ente.paaSILChiediPagatiConRicevuta(codIpaEnte="C_A123", password="Secret-123",
                                                identificativoUnivocoVersamento="RF23000000000000000000001",
                                                identificativoUnivocoDovuto="IUD-1")
    request = RECORDER.requests["paaSILChiediPagatiConRicevuta"]
    assert (request.codIpaEnte, request.password, request.idSession, request.identificativoUnivocoVersamento,
            request.identificativoUnivocoDovuto) == \
        ("C_A123", "Secret-123", None, "RF23000000000000000000001", "IUD-1")
    assert RECORDER.headers["paaSILChiediPagatiConRicevuta"] is None
    assert (answer.pagati, answer.rt) == (pagati, b"<RT/>")
    assert answer.tipoFirma in ("", None)


def test_chiedi_esito_carrello_with_two_carts(ente: Any) -> None:
    carts = [ente_models.rispostaCarrello(esito="PAGATO", codIpaEnte="C_A123",
                                          codIdentificativoUnivocoCarrello="CART1", pagati=b"P1", rt=b"R1"),
             ente_models.rispostaCarrello(esito="NON_PAGATO", codIpaEnte="C_B456",
                                          codIdentificativoUnivocoCarrello="CART2")]
    RECORDER.answers["paaSILChiediEsitoCarrelloDovuti"] = lambda request: \
        ente_models.paaSILChiediEsitoCarrelloDovutiRisposta(listaCarrelli=ente_models.listaCarrelli(
            rispostaCarrello=carts))
    answer = ente.paaSILChiediEsitoCarrelloDovuti(codIpaEnte="C_A123", idSessionCarrello="SESSION-1")
    assert RECORDER.requests["paaSILChiediEsitoCarrelloDovuti"].idSessionCarrello == "SESSION-1"
    got = answer.listaCarrelli.rispostaCarrello
    assert [(c.esito, c.codIpaEnte, c.codIdentificativoUnivocoCarrello, c.pagati, c.rt) for c in got] == \
        [("PAGATO", "C_A123", "CART1", b"P1", b"R1"), ("NON_PAGATO", "C_B456", "CART2", None, None)]


def test_chiedi_posizioni_aperte_reads_qualified_person_and_returns_two(ente: Any) -> None:
    RECORDER.answers["paaSILChiediPosizioniAperte"] = lambda request: \
        ente_models.paaSILChiediPosizioniAperteRisposta(paaSILPosizioniAperte=[
            ente_models.paaSILPosizioniAperte(codIpaEnte="C_A123", deNomeEnte="Comune A",
                                              urlPagamento="https://gw/precaricato?id=1", dovuti=b"<D1/>"),
            ente_models.paaSILPosizioniAperte(codIpaEnte="C_B456", deNomeEnte="Comune B", dovuti=b"<D2/>")])
    answer = ente.paaSILChiediPosizioniAperte(
        password="Admin-123", codIpaEnte="C_A123",
        identificativoUnivocoPersonaFG={"tipoIdentificativoUnivoco": "F",
                                        "codiceIdentificativoUnivoco": "RSSMRA80A01H501U"})
    person = RECORDER.requests["paaSILChiediPosizioniAperte"].identificativoUnivocoPersonaFG
    assert (person.tipoIdentificativoUnivoco, person.codiceIdentificativoUnivoco) == ("F", "RSSMRA80A01H501U")
    assert [(p.codIpaEnte, p.deNomeEnte, p.urlPagamento, p.dovuti) for p in answer.paaSILPosizioniAperte] == \
        [("C_A123", "Comune A", "https://gw/precaricato?id=1", b"<D1/>"), ("C_B456", "Comune B", None, b"<D2/>")]


def test_prenota_export_incrementale_datetime_and_booleans(ente: Any) -> None:
    date_to = dt.datetime(2024, 5, 31, 23, 59, 59)
    RECORDER.answers["paaSILPrenotaExportFlussoIncrementaleConRicevuta"] = lambda request: \
        ente_models.paaSILPrenotaExportFlussoIncrementaleConRicevutaRisposta(requestToken="TOKEN-9", dateTo=date_to)
    answer = ente.paaSILPrenotaExportFlussoIncrementaleConRicevuta(
        password="Secret-123", dateFrom=dt.datetime(2024, 5, 1, 8, 30, 0), ricevuta=True, incrementale=False,
        versioneTracciato="1.3", _soapheaders=HEADER)
    request = RECORDER.requests["paaSILPrenotaExportFlussoIncrementaleConRicevuta"]
    assert RECORDER.headers["paaSILPrenotaExportFlussoIncrementaleConRicevuta"].codIpaEnte == "C_A123"
    assert request.dateFrom.replace(tzinfo=None) == dt.datetime(2024, 5, 1, 8, 30, 0)
    assert (request.dateTo, request.ricevuta, request.incrementale, request.versioneTracciato) == \
        (None, True, False, "1.3")
    assert answer.requestToken == "TOKEN-9"
    assert answer.dateTo.replace(tzinfo=None) == date_to


def test_registra_pagamento_decimal_amount_and_date(ente: Any) -> None:
    RECORDER.answers["paaSILRegistraPagamento"] = lambda request: \
        ente_models.paaSILRegistraPagamentoRisposta(esito="OK")
    answer = ente.paaSILRegistraPagamento(
        codIpaEnte="C_A123", password="Secret-123", identificativoUnivocoVersamento="01234567890123456",
        singoloImportoPagato=decimal.Decimal("1234.50"), dataEsitoSingoloPagamento=dt.date(2024, 6, 3),
        indiceDatiSingoloPagamento=2, identificativoUnivocoRiscossione="IUR-1", tipoIstitutoAttestante="B",
        codiceIstitutiAttestante="ABI03069", denominazioneAttestante="Banca Test")
    request = RECORDER.requests["paaSILRegistraPagamento"]
    assert request.singoloImportoPagato == decimal.Decimal("1234.50")
    assert isinstance(request.singoloImportoPagato, decimal.Decimal)
    assert (request.dataEsitoSingoloPagamento, request.indiceDatiSingoloPagamento, request.codiceContestoPagamento,
            request.tipoIstitutoAttestante, request.denominazioneAttestante) == \
        (dt.date(2024, 6, 3), 2, None, "B", "Banca Test")
    assert (answer.fault, answer.esito) == (None, "OK")


def test_flussi_spc_elenco_round_trip(flussi: Any) -> None:
    RECORDER.answers["paaSILChiediElencoFlussiSPC"] = lambda request: \
        flussi_spc_models.paaSILChiediElencoFlussiSPCRisposta(elencoFlussiSPC=flussi_spc_models.tipoElencoFlussiSPC(
            totRestituiti=2, idSPC=[
                flussi_spc_models.tipoIdSPC(identificativoFlusso="2024-06-01ABI03069-F1",
                                            dataOraFlusso=dt.datetime(2024, 6, 1, 10, 0, 0)),
                flussi_spc_models.tipoIdSPC(identificativoFlusso="2024-06-02ABI03069-F2",
                                            dataOraFlusso=dt.datetime(2024, 6, 2, 11, 30, 0))]))
    answer = flussi.paaSILChiediElencoFlussiSPC(password="Secret-123", codIpaEnte="C_A123",
                                                identificativoPsp="ABI03069", tipoFlusso="R",
                                                dateFrom=dt.date(2024, 6, 1), dateTo=dt.date(2024, 6, 30))
    request = RECORDER.requests["paaSILChiediElencoFlussiSPC"]
    assert (request.password, request.codIpaEnte, request.identificativoPsp, request.tipoFlusso, request.dateFrom,
            request.dateTo) == ("Secret-123", "C_A123", "ABI03069", "R", dt.date(2024, 6, 1), dt.date(2024, 6, 30))
    assert answer.elencoFlussiSPC.totRestituiti == 2
    assert [(i.identificativoFlusso, i.dataOraFlusso.replace(tzinfo=None)) for i in answer.elencoFlussiSPC.idSPC] \
        == [("2024-06-01ABI03069-F1", dt.datetime(2024, 6, 1, 10, 0)),
            ("2024-06-02ABI03069-F2", dt.datetime(2024, 6, 2, 11, 30))]


def test_flussi_spc_flusso_round_trip_and_fault(flussi: Any) -> None:
    RECORDER.answers["paaSILChiediFlussoSPC"] = lambda request: flussi_spc_models.paaSILChiediFlussoSPCRisposta(
        stato="OK", downloadUrl="https://gw/download/F1")
    arguments = dict(password="Secret-123", codIpaEnte="C_A123", identificativoPsp="ABI03069", tipoFlusso="Q",
                     identificativoFlusso="F1", dataOraFlusso=dt.datetime(2024, 6, 1, 10, 0, 0))
    answer = flussi.paaSILChiediFlussoSPC(**arguments)
    request = RECORDER.requests["paaSILChiediFlussoSPC"]
    assert (request.tipoFlusso, request.identificativoFlusso) == ("Q", "F1")
    assert request.dataOraFlusso.replace(tzinfo=None) == dt.datetime(2024, 6, 1, 10, 0, 0)
    assert (answer.fault, answer.stato, answer.downloadUrl) == (None, "OK", "https://gw/download/F1")

    def refuse(request: Any) -> Any:
        raise faults.Fault(faults.CODE_PAA_ERRORE_INTERNO, serial=1)

    RECORDER.answers["paaSILChiediFlussoSPC"] = refuse
    answer = flussi.paaSILChiediFlussoSPC(**arguments)
    assert (answer.fault.faultCode, answer.fault.faultString, answer.fault.id, answer.fault.serial) == \
        ("CODE_PAA_ERRORE_INTERNO", "Errore interno a pa", "C_A123", 1)
    assert answer.stato == "KO"


# --- hand-built envelopes, as much ente software sends them ------------------------------------------

_HAND_BUILT = {
    "unqualified children, odd prefixes, no Header": """<?xml version='1.0' encoding='utf-8'?>
<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/">
\t<S:Body>
\t\t<ns2:paaSILChiediPagatiConRicevuta xmlns:ns2="http://www.regione.veneto.it/pagamenti/ente/">
\t\t\t<codIpaEnte>C_A123</codIpaEnte>
\t\t\t<password>Secret-123</password>
\t\t\t<identificativoUnivocoVersamento>RF23000000000000000000001</identificativoUnivocoVersamento>
\t\t</ns2:paaSILChiediPagatiConRicevuta>
\t</S:Body>
</S:Envelope>""",
    "qualified children by default namespace, empty Header": """<soapenv:Envelope
    xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:stray="urn:unused">
  <soapenv:Header/>
  <soapenv:Body>
    <paaSILChiediPagatiConRicevuta xmlns="http://www.regione.veneto.it/pagamenti/ente/">
      <codIpaEnte>C_A123</codIpaEnte>
      <password>Secret-123</password>
      <identificativoUnivocoVersamento>RF23000000000000000000001</identificativoUnivocoVersamento>
    </paaSILChiediPagatiConRicevuta>
  </soapenv:Body>
</soapenv:Envelope>""",
}


@pytest.mark.parametrize("envelope", list(_HAND_BUILT.values()), ids=list(_HAND_BUILT))
def test_hand_built_envelope_is_read_and_answered_by_name(endpoints: dict[str, str], envelope: str) -> None:
    RECORDER.answers["paaSILChiediPagatiConRicevuta"] = lambda request: \
        ente_models.paaSILChiediPagatiConRicevutaRisposta(pagati=b"PAGATI", rt=b"RT")
    response = requests.post(endpoints["ente"], data=envelope.encode(), timeout=10,
                             headers={"Content-Type": "text/xml; charset=utf-8"})  # no SOAPAction at all
    assert response.status_code == 200
    request = RECORDER.requests["paaSILChiediPagatiConRicevuta"]
    assert (request.codIpaEnte, request.password, request.identificativoUnivocoVersamento, request.idSession) == \
        ("C_A123", "Secret-123", "RF23000000000000000000001", None)
    body = etree.fromstring(response.content).find(f"{{{SOAP_ENV_NS}}}Body")
    (root,) = body
    assert root.tag == f"{{{PPT}}}paaSILChiediPagatiConRicevutaRisposta"
    assert [child.tag for child in root] == ["pagati", "rt"]  # unqualified, as the contract says
    assert [base64.b64decode(child.text) for child in root] == [b"PAGATI", b"RT"]


def test_hand_built_envelope_with_qualified_person_children(endpoints: dict[str, str]) -> None:
    RECORDER.answers["paaSILChiediPosizioniAperte"] = lambda request: \
        ente_models.paaSILChiediPosizioniAperteRisposta()
    envelope = """<?xml version="1.0"?>
<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>
<p:paaSILChiediPosizioniAperte xmlns:p="http://www.regione.veneto.it/pagamenti/ente/"
    xmlns:pay="http://www.regione.veneto.it/schemas/2012/Pagamenti/Ente/">
  <password>Admin-123</password>
  <identificativoUnivocoPersonaFG>
    <pay:tipoIdentificativoUnivoco>G</pay:tipoIdentificativoUnivoco>
    <pay:codiceIdentificativoUnivoco>01234567890</pay:codiceIdentificativoUnivoco>
  </identificativoUnivocoPersonaFG>
</p:paaSILChiediPosizioniAperte></e:Body></e:Envelope>"""
    response = requests.post(endpoints["ente"], data=envelope.encode(), timeout=10,
                             headers={"Content-Type": "text/xml", "SOAPAction": "paaSILChiediPosizioniAperte"})
    assert response.status_code == 200
    person = RECORDER.requests["paaSILChiediPosizioniAperte"].identificativoUnivocoPersonaFG
    assert (person.tipoIdentificativoUnivoco, person.codiceIdentificativoUnivoco) == ("G", "01234567890")
    (root,) = etree.fromstring(response.content).find(f"{{{SOAP_ENV_NS}}}Body")
    assert root.tag == f"{{{PPT}}}paaSILChiediPosizioniAperteRisposta" and len(root) == 0


def test_hand_built_header_with_wrapped_base64(endpoints: dict[str, str]) -> None:
    # Java and PHP clients wrap base64 at 76 columns; the header travels under any prefix.
    payload = DOVUTI_XML * 3
    wrapped = base64.encodebytes(payload).decode()
    assert "\n" in wrapped.strip()
    RECORDER.answers["paaSILInviaDovuti"] = lambda request: ente_models.paaSILInviaDovutiRisposta(esito="OK")
    envelope = f"""<?xml version="1.0" encoding="UTF-8"?>
<x:Envelope xmlns:x="http://schemas.xmlsoap.org/soap/envelope/"
            xmlns:h="http://www.regione.veneto.it/pagamenti/ente/ppthead"
            xmlns:b="http://www.regione.veneto.it/pagamenti/ente/">
  <x:Header><h:intestazionePPT><codIpaEnte>C_Z999</codIpaEnte></h:intestazionePPT></x:Header>
  <x:Body>
    <b:paaSILInviaDovuti>
      <password>Secret-123</password>
      <dovuti>
{wrapped}</dovuti>
    </b:paaSILInviaDovuti>
  </x:Body>
</x:Envelope>"""
    response = requests.post(endpoints["ente"], data=envelope.encode(), timeout=10,
                             headers={"Content-Type": "text/xml", "SOAPAction": '"paaSILInviaDovuti"'})
    assert response.status_code == 200
    assert RECORDER.headers["paaSILInviaDovuti"].codIpaEnte == "C_Z999"
    assert _joined(RECORDER.requests["paaSILInviaDovuti"].dovuti) == payload
    (root,) = etree.fromstring(response.content).find(f"{{{SOAP_ENV_NS}}}Body")
    assert [(child.tag, child.text) for child in root] == [("esito", "OK")]


def test_fault_on_operation_with_mandatory_response_fields(ente: Any) -> None:
    def refuse(request: Any) -> Any:
        raise faults.Fault(faults.PAA_ENTE_NON_VALIDO, "Stato Ente non valido: C_A123", id="C_A123")

    RECORDER.answers["paaSILAutorizzaImportFlusso"] = refuse
    answer = ente.paaSILAutorizzaImportFlusso(password="Secret-123", _soapheaders=HEADER)
    assert (answer.fault.faultCode, answer.fault.id) == ("PAA_ENTE_NON_VALIDO", "C_A123")
    assert (answer.uploadUrl, answer.authorizationToken, answer.requestToken, answer.importPath) == \
        (None, None, None, None)
