"""The topic and message-type catalogue of contract version 1."""

from __future__ import annotations

import builtins
from dataclasses import dataclass

from pydantic import BaseModel

from . import evaluation as ev
from . import feedback as fb
from . import membership as ms
from .rejections import CommandHeld, CommandRejected

CONTRACT_VERSION = 1

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Topic:
    """A topic as the cluster must hold it; `python -m unionhub_runtime.topics` creates it, or
    brings an existing one to these settings (partitions are only ever added)."""

    name: str
    partitions: int
    description: str
    # Three copies, two of them acknowledged before a producer's `acks=all` returns: one broker
    # may be lost without losing a write or refusing one. A cluster with fewer brokers
    # (`KAFKA_REPLICATION_FACTOR`) gets what it can hold (unionhub_runtime.kafka.topic_settings).
    replication_factor: int = 3
    min_insync_replicas: int = 2
    # Consumers' inbox rows outlive what a redelivery may bring back: see the services'
    # `dedupe_keep_seconds` (15 days) before raising this.
    retention_ms: int = 7 * DAY_MS
    # Dead letters wait for a person to read, fix and replay them (one partition: no order to keep).
    dlq_partitions: int = 1
    dlq_retention_ms: int = 30 * DAY_MS

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"


@dataclass(frozen=True)
class MessageType:
    type: str
    data: builtins.type[BaseModel]
    key: str | None  # the data field whose value is the Kafka key; None: any key
    summary: str


MEMBERSHIP_COMMANDS = Topic("membership.commands", 6, "Commands to the union registry.")
MEMBERSHIP_EVENTS = Topic("membership.events", 6, "What the union registry applied.")
EVALUATION_COMMANDS = Topic("evaluation.commands", 6, "Star campaigns, post-star months, studios.")
WORK_SCORES = Topic("evaluation.work-scores", 6, "High-volume automatic work-item scores.")
EVALUATION_EVENTS = Topic("evaluation.events", 6, "Ratings, stars, post stars, rewards.")
FEEDBACK_COMMANDS = Topic("feedback.commands", 6, "Opinions and grassroots visits.")
FEEDBACK_EVENTS = Topic("feedback.events", 6, "Opinion workflow and visit quotas.")

TOPICS: tuple[Topic, ...] = (
    MEMBERSHIP_COMMANDS,
    MEMBERSHIP_EVENTS,
    EVALUATION_COMMANDS,
    WORK_SCORES,
    EVALUATION_EVENTS,
    FEEDBACK_COMMANDS,
    FEEDBACK_EVENTS,
)

COMMAND_REJECTED = MessageType("command.rejected", CommandRejected, "command_id", "A well-formed command broke a rule.")

COMMAND_HELD = MessageType(
    "command.held", CommandHeld, "command_id", "A command waits for what it depends on (optional v1 event)."
)


def _types(*items: MessageType) -> dict[str, MessageType]:
    return {item.type: item for item in items}


