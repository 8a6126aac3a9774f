"""Node-facing contracts (paForNode, PaPerNodo): the project's WSDL/XSD equal the official ones on the wire,
and the Spyne models serve real zeep clients built from the official WSDLs.
"""

from __future__ import annotations

import base64
import copy
import threading
import urllib.request
from urllib.parse import urljoin
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import zeep
from lxml import etree
from spyne import ServiceBase
from spyne.server.wsgi import WsgiApplication
from zeep.plugins import HistoryPlugin
from zeep.xsd import ComplexType, Element
from zeep.xsd.elements.any import Any as XsdAny
from zeep.xsd.elements.indicators import Group, Indicator

from gateway import faults
from gateway.soap import pa_for_node_models as pafn
from gateway.soap import pa_per_nodo_models as ppt
from gateway.soap.common import build_application, operation

ROOT = Path(__file__).resolve().parents[2]
REF = Path("/work/shared/reference/pagopa")
OURS_PAFN = ROOT / "wsdl" / "paForNode.wsdl"
OURS_PPT = ROOT / "wsdl" / "PaPerNodo.wsdl"
REF_PAFN = REF / "wsdl" / "paForNode.wsdl"
REF_PPT = REF / "gad" / "wsdl" / "PaPerNodo.wsdl"

needs_reference = pytest.mark.skipif(not REF.is_dir(), reason="official pagoPA contracts not available")

XS = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
PAFN_BINDING = f"{{{pafn.PAFN_WSDL_NS}}}paForNodeBinding"
PPT_BINDING = f"{{{ppt.PPT_WSDL_NS}}}PagamentiTelematiciRTbinding"

CONTRACTS = [(OURS_PAFN, REF_PAFN, PAFN_BINDING), (OURS_PPT, REF_PPT, PPT_BINDING)]
CONTRACT_IDS = ["paForNode", "PaPerNodo"]


# ================================================================================================
# a. Static contract: the project's WSDL/XSD describe the same messages as the official ones
# ================================================================================================

def _describe_type(xsd_type: Any, seen: set[str]) -> tuple:
    if isinstance(xsd_type, ComplexType):
        key = str(xsd_type.qname)
        if xsd_type.qname is not None and key in seen:  # recursive types: stop at the second visit
            return ("complex-ref", key)
        seen = seen | {key}
        particle = _describe_particle(xsd_type._element, seen) if xsd_type._element is not None else None
        attributes = tuple(sorted(str(a.qname) for _, a in xsd_type.attributes))
        return ("complex", key, particle, attributes)
    # zeep keeps no facets; the type's name and its builtin base classes are what it exposes.
    bases = tuple(cls.__name__ for cls in type(xsd_type).__mro__ if cls.__module__.startswith("zeep.xsd.types"))
    return ("simple", str(xsd_type.qname), bases)


def _describe_particle(particle: Any, seen: set[str]) -> tuple:
    if isinstance(particle, Element):
        return ("element", str(particle.qname), particle.min_occurs, particle.max_occurs,
                particle.nillable, particle.default, _describe_type(particle.type, seen))
    if isinstance(particle, XsdAny):
        return ("any", particle.min_occurs, particle.max_occurs)
    if isinstance(particle, Group):
        return ("group", str(particle.qname), particle.min_occurs, particle.max_occurs,
                _describe_particle(particle.child, seen))
    if isinstance(particle, Indicator):
        return (type(particle).__name__, particle.min_occurs, particle.max_occurs,
                tuple(_describe_particle(child, seen) for child in particle))
    raise AssertionError(f"unexpected particle {particle!r}")


def _describe_message(message: Any) -> dict[str, Any]:
    return {
        "body": None if message.body is None else _describe_particle(message.body, set()),
        "header": None if message.header is None else _describe_particle(message.header, set()),
        "parts": tuple((name, str(part.element.qname) if part.element is not None else None)
                       for name, part in message.abstract.parts.items()),
    }


def _describe_binding(wsdl_path: Path, binding_qname: str) -> dict[str, Any]:
    client = zeep.Client(str(wsdl_path))
    binding = client.wsdl.bindings[binding_qname]
    operations = {}
    for name, op in binding._operations.items():
        operations[name] = {
            "soapAction": op.soapaction,
            "style": op.style,
            "input": _describe_message(op.input),
            "output": _describe_message(op.output),
        }
    services = {(service.name, port.name, str(port.binding.name))
                for service in client.wsdl.services.values() for port in service.ports.values()}
    return {"port_type": str(binding.port_type.name), "operations": operations, "services": services}


@needs_reference
@pytest.mark.parametrize(("ours", "reference", "binding"), CONTRACTS, ids=CONTRACT_IDS)
def test_zeep_sees_the_same_operations_and_messages(ours: Path, reference: Path, binding: str) -> None:
    mine, official = _describe_binding(ours, binding), _describe_binding(reference, binding)
    assert mine["services"] == official["services"]
    assert mine["port_type"] == official["port_type"]
    assert sorted(mine["operations"]) == sorted(official["operations"])
    for name, expected in official["operations"].items():
        for side in ("soapAction", "style", "input", "output"):
            assert mine["operations"][name][side] == expected[side], f"{name} {side}"


