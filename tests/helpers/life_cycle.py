"""The events life cycle of docs/design.md as a table, written out independently of the
machine's own (tests/events/test_events_workflow.py checks the machine against it, and
tests/events/test_events_workflow_store.py takes every transition on a stored event)."""

from __future__ import annotations

from gridgeo.events.workflow import FINAL_STATES, STATES

OPEN = [s for s in STATES if s not in FINAL_STATES]

#: The life cycle of docs/design.md, written out independently of the machine's table:
#: (from, action, to, roles). Major events: accept leads to reviewing (tested apart).
EXPECTED = [
    ("reported", "accept", "accepted", {"command_room"}),
    ("reported", "reject", "rejected", {"command_room"}),
    ("accepted", "reject", "rejected", {"command_room"}),
    ("reviewing", "reject", "rejected", {"command_room"}),
    ("reported", "merge", "rejected", {"command_room"}),
    ("accepted", "merge", "rejected", {"command_room"}),
    ("reviewing", "merge", "rejected", {"command_room"}),
    ("reviewing", "review", "accepted", {"leadership", "command_room"}),
    ("accepted", "dispatch", "dispatched", {"command_room", "platform_office"}),
    ("returned", "dispatch", "dispatched", {"command_room", "platform_office"}),
    ("dispatched", "return", "returned", {"department", "platform_office"}),
    *[(s, "escalate", "escalated", {"command_room"})
      for s in ("accepted", "reviewing", "dispatched", "returned", "in_progress", "suspended")],
    ("dispatched", "start", "in_progress", {"department"}),
    ("escalated", "start", "in_progress", {"department"}),
    ("in_progress", "suspend", "suspended", {"command_room"}),
    ("suspended", "resume", "in_progress", {"command_room"}),
    ("in_progress", "resolve", "resolved", {"department"}),
    ("resolved", "rework", "in_progress", {"grid_worker", "command_room"}),
    ("resolved", "verify", "verified", {"grid_worker"}),
    ("verified", "close", "closed", {"command_room"}),
    *[(s, "extend", s, {"platform_office", "command_room"})
      for s in ("dispatched", "in_progress", "escalated", "suspended", "resolved")],
    # a department asks for an extension while it holds the event; whoever extends answers
    # (approve, refuse: only while a request waits, tests/events/test_events_workflow.py)
    *[(s, "ask_extension", s, {"department"}) for s in ("dispatched", "in_progress")],
    *[(s, answer, s, {"platform_office", "command_room"})
      for s in ("dispatched", "in_progress", "escalated", "suspended", "resolved")
      for answer in ("grant_extension", "refuse_extension")],
    *[(s, "supervise", s, {"command_room"}) for s in OPEN],
    *[(s, "locate", s, {"command_room", "grid_worker"}) for s in OPEN],
    ("closed", "rate", "closed", {"reporter"}),
    # the county platform / 12345 on an escalated event, through its signed callbacks
    ("escalated", "county_update", "escalated", {"county"}),
    ("escalated", "county_close", "closed", {"county"}),
]
