"""`python -m bench [--quick] [--only 1,3]`: runs the scenarios, prints one table, writes
bench/results/<timestamp>.json. `--quick` is the CI smoke run: small counts, no verdicts."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from . import scenarios
from .infra import ROOT, kafka
from .scenarios import Context, Row

RESULTS = ROOT / "bench" / "results"


def machine() -> dict[str, object]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kafka": "Apache Kafka 4.1.1 (KRaft, single node, same machine)",
    }


def table(rows: list[Row], quick: bool) -> Table:
    out = Table(title="unionhub benchmark" + (" (quick smoke run: small counts, no verdicts)" if quick else ""))
    for column in ("scenario", "variant", "figure", "ratio", "goal", "met"):
        out.add_column(column, justify="right" if column in ("figure", "ratio") else "left")
    for row in rows:
        ratio = f"{row.ratio:.2f} x {row.reference}" if row.ratio is not None else ""
        met = "" if quick or row.met is None else ("yes" if row.met else "NO")
        out.add_row(row.scenario, row.variant, f"{row.value:,.1f} {row.unit}", ratio, row.goal, met)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small counts, for CI")
    parser.add_argument("--only", default="1,2,3,4,5", help="scenario numbers, comma-separated")
    parser.add_argument("--databases", default="sqlite,postgresql", help="for scenario 1")
    args = parser.parse_args()
    wanted = {int(n) for n in args.only.split(",")}
    console = Console(width=150)
    rows: list[Row] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="unionhub-bench-") as workdir, kafka() as bootstrap:
        ctx = Context(bootstrap=bootstrap, workdir=Path(workdir), quick=args.quick)
        plan = [
            (1, lambda: scenarios.work_score_ingestion(ctx, args.databases.split(","))),
            (2, lambda: scenarios.command_throughput(ctx)),
            (3, lambda: scenarios.latency(ctx)),
            (4, lambda: scenarios.footprint(ctx)),
            (5, lambda: scenarios.scale_out(ctx)),
            (6, lambda: scenarios.retention_soak(ctx)),
            (7, lambda: scenarios.growth_soak(ctx)),
        ]  # the soaks run only when asked: --only 6, --only 7
        for number, run in plan:
            if number in wanted:
                console.print(f"[bold]scenario {number}[/] …")
                rows += run()
                console.print(table([r for r in rows if r.scenario.startswith(str(number))], args.quick))
    console.print(table(rows, args.quick))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}{'-quick' if args.quick else ''}.json"
    path.write_bytes(
        orjson.dumps(
            {
                "when": stamp,
                "quick": args.quick,
                "machine": machine(),
                "seconds": round(time.monotonic() - started, 1),
                "rows": [r.as_dict() for r in rows],
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    console.print(f"results: {path.relative_to(ROOT)}")
    if not args.quick and any(r.met is False for r in rows):
        sys.exit(0)  # goals not met are reported, not failures: the closing note explains them


if __name__ == "__main__":
    main()
