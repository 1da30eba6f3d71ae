"""`database.where_in` narrows a select or an update to rows whose column is one of the keys,
on both databases (PostgreSQL joins `unnest` of one array, SQLite lists the keys), built once
and run with any keys: absent keys find nothing, and a key longer than the column is not cut
down to one that matches."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, MetaData, String, Table, select, update

from unionhub_runtime.database import KEYS, create_engine, where_in

metadata = MetaData()
rows = Table(
    "where_in_rows",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("code", String(8), nullable=False, unique=True),
    Column("note", String(20)),
)


async def test_only_the_rows_of_the_keys_are_selected_and_updated(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            await connection.execute(rows.insert(), [{"id": i, "code": f"c-{i:05d}"} for i in range(1, 1201)])
        dialect = engine.dialect
        codes = where_in(select(rows.c.code), rows.c.code, dialect)
        mark = where_in(update(rows).values(note="marked"), rows.c.id, dialect)
        async with engine.begin() as connection:
            wanted = [f"c-{i:05d}" for i in range(1, 1201, 2)] + ["absent", "c-00005-and-more"]
            found = await connection.execute(codes, {KEYS: wanted})
            assert sorted(found.scalars()) == [f"c-{i:05d}" for i in range(1, 1201, 2)]
            # The same statement again, with other keys.
            assert list((await connection.execute(codes, {KEYS: ["c-00002"]})).scalars()) == ["c-00002"]
            marked = await connection.execute(mark, {KEYS: [7, 9, 5000]})
            assert marked.rowcount == 2
            notes = await connection.execute(select(rows.c.id).where(rows.c.note == "marked").order_by(rows.c.id))
            assert list(notes.scalars()) == [7, 9]
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.drop_all)
        await engine.dispose()