def test_zeep_description_reaches_unqualified_leaves() -> None:
    # Guards the comparison itself: a description that stopped at the root would compare nothing.
    described = _describe_binding(OURS_PAFN, PAFN_BINDING)["operations"]["paGetPaymentV2"]["output"]["body"]
    text = repr(described)
    assert "'{http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd}paGetPaymentV2Response'" in text
    assert "('Choice', 1, 1, (('element', 'IBAN', 0, 1" in text  # zeep marks choice members optional
    assert "('element', 'richiestaMarcaDaBollo', 0, 1" in text
    assert "('element', 'mapEntry', 1, 15" in text
    assert "('element', 'outcome', 1, 1" in text and "('element', 'e-mail', 0, 1" in text
    header = _describe_binding(OURS_PPT, PPT_BINDING)["operations"]["paaInviaRT"]["input"]["header"]
    assert "'{http://ws.pagamenti.telematici.gov/ppthead}intestazionePPT'" in repr(header)
    assert "('element', 'codiceContestoPagamento', 1, 1" in repr(header)


# --- lxml: every schema component, facets included ------------------------------------------------

_QNAME_ATTRS = {"type", "base", "ref", "element", "message", "binding", "itemType", "substitutionGroup"}
_IGNORED = {f"{{{XS}}}annotation", f"{{{WSDL}}}documentation"}
_FACETS = {"enumeration", "pattern", "length", "minLength", "maxLength", "minInclusive", "maxInclusive",
           "minExclusive", "maxExclusive", "totalDigits", "fractionDigits", "whiteSpace"}


def _resolve(value: str, element: etree._Element) -> str:
    prefix, _, local = value.rpartition(":")
    namespace = element.nsmap.get(prefix or None)
    return f"{{{namespace}}}{local}" if namespace else value


def _canonical(element: etree._Element) -> tuple:
    attrs = tuple(sorted(
        (name, _resolve(value, element) if etree.QName(name).localname in _QNAME_ATTRS else value)
        for name, value in element.attrib.items()))
    children = [_canonical(child) for child in element
                if isinstance(child.tag, str) and child.tag not in _IGNORED]
    if etree.QName(element).localname == "restriction":
        children.sort()  # facets are a set: their order carries no meaning
    return (element.tag, attrs, tuple(children))


def _schemas(path: Path, found: dict[Path, etree._Element] | None = None) -> dict[Path, etree._Element]:
    """Every xs:schema reachable from a WSDL or XSD file, following import/include on disk."""
    found = {} if found is None else found
    tree = etree.parse(str(path))
    roots = [tree.getroot()] if tree.getroot().tag == f"{{{XS}}}schema" else tree.findall(f".//{{{XS}}}schema")
    for index, schema in enumerate(roots):
        found[path if len(roots) == 1 else path.with_name(f"{path.name}#{index}")] = schema
        for ref in schema.findall(f"{{{XS}}}import") + schema.findall(f"{{{XS}}}include"):
            location = ref.get("schemaLocation")
            target = (path.parent / location).resolve() if location else None
            if target is not None and target not in found:
                _schemas(target, found)
    return found


def _components(wsdl_path: Path) -> tuple[dict[tuple, tuple], dict[str, str]]:
    components: dict[tuple, tuple] = {}
    forms: dict[str, str] = {}
    for schema in _schemas(wsdl_path).values():
        namespace = schema.get("targetNamespace")
        if not any(isinstance(child.tag, str) and child.tag != f"{{{XS}}}import" for child in schema):
            continue  # a wrapper that only imports
        forms[namespace] = (schema.get("elementFormDefault", "unqualified"),
                            schema.get("attributeFormDefault", "unqualified"))
        for child in schema:
            if isinstance(child.tag, str) and child.tag not in _IGNORED | {f"{{{XS}}}import"}:
                key = (namespace, etree.QName(child).localname, child.get("name"))
                assert key not in components, f"duplicate component {key}"
                components[key] = _canonical(child)
    return components, forms


@needs_reference
@pytest.mark.parametrize(("ours", "reference", "binding"), CONTRACTS, ids=CONTRACT_IDS)
def test_schema_components_are_identical(ours: Path, reference: Path, binding: str) -> None:
    mine, my_forms = _components(ours)
    official, official_forms = _components(reference)
    assert my_forms == official_forms  # element/attribute form defaults, per namespace
    assert sorted(mine) == sorted(official)
    for key, expected in official.items():
        assert mine[key] == expected, key


def _wsdl_definitions(path: Path) -> list[tuple]:
    root = etree.parse(str(path)).getroot()
    parts = []
    for child in root:
        if not isinstance(child.tag, str) or child.tag in (f"{{{WSDL}}}types", f"{{{WSDL}}}documentation"):
            continue
        child = copy.deepcopy(child)
        for address in child.iter("{http://schemas.xmlsoap.org/wsdl/soap/}address"):
            address.attrib.pop("location")  # the only intended difference
        parts.append(_canonical(child))
    return sorted(parts) + [("targetNamespace", root.get("targetNamespace"), root.get("name"))]


@needs_reference
@pytest.mark.parametrize(("ours", "reference", "binding"), CONTRACTS, ids=CONTRACT_IDS)
def test_wsdl_messages_port_types_bindings_services_are_identical(ours: Path, reference: Path,
                                                                   binding: str) -> None:
    assert _wsdl_definitions(ours) == _wsdl_definitions(reference)


