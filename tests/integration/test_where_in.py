"""`database.where_in` narrows a select or an update to rows whose column is one of the keys,
on both databases (PostgreSQL joins `unnest` of one array, SQLite lists the keys): absent
keys find nothing, a key given twice finds its row once, and a key longer than the column is
not cut down to one that matches."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, MetaData, String, Table, select, update

from unionhub_runtime.database import create_engine, where_in

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
        async with engine.begin() as connection:
            wanted = [f"c-{i:05d}" for i in range(1, 1201, 2)] + ["c-00003", "absent", "c-00005-and-more"]
            found = await connection.execute(where_in(select(rows.c.code), rows.c.code, wanted, dialect))
            assert sorted(found.scalars()) == [f"c-{i:05d}" for i in range(1, 1201, 2)]
            marked = await connection.execute(
                where_in(update(rows).values(note="marked"), rows.c.id, [7, 9, 9, 5000], dialect)
            )
            assert marked.rowcount == 2
            notes = await connection.execute(select(rows.c.id).where(rows.c.note == "marked").order_by(rows.c.id))
            assert list(notes.scalars()) == [7, 9]
            assert list(await connection.execute(where_in(select(rows.c.id), rows.c.id, [], dialect))) == []
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.drop_all)
        await engine.dispose()
