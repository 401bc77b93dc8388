"""The leadership's dashboard (驾驶舱, ``/dashboard``): today's numbers, the period's, the six
indicators per platform and per department with the ranking (minimum volume, the rule said
in words), the months' trend, links to the workload and events maps, and the major events
awaiting the leadership's review (研判).

Every figure is the core's: :func:`gridgeo.assess.assess_many` and :func:`gridgeo.assess.rank`
(as ``/v1/stats/assessment``), :mod:`gridgeo.events.queries` for counts and lists.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request

from gridgeo import auth
from gridgeo.assess import LABELS, assess_many, rank
from gridgeo.assess.periods import default_period, parse_period
from gridgeo.console.base import Current, StoreDep, render, require_role
from gridgeo.errors import GridgeoError
from gridgeo.events import queries
from gridgeo.events.workflow import OPEN_STATES
from gridgeo.timezone import CHINA

router = APIRouter(include_in_schema=False)

READERS = frozenset({"leadership", "command_room", "admin"})
#: The six indicators of the assessment (考核), in the order people read them.
SIX = ("acceptance_rate", "dispatch_rate", "closure_rate", "on_time_rate", "rework_rate", "extension_rate")
RANK_BY = "on_time_rate"


@router.get("/dashboard")
def dashboard(request: Request, store: StoreDep, who: Current):
    require_role(who, READERS)
    asked = request.query_params.get("period")
    error = None
    try:
        period = parse_period(asked[:40]) if asked else default_period(store)
    except GridgeoError as exc:
        period, error = default_period(store), (
            f"统计期“{asked[:40]}”无法识别，请填写年份（2026）、季度（2026-Q3）、月份（2026-07）、"
            f"日期（2026-07-15）或区间（2025-10/2026-09）；下面是默认统计期的数字。")
    tables = assess_many(store, period, ["platform", "department", "total"])
    departments = rank(tables["department"], RANK_BY)
    now = dt.datetime.now(dt.timezone.utc)
    midnight = dt.datetime.now(CHINA).replace(hour=0, minute=0, second=0, microsecond=0)
    count = lambda **f: queries.list_events(store, limit=1, **f)["total"]  # noqa: E731
    today = {"received": count(since=midnight), "open": count(state=sorted(OPEN_STATES)),
             **{k: v for k, v in queries.queue_counts(store).items() if k in ("overdue", "due_soon", "to_review")}}
    end = dt.datetime.combine(period.end, dt.time(23, 59), tzinfo=CHINA)
    trend = queries.monthly(store, months=12, now=min(end, now.astimezone(CHINA)))
    top = max([1] + [m["received"] for m in trend])
    review = queries.list_events(store, state="reviewing", order="reported_at", limit=20)
    total = tables["total"].iloc[0].to_dict() if len(tables["total"]) else {}
    return render(request, "dashboard.html", {
        "period": period, "asked": asked or "", "error": error, "today": today, "total": total,
        "platforms": tables["platform"].reset_index().to_dict("records"),
        "departments": departments.reset_index().to_dict("records"), "rule": departments.attrs.get("explanation_zh"),
        "six": SIX, "labels": LABELS, "trend": trend, "top": top,
        "review": [auth.mask_event(e, who.principal) for e in review["items"]], "review_total": review["total"]})
