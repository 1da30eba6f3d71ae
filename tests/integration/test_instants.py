"""Instants are exact on both databases, whatever offset a sender writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, insert, select
from sqlalchemy.exc import StatementError

import evaluation.adapters.orm
import feedback.adapters.orm
import feedback.bootstrap
import membership.adapters.orm
from feedback.settings import FeedbackSettings
from tests.support import http_client, produce, running
from unionhub_contracts.client import CommandClient
from unionhub_runtime.columns import UtcInstant
from unionhub_runtime.database import create_engine
from unionhub_runtime.settings import KafkaSettings

pytestmark = pytest.mark.integration

SHANGHAI, NEW_YORK = timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))
INSTANTS = [
    datetime(2018, 5, 31, 23, 30, tzinfo=SHANGHAI),
    datetime(2018, 5, 31, 16, 30, tzinfo=UTC),
    datetime(2018, 5, 31, 11, 30, tzinfo=NEW_YORK),
    datetime(2018, 1, 1, 0, 0, tzinfo=SHANGHAI),
]


def test_every_stored_instant_of_every_service_uses_the_runtime_column_type() -> None:
    for metadata in (
        membership.adapters.orm.metadata,
        evaluation.adapters.orm.metadata,
        feedback.adapters.orm.metadata,
    ):
        for table in metadata.tables.values():
            for column in table.columns:
                if isinstance(column.type, DateTime):
                    pytest.fail(f"{table.name}.{column.name} is a plain DateTime: use UtcInstant")


async def test_instants_read_back_equal_and_compare_in_time_order(database_url: str) -> None:
    metadata = MetaData()
    moments = Table("moments", metadata, Column("id", Integer, primary_key=True), Column("at", UtcInstant()))
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            await connection.execute(insert(moments), [{"id": i, "at": at} for i, at in enumerate(INSTANTS)])
            read = dict((await connection.execute(select(moments.c.id, moments.c.at))).all())
            assert [read[i] for i in range(len(INSTANTS))] == INSTANTS
            assert all(at.tzinfo is not None and at.utcoffset() == timedelta(0) for at in read.values())
            # 16:30Z on May 31st is after 23:30+08:00 the same day (15:30Z), and before 11:30-05:00 (16:30Z) ends.
            later = select(moments.c.id).where(moments.c.at > datetime(2018, 5, 31, 15, 45, tzinfo=UTC))
            assert sorted((await connection.execute(later)).scalars()) == [1, 2]
            with pytest.raises(StatementError, match="naive datetime"):
                await connection.execute(insert(moments), [{"id": 9, "at": datetime(2018, 5, 31, 12, 0)}])
    finally:
        await engine.dispose()


def membership_event(event_type: str, data: dict[str, object], n: int) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": f"ms-{n}",
        "source": "membership",
        "type": event_type,
        "time": "2018-01-01T00:00:00Z",
        "data": data,
    }


async def test_opinions_and_visits_keep_their_instants_whatever_the_offset(
    kafka: KafkaSettings, database_url: str
) -> None:
    service = feedback.bootstrap.build(FeedbackSettings(database_url=database_url, kafka=kafka, batch_timeout_ms=10))
    union = {
        "union_id": "u-1",
        "name": "Steel",
        "level": "grassroots",
        "parent_id": "d",
        "district": "Fengtai",
        "kind": "independent",
        "founded_on": "2018-01-01",
    }
    facts = [
        membership_event("union.registered", union, 1),
        membership_event("member.enrolled", {"member_id": "m-1", "union_id": "u-1", "joined_on": "2018-01-02"}, 2),
        membership_event("member.enrolled", {"member_id": "c-1", "union_id": "u-1", "joined_on": "2018-01-02"}, 3),
        membership_event(
            "cadre.appointed",
            {"member_id": "c-1", "union_id": "u-1", "role": "full_time_cadre", "appointed_on": "2018-01-03"},
            4,
        ),
    ]
    async with (
        running(service, feedback.bootstrap.MIGRATIONS),
        CommandClient(kafka.bootstrap_servers, source="rating-page", topic_prefix=kafka.topic_prefix) as page,
    ):
        await produce(
            kafka.bootstrap_servers,
            kafka.topic_prefix + "membership.events",
            [orjson.dumps(f) for f in facts],
            ["u-1", "m-1", "c-1", "c-1"],
        )
        cases = {
            "op-cst": ("2018-05-20T10:00:00+08:00", "2018-05-21T10:00:00+08:00", 86_400),
            "op-est": ("2018-05-20T10:00:00-05:00", "2018-05-21T09:00:00Z", 18 * 3600),
            "op-utc": ("2018-05-20T10:00:00Z", "2018-05-20T20:00:00+08:00", 2 * 3600),
        }
        for opinion, (submitted, responded, _) in cases.items():
            sent = await page.send(
                "opinion.submit",
                {
                    "opinion_id": opinion,
                    "member_id": "m-1",
                    "channel": "rating_page",
                    "text": "more shade",
                    "submitted_at": submitted,
                },
            )
            assert (await page.answer(sent, timeout=30)).type == "opinion.received"
            sent = await page.send(
                "opinion.respond",
                {"opinion_id": opinion, "responder_id": "c-1", "text": "done", "responded_at": responded},
            )
            answer = await page.answer(sent, timeout=30)
            assert answer.type == "opinion.responded", answer.events
        for visit, at in (
            ("v-may", "2018-05-31T23:30:00+08:00"),
            ("v-june", "2018-05-31T16:30:00Z"),
            ("v-june-ny", "2018-05-31T12:00:00-05:00"),
        ):
            sent = await page.send(
                "visit.log",
                {"visit_id": visit, "cadre_id": "c-1", "place": "canteen", "visited_at": at, "opinions_collected": 0},
            )
            assert (await page.answer(sent, timeout=30)).type == "visit.logged"
        async with http_client(service) as api:
            for opinion, (submitted, responded, seconds) in cases.items():
                found = (await api.get(f"/opinions/{opinion}")).json()
                assert found["response_seconds"] == seconds
                assert datetime.fromisoformat(found["submitted_at"]) == datetime.fromisoformat(submitted)
                assert datetime.fromisoformat(found["responded_at"]) == datetime.fromisoformat(responded)
                assert datetime.fromisoformat(found["due_at"]) == datetime.fromisoformat(submitted) + timedelta(days=7)
                assert found["submitted_at"].endswith(("Z", "+00:00"))  # RFC 3339 with offset
            may = (await api.get("/visits", params={"month": "2018-05"})).json()["cadres"]
            june = (await api.get("/visits", params={"month": "2018-06"})).json()["cadres"]
        assert (may, june) == ([{"cadre_id": "c-1", "visits": 1}], [{"cadre_id": "c-1", "visits": 2}])