def test_addresses_and_relative_schema_location() -> None:
    for path, url in ((OURS_PAFN, "http://localhost:8080/pa/paForNode"),
                      (OURS_PPT, "http://localhost:8080/pa/PaPerNodo")):
        address = etree.parse(str(path)).find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
        assert address.get("location") == url
    imports = etree.parse(str(OURS_PAFN)).findall(f".//{{{XS}}}import")
    assert [i.get("schemaLocation") for i in imports] == ["../xsd/paForNode.xsd"]
    # the same relative path over HTTP: /pa/paForNode?wsdl -> /xsd/paForNode.xsd
    assert urljoin("http://h/pa/paForNode?wsdl", "../xsd/paForNode.xsd") == "http://h/xsd/paForNode.xsd"
    assert urljoin("http://h/xsd/paForNode.xsd", "sac-common-types-1.0.xsd") == \
        "http://h/xsd/sac-common-types-1.0.xsd"


# ================================================================================================
# b. Round trip: Spyne models served over HTTP, called by zeep clients built from the official WSDLs
# ================================================================================================

EC = "80000000001"          # ente fiscal code
OTHER_EC = "80000000002"    # secondary ente of a multi-beneficiary transfer
NOTICE = "302000000000012345"
UNKNOWN_NOTICE = "302000000000099999"
IBAN = "IT60X0542811101000000123456"
STAMP_HASH = b"\x01" * 32
RECEIVED: dict[str, Any] = {}


def _metadata(*pairs: tuple[str, str]) -> pafn.ctMetadata:
    return pafn.ctMetadata(mapEntry=[pafn.ctMapEntry(key=k, value=v) for k, v in pairs])


def _debtor() -> pafn.ctSubject:
    return pafn.ctSubject(**{
        "uniqueIdentifier": pafn.ctEntityUniqueIdentifier(entityUniqueIdentifierType="F",
                                                          entityUniqueIdentifierValue="RSSMRA80A01H501U"),
        "fullName": "Mario Rossi", "city": "Roma", "country": "IT", "e-mail": "mario.rossi@example.it"})


def _check_notice(request: Any) -> None:
    if request.qrCode.noticeNumber == UNKNOWN_NOTICE:
        raise faults.Fault(faults.PAA_PAGAMENTO_SCONOSCIUTO, id=request.idPA, serial=0)


def _binary(value: Any) -> bytes:
    # Spyne hands ByteArray values over as a sequence of chunks.
    return b"".join(value) if isinstance(value, (list, tuple)) else value


PAFN_OPS = {name: dict(request_element=req.get_type_name(), response_element=res.get_type_name())
            for name, (req, res) in pafn.OPERATIONS.items()}


class PaForNodeService(ServiceBase):
    @operation(pafn.paVerifyPaymentNoticeReq, pafn.paVerifyPaymentNoticeRes, service="paForNode",
               fault_response=pafn.fault_response, **PAFN_OPS["paVerifyPaymentNotice"])
    def paVerifyPaymentNotice(ctx: Any, request: Any) -> Any:
        RECEIVED["paVerifyPaymentNotice"] = request
        _check_notice(request)
        option = pafn.ctPaymentOptionDescriptionPA(amount=Decimal("150"), options="EQ", dueDate=date(2031, 12, 31),
                                                  detailDescription="TARI 2031", allCCP=False)
        return pafn.paVerifyPaymentNoticeRes(
            outcome="OK", paymentList=pafn.ctPaymentOptionsDescriptionListPA(paymentOptionDescription=option),
            paymentDescription="TARI 2031 rata unica", fiscalCodePA=request.qrCode.fiscalCode,
            companyName="Comune di Esempio", officeName="Tributi")

    @operation(pafn.paGetPaymentReq, pafn.paGetPaymentRes, service="paForNode",
               fault_response=pafn.fault_response, **PAFN_OPS["paGetPayment"])
    def paGetPayment(ctx: Any, request: Any) -> Any:
        RECEIVED["paGetPayment"] = request
        _check_notice(request)
        transfer = pafn.ctTransferPA(idTransfer=1, transferAmount=Decimal("150.00"), fiscalCodePA=EC, IBAN=IBAN,
                                     remittanceInformation="TARI", transferCategory="9/0101100IM/")
        data = pafn.ctPaymentPA(
            creditorReferenceId="02000000000012345", paymentAmount=Decimal("150.00"), dueDate=date(2031, 12, 31),
            retentionDate=datetime(2031, 12, 31, 23, 59, 59), lastPayment=True, description="TARI 2031",
            debtor=_debtor(), transferList=pafn.ctTransferListPA(transfer=[transfer]))
        return pafn.paGetPaymentRes(outcome="OK", data=data)

    @operation(pafn.paGetPaymentV2Request, pafn.paGetPaymentV2Response, service="paForNode",
               fault_response=pafn.fault_response, **PAFN_OPS["paGetPaymentV2"])
    def paGetPaymentV2(ctx: Any, request: Any) -> Any:
        RECEIVED["paGetPaymentV2"] = request
        _check_notice(request)
        by_iban = pafn.ctTransferPAV2(idTransfer=1, transferAmount=Decimal("100.00"), fiscalCodePA=EC,
                                      companyName="Comune di Esempio", IBAN=IBAN, remittanceInformation="Diritti",
                                      transferCategory="9/0101100IM/", metadata=_metadata(("capitolo", "1234")))
        stamp = pafn.ctRichiestaMarcaDaBollo(hashDocumento=STAMP_HASH, tipoBollo="01", provinciaResidenza="RM")
        by_stamp = pafn.ctTransferPAV2(idTransfer=2, transferAmount=Decimal("16.00"), fiscalCodePA=OTHER_EC,
                                       richiestaMarcaDaBollo=stamp, remittanceInformation="Bollo",
                                       transferCategory="9/0301109AP/")
        data = pafn.ctPaymentPAV2(
            creditorReferenceId="02000000000012345", paymentAmount=Decimal("116.00"), dueDate=date(2031, 12, 31),
            description="Certificato", companyName="Comune di Esempio", officeName="Anagrafe",
            debtor=_debtor(), transferList=pafn.ctTransferListPAV2(transfer=[by_iban, by_stamp]),
            metadata=_metadata(("a", "1"), ("b", "2")))
        return pafn.paGetPaymentV2Response(outcome="OK", data=data)

    @operation(pafn.paSendRTReq, pafn.paSendRTRes, service="paForNode",
               fault_response=pafn.fault_response, **PAFN_OPS["paSendRT"])
    def paSendRT(ctx: Any, request: Any) -> Any:
        RECEIVED["paSendRT"] = request
        return pafn.paSendRTRes(outcome="OK")

    @operation(pafn.paSendRTV2Request, pafn.paSendRTV2Response, service="paForNode",
               fault_response=pafn.fault_response, **PAFN_OPS["paSendRTV2"])
    def paSendRTV2(ctx: Any, request: Any) -> Any:
        RECEIVED["paSendRTV2"] = request
        if request.receipt.receiptId == "dup":
            raise faults.Fault(faults.PAA_RECEIPT_DUPLICATA, description="già ricevuta")
        return pafn.paSendRTV2Response(outcome="OK")

    @operation(pafn.paDemandPaymentNoticeRequest, pafn.paDemandPaymentNoticeResponse, service="paForNode",
               fault_response=pafn.fault_response, **PAFN_OPS["paDemandPaymentNotice"])
    def paDemandPaymentNotice(ctx: Any, request: Any) -> Any:
        RECEIVED["paDemandPaymentNotice"] = request
        option = pafn.ctPaymentOptionDescriptionPA(amount=Decimal("30.50"), options="ANY", allCCP=True)
        return pafn.paDemandPaymentNoticeResponse(
            outcome="OK", qrCode=pafn.ctQrCode(fiscalCode=EC, noticeNumber=NOTICE),
            paymentList=pafn.ctPaymentOptionsDescriptionListPA(paymentOptionDescription=option),
            paymentDescription="Servizio a richiesta", fiscalCodePA=EC)


