"""The paid export's field formatting, shared by its row builders: MyPay's CSV writer and its value formats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from gateway.flussi.tracciati import neutralise

ROME = ZoneInfo("Europe/Rome")
EMPTY8 = [""] * 8
_FORMULA = frozenset("=+-@\t\r")


def text(value: Any) -> str:
    return "" if value is None else neutralise(str(value))


def amount(value: Any) -> str:
    return "" if value is None else f"{value:.2f}"


def safe(values: list[Any]) -> list[str]:
    """Text columns: None -> "", and a leading = + - @ TAB CR neutralised (inline: this runs per field)."""
    return ["" if v is None else ("'" + v if v[:1] in _FORMULA else v) for v in values]


@dataclass(frozen=True)
class RowContext:
    """What every row repeats, read once: ORM attribute access costs more than building the row."""

    fiscal_code: str
    ente_name: str
    station: str
    with_receipts: bool
    version: str


def csv_line(fields: list[str]) -> str:
    """MyPay's writer: `;`, every field quoted, embedded quotes doubled, \\n. Two C-level replaces per row."""
    joined = "\x00".join(fields)
    if joined.count("\x00") != len(fields) - 1:  # a NUL inside a value: the plain way
        return ";".join('"' + field.replace('"', '""') + '"' for field in fields) + "\n"
    joined = joined.replace('"', '""')
    return '"' + joined.replace("\x00", '";"') + '"\n'
