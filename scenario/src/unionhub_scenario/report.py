"""The report of a played year: rich tables in the terminal, the same with charts in HTML."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from statistics import median
from typing import Any

from rich.console import Console
from rich.table import Table

from .play import Outcome


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else 0.0


def tables(out: Outcome) -> list[tuple[str, list[str], list[list[Any]]]]:
    growth = [
        [d, r["new_independent_unions"], r["new_unions_100_plus"], r["new_members"], r["new_homes"], r["new_stations"]]
        for d, r in out.sections["growth"].items()
    ]
    stars = [
        [
            h["home_id"],
            h["member_avg"],
            h["unit_avg"],
            h["superior_avg"],
            h["member_ratings"],
            h["composite"],
            "★" * h["stars"] or "-",
            h["rank"] or "-",
        ]
        for h in out.sections["stars"]
    ]
    feedback = [
        [
            u,
            s["received"],
            s["responded_in_time"],
            s["responded"] - s["responded_in_time"],
            s["overdue"],
            round((s["median_response_seconds"] or 0) / 3600, 1),
            s["mean_satisfaction"],
        ]
        for u, s in out.sections["feedback"].items()
    ]
    totals = [sum(r[i] for r in feedback) for i in range(1, 5)]
    feedback.append(["all unions", *totals, "", ""])
    posts = [[s["post_id"], s["worker_id"], s["average"], s["items"]] for s in out.sections["post_stars"]]
    rewards = out.sections["studios"]
    grades: dict[str, list[int]] = {}
    for r in rewards["rewards"]:
        grades.setdefault(r["grade"], []).append(r["reward_cny"])
    studios = [[g, len(v), sum(v)] for g, v in sorted(grades.items())] + [
        ["total", len(rewards["rewards"]), rewards["total_cny"]]
    ]
    lat = out.latencies
    flow = [[name, f"{seconds:.1f} s"] for name, seconds in out.timings.items()]
    flow.append(
        [
            "command → event latency p50 / p95 / p99 / max",
            f"{_pct(lat, 0.5):.0f} / {_pct(lat, 0.95):.0f} / {_pct(lat, 0.99):.0f} / {_pct(lat, 1):.0f} ms",
        ]
    )
    flow.append(["commands rejected (every one was valid)", str(out.rejected)])
    flow.append(["commands held until what they named arrived (of all answered)", f"{len(out.holds)} of {len(lat)}"])
    flow.append(["hold p50 / longest", f"{_pct(out.holds, 0.5):.0f} / {_pct(out.holds, 1):.0f} ms"])
    if out.throughput and out.throughput[-1][0] > 0:
        flow.append(["work items ingested per second", f"{out.throughput[-1][1] / out.throughput[-1][0]:,.0f}"])
    return [
        (
            "Growth in 2018",
            ["district", "new independent unions", "new unions 100+", "new members", "new homes", "new stations"],
            growth,
        ),
        (
            "Star workers' homes",
            ["home", "members", "unit", "superior", "member ratings", "composite", "stars", "rank"],
            stars,
        ),
        (
            "Opinion box 2018",
            ["union", "received", "answered in time", "answered late", "overdue", "median answer (h)", "satisfaction"],
            feedback,
        ),
        ("Post stars of the month", ["post", "worker", "average", "items"], posts),
        ("Innovation studio rewards (CNY)", ["grade", "studios", "rewards"], studios),
        ("Throughput and latency", ["what", "figure"], flow),
    ]


def print_report(out: Outcome, console: Console) -> None:
    for title, header, rows in tables(out):
        table = Table(title=title, title_justify="left")
        for column in header:
            table.add_column(column)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)
    failed = [c for c in out.checks if not c[1]]
    if failed:
        console.print(f"[bold red]{len(failed)} of {len(out.checks)} figures differ from what was published:")
        for what, _, detail in failed[:20]:
            console.print(f"  {what}: {detail}")
    else:
        console.print(f"[bold green]All {len(out.checks)} checked figures equal what the scenario published.")


def _bars(title: str, data: Sequence[tuple[str, float]]) -> str:
    if not data:
        return ""
    top = max(v for _, v in data) or 1
    rows = "".join(
        f'<g transform="translate(0,{i * 22})"><text x="0" y="15">{html.escape(str(k))}</text>'
        f'<rect x="160" y="3" height="16" width="{400 * v / top:.1f}" fill="#c0392b"/>'
        f'<text x="{165 + 400 * v / top:.1f}" y="15">{v:g}</text></g>'
        for i, (k, v) in enumerate(data)
    )
    return f'<h3>{html.escape(title)}</h3><svg width="640" height="{22 * len(data) + 4}">{rows}</svg>'


def write_html(out: Outcome, path: Path) -> None:
    parts = [
        "<!doctype html><meta charset=utf-8><title>unionhub: a year of union work</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}"
        "td,th{border:1px solid #ccc;padding:3px 8px}svg text{font-size:12px}</style>",
        "<h1>A year of a city's union work</h1>",
    ]
    for title, header, rows in tables(out):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
            for row in rows
        )
        parts.append(f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>")
    parts.append(_bars("New members by district", [(d, r["new_members"]) for d, r in out.sections["growth"].items()]))
    stars: dict[int, int] = {}
    for h in out.sections["stars"]:
        stars[h["stars"]] = stars.get(h["stars"], 0) + 1
    parts.append(_bars("Homes by stars", [(f"{s} stars", n) for s, n in sorted(stars.items())]))
    hours = [
        s["median_response_seconds"] / 3600 for s in out.sections["feedback"].values() if s["median_response_seconds"]
    ]
    buckets = [
        (f"≤ {b} h", sum(1 for h in hours if lo < h <= b))
        for lo, b in ((0, 24), (24, 48), (48, 96), (96, 168), (168, 10_000))
    ]
    parts.append(_bars("Unions by median answer time", buckets))
    samples = out.throughput[:: max(1, len(out.throughput) // 20)]
    parts.append(_bars("Work items ingested over time", [(f"{t:.0f} s", n) for t, n in samples]))
    ok = all(c[1] for c in out.checks)
    parts.append(
        f"<p><b>{'All' if ok else 'Not all'} {len(out.checks)} checked figures equal what was published."
        f"</b> Median command latency {median(out.latencies) * 1000 if out.latencies else 0:.0f} ms.</p>"
    )
    path.write_text("\n".join(parts), encoding="utf-8")