class PaPerNodoService(ServiceBase):
    # Spyne 2.14 asserts that _in_header is a tuple, and operation() passes ``header`` through as is.
    @operation(ppt.paaInviaRT, ppt.paaInviaRTRisposta, service="PaPerNodo", header=(ppt.intestazionePPT,),
               fault_response=ppt.fault_response)
    def paaInviaRT(ctx: Any, request: Any) -> Any:
        RECEIVED["paaInviaRT"] = (ctx.in_header, request)
        if ctx.in_header is None or ctx.in_header.identificativoUnivocoVersamento == "UNKNOWN":
            raise faults.Fault(faults.PAA_RPT_SCONOSCIUTA, id=EC)
        return ppt.esito(ppt.paaInviaRTRisposta, ppt.ESITO_OK)

    @operation(ppt.paaInviaEsitoStorno, ppt.paaInviaEsitoStornoRisposta, service="PaPerNodo",
               fault_response=ppt.fault_response)
    def paaInviaEsitoStorno(ctx: Any, request: Any) -> Any:
        RECEIVED["paaInviaEsitoStorno"] = request
        raise faults.Fault(faults.PAA_SEMANTICA)

    @operation(ppt.paaInviaRichiestaRevoca, ppt.paaInviaRichiestaRevocaRisposta, service="PaPerNodo",
               fault_response=ppt.fault_response)
    def paaInviaRichiestaRevoca(ctx: Any, request: Any) -> Any:
        RECEIVED["paaInviaRichiestaRevoca"] = request
        return ppt.esito(ppt.paaInviaRichiestaRevocaRisposta, ppt.ESITO_OK)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    apps = {
        "/pa/paForNode": WsgiApplication(build_application([PaForNodeService], pafn.PAFN_NS, "paForNode")),
        "/pa/PaPerNodo": WsgiApplication(build_application([PaPerNodoService], ppt.PPT_NS, "PaPerNodo")),
    }

    def dispatch(environ: dict, start_response: Any) -> Any:
        app = apps.get(environ.get("PATH_INFO", ""))
        if app is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        return app(environ, start_response)

    httpd = make_server("127.0.0.1", 0, dispatch, server_class=WSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def pafn_client(server: str) -> tuple[Any, HistoryPlugin]:
    history = HistoryPlugin()
    client = zeep.Client(str(REF_PAFN), plugins=[history])
    return client.create_service(PAFN_BINDING, f"{server}/pa/paForNode"), history


@pytest.fixture(scope="module")
def ppt_client(server: str) -> tuple[Any, HistoryPlugin]:
    history = HistoryPlugin()
    client = zeep.Client(str(REF_PPT), plugins=[history])
    return client.create_service(PPT_BINDING, f"{server}/pa/PaPerNodo"), history


@pytest.fixture(scope="module")
def pafn_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(ROOT / "xsd" / "paForNode.xsd")))


