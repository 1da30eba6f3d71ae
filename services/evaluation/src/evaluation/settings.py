"""Evaluation's settings, read once at start from `EVALUATION_*` (and `KAFKA_*`)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from unionhub_runtime.settings import ServiceSettings


class EvaluationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EVALUATION_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./.run/evaluation.db"
    http_port: int = 8002
    consumer_group: str = "evaluation"
    work_batch_max_records: int = Field(default=10_000, ge=1, le=50_000)
