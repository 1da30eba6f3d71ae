"""Feedback's settings, read once at start from `FEEDBACK_*` (and `KAFKA_*`)."""

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from unionhub_runtime.settings import ServiceSettings


class FeedbackSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FEEDBACK_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./.run/feedback.db"
    http_port: int = 8003
    consumer_group: str = "feedback"
    # Per-message savepoints: PostgreSQL slows down past 64 subtransactions in a transaction.
    batch_max_records: int = Field(default=50, ge=1, le=10_000)
    response_deadline_days: float = Field(default=7, gt=0, description="due_at = submitted_at + this")
    overdue_check_seconds: float = Field(default=10, gt=0, description="how often overdue opinions are flagged")
    # "wall": overdue against the real time; "events": against the latest business time seen,
    # which is what a replay of past data (the demo) needs.
    overdue_clock: Literal["wall", "events"] = "wall"
    # With "events", partitions are read unevenly, so business time seen on one may run ahead
    # of an answer still unread on another: flag by it only once no command came for this
    # long (all that was sent has been read). Late answers are flagged at once regardless.
    events_clock_quiet_seconds: float = Field(default=3, ge=0)
