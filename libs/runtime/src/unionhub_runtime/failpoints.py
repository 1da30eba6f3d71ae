"""Failpoints for the fault-injection suite (tests/reliability): named places where a test
can make the process die, to prove what survives. Inert unless `UNIONHUB_FAILPOINT` is set.

`UNIONHUB_FAILPOINT=consume.committed:3` kills the process with SIGKILL the 3rd time a
consumed batch has been committed, before its events are handed to the outbox relay.
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("UNIONHUB_FAILPOINT", "")
_NAME, _, _AFTER = _SPEC.partition(":")
_hits = 0


def hit(name: str) -> None:
    global _hits
    if not _SPEC or name != _NAME:
        return
    _hits += 1
    if _hits >= int(_AFTER or 1):
        os.kill(os.getpid(), signal.SIGKILL)
