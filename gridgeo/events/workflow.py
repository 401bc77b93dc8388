"""The event life cycle as an explicit state machine (docs/design.md, "The life of an event").

States, actors and actions are data: :data:`STATES`, :data:`WORKFLOW_ACTORS` and
:data:`ACTIONS`. Each action lists the states it may be taken in, the state it leads to,
and the actors that may take it. :class:`Machine` holds that table as integer arrays and
applies it to many events at once (the replay of a year of trails); :func:`transition`
(one action) and :func:`allowed_actions` ask the same machine about one event, so there
is one implementation of the rules. The states derived from the table (final, open,
overdue, and the command room's queues) are defined here too, once.

Actors are the parts people play in the life cycle; user accounts have roles
(:data:`gridgeo.layers.ACCOUNT_ROLES`). :data:`ACTOR_OF_ACCOUNT` says which actor each
account role acts as: the five operational ones act as themselves, the administrator
and the planner take no action on events.

::

    reported ─accept─▶ accepted ─dispatch─▶ dispatched ─start─▶ in_progress ─resolve─▶ resolved
       │  (major: ─accept─▶ reviewing ─review─▶ accepted)        ▲   │ suspend/resume   │ verify
       │                    │ escalate          │ return         │   ▼                  ▼
       └reject/merge─▶ rejected   escalated ─start┘  returned ─dispatch   suspended     verified ─close─▶ closed
                                                                       (rework: resolved ─▶ in_progress)

Actions that keep the state: ``extend`` (moves the deadline), ``supervise`` (督办, a chase),
``ask_extension`` (申请延期: the department asks for hours, with a reason) answered by
``grant_extension`` (批准延期: the deadline moves by the hours asked) or ``refuse_extension``
(驳回延期申请, with a reason), both by whoever may ``extend``; one request waits at a time
(:attr:`Action.pending`),
``locate`` (the command room places an unlocated event), ``rate`` (the reporter's
satisfaction, once, on a closed event), ``county_update`` (the county platform / 12345
reports on an escalated event). ``county_close``: the county closes an escalated event
(escalated → closed). The county's actions come only through its signed callbacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from gridgeo.errors import IllegalTransition, RoleNotAllowed
from gridgeo.layers import ACCOUNT_ROLES

__all__ = [
    "ACTIONS",
    "ACTOR_OF_ACCOUNT",
    "EXTERNAL_ACTORS",
    "FINAL_STATES",
    "MACHINE",
    "OPEN_STATES",
    "OVERDUE_STATES",
    "QUEUE_STATES",
    "RESOLVED_STATES",
    "ROUTABLE_STATES",
    "STATES",
    "UNDISPATCHED_STATES",
    "WORKFLOW_ACTORS",
    "Action",
    "Machine",
    "actor_for",
    "allowed_actions",
    "transition",
    "waiting_for",
]

#: State code -> label. The order is the usual order of the life cycle.
STATES: dict[str, str] = {
    "reported": "已上报",
    "reviewing": "领导小组研判",
    "accepted": "已受理",
    "dispatched": "已分流交办",
    "returned": "已退回",
    "in_progress": "处置中",
    "suspended": "挂账",
    "escalated": "已上报上级",
    "resolved": "已办结",
    "verified": "已核查",
    "closed": "已结案",
    "rejected": "不予受理",
}

#: States nothing leaves (rating aside).
FINAL_STATES = frozenset({"closed", "rejected"})
OPEN_STATES = frozenset(STATES) - FINAL_STATES
#: States in which a missed deadline makes an event overdue: not yet resolved, and
#: not parked. A suspended (挂账) event waits on the county and is listed apart; an
#: escalated one is still tracked, so it counts.
OVERDUE_STATES = frozenset(
    {"reported", "reviewing", "accepted", "dispatched", "returned", "in_progress", "escalated"}
)

#: The parts played in the life cycle (workflow actors), code -> label; the history
#: keeps the actor of every action.
WORKFLOW_ACTORS: dict[str, str] = {
    "command_room": "综合指挥室",
    "leadership": "领导小组",
    "platform_office": "平台协调办公室",
    "department": "责任部门",
    "grid_worker": "网格员",
    "reporter": "反映人",
    "county": "上级平台",
}

#: Actors outside the building, with no account: the reporter (who acts with the event's
#: token) and the county platform / 12345 (which acts only through its signed callback,
#: :func:`gridgeo.notify.handoff.accept_callback`).
EXTERNAL_ACTORS = frozenset({"reporter", "county"})

#: Reasons for a rejection (不予受理).
REJECT_REASONS = {
    "duplicate": "重复上报",
    "invalid": "无效信息",
    "untrue": "信息不实",
    "not_ours": "非本级事权",
    "other": "其他",
}


@dataclass(frozen=True)
class Action:
    """One action of the life cycle.

    Attributes
    ----------
    name, label
        Code name and Chinese label.
    moves
        From-state -> to-state; the action is allowed exactly in these states.
    roles
        Workflow actors (:data:`WORKFLOW_ACTORS`) that may take it.
    major_moves
        Overrides of ``moves`` for events of a major category (重大事项), which go to
        the leadership group first.
    needs
        Fields the action's ``data`` must carry.
    once
        The action may be taken once per event (the rating).
    pending
        True: allowed only while an extension request waits for its answer (approve,
        refuse); False: only while none waits (a new request); None: either way.
    """

    name: str
    label: str
    moves: Mapping[str, str]
    roles: tuple[str, ...]
    major_moves: Mapping[str, str] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    once: bool = False
    pending: bool | None = None

    def target(self, state: str, *, major: bool = False) -> str | None:
        if major and state in self.major_moves:
            return self.major_moves[state]
        return self.moves.get(state)


def _stay(*states: str) -> dict[str, str]:
    return {s: s for s in states}


_OPEN = tuple(s for s in STATES if s not in FINAL_STATES)

#: The extension (延期): who grants one and in which states; a request is answered by the same.
_EXTEND = Action("extend", "延期", _stay("dispatched", "in_progress", "escalated", "suspended", "resolved"),
                 ("platform_office", "command_room"))  # data.hours or data.days (service)

ACTIONS: dict[str, Action] = {
    a.name: a
    for a in [
        Action("accept", "受理", {"reported": "accepted"}, ("command_room",),
               major_moves={"reported": "reviewing"}),
        Action("reject", "不予受理", {"reported": "rejected", "reviewing": "rejected",
                                   "accepted": "rejected"}, ("command_room",), needs=("reason",)),
        Action("merge", "合并重复件", {"reported": "rejected", "reviewing": "rejected",
                                    "accepted": "rejected"}, ("command_room",), needs=("into",)),
        Action("review", "领导小组研判", {"reviewing": "accepted"}, ("leadership", "command_room")),
        Action("dispatch", "分流交办", {"accepted": "dispatched", "returned": "dispatched"},
               ("command_room", "platform_office")),
        Action("return", "退回", {"dispatched": "returned"}, ("department", "platform_office")),
        Action("escalate", "上报上级", {s: "escalated" for s in
                                  ("accepted", "reviewing", "dispatched", "returned", "in_progress", "suspended")},
               ("command_room",)),
        Action("start", "处置", {"dispatched": "in_progress", "escalated": "in_progress"}, ("department",)),
        Action("suspend", "挂账", {"in_progress": "suspended"}, ("command_room",)),
        Action("resume", "恢复办理", {"suspended": "in_progress"}, ("command_room",)),
        Action("resolve", "办结", {"in_progress": "resolved"}, ("department",)),
        Action("rework", "返工", {"resolved": "in_progress"}, ("grid_worker", "command_room")),
        Action("verify", "核查", {"resolved": "verified"}, ("grid_worker",)),
        Action("close", "结案", {"verified": "closed"}, ("command_room",)),
        _EXTEND,
        # a department asks (hours and a reason) while it holds the event; the approver answers
        Action("ask_extension", "申请延期", _stay("dispatched", "in_progress"), ("department",),
               needs=("hours",), pending=False),
        Action("grant_extension", "批准延期", _EXTEND.moves, _EXTEND.roles, pending=True),
        Action("refuse_extension", "驳回延期申请", _EXTEND.moves, _EXTEND.roles, pending=True),
        Action("supervise", "督办", _stay(*_OPEN), ("command_room",)),
        Action("locate", "定位", _stay(*_OPEN), ("command_room", "grid_worker")),
        Action("rate", "满意度评价", _stay("closed"), ("reporter",), needs=("satisfaction",), once=True),
        # the county platform / 12345 on an escalated event (its signed callbacks)
        Action("county_update", "上级平台反馈", _stay("escalated"), ("county",)),
        Action("county_close", "上级已办结", {"escalated": "closed"}, ("county",)),
    ]
}

#: The action an intake writes as the first line of every history.
REPORT = "report"


class Machine:
    """The table of :data:`ACTIONS` as integer arrays, for vectorised transitions.

    ``next[major, state, action]`` is the index of the state reached, -1 where the
    action is not allowed; ``role_ok[action, actor]`` says who may take it. Build it
    once: :data:`MACHINE` is the module's.
    """

    def __init__(self) -> None:
        self.states = np.array(list(STATES), dtype=object)
        self.actions = np.array(list(ACTIONS), dtype=object)
        self.roles = np.array(list(WORKFLOW_ACTORS), dtype=object)
        self.state_ix = {s: i for i, s in enumerate(self.states)}
        self.action_ix = {a: i for i, a in enumerate(self.actions)}
        self.role_ix = {r: i for i, r in enumerate(self.roles)}
        nxt = np.full((2, len(self.states), len(self.actions)), -1, dtype=np.int16)
        role_ok = np.zeros((len(self.actions), len(self.roles)), dtype=bool)
        for ai, a in enumerate(ACTIONS.values()):
            for major in (0, 1):
                for s, si in self.state_ix.items():
                    t = a.target(s, major=bool(major))
                    if t is not None:
                        nxt[major, si, ai] = self.state_ix[t]
            for r in a.roles:
                role_ok[ai, self.role_ix[r]] = True
        self.next = nxt
        self.role_ok = role_ok
        self.once = np.array([a.once for a in ACTIONS.values()], dtype=bool)
        self.needs_pending = np.array([a.pending is True for a in ACTIONS.values()], dtype=bool)
        self.bars_pending = np.array([a.pending is False for a in ACTIONS.values()], dtype=bool)

    def _pending_refused(self, action: np.ndarray, pending: np.ndarray) -> np.ndarray:
        """True where the action's :attr:`Action.pending` condition does not hold."""
        return (self.needs_pending[action] & ~pending) | (self.bars_pending[action] & pending)

    def codes(self, values, index: Mapping[str, int]) -> np.ndarray:
        """Integer codes of ``values`` (-1 for unknown names)."""
        return np.array([index.get(v, -1) for v in values], dtype=np.int16)

    def step(self, state: np.ndarray, action: np.ndarray, role: np.ndarray, major: np.ndarray,
             done_once: np.ndarray, pending: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply one action to each of many events.

        Parameters
        ----------
        state, action, role : int arrays
            Codes (see :meth:`codes`); -1 marks an unknown action or actor.
        major : bool array
        done_once : bool array
            The once-only action was taken already on this event.
        pending : bool array, optional
            An extension request waits for its answer on this event (default: none).

        Returns
        -------
        new_state : int array
            The state reached; the old one where refused.
        illegal, forbidden : bool arrays
            Refused because the action is not allowed in the state (or unknown, or
            already taken once), or because the actor may not take it.
        """
        known = (action >= 0) & (state >= 0)
        a = np.where(known, action, 0)
        s = np.where(known, state, 0)
        target = self.next[major.astype(np.intp), s, a]
        illegal = ~known | (target < 0) | (self.once[a] & done_once)
        if pending is None:
            pending = np.zeros(len(a), dtype=bool)
        illegal |= known & self._pending_refused(a, np.asarray(pending, dtype=bool))
        r = np.where(role >= 0, role, 0)
        forbidden = ~illegal & ((role < 0) | ~self.role_ok[a, r])
        new = np.where(illegal | forbidden, state, target).astype(np.int16)
        return new, illegal, forbidden

    def allowed(self, state: str, *, major: bool = False, done: frozenset[str] | set[str] = frozenset(),
                pending: bool = False) -> np.ndarray:
        """Bool per action (in :attr:`actions` order): allowed in ``state`` for someone
        (``pending``: an extension request waits for its answer)."""
        si = self.state_ix.get(state, -1)
        if si < 0:
            return np.zeros(len(self.actions), dtype=bool)
        taken = np.array([a in done for a in self.actions], dtype=bool)
        every = np.arange(len(self.actions))
        return ((self.next[int(major), si] >= 0) & ~(self.once & taken)
                & ~self._pending_refused(every, np.full(len(every), bool(pending))))


#: The machine, built once from :data:`ACTIONS`.
MACHINE = Machine()

#: The actor each account role (:data:`gridgeo.layers.ACCOUNT_ROLES`) acts as in the life
#: cycle; None: the role takes no action on events (it may still read them). No account
#: acts as an external actor (:data:`EXTERNAL_ACTORS`).
ACTOR_OF_ACCOUNT: dict[str, str | None] = {
    role: (role if role in WORKFLOW_ACTORS and role not in EXTERNAL_ACTORS else None) for role in ACCOUNT_ROLES
}


def actor_for(role: str | None) -> str:
    """The workflow actor ``role`` acts as: an actor itself, or an account role's
    (:data:`ACTOR_OF_ACCOUNT`).

    Raises
    ------
    RoleNotAllowed
        An account role that takes no action on events (``admin``, ``planner``), or a
        name that is neither an actor nor an account role.
    """
    if role in WORKFLOW_ACTORS:
        return role
    actors = list(WORKFLOW_ACTORS)
    if role in ACTOR_OF_ACCOUNT:
        raise RoleNotAllowed(
            f"the account role {role!r} ({ACCOUNT_ROLES[role]}) takes no action on events; "
            f"actions are taken by {', '.join(actors)}", roles=actors,
            zh=f"“{ACCOUNT_ROLES[role]}”角色不办理事件")
    raise RoleNotAllowed(f"unknown role {role!r}: use one of {', '.join(actors)} "
                         f"(account roles: {', '.join(ACCOUNT_ROLES)})", roles=actors,
                         zh="未知的角色，不能办理事件")


def allowed_actions(state: str, role: str | None = None, *, major: bool = False,
                    done: frozenset[str] | set[str] = frozenset(), pending: bool = False) -> list[str]:
    """Actions that may be taken in ``state`` (by ``role``, when given: a workflow actor
    or an account role; one that takes no action on events gets none).

    ``done`` holds the actions already taken on the event, for once-only actions;
    ``pending`` says an extension request waits for its answer.
    """
    ok = MACHINE.allowed(state, major=major, done=done, pending=pending)
    if role is not None:
        actor = role if role in WORKFLOW_ACTORS else ACTOR_OF_ACCOUNT.get(role)
        if actor is None:
            return []
        ok &= MACHINE.role_ok[:, MACHINE.role_ix[actor]]
    return MACHINE.actions[ok].tolist()


def _labels(roles) -> str:
    return "、".join(WORKFLOW_ACTORS.get(r, r) for r in roles)


def transition(state: str, action: str, role: str, *, major: bool = False,
               done: frozenset[str] | set[str] = frozenset(), event: str | None = None,
               pending: bool = False) -> str:
    """The state ``action`` by ``role`` leads to from ``state``: :meth:`Machine.step` for
    one event, with errors that say what is allowed (in English, and in Chinese as ``zh``).

    ``role`` is a workflow actor or an account role (:func:`actor_for`); ``pending``: an
    extension request waits for its answer on the event.

    Raises
    ------
    IllegalTransition
        The action does not exist, is not allowed in ``state``, was taken already
        (once-only), or needs (or forbids) a waiting extension request. ``exc.allowed``
        maps each allowed action to the actors that may take it; ``exc.state`` is the
        current state.
    RoleNotAllowed
        The action is allowed in ``state`` but not for ``role``, or ``role`` takes no
        action on events.
    """
    actor = actor_for(role)
    m = MACHINE
    new, illegal, forbidden = m.step(
        np.array([m.state_ix.get(state, -1)]), np.array([m.action_ix.get(action, -1)]),
        np.array([m.role_ix[actor]]), np.array([bool(major)]), np.array([action in done]),
        np.array([bool(pending)]))
    spec = ACTIONS.get(action)
    if illegal[0]:
        allowed = {a: list(ACTIONS[a].roles)
                   for a in allowed_actions(state, major=major, done=done, pending=pending)}
        what = f"event {event}" if event else "an event"
        why = "unknown action" if spec is None else f"not allowed on {what} in state {state!r}"
        zh = "未知的操作" if spec is None else f"事件{STATES.get(state, state)}，当前不能“{spec.label}”"
        if spec is not None and spec.once and action in done:
            why = f"already taken on {what} (once only)"
            zh = f"“{spec.label}”只能进行一次，已经做过"
        elif spec is not None and m.next[int(bool(major)), m.state_ix.get(state, 0), m.action_ix[action]] >= 0 \
                and spec.pending is not None:
            why = (f"no extension request waits for an answer on {what}" if spec.pending
                   else f"an extension request waits for its answer on {what} already")
            zh = "没有待审批的延期申请" if spec.pending else "已有一项延期申请待审批，请等候批复"
        listing = ", ".join(f"{a} ({'/'.join(r)})" for a, r in allowed.items()) or "none"
        raise IllegalTransition(f"{action!r}: {why}; allowed now: {listing}",
                                state=state, allowed=allowed, zh=zh)
    if forbidden[0]:
        raise RoleNotAllowed(
            f"role {role!r} may not {action!r}; roles allowed: {', '.join(spec.roles)}",
            roles=list(spec.roles),
            zh=f"{WORKFLOW_ACTORS.get(actor, actor)}不能“{spec.label}”，此操作由{_labels(spec.roles)}办理")
    return str(m.states[new[0]])


# -- states derived from the table, defined once ------------------------------------------

#: States an event has been resolved in (or since): what assessment counts as done.
RESOLVED_STATES = frozenset({"resolved", "verified", "closed"})
#: States before the first dispatch: no department has the event yet (the reporter's
#: view names none).
UNDISPATCHED_STATES = frozenset({"reported", "reviewing", "accepted"})
#: States in which placing the event anew (``locate``) routes it anew: not dispatched
#: yet, or returned by the department.
ROUTABLE_STATES = UNDISPATCHED_STATES | {"returned"}

#: The command room's queues (:func:`gridgeo.events.queries.command_room`): the states an
#: event waits in for each. ``to_dispatch`` and ``duplicates`` are where ``dispatch`` and
#: ``merge`` may be taken; ``outside`` holds events awaiting the escalation to 12345.
QUEUE_STATES: dict[str, frozenset[str]] = {
    "to_accept": frozenset(ACTIONS["accept"].moves),
    "unlocated": OPEN_STATES,
    "outside": frozenset({"reported", "accepted"}),
    "duplicates": frozenset(ACTIONS["merge"].moves),
    "to_review": frozenset(ACTIONS["review"].moves),
    "to_dispatch": frozenset(ACTIONS["dispatch"].moves),
    "to_close": frozenset(ACTIONS["close"].moves),
    # extension requests waiting for an answer (the events' ``extension_requested_hours``)
    "extension_requests": frozenset(ACTIONS["grant_extension"].moves),
}


def waiting_for(role: str | None) -> list[str]:
    """The states in which events wait for ``role`` (an account role or an actor): those
    where it may take an action that moves the event on (extend, supervise and the like,
    which keep the state, do not count). A task list is the events in these states."""
    actor = role if role in WORKFLOW_ACTORS else ACTOR_OF_ACCOUNT.get(role or "")
    if actor is None:
        return []
    return [s for s in STATES if any(actor in a.roles and a.target(s, major=m) not in (None, s)
                                     for a in ACTIONS.values() for m in (False, True))]
