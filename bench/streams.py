"""The Kafka Streams peer (bench/streams/): built with Maven from Maven Central at the broker's
Kafka version, run as a JVM process of its own on the same topic data as the project."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson

from .infra import ROOT
from .measure import json_result

PROJECT = ROOT / "bench" / "streams"
GUARANTEES = {"at_least_once": "at-least-once", "exactly_once_v2": "exactly-once v2"}


@dataclass(frozen=True)
class PeerRun:
    guarantee: str
    threads: int
    seconds: float
    counted: int
    items: int  # read back from the store: items counted per month, post and worker
    score_milli: int
    rows: int  # (month, post, worker) totals kept
    duplicates: int

    @property
    def rate(self) -> float:
        return self.counted / self.seconds


def build() -> str:
    """The peer's classpath, built once (Maven fetches Kafka Streams, RocksDB and Jackson)."""
    target = PROJECT / "target"
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "package",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={target / 'libs'}",
            "-DincludeScope=runtime",
        ],
        cwd=PROJECT,
        check=True,
        timeout=1200,
    )
    return f"{target / 'work-scores-streams-1.jar'}:{target / 'libs'}/*"


def run(
    classpath: str, bootstrap: str, topic: str, expected: int, guarantee: str, threads: int, workdir: Path
) -> PeerRun:
    """One run from the topic's start with a fresh application id (no state, no offsets)."""
    application = f"bench-streams-{uuid.uuid4().hex[:8]}"
    state = workdir / application
    figures = json_result(
        [
            "java",
            "-Xmx1g",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp",
            classpath,
            "unionhub.bench.WorkScores",
            bootstrap,
            topic,
            application,
            guarantee,
            str(threads),
            str(expected),
            str(state),
        ],
        what=f"Kafka Streams peer ({guarantee}, {threads} threads)",
        timeout=1200,
    )
    return PeerRun(guarantee, threads, **figures)


def totals(records: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """(distinct items, sum of their scores in thousandths), from the generator's records."""
    seen: dict[str, int] = {}
    for _, value in records:
        data = orjson.loads(value)["data"]
        seen.setdefault(data["item_id"], round(data["score"] * 1000))
    return len(seen), sum(seen.values())
