"""Exceptions with a meaning to the message pipeline. Pure Python: domain code may raise them."""

from __future__ import annotations


class Rejected(Exception):
    """A well-formed command broke a business rule: publish `command.rejected`, change nothing."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class Missing(Rejected):
    """A prerequisite is not known yet (`waiting_for`, e.g. "union:ft-1"): the command is held
    and applied once it is; when the hold period ends, it is rejected with `code`."""

    def __init__(self, waiting_for: str, code: str, reason: str) -> None:
        super().__init__(code, reason)
        self.waiting_for = waiting_for
