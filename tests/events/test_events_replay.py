"""Importing event files and replaying the sample's trails, both databases; the CLI."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from sqlalchemy import func, select
from typer.testing import CliRunner

from helpers.paths import SAMPLE
from gridgeo.cli import app
from gridgeo.errors import ImportFailed
from gridgeo.events import get_event, list_events
from gridgeo.events.importing import import_events
from gridgeo.events.replay import replay
from gridgeo.io import import_files
from gridgeo.store import schema

DAYS = ("2025-10-01", "2025-10-02", "2025-10-03", "2025-10-04", "2025-10-05", "2025-10-06", "2025-10-07",
        "2025-10-08", "2025-10-09", "2025-10-10")


@pytest.fixture
def township(store):
    """The sample township (no events) in ``store``."""
    import_files(store, [SAMPLE / "township.gpkg", SAMPLE / "categories.csv", SAMPLE / "staff.csv"],
                 plan_version="2024-01", effective_from=dt.date(2024, 1, 1))
    return store


@pytest.fixture(scope="module")
def sample_days(tmp_path_factory):
    """The sample's first days (events and trails), and a few extra events of the year
    (major and outside ones, address-only, nothing at all) with their trails."""
    folder = tmp_path_factory.mktemp("days")
    ev = pd.read_csv(SAMPLE / "events.csv", dtype=str, keep_default_na=False)
    acts = pd.read_csv(SAMPLE / "event_actions.csv", dtype=str, keep_default_na=False)
    cats = pd.read_csv(SAMPLE / "categories.csv", dtype=str)
    major = ev["category_code"].isin(cats.loc[cats["major"] == "true", "code"])
    escalated = ev["code"].isin(acts.loc[acts["action"] == "escalate", "event_code"])
    pick = ev["reported_at"].str[:10].isin(DAYS) | major | escalated
    ev = ev[pick]
    ev.to_csv(folder / "events.csv", index=False)
    acts[acts["event_code"].isin(ev["code"])].to_csv(folder / "event_actions.csv", index=False)
    return folder


def _count(store, table):
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def test_replay_plays_every_trail(township, sample_days):
    store = township
    ev = pd.read_csv(sample_days / "events.csv", dtype=str)
    acts = pd.read_csv(sample_days / "event_actions.csv", dtype=str, keep_default_na=False)
    r = replay(store, sample_days / "events.csv", sample_days / "event_actions.csv")
    assert r.events == len(ev) and r.actions == len(acts) and len(r.refused) == 0
    assert r.history == len(ev) + len(acts) + r.implied_reviews
    assert r.implied_reviews > 0 and r.routes["leadership"] > 0 and r.routes["escalate"] > 0
    assert _count(store, schema.events) == len(ev) and _count(store, schema.event_actions) == r.history
    # the final state is where each trail's last action leads
    last = acts.groupby("event_code")["action"].last()
    expected = {"close": "closed", "rate": "closed", "reject": "rejected", "resolve": "resolved",
                "verify": "verified", "start": "in_progress", "suspend": "suspended", "dispatch": "dispatched",
                "escalate": "escalated"}
    with store.engine.connect() as conn:
        states = dict(conn.execute(select(schema.events.c.code, schema.events.c.state)).all())
    for code, action in last.items():
        if action in expected:
            assert states[code] == expected[action], (code, action)
    assert sum(r.final_states.values()) == len(ev)
    # one event in detail: history, version, deadline with its extension, rating
    code = next(c for c in acts.loc[acts["action"] == "extend", "event_code"]
                if get_event(store, c, history=False)["route"] == "department")
    e = get_event(store, code)
    trail = acts[acts["event_code"] == code]
    assert [h["action"] for h in e["history"]] == ["report", *trail["action"]]
    assert [h["at"] for h in e["history"][1:]] == list(trail["at"])
    assert e["version"] == len(e["history"]) and e["extended_hours"] > 0
    cat_hours = int(pd.read_csv(SAMPLE / "categories.csv").set_index("code").loc[e["category_code"], "deadline_hours"])
    assert dt.datetime.fromisoformat(e["deadline_at"]) - dt.datetime.fromisoformat(e["reported_at"]) == \
        dt.timedelta(hours=cat_hours + e["extended_hours"])
    rated = acts.loc[acts["action"] == "rate"].iloc[0]
    assert get_event(store, rated["event_code"])["satisfaction"] == int(rated["rating"])
    # located like the service would; the address-only ones by the register
    by = list_events(store, located_by="address", limit=5)["items"]
    assert by and all(x["address_confidence"] >= 0.6 for x in by)
    # once is enough
    with pytest.raises(ImportFailed, match="replayed"):
        replay(store, sample_days / "events.csv", sample_days / "event_actions.csv")


def test_replay_reports_trails_the_machine_refuses(township, tmp_path):
    ev = pd.read_csv(SAMPLE / "events.csv", dtype=str, keep_default_na=False).head(3)
    acts = pd.read_csv(SAMPLE / "event_actions.csv", dtype=str, keep_default_na=False)
    acts = acts[acts["event_code"].isin(ev["code"])].copy()
    bad = ev["code"].iloc[0]
    # the first event is closed right after it is accepted; the second's dispatch by a department
    rows = acts[acts["event_code"] == bad].copy()
    rows.loc[rows.index[1], "action"] = "close"
    acts.loc[rows.index] = rows
    second = acts.index[(acts["event_code"] == ev["code"].iloc[1]) & (acts["action"] == "dispatch")][0]
    acts.loc[second, "actor_role"] = "department"
    ev.to_csv(tmp_path / "events.csv", index=False)
    acts.to_csv(tmp_path / "event_actions.csv", index=False)
    r = replay(township, tmp_path / "events.csv", tmp_path / "event_actions.csv")
    refused = r.refused.set_index("code")
    assert refused.loc[bad, "action"] == "close" and refused.loc[bad, "state"] == "accepted"
    assert refused.loc[bad, "reason"] == "not allowed in this state"
    assert refused.loc[ev["code"].iloc[1], "reason"] == "role may not take it"
    assert get_event(township, bad)["state"] == "accepted"  # the trail stops where it was refused
    assert r.final_states.get("closed", 0) + len(refused) >= 2


def test_replay_plays_extension_requests(township, tmp_path):
    """A department's request for an extension waits for its answer in a replay as in the
    service: granted, the deadline moves by the hours asked; refused, nothing moves; a grant
    with nothing asked is refused; a request still waiting is kept on the event."""
    acts = pd.read_csv(SAMPLE / "event_actions.csv", dtype=str, keep_default_na=False)
    ev = pd.read_csv(SAMPLE / "events.csv", dtype=str, keep_default_na=False)
    started = acts[acts["action"] == "start"].drop_duplicates("event_code").head(4)
    codes = list(started["event_code"])
    ev = ev[ev["code"].isin(codes)]
    rows = []
    answers = {codes[0]: [("ask_extension", "department", "材料未齐，申请延期36小时"),
                          ("grant_extension", "platform_office", "")],
               codes[1]: [("ask_extension", "department", "申请延期24小时"),
                          ("refuse_extension", "command_room", "时限充足")],
               codes[2]: [("grant_extension", "platform_office", "")],
               codes[3]: [("ask_extension", "department", "申请延期12小时")]}
    for _, s in started.iterrows():  # each trail up to its start, then the extension steps
        trail = acts[(acts["event_code"] == s["event_code"]) & (acts["seq"].astype(int) <= int(s["seq"]))]
        rows.append(trail)
        at = pd.Timestamp(s["at"])
        for k, (action, role, note) in enumerate(answers[s["event_code"]], start=1):
            rows.append(pd.DataFrame([{"event_code": s["event_code"], "seq": str(int(s["seq"]) + k),
                                       "at": (at + pd.Timedelta(minutes=10 * k)).isoformat(), "action": action,
                                       "actor_role": role, "note": note, "rating": ""}]))
    ev.to_csv(tmp_path / "events.csv", index=False)
    pd.concat(rows).to_csv(tmp_path / "event_actions.csv", index=False)
    r = replay(township, tmp_path / "events.csv", tmp_path / "event_actions.csv")
    assert list(r.refused["code"]) == [codes[2]] and r.refused["reason"].iloc[0] == "not allowed in this state"
    granted, refused, waiting = (get_event(township, c) for c in (codes[0], codes[1], codes[3]))
    assert granted["extended_hours"] == 36 and granted["extension_requested_hours"] is None
    assert [h["data"] for h in granted["history"][-2:]] == [{"hours": 36}, {"hours": 36}]
    assert refused["extended_hours"] == 0 and refused["extension_requested_hours"] is None
    assert waiting["extension_requested_hours"] == 12 and waiting["state"] == "in_progress"


def test_replay_takes_over_a_plain_import(store, tmp_path):
    ev = pd.read_csv(SAMPLE / "events.csv", dtype=str, keep_default_na=False).head(50)
    acts = pd.read_csv(SAMPLE / "event_actions.csv", dtype=str, keep_default_na=False)
    ev.to_csv(tmp_path / "events.csv", index=False)
    acts[acts["event_code"].isin(ev["code"])].to_csv(tmp_path / "event_actions.csv", index=False)
    import_files(store, [SAMPLE / "township.gpkg", SAMPLE / "categories.csv", SAMPLE / "staff.csv",
                         tmp_path / "events.csv"], plan_version="2024-01", effective_from=dt.date(2024, 1, 1))
    r = replay(store, tmp_path / "events.csv", tmp_path / "event_actions.csv")
    assert r.adopted == 50 and r.events == 50 and _count(store, schema.events) == 50


# -- import ---------------------------------------------------------------------------------


def test_import_csv_all_or_nothing(township, tmp_path):
    ev = pd.read_csv(SAMPLE / "events.csv", dtype=str, keep_default_na=False).head(40)
    bad = ev.copy()
    bad.loc[3, "category_code"] = "NOPE"
    bad.loc[5, "lon"] = "east"
    bad.loc[7, "lat"] = ""  # lon without lat
    bad.to_csv(tmp_path / "events.csv", index=False)
    with pytest.raises(ImportFailed) as exc:
        import_events(township, [tmp_path / "events.csv"])
    problems = {(p.row, p.field) for p in exc.value.report.errors}
    assert {(4, "category_code"), (6, "lon"), (8, "lon")} <= problems
    assert _count(township, schema.events) == 0
    ev.to_csv(tmp_path / "events.csv", index=False)
    r = import_events(township, [tmp_path / "events.csv"])
    assert r.events == 40 and sum(r.located_by.values()) == 40
    assert _count(township, schema.event_actions) == 40
    assert get_event(township, ev["code"].iloc[0])["history"][0]["action"] == "report"
    with pytest.raises(ImportFailed, match="already in the store"):
        import_events(township, [tmp_path / "events.csv"])


def test_import_geopackage_points(township, tmp_path):
    frame = gpd.GeoDataFrame({
        "code": ["X1", "X2"], "source": ["patrol", "app"], "category_code": ["ZZ001", "ZF003"],
        "reported_at": ["2026-03-01T09:00:00+08:00", "2026-03-01T10:00:00+08:00"],
    }, geometry=[shapely.Point(119.4602, 28.4351), None], crs=4326)
    frame.to_file(tmp_path / "events.gpkg", layer="events")
    r = import_events(township, [tmp_path / "events.gpkg"])
    assert r.events == 2
    assert get_event(township, "X1")["located_by"] == "coordinates"
    assert get_event(township, "X2")["located_by"] == "unlocated"


# -- the CLI --------------------------------------------------------------------------------


def test_cli_import_and_replay(tmp_path, sample_days):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    assert runner.invoke(app, ["init", "-d", url]).exit_code == 0
    assert runner.invoke(app, ["import", "-d", url, str(SAMPLE / "township.gpkg"), str(SAMPLE / "categories.csv"),
                               str(SAMPLE / "staff.csv"), "--plan", "2024-01",
                               "--effective-from", "2024-01-01"]).exit_code == 0
    bad = tmp_path / "bad.csv"
    pd.read_csv(SAMPLE / "events.csv", dtype=str).head(5).assign(category_code="NOPE").to_csv(bad, index=False)
    res = runner.invoke(app, ["events", "import", "-d", url, str(bad), "--report", str(tmp_path / "r.csv")])
    assert res.exit_code == 1 and "nothing was written" in res.output
    assert len(pd.read_csv(tmp_path / "r.csv")) == 5
    res = runner.invoke(app, ["events", "replay", "-d", url, "--folder", str(sample_days),
                              "--refused", str(tmp_path / "refused.csv")])
    assert res.exit_code == 0, res.output
    assert "trails refused by the state machine: 0" in res.output and "closed" in res.output
    res = runner.invoke(app, ["events", "purge-keys", "-d", url])
    assert res.exit_code == 0 and "purged" in res.output


def test_the_readme_command_room_example_works_as_written(replayed):
    """The README accepts an event at version 1 with the demo command room's token: after
    `make run` (the sample replayed), that event must be reported, at version 1, and the
    list it shows must find it first."""
    import re

    from gridgeo.events import queries
    from helpers.paths import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code = re.search(r"/v1/events/(E\d{13})/actions", readme).group(1)
    assert re.search(r'-d \'\{"action": "accept", "version": 1\}\'', readme)
    event = queries.get_event(replayed, code, history=False)
    assert (event["state"], event["version"]) == ("reported", 1)
    listed = queries.list_events(replayed, state="reported", limit=1)
    assert listed["items"][0]["code"] == code
