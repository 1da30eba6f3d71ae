"""Kafka over SASL_SSL with per-service ACLs: the project's broker script in `sasl_ssl` mode
(throwaway CA, SCRAM-SHA-512 users made at format time, StandardAuthorizer). A service runs
with its own principal; a wrong password and a write outside its grants are refused."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

import membership.bootstrap
from membership.settings import MembershipSettings
from tests.conftest import ROOT, _free_port
from tests.support import command, running
from unionhub_contracts import TOPICS
from unionhub_runtime.kafka import client_kwargs, ensure_topics
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration
SCRIPT = ROOT / "deploy" / "kafka" / "kafka.sh"


@dataclass
class SecureKafka:
    bootstrap: str
    cafile: str
    passwords: dict[str, str]
    env: dict[str, str]

    def settings(self, user: str, password: str | None = None, prefix: str = "") -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.bootstrap,
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username=user,
            sasl_password=password or self.passwords[user],
            ssl_cafile=self.cafile,
            topic_prefix=prefix,
        )

    def grant(self, prefix: str) -> None:
        subprocess.run([str(SCRIPT), "acls", prefix], env=self.env, check=True, capture_output=True, timeout=180)


@pytest.fixture(scope="module")
def secure_kafka() -> Iterator[SecureKafka]:
    data_dir = tempfile.mkdtemp(prefix="unionhub-secure-kafka-")
    port = _free_port()
    env = {
        **os.environ,
        "KAFKA_MODE": "sasl_ssl",
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(_free_port()),
        "KAFKA_DATA_DIR": data_dir,
        "PYTHON": sys.executable,
    }
    subprocess.run([str(SCRIPT), "start"], env=env, check=True, timeout=180)
    try:
        secrets = Path(data_dir) / "secrets"
        passwords = {}
        for line in (secrets / "credentials.env").read_text().splitlines():
            name, _, value = line.partition("=")
            passwords[name.removesuffix("_PASSWORD").lower()] = value
        assert oct((secrets / "credentials.env").stat().st_mode)[-3:] == "600"
        yield SecureKafka(f"127.0.0.1:{port}", str(secrets / "ca.pem"), passwords, env)
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, check=False)
        shutil.rmtree(data_dir, ignore_errors=True)


async def test_a_service_works_over_sasl_ssl_with_only_its_own_grants(secure_kafka: SecureKafka, tmp_path) -> None:
    prefix = f"s{uuid.uuid4().hex[:8]}."
    admin = secure_kafka.settings("admin", prefix=prefix)
    await ensure_topics(admin, TOPICS)
    secure_kafka.grant(prefix)
    settings = MembershipSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'ms.db'}",
        kafka=secure_kafka.settings("membership", prefix=prefix),
        batch_timeout_ms=10,
    )
    producer = AIOKafkaProducer(**client_kwargs(admin))
    consumer = AIOKafkaConsumer(
        prefix + "membership.events", group_id=f"{prefix}check", auto_offset_reset="earliest", **client_kwargs(admin)
    )
    await producer.start()
    await consumer.start()
    try:
        async with running(membership.bootstrap.build(settings), membership.bootstrap.MIGRATIONS) as service:
            assert (await service.ready())["kafka"]
            await producer.send_and_wait(
                prefix + "membership.commands",
                command(
                    "union.register",
                    {
                        "union_id": "bj",
                        "name": "Federation",
                        "level": "federation",
                        "parent_id": None,
                        "district": None,
                        "kind": None,
                        "founded_on": "1949-01-01",
                    },
                    id="reg-bj",
                ),
                key=b"bj",
            )
            record = await consumer.getone()
            assert b'"union.registered"' in record.value and b'"reg-bj"' in record.value
    finally:
        await consumer.stop()
        await producer.stop()


async def test_a_wrong_password_is_refused_with_an_authentication_error(
    secure_kafka: SecureKafka, caplog: pytest.LogCaptureFixture
) -> None:
    producer = AIOKafkaProducer(**client_kwargs(secure_kafka.settings("membership", password="not-the-password")))
    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError):
        try:
            await producer.start()
        finally:
            await producer.stop()
    assert "SaslAuthenticationFailed" in caplog.text and "invalid credentials" in caplog.text


async def test_a_service_may_not_write_another_services_events_nor_read_its_commands(secure_kafka: SecureKafka) -> None:
    prefix = f"f{uuid.uuid4().hex[:8]}."
    await ensure_topics(secure_kafka.settings("admin", prefix=prefix), TOPICS)
    secure_kafka.grant(prefix)
    membership_kafka = secure_kafka.settings("membership", prefix=prefix)
    producer = AIOKafkaProducer(request_timeout_ms=5000, **client_kwargs(membership_kafka))
    await producer.start()
    try:
        await producer.send_and_wait(prefix + "membership.events", b"{}")  # its own: allowed
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(prefix + "evaluation.events", b"{}")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        prefix + "feedback.commands",
        group_id=f"{prefix}membership.sneak",
        auto_offset_reset="earliest",
        **client_kwargs(membership_kafka),
    )
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await consumer.start()
            await consumer.getmany(timeout_ms=5000)
    finally:
        await consumer.stop()
