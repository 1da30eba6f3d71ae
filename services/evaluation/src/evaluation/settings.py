"""Evaluation's settings, read once at start from `EVALUATION_*` (and `KAFKA_*`)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from unionhub_runtime.settings import ServiceSettings


class EvaluationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EVALUATION_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./.run/evaluation.db"
    http_port: int = 8002
    consumer_group: str = "evaluation"
    member_grace_seconds: float = Field(default=600, ge=0, description="how long a member rating waits for membership")
    pending_check_seconds: float = Field(default=2, gt=0, description="how often waiting ratings are settled")
    work_batch_max_records: int = Field(default=5000, ge=1, le=50_000)
