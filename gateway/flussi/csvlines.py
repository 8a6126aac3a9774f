"""The lines of a flow's CSV, decoded and split a large block at a time instead of a line at a time.

What ``io.TextIOWrapper(stream, "utf-8-sig", errors="strict", newline="")`` gives line by line, minus the line
ends: strict UTF-8 (a leading BOM dropped), lines ended by \\n, \\r\\n or \\r, no empty line after a final line
end. Decoding and splitting run in C over ~1 MiB at once, which the per-line text layer did not: the import
reads each flow twice (the scan, then the rows), and both readings count per row.
"""

from __future__ import annotations

import codecs
from typing import IO, Iterator

BLOCK = 1 << 20


def line_blocks(stream: IO[bytes], block: int = BLOCK) -> Iterator[list[str]]:
    """Lists of consecutive lines of ``stream``, in order; UnicodeDecodeError where the bytes stop being UTF-8.

    Every line ended before the bad bytes comes out first, as a line-by-line reader would have given them.
    """
    pending = b""  # the start of a character cut by the end of the last block
    rest: list[str] = []  # the text after the last line end so far, in parts (a long line stays linear)
    after_cr = False  # the text so far ended with \r: a \n right after it belongs to that line end
    first = True
    while True:
        data = stream.read(block)
        final = not data
        raw = pending + data
        if first:
            if not final and len(raw) < len(codecs.BOM_UTF8) and codecs.BOM_UTF8.startswith(raw):
                pending = raw  # perhaps a BOM, cut short by a tiny read
                continue
            first = False
            if raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
        error: UnicodeDecodeError | None = None
        try:
            text, used = codecs.utf_8_decode(raw, "strict", final)
        except UnicodeDecodeError as exc:
            error = exc
            text, used = codecs.utf_8_decode(raw[:exc.start], "strict", True)
        pending = raw[used:]
        if text:
            if after_cr and text[0] == "\n":
                text = text[1:]
            after_cr = False
        if final:
            if error is not None:
                raise error  # the file ends inside a character
            last = "".join(rest) + text
            if last:
                yield [last]  # a last line without a line end
            return
        # The parts in ``rest`` hold no line end: the last one of the text so far is in this block, if any.
        end = max(text.rfind("\n"), text.rfind("\r"))
        if end >= 0:
            ended = text[:end]
            if text[end] == "\r":
                after_cr = end == len(text) - 1  # its \n, if any, comes with the next block
            elif end and text[end - 1] == "\r":
                ended = text[:end - 1]  # a \r\n
            yield _split("".join(rest) + ended if rest else ended)
            rest = [text[end + 1:]]
        elif text:
            rest.append(text)
        if error is not None:
            raise error


def _split(text: str) -> list[str]:
    """``text``'s lines, split on \\n, \\r\\n and \\r; no line end after the last one."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")
