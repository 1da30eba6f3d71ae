"""Membership's ports: the repositories handlers use, independent of the database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from unionhub_runtime.unit_of_work import AbstractRepository, AbstractUnitOfWork

from ..domain import model


class UnitOfWork(AbstractUnitOfWork):
    unions: AbstractRepository[model.Union]
    members: AbstractRepository[model.Member]
    homes: AbstractRepository[model.Home]
    stations: AbstractRepository[model.Station]
    cadres: AbstractRepository[model.Cadre]

    def repositories(self) -> Sequence[AbstractRepository[Any]]:
        return (self.unions, self.members, self.homes, self.stations, self.cadres)
