"""The read APIs' response models give back what the views give, byte for byte: FastAPI
drops every field a model does not declare and would turn an integer into a float."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

import evaluation.entrypoints.api
import feedback.entrypoints.api
import membership.entrypoints.api
from feedback.entrypoints import responses as feedback_responses

AT = datetime(2018, 11, 2, 1, 2, 3, 4000, tzinfo=UTC)  # as UtcInstant reads it back
OPINION = {
    "opinion_id": "o-1",
    "member_id": "m-1",
    "channel": "rating_page",
    "text": "more shade",
    "submitted_at": AT,
    "campaign_id": None,
    "home_id": "h-1",
    "category": None,
    "union_id": "u-1",
    "due_at": AT,
    "status": "responded",
    "responder_id": "c-1",
    "response_text": "done",
    "responded_at": AT,
    "response_seconds": 7200.5,
    "satisfaction": None,
    "overdue": False,
    "command_id": "cmd-1",
    "command_source": "rating-page",
}
LISTED = {"member_id": "m-1", "status": "left", "joined_on": date(2018, 1, 2), "left_on": date(2018, 9, 1)}
WEIGHTS = {"member": 1, "unit": 0.0, "superior": 0.0}
HOME = {
    "home_id": "h-1",
    "composite": 91.25,
    "member_avg": 91.25,
    "unit_avg": None,
    "superior_avg": None,
    "member_ratings": 3,
    "stars": 5,
    "rank": 1,
    "reason": None,
}
AUDITED = {
    "id": 7,
    "command_id": "cmd-1",
    "campaign_id": "c-1",
    "home_id": "h-1",
    "rater_kind": "member",
    "rater_id": "m-1",
    "outcome": "rejected",
    "code": "not_a_member",
    "reason": "not in the union",
    "at": AT,
}

ANSWERS: list[tuple[APIRouter, str, dict[str, Any]]] = [
    (
        membership.entrypoints.api.router,
        "/unions/{union_id}",
        {
            "union_id": "fed",
            "name": "City",
            "level": "federation",
            "parent_id": None,
            "district": None,
            "kind": None,
            "founded_on": date(2000, 1, 1),
            "active_members": 0,
        },
    ),
    (
        membership.entrypoints.api.router,
        "/unions/{union_id}/members",
        {"union_id": "u", "items": [LISTED], "next_after": "m-1"},
    ),
    (
        membership.entrypoints.api.router,
        "/unions/{union_id}/members",
        {
            "union_id": "u",
            "items": [{"member_id": "m-1", "status": "active", "on": date(2018, 5, 1)}],
            "next_after": None,
        },
    ),
    (
        membership.entrypoints.api.router,
        "/members/{member_id}",
        {
            "member_id": "m-1",
            "union_id": "u",
            **{k: v for k, v in LISTED.items() if k != "member_id"},
            "history": [{"union_id": "u", "kind": "transferred_out", "on": date(2018, 4, 1)}],
        },
    ),
    (
        membership.entrypoints.api.router,
        "/stats/growth",
        {
            "year": 2018,
            "district": None,
            **dict.fromkeys(
                ("new_independent_unions", "new_unions_100_plus", "new_members", "new_homes", "new_stations"), 3
            ),
        },
    ),
    (
        evaluation.entrypoints.api.router,
        "/campaigns/{campaign_id}",
        {
            "campaign_id": "c-1",
            "year": 2018,
            "title": "Homes 2018",
            "weights": WEIGHTS,
            "home_ids": ["h-1"],
            "min_member_ratings": 1,
            "star_thresholds": {"5": 90, "4": 80.5},  # the default thresholds are integers
            "status": "open",
            "ratings": {"member": 3, "unit": 1, "superior": 0},
            "held": 2,
        },
    ),
    (
        evaluation.entrypoints.api.router,
        "/campaigns/{campaign_id}/results",
        {"campaign_id": "c-1", "status": "closed", "provisional": False, "weights": WEIGHTS, "homes": [HOME]},
    ),
    (
        evaluation.entrypoints.api.router,
        "/campaigns/{campaign_id}/audit",
        {"campaign_id": "c-1", "items": [AUDITED], "next_after": 7},
    ),
    (
        evaluation.entrypoints.api.router,
        "/post-stars",
        {"month": "2018-05", "stars": [{"post_id": "p", "worker_id": "w", "average": 97.125, "items": 12}]},
    ),
    (
        evaluation.entrypoints.api.router,
        "/studio-rewards",
        {
            "year": 2018,
            "rewards": [
                {"studio_id": "s", "union_id": "u", "grade": "excellent", "value_created_cny": 1.5, "reward_cny": 30000}
            ],
            "total_cny": 30000,
        },
    ),
    (feedback.entrypoints.api.router, "/opinions/{opinion_id}", OPINION),
    (
        feedback.entrypoints.api.router,
        "/opinions/{opinion_id}",
        {k: v for k, v in OPINION.items() if k in feedback.entrypoints.api.STATUS_FIELDS},
    ),
    (
        feedback.entrypoints.api.router,
        "/stats",
        {
            "union_id": "u-1",
            "year": None,
            "received": 3,
            "responded": 2,
            "responded_in_time": 1,
            "overdue": 2,
            "median_response_seconds": 5400.5,
            "mean_satisfaction": 4.0,
        },
    ),
    (feedback.entrypoints.api.router, "/visits", {"month": "2018-05", "cadres": [{"cadre_id": "c-1", "visits": 2}]}),
]


def served(router: APIRouter, path: str, value: dict[str, Any]) -> str:
    """What the route sends for `value`, as FastAPI serializes through its response model."""
    route = next(r for r in router.routes if isinstance(r, APIRoute) and r.path == path)
    model = route.response_model
    answer = model.model_validate(value).model_dump(mode="json", exclude_unset=route.response_model_exclude_unset)
    return json.dumps(answer)


@pytest.mark.parametrize(("router", "path", "value"), ANSWERS, ids=[f"{p} {i}" for i, (_, p, _) in enumerate(ANSWERS)])
def test_a_response_model_sends_what_the_view_gives_unchanged(
    router: APIRouter, path: str, value: dict[str, Any]
) -> None:
    # Before: routes annotated `-> dict[str, Any]`, which FastAPI took as their response model.
    assert served(router, path, value) == json.dumps(TypeAdapter(dict[str, Any]).dump_python(value, mode="json"))


@pytest.mark.parametrize(
    "router", [membership.entrypoints.api.router, evaluation.entrypoints.api.router, feedback.entrypoints.api.router]
)
def test_every_read_route_of_a_service_declares_its_response_model(router: APIRouter) -> None:
    assert [r.path for r in router.routes if isinstance(r, APIRoute) and r.response_model is None] == []


def test_an_opinion_documents_the_text_fields_as_absent_without_the_scope() -> None:
    fields = feedback_responses.Opinion.model_fields
    shown = set(feedback.entrypoints.api.STATUS_FIELDS)
    assert shown <= set(fields)  # a field the model did not declare would be dropped
    assert {name for name, field in fields.items() if not field.is_required()} == set(fields) - shown
