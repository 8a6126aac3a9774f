"""SOAP request templates of the measured operations, built once by zeep from the *reference* WSDLs.

A template is literal text with ``{{NAME}}`` slots; the Lua script (load) and :func:`fill` (samples,
profile) put the same values in them. Building with zeep gives exactly what a real client sends
(unqualified children, the contract's namespaces), so the harness never hand-writes a request.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from lxml import etree

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
PA_FOR_NODE_WSDL = REFERENCE / "pagopa" / "wsdl" / "paForNode.wsdl"
ENTE_WSDL = REFERENCE / "mypay" / "wsdl" / "pa-per-ente.wsdl"
PA_FOR_NODE_BINDING = "{http://pagopa-api.pagopa.gov.it/paForNode}paForNodeBinding"
ENTE_BINDING = ("{http://www.regione.veneto.it/pagamenti/ente/PagamentiTelematiciDovutiPagati}"
                "PagamentiTelematiciDovutiPagatiBinding")
ENTE_PAYLOAD_NS = "http://www.regione.veneto.it/schemas/2012/Pagamenti/Ente/"

SLOT = re.compile(r"\{\{([A-Z0-9_]+)\}\}")
# The IUD that makes every InviaDovuti request new: fixed width, a multiple of 3, so its base64 can be
# computed alone (in Lua) and spliced between the pre-encoded head and tail of the Dovuti document.
IUD_WIDTH = 24
_B64_MARK = b"\x00B64MARK\x00"


@dataclass(frozen=True)
class Operation:
    name: str
    path: str  # gateway URL path
    soap_action: str
    template: str  # envelope with {{SLOT}}s
    # Dovuti document pieces when the template carries {{DOVUTI_B64}} (head/tail already base64).
    b64_head: str = ""
    b64_tail: str = ""


@dataclass(frozen=True)
class Identity:
    """What the seeded database holds and the requests must name."""

    fiscal_code: str
    cod_ipa: str
    password: str
    broker_id: str
    station_id: str
    iban: str
    amount: Decimal


def _client(wsdl: Path):
    import zeep

    return zeep.Client(str(wsdl))


def _message(client, binding: str, operation: str, **values) -> str:
    service = client.create_service(binding, "http://127.0.0.1/")
    envelope = client.create_message(service, operation, **values)
    return etree.tostring(envelope, encoding="unicode")


def dovuti_document(identity: Identity, iud: str) -> bytes:
    """A one-item Dovuti (tipo TARI) whose IUD starts at a byte offset that is a multiple of 3."""
    head = (f'<?xml version="1.0" encoding="UTF-8"?><Dovuti xmlns="{ENTE_PAYLOAD_NS}">'
            "<versioneOggetto>6.2.0</versioneOggetto><soggettoPagatore><identificativoUnivocoPagatore>"
            "<tipoIdentificativoUnivoco>F</tipoIdentificativoUnivoco>"
            "<codiceIdentificativoUnivoco>RSSMRA80A01H501U</codiceIdentificativoUnivoco>"
            "</identificativoUnivocoPagatore><anagraficaPagatore>Mario Rossi</anagraficaPagatore>"
            "<indirizzoPagatore>Via Roma</indirizzoPagatore><civicoPagatore>1</civicoPagatore>"
            "<capPagatore>30100</capPagatore><localitaPagatore>Venezia</localitaPagatore>"
            "<provinciaPagatore>VE</provinciaPagatore><nazionePagatore>IT</nazionePagatore>"
            "<e-mailPagatore>mario.rossi@example.it</e-mailPagatore></soggettoPagatore>"
            "<datiVersamento><tipoVersamento>ALL</tipoVersamento><datiSingoloVersamento>")
    open_tag = "<identificativoUnivocoDovuto>"
    head += " " * (-(len(head) + len(open_tag)) % 3) + open_tag
    tail = (f"</identificativoUnivocoDovuto><importoSingoloVersamento>{identity.amount:.2f}</importoSingoloVersamento>"
            "<identificativoTipoDovuto>TARI</identificativoTipoDovuto>"
            "<causaleVersamento>Tassa rifiuti benchmark</causaleVersamento>"
            "<datiSpecificiRiscossione>9/0101100IM/</datiSpecificiRiscossione>"
            "</datiSingoloVersamento></datiVersamento></Dovuti>")
    return (head + iud + tail).encode()


def build_operations(identity: Identity) -> dict[str, Operation]:
    node = _client(PA_FOR_NODE_WSDL)
    ente = _client(ENTE_WSDL)
    who = dict(idPA=identity.fiscal_code, idBrokerPA=identity.broker_id, idStation=identity.station_id)
    qr = {"fiscalCode": identity.fiscal_code, "noticeNumber": "{{NOTICE}}"}
    subject = {"uniqueIdentifier": {"entityUniqueIdentifierType": "F",
                                    "entityUniqueIdentifierValue": "RSSMRA80A01H501U"},
               "fullName": "Mario Rossi"}
    receipt = {
        "receiptId": "{{RECEIPT_ID}}", "noticeNumber": "{{NOTICE}}", "fiscalCode": identity.fiscal_code,
        "outcome": "OK", "creditorReferenceId": "{{IUV}}", "paymentAmount": identity.amount,
        "description": "Tassa rifiuti benchmark", "companyName": "Comune benchmark", "debtor": subject,
        "transferList": {"transfer": [{"idTransfer": 1, "transferAmount": identity.amount,
                                       "fiscalCodePA": identity.fiscal_code, "IBAN": identity.iban,
                                       "remittanceInformation": "Tassa rifiuti benchmark",
                                       "transferCategory": "9/0101100IM/"}]},
        "idPSP": "BENCHPSP01", "PSPCompanyName": "PSP benchmark", "idChannel": "BENCHPSP01_01",
        "channelDescription": "app", "payer": subject, "paymentMethod": "creditCard", "fee": Decimal("1.00"),
        "paymentDateTime": datetime(2025, 1, 15, 10, 30),  # the node writes local time without an offset
        "applicationDate": date(2025, 1, 15), "transferDate": date(2025, 1, 16),
    }
    operations = [
        Operation("paVerifyPaymentNotice", "/pa/paForNode", "paVerifyPaymentNotice",
                  _message(node, PA_FOR_NODE_BINDING, "paVerifyPaymentNotice", **who, qrCode=qr)),
        Operation("paGetPaymentV2", "/pa/paForNode", "paGetPaymentV2",
                  _message(node, PA_FOR_NODE_BINDING, "paGetPaymentV2", **who, qrCode=qr,
                           amount=identity.amount, transferType="PAGOPA")),
        Operation("paSendRTV2", "/pa/paForNode", "paSendRTV2",
                  _message(node, PA_FOR_NODE_BINDING, "paSendRTV2", **who, receipt=receipt)),
    ]
    document = dovuti_document(identity, "\x01" * IUD_WIDTH)
    cut = document.index(b"\x01")
    invia = _message(ente, ENTE_BINDING, "paaSILInviaDovuti", password=identity.password, dovuti=_B64_MARK,
                     _soapheaders={"header": {"codIpaEnte": identity.cod_ipa}})
    operations.append(Operation(
        "paaSILInviaDovuti", "/ente/PagamentiTelematiciDovutiPagati", "paaSILInviaDovuti",
        invia.replace(base64.b64encode(_B64_MARK).decode(), "{{DOVUTI_B64}}"),
        b64_head=base64.b64encode(document[:cut]).decode(),
        b64_tail=base64.b64encode(document[cut + IUD_WIDTH:]).decode()))
    operations.append(Operation(
        "paaSILChiediPagati", "/ente/PagamentiTelematiciDovutiPagati", "paaSILChiediPagati",
        _message(ente, ENTE_BINDING, "paaSILChiediPagati", codIpaEnte=identity.cod_ipa,
                 password=identity.password, idSession="{{ID_SESSION}}")))
    result = {}
    for operation in operations:
        # zeep escapes nothing in "{{...}}", but check: a missing slot would silently measure one fixed request.
        assert SLOT.search(operation.template), operation.name
        result[operation.name] = operation
    return result


def fill(operation: Operation, values: dict[str, str]) -> bytes:
    """The request body with every slot filled (same result the Lua script produces)."""
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name == "DOVUTI_B64":
            iud = values["IUD"]
            assert len(iud) == IUD_WIDTH
            return operation.b64_head + base64.b64encode(iud.encode()).decode() + operation.b64_tail
        return values[name]

    return SLOT.sub(value, operation.template).encode()


def slots(operation: Operation) -> list[str]:
    return sorted(set(SLOT.findall(operation.template)))


class Values:
    """Python twin of the Lua slot functions, for samples and the profile: same kinds of values."""

    def __init__(self, pairs: list[tuple[str, str]], sessions: list[str], tag: str) -> None:
        self.pairs = pairs
        self.sessions = sessions
        self.tag = tag
        self.counter = 0

    def __call__(self) -> dict[str, str]:
        self.counter += 1
        values = {"RECEIPT_ID": f"P{self.tag}{self.counter:0{34 - len(self.tag)}d}",
                  "IUD": f"BENCH{self.tag}{self.counter:0{IUD_WIDTH - 5 - len(self.tag)}d}"}
        if self.pairs:
            values["NOTICE"], values["IUV"] = self.pairs[self.counter % len(self.pairs)]
        if self.sessions:
            values["ID_SESSION"] = self.sessions[self.counter % len(self.sessions)]
        return values
