"""Exponential backoff, the one way the runtime waits before trying again."""

from __future__ import annotations

import asyncio


class Backoff:
    """Waits `first` seconds, then twice as long each time, at most `most`."""

    def __init__(self, first: float, most: float) -> None:
        self.first, self.most = first, most
        self.delay = first  # the next wait

    def after(self, previous: float | None) -> float:
        """The wait that follows one of `previous` seconds (`first` when there was none)."""
        return self.first if previous is None else min(previous * 2, self.most)

    async def sleep(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = self.after(self.delay)

    def reset(self) -> None:
        self.delay = self.first
