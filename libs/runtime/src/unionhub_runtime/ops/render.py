"""Dead letters as text for a terminal, with personal fields masked and long values cut."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from unionhub_contracts import CloudEvent
from unionhub_contracts.codec import BINARY_PREFIX
from unionhub_contracts.personal import masked

from .letters import DeadLetter
from .replay import REPLAY_HEADER, Plan

DEFAULT_MAX_BYTES = 4096
# Headers whose values are ids, types, times and trace context; any other header a sender
# added may carry anything, so only its size is shown.
SHOWN_HEADERS = frozenset(
    {"content-type", "traceparent", "tracestate", REPLAY_HEADER}
    | {BINARY_PREFIX + name for name in CloudEvent.model_fields if name not in ("data", "subject")}
)


def line(letter: DeadLetter) -> str:
    """One line of `dlq list`."""
    found = letter.identity()
    what = f"{found.type or '?'} {found.source}/{found.id}" if found else "(no readable id)"
    original = letter.original
    where = f"{original[0]}:{original[1]}:{original[2]}" if original else "?"
    return f"{letter.address}  {letter.at.isoformat(timespec='seconds')}  {letter.code:<16} {what}  from {where}"


def as_json(letter: DeadLetter) -> dict[str, Any]:
    """One JSON line of `dlq list --json` (no value: `show` prints it, masked)."""
    found = letter.identity()
    return {
        "address": letter.address,
        "at": letter.at.isoformat(),
        "code": letter.code,
        "message": letter.header("error.message"),
        "original": letter.original,
        "key": letter.key.decode("utf-8", "replace") if letter.key is not None else None,
        "type": found.type if found else None,
        "source": found.source if found else None,
        "id": found.id if found else None,
        "bytes": len(letter.value),
    }


def detail(letter: DeadLetter, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """`dlq show`: headers, then the value with personal fields masked, cut at `max_bytes`."""
    rows = [
        f"dead letter  {letter.address}",
        f"at           {letter.at.isoformat()}",
        f"error        {letter.code}: {letter.header('error.message') or ''}",
        f"set aside by {letter.group or '(not said: written before error.group existed)'}",
        f"key          {_text(letter.key, 200) if letter.key is not None else '(none)'}",
    ]
    if letter.truncated:
        rows.append(f"cut          the copy keeps {len(letter.value)} of {letter.header('original.size')} bytes")
    rows.append("headers")
    for name, value in letter.headers:
        if name.startswith("error."):
            continue
        shown = name in SHOWN_HEADERS or name.startswith("original.")
        rows.append(f"  {name}: {_text(value, 200) if shown else f'<{len(value)} bytes, not shown>'}")
    rows.append(_value(letter, max_bytes))
    return "\n".join(rows)


def _value(letter: DeadLetter, max_bytes: int) -> str:
    binary = any(k == BINARY_PREFIX + "specversion" for k, _ in letter.headers)
    try:
        decoded = orjson.loads(letter.value)
    except orjson.JSONDecodeError:
        # No field names to tell a name from an id: nothing of it is shown (a truncated copy is
        # never valid JSON either); --write-value saves it for whoever may read it.
        digest = hashlib.sha256(letter.value).hexdigest()[:16]
        return f"value ({len(letter.value)} bytes, not JSON: not shown; sha256 {digest}…, see --write-value)"
    shown = orjson.dumps(masked(decoded), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    kind = "binary mode: the event's data" if binary else "JSON"
    return f"value ({len(letter.value)} bytes, {kind}, personal fields masked)\n{_text(shown, max_bytes)}"


def _text(value: bytes, limit: int) -> str:
    text = value[:limit].decode("utf-8", "backslashreplace")
    return text + (f"\n… {len(value) - limit} more bytes not shown" if len(value) > limit else "")


def summary(plan: Plan, *, dry_run: bool) -> str:
    verb = "would send" if dry_run else "sent"
    rows = [
        f"{plan.selected} dead letters selected: {len(plan.send)} {verb}, {len(plan.applied)} already applied "
        f"(in the service's inbox), {len(plan.held)} held back, {len(plan.refused)} not replayable"
    ]
    rows += [
        f"  {verb}      {r.letter.address} → {r.subscription.physical}:{r.letter.original[1] if r.letter.original else '?'}"
        for r in plan.send
    ]
    rows += [f"  applied   {letter.address}: the service applied this message already" for letter in plan.applied]
    rows += [f"  held back {r.letter.address}: {why} (--force to replay anyway)" for r, why in plan.held]
    rows += [f"  refused   {letter.address}: {why}" for letter, why in plan.refused]
    return "\n".join(rows)
