"""What an answer said: OK, KO with its faultCode, a bare SOAP Fault, or an HTTP error. Used on samples."""

from __future__ import annotations

from collections import Counter

import requests
from lxml import etree

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


def classify(status: int, body: bytes) -> str:
    if status >= 500 and b"Fault" not in body[:4096]:
        return f"HTTP {status}"
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        return f"HTTP {status} (not XML)"
    found: dict[str, str] = {}
    for element in root.iter():
        if isinstance(element.tag, str):
            name = etree.QName(element).localname
            if name in {"outcome", "esito", "faultCode", "faultcode", "faultstring"} and name not in found:
                found[name] = (element.text or "").strip()
    if "faultCode" in found:
        return f"KO {found['faultCode']}"
    if "faultcode" in found:
        return f"SOAP Fault {found['faultcode']}"
    outcome = found.get("outcome") or found.get("esito")
    if outcome:
        return outcome
    return "OK" if 200 <= status < 300 else f"HTTP {status}"


def post(url: str, body: bytes, soap_action: str, timeout: float = 10) -> tuple[int, bytes]:
    response = requests.post(url, data=body, timeout=timeout,
                             headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{soap_action}"'})
    return response.status_code, response.content


def distribution(results: list[tuple[int, bytes]]) -> dict[str, int]:
    return dict(Counter(classify(status, body) for status, body in results).most_common())
