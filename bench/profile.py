"""`python -m bench.profile work-scores|commands [--database sqlite|postgresql]`: samples the
service process with py-spy while it drains a backlog, and prints where its time goes
(own time and inclusive time per function). Needs py-spy (in requirements-dev.txt)."""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import load
from .infra import database, kafka, migrate, service
from .measure import progress
from .scenarios import ENROLLED, INGESTED, Context, _register_unions


def summarise(collapsed: Path, top: int = 25) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")" if " (" in f else f
            for f in stack.split(";")
        ]
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    lines = [f"{total} samples", "", "own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "inclusive time:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("what", choices=["work-scores", "commands"])
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--count", type=int, default=300_000)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    with tempfile.TemporaryDirectory() as workdir, kafka() as bootstrap:
        ctx = Context(bootstrap, Path(workdir), quick=False)
        prefix = ctx.fresh_prefix()
        name = "evaluation" if args.what == "work-scores" else "membership"
        with database(args.database, ctx.workdir) as url:
            migrate(name, url)
            if args.what == "work-scores":
                asyncio.run(load.produce(bootstrap, prefix + "evaluation.work-scores", load.work_scores(args.count)))
            with service(name, bootstrap=bootstrap, prefix=prefix, database_url=url, workdir=ctx.workdir) as proc:
                if args.what == "commands":
                    asyncio.run(_register_unions(ctx, prefix, "p-", 100))
                out = ctx.workdir / "profile.txt"
                spy = subprocess.Popen(
                    [
                        py_spy,
                        "record",
                        "--pid",
                        str(proc.process.pid),
                        "--format",
                        "raw",
                        "--rate",
                        "200",
                        "--output",
                        str(out),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                if args.what == "work-scores":
                    seconds, counted = progress(proc, INGESTED, args.count)
                else:
                    before = proc.metric(ENROLLED[0], **ENROLLED[1])
                    asyncio.run(
                        load.produce(bootstrap, prefix + "membership.commands", load.enrolments("p-", args.count, 100))
                    )
                    seconds, counted = progress(proc, ENROLLED, before + args.count)
                spy.send_signal(2)
                spy.wait(timeout=60)
                print(f"{counted:.0f} in {seconds:.2f}s = {counted / seconds:,.0f}/s")
                batches = proc.metric("unionhub_batch_size_messages_count")
                if batches:
                    print(
                        f"{batches:.0f} batches, {proc.metric('unionhub_batch_size_messages_sum') / batches:,.0f} records each"
                    )
                print(summarise(out, int(os.environ.get("TOP", "25"))))
                if keep := os.environ.get("PROFILE_RAW"):  # the samples, for a closer look
                    shutil.copy(out, keep)


if __name__ == "__main__":
    main()
