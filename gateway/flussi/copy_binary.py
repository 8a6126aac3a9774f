"""The values of a one-column ``COPY … TO STDOUT (FORMAT binary)``, as bytes, from psycopg's data chunks.

Binary rows carry their length, so the text inside is never escaped or quoted (a text COPY would escape
newlines and backslashes, a CSV one would quote the lines the export has already quoted). PostgreSQL sends one
row per CopyData message, which the fast path relies on; any other cut of the stream takes the general path.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Union

Buffer = Union[bytes, memoryview]

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = len(SIGNATURE) + 8  # signature, flags (int32), header extension length (int32, 0 when sent)
_ONE_FIELD = b"\x00\x01"
_TRAILER = b"\xff\xff"


class CopyFormatError(ValueError):
    """The stream is not a binary COPY of one non-null column."""


def values(chunks: Iterable[Buffer]) -> Iterator[Buffer]:
    """Every row's one value, in order (slices of the chunks, not copies); CopyFormatError on anything else."""
    chunks = iter(chunks)
    buffer = b""
    for chunk in chunks:  # the header, usually with the first row
        buffer += bytes(chunk)
        if len(buffer) >= _HEADER:
            break
    if buffer[:len(SIGNATURE)] != SIGNATURE or len(buffer) < _HEADER:
        raise CopyFormatError("not a binary COPY stream")
    extension = int.from_bytes(buffer[_HEADER - 4:_HEADER], "big")
    buffer = buffer[_HEADER + extension:]  # an extension (none is defined) is skipped, as the format says
    ended = False
    if buffer:
        rows, buffer, ended = _split(buffer)
        yield from rows
    for chunk in chunks:
        if ended:
            raise CopyFormatError("data after the trailer")
        size = len(chunk)
        # The fast path: exactly one whole row in this message.
        if not buffer and size >= 6 and chunk[:2] == _ONE_FIELD and int.from_bytes(chunk[2:6], "big") == size - 6:
            yield chunk[6:]
            continue
        rows, buffer, ended = _split(buffer + bytes(chunk))
        yield from rows
    if not ended or buffer:
        raise CopyFormatError("binary COPY stream cut short")


def _split(data: bytes) -> tuple[list[bytes], bytes, bool]:
    """The whole rows at the start of ``data``, what is left over, and whether the trailer was reached."""
    rows = []
    position = 0
    while len(data) - position >= 2:
        head = data[position:position + 2]
        if head == _TRAILER:
            return rows, data[position + 2:], True
        if head != _ONE_FIELD:
            raise CopyFormatError("a binary COPY row with other than one field")
        if len(data) - position < 6:
            break
        length = int.from_bytes(data[position + 2:position + 6], "big", signed=True)
        if length < 0:
            raise CopyFormatError("a NULL value")
        if len(data) - position - 6 < length:
            break
        rows.append(data[position + 6:position + 6 + length])
        position += 6 + length
    return rows, data[position:], False
