"""Why a command is refused. The codes are part of the contract (`command.rejected`)."""

from __future__ import annotations

from enum import StrEnum


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
    INVALID_THRESHOLDS = "invalid_thresholds"  # star levels other than 1 to 5
    INVALID_HOMES = "invalid_homes"  # a campaign's homes repeat
    FORBIDDEN = "forbidden"
    NOT_RESPONDED = "not_responded"
    ALREADY_RATED = "already_rated"


class Rejected(Exception):
    """A well-formed command broke a business rule: publish `command.rejected`, change nothing."""

    def __init__(self, code: RejectionCode, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class Missing(Rejected):
    """A prerequisite is not known yet (`waiting_for`, e.g. "union:ft-1"): the command is held
    and applied once it is; when the hold period ends, it is rejected with `code`."""

    def __init__(self, waiting_for: str, code: RejectionCode, reason: str) -> None:
        super().__init__(code, reason)
        self.waiting_for = waiting_for
