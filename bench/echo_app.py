"""The baseline: a bare WSGI app that parses the SOAP body with lxml and answers a fixed response.

Each operation gets back the bytes the real gateway answered to a sample request (same size, same
content type), read from the JSON file named by BENCH_ECHO_RESPONSES: the gap between this app and
the gateway under the same gunicorn settings is what the gateway's own code costs.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Iterable

from lxml import etree

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
_FALLBACK = b'<?xml version="1.0" encoding="UTF-8"?><Envelope/>'


def _load() -> dict[str, bytes]:
    path = os.environ.get("BENCH_ECHO_RESPONSES")
    if not path:
        return {}
    with open(path, encoding="utf-8") as handle:
        return {name: body.encode("utf-8") for name, body in json.load(handle).items()}


RESPONSES = _load()


def _operation(root: etree._Element) -> str:
    for child in root:
        if isinstance(child.tag, str) and child.tag.endswith("Body"):
            for element in child:
                if isinstance(element.tag, str):
                    return etree.QName(element).localname
    return ""


def app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    try:
        name = _operation(etree.fromstring(body, _PARSER))
    except etree.XMLSyntaxError:
        name = ""
    payload = RESPONSES.get(name, _FALLBACK)
    start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(payload)))])
    return [payload]
