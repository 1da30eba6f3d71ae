"""`reads.ReadsTogether` sends a batch's reads as one statement on PostgreSQL (the parts'
columns behind the caller's own, a part's data-modifying `WITH` with them) and runs each
part's own reads elsewhere; the inbox's claim and the held lanes' check as such parts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tests.support import postgres_fetches
from unionhub_runtime import inbox, reads
from unionhub_runtime.database import create_engine, session_factory
from unionhub_runtime.reads import ReadPart, ReadsTogether
from unionhub_runtime.tables import add_runtime_tables

pytestmark = pytest.mark.integration

metadata = MetaData()
notes = Table("reads_notes", metadata, Column("note_id", String(20), primary_key=True), Column("text", String(50)))
runtime = add_runtime_tables(metadata)

NOTE_TEXT = ReadPart(("(SELECT text FROM reads_notes WHERE note_id = {0})",), 1)
NOTE_ADDED = ReadPart(
    ("(SELECT note_id FROM {w})", "{1}::varchar"),
    2,
    "{w} AS (INSERT INTO reads_notes (note_id, text) VALUES ({0}, 'added') RETURNING note_id)",
)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.execute(notes.insert(), [{"note_id": "n-1", "text": "first"}])
    yield engine
    await engine.dispose()


async def alone_note(session: AsyncSession, note_id: str) -> Any:
    return (await session.execute(select(notes.c.text).where(notes.c.note_id == note_id))).scalar()


async def test_each_part_gets_its_own_columns_and_a_with_runs_once(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = postgres_fetches(monkeypatch, reads)
    async with session_factory(engine)() as session, session.begin():
        together = ReadsTogether(session)
        text = together.add(NOTE_TEXT, ["n-1"], lambda columns: columns[0], lambda: alone_note(session, "n-1"))

        async def add_alone() -> Any:
            await session.execute(notes.insert().values(note_id="n-2", text="added"))
            return ("n-2", "echo")

        added = together.add(NOTE_ADDED, ["n-2", "echo"], tuple, add_alone)
        with pytest.raises(RuntimeError, match="not run"):
            _ = text.value
        if together.combines:
            leading = await together.run([(NOTE_TEXT, ["n-1"]), (NOTE_TEXT, ["none"])])
            assert leading == ["first", None]
            assert len(sent) == 1 and sent[0].startswith("WITH unionhub_read_3 AS (INSERT INTO reads_notes")
        else:
            await together.run_rest()
            assert sent == []
        assert text.value == "first" and added.value == ("n-2", "echo")
        await together.run_rest()  # ran already: nothing more
        assert len(sent) == (1 if together.combines else 0)
        with pytest.raises(RuntimeError, match="ran already"):
            await together.run()
        with pytest.raises(RuntimeError, match="add before"):
            together.add(NOTE_TEXT, ["n-1"], lambda columns: columns[0], lambda: alone_note(session, "n-1"))
    async with session_factory(engine)() as session:
        assert await alone_note(session, "n-2") == "added"


async def test_a_part_given_the_wrong_number_of_arguments_is_refused(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session, session.begin():
        with pytest.raises(ValueError, match="1 parameters, given 2"):
            ReadsTogether(session).add(NOTE_TEXT, ["a", "b"], lambda columns: columns, lambda: alone_note(session, "a"))


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
async def test_leading_columns_are_refused_where_reads_do_not_combine(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session, session.begin():
        with pytest.raises(ValueError, match="only on PostgreSQL"):
            await ReadsTogether(session).run([(NOTE_TEXT, ["n-1"])])


async def test_the_inbox_claim_as_a_part_claims_once_and_tells_what_was_new(engine: AsyncEngine) -> None:
    messages = [("src", "m-1"), ("src", "m-2"), ("src", "m-1")]
    async with session_factory(engine)() as session, session.begin():
        together = ReadsTogether(session)
        first = inbox.claim_together(together, session, runtime, "consumer", messages)
        await together.run_rest()
        assert first.value == {("src", "m-1"), ("src", "m-2")}
    async with session_factory(engine)() as session, session.begin():
        together = ReadsTogether(session)
        again = inbox.claim_together(together, session, runtime, "consumer", [("src", "m-2"), ("other", "m-2")])
        nothing = inbox.claim_together(together, session, runtime, "consumer", [])
        await together.run_rest()
        assert again.value == {("other", "m-2")} and nothing.value == set()
