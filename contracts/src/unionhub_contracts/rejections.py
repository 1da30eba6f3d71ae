"""`command.rejected` and `command.held`, published by every service on its own `*.events` topic."""

from __future__ import annotations

from unionhub_domain.rejections import RejectionCode

from .common import ContractModel

__all__ = ["CommandHeld", "CommandRejected", "RejectionCode"]


class CommandRejected(ContractModel):
    command_id: str
    command_type: str
    code: str
    reason: str


class CommandHeld(ContractModel):
    """A command waits for a prerequisite not known yet (or behind one that does); it is
    applied once the prerequisite is, or rejected when the hold period ends."""

    command_id: str
    command_type: str
    waiting_for: str  # e.g. "union:ft-1", "member:m-7", or "queue:member:m-7" behind a held command
