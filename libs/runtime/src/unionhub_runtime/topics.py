"""`python -m unionhub_runtime.topics`: creates every catalogue topic and its DLQ (idempotent)."""

import asyncio

from unionhub_contracts import TOPICS

from .kafka import ensure_topics
from .settings import KafkaSettings


def main() -> None:
    settings = KafkaSettings()
    created = asyncio.run(ensure_topics(settings, TOPICS))
    print(f"topics: {len(created)} created, {2 * len(TOPICS) - len(created)} already there")


if __name__ == "__main__":
    main()