@pytest.fixture(scope="module")
def ppt_schema() -> etree.XMLSchema:
    # the ppt schema embedded in our WSDL, standalone (it references nothing from ppthead)
    embedded = etree.parse(str(OURS_PPT)).find(f".//{{{XS}}}schema[@targetNamespace='{ppt.PPT_NS}']")
    # re-rooted so that the prefixes used in type="ppt:..." stay declared
    schema = etree.Element(f"{{{XS}}}schema", dict(embedded.attrib), nsmap={"xs": XS, "ppt": ppt.PPT_NS})
    schema.extend(copy.deepcopy(child) for child in embedded)
    return etree.XMLSchema(schema)


def _answer(history: HistoryPlugin) -> etree._Element:
    """The body root of the last raw answer, which must be in the contract's namespace only at the root."""
    envelope = history.last_received["envelope"]
    (root,) = envelope.find(f"{{{SOAP_ENV}}}Body")
    assert all(etree.QName(e).namespace is None for e in root.iterdescendants() if isinstance(e.tag, str))
    return root


def _qr(notice: str = NOTICE) -> dict[str, str]:
    return {"fiscalCode": EC, "noticeNumber": notice}


IDS = {"idPA": EC, "idBrokerPA": "80000000001", "idStation": "80000000001_01"}




@needs_reference
def test_pa_verify_payment_notice(pafn_client: Any, pafn_schema: etree.XMLSchema) -> None:
    service, history = pafn_client
    answer = service.paVerifyPaymentNotice(**IDS, qrCode=_qr())
    request = RECEIVED["paVerifyPaymentNotice"]
    assert (request.idPA, request.idBrokerPA, request.idStation) == (EC, "80000000001", "80000000001_01")
    assert (request.qrCode.fiscalCode, request.qrCode.noticeNumber) == (EC, NOTICE)

    assert answer.outcome == "OK" and answer.fault is None
    option = answer.paymentList.paymentOptionDescription
    assert option.amount == Decimal("150.00") and option.options == "EQ" and option.allCCP is False
    assert option.dueDate == date(2031, 12, 31) and option.detailDescription == "TARI 2031"
    assert (answer.paymentDescription, answer.fiscalCodePA, answer.companyName, answer.officeName) == \
        ("TARI 2031 rata unica", EC, "Comune di Esempio", "Tributi")
    root = _answer(history)
    assert root.findtext("paymentList/paymentOptionDescription/amount") == "150.00"  # pattern \d+\.\d{2}
    pafn_schema.assertValid(root)


@needs_reference
def test_pa_verify_payment_notice_ko_carries_the_fault(pafn_client: Any,
                                                       pafn_schema: etree.XMLSchema) -> None:
    service, history = pafn_client
    answer = service.paVerifyPaymentNotice(**IDS, qrCode=_qr(UNKNOWN_NOTICE))
    assert answer.outcome == "KO" and answer.paymentList is None
    assert answer.fault.faultCode == faults.PAA_PAGAMENTO_SCONOSCIUTO
    assert answer.fault.faultString == faults.FAULT_STRINGS[faults.PAA_PAGAMENTO_SCONOSCIUTO]
    assert (answer.fault.id, answer.fault.serial) == (EC, 0)
    root = _answer(history)
    assert [child.tag for child in root] == ["outcome", "fault"]
    pafn_schema.assertValid(root)


@needs_reference
def test_pa_get_payment(pafn_client: Any, pafn_schema: etree.XMLSchema) -> None:
    service, history = pafn_client
    answer = service.paGetPayment(**IDS, qrCode=_qr(), amount=Decimal("150.00"), paymentNote="nota",
                                  transferType="PAGOPA", dueDate=date(2031, 12, 31))
    request = RECEIVED["paGetPayment"]
    assert (request.amount, request.paymentNote, request.transferType, request.dueDate) == \
        (Decimal("150.00"), "nota", "PAGOPA", date(2031, 12, 31))
    assert answer.outcome == "OK"
    data = answer.data
    assert (data.creditorReferenceId, data.paymentAmount, data.lastPayment) == \
        ("02000000000012345", Decimal("150.00"), True)
    assert data.retentionDate == datetime(2031, 12, 31, 23, 59, 59)
    assert data.debtor["e-mail"] == "mario.rossi@example.it"
    (transfer,) = data.transferList.transfer
    assert (transfer.idTransfer, transfer.IBAN, transfer.transferAmount) == (1, IBAN, Decimal("150.00"))
    pafn_schema.assertValid(_answer(history))


