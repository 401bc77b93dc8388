"""The sample year (data/sample/events.csv + event_actions.csv) through the intake rules
and the state machine.

Events are read and checked like any import, located, routed, dated and checked for
duplicates (:func:`gridgeo.events.intake.prepare_events`, vectorised); then every trail
is played through :class:`gridgeo.events.workflow.Machine`, one rank of action at a time
for all events at once (about 10 vectorised steps for 143,874 actions); then everything
is written with bulk inserts in one transaction: events, history, audit lines.

The trail's names are the machine's. Two things are mapped:

- a major event (重大事项) is accepted into ``reviewing``; the trail has no review step,
  so a ``review`` by the leadership group is recorded (``data.implied``) just before the
  trail's first dispatch of such an event;
- notes carry data: a dispatch's note is the department, ``延期48小时`` the hours of an
  extension or of a department's request for one (``ask_extension``, answered by
  ``grant_extension`` or ``refuse_extension``: a request waits as it does in the service),
  a rejection's note its reason, an escalation's note its target.

A trail the machine refuses stops at the refused action; the event keeps the state it
had, and the refusal is reported (event, seq, action, state, reason).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gridgeo.config import get_settings
from gridgeo.errors import ImportFailed
from gridgeo.events.db import write_txn
from gridgeo.events.geolocate import get_geolocator
from gridgeo.events.importing import bare_events, read_events, report_history, _report_swapped
from gridgeo.events.intake import insert_events, prepare_events
from gridgeo.events.routing import ESCALATION_TARGETS
from gridgeo.events.workflow import MACHINE, STATES, WORKFLOW_ACTORS
from gridgeo.store import Store, schema
from gridgeo.validate import Report

__all__ = ["ReplayResult", "apply_trails", "read_trails", "replay", "replay_sample"]

Progress = Callable[[str], None]

REJECT_NOTES = {"重复": "duplicate", "非本级": "not_ours", "不实": "untrue", "无效": "invalid"}
_HOURS = re.compile(r"(\d+)\s*(小时|h)")


@dataclass
class ReplayResult:
    """What the replay did."""

    events: int = 0
    actions: int = 0
    history: int = 0
    implied_reviews: int = 0
    adopted: int = 0
    final_states: dict[str, int] = field(default_factory=dict)
    located_by: dict[str, int] = field(default_factory=dict)
    routes: dict[str, int] = field(default_factory=dict)
    duplicates_flagged: int = 0
    duplicates_rejected_as_such: int = 0
    refused: pd.DataFrame = field(default_factory=pd.DataFrame)
    seconds: float = 0.0


def read_trails(path: str | Path, codes: set[str], report: Report) -> pd.DataFrame:
    """Read event_actions.csv, checking every row (unknown event, bad time, bad order)."""
    path = Path(path)
    try:
        t = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        report.error(path, "event_actions", None, None, f"cannot read the file: {exc}")
        return pd.DataFrame()
    need = ["event_code", "seq", "at", "action", "actor_role"]
    missing = [c for c in need if c not in t.columns]
    if missing:
        report.error(path, "event_actions", None, ", ".join(missing), "required column is missing")
        return pd.DataFrame()
    t["_row"] = np.arange(1, len(t) + 1)
    for c in ("note", "rating"):
        if c not in t:
            t[c] = ""
    t["seq"] = pd.to_numeric(t["seq"], errors="coerce")
    t["at"] = pd.to_datetime(t["at"], errors="coerce", utc=True, format="ISO8601")
    problems = [
        (~t["event_code"].isin(codes), "event_code", "no such event in the events file"),
        (t["seq"].isna(), "seq", "not a number"),
        (t["at"].isna(), "at", "not an ISO 8601 time with offset"),
    ]
    for mask, fld, msg in problems:
        for r in t.loc[mask, "_row"]:
            report.error(path, "event_actions", int(r), fld, msg)
    t = t.sort_values(["event_code", "seq"], kind="stable").reset_index(drop=True)
    return t


def _reject_reason(note: str) -> str:
    for key, reason in REJECT_NOTES.items():
        if key in note:
            return reason
    return "other"


def _escalation_target(note: str) -> str:
    return "12345" if "12345" in note else "county_center"


def apply_trails(prepared: pd.DataFrame, trails: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, int]:
    """Play every trail through the machine, vectorised over events.

    Parameters
    ----------
    prepared : DataFrame
        Events from :func:`prepare_events` (``code``, ``route``, ``department``,
        ``deadline_at``, ``reported_at`` ...), in state ``reported``.
    trails : DataFrame
        ``event_code``, ``seq``, ``at`` (aware), ``action``, ``actor_role``, ``note``,
        ``rating``, sorted by event and seq.

    Returns
    -------
    events : DataFrame
        ``prepared`` with the final state and the fields the actions set.
    history : DataFrame
        The applied actions (without the ``report`` lines), ``code`` ... ``data``.
    refused : DataFrame
        ``code``, ``seq``, ``action``, ``role``, ``state``, ``reason``.
    implied : int
        Reviews recorded for major events.
    """
    m = MACHINE
    n = len(prepared)
    ev = prepared.reset_index(drop=True).copy()
    pos = pd.Series(np.arange(n), index=ev["code"].to_numpy())
    t = trails.copy()
    t["_ev"] = t["event_code"].map(pos).to_numpy()
    t = t[t["_ev"].notna()].copy()
    t["_ev"] = t["_ev"].astype(int)
    t["_rank"] = t.groupby("_ev").cumcount().to_numpy()
    state = np.full(n, m.state_ix["reported"], dtype=np.int16)
    major = (ev["route"] == "leadership").to_numpy()
    rated = np.zeros(n, dtype=bool)
    stopped = np.zeros(n, dtype=bool)
    seq = np.ones(n, dtype=int)  # the report line is 1
    department = ev["department"].to_numpy(dtype=object).copy()
    extended = np.zeros(n, dtype=int)
    asked = np.zeros(n, dtype=int)  # the hours of an extension request waiting for its answer
    waiting = np.zeros(n, dtype=bool)
    escalated_to = np.full(n, None, dtype=object)
    reject_reason = np.full(n, None, dtype=object)
    result = np.full(n, None, dtype=object)
    satisfaction = np.full(n, np.nan)
    NaT = np.datetime64("NaT", "ns")
    updated = np.full(n, NaT, dtype="datetime64[ns]")
    resolved = np.full(n, NaT, dtype="datetime64[ns]")
    closed = np.full(n, NaT, dtype="datetime64[ns]")
    hist_parts, refused_parts = [], []
    implied = 0
    dispatch = m.action_ix["dispatch"]
    reviewing = m.state_ix["reviewing"]
    accepted = m.state_ix["accepted"]
    for rank in range(int(t["_rank"].max()) + 1 if len(t) else 0):
        step = t[t["_rank"].to_numpy() == rank]
        e = step["_ev"].to_numpy()
        live = ~stopped[e]
        step, e = step[live], e[live]
        if len(step) == 0:
            continue
        a = m.codes(step["action"], m.action_ix)
        r = m.codes(step["actor_role"], m.role_ix)
        at = step["at"].to_numpy(dtype="datetime64[ns]")
        notes = step["note"].to_numpy(dtype=object)
        # The implied review of a major event before its first dispatch.
        need = (state[e] == reviewing) & (a == dispatch) & major[e]
        if need.any():
            k = e[need]
            state[k] = accepted
            hist_parts.append(pd.DataFrame({
                "_ev": k, "seq": seq[k] + 1, "at": at[need], "action": "review",
                "actor": WORKFLOW_ACTORS["leadership"], "role": "leadership", "from_state": "reviewing",
                "to_state": "accepted", "note": "（回放补记）领导小组研判后交办",
                "data": [{"implied": True}] * len(k)}))
            seq[k] += 1
            implied += int(need.sum())
        new, illegal, forbidden = m.step(state[e], a, r, major[e], rated[e], waiting[e])
        bad = illegal | forbidden
        if bad.any():
            refused_parts.append(pd.DataFrame({
                "code": ev["code"].to_numpy()[e[bad]], "seq": step["seq"].to_numpy()[bad],
                "action": step["action"].to_numpy()[bad], "role": step["actor_role"].to_numpy()[bad],
                "state": m.states[state[e[bad]]],
                "reason": np.where(illegal[bad], "not allowed in this state", "role may not take it")}))
            stopped[e[bad]] = True
        ok = ~bad
        e_ok, a_ok, at_ok, notes_ok = e[ok], a[ok], at[ok], notes[ok]
        from_s = state[e_ok].copy()
        state[e_ok] = new[ok]
        seq[e_ok] += 1
        names = m.actions[a_ok]
        rating = pd.to_numeric(step["rating"].to_numpy()[ok], errors="coerce")
        data = np.full(len(e_ok), None, dtype=object)
        for i in np.flatnonzero(names == "dispatch"):
            if notes_ok[i]:
                department[e_ok[i]] = notes_ok[i]
            data[i] = {"department": department[e_ok[i]]}
        for i in np.flatnonzero(names == "extend"):
            mh = _HOURS.search(notes_ok[i] or "")
            hours = int(mh.group(1)) if mh else 0
            extended[e_ok[i]] += hours
            data[i] = {"hours": hours}
        for i in np.flatnonzero(names == "ask_extension"):  # the hours in the note, as for extend
            mh = _HOURS.search(notes_ok[i] or "")
            asked[e_ok[i]] = int(mh.group(1)) if mh else 0
            waiting[e_ok[i]] = True
            data[i] = {"hours": int(asked[e_ok[i]])}
        for i in np.flatnonzero(np.isin(names, ["grant_extension", "refuse_extension"])):
            data[i] = {"hours": int(asked[e_ok[i]])}
            if names[i] == "grant_extension":
                extended[e_ok[i]] += asked[e_ok[i]]
        answered = e_ok[np.isin(names, ["grant_extension", "refuse_extension", "return"])]
        waiting[answered] = False  # answered, or the department gave the event back
        asked[answered] = 0
        for i in np.flatnonzero(names == "escalate"):
            to = _escalation_target(notes_ok[i] or "")
            escalated_to[e_ok[i]] = ESCALATION_TARGETS[to]
            data[i] = {"to": to, "reason": notes_ok[i] or None}
        for i in np.flatnonzero(names == "reject"):
            reject_reason[e_ok[i]] = _reject_reason(notes_ok[i] or "")
            result[e_ok[i]] = notes_ok[i] or None
            data[i] = {"reason": reject_reason[e_ok[i]]}
        sel = names == "rate"
        satisfaction[e_ok[sel]] = rating[sel]
        rated[e_ok[sel]] = True
        for i in np.flatnonzero(sel):
            data[i] = {"satisfaction": int(rating[i]) if np.isfinite(rating[i]) else None}
        resolved[e_ok[names == "resolve"]] = at_ok[names == "resolve"]
        closed[e_ok[names == "close"]] = at_ok[names == "close"]
        updated[e_ok] = at_ok
        role_names = step["actor_role"].to_numpy(dtype=object)[ok]
        actor = np.array([WORKFLOW_ACTORS.get(x, x) for x in role_names], dtype=object)
        is_dept = role_names == "department"
        actor[is_dept] = department[e_ok[is_dept]]
        hist_parts.append(pd.DataFrame({
            "_ev": e_ok, "seq": seq[e_ok], "at": at_ok, "action": names, "actor": actor, "role": role_names,
            "from_state": m.states[from_s], "to_state": m.states[new[ok]],
            "note": np.where(pd.isna(notes_ok) | (notes_ok == ""), None, notes_ok), "data": data}))
    history = pd.concat(hist_parts, ignore_index=True) if hist_parts else pd.DataFrame(
        columns=["_ev", "seq", "at", "action", "actor", "role", "from_state", "to_state", "note", "data"])
    history["at"] = pd.to_datetime(history["at"], utc=True)
    history.insert(0, "code", ev["code"].to_numpy()[history["_ev"].to_numpy(dtype=int)])
    history = history.drop(columns="_ev").sort_values(["code", "seq"], kind="stable").reset_index(drop=True)
    ev["state"] = m.states[state]
    ev["version"] = seq
    ev["department"] = department
    ev["extended_hours"] = extended
    ev["extension_requested_hours"] = pd.array(np.where(waiting, asked, np.nan)).astype("Int64")
    ev["deadline_at"] = ev["deadline_at"] + pd.to_timedelta(extended, unit="h")
    ev["escalated_to"] = escalated_to
    ev["reject_reason"] = reject_reason
    ev["result"] = result
    ev["satisfaction"] = pd.array(np.where(np.isfinite(satisfaction), satisfaction, np.nan)).astype("Int64")
    ev["resolved_at"] = pd.to_datetime(resolved, utc=True)
    ev["closed_at"] = pd.to_datetime(closed, utc=True)
    ev["updated_at"] = pd.to_datetime(np.where(np.isnat(updated), ev["reported_at"].to_numpy(dtype="datetime64[ns]"),
                                               updated), utc=True)
    refused = pd.concat(refused_parts, ignore_index=True) if refused_parts else pd.DataFrame(
        columns=["code", "seq", "action", "role", "state", "reason"])
    return ev, history, refused, implied


def replay(store: Store, events_path: str | Path, actions_path: str | Path, *, actor: str = "replay",
           progress: Progress | None = None) -> ReplayResult:
    """Load events and their trails through the intake rules and the state machine.

    Events already in the store without any history (a plain layer import, such as
    ``gridgeo init --sample``) are taken over: replaced, in the same transaction, by
    the replayed ones. Events with history are refused (the year was replayed already).

    Raises
    ------
    ImportFailed
        With every problem found in either file; nothing was written.
    """
    import time

    started = time.perf_counter()
    store.check()

    def say(msg):
        if progress:
            progress(msg)

    say("reading events")
    raw = pd.read_csv(events_path, dtype=str, keep_default_na=False, usecols=["code"], encoding="utf-8-sig")
    bare, kept = bare_events(store, raw["code"])
    if kept:
        report = Report()
        report.error(events_path, "events", None, "code",
                     f"{len(kept):,} of these events are in the store with their history already "
                     f"(e.g. {', '.join(sorted(kept)[:3])}): the year was replayed")
        raise ImportFailed(report)
    frame, report = read_events(store, [events_path], allow_existing=bare)
    if not report.ok:
        raise ImportFailed(report)
    say("reading trails")
    trails = read_trails(actions_path, set(frame["code"]), report)
    if not report.ok:
        raise ImportFailed(report)
    ends = trails[trails["action"].isin(["close", "reject"])].groupby("event_code")["at"].min()
    # (mapping through an empty series of times fails in pandas: no trail closes any event)
    open_until = frame["code"].map(ends) if len(ends) else pd.Series(pd.NaT, index=frame.index,
                                                                      dtype="datetime64[ns, UTC]")
    say(f"locating, routing and checking {len(frame):,} events for duplicates")
    prepared = prepare_events(store, frame, open_until=pd.Series(open_until.to_numpy(), index=frame.index))
    _report_swapped(prepared, frame, report)
    if not report.ok:
        raise ImportFailed(report)
    say(f"playing {len(trails):,} actions through the state machine")
    events, history, refused, implied = apply_trails(prepared.drop(columns=["swapped"]), trails)
    history = pd.concat([report_history(prepared), history], ignore_index=True)
    say(f"writing {len(events):,} events and {len(history):,} history lines")
    with write_txn(store) as conn:
        if bare:
            ev = schema.events
            codes = sorted(bare)
            for i in range(0, len(codes), 5000):
                conn.execute(ev.delete().where(ev.c.code.in_(codes[i:i + 5000])))
        counts = insert_events(conn, events, history, actor=actor)
        Store.audit(conn, actor=actor, action="events.replay", entity="events",
                    detail={"events": counts["events"], "history": counts["event_actions"],
                            "refused": int(len(refused)), "implied_reviews": implied,
                            "adopted": len(bare), "files": [str(events_path), str(actions_path)]})
    get_geolocator(store).invalidate()
    rejected_dup = trails[(trails["action"] == "reject") & trails["note"].str.contains("重复")]["event_code"]
    flagged = set(events.loc[events["duplicate_flag"].to_numpy(dtype=bool), "code"])
    return ReplayResult(
        events=counts["events"], actions=int(len(trails)), history=counts["event_actions"],
        implied_reviews=implied, adopted=len(bare),
        final_states={s: int(c) for s, c in events["state"].value_counts().reindex(list(STATES)).dropna().items()},
        located_by=events["located_by"].value_counts().to_dict(),
        routes=events["route"].value_counts().to_dict(),
        duplicates_flagged=len(flagged), duplicates_rejected_as_such=len(flagged & set(rejected_dup)),
        refused=refused, seconds=round(time.perf_counter() - started, 1))


def replay_sample(store: Store, folder: str | Path | None = None, *, progress: Progress | None = None) -> ReplayResult:
    """Replay data/sample (or ``folder``): events.csv and event_actions.csv."""
    folder = Path(folder or get_settings().sample_dir)
    return replay(store, folder / "events.csv", folder / "event_actions.csv", progress=progress)
