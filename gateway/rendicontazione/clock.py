"""Time zones of reporting: the node's local times are Europe/Rome; the database keeps aware UTC."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

ROME = ZoneInfo("Europe/Rome")


def aware(value: datetime) -> datetime:
    """A node datetime as aware UTC; one without offset is Rome local time (as the node writes them)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=ROME)
    return value.astimezone(timezone.utc)


def rome_naive(value: datetime) -> datetime:
    """Rome local time without offset or fraction: how dataOraFlusso travels to the SIL."""
    if value.tzinfo is not None:
        value = value.astimezone(ROME)
    return value.replace(tzinfo=None, microsecond=0)


def rome_date(value: datetime) -> date:
    return value.astimezone(ROME).date() if value.tzinfo else value.date()


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """[start of ``first``, start of the day after ``last``) in Rome, as aware UTC."""
    start = datetime.combine(first, time.min, ROME)
    end = datetime.combine(last + timedelta(days=1), time.min, ROME)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)
