"""Kafka entrypoints of evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from unionhub_contracts import CloudEvent
from unionhub_runtime.scopes import Emit

from ..adapters.orm import membership_view


async def handle_membership_event(session: AsyncSession, event: CloudEvent[Any]) -> Sequence[Emit]:
    await membership_view.apply(session, event)
    return ()
