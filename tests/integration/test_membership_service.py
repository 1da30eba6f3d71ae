"""membership, complete: every command over the real broker, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
from unionhub_scenario.commands import make
from unionhub_scenario.growth import generate
from unionhub_scenario.publisher import Publisher

import membership.bootstrap
from membership.settings import MembershipSettings
from tests.support import bearer, running
from unionhub_runtime.settings import HoldSettings, KafkaSettings

pytestmark = pytest.mark.integration
MC = "membership.commands"


def service(kafka: KafkaSettings, database_url: str, **hold: float):
    return membership.bootstrap.build(
        MembershipSettings(database_url=database_url, kafka=kafka, batch_timeout_ms=10, hold=HoldSettings(**hold))
    )


def http(svc) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=svc.asgi()), base_url="http://membership", headers=bearer()
    )


def answer_types(publisher: Publisher, *commands) -> list[list[str]]:
    return [[e["type"] for e in publisher.answers[c.id].events] for c in commands]


def codes(publisher: Publisher, *commands) -> list[str]:
    return [publisher.answers[c.id].rejection["code"] for c in commands]  # type: ignore[index]


HIERARCHY = [
    [
        make(
            MC,
            "union.register",
            {"union_id": "bj", "name": "Beijing", "level": "federation", "founded_on": "1949-01-01"},
        )
    ],
    [
        make(
            MC,
            "union.register",
            {
                "union_id": "ft",
                "name": "Fengtai",
                "level": "district",
                "parent_id": "bj",
                "district": "Fengtai",
                "founded_on": "1950-01-01",
            },
        )
    ],
    [
        make(
            MC,
            "union.register",
            {
                "union_id": u,
                "name": u,
                "level": "grassroots",
                "parent_id": "ft",
                "district": "Fengtai",
                "kind": "independent",
                "founded_on": "2018-02-01",
            },
        )
        for u in ("ft-1", "ft-2")
    ],
]


async def test_every_command_publishes_its_event_or_a_rejection_with_a_code(
    kafka: KafkaSettings, database_url: str
) -> None:
    svc = service(kafka, database_url, hold_seconds=1, hold_check_seconds=0.2)  # unknown parents: held, then rejected
    async with (
        running(svc, membership.bootstrap.MIGRATIONS),
        Publisher(kafka.bootstrap_servers, prefix=kafka.topic_prefix) as pub,
    ):
        await pub.play(HIERARCHY, timeout=60)
        enroll = make(
            MC,
            "member.enroll",
            {"member_id": "m-1", "union_id": "ft-1", "joined_on": "2018-03-01", "display_name": "Zhao Lei"},
        )
        enroll_2 = make(MC, "member.enroll", {"member_id": "m-2", "union_id": "ft-1", "joined_on": "2018-03-01"})
        home = make(
            MC,
            "home.register",
            {
                "home_id": "h-1",
                "union_id": "ft-1",
                "name": "Home",
                "category": "public_area",
                "opened_on": "2018-05-01",
            },
        )
        station = make(
            MC,
            "station.register",
            {
                "station_id": "s-1",
                "union_id": "ft-2",
                "name": "Station",
                "services": ["water", "hot_meal"],
                "opened_on": "2018-06-01",
            },
        )
        await pub.play([[enroll, enroll_2, home, station]])
        cadre = make(
            MC, "cadre.appoint", {"member_id": "m-1", "union_id": "ft-1", "role": "chair", "appointed_on": "2018-04-01"}
        )
        transfer = make(
            MC, "member.transfer", {"member_id": "m-2", "to_union_id": "ft-2", "transferred_on": "2018-07-01"}
        )
        await pub.play([[cadre, transfer]])
        leave = make(MC, "member.leave", {"member_id": "m-2", "left_on": "2018-09-01", "reason": "retired"})
        await pub.play([[leave]])
        assert answer_types(pub, enroll, enroll_2, home, station, cadre, transfer, leave) == [
            ["member.enrolled"],
            ["member.enrolled"],
            ["home.registered"],
            ["station.registered"],
            ["cadre.appointed"],
            ["member.transferred"],
            ["member.left"],
        ]
        transferred = pub.answers[transfer.id].events[0]["data"]
        assert transferred == {
            "member_id": "m-2",
            "from_union_id": "ft-1",
            "to_union_id": "ft-2",
            "transferred_on": "2018-07-01",
        }

        conflict = make(
            MC,
            "union.register",
            {
                "union_id": "ft-1",
                "name": "Renamed",
                "level": "grassroots",
                "parent_id": "ft",
                "district": "Fengtai",
                "kind": "independent",
                "founded_on": "2018-02-01",
            },
        )
        orphan = make(
            MC,
            "union.register",
            {
                "union_id": "x",
                "name": "x",
                "level": "grassroots",
                "parent_id": "nope",
                "district": "Fengtai",
                "kind": "joint",
                "founded_on": "2018-02-01",
            },
        )
        twice = make(MC, "member.enroll", {"member_id": "m-1", "union_id": "ft-2", "joined_on": "2018-05-01"})
        gone = make(MC, "member.leave", {"member_id": "m-2", "left_on": "2018-10-01", "reason": "again"})
        no_union = make(
            MC,
            "home.register",
            {"home_id": "h-2", "union_id": "nope", "name": "Home", "category": "enterprise", "opened_on": "2018-05-01"},
        )
        outsider = make(
            MC, "cadre.appoint", {"member_id": "m-1", "union_id": "ft-2", "role": "chair", "appointed_on": "2018-04-01"}
        )
        bad_transfer = make(
            MC, "member.transfer", {"member_id": "m-2", "to_union_id": "ft-1", "transferred_on": "2018-11-01"}
        )
        await pub.play([[conflict, orphan, twice, gone, no_union, outsider, bad_transfer]])
        assert codes(pub, conflict, orphan, twice, gone, no_union, outsider, bad_transfer) == [
            "conflict",
            "not_found",
            "already_active",
            "not_active",
            "not_found",
            "conflict",
            "not_active",
        ]

        async with http(svc) as client:
            assert (await client.get("/unions/ft-1")).json()["active_members"] == 1
            m2 = (await client.get("/members/m-2")).json()
            assert m2["status"] == "left" and m2["left_on"] == "2018-09-01"
            assert [h["kind"] for h in m2["history"]] == ["enrolled", "transferred_out", "transferred_in", "left"]
            assert (await client.get("/members/nobody")).status_code == 404
            assert (await client.get("/stats/growth", params={"year": "last"})).status_code == 422
            await svc.refresh_gauges()
            metrics = (await client.get("/metrics")).text
        assert 'membership_active_members{district="Fengtai"} 1.0' in metrics
        assert 'membership_stations{district="Fengtai"} 1.0' in metrics
        assert 'unionhub_commands_total{code="conflict",outcome="rejected",type="union.register"} 1.0' in metrics
        assert "Zhao Lei" not in metrics


async def test_history_answers_who_was_active_where_on_a_date(kafka: KafkaSettings, database_url: str) -> None:
    svc = service(kafka, database_url)
    async with (
        running(svc, membership.bootstrap.MIGRATIONS),
        Publisher(kafka.bootstrap_servers, prefix=kafka.topic_prefix) as pub,
    ):
        await pub.play(HIERARCHY, timeout=60)
        steps = [
            make(MC, "member.enroll", {"member_id": "m-1", "union_id": "ft-1", "joined_on": "2018-01-10"}),
            make(MC, "member.transfer", {"member_id": "m-1", "to_union_id": "ft-2", "transferred_on": "2018-04-01"}),
            make(MC, "member.leave", {"member_id": "m-1", "left_on": "2018-06-01", "reason": "moved away"}),
            make(MC, "member.enroll", {"member_id": "m-1", "union_id": "ft-1", "joined_on": "2018-09-01"}),
        ]
        others = [
            make(MC, "member.enroll", {"member_id": f"o-{i}", "union_id": "ft-1", "joined_on": "2018-01-01"})
            for i in range(3)
        ]
        await pub.play([steps + others])  # one key per member: order kept
        assert not pub.events("command.rejected")
        async with http(svc) as client:

            async def active(union: str, on: str) -> list[str]:
                page = (await client.get(f"/unions/{union}/members", params={"on": on, "limit": 2})).json()
                found = [i["member_id"] for i in page["items"]]
                while page["next_after"]:
                    page = (
                        await client.get(
                            f"/unions/{union}/members", params={"on": on, "limit": 2, "after": page["next_after"]}
                        )
                    ).json()
                    found += [i["member_id"] for i in page["items"]]
                return found

            assert await active("ft-1", "2018-02-01") == ["m-1", "o-0", "o-1", "o-2"]
            assert await active("ft-1", "2018-05-01") == ["o-0", "o-1", "o-2"]
            assert await active("ft-2", "2018-05-01") == ["m-1"]
            assert await active("ft-2", "2018-07-01") == []
            assert await active("ft-1", "2018-12-31") == ["m-1", "o-0", "o-1", "o-2"]
            now = (await client.get("/unions/ft-1/members", params={"status": "active", "limit": 10})).json()
            assert [i["member_id"] for i in now["items"]] == ["m-1", "o-0", "o-1", "o-2"]
            history = (await client.get("/members/m-1")).json()["history"]
            assert [h["kind"] for h in history] == [
                "enrolled",
                "transferred_out",
                "transferred_in",
                "left",
                "reinstated",
            ]
            growth = (await client.get("/stats/growth", params={"year": 2018, "district": "Fengtai"})).json()
            assert growth["new_members"] == 5  # the re-enrolment counts, the transfer does not


async def test_a_fengtai_sized_year_gives_the_growth_report_the_generator_knows(
    kafka: KafkaSettings, database_url: str
) -> None:
    year = generate(seed=7, scale=1.0)
    svc = service(kafka, database_url)
    async with (
        running(svc, membership.bootstrap.MIGRATIONS),
        Publisher(kafka.bootstrap_servers, prefix=kafka.topic_prefix) as pub,
    ):
        await pub.stream(year.feeds, timeout=300)  # three senders at once
        assert pub.events("command.rejected") == []
        async with http(svc) as client:
            for district, truth in year.truth.items():
                params = {"year": 2018, **({"district": district} if district else {})}
                report = (await client.get("/stats/growth", params=params)).json()
                assert report == {"year": 2018, "district": district or None, **truth}
    assert year.truth["Fengtai"] == {
        "new_independent_unions": 101,
        "new_unions_100_plus": 68,
        "new_members": 15_632,
        "new_homes": 58,
        "new_stations": 900,
    }
