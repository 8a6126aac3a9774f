"""Legacy NodoPerPa reporting calls (nodoChiediElencoFlussiRendicontazione / nodoChiediFlussoRendicontazione).

Deprecated by pagoPA from 30 June 2026; kept for stations still configured that way. The flow comes back as
base64 of the plain FlussoRiversamento XML; a zip or gzip is still recognised by its first bytes.
"""

from __future__ import annotations

import base64
import gzip
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import requests
from lxml import etree

from gateway.node import headers as node_headers
from gateway.payments.documents.common import parse_datetime
from gateway.xml import UnsafeXml, parse_bytes, refuse_dtd

from .clock import aware
from .config import LegacyStation
from .errors import NodeRefused, NodeUnavailable

PPT_NS = "http://ws.pagamenti.telematici.gov/"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"


@dataclass(frozen=True)
class ListedFlow:
    flow_id: str
    flow_datetime: datetime  # aware UTC


def _envelope(operation: str, fields: list[tuple[str, str | None]]) -> bytes:
    envelope = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soapenv": SOAP_NS, "ppt": PPT_NS})
    etree.SubElement(envelope, f"{{{SOAP_NS}}}Header")
    body = etree.SubElement(envelope, f"{{{SOAP_NS}}}Body")
    root = etree.SubElement(body, f"{{{PPT_NS}}}{operation}")
    for name, value in fields:
        if value:
            # Unqualified children: NodoPerPa's schema sets no elementFormDefault.
            etree.SubElement(root, name).text = value
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _fault_of(answer: etree._Element) -> NodeRefused | None:
    for element in answer.iter():
        if _local(element) == "fault":
            values = {_local(child): (child.text or "") for child in element}
            return NodeRefused(values.get("faultCode") or "PPT_SYSTEM_ERROR",
                               values.get("description") or values.get("faultString") or "")
    return None


class NodoPerPaClient:
    def __init__(self, url: str, *, timeout: float = 30.0, http: requests.Session | None = None,
                 api_key: str = "") -> None:
        self.url = url
        self.api_key = api_key
        self.http = http or requests.Session()
        self.http.trust_env = False
        self.timeout = timeout

    def _post(self, operation: str, payload: bytes, *, stream: bool = False) -> requests.Response:
        try:
            response = self.http.post(self.url, data=payload, headers=node_headers.soap(operation, self.api_key),
                                      timeout=self.timeout, stream=stream)
        except requests.RequestException as exc:
            raise NodeUnavailable(f"NodoPerPa not reachable: {type(exc).__name__}") from exc
        # A SOAP Fault comes with HTTP 500: a node-side problem, to be retried later.
        if response.status_code != 200:
            response.close()
            raise NodeUnavailable(f"NodoPerPa answered HTTP {response.status_code}")
        return response

    def _fields(self, station: LegacyStation, dominio: str | None, psp_id: str | None) -> list[tuple[str, str | None]]:
        return [("identificativoIntermediarioPA", station.broker_id),
                ("identificativoStazioneIntermediarioPA", station.station_id),
                ("password", station.password), ("identificativoDominio", dominio), ("identificativoPSP", psp_id)]

    def list_flows(self, station: LegacyStation, dominio: str, psp_id: str | None = None) -> list[ListedFlow]:
        operation = "nodoChiediElencoFlussiRendicontazione"
        response = self._post(operation, _envelope(operation, self._fields(station, dominio, psp_id)))
        try:
            answer = parse_bytes(response.content)
        except UnsafeXml as exc:
            raise NodeUnavailable(f"{operation}: unreadable answer") from exc
        fault = _fault_of(answer)
        if fault is not None:
            raise fault
        flows = []
        for element in answer.iter():
            if _local(element) == "idRendicontazione":
                values = {_local(child): (child.text or "").strip() for child in element}
                if values.get("identificativoFlusso") and values.get("dataOraFlusso"):
                    flows.append(ListedFlow(values["identificativoFlusso"],
                                            aware(parse_datetime(values["dataOraFlusso"]))))
        return flows

    def download_flow(self, station: LegacyStation, dominio: str, flow_id: str, target: Path,
                      psp_id: str | None = None) -> None:
        """Write the flow's XML to ``target``; the answer is spooled to disk, never held twice in memory."""
        operation = "nodoChiediFlussoRendicontazione"
        fields = self._fields(station, dominio, psp_id) + [("identificativoFlusso", flow_id)]
        with tempfile.TemporaryDirectory(prefix="fdr-soap-") as tmp:
            answer_path = Path(tmp) / "answer.xml"
            response = self._post(operation, _envelope(operation, fields), stream=True)
            try:
                with open(answer_path, "wb") as out:
                    for chunk in response.iter_content(1 << 16):
                        out.write(chunk)
            except requests.RequestException as exc:
                raise NodeUnavailable(f"{operation}: answer interrupted") from exc
            finally:
                response.close()
            payload = _payload(answer_path, operation)
            decoded = Path(tmp) / "decoded"
            with open(decoded, "wb") as out:
                out.write(base64.b64decode("".join(payload.split())))
            del payload
            unpack(decoded, target)


def _payload(path: Path, operation: str) -> str:
    with open(path, "rb") as handle:
        refuse_dtd(handle.read(4096))
    # huge_tree: the base64 text of a large flow exceeds libxml2's default 10 MB text-node limit.
    events = etree.iterparse(str(path), events=("end",), resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=True, remove_comments=True)
    try:
        for _, element in events:
            name = _local(element)
            if name == "xmlRendicontazione":
                return element.text or ""
            if name == "fault":
                values = {_local(child): (child.text or "") for child in element}
                raise NodeRefused(values.get("faultCode") or "PPT_SYSTEM_ERROR",
                                  values.get("description") or values.get("faultString") or "")
    except etree.XMLSyntaxError as exc:
        raise NodeUnavailable(f"{operation}: unreadable answer") from exc
    raise NodeRefused("PPT_ID_FLUSSO_SCONOSCIUTO", f"{operation}: no xmlRendicontazione in the answer")


# A flow of 100,000 payments is ~45 MB of XML: anything far larger unpacked is a bomb, not a flow.
MAX_UNPACKED_BYTES = 1 << 30


def _copy_capped(member, out) -> None:  # noqa: ANN001
    written = 0
    while chunk := member.read(1 << 16):
        written += len(chunk)
        if written > MAX_UNPACKED_BYTES:
            raise NodeRefused("PPT_SINTASSI_XSD", "compressed flow unpacks to more than 1 GiB")
        out.write(chunk)


def unpack(source: Path, target: Path) -> None:
    """Plain XML as is; a zip's single entry or a gzip's content otherwise (sniffed, not trusted to a name)."""
    with open(source, "rb") as handle:
        head = handle.read(4)
    if head.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(source) as archive:
            entries = [info for info in archive.infolist() if not info.is_dir()]
            if len(entries) != 1:
                raise NodeRefused("PPT_SINTASSI_XSD", "zipped flow with more than one file")
            with archive.open(entries[0]) as member, open(target, "wb") as out:
                _copy_capped(member, out)
    elif head.startswith(b"\x1f\x8b"):
        with gzip.open(source, "rb") as member, open(target, "wb") as out:
            _copy_capped(member, out)
    else:
        shutil.copyfile(source, target)
