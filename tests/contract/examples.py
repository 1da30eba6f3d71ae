"""One valid `data` example per message type of the catalogue."""

from typing import Any

SCORES = {"organisation": 90, "facilities": 85, "work": 88, "labour_relations": 92, "finances": 80}
UNION = {
    "union_id": "ft-001",
    "name": "Fengtai Steel Union",
    "level": "grassroots",
    "parent_id": "ft",
    "district": "Fengtai",
    "kind": "independent",
    "founded_on": "2018-02-01",
}
HOME = {
    "home_id": "h-1",
    "union_id": "ft-001",
    "name": "Steel workers' home",
    "category": "demonstration",
    "opened_on": "2018-05-01",
}
STATION = {
    "station_id": "s-1",
    "union_id": "ft-001",
    "name": "Warm station 1",
    "services": ["water", "hot_meal"],
    "opened_on": "2018-06-01",
}
CADRE = {"member_id": "m-1", "union_id": "ft-001", "role": "full_time_cadre", "appointed_on": "2018-03-02"}
CAMPAIGN = {
    "campaign_id": "eda-2018",
    "year": 2018,
    "title": "Star homes 2018",
    "weights": {"member": 0.5, "unit": 0.25, "superior": 0.25},
    "home_ids": ["h-1", "h-2"],
    "min_member_ratings": 1,
    "star_thresholds": {"5": 90.0, "4": 80.0, "3": 70.0, "2": 60.0, "1": 50.0},
}
REJECTED = {"command_id": "c-1", "command_type": "member.leave", "code": "not_active", "reason": "not active"}
HELD = {"command_id": "c-9", "command_type": "member.enroll", "waiting_for": "union:ft-404"}

EXAMPLES: dict[str, dict[str, dict[str, Any]]] = {
    "membership.commands": {
        "union.register": UNION,
        "member.enroll": {"member_id": "m-1", "union_id": "ft-001", "joined_on": "2018-03-01", "display_name": "Li"},
        "member.leave": {"member_id": "m-1", "left_on": "2018-09-01", "reason": "retired"},
        "member.transfer": {"member_id": "m-1", "to_union_id": "ft-002", "transferred_on": "2018-07-01"},
        "home.register": HOME,
        "station.register": STATION,
        "cadre.appoint": CADRE,
    },
    "membership.events": {
        "union.registered": UNION,
        "member.enrolled": {"member_id": "m-1", "union_id": "ft-001", "joined_on": "2018-03-01"},
        "member.left": {"member_id": "m-1", "union_id": "ft-001", "left_on": "2018-09-01"},
        "member.transferred": {
            "member_id": "m-1",
            "from_union_id": "ft-001",
            "to_union_id": "ft-002",
            "transferred_on": "2018-07-01",
        },
        "home.registered": HOME,
        "station.registered": STATION,
        "cadre.appointed": CADRE,
        "command.rejected": REJECTED,
        "command.held": HELD,
    },
    "evaluation.commands": {
        "campaign.open": CAMPAIGN,
        "rating.submit": {
            "campaign_id": "eda-2018",
            "home_id": "h-1",
            "rater_kind": "member",
            "rater_id": "m-1",
            "scores": SCORES,
            "submitted_at": "2018-11-02T10:00:00+08:00",
        },
        "campaign.close": {"campaign_id": "eda-2018"},
        "post-star.close-month": {"month": "2018-11", "post_id": None},
        "studio.assess": {
            "studio_id": "st-1",
            "union_id": "sg-001",
            "year": 2018,
            "grade": "excellent",
            "value_created_cny": 12000000.0,
        },
    },
    "evaluation.work-scores": {
        "work.scored": {
            "item_id": "slab-1",
            "worker_id": "w-1",
            "post_id": "rolling-1",
            "score": 97.5,
            "scored_at": "2018-11-30T23:59:00+08:00",
        },
    },
    "evaluation.events": {
        "campaign.opened": CAMPAIGN,
        "rating.accepted": {
            "campaign_id": "eda-2018",
            "home_id": "h-1",
            "rater_kind": "unit",
            "rater_id": "u-1",
            "value": 87.0,
        },
        "campaign.closed": {"campaign_id": "eda-2018", "homes": 2},
        "home.star-awarded": {
            "campaign_id": "eda-2018",
            "home_id": "h-1",
            "composite": 88.13,
            "member_avg": 90.0,
            "unit_avg": 85.0,
            "superior_avg": 87.5,
            "member_ratings": 240,
            "stars": 4,
            "rank": 1,
            "reason": None,
        },
        "post-star.awarded": {
            "month": "2018-11",
            "post_id": "rolling-1",
            "worker_id": "w-1",
            "average": 96.2,
            "items": 412,
        },
        "post-star.month-closed": {"month": "2018-11", "post_id": None, "posts_awarded": 12},
        "studio.rewarded": {"studio_id": "st-1", "year": 2018, "grade": "excellent", "reward_cny": 30000},
        "command.rejected": REJECTED,
        "command.held": HELD,
    },
    "feedback.commands": {
        "opinion.submit": {
            "opinion_id": "o-1",
            "member_id": "m-1",
            "channel": "rating_page",
            "text": "The canteen closes too early",
            "submitted_at": "2018-11-02T10:00:00+08:00",
            "campaign_id": "eda-2018",
            "home_id": "h-1",
            "category": "canteen",
        },
        "opinion.respond": {
            "opinion_id": "o-1",
            "responder_id": "m-9",
            "text": "Opening hours extended",
            "responded_at": "2018-11-05T16:00:00+08:00",
        },
        "opinion.rate": {"opinion_id": "o-1", "member_id": "m-1", "satisfaction": 5},
        "visit.log": {
            "visit_id": "v-1",
            "cadre_id": "m-9",
            "place": "dormitory",
            "visited_at": "2018-11-06T19:30:00+08:00",
            "opinions_collected": 3,
        },
        "visits.close-month": {"month": "2018-11"},
    },
    "feedback.events": {
        "opinion.received": {
            "opinion_id": "o-1",
            "member_id": "m-1",
            "channel": "rating_page",
            "submitted_at": "2018-11-02T10:00:00+08:00",
            "campaign_id": "eda-2018",
            "home_id": "h-1",
            "category": "canteen",
        },
        "opinion.assigned": {"opinion_id": "o-1", "union_id": "ft-001", "due_at": "2018-11-09T10:00:00+08:00"},
        "opinion.responded": {"opinion_id": "o-1", "union_id": "ft-001", "response_seconds": 280800.0},
        "opinion.rated": {"opinion_id": "o-1", "union_id": "ft-001", "satisfaction": 5},
        "opinion.overdue": {"opinion_id": "o-1", "union_id": "ft-001", "due_at": "2018-11-09T10:00:00+08:00"},
        "visit.logged": {
            "visit_id": "v-1",
            "cadre_id": "m-9",
            "place": "dormitory",
            "visited_at": "2018-11-06T19:30:00+08:00",
            "opinions_collected": 3,
        },
        "visit.quota-missed": {"month": "2018-11", "cadre_id": "m-9", "union_id": "ft-001", "visits": 2},
        "visits.month-closed": {"month": "2018-11", "cadres_checked": 4, "quota_missed": 1},
        "command.rejected": REJECTED,
        "command.held": HELD,
    },
}
