"""HTTP headers of the gateway's calls to the node: SOAP action, and pagoPA's API key when one is set."""

from __future__ import annotations

API_KEY_HEADER = "Ocp-Apim-Subscription-Key"  # pagoPA's API gateway (Azure APIM) product key


def api_key(key: str) -> dict[str, str]:
    return {API_KEY_HEADER: key} if key else {}


def soap(operation: str, key: str = "") -> dict[str, str]:
    return {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{operation}"', **api_key(key)}
