"""The life cycle as a state machine: every transition allowed and refused (pure, no store)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gridgeo.errors import IllegalTransition, RoleNotAllowed
from gridgeo.events.workflow import ACTIONS, FINAL_STATES, WORKFLOW_ACTORS, STATES, Machine, allowed_actions, transition
from helpers.life_cycle import EXPECTED, OPEN

ALLOWED = {(f, a): (t, roles) for f, a, t, roles in EXPECTED}


def test_the_table_is_the_design():
    table = {(f, a.name) for a in ACTIONS.values() for f in a.moves}
    assert table == set(ALLOWED)
    assert set(WORKFLOW_ACTORS) == {"command_room", "leadership", "platform_office", "department", "grid_worker",
                                    "reporter", "county"}
    assert FINAL_STATES == {"closed", "rejected"}


@pytest.mark.parametrize("state,action", sorted(ALLOWED), ids=lambda v: v)
def test_allowed_transition(state, action):
    target, roles = ALLOWED[(state, action)]
    pending = ACTIONS[action].pending is True  # an answer to an extension request needs one waiting
    for role in WORKFLOW_ACTORS:
        if role in roles:
            assert transition(state, action, role, pending=pending) == target
        else:
            with pytest.raises(RoleNotAllowed) as exc:
                transition(state, action, role, pending=pending)
            assert set(exc.value.roles) == roles and exc.value.status == 403


REFUSED = [(s, a) for s, a in itertools.product(STATES, ACTIONS) if (s, a) not in ALLOWED]


@pytest.mark.parametrize("state,action", REFUSED, ids=lambda v: v)
def test_refused_transition_says_what_is_allowed(state, action):
    with pytest.raises(IllegalTransition) as exc:
        transition(state, action, "command_room", event="E1")
    err = exc.value
    assert err.status == 409 and err.state == state
    expected = {a: roles for (s, a), (_, roles) in ALLOWED.items() if s == state and not ACTIONS[a].pending}
    assert {a: set(r) for a, r in err.allowed.items()} == expected
    for a in expected:
        assert a in str(err)


def test_major_events_go_to_the_leadership_first():
    assert transition("reported", "accept", "command_room", major=True) == "reviewing"
    assert transition("reviewing", "review", "leadership", major=True) == "accepted"
    with pytest.raises(IllegalTransition):
        transition("reviewing", "dispatch", "command_room", major=True)
    assert transition("accepted", "dispatch", "command_room", major=True) == "dispatched"


def test_rating_is_once():
    assert transition("closed", "rate", "reporter") == "closed"
    with pytest.raises(IllegalTransition, match="once"):
        transition("closed", "rate", "reporter", done={"rate"})
    assert allowed_actions("closed", done={"rate"}) == []


def test_unknown_action_and_role():
    with pytest.raises(IllegalTransition, match="unknown action"):
        transition("reported", "teleport", "command_room")
    with pytest.raises(RoleNotAllowed, match="unknown role"):
        transition("reported", "accept", "mayor")


def test_allowed_actions_by_role():
    assert allowed_actions("dispatched", "department") == ["return", "start", "ask_extension"]
    assert set(allowed_actions("dispatched")) == {"return", "escalate", "start", "extend", "ask_extension",
                                                  "supervise", "locate"}
    # one extension request waits at a time; only then may it be answered
    assert allowed_actions("in_progress", "department", pending=True) == ["resolve"]
    assert {"grant_extension", "refuse_extension"} <= set(allowed_actions("in_progress", "platform_office",
                                                                            pending=True))
    with pytest.raises(IllegalTransition) as exc:
        transition("in_progress", "grant_extension", "command_room")
    assert exc.value.zh == "没有待审批的延期申请"
    with pytest.raises(IllegalTransition) as exc:
        transition("in_progress", "ask_extension", "department", pending=True)
    assert "待审批" in exc.value.zh
    with pytest.raises(RoleNotAllowed) as exc:
        transition("in_progress", "ask_extension", "grid_worker")
    assert exc.value.zh == "网格员不能“申请延期”，此操作由责任部门办理"
    assert allowed_actions("rejected") == []


def test_machine_step_agrees_with_transition_everywhere():
    m = Machine()
    combos = list(itertools.product(STATES, ACTIONS, WORKFLOW_ACTORS, (False, True), (False, True), (False, True)))
    s = np.array([m.state_ix[c[0]] for c in combos], dtype=np.int16)
    a = np.array([m.action_ix[c[1]] for c in combos], dtype=np.int16)
    r = np.array([m.role_ix[c[2]] for c in combos], dtype=np.int16)
    major = np.array([c[3] for c in combos])
    done = np.array([c[4] for c in combos])
    pending = np.array([c[5] for c in combos])
    new, illegal, forbidden = m.step(s, a, r, major, done, pending)
    for k, (state, action, role, maj, dn, pend) in enumerate(combos):
        try:
            target = transition(state, action, role, major=maj, done={"rate"} if dn else set(), pending=pend)
        except IllegalTransition:
            assert illegal[k] and new[k] == s[k], combos[k]
        except RoleNotAllowed:
            assert forbidden[k] and not illegal[k] and new[k] == s[k], combos[k]
        else:
            assert not illegal[k] and not forbidden[k] and m.states[new[k]] == target, combos[k]
    # unknown action or role codes are refused, never crash
    new, illegal, forbidden = m.step(np.array([0]), np.array([-1]), np.array([0]), np.array([False]),
                                     np.array([False]))
    assert illegal[0]


def test_account_roles_act_as_their_workflow_actor():
    """The three role vocabularies are distinct, and the workflow answers about every
    account role: the operational ones act as themselves, admin and planner take no action."""
    from gridgeo.events.workflow import ACTOR_OF_ACCOUNT, EXTERNAL_ACTORS, actor_for
    from gridgeo.layers import ACCOUNT_ROLES, STAFF_ROLES

    assert set(ACTOR_OF_ACCOUNT) == set(ACCOUNT_ROLES)
    assert not set(STAFF_ROLES) & (set(ACCOUNT_ROLES) | set(WORKFLOW_ACTORS))
    assert {a for a in ACTOR_OF_ACCOUNT.values() if a} == set(WORKFLOW_ACTORS) - {"reporter", "county"}
    assert EXTERNAL_ACTORS == {"reporter", "county"}
    for role, actor in ACTOR_OF_ACCOUNT.items():
        if actor is None:
            assert allowed_actions("reported", role) == []
            with pytest.raises(RoleNotAllowed, match="takes no action on events") as exc:
                transition("reported", "accept", role)
            assert "unknown" not in str(exc.value) and exc.value.roles == list(WORKFLOW_ACTORS)
        else:
            assert actor_for(role) == actor
            assert allowed_actions("dispatched", role) == allowed_actions("dispatched", actor)
    assert ACTOR_OF_ACCOUNT["admin"] is None and ACTOR_OF_ACCOUNT["planner"] is None


def test_transition_and_allowed_actions_are_the_machine():
    """One implementation: for every state, actor, major flag and rating, the actions
    transition accepts are exactly allowed_actions, and both agree with Machine.step."""
    from gridgeo.events.workflow import MACHINE

    for state, role, major, rated, pending in itertools.product(STATES, WORKFLOW_ACTORS, (False, True),
                                                                (False, True), (False, True)):
        done = {"rate"} if rated else set()
        accepted = []
        for action in ACTIONS:
            try:
                transition(state, action, role, major=major, done=done, pending=pending)
            except (IllegalTransition, RoleNotAllowed):
                continue
            accepted.append(action)
        assert accepted == allowed_actions(state, role, major=major, done=done, pending=pending)
        s = np.full(len(ACTIONS), MACHINE.state_ix[state], dtype=np.int16)
        _, illegal, forbidden = MACHINE.step(s, np.arange(len(ACTIONS), dtype=np.int16),
                                             np.full(len(ACTIONS), MACHINE.role_ix[role], dtype=np.int16),
                                             np.full(len(ACTIONS), major), MACHINE.once & rated,
                                             np.full(len(ACTIONS), pending))
        assert MACHINE.actions[~illegal & ~forbidden].tolist() == accepted
