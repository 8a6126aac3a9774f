"""A hypothesis-generated corpus of malformed SOAP envelopes against the four endpoints: truncated documents, random
bytes, wrong roots, 10,000-level nesting, huge attributes, thousands of namespaces, invalid UTF-8, BOMs, CDATA,
processing instructions, comments everywhere, SOAP 1.2. Every answer is the operation's faultBean (HTTP 200) or
a SOAP Fault (500/413), never an HTML page nor a stack trace; no gunicorn worker dies and memory stays bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st
from lxml import etree

from storage.db import Database
from tests.conftest import create_ente

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
FAULT_CODE = re.compile(rb"<faultCode>(CODE_)?PAA_[A-Z0-9_]+</faultCode>")
MAX_RSS_GROWTH_KB = 96 * 1024


@dataclass(frozen=True)
class Endpoint:
    path: str
    operation: str  # the request root, qualified by namespace; children unqualified
    namespace: str
    fields: tuple[tuple[str, str], ...]
    responses: tuple[str, ...]  # local names an answer's body child may have

    def envelope(self, *, soap_ns: str = SOAP11, wrap: Any = None, root: str | None = None,
                 extra_attrs: str = "") -> bytes:
        wrap = wrap or (lambda value: value)
        children = "".join(f"<{name}>{wrap(value)}</{name}>" for name, value in self.fields)
        op = root or self.operation
        return (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{soap_ns}">'
                f"<soapenv:Header/><soapenv:Body><p:{op} xmlns:p=\"{self.namespace}\"{extra_attrs}>{children}"
                f"</p:{op}></soapenv:Body></soapenv:Envelope>").encode()


def endpoints(ente: Any) -> list[Endpoint]:
    return [
        Endpoint("/ente/PagamentiTelematiciDovutiPagati", "paaSILChiediPagati",
                 "http://www.regione.veneto.it/pagamenti/ente/",
                 (("codIpaEnte", ente.cod_ipa), ("password", ente.password), ("idSession", "no-such-session")),
                 ("paaSILChiediPagatiRisposta",)),
        Endpoint("/ente/PagamentiTelematiciFlussiSPC", "paaSILChiediElencoFlussiSPC",
                 "http://www.regione.veneto.it/pagamenti/pa/",
                 (("password", ente.password), ("codIpaEnte", ente.cod_ipa), ("identificativoPsp", "SIMPSP01"),
                  ("tipoFlusso", "R"), ("dateFrom", "2030-01-01"), ("dateTo", "2030-01-02")),
                 ("paaSILChiediElencoFlussiSPCRisposta",)),
        Endpoint("/pa/paForNode", "paVerifyPaymentNoticeReq", "http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd",
                 (("idPA", ente.fiscal_code), ("idBrokerPA", "99999000013"), ("idStation", "99999000013_01"),
                  ("qrCode", f"<fiscalCode>{ente.fiscal_code}</fiscalCode><noticeNumber>301000000000000099"
                             f"</noticeNumber>")),
                 ("paVerifyPaymentNoticeRes",)),
        Endpoint("/pa/PaPerNodo", "paaInviaRT", "http://ws.pagamenti.telematici.gov/",
                 (("tipoFirma", ""), ("rt", "PFJULz4=")), ("paaInviaRTRisposta",)),
    ]


# --- the corpus --------------------------------------------------------------------------------------------
def _comments_everywhere(body: bytes) -> bytes:
    head, rest = body.split(b"?>", 1)
    return head + b"?>" + re.sub(rb"(<[^!?][^>]*>)", rb"\1<!-- c -->", rest)


def _pis_everywhere(body: bytes) -> bytes:
    head, rest = body.split(b"?>", 1)
    return head + b"?>" + re.sub(rb"(</[^>]+>)", rb"<?pi some data?>\1", rest)


def _mutations(endpoint: Endpoint) -> st.SearchStrategy[bytes]:
    valid = endpoint.envelope()
    nested = lambda depth: ("<a>" * depth + "x" + "</a>" * depth)  # noqa: E731
    return st.one_of(
        st.integers(0, len(valid) - 1).map(lambda cut: valid[:cut]),
        st.binary(max_size=3000),
        st.text(max_size=500).map(lambda text: text.encode("utf-8", "surrogatepass")),
        st.sampled_from(["wrongRoot", "Envelope", "paaSILChiediPagatiRisposta", "x" * 300]).map(
            lambda root: endpoint.envelope(root=root)),
        st.just(endpoint.envelope(wrap=lambda v: nested(10_000))),
        st.just(b"<x>" * 10_000),
        st.integers(1, 3).map(lambda mb: endpoint.envelope(extra_attrs=f' big="{"A" * (mb * 1024 * 1024)}"')),
        st.integers(100, 6000).map(lambda n: endpoint.envelope(
            extra_attrs="".join(f' xmlns:n{i}="urn:ns:{i}"' for i in range(n)))),
        st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\x00", b"\xf8\x88\x80\x80\x80"]).map(
            lambda junk: valid.replace(b"</idSession>", junk + b"</idSession>", 1).replace(
                b"</idPA>", junk + b"</idPA>", 1).replace(b"</tipoFlusso>", junk + b"</tipoFlusso>", 1)
            .replace(b"</rt>", junk + b"</rt>", 1)),
        st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf\xef\xbb\xbf"]).map(
            lambda bom: bom + valid),
        st.just(valid.decode().encode("utf-16")),
        st.just(endpoint.envelope(wrap=lambda v: f"<![CDATA[{v}]]>")),
        st.just(endpoint.envelope(wrap=lambda v: f"<![CDATA[{v}]]><![CDATA[]]>]]&gt;")),
        st.just(_comments_everywhere(valid)),
        st.just(_pis_everywhere(valid)),
        st.just(endpoint.envelope(soap_ns=SOAP12)),
        st.tuples(st.integers(0, len(valid)), st.binary(min_size=1, max_size=40)).map(
            lambda cut: valid[:cut[0]] + cut[1] + valid[cut[0]:]),
    )


# --- the gateway's processes ---------------------------------------------------------------------------
def worker_pids(gateway: Any) -> list[int]:
    arbiter = gateway.process.pid
    children = Path(f"/proc/{arbiter}/task/{arbiter}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def check_answer(endpoint: Endpoint, body: bytes, answer: requests.Response) -> None:
    content = answer.content
    assert answer.status_code in (200, 413, 500), (answer.status_code, body[:200])
    assert answer.headers.get("Content-Type", "").startswith("text/xml"), answer.headers
    for leak in (b"Traceback", b"<html", b"<HTML", b'File "', b"lxml.etree", b"sqlalchemy"):
        assert leak not in content, (leak, content[:500])
    root = etree.fromstring(content)
    assert root.tag == f"{{{SOAP11}}}Envelope"
    (child,) = [e for e in root.find(f"{{{SOAP11}}}Body") if isinstance(e.tag, str)]
    name = etree.QName(child).localname
    if name == "Fault":
        assert answer.status_code in (413, 500)
        return
    assert name in endpoint.responses, name
    assert answer.status_code in (200, 413)
    if FAULT_CODE.search(content) is None:
        # Only a well-formed request of the operation may succeed (comments, CDATA, PIs, BOM...).
        assert answer.status_code == 200 and b"<faultCode>" not in content


@pytest.fixture(scope="module")
def hostile_ente(gateway: Any) -> Any:
    db = Database(gateway.database_url)
    try:
        return create_ente(db)
    finally:
        db.dispose()


@pytest.mark.slow
def test_malformed_envelopes_never_break_the_gateway(gateway: Any, hostile_ente: Any) -> None:
    targets = endpoints(hostile_ente)
    pids = worker_pids(gateway)
    http = requests.Session()
    # Warm up: the first requests of a worker load lazily imported code; measure growth after that.
    for endpoint in targets:
        for _ in range(4):
            http.post(gateway.url + endpoint.path, data=endpoint.envelope(), timeout=30,
                      headers={"Content-Type": "text/xml"})
    before = {pid: rss_kb(pid) for pid in pids}

    @settings(max_examples=160, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example])
    @given(data=st.data())
    def barrage(data: st.DataObject) -> None:
        endpoint = data.draw(st.sampled_from(targets))
        body = data.draw(_mutations(endpoint))
        action = data.draw(st.sampled_from([None, '""', f'"{endpoint.operation}"', "garbage"]))
        headers = {"Content-Type": data.draw(st.sampled_from(["text/xml", "text/xml; charset=utf-8",
                                                               "application/soap+xml", "text/plain"]))}
        if action is not None:
            headers["SOAPAction"] = action
        answer = http.post(gateway.url + endpoint.path, data=body, headers=headers, timeout=60)
        check_answer(endpoint, body, answer)

    barrage()

    assert requests.get(gateway.url + "/healthz", timeout=10).status_code == 200
    assert worker_pids(gateway) == pids  # no worker crashed and was replaced
    for pid in pids:
        grown = rss_kb(pid) - before[pid]
        assert grown < MAX_RSS_GROWTH_KB, f"worker {pid} grew by {grown} kB"
        assert rss_kb(pid) < 600 * 1024
