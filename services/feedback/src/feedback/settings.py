"""Feedback's settings, read once at start from `FEEDBACK_*` (and `KAFKA_*`)."""

from pydantic_settings import SettingsConfigDict

from unionhub_runtime.settings import ServiceSettings


class FeedbackSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FEEDBACK_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./.run/feedback.db"
    http_port: int = 8003
    consumer_group: str = "feedback"
