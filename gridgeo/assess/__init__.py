"""Assessment (考核): counts, times, satisfaction and rates per unit over a period.

>>> from gridgeo.assess import assess, rank                 # doctest: +SKIP
>>> table = assess(store, "2026-Q3", by="platform")          # a DataFrame
>>> rank(table, "on_time_rate").attrs["explanation"]

Definitions
-----------
A *period* is a run of whole local (CST) days (:func:`parse_period`); its bounds are
``[start, end)``. ``as_of`` is the moment the figures describe (default: now): actions
after it are ignored, every event has the state it had then (replayed from
``event_actions`` for events changed since), an event closed after it is not closed,
and events reported after it do not exist. Deadlines are the stored ``deadline_at``,
after every approved extension (延期).

Counts, per event, from the events table and its history (``event_actions``):

``received`` (上报数)
    Reported in the period (``start <= reported_at < end``), whatever became of it
    (rejected and merged duplicates included).
``accepted`` (立案数)
    Received, and accepted (an ``accept`` action; major events that went to the
    leadership group included). A later rejection does not undo it.
``dispatched`` (派遣数)
    Received, and dispatched (分流交办) at least once (``dispatch``).
``escalated`` (上报上级数)
    Received, and escalated to the county centre or 12345 at least once.
``due`` (应结案数)
    Its deadline falls in the period and has passed by ``as_of``
    (``start <= deadline_at < end``, ``deadline_at <= as_of``), and it is not rejected
    (不予受理, merged duplicates included). Suspended (挂账) and escalated events are due.
``closed`` (结案数)
    Due, and closed (结案, state ``closed``) by ``as_of``, on time or late.
``closed_on_time`` (按期结案数)
    Closed, with ``closed_at <= deadline_at`` (the deadline after extensions).
``reworked`` (返工数) / ``extended`` (延期数)
    Due, and sent back by the verifier (``rework``) / given more time (``extend``) at
    least once.
``overdue`` (当前超期数)
    At ``as_of``: open in a state that runs against the deadline
    (:data:`gridgeo.events.workflow.OVERDUE_STATES`: not resolved, not suspended) and
    past a deadline that fell before the end of the period. A snapshot: it includes
    events due before the period and still open, and none due after it.
``rated`` (评价数) / ``satisfied`` (满意数)
    Closed (as above), and rated by the reporter by ``as_of`` / rated 4 or 5.

Times and satisfaction, over the closed events: ``hours_to_close_mean`` and
``hours_to_close_p90`` (``closed_at - reported_at`` in hours; p90 by linear
interpolation), ``satisfaction_mean`` (1 to 5, over the rated ones).

Rates (NaN when the denominator is 0), as docs/design.md has them:
立案率 ``acceptance_rate`` = accepted ÷ received; 派遣率 ``dispatch_rate`` = dispatched ÷
accepted; 结案率 ``closure_rate`` = closed ÷ due; 按期结案率 ``on_time_rate`` = closed on
time ÷ due; 返工率 ``rework_rate`` = reworked ÷ due; 延期率 ``extension_rate`` = extended ÷
due; and 满意率 ``satisfied_rate`` = satisfied ÷ rated.

Groupings
---------
``grid``
    The event's ``grid_code`` (where the pipeline placed it; see
    :mod:`gridgeo.assess.facts` for events it never saw). Events in no grid (outside the
    jurisdiction, unlocated) form one row with code None, so that the rows add up to
    the total.
``village`` / ``township``
    The first 12 / 9 digits of the grid code (grid codes extend their village's code).
    Each is exactly the sum of its grids.
``worker``
    Everyone on the staff roster (grid heads, full- and part-time workers,
    instructors; ``roles=`` narrows it), each with every event in the grids they serve
    (``staff.grid_code``, the roster as it is now). A person serving several grids
    counts the events of all of them, once each; an event counts once for each person
    of its grid. So the worker rows do not add up to the total. ``self_reported`` is
    the events the person reported in the period (``reporter_staff_code``).
``department`` / ``platform`` / ``category``
    The department and platform the event is (last) routed or dispatched to, and its
    category (事项). None: not routed.
``total``
    One row.

Everything is computed from one SQL read per report (:func:`~gridgeo.assess.facts.read_facts`,
the per-event action flags aggregated in the database) and vectorised pandas; no
Python loop runs over events.
"""

from gridgeo.assess.facts import FLAG_BITS, add_cohorts, derivable_flags, locate_unplaced, read_facts
from gridgeo.assess.indicators import (
    COUNTS,
    DEFINITIONS,
    GROUPINGS,
    LABELS,
    RATES,
    assess,
    assess_many,
    parse_groupings,
    to_chinese,
)
from gridgeo.assess.periods import CST, InvalidPeriod, InvalidQuery, Period, default_period, parse_period
from gridgeo.assess.ranking import RANKABLE, rank

__all__ = [
    "COUNTS",
    "CST",
    "DEFINITIONS",
    "FLAG_BITS",
    "GROUPINGS",
    "InvalidPeriod",
    "InvalidQuery",
    "LABELS",
    "Period",
    "RANKABLE",
    "RATES",
    "add_cohorts",
    "assess",
    "assess_many",
    "default_period",
    "derivable_flags",
    "locate_unplaced",
    "parse_groupings",
    "parse_period",
    "rank",
    "read_facts",
    "to_chinese",
]
