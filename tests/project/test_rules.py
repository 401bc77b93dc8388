"""One definition per rule: the China time zone and "today" are defined once and used by
every module that needs them (the other rules have their own agreement tests:
test_events_routing, test_events_workflow, test_events_intake, test_crs, test_plan)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import gridgeo
from gridgeo import timezone

ROOT = Path(gridgeo.__file__).resolve().parent.parent


def test_china_time_is_defined_once():
    """No module but gridgeo.timezone spells UTC+8; the modules that re-export a ``CST``
    hand out that one object."""
    from gridgeo.assess import periods
    from gridgeo.events import db, geolocate, records

    pattern = re.compile(r"timedelta\(hours=8\)|Asia/Shanghai|hours=8\)")
    offenders = [str(p.relative_to(ROOT)) for folder in ("gridgeo", "api", "maps") for p in (ROOT / folder).rglob("*.py")
                 if p.name != "timezone.py" and "migrations" not in p.parts and pattern.search(p.read_text("utf-8"))]
    assert offenders == []
    assert all(m.CST is timezone.CHINA for m in (periods, db, geolocate, records))
    assert timezone.CHINA.utcoffset(None) == dt.timedelta(hours=8)


def test_today_is_the_date_in_china():
    from gridgeo.store import today

    assert today is timezone.today
    now = dt.datetime.now(dt.timezone.utc)
    assert timezone.today() in {(now + dt.timedelta(hours=8)).date(), (now + dt.timedelta(hours=8, seconds=5)).date()}
    # 16:30 UTC is half past midnight of the next day in China
    assert timezone.china_date(dt.datetime(2026, 7, 1, 16, 30, tzinfo=dt.timezone.utc)) == dt.date(2026, 7, 2)


def test_connections_are_closed_where_they_are_opened():
    """``engine.connect().execute(...)`` leaves its connection, and on PostgreSQL its
    transaction and locks, to the garbage collector: a test doing so once made the next
    test's TRUNCATE wait for ever. A connection is opened in a ``with`` (or handed to
    ``closing``), never used straight off the call."""
    import ast

    offenders = []
    for folder in ("gridgeo", "api", "maps", "console", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Call)
                        and isinstance(node.value.func, ast.Attribute)
                        and node.value.func.attr in {"connect", "begin", "raw_connection"}
                        and node.attr not in {"__enter__"}):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_the_glossary_and_the_labels_people_read_agree():
    """The console shows SOURCES and STATES; the glossary names them. They had drifted apart
    (the console said 专项检查 where the glossary says 部门巡查)."""
    from gridgeo.events.workflow import STATES
    from gridgeo.layers import SOURCES

    text = (ROOT / "docs" / "glossary.md").read_text("utf-8")
    line = next(ln for ln in text.splitlines() if ln.startswith("| source |"))
    assert dict(re.findall(r"`(\w+)` ([^,(|]+?)(?=,| \(|$)", line.split("|")[3].strip())) == SOURCES
    states = dict(re.findall(r"^\| (\w+) \| ([^|]+?) \|$", text.split("## Event states")[1].split("##")[0],
                             flags=re.M))
    states.pop("state", None)  # the table's header
    assert states == STATES
