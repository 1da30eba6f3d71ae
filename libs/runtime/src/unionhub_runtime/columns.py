"""Column types every service uses for values whose meaning the database could bend."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcInstant(TypeDecorator[datetime]):
    """An instant: stored in UTC, always read back aware (in UTC).

    PostgreSQL's `timestamptz` keeps instants, but SQLite has no such type: SQLAlchemy
    writes a datetime's wall time and drops its offset, so `10:00+08:00` would read back
    as `10:00Z`. Converting to UTC before it is written keeps both databases exact.
    A naive datetime is refused: it names no instant.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} is not an instant: give its offset")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
