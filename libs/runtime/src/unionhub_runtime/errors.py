"""Exceptions with a meaning to the message pipeline. Pure Python: domain code may raise them."""

from __future__ import annotations


class Rejected(Exception):
    """A well-formed command broke a business rule: publish `command.rejected`, change nothing."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
