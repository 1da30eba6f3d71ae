"""`command.rejected` and `command.held`, published by every service on its own `*.events` topic."""

from __future__ import annotations

from enum import StrEnum

from .common import ContractModel


class RejectionCode(StrEnum):
    """Codes a program can act on. Consumers must accept codes they do not know yet."""

    INVALID = "invalid"  # the message could not be decoded or validated
    CONFLICT = "conflict"  # the id exists with different data
    NOT_FOUND = "not_found"  # a referenced union, member, campaign, … is not registered
    NOT_ACTIVE = "not_active"  # the member is not active (leave, transfer, cadre)
    ALREADY_ACTIVE = "already_active"  # the member is already active in a union
    HIERARCHY = "hierarchy"  # the parent's level or district does not fit the union's
    DATE_ORDER = "date_order"  # a date lies before the date it must follow
    SAME_UNION = "same_union"  # a transfer to the member's own union
    NOT_A_MEMBER = "not_a_member"  # a member rater or submitter is not in the right union
    CLOSED = "closed"  # the campaign or opinion no longer accepts this command
    NOT_IN_CAMPAIGN = "not_in_campaign"
    INVALID_WEIGHTS = "invalid_weights"
    FORBIDDEN = "forbidden"
    NOT_RESPONDED = "not_responded"
    ALREADY_RATED = "already_rated"


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
