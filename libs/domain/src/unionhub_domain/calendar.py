"""Calendar days and months as the contract counts them: in Asia/Shanghai."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def day_of(moment: datetime) -> date:
    """The calendar day of an instant."""
    return moment.astimezone(SHANGHAI).date()


def month_of(moment: datetime) -> str:
    """The calendar month of an instant, as "YYYY-MM"."""
    local = moment.astimezone(SHANGHAI)
    return f"{local.year:04d}-{local.month:02d}"  # strftime's %Y leaves out the zeros of year 1
