"""Reading an uploaded flow zip safely: one named CSV member, streamed, with zip-bomb limits.

Declared sizes are checked before reading (total, ratio) and the actual bytes are counted while streaming,
since a crafted archive can lie in its headers.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

MAX_RATIO = 200  # CSV compresses 5-30x in practice; 200x is only reached by crafted content
MAX_UNCOMPRESSED = 20 * 1024**3
_CHUNK = 1024 * 1024


class ArchiveError(ValueError):
    """The upload is not a usable flow archive; ``code`` is the flow-level error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


ZIP_NON_VALIDO = "PAA_IMPORT_ZIP_NON_VALIDO"
NO_CSV = "PAA_IMPORT_NO_CSV"


def check_declared(info: zipfile.ZipInfo) -> None:
    if info.flag_bits & 0x1:
        raise ArchiveError(ZIP_NON_VALIDO, "encrypted zip entries are not accepted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ArchiveError(ZIP_NON_VALIDO, "only stored or deflated zip entries are accepted")
    if info.file_size > MAX_UNCOMPRESSED:
        raise ArchiveError(ZIP_NON_VALIDO, "zip entry too large once uncompressed")
    if info.file_size > MAX_RATIO * max(info.compress_size, 1) and info.file_size > _CHUNK:
        raise ArchiveError(ZIP_NON_VALIDO, "zip entry compression ratio too high (zip bomb)")


def quick_check(path: Path) -> None:
    """Cheap structural check done at upload time: a zip whose declared sizes are acceptable."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                check_declared(info)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ArchiveError(NO_CSV, "the upload is not a zip archive") from exc


class _Bounded(io.RawIOBase):
    """A member stream that stops as soon as more bytes come out than the header declared."""

    def __init__(self, stream: IO[bytes], declared: int, compressed: int) -> None:
        self.stream = stream
        self.limit = min(declared, MAX_UNCOMPRESSED, MAX_RATIO * max(compressed, 1) + _CHUNK)
        self.seen = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001
        data = self.stream.read(len(buffer))
        self.seen += len(data)
        if self.seen > self.limit:
            raise ArchiveError(ZIP_NON_VALIDO, "zip entry larger than declared (zip bomb)")
        buffer[: len(data)] = data
        return len(data)


@contextmanager
def open_member(path: Path, member: str) -> Iterator[IO[bytes]]:
    """A bounded binary stream of ``member``; ArchiveError for a missing, lying or corrupt entry."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ArchiveError(NO_CSV, "the upload is not a zip archive") from exc
    with archive:
        try:
            info = archive.getinfo(member)
        except KeyError as exc:
            raise ArchiveError(NO_CSV, f"{member} not found in the zip") from exc
        check_declared(info)
        try:
            with archive.open(info) as raw:
                yield io.BufferedReader(_Bounded(raw, info.file_size, info.compress_size), _CHUNK)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error) as exc:
            raise ArchiveError(ZIP_NON_VALIDO, f"corrupt zip entry: {exc}") from exc