MESSAGES: dict[str, dict[str, MessageType]] = {
    MEMBERSHIP_COMMANDS.name: _types(
        MessageType("union.register", ms.UnionData, "union_id", "Register a union."),
        MessageType("member.enroll", ms.EnrollMember, "member_id", "Enrol a member."),
        MessageType("member.leave", ms.LeaveMember, "member_id", "A member leaves."),
        MessageType("member.transfer", ms.TransferMember, "member_id", "Move a member."),
        MessageType("home.register", ms.HomeData, "home_id", "Register a workers' home."),
        MessageType("station.register", ms.StationData, "station_id", "Register a warm station."),
        MessageType("cadre.appoint", ms.CadreData, "member_id", "Appoint a union cadre."),
    ),
    MEMBERSHIP_EVENTS.name: _types(
        MessageType("union.registered", ms.UnionData, "union_id", "A union was registered."),
        MessageType("member.enrolled", ms.MemberEnrolled, "member_id", "A member joined."),
        MessageType("member.left", ms.MemberLeft, "member_id", "A member left."),
        MessageType("member.transferred", ms.MemberTransferred, "member_id", "A member moved."),
        MessageType("home.registered", ms.HomeData, "home_id", "A home was registered."),
        MessageType("station.registered", ms.StationData, "station_id", "A station opened."),
        MessageType("cadre.appointed", ms.CadreData, "member_id", "A cadre was appointed."),
        COMMAND_REJECTED,
        COMMAND_HELD,
    ),
    EVALUATION_COMMANDS.name: _types(
        MessageType("campaign.open", ev.OpenCampaign, "campaign_id", "Open a star campaign."),
        MessageType("rating.submit", ev.SubmitRating, "campaign_id", "Rate a workers' home."),
        MessageType("campaign.close", ev.CloseCampaign, "campaign_id", "Close and award stars."),
        MessageType("post-star.close-month", ev.ClosePostStarMonth, None, "Award post stars."),
        MessageType("studio.assess", ev.AssessStudio, "studio_id", "Grade an innovation studio."),
    ),
    WORK_SCORES.name: _types(
        MessageType("work.scored", ev.WorkScored, "worker_id", "One scored work item."),
    ),
    EVALUATION_EVENTS.name: _types(
        MessageType("campaign.opened", ev.OpenCampaign, "campaign_id", "A campaign opened."),
        MessageType("rating.accepted", ev.RatingAccepted, "campaign_id", "A rating counts."),
        MessageType("campaign.closed", ev.CampaignClosed, "campaign_id", "A campaign closed."),
        MessageType("home.star-awarded", ev.HomeStarAwarded, "campaign_id", "A home's stars."),
        MessageType("post-star.awarded", ev.PostStarAwarded, "post_id", "A post's star."),
        MessageType("post-star.month-closed", ev.PostStarMonthClosed, None, "A month's post stars are out."),
        MessageType("studio.rewarded", ev.StudioRewarded, "studio_id", "A studio's reward."),
        COMMAND_REJECTED,
        COMMAND_HELD,
    ),
    FEEDBACK_COMMANDS.name: _types(
        MessageType("opinion.submit", fb.SubmitOpinion, "opinion_id", "A member's opinion."),
        MessageType("opinion.respond", fb.RespondOpinion, "opinion_id", "A cadre answers."),
        MessageType("opinion.rate", fb.RateOpinion, "opinion_id", "The member rates the answer."),
        MessageType("visit.log", fb.LogVisit, "cadre_id", "A cadre's grassroots visit."),
        MessageType("visits.close-month", fb.CloseVisitsMonth, None, "Check visit quotas."),
    ),
    FEEDBACK_EVENTS.name: _types(
        MessageType("opinion.received", fb.OpinionReceived, "opinion_id", "Opinion received."),
        MessageType("opinion.assigned", fb.OpinionAssigned, "opinion_id", "Routed to a union."),
        MessageType("opinion.responded", fb.OpinionResponded, "opinion_id", "Answered."),
        MessageType("opinion.rated", fb.OpinionRated, "opinion_id", "Member satisfaction."),
        MessageType("opinion.overdue", fb.OpinionOverdue, "opinion_id", "Not answered in time."),
        MessageType("visit.logged", fb.VisitLogged, "cadre_id", "A visit was logged."),
        MessageType("visit.quota-missed", fb.VisitQuotaMissed, "cadre_id", "Under 4 visits."),
        MessageType("visits.month-closed", fb.VisitsMonthClosed, None, "A month's visit quotas are checked."),
        COMMAND_REJECTED,
        COMMAND_HELD,
    ),
}


def topic(name: str) -> Topic:
    """The catalogue entry of topic `name`."""
    for item in TOPICS:
        if item.name == name:
            return item
    raise KeyError(f"unknown topic {name!r}")


def message_type(topic_name: str, type_name: str) -> MessageType:
    """The catalogue entry of `type_name` on `topic_name`."""
    return MESSAGES[topic_name][type_name]
