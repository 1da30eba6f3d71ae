"""`python -m unionhub_runtime.topics`: brings every catalogue topic and its DLQ to what the
catalogue declares (partitions, replication, `min.insync.replicas`, retention), creating the
missing ones; prints each change. Running it again changes nothing.

Its principal needs, on the topics (with `KAFKA_TOPIC_PREFIX`): Create, Describe,
DescribeConfigs, AlterConfigs and, with `--add-partitions`, Alter. It never shortens a
retention set longer by hand, and adds partitions only when asked: a key then hashes to
another partition while its older records are still read on the old one."""

import argparse
import asyncio

from unionhub_contracts import TOPICS

from .kafka import TopicChanges, ensure_topics
from .settings import KafkaSettings


def report(changes: TopicChanges, total: int) -> list[str]:
    """One line per change, one per thing left as found, and a summary."""
    lines = [f"created {name}" for name in changes.created]
    for name, configs in changes.altered.items():
        lines += [f"altered {name}: {key} {was or '(not set)'} -> {now}" for key, (was, now) in configs.items()]
    lines += [f"partitions {name}: {was} -> {now}" for name, (was, now) in changes.partitions.items()]
    lines += [f"kept {line}" for line in changes.kept]
    touched = len({*changes.created, *changes.altered, *changes.partitions})
    lines.append(
        f"topics: {len(changes.created)} created, {touched - len(changes.created)} changed, {total - touched} as declared"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m unionhub_runtime.topics", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--add-partitions",
        action="store_true",
        help="add the partitions the catalogue has more of (keys move: only once every group's lag is 0)",
    )
    args = parser.parse_args()
    settings = KafkaSettings()
    changes = asyncio.run(ensure_topics(settings, TOPICS, add_partitions=args.add_partitions))
    for line in report(changes, 2 * len(TOPICS)):
        print(line)


if __name__ == "__main__":
    main()
