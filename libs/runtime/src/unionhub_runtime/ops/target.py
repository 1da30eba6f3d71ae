"""The service a command acts on: its topics, consumer groups, inbox and database, taken from
the service's own definition (the entry point `unionhub.services` each service declares), so
the tool and the service cannot disagree on a name."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from importlib.metadata import entry_points

from unionhub_contracts import decode

from ..pipeline import Decoder
from ..service import Service
from ..settings import KafkaSettings


class UnknownService(LookupError):
    pass


@dataclass(frozen=True)
class Subscription:
    topic: str  # the contract's name, e.g. "membership.commands"
    physical: str  # on the cluster: with the prefix
    group: str
    consumer: str  # the inbox's `consumer` column
    decoder: Decoder  # what the service decodes its records with: a record it refuses is dead-lettered
    inbox: bool  # commands and events are deduplicated by the inbox; bulk streams by their own tables

    @property
    def dlq(self) -> str:
        return f"{self.physical}.dlq"


@dataclass(frozen=True)
class Target:
    service: Service
    subscriptions: tuple[Subscription, ...]

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def kafka(self) -> KafkaSettings:
        return self.service.definition.settings.kafka

    def subscription(self, topic: str) -> Subscription:
        """The subscription of `topic`, named as in the contract or on the cluster."""
        for s in self.subscriptions:
            if topic in (s.topic, s.physical, s.dlq, f"{s.topic}.dlq"):
                return s
        known = ", ".join(s.topic for s in self.subscriptions)
        raise UnknownService(f"{self.name} does not consume {topic!r} (it consumes {known})")

    @classmethod
    def of(cls, service: Service) -> Target:
        return cls(
            service,
            tuple(
                Subscription(
                    s.topic,
                    service.physical(s.topic),
                    service.group_of(s),
                    s.topic,
                    s.decoder or partial(decode, s.topic),
                    inbox=not s.bulk,
                )
                for s in service.definition.subscriptions
            ),
        )


def installed() -> dict[str, str]:
    """The services installed here: name → entry point."""
    return {e.name: e.value for e in entry_points(group="unionhub.services")}


def load(name: str | None) -> Target:
    """The service `name` (or the only one installed), configured from the environment as it
    would be when serving: `<SERVICE>_DATABASE_URL`, `KAFKA_*`."""
    found = {e.name: e for e in entry_points(group="unionhub.services")}
    if name is None:
        if len(found) != 1:
            raise UnknownService(f"name the service with --service: installed here are {sorted(found) or 'none'}")
        (name,) = found
    if name not in found:
        raise UnknownService(f"no service {name!r} installed here (installed: {sorted(found) or 'none'})")
    return Target.of(found[name].load()())
