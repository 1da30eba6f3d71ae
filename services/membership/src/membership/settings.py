"""Membership's settings, read once at start from `MEMBERSHIP_*` (and `KAFKA_*`)."""

from pydantic_settings import SettingsConfigDict

from unionhub_runtime.settings import ServiceSettings


class MembershipSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MEMBERSHIP_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./.run/membership.db"
    http_port: int = 8001
    consumer_group: str = "membership"
