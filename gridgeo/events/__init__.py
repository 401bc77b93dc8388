"""Events (事件): intake, geolocation, routing to the four platforms, the command room's
workflow, supervision, feedback and duplicates.

The pieces, each usable alone:

- :mod:`~gridgeo.events.workflow` -- the life cycle as an explicit state machine;
- :mod:`~gridgeo.events.geolocate` and :mod:`~gridgeo.events.address` -- where an event is;
- :mod:`~gridgeo.events.routing` -- who handles it;
- :mod:`~gridgeo.events.duplicates` -- whether it was reported already;
- :mod:`~gridgeo.events.intake` -- taking events in (one, or a batch), durably;
- :mod:`~gridgeo.events.batcher` -- group commit for concurrent intakes;
- :mod:`~gridgeo.events.importing` -- event files (CSV, GeoPackage), all rows or none;
- :mod:`~gridgeo.events.service` -- taking actions;
- :mod:`~gridgeo.events.catalogue` -- the event catalogue (categories), read and edited;
- :mod:`~gridgeo.events.queries` -- lists, supervision, the reporter's view;
- :mod:`~gridgeo.events.replay` -- the sample year through all of the above.
"""

from gridgeo.events.intake import EventIn, IntakeResult, report_event
from gridgeo.events.queries import command_room, get_event, list_events, reporter_view, supervision
from gridgeo.events.service import take_action
from gridgeo.events.workflow import ACTIONS, STATES, WORKFLOW_ACTORS, allowed_actions, transition

__all__ = [
    "ACTIONS",
    "EventIn",
    "IntakeResult",
    "WORKFLOW_ACTORS",
    "STATES",
    "allowed_actions",
    "command_room",
    "get_event",
    "list_events",
    "report_event",
    "reporter_view",
    "supervision",
    "take_action",
    "transition",
]
