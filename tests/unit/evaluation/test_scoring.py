"""Star-rating arithmetic against hand-computed cases, and its properties."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from evaluation.domain.post_star import WorkerMonth, winners
from evaluation.domain.scoring import rating_value, results, round_half_up, stars_for

THRESHOLDS = {"5": 90, "4": 80, "3": 70, "2": 60, "1": 50}
WEIGHTS_2018 = {"member": 0.5, "unit": 0.25, "superior": 0.25}


def v(*values: float) -> list[Fraction]:
    return [Fraction(str(x)) for x in values]


def one(ratings: dict, weights: dict = WEIGHTS_2018, minimum: int = 1) -> dict:
    [home] = results(
        home_ids=["h"], ratings={"h": ratings}, weights=weights, min_member_ratings=minimum, thresholds=THRESHOLDS
    )
    return vars(home)


def test_a_ratings_value_is_the_mean_of_its_five_scores() -> None:
    scores = {"organisation": 90, "facilities": 85, "work": 88, "labour_relations": 92, "finances": 80}
    assert rating_value(scores) == Fraction(435, 5) == 87


def test_the_composite_weights_the_three_means_as_in_2018() -> None:
    home = one({"member": v(80, 90), "unit": v(70), "superior": v(100)})
    # 0.5 * 85 + 0.25 * 70 + 0.25 * 100 = 85.0
    assert (home["composite"], home["member_avg"], home["stars"]) == (85.0, 85.0, 4)


def test_the_2017_weights_give_members_forty_percent() -> None:
    home = one({"member": v(90), "unit": v(80), "superior": v(70)}, {"member": 0.4, "unit": 0.3, "superior": 0.3})
    assert home["composite"] == 81.0  # 36 + 24 + 21


def test_rounding_is_half_up_at_the_third_decimal() -> None:
    # 0.5 * 80.01 + 0.25 * 80 + 0.25 * 80 = 80.005 exactly: half-up gives 80.01 (a float sum gives 80.00)
    assert one({"member": v(80.01), "unit": v(80), "superior": v(80)})["composite"] == 80.01
    assert round_half_up(Fraction(80005, 1000)) == 80.01
    assert round_half_up(Fraction(80004999, 1000000)) == 80.0


def test_a_composite_exactly_on_a_threshold_reaches_it() -> None:
    assert stars_for(90.0, THRESHOLDS) == 5
    assert stars_for(89.99, THRESHOLDS) == 4
    assert stars_for(49.99, THRESHOLDS) == 0


def test_missing_components_give_no_composite_and_a_reason() -> None:
    home = one({"member": v(90), "unit": v(90)}, minimum=2)
    assert (home["composite"], home["stars"], home["rank"]) == (None, 0, None)
    assert home["reason"] == "1 member ratings, fewer than the 2 required; no superior rating"


def test_equal_composites_share_a_rank_and_the_next_rank_skips() -> None:
    full = {"unit": v(80), "superior": v(80)}
    ratings = {
        "a": {"member": v(90), **full},
        "b": {"member": v(80), **full},
        "c": {"member": v(80), **full},
        "d": {"member": v(70), **full},
        "e": {"member": v(99)},
    }
    out = {
        r.home_id: r.rank
        for r in results(
            home_ids=list("abcde"), ratings=ratings, weights=WEIGHTS_2018, min_member_ratings=1, thresholds=THRESHOLDS
        )
    }
    assert out == {"a": 1, "b": 2, "c": 2, "d": 4, "e": None}


scores = st.integers(0, 100)
values = st.lists(
    st.builds(lambda *s: Fraction(sum(s), 5), scores, scores, scores, scores, scores), min_size=1, max_size=30
)


@given(values, values, values, st.permutations(range(3)))
def test_a_composite_lies_between_its_lowest_and_highest_component(m, u, s, _) -> None:
    home = one({"member": m, "unit": u, "superior": s})
    means = [sum(x) / len(x) for x in (m, u, s)]
    assert round_half_up(min(means)) <= home["composite"] <= round_half_up(max(means))


@given(values, values, values, st.randoms())
def test_the_order_ratings_arrive_in_does_not_matter(m, u, s, rnd) -> None:
    shuffled = [list(x) for x in (m, u, s)]
    for x in shuffled:
        rnd.shuffle(x)
    assert one({"member": m, "unit": u, "superior": s}) == one(
        dict(zip(["member", "unit", "superior"], shuffled, strict=True))
    )


worker_months = st.lists(
    st.builds(
        WorkerMonth,
        st.sampled_from(["p1", "p2", "p3"]),
        st.sampled_from([f"w{i}" for i in range(12)]),
        st.integers(1, 60),
        st.integers(0, 100_000),
    ),
    max_size=30,
    unique_by=lambda w: (w.post_id, w.worker_id),
)


@given(worker_months, st.randoms())
def test_the_post_star_is_the_best_qualified_worker_whatever_the_order(candidates, rnd) -> None:
    candidates = [WorkerMonth(c.post_id, c.worker_id, c.items, min(c.score_sum, c.items * 100_000)) for c in candidates]
    shuffled = list(candidates)
    rnd.shuffle(shuffled)
    stars = winners(candidates)
    assert stars == winners(shuffled)
    for star in stars:
        rivals = [c for c in candidates if c.post_id == star.post_id and c.items >= 20]
        best = sorted(rivals, key=lambda c: (-c.average, -c.items, c.worker_id))[0]
        assert (star.worker_id, star.items) == (best.worker_id, best.items)
    assert {s.post_id for s in stars} == {c.post_id for c in candidates if c.items >= 20}


def test_post_star_ties_go_to_more_items_then_the_smaller_worker_id() -> None:
    tie = [
        WorkerMonth("p", "w2", 20, 20 * 90_000),
        WorkerMonth("p", "w1", 20, 20 * 90_000),
        WorkerMonth("p", "w9", 25, 25 * 90_000),
        WorkerMonth("p", "w0", 19, 19 * 100_000),
    ]
    assert [(s.worker_id, s.average, s.items) for s in winners(tie)] == [("w9", 90.0, 25)]
    assert winners(tie[:2])[0].worker_id == "w1"
