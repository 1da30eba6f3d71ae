"""Failpoints for the fault-injection suite (tests/reliability): named places where a test
can make the process die, to prove what survives. Inert unless `UNIONHUB_FAILPOINT` is set.

`UNIONHUB_FAILPOINT=consume.committed:3` kills the process with SIGKILL the 3rd time a
consumed batch has been committed, before its events are handed to the outbox relay;
`inbox.claimed:5:SIGSTOP` freezes it the 5th time a batch has claimed its inbox rows, inside
the transaction (a process paused with its locks held); `timer.wrote:2` kills it inside the
2nd timer transaction that changed something, before it commits.
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("UNIONHUB_FAILPOINT", "")
_NAME, _, _REST = _SPEC.partition(":")
_AFTER, _, _SIGNAL = _REST.partition(":")
_hits = 0


def hit(name: str) -> None:
    global _hits
    if not _SPEC or name != _NAME:
        return
    _hits += 1
    if _hits >= int(_AFTER or 1):
        os.kill(os.getpid(), signal.Signals[_SIGNAL or "SIGKILL"])
