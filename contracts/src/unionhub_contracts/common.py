"""Building blocks shared by every contract model."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

MAX_MESSAGE_BYTES = 1024 * 1024  # contract: a value over 1 MiB is dead-lettered
TIMEZONE = "Asia/Shanghai"  # contract: calendar periods are counted in this zone


class ContractModel(BaseModel):
    """A frozen, data-only contract model.

    Unknown fields are ignored (tolerant reader) and never kept. Validation is strict, so
    `"5"` is not an integer and a date must be `YYYY-MM-DD`.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)


def _addressable(value: str) -> str:
    # The pattern (published, so kept) allows "/", but an id is a path segment of the read
    # APIs (`GET /members/{id}`), which no "/" can be part of.
    if "/" in value:
        raise ValueError("an id may not contain '/': no read API could address it")
    return value


Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$"),
    AfterValidator(_addressable),
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def _check_month(value: str) -> str:
    if not _MONTH.match(value):
        raise ValueError("month must be YYYY-MM with a month from 01 to 12")
    return value


Month = Annotated[str, Field(examples=["2018-11"]), AfterValidator(_check_month)]
Year = Annotated[int, Field(ge=1900, le=2200)]
Score = Annotated[int, Field(ge=0, le=100)]