@needs_reference
def test_pa_get_payment_v2(pafn_client: Any, pafn_schema: etree.XMLSchema) -> None:
    service, history = pafn_client
    answer = service.paGetPaymentV2(**IDS, qrCode=_qr(), transferType="POSTAL")
    assert RECEIVED["paGetPaymentV2"].transferType == "POSTAL"
    assert RECEIVED["paGetPaymentV2"].amount is None

    data = answer.data
    assert answer.outcome == "OK" and data.paymentAmount == Decimal("116.00")
    assert (data.companyName, data.officeName) == ("Comune di Esempio", "Anagrafe")
    debtor = data.debtor
    assert debtor.uniqueIdentifier.entityUniqueIdentifierType == "F"
    assert debtor.uniqueIdentifier.entityUniqueIdentifierValue == "RSSMRA80A01H501U"
    assert (debtor.fullName, debtor.city, debtor.country) == ("Mario Rossi", "Roma", "IT")
    by_iban, by_stamp = data.transferList.transfer
    assert (by_iban.idTransfer, by_iban.IBAN, by_iban.richiestaMarcaDaBollo) == (1, IBAN, None)
    assert by_iban.companyName == "Comune di Esempio"
    assert [(e.key, e.value) for e in by_iban.metadata.mapEntry] == [("capitolo", "1234")]
    assert (by_stamp.idTransfer, by_stamp.IBAN, by_stamp.fiscalCodePA) == (2, None, OTHER_EC)
    stamp = by_stamp.richiestaMarcaDaBollo
    assert (stamp.hashDocumento, stamp.tipoBollo, stamp.provinciaResidenza) == (STAMP_HASH, "01", "RM")
    assert [(e.key, e.value) for e in data.metadata.mapEntry] == [("a", "1"), ("b", "2")]

    root = _answer(history)
    first, second = root.findall("data/transferList/transfer")
    # the xsd:choice sits between companyName and remittanceInformation
    assert [c.tag for c in first] == ["idTransfer", "transferAmount", "fiscalCodePA", "companyName", "IBAN",
                                      "remittanceInformation", "transferCategory", "metadata"]
    assert [c.tag for c in second] == ["idTransfer", "transferAmount", "fiscalCodePA", "richiestaMarcaDaBollo",
                                       "remittanceInformation", "transferCategory"]
    assert second.findtext("richiestaMarcaDaBollo/hashDocumento") == base64.b64encode(STAMP_HASH).decode()
    pafn_schema.assertValid(root)


def _receipt(v2: bool, receipt_id: str = "token-0001") -> dict[str, Any]:
    subject = {"uniqueIdentifier": {"entityUniqueIdentifierType": "G", "entityUniqueIdentifierValue": "01234567890"},
               "fullName": "ACME srl", "streetName": "Via Roma", "civicNumber": "1", "postalCode": "00100",
               "city": "Roma", "stateProvinceRegion": "RM", "country": "IT", "e-mail": "pec@acme.it"}
    first = {"idTransfer": 1, "transferAmount": Decimal("100.00"), "fiscalCodePA": EC, "IBAN": IBAN,
             "remittanceInformation": "Diritti", "transferCategory": "9/0101100IM/",
             "metadata": {"mapEntry": [{"key": "k", "value": "v"}]}}
    transfers = [first]
    if v2:
        first["companyName"] = "Comune di Esempio"
        transfers.append({"idTransfer": 2, "transferAmount": Decimal("16.00"), "fiscalCodePA": OTHER_EC,
                          "MBDAttachment": b"<marcaDaBollo/>", "remittanceInformation": "Bollo",
                          "transferCategory": "9/0301109AP/"})
    receipt = {
        "receiptId": receipt_id, "noticeNumber": NOTICE, "fiscalCode": EC, "outcome": "OK",
        "creditorReferenceId": "02000000000012345", "paymentAmount": Decimal("116.00") if v2 else Decimal("100.00"),
        "description": "Certificato", "companyName": "Comune di Esempio", "officeName": "Anagrafe",
        "debtor": subject, "transferList": {"transfer": transfers}, "idPSP": "BCITITMM",
        "pspFiscalCode": "00799960158", "pspPartitaIVA": "00799960158", "PSPCompanyName": "Banca Esempio",
        "idChannel": "00799960158_01", "channelDescription": "app", "payer": subject, "paymentMethod": "creditCard",
        "fee": Decimal("1.50"), "paymentDateTime": datetime(2031, 5, 4, 10, 11, 12),
        "applicationDate": date(2031, 5, 4), "transferDate": date(2031, 5, 5),
        "metadata": {"mapEntry": [{"key": "ricevuta", "value": "1"}]}, "standIn": True,
    }
    if v2:
        receipt.update(paymentNote="nota", primaryCiIncurredFee=Decimal("0.50"), idBundle="b1", idCiBundle="cb1")
    return receipt


@needs_reference
def test_pa_send_rt(pafn_client: Any, pafn_schema: etree.XMLSchema) -> None:
    service, history = pafn_client
    answer = service.paSendRT(**IDS, receipt=_receipt(v2=False))
    assert answer.outcome == "OK" and answer.fault is None
    receipt = RECEIVED["paSendRT"].receipt
    assert (receipt.receiptId, receipt.paymentAmount, receipt.fee) == ("token-0001", Decimal("100.00"),
                                                                      Decimal("1.50"))
    assert receipt.standIn is True and receipt.paymentDateTime == datetime(2031, 5, 4, 10, 11, 12)
    (transfer,) = receipt.transferList.transfer
    assert (transfer.IBAN, transfer.metadata.mapEntry[0].key) == (IBAN, "k")
    assert getattr(receipt.payer, "e-mail") == "pec@acme.it"
    pafn_schema.assertValid(_answer(history))


