"""The runtime's one batch mechanism: what a discarded command changed is taken back, in memory
(journal, identity map, pending writes) and through a savepoint, and what was kept is written."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from unionhub_runtime.inserts import InsertsTogether
from unionhub_runtime.repositories import TableRepository
from unionhub_runtime.unit_of_work import AbstractRepository, Journal, SessionUnitOfWork, snapshot

metadata = MetaData()
accounts = Table(
    "accounts", metadata, Column("account_id", String(16), primary_key=True), Column("balance", Integer, nullable=False)
)
notes = Table("notes", metadata, Column("note_id", String(16), primary_key=True), Column("text", String(64)))


@dataclass
class Account:
    account_id: str
    balance: int
    events: list[Any] = field(default_factory=list, compare=False)


class Bank(SessionUnitOfWork):
    """Accounts kept in memory; notes (a command that writes through) go straight to the table."""

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session)
        self.accounts: TableRepository[Account] = TableRepository(session, self.journal, accounts, Account)

    def repositories(self) -> Sequence[AbstractRepository[Any]]:
        return (self.accounts,)

    def writes_through(self, command: Any) -> bool:
        return command == "note"

    async def write(self, together: InsertsTogether | None = None) -> None:
        await self.accounts.flush(together)


@pytest.fixture
async def session() -> AsyncIterator[AsyncSession]:
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.execute(insert(accounts).values(account_id="a", balance=10))
    async with AsyncSession(engine) as session, session.begin():
        yield session
    await engine.dispose()


async def balances(session: AsyncSession) -> dict[str, int]:
    return {k: v for k, v in (await session.execute(select(accounts.c.account_id, accounts.c.balance))).all()}


def test_the_journal_puts_back_maps_and_lists_as_they_were_before_the_command() -> None:
    journal, mapping, items = Journal(), {"kept": 1, "changed": 2}, [1]
    journal.begin()
    journal.set(mapping, "changed", 20)
    journal.set(mapping, "changed", 200)  # changed twice: the state before the command comes back
    journal.set(mapping, "added", 3)
    journal.append(items, 2, 3)
    journal.discard()
    assert (mapping, items) == ({"kept": 1, "changed": 2}, [1])


async def test_a_discarded_command_leaves_no_trace_in_memory_nor_in_what_is_written(session: AsyncSession) -> None:
    bank = Bank(session)
    await bank.begin("open b")
    await bank.accounts.add(Account("b", 5))
    await bank.keep()
    for command, amount in (("pay", 3), ("overdraw", 100)):
        await bank.begin(command)
        a, b = await bank.accounts.get("a"), await bank.accounts.get("b")
        assert a is not None and b is not None
        a.balance, b.balance = a.balance - amount, b.balance + amount  # changed in place, as handlers do
        await bank.accounts.save(a)
        await bank.accounts.save(b)
        if a.balance < 0:
            await bank.discard()
        else:
            await bank.keep()
    await bank.begin("open c, then rejected")
    await bank.accounts.add(Account("c", 1))
    await bank.discard()
    await bank.begin("read")
    a = await bank.accounts.get("a")
    assert a is not None and a.balance == 7  # the next command sees the state as if the overdraft never ran
    await bank.keep()
    await bank.flush()
    assert await balances(session) == {"a": 7, "b": 8}


async def test_a_command_that_writes_through_runs_in_a_savepoint_after_what_memory_kept(session: AsyncSession) -> None:
    bank = Bank(session)
    await bank.begin("pay")
    a = await bank.accounts.get("a")
    assert a is not None
    a.balance = 4
    await bank.accounts.save(a)
    await bank.keep()
    await bank.begin("note")  # writes the account first: the note's command may read it
    assert await balances(session) == {"a": 4}
    await session.execute(insert(notes).values(note_id="n-1", text="kept"))
    await bank.keep()
    await bank.begin("note")
    await session.execute(insert(notes).values(note_id="n-2", text="rejected"))
    await bank.discard()
    await bank.flush()
    assert list((await session.execute(select(notes.c.note_id))).scalars()) == ["n-1"]
    assert await balances(session) == {"a": 4}


async def test_a_discarded_command_publishes_none_of_the_events_it_recorded(session: AsyncSession) -> None:
    bank = Bank(session)
    await bank.begin("pay")
    a = await bank.accounts.get("a")
    assert a is not None
    a.events.append("paid")
    await bank.discard()
    await bank.begin("pay again")
    a = await bank.accounts.get("a")
    assert a is not None
    a.events.append("paid again")
    assert list(bank.collect_new_events()) == ["paid again"]


@dataclass
class Ledger:
    """An aggregate with a list changed in place, and a copy hook of its own."""

    name: str
    entries: list[int] = field(default_factory=list)
    copies: list[str] = field(default_factory=list)

    def __copy__(self) -> Ledger:
        return Ledger(self.name, self.entries, [*self.copies, "hook"])


def test_a_snapshot_is_a_new_instance_with_the_same_values_and_lists_of_its_own() -> None:
    account = Account("a-1", 10, events=["opened"])
    kept = snapshot(account)
    account.balance, account.account_id = 0, "changed"
    account.events.append("closed")
    assert type(kept) is Account and kept == Account("a-1", 10) and kept.events == ["opened"]
    # A class whose copy is its own business is copied its way (and its lists still apart).
    ledger = Ledger("l", [1])
    copied = snapshot(ledger)
    ledger.entries.append(2)
    assert copied.copies == ["hook"] and copied.entries == [1]
    assert snapshot(None) is None
