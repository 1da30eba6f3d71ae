"""`python -m unionhub_scenario [--seed N] [--scale X]`: play a year of a city's union work
against the running stack (`.run/env` from `make up`), report it and check every figure."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from rich.console import Console

from .play import Urls, play
from .report import print_report, write_html


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=2018)
    parser.add_argument("--scale", type=float, default=1.0, help="0.1 for a quick run, 10 for a big one")
    parser.add_argument("--env", type=Path, default=Path(".run/env"))
    parser.add_argument("--html", type=Path, default=Path(".run/report.html"))
    args = parser.parse_args()
    lines = args.env.read_text().splitlines() if args.env.exists() else []
    env = dict(line.removeprefix("export ").split("=", 1) for line in lines if "=" in line)
    env.update(
        {
            k: v
            for k, v in os.environ.items()
            if k in ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_TOPIC_PREFIX", "UNIONHUB_TOKEN")
        }
    )
    urls = Urls(
        env["KAFKA_BOOTSTRAP_SERVERS"],
        env["MEMBERSHIP_URL"],
        env["EVALUATION_URL"],
        env["FEEDBACK_URL"],
        env.get("KAFKA_TOPIC_PREFIX", ""),
        env.get("UNIONHUB_TOKEN", ""),
    )
    console = Console()
    console.print(f"[bold]Playing a year of union work (seed {args.seed}, scale {args.scale}) against {urls.kafka}")
    started = time.monotonic()
    outcome = asyncio.run(play(urls, seed=args.seed, scale=args.scale))
    print_report(outcome, console)
    write_html(outcome, args.html)
    console.print(f"Played and checked in {time.monotonic() - started:.0f} s; report written to {args.html}")
    for name, url in (("membership", urls.membership), ("evaluation", urls.evaluation), ("feedback", urls.feedback)):
        console.print(f"  {name:<11} {url}/metrics   {url}/asyncapi")
    console.print("The stack keeps running; stop it with: make down")
    return 0 if all(ok for _, ok, _ in outcome.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