@needs_reference
def test_pa_send_rt_v2(pafn_client: Any, pafn_schema: etree.XMLSchema) -> None:
    service, history = pafn_client
    answer = service.paSendRTV2(**IDS, receipt=_receipt(v2=True))
    assert answer.outcome == "OK" and answer.fault is None
    request = RECEIVED["paSendRTV2"]
    assert request.idStation == "80000000001_01"
    receipt = request.receipt
    assert (receipt.noticeNumber, receipt.fiscalCode, receipt.outcome) == (NOTICE, EC, "OK")
    assert (receipt.idPSP, receipt.pspPartitaIVA, receipt.PSPCompanyName) == \
        ("BCITITMM", "00799960158", "Banca Esempio")
    assert (receipt.idChannel, receipt.channelDescription, receipt.paymentMethod) == \
        ("00799960158_01", "app", "creditCard")
    assert (receipt.paymentNote, receipt.primaryCiIncurredFee, receipt.idBundle, receipt.idCiBundle) == \
        ("nota", Decimal("0.50"), "b1", "cb1")
    assert (receipt.applicationDate, receipt.transferDate) == (date(2031, 5, 4), date(2031, 5, 5))
    assert receipt.standIn is True
    assert receipt.metadata.mapEntry[0].value == "1"
    payer = receipt.payer
    assert payer.uniqueIdentifier.entityUniqueIdentifierType == "G"
    assert (payer.streetName, payer.civicNumber, payer.postalCode, payer.stateProvinceRegion) == \
        ("Via Roma", "1", "00100", "RM")
    first, second = receipt.transferList.transfer
    assert (first.IBAN, first.MBDAttachment, first.companyName) == (IBAN, None, "Comune di Esempio")
    assert (second.IBAN, _binary(second.MBDAttachment)) == (None, b"<marcaDaBollo/>")
    pafn_schema.assertValid(_answer(history))


@needs_reference
def test_pa_send_rt_v2_ko_carries_the_fault(pafn_client: Any) -> None:
    service, history = pafn_client
    answer = service.paSendRTV2(**IDS, receipt=_receipt(v2=True, receipt_id="dup"))
    assert answer.outcome == "KO"
    assert (answer.fault.faultCode, answer.fault.description) == (faults.PAA_RECEIPT_DUPLICATA, "già ricevuta")
    assert answer.fault.id == EC  # defaults to the request's idPA


@needs_reference
def test_pa_demand_payment_notice(pafn_client: Any, pafn_schema: etree.XMLSchema) -> None:
    service, history = pafn_client
    specific = b"<datiSpecifici><targa>AB123CD</targa></datiSpecifici>"
    answer = service.paDemandPaymentNotice(**IDS, idServizio="00001", idSoggettoServizio="00042",
                                           datiSpecificiServizioRequest=specific)
    request = RECEIVED["paDemandPaymentNotice"]
    assert (request.idServizio, request.idSoggettoServizio) == ("00001", "00042")
    assert _binary(request.datiSpecificiServizioRequest) == specific
    assert answer.outcome == "OK"
    assert (answer.qrCode.fiscalCode, answer.qrCode.noticeNumber) == (EC, NOTICE)
    option = answer.paymentList.paymentOptionDescription
    assert (option.amount, option.options, option.allCCP) == (Decimal("30.50"), "ANY", True)
    pafn_schema.assertValid(_answer(history))


HEADER = {"identificativoIntermediarioPA": "80000000001", "identificativoStazioneIntermediarioPA": "80000000001_01",
          "identificativoDominio": EC, "identificativoUnivocoVersamento": "02000000000012345",
          "codiceContestoPagamento": "n/a"}
RT_XML = "<RT xmlns=\"http://www.digitpa.gov.it/schemas/2011/Pagamenti/\"><versioneOggetto>6.2.0</versioneOggetto></RT>"


@needs_reference
def test_paa_invia_rt_with_header(ppt_client: Any, ppt_schema: etree.XMLSchema) -> None:
    service, history = ppt_client
    answer = service.paaInviaRT(tipoFirma="", rt=RT_XML.encode(), _soapheaders={"header": HEADER})
    header, request = RECEIVED["paaInviaRT"]
    assert {name: getattr(header, name) for name in HEADER} == HEADER
    assert _binary(request.rt).decode() == RT_XML
    assert request.tipoFirma in ("", None)  # an empty element: Spyne may read it either way
    assert answer.esito == "OK" and answer.fault is None
    sent = history.last_sent["envelope"]
    assert sent.find(f"{{{SOAP_ENV}}}Header/{{{ppt.PPTHEAD_NS}}}intestazionePPT/codiceContestoPagamento") is not None
    root = _answer(history)
    assert etree.QName(root).text == f"{{{ppt.PPT_NS}}}paaInviaRTRisposta"
    assert [c.tag for c in root] == ["paaInviaRTRisposta"]
    ppt_schema.assertValid(root)


@needs_reference
def test_paa_invia_rt_ko_carries_the_fault(ppt_client: Any, ppt_schema: etree.XMLSchema) -> None:
    service, history = ppt_client
    header = dict(HEADER, identificativoUnivocoVersamento="UNKNOWN")
    answer = service.paaInviaRT(tipoFirma="0", rt=b"<RT/>", _soapheaders={"header": header})
    assert RECEIVED["paaInviaRT"][1].tipoFirma == "0"
    assert answer.esito == "KO"
    assert (answer.fault.faultCode, answer.fault.id) == (faults.PAA_RPT_SCONOSCIUTA, EC)
    root = _answer(history)
    assert [c.tag for c in root.find("paaInviaRTRisposta")] == ["fault", "esito"]  # base type's fault first
    ppt_schema.assertValid(root)


