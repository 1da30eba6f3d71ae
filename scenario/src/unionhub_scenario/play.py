"""Plays the year against the running stack and checks every figure the services report."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import growth, opinions, stars, steel, studios
from .commands import Feed
from .lag import group_lag
from .publisher import Publisher


@dataclass
class Urls:
    kafka: str
    membership: str
    evaluation: str
    feedback: str
    prefix: str = ""
    token: str = ""  # a bearer token for the read APIs (`UNIONHUB_TOKEN` in .run/env)

    def api(self, base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=30, base_url=base_url, headers={"Authorization": f"Bearer {self.token}"} if self.token else {}
        )


@dataclass
class Outcome:
    sections: dict[str, Any] = field(default_factory=dict)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # (what, ok, detail)
    timings: dict[str, float] = field(default_factory=dict)
    throughput: list[tuple[float, int]] = field(default_factory=list)  # (seconds, items ingested)
    latencies: list[float] = field(default_factory=list)
    holds: list[float] = field(default_factory=list)  # seconds each held command waited
    rejected: int = 0  # commands of the feeds answered `command.rejected`

    def check(self, what: str, expected: Any, actual: Any) -> None:
        self.checks.append((what, expected == actual, "" if expected == actual else f"{expected} != {actual}"))


async def _wait_until(predicate: Any, timeout: float, step: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the services did not catch up in time")
        await asyncio.sleep(step)


async def play(urls: Urls, *, seed: int, scale: float) -> Outcome:
    out = Outcome()
    year = growth.generate(seed=seed, scale=scale)
    campaign = stars.generate(seed=seed, scale=scale, with_federation=False)
    feedback_year = opinions.generate(campaign, seed=seed, opinions=max(20, round(560 * scale)))
    month = steel.generate(seed=seed, items=max(5_000, round(300_000 * scale)))
    studio_year = studios.generate(seed=seed, studios=max(5, round(50 * scale)))
    columns = (TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    async with Publisher(urls.kafka, prefix=urls.prefix, source="scenario") as pub:
        with Progress(*columns) as progress:

            async def phase(name: str, feeds: list[Feed], timeout: float = 600) -> None:
                """The feeds streamed at the same time, then every answer awaited."""
                total = sum(len(f.commands) for f in feeds)
                bars = {
                    "publish": progress.add_task(f"{name}: publish", total=total),
                    "answered": progress.add_task(f"{name}: answered", total=total),
                }
                started = time.monotonic()
                await pub.stream(feeds, timeout, lambda step, done, _total: progress.update(bars[step], completed=done))
                out.timings[name] = time.monotonic() - started

            await phase("Growth: city and two districts' HR", year.feeds)
            # The Development Area's HR system enrols the raters while the rating portal already
            # sends their ratings: evaluation holds a rating until its rater's history arrives.
            await phase("Star campaign: HR and rating portal", [campaign.hr(*feedback_year.cadres), campaign.portal()])
            await phase("Opinion box and visits", [feedback_year.feed()])
            await phase("Visits: the month's close", [Feed("cadre-app", feedback_year.close)])  # after its visits
            overdue = sum(int(t["overdue"]) for t in feedback_year.truth.values())
            flagged = progress.add_task("Opinion box: overdue flagged", total=overdue)

            async def all_flagged() -> bool:  # feedback's timer flags what was never answered
                seen = {e["id"] for e in pub.events("opinion.overdue")}
                progress.update(flagged, completed=len(seen))
                return len(seen) >= overdue

            await _wait_until(all_flagged, 120)
            await phase("Innovation studios", [Feed("studio-registry", studio_year.assessments)])
            items = progress.add_task("Steel mill: work items ingested", total=month.distinct_items)
            started = time.monotonic()
            await pub.send(month.items, source="scoring-line/shougang")
            group, topic = f"{urls.prefix}evaluation.evaluation.work-scores", f"{urls.prefix}evaluation.work-scores"
            async with urls.api(urls.evaluation) as ev:

                async def ingested() -> bool:
                    metrics = (await ev.get("/metrics")).text
                    count = _sample(metrics, "evaluation_work_items_ingested_total")
                    out.throughput.append((time.monotonic() - started, int(count)))
                    progress.update(items, completed=min(count, month.distinct_items))
                    # Every distinct item of the month and the two just outside it, all read.
                    return bool(count >= month.distinct_items + 2 and await group_lag(urls.kafka, group, topic) == 0)

                await _wait_until(ingested, 600, step=0.5)
            out.timings["Steel mill work items"] = time.monotonic() - started
            await phase("Post stars of the month", [Feed("scoring-line/shougang", month.close)])  # after its items
        out.latencies = pub.latencies()
        out.holds = pub.holds()
        rejections = pub.events("command.rejected")
        out.rejected = len(rejections)
        out.check("commands rejected", [], [r["data"] for r in rejections])
    await _collect(urls, out, year, campaign, feedback_year, month, studio_year)
    return out


def _sample(metrics: str, name: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name) and not line.startswith(name + "_created"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _collect(
    urls: Urls,
    out: Outcome,
    year: growth.GrowthYear,
    campaign: stars.StarCampaign,
    feedback_year: opinions.OpinionYear,
    month: steel.SteelMonth,
    studio_year: studios.StudioYear,
) -> None:
    async with urls.api(urls.membership) as ms, urls.api(urls.evaluation) as ev, urls.api(urls.feedback) as fb:
        out.sections["growth"] = {}
        for district, truth in year.truth.items():
            params: dict[str, Any] = {"year": year.year, **({"district": district} if district else {})}
            report = (await ms.get("/stats/growth", params=params)).json()
            out.sections["growth"][district or "Beijing (city)"] = report
            out.check(f"growth of {district or 'the city'}", truth, {k: report[k] for k in truth})
        results = (await ev.get(f"/campaigns/{campaign.campaign_id}/results")).json()
        out.sections["stars"] = results["homes"]
        for home in results["homes"]:
            truth = campaign.truth[home["home_id"]]
            out.check(f"stars of {home['home_id']}", truth, {k: home[k] for k in truth})
        out.sections["feedback"] = {}
        for union, truth in feedback_year.truth.items():
            stats = (await fb.get("/stats", params={"union_id": union, "year": 2018})).json()
            out.sections["feedback"][union] = stats
            out.check(f"opinions of {union}", truth, {k: stats[k] for k in truth})
        stars_served = (await ev.get("/post-stars", params={"month": month.month})).json()["stars"]
        out.sections["post_stars"] = stars_served
        out.check("post stars", month.stars, {s["post_id"]: s for s in stars_served})
        rewards = (await ev.get("/studio-rewards", params={"year": 2018})).json()
        out.sections["studios"] = rewards
        out.check("studio rewards", studio_year.rewards, {r["studio_id"]: r["reward_cny"] for r in rewards["rewards"]})
