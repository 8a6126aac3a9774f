"""Errors of the reporting transports: the node cannot be reached now (retry later) or refuses the request."""

from __future__ import annotations


class NodeUnavailable(Exception):
    """Connection refused, timeout, 5xx or 429: nothing was stored, try again later."""


class NodeRefused(Exception):
    """The node answered with a fault or a 4xx for this request: retrying as is will not help."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
