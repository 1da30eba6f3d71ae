"""Settings every service shares; each service adds its own class with its own prefix."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .auth import AuthSettings


class KafkaSettings(BaseSettings):
    """How to reach Kafka (`KAFKA_*`), shared by every service on one cluster."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    client_id_prefix: str = "unionhub"
    replication_factor: int = 1
    # Deployment-level namespace for every topic (e.g. "staging."); the contract names follow it.
    topic_prefix: str = ""
    # The largest record the producers send, and what the DLQ topics are created to take
    # (max.message.bytes): a dead letter copies a record that fitted its own topic, plus
    # headers. Events are bounded far below it (outbox.MAX_EVENT_BYTES). A larger copy fails
    # in the client, before an idempotent producer spends a sequence number on it (a broker's
    # refusal would leave the partition's sequence broken), and is sent cut.
    max_request_bytes: int = Field(default=8 * 1024 * 1024, ge=1_048_576)


class HoldSettings(BaseSettings):
    """How long a command whose prerequisite is not known yet is held (one name for every
    service: `UNIONHUB_HOLD_SECONDS`)."""

    model_config = SettingsConfigDict(env_prefix="UNIONHUB_", extra="ignore")

    hold_seconds: float = Field(default=600, ge=0, description="then the command is rejected")
    hold_check_seconds: float = Field(default=2.0, gt=0, description="how often held commands are retried")


class DatabaseTimeouts(BaseSettings):
    """Limits on every PostgreSQL session of a service (`UNIONHUB_DB_*`, 0 turns one off): a
    frozen peer's transaction is ended by the server, and a wait on its locks or a runaway
    statement fails (and is retried) instead of blocking a consumer forever."""

    model_config = SettingsConfigDict(env_prefix="UNIONHUB_DB_", extra="ignore")

    lock_timeout_ms: int = Field(default=10_000, ge=0, description="wait for a row or table lock")
    statement_timeout_ms: int = Field(default=60_000, ge=0, description="one statement")
    idle_in_transaction_timeout_ms: int = Field(
        default=20_000, ge=0, description="a session idle inside a transaction is ended (its locks released)"
    )
    # `migrate` (and `serve --migrate`) only: instances started together migrate one at a
    # time under an advisory lock; one waiting longer than this fails instead of hanging
    # (a migration's own statements wait at most `lock_timeout_ms` for a table lock).
    migration_lock_timeout_ms: int = Field(
        default=300_000, ge=0, description="wait for another instance's migration of the same database"
    )

    def server_settings(self) -> dict[str, str]:
        return {
            "lock_timeout": str(self.lock_timeout_ms),
            "statement_timeout": str(self.statement_timeout_ms),
            "idle_in_transaction_session_timeout": str(self.idle_in_transaction_timeout_ms),
        }


class ServiceSettings(BaseSettings):
    """Per-service settings; subclasses set `env_prefix` (e.g. `MEMBERSHIP_`)."""

    model_config = SettingsConfigDict(extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./.run/service.db"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    consumer_group: str = "service"
    # Batches amortise one transaction over many commands (group commit).
    batch_max_records: int = Field(default=500, ge=1, le=10_000)
    batch_timeout_ms: int = Field(default=20, ge=1, le=5_000)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    outbox_retention_seconds: float = Field(default=86_400, ge=0)
    # Inbox and dedupe rows are kept while a redelivery may bring their message back. Kafka
    # deletes whole segments, so a record may outlive the topics' retention (7 days) by up
    # to a segment's age (segment.ms, 7 days by default): 15 days keeps a day's margin.
    dedupe_keep_seconds: float = Field(default=15 * 86_400, gt=0)
    prune_every_seconds: float = Field(default=600, gt=0)
    retry_max_backoff_seconds: float = Field(default=5.0, gt=0)
    handler_attempts: int = Field(default=3, ge=1)
    metrics_refresh_seconds: float = Field(default=15.0, gt=0)
    lag_refresh_seconds: float = Field(default=5.0, gt=0)
    # Inside Kubernetes' default grace period of 30 s, with room for the parts reached late.
    shutdown_seconds: float = Field(default=20.0, gt=0, description="SIGTERM to exit, at most")
    log_level: str = "INFO"
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    hold: HoldSettings = Field(default_factory=HoldSettings)
    database_timeouts: DatabaseTimeouts = Field(default_factory=DatabaseTimeouts)
    auth: AuthSettings = Field(default_factory=AuthSettings)