@needs_reference
def test_paa_invia_esito_storno_and_richiesta_revoca(ppt_client: Any, ppt_schema: etree.XMLSchema) -> None:
    service, history = ppt_client
    ids = {k: HEADER[k] for k in ("identificativoDominio", "identificativoUnivocoVersamento",
                                  "codiceContestoPagamento")}
    answer = service.paaInviaEsitoStorno(identificativoIntermediarioPA="80000000001",
                                         identificativoStazioneIntermediarioPA="80000000001_01", **ids, er=b"<ER/>")
    assert _binary(RECEIVED["paaInviaEsitoStorno"].er) == b"<ER/>"
    assert (answer.esito, answer.fault.faultCode, answer.fault.id) == ("KO", faults.PAA_SEMANTICA, EC)
    ppt_schema.assertValid(_answer(history))

    answer = service.paaInviaRichiestaRevoca(**ids, rr=b"<RR/>")
    assert _binary(RECEIVED["paaInviaRichiestaRevoca"].rr) == b"<RR/>"
    assert answer.esito == "OK" and answer.fault is None
    ppt_schema.assertValid(_answer(history))


# --- hand-built envelopes, as ente software and the node's test suites write them ------------------

VERIFY_BY_HAND = (
    "<?xml version='1.0' encoding='utf-8'?>\n"
    "<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"\n"
    "    xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n"
    "\t<S:Body>\n"
    "\t\t<ns9:paVerifyPaymentNoticeReq xmlns:ns9=\"http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd\"\n"
    "\t\t\t\txmlns:unused=\"urn:x\">\n"
    f"\t\t\t<idPA>{EC}</idPA>\n"
    "\t\t\t<idBrokerPA>80000000001</idBrokerPA>\r\n"
    "\t\t\t<idStation>80000000001_01</idStation>\n"
    "\t\t\t<qrCode>\n"
    f"\t\t\t\t<fiscalCode>{EC}</fiscalCode>\n"
    f"\t\t\t\t<noticeNumber>{NOTICE}</noticeNumber>\n"
    "\t\t\t</qrCode>\n"
    "\t\t</ns9:paVerifyPaymentNoticeReq>\n"
    "\t</S:Body>\n"
    "</S:Envelope>\n"
)

RT_BY_HAND = (
    "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"\n"
    "\txmlns:h=\"http://ws.pagamenti.telematici.gov/ppthead\" xmlns:p=\"http://ws.pagamenti.telematici.gov/\">\n"
    "<soapenv:Header>\n"
    "\t<h:intestazionePPT>\n"
    + "".join(f"\t\t<{k}>{v}</{k}>\n" for k, v in HEADER.items()) +
    "\t</h:intestazionePPT>\n"
    "</soapenv:Header>\n"
    "<soapenv:Body>\n"
    "\t<p:paaInviaRT>\n"
    "\t\t<tipoFirma/>\n"
    f"\t\t<rt>{base64.b64encode(RT_XML.encode()).decode()}</rt>\n"
    "\t</p:paaInviaRT>\n"
    "</soapenv:Body>\n"
    "</soapenv:Envelope>"
)


def _post(url: str, body: str, headers: dict[str, str] | None = None) -> etree._Element:
    request = urllib.request.Request(url, data=body.encode(), method="POST",
                                     headers={"Content-Type": "text/xml; charset=utf-8", **(headers or {})})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        envelope = etree.fromstring(response.read())
    (root,) = envelope.find(f"{{{SOAP_ENV}}}Body")
    return root


def test_hand_built_verify_without_header_or_soap_action(server: str, pafn_schema: etree.XMLSchema) -> None:
    root = _post(f"{server}/pa/paForNode", VERIFY_BY_HAND)
    request = RECEIVED["paVerifyPaymentNotice"]
    assert (request.idPA, request.idStation, request.qrCode.noticeNumber) == (EC, "80000000001_01", NOTICE)
    assert root.tag == f"{{{pafn.PAFN_NS}}}paVerifyPaymentNoticeRes"
    # clients search answers by plain tag name: every descendant is unqualified
    assert all(etree.QName(e).namespace is None for e in root.iterdescendants())
    assert [c.tag for c in root] == ["outcome", "paymentList", "paymentDescription", "fiscalCodePA",
                                     "companyName", "officeName"]
    assert root.findtext("paymentList/paymentOptionDescription/allCCP") == "false"
    pafn_schema.assertValid(root)


def test_hand_built_paa_invia_rt_with_quoted_soap_action(server: str, ppt_schema: etree.XMLSchema) -> None:
    root = _post(f"{server}/pa/PaPerNodo", RT_BY_HAND, {"SOAPAction": '"paaInviaRT"'})
    header, request = RECEIVED["paaInviaRT"]
    assert header.codiceContestoPagamento == "n/a" and header.identificativoDominio == EC
    assert _binary(request.rt).decode() == RT_XML
    assert root.tag == f"{{{ppt.PPT_NS}}}paaInviaRTRisposta"
    assert root.findtext("paaInviaRTRisposta/esito") == "OK"
    ppt_schema.assertValid(root)
