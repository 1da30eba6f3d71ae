"""What `/readyz` answers, as the contract defines it: the database reachable with its schema
at head, the consumers connected to Kafka and not stuck.

A Kafka outage shorter than `KAFKA_GRACE_SECONDS` does not flip it. The read API needs only
the database, and every pod sees the same blip at once: flipping would take them all out of
their Service together. The consumers reconnect by themselves; what was not read meanwhile
is read later. So Kafka counts as failing only once every probe for 30 s in a row failed.

Kafka is probed in the background (`watch`), so `/readyz` never waits for a broker that does
not answer (Kubernetes counts a probe answered after its `timeoutSeconds`, 1 s by default,
as failed). The schema is read from the version tables until it is at head, then no more.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from .logs import describe_error

log = logging.getLogger(__name__)

KAFKA_GRACE_SECONDS = 30.0
KAFKA_PROBE_EVERY_SECONDS = 5.0
KAFKA_PROBE_TIMEOUT_SECONDS = 5.0


class Outage:
    """A dependency seen through periodic probes: failing once the probes have failed
    without a success in between for `grace_seconds` (from the first failed one)."""

    def __init__(self, grace_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_seconds = grace_seconds
        self._clock = clock
        self._failing_since: float | None = None

    def observe(self, ok: bool) -> None:
        if ok:
            self._failing_since = None
        elif self._failing_since is None:
            self._failing_since = self._clock()

    @property
    def failing(self) -> bool:
        return self._failing_since is not None and self._clock() - self._failing_since >= self.grace_seconds


async def watch(probe: Callable[[], Awaitable[bool]], outage: Outage, every_seconds: float) -> None:
    """Probes forever (run it as a task), telling `outage` each answer; an error is a failure."""
    while True:
        try:
            ok = await probe()
        except Exception:
            ok = False
        outage.observe(ok)
        await asyncio.sleep(every_seconds)


@dataclass
class _History:
    location: Path
    version_table: str
    heads: frozenset[str] = field(init=False)
    known: frozenset[str] = field(init=False)  # every revision of the history, heads included

    def __post_init__(self) -> None:
        self.heads, self.known = _read_history(self.location)

    def reached(self, current: Sequence[str]) -> bool:
        """At head, or past it: a revision this version does not know was written by a newer
        one (rolled out, or rolled back from). Migrations only add what older code ignores, so
        this code still works there; holding it back would stop a rollback."""
        return bool(current) and (set(current) == self.heads or not set(current) <= self.known)


@functools.cache
def _read_history(location: Path) -> tuple[frozenset[str], frozenset[str]]:
    """The heads and every revision of the history at `location` (read once a process: alembic
    loads each revision's module to know it)."""
    script = ScriptDirectory(str(location))
    return frozenset(script.get_heads()), frozenset(r.revision for r in script.walk_revisions())


class SchemaCheck:
    """Whether the database's schema is at the head of each migration history this code
    carries. A positive answer is kept (a schema does not go back while the process runs);
    a negative one is asked again at each check, which reads the version tables only."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._histories: list[_History] = []
        self._at_head = False
        self._said: bool | None = None  # the last answer logged

    def require(self, location: Path, version_table: str) -> None:
        """Readiness waits for the head of the history at `location` too."""
        if all(h.version_table != version_table for h in self._histories):
            self._histories.append(_History(location, version_table))
            self._at_head = False

    @property
    def reached(self) -> bool:
        """At head when last read (without reading again)."""
        return self._at_head

    async def at_head(self, timeout: float = 2.0) -> bool:
        if self._at_head:
            return True
        try:
            async with asyncio.timeout(timeout), self._engine.connect() as connection:
                await connection.execution_options(readonly=True)  # SQLite: no write lock for a probe
                current = await connection.run_sync(self._current)
        except Exception as exc:
            log.debug("reading the schema's revision failed: %s", describe_error(exc))
            return False
        behind = [
            f"{h.version_table} at {list(current[h.version_table]) or 'nothing'}, head {sorted(h.heads)}"
            for h in self._histories
            if not h.reached(current[h.version_table])
        ]
        self._at_head = not behind
        if self._said is not self._at_head:
            self._said = self._at_head
            if behind:
                log.warning("schema not migrated (%s): not ready until it is", "; ".join(behind))
            else:
                log.info("schema at head")
        return self._at_head

    def _current(self, connection: Connection) -> dict[str, tuple[str, ...]]:
        return {
            h.version_table: tuple(
                MigrationContext.configure(connection, opts={"version_table": h.version_table}).get_current_heads()
            )
            for h in self._histories
        }
