"""The event life cycle as an explicit state machine (DESIGN.md, "Event life cycle").

States and actions are data: :data:`STATES`, :data:`ROLES` and :data:`ACTIONS`. Each
action lists the states it may be taken in, the state it leads to, and the roles that
may take it. :func:`transition` checks one action; :class:`Machine` holds the same
table as integer arrays for batch work (the replay of a year of trails).

::

    reported ─accept─▶ accepted ─dispatch─▶ dispatched ─start─▶ in_progress ─resolve─▶ resolved
       │  (major: ─accept─▶ reviewing ─review─▶ accepted)        ▲   │ suspend/resume   │ verify
       │                    │ escalate          │ return         │   ▼                  ▼
       └reject/merge─▶ rejected   escalated ─start┘  returned ─dispatch   suspended     verified ─close─▶ closed
                                                                       (rework: resolved ─▶ in_progress)

Actions that keep the state: ``extend`` (moves the deadline), ``supervise`` (督办, a chase),
``locate`` (the command room places an unlocated event), ``rate`` (the reporter's
satisfaction, once, on a closed event).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from gridgeo.errors import IllegalTransition, RoleNotAllowed

__all__ = [
    "ACTIONS",
    "FINAL_STATES",
    "OPEN_STATES",
    "OVERDUE_STATES",
    "ROLES",
    "STATES",
    "Action",
    "Machine",
    "allowed_actions",
    "transition",
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

#: Role code -> label. Authentication comes later (issue 9); for now the caller names
#: its role and the machine checks it.
ROLES: dict[str, str] = {
    "command_room": "综合指挥室",
    "leadership": "领导小组",
    "platform_office": "平台协调办公室",
    "department": "责任部门",
    "grid_worker": "网格员",
    "reporter": "反映人",
}

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
        Roles that may take it.
    major_moves
        Overrides of ``moves`` for events of a major category (重大事项), which go to
        the leadership group first.
    needs
        Fields the action's ``data`` must carry.
    once
        The action may be taken once per event (the rating).
    """

    name: str
    label: str
    moves: Mapping[str, str]
    roles: tuple[str, ...]
    major_moves: Mapping[str, str] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    once: bool = False

    def target(self, state: str, *, major: bool = False) -> str | None:
        if major and state in self.major_moves:
            return self.major_moves[state]
        return self.moves.get(state)


def _stay(*states: str) -> dict[str, str]:
    return {s: s for s in states}


_OPEN = tuple(s for s in STATES if s not in FINAL_STATES)

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
        Action("escalate", "上报", {s: "escalated" for s in
                                  ("accepted", "reviewing", "dispatched", "returned", "in_progress", "suspended")},
               ("command_room",)),
        Action("start", "处置", {"dispatched": "in_progress", "escalated": "in_progress"}, ("department",)),
        Action("suspend", "挂账", {"in_progress": "suspended"}, ("command_room",)),
        Action("resume", "恢复办理", {"suspended": "in_progress"}, ("command_room",)),
        Action("resolve", "办结", {"in_progress": "resolved"}, ("department",)),
        Action("rework", "返工", {"resolved": "in_progress"}, ("grid_worker", "command_room")),
        Action("verify", "核查", {"resolved": "verified"}, ("grid_worker",)),
        Action("close", "结案", {"verified": "closed"}, ("command_room",)),
        Action("extend", "延期", _stay("dispatched", "in_progress", "escalated", "suspended", "resolved"),
               ("platform_office", "command_room"), needs=("hours",)),
        Action("supervise", "督办", _stay(*_OPEN), ("command_room",)),
        Action("locate", "定位", _stay(*_OPEN), ("command_room", "grid_worker")),
        Action("rate", "满意度评价", _stay("closed"), ("reporter",), needs=("satisfaction",), once=True),
    ]
}

#: The action an intake writes as the first line of every history.
REPORT = "report"


def allowed_actions(state: str, role: str | None = None, *, major: bool = False,
                    done: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Actions that may be taken in ``state`` (by ``role``, when given).

    ``done`` holds the actions already taken on the event, for once-only actions.
    """
    out = []
    for a in ACTIONS.values():
        if a.target(state, major=major) is None:
            continue
        if a.once and a.name in done:
            continue
        if role is not None and role not in a.roles:
            continue
        out.append(a.name)
    return out


def transition(state: str, action: str, role: str, *, major: bool = False,
               done: frozenset[str] | set[str] = frozenset(), event: str | None = None) -> str:
    """The state ``action`` by ``role`` leads to from ``state``.

    Raises
    ------
    IllegalTransition
        The action does not exist, is not allowed in ``state``, or was taken already
        (once-only). ``exc.allowed`` maps each allowed action to the roles that may
        take it; ``exc.state`` is the current state.
    RoleNotAllowed
        The action is allowed in ``state`` but not for ``role``.
    """
    if role not in ROLES:
        raise RoleNotAllowed(f"unknown role {role!r}: use one of {', '.join(ROLES)}", roles=list(ROLES))
    spec = ACTIONS.get(action)
    target = spec.target(state, major=major) if spec else None
    if spec is not None and spec.once and action in done:
        target = None
    if target is None:
        allowed = {a: list(ACTIONS[a].roles) for a in allowed_actions(state, major=major, done=done)}
        what = f"event {event}" if event else "an event"
        why = "unknown action" if spec is None else f"not allowed on {what} in state {state!r}"
        if spec is not None and spec.once and action in done:
            why = f"already taken on {what} (once only)"
        listing = ", ".join(f"{a} ({'/'.join(r)})" for a, r in allowed.items()) or "none"
        raise IllegalTransition(f"{action!r}: {why}; allowed now: {listing}",
                                state=state, allowed=allowed)
    if role not in spec.roles:
        raise RoleNotAllowed(
            f"role {role!r} may not {action!r}; roles allowed: {', '.join(spec.roles)}",
            roles=list(spec.roles))
    return target


class Machine:
    """The table of :data:`ACTIONS` as integer arrays, for vectorised transitions.

    ``next[major, state, action]`` is the index of the state reached, -1 where the
    action is not allowed; ``role_ok[action, role]`` says who may take it.
    """

    def __init__(self) -> None:
        self.states = np.array(list(STATES), dtype=object)
        self.actions = np.array(list(ACTIONS), dtype=object)
        self.roles = np.array(list(ROLES), dtype=object)
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

    def codes(self, values, index: Mapping[str, int]) -> np.ndarray:
        """Integer codes of ``values`` (-1 for unknown names)."""
        return np.array([index.get(v, -1) for v in values], dtype=np.int16)

    def step(self, state: np.ndarray, action: np.ndarray, role: np.ndarray, major: np.ndarray,
             done_once: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply one action to each of many events.

        Parameters
        ----------
        state, action, role : int arrays
            Codes (see :meth:`codes`); -1 marks an unknown action or role.
        major : bool array
        done_once : bool array
            The once-only action was taken already on this event.

        Returns
        -------
        new_state : int array
            The state reached; the old one where refused.
        illegal, forbidden : bool arrays
            Refused because the action is not allowed in the state (or unknown, or
            already taken once), or because the role may not take it.
        """
        known = (action >= 0) & (state >= 0)
        a = np.where(known, action, 0)
        s = np.where(known, state, 0)
        target = self.next[major.astype(np.intp), s, a]
        illegal = ~known | (target < 0) | (self.once[a] & done_once)
        r = np.where(role >= 0, role, 0)
        forbidden = ~illegal & ((role < 0) | ~self.role_ok[a, r])
        new = np.where(illegal | forbidden, state, target).astype(np.int16)
        return new, illegal, forbidden
