"""Star-rating arithmetic, exact: fractions throughout, rounded half-up only for reporting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

CRITERIA = ("organisation", "facilities", "work", "labour_relations", "finances")


def exact(number: float | int | str) -> Fraction:
    """The decimal a person wrote (0.4 means 2/5, not the nearest binary float)."""
    return Fraction(Decimal(repr(number) if isinstance(number, float) else str(number)))


def round_half_up(value: Fraction, places: int = 2) -> float:
    shifted = value * 10**places + Fraction(1, 2)
    whole: int = shifted.numerator // shifted.denominator
    return whole / float(10**places)


def rating_value(scores: Mapping[str, int]) -> Fraction:
    """A rating's value: the mean of its five criteria scores."""
    return Fraction(sum(scores[c] for c in CRITERIA), len(CRITERIA))


def mean(values: Sequence[Fraction]) -> Fraction | None:
    return sum(values, Fraction(0)) / len(values) if values else None


@dataclass(frozen=True)
class HomeResult:
    home_id: str
    composite: float | None
    member_avg: float | None
    unit_avg: float | None
    superior_avg: float | None
    member_ratings: int
    stars: int
    rank: int | None
    reason: str | None


def stars_for(composite: float, thresholds: Mapping[str, float]) -> int:
    """The highest star level whose threshold the composite reaches; 0 below all."""
    reached = [int(level) for level, threshold in thresholds.items() if exact(composite) >= exact(threshold)]
    return max(reached, default=0)


def results(
    *,
    home_ids: Sequence[str],
    ratings: Mapping[str, Mapping[str, Sequence[Fraction]]],  # home -> kind -> values
    weights: Mapping[str, float],
    min_member_ratings: int,
    thresholds: Mapping[str, float],
) -> list[HomeResult]:
    """Every home's composite, stars and rank (1, 2, 2, 4 for equal composites)."""
    w = {kind: exact(weight) for kind, weight in weights.items()}
    provisional = []
    for home_id in home_ids:
        by_kind = ratings.get(home_id, {})
        m, u, s = (mean(list(by_kind.get(k, ()))) for k in ("member", "unit", "superior"))
        count = len(by_kind.get("member", ()))
        missing = []
        if count < min_member_ratings:
            missing.append(f"{count} member ratings, fewer than the {min_member_ratings} required")
        if u is None:
            missing.append("no unit rating")
        if s is None:
            missing.append("no superior rating")
        composite = None
        if not missing:
            assert u is not None and s is not None
            composite = round_half_up(w["member"] * (m or 0) + w["unit"] * u + w["superior"] * s)
        provisional.append((home_id, composite, m, u, s, count, "; ".join(missing) or None))
    ordered = sorted((c for _, c, *_ in provisional if c is not None), reverse=True)
    rank_of: dict[float, int] = {}
    for position, composite in enumerate(ordered, 1):
        rank_of.setdefault(composite, position)
    return [
        HomeResult(
            home_id=home_id,
            composite=composite,
            member_avg=round_half_up(m) if m is not None else None,
            unit_avg=round_half_up(u) if u is not None else None,
            superior_avg=round_half_up(s) if s is not None else None,
            member_ratings=count,
            stars=stars_for(composite, thresholds) if composite is not None else 0,
            rank=rank_of[composite] if composite is not None else None,
            reason=reason,
        )
        for home_id, composite, m, u, s, count, reason in provisional
    ]
