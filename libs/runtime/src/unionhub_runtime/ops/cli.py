"""`unionhub`: dead letters (`dlq list|show|replay`) and `status`, for one service.

The service is configured from the environment exactly as when it serves (`KAFKA_*`,
`<SERVICE>_DATABASE_URL`, `UNIONHUB_AUTH_*`): run it where the service runs, e.g.
`kubectl exec deploy/membership-app -- unionhub status`. Exit status: 0 done, 1 an error (said on stderr), 2 bad usage,
3 a replay left some dead letters where they are (held back or refused; said why)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiokafka.errors import KafkaError

from ..auth import AuthNotConfigured
from ..logs import describe_error
from . import letters, render, replay, status
from .target import Target, load

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def instant(text: str) -> datetime:
    """`2h`, `30m`, `7d` ago, or an RFC 3339 instant with its offset."""
    if match := _DURATION.match(text):
        return datetime.now(UTC) - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (2h, 30m, 7d) nor an RFC 3339 instant"
        ) from None
    if found.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no offset: write it as 2018-05-20T10:00:00+08:00")
    return found


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="unionhub", description=__doc__.split("\n\n")[0])
    top.add_argument("--service", help="membership, evaluation or feedback (default: the one installed)")
    commands = top.add_subparsers(dest="command", required=True)

    dlq = commands.add_parser("dlq", help="dead letters of the topics the service consumes").add_subparsers(
        dest="action", required=True
    )
    listing = dlq.add_parser("list", help="one line per dead letter, oldest first")
    _filters(listing)
    listing.add_argument("--limit", type=int, default=1000)
    listing.add_argument("--json", action="store_true", help="JSON lines")

    show = dlq.add_parser("show", help="one dead letter: headers and value, personal fields masked")
    show.add_argument("address", help="<dlq topic>:<partition>:<offset>, as `list` prints it")
    show.add_argument("--max-bytes", type=int, default=render.DEFAULT_MAX_BYTES)
    show.add_argument(
        "--write-value", type=Path, help="write the value unmasked to this new file (mode 0600) to correct it"
    )

    again = dlq.add_parser("replay", help="send dead letters back to their topic once their cause is fixed")
    _filters(again)
    again.add_argument("--at", action="append", default=[], help="this dead letter only (repeatable)")
    again.add_argument("--value-file", type=Path, help="the corrected value of the one dead letter named by --at")
    again.add_argument("--dry-run", action="store_true", help="say what would be sent, send nothing")
    again.add_argument("--force", action="store_true", help="replay even where later commands of its key were applied")

    state = commands.add_parser("status", help="lag, outbox, held commands, dead letters, inbox")
    state.add_argument("--json", action="store_true")
    return top


def _filters(command: argparse.ArgumentParser) -> None:
    command.add_argument("--topic", action="append", default=[], help="original topic, e.g. membership.commands")
    command.add_argument("--code", action="append", default=[], help="error code, e.g. invalid_data")
    command.add_argument("--since", type=instant, help="dead-lettered at or after (2h, or an RFC 3339 instant)")
    command.add_argument("--until", type=instant, help="dead-lettered at or before")


def _selection(args: argparse.Namespace) -> letters.Filters:
    return letters.Filters(
        topics=tuple(args.topic),
        codes=tuple(args.code),
        since=args.since,
        until=args.until,
        at=tuple(getattr(args, "at", ())),
    )


async def run(target: Target, args: argparse.Namespace) -> int:
    """Runs the parsed command against `target`; what it prints goes to stdout."""
    try:
        if args.command == "status":
            report = await status.gather(target)
            print(orjson.dumps(report.as_json()).decode() if args.json else report.text())
            return 1 if report.unreachable else 0
        if args.action == "list":
            for letter in await letters.select(target, _selection(args), args.limit):
                print(orjson.dumps(render.as_json(letter)).decode() if args.json else render.line(letter))
            return 0
        if args.action == "show":
            (letter,) = await letters.select(target, letters.Filters(at=(args.address,)))
            if args.write_value:
                _write_private(args.write_value, letter.value)
            print(render.detail(letter, args.max_bytes))
            return 0
        selected = await letters.select(target, _selection(args))
        value = args.value_file.read_bytes() if args.value_file else None
        planned = await replay.plan(target, selected, value=value, force=args.force)
        if not args.dry_run:
            await replay.send(target, planned.send)
        print(render.summary(planned, dry_run=args.dry_run))
        return 3 if planned.held or planned.refused else 0
    finally:
        await target.service.engine.dispose()


def _write_private(path: Path, value: bytes) -> None:
    """Personal data goes to a file only its owner reads, never to the terminal or a log."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(value)


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        target = load(args.service)
        code = asyncio.run(run(target, args))
    except (LookupError, ValueError, OSError, TimeoutError, KafkaError, AuthNotConfigured) as exc:
        print(f"unionhub: {describe_error(exc)}", file=sys.stderr)
        code = 1
    sys.exit(code)
