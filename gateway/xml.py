"""The one hardened XML entry point of the gateway.

No DTDs, no entities, no network, no huge trees: a document carrying ``<!DOCTYPE`` or ``<!ENTITY`` is
refused before any parser sees it (Spyne's own lxml path turned such a body into a bare HTTP 500).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from lxml import etree

MAX_DEPTH = 64


class UnsafeXml(ValueError):
    """The document is not acceptable XML (malformed, DTD, entity, too deep)."""


_DTD_RE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def _parser(huge: bool = False) -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, dtd_validation=False,
                           load_dtd=False, remove_comments=True, remove_pis=True, huge_tree=huge,
                           collect_ids=False)


_PARSER = _parser()


def refuse_dtd(data: bytes) -> None:
    if _DTD_RE.search(data):
        raise UnsafeXml("DTD and entity declarations are not accepted")


def parse_bytes(data: bytes, max_depth: int = MAX_DEPTH) -> etree._Element:
    """Parse untrusted bytes into an element, or raise UnsafeXml."""
    refuse_dtd(data)
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(f"malformed XML: {exc}") from exc
    if root is None:
        raise UnsafeXml("empty document")
    # Each level needs a start tag of its own: a document with fewer start tags cannot nest deeper.
    if data.count(b"<") - data.count(b"</") > max_depth:
        _check_depth(root, max_depth)
    return root


def _check_depth(root: etree._Element, max_depth: int) -> None:
    # iterancestors on the deepest leaves would be quadratic; a single walk with a stack is linear.
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > max_depth:
            raise UnsafeXml(f"document nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in element)


def iterparse_file(path: Path, tag: str | tuple[str, ...] | None = None, events: tuple[str, ...] = ("end",)):
    """Streaming parse of a large trusted-size file with the same protections."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    refuse_dtd(head)
    return etree.iterparse(str(path), events=events, tag=tag, resolve_entities=False, no_network=True,
                           load_dtd=False, huge_tree=False, remove_comments=True)


@lru_cache(maxsize=None)
def load_schema(path: Path) -> etree.XMLSchema:
    """Compile a schema of the project's own xsd/ or wsdl/ folders (trusted, local files only)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(path), parser))


def local_name(element: etree._Element) -> str:
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""
