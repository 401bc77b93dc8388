"""Every endpoint × every role: allowed or refused, and nothing leaks.

The table :data:`RULES` names, for each route of the app, the roles that may use it; a
route missing from the table fails the test, so a new endpoint cannot ship without a
decision. For every (route, role) the request is sent and:

- a refused role gets 401 (no token) or 403 (another role), or 404 for an event outside
  its scope (it must not learn that the event exists);
- an allowed role gets neither 401 nor 403;
- no answer to a scoped role holds the code of an event outside its scope, and no
  answer holds a reporter's full phone or name, or a household contact, unless the role
  needs them (gridgeo.auth.REPORTER_CONTACT_ROLES, HOUSEHOLD_CONTACT_ROLES).
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient

from gridgeo.api.deps import get_store
from gridgeo.api.main import create_app
from helpers.authn import headers_for
from gridgeo import auth
from gridgeo.auth import mask_name, mask_phone
from gridgeo.events.workflow import ACTIONS
from helpers.events_world import CST, G11, G12, G21, G22, INSIDE

ALL = {"anonymous", "admin", "planner", "command_room", "leadership", "platform_office", "department",
       "grid_worker"}
STAFF = ALL - {"anonymous"}
READERS = {"admin", "command_room", "leadership", "platform_office", "department", "grid_worker"}
EVERYTHING = {"admin", "command_room", "leadership"}
PLAN_READERS = {"planner", "admin", "command_room", "leadership"}
PLAN_WRITERS = {"planner", "admin"}
HOUSEHOLD_READERS = {"admin", "planner", "command_room", "leadership", "grid_worker"}

#: Scope of the scoped users (see the fixture): the grid worker of G11, the department
#: 综治办 (ZZ001), the stability platform office (ZZ001, ZZ002).
WORKER_GRIDS = [G11]
DEPARTMENT = "综治办"
PLATFORM = "stability"

#: One event per grid, each with its own reporter: (grid, category, department, platform).
EVENTS = [(G11, "ZZ001", "综治办", "stability"), (G12, "ZZ002", "司法所", "stability"),
          (G21, "ZF001", "综合行政执法中队", "enforcement"), (G22, "SC001", "市场监管所", "market")]


def _ev(i):
    return {"phone": f"1990000{i:04d}", "name": f"举报人{'甲乙丙丁'[i]}{'子丑寅卯'[i]}"}


def _jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (90, 90, 90)).save(buf, "JPEG")
    return buf.getvalue()


_JPEG = _jpeg()


# (method, path template) -> (roles allowed, request builder). The builder gets the
# context (event codes and tokens) and returns (url, kwargs for the client).
def _get(url):
    return lambda c: (url.format(**c), {})


def _post(url, body=None, form=None):
    return lambda c: (url.format(**c), {"json": body} if form is None else {"data": form})


RULES: dict[tuple[str, str], tuple[set, object]] = {
    ("GET", "/health"): (ALL, _get("/health")),
    ("GET", "/metrics"): (ALL, _get("/metrics")),
    ("GET", "/v1/grids"): (ALL, _get("/v1/grids")),
    ("GET", "/v1/grids/{code}"): (ALL, _get("/v1/grids/" + G11)),
    ("GET", "/v1/lookup"): (ALL, _get(f"/v1/lookup?lon={INSIDE[G11][0]}&lat={INSIDE[G11][1]}")),
    ("POST", "/v1/lookup"): (ALL, _post("/v1/lookup", {"points": [list(INSIDE[G12])]})),
    ("POST", "/v1/events"): (ALL, _post("/v1/events", {"source": "app", "category_code": "BM001",
                                                       "lon": INSIDE[G22][0], "lat": INSIDE[G22][1]})),
    ("GET", "/v1/events"): (READERS, _get("/v1/events?limit=1000")),
    ("GET", "/v1/events/{code}"): (READERS, _get("/v1/events/{e0}")),
    ("POST", "/v1/events/{code}/actions"): (
        {"command_room"},  # supervise: the command room's, on an event every reader may see
        _post("/v1/events/{e0}/actions", {"action": "supervise", "version": 1, "note": "督办"})),
    ("GET", "/v1/supervision"): (READERS, _get("/v1/supervision?limit=1000")),
    ("GET", "/v1/command-room"): (EVERYTHING, _get("/v1/command-room?limit=100")),
    ("GET", "/v1/events/{code}/status"): (ALL, _get("/v1/events/{e0}/status?token={t0}")),
    ("POST", "/v1/events/{code}/rating"): (ALL, _post("/v1/events/{e0}/rating",
                                                      {"token": "{t0}", "satisfaction": 5})),
    ("GET", "/v1/workflow"): (ALL, _get("/v1/workflow")),
    ("GET", "/v1/categories"): (ALL, _get("/v1/categories")),
    ("GET", "/v1/categories/{code}"): (ALL, _get("/v1/categories/ZZ001")),
    ("PUT", "/v1/categories/{code}"): ({"command_room", "admin"},
                                       lambda c: ("/v1/categories/ZZ002", {"json": {"deadline_hours": 72}})),
    ("GET", "/v1/plans"): (PLAN_READERS, _get("/v1/plans")),
    ("POST", "/v1/plans"): (PLAN_WRITERS, _post("/v1/plans", {"band": [5, 1]})),  # 422 once past the door
    ("GET", "/v1/plans/{ref}"): (PLAN_READERS, _get("/v1/plans/v1")),
    ("GET", "/v1/plans/{ref}/blocks"): (PLAN_READERS, _get("/v1/plans/v1/blocks")),
    ("POST", "/v1/plans/{ref}/publish"): (PLAN_WRITERS, _post("/v1/plans/v1/publish", {"nope": 1})),
    ("GET", "/v1/plans/{ref}/diff"): (PLAN_READERS, _get("/v1/plans/v1/diff?against=v1")),
    ("POST", "/v1/plans/{ref}/edits"): (PLAN_WRITERS, _post("/v1/plans/v1/edits", {"nope": 1})),
    ("GET", "/v1/plans/{ref}/staffing"): (PLAN_READERS, _get("/v1/plans/v1/staffing")),
    ("GET", "/v1/plans/{ref}/transition"): (PLAN_READERS, _get("/v1/plans/v1/transition")),
    ("POST", "/v1/plans/{ref}/split"): (PLAN_WRITERS, _post("/v1/plans/v1/split", {"nope": 1})),
    ("POST", "/v1/plans/{ref}/merge"): (PLAN_WRITERS, _post("/v1/plans/v1/merge", {"nope": 1})),
    ("POST", "/v1/plans/{ref}/undo"): (PLAN_WRITERS, _post("/v1/plans/v1/undo", {})),
    ("GET", "/v1/plans/{ref}/renumber"): (PLAN_READERS, _get("/v1/plans/v1/renumber")),
    ("GET", "/open311/v2/discovery.{fmt}"): (ALL, _get("/open311/v2/discovery.json")),
    ("GET", "/open311/v2/services.{fmt}"): (ALL, _get("/open311/v2/services.json")),
    ("GET", "/open311/v2/services/{service_code}.{fmt}"): (ALL, _get("/open311/v2/services/ZZ001.json")),
    ("GET", "/open311/v2/requests.{fmt}"): (READERS, _get("/open311/v2/requests.json")),
    ("GET", "/open311/v2/requests/{service_request_id}.{fmt}"): (READERS, _get("/open311/v2/requests/{e0}.json")),
    ("POST", "/open311/v2/requests.{fmt}"): (STAFF, _post("/open311/v2/requests.json", form={
        "service_code": "BM001", "lat": str(INSIDE[G22][1]), "long": str(INSIDE[G22][0])})),
    ("GET", "/maps/coverage"): (ALL, _get("/maps/coverage")),
    ("POST", "/maps/tickets"): (STAFF, _post("/maps/tickets")),
    ("GET", "/maps/workload"): (STAFF, _get("/maps/workload")),
    ("GET", "/maps/events"): (READERS, _get("/maps/events")),  # scoped to the reader
    ("GET", "/maps/patrols"): ({"grid_worker"} | EVERYTHING, _get("/maps/patrols")),  # a worker: their grids
    ("GET", "/maps/plans/{id}"): (PLAN_READERS, _get("/maps/plans/v1")),
    ("GET", "/maps/ground"): (STAFF, _get("/maps/ground?bbox=119.4,28.4,119.41,28.41")),  # any account
    ("GET", "/maps/assets/{path:path}"): (ALL, _get("/maps/assets/leaflet/leaflet.js")),
    ("GET", "/maps/basemap/{z}/{x}/{y}"): (ALL, _get("/maps/basemap/0/0/0")),  # 404 with no archive, for all
    ("GET", "/v1/stats/assessment"): (STAFF, _get("/v1/stats/assessment?period=2026")),
    ("GET", "/v1/stats/workload"): (STAFF, _get("/v1/stats/workload")),
    ("GET", "/v1/stats/coverage"): (STAFF, _get("/v1/stats/coverage")),
    ("GET", "/v1/me"): (STAFF, _get("/v1/me")),
    ("GET", "/v1/users"): ({"admin"}, _get("/v1/users")),
    ("POST", "/v1/users"): ({"admin"}, _post("/v1/users", {"username": "x", "role": "mayor"})),
    ("PATCH", "/v1/users/{username}"): ({"admin"}, lambda c: ("/v1/users/nobody", {"json": {"active": True}})),
    ("POST", "/v1/users/{username}/tokens"): ({"admin"}, _post("/v1/users/nobody/tokens", {"label": "x"})),
    ("GET", "/v1/tokens"): ({"admin"}, _get("/v1/tokens")),
    ("DELETE", "/v1/tokens/{token_id}"): ({"admin"}, lambda c: ("/v1/tokens/999999", {})),
    ("GET", "/v1/households"): (HOUSEHOLD_READERS, _get("/v1/households?limit=1000")),
    ("GET", "/ogc"): (ALL, _get("/ogc")),
    ("GET", "/ogc/api"): (ALL, _get("/ogc/api")),
    ("GET", "/ogc/conformance"): (ALL, _get("/ogc/conformance")),
    ("GET", "/ogc/collections"): (ALL, _get("/ogc/collections")),
    ("GET", "/ogc/collections/{collection_id}"): (ALL, _get("/ogc/collections/events")),
    ("GET", "/ogc/collections/{collection_id}/items"): (READERS, _get("/ogc/collections/events/items")),
    ("GET", "/ogc/collections/{collection_id}/items/{feature_id}"): (READERS, _get("/ogc/collections/events/items/{e0}")),
    ("POST", "/v1/webhooks"): ({"admin"}, _post("/v1/webhooks", {"url": "ftp://nowhere", "event_types": ["*"]})),
    ("GET", "/v1/webhooks"): ({"admin"}, _get("/v1/webhooks")),
    ("DELETE", "/v1/webhooks/{hook_id}"): ({"admin"}, lambda c: ("/v1/webhooks/999999", {})),
    ("POST", "/v1/channels"): ({"admin"}, _post("/v1/channels", {"name": "x", "url": "nothing://x", "role": "admin"})),
    ("GET", "/v1/channels"): ({"admin"}, _get("/v1/channels")),
    ("DELETE", "/v1/channels/{channel_id}"): ({"admin"}, lambda c: ("/v1/channels/999999", {})),
    ("GET", "/v1/deliveries"): (EVERYTHING, _get("/v1/deliveries")),
    ("POST", "/v1/deliveries/{delivery_id}/retry"): ({"admin"}, _post("/v1/deliveries/999999/retry")),
    # signed by the county (Standard Webhooks), not by a token: unsigned, everyone gets 401
    ("POST", "/v1/escalations/callback"): (set(), _post("/v1/escalations/callback", {"event_code": "{e0}",
                                                                                      "status": "closed"})),
    ("GET", "/tiles/{layer}/{z}/{x}/{y}.mvt"): (ALL, _get("/tiles/grids/0/0/0.mvt")),
    # photos: read as the event (anonymous without the reporter's token: 404); added by the
    # roles that act on events, in their scope; deleted by the command room
    ("GET", "/v1/events/{code}/photos"): (READERS, _get("/v1/events/{e0}/photos")),
    ("POST", "/v1/events/{code}/photos"): ({"command_room", "grid_worker", "department", "platform_office"},
                                           lambda c: (f"/v1/events/{c['e0']}/photos",
                                                      {"files": {"file": ("a.jpg", _JPEG, "image/jpeg")}})),
    ("GET", "/v1/events/{code}/photos/{photo_id}"): (READERS, _get("/v1/events/{e0}/photos/1")),
    ("GET", "/v1/events/{code}/photos/{photo_id}/thumbnail"): (READERS, _get("/v1/events/{e0}/photos/1/thumbnail")),
    ("DELETE", "/v1/events/{code}/photos/{photo_id}"): ({"command_room"}, lambda c: (f"/v1/events/{c['e0']}/photos/999999", {})),
    # patrols and check-ins: the grid worker's; the lists also for those who see every event
    ("POST", "/v1/patrols"): ({"grid_worker"}, _post("/v1/patrols", {"points": [
        [INSIDE[G11][0], INSIDE[G11][1], 1_790_000_000_000], [INSIDE[G11][0] + 1e-4, INSIDE[G11][1], 1_790_000_010_000]]})),
    ("GET", "/v1/patrols"): ({"grid_worker"} | EVERYTHING, _get("/v1/patrols")),
    ("POST", "/v1/checkins"): ({"grid_worker"}, _post("/v1/checkins", {"lon": INSIDE[G11][0], "lat": INSIDE[G11][1]})),
    ("GET", "/v1/stats/patrols"): (STAFF, _get("/v1/stats/patrols?period=2026")),
    ("GET", "/openapi.json"): (ALL, _get("/openapi.json")),
    ("GET", "/docs"): (ALL, _get("/docs")),
    ("GET", "/redoc"): (ALL, _get("/redoc")),
}

#: The console's pages (gridgeo.console) work with a log-in session, never with a token: with a
#: bearer token and no session every page sends the browser to the log-in page and every
#: post is refused or sent there, for every role (tests/console checks each role's pages
#: with sessions). (method, path) -> the URL to try.
CONSOLE: dict[tuple[str, str], str] = {
    ("GET", "/"): "/", ("GET", "/login"): "/login", ("POST", "/login"): "/login",
    ("POST", "/logout"): "/logout", ("GET", "/password"): "/password", ("POST", "/password"): "/password",
    ("GET", "/command"): "/command", ("GET", "/dashboard"): "/dashboard", ("GET", "/events"): "/events",
    ("GET", "/events/bulk"): "/events/bulk", ("POST", "/events/bulk"): "/events/bulk",
    ("GET", "/events/{code}"): "/events/{e0}", ("GET", "/events/{code}/actions"): "/events/{e0}/actions",
    ("POST", "/events/{code}/actions"): "/events/{e0}/actions", ("GET", "/grid"): "/grid",
    ("GET", "/supervision"): "/supervision", ("GET", "/tasks"): "/tasks",
    ("GET", "/admin"): "/admin", ("POST", "/admin"): "/admin", ("GET", "/plans"): "/plans",
    ("POST", "/plans"): "/plans",
    ("GET", "/plans/{ref}"): "/plans/v1", ("POST", "/plans/{ref}/publish"): "/plans/v1/publish",
    ("GET", "/plans/{ref}/edit"): "/plans/v1/edit", ("GET", "/plans/{ref}/edit/state"): "/plans/v1/edit/state",
    ("GET", "/plans/{ref}/layers"): "/plans/v1/layers", ("POST", "/plans/{ref}/edit/{action}"): "/plans/v1/edit/move",
    ("GET", "/events/{code}/photos"): "/events/{e0}/photos", ("POST", "/events/{code}/photos"): "/events/{e0}/photos",
    ("GET", "/events/{code}/photos/{photo_id}"): "/events/{e0}/photos/1",
    ("GET", "/events/{code}/photos/{photo_id}/thumbnail"): "/events/{e0}/photos/1/thumbnail",
    ("GET", "/field"): "/field", ("GET", "/field/data"): "/field/data",
    ("POST", "/field/events"): "/field/events",
    ("POST", "/field/events/{code}/actions"): "/field/events/{e0}/actions",
    ("POST", "/field/patrols"): "/field/patrols", ("POST", "/field/checkins"): "/field/checkins",
    ("GET", "/field/manifest.webmanifest"): "/field/manifest.webmanifest", ("GET", "/sw.js"): "/sw.js",
}

#: Console routes that anyone may fetch: the phone app's manifest and service worker hold no
#: data (a browser fetches a manifest without credentials).
CONSOLE_PUBLIC = {"/field/manifest.webmanifest", "/sw.js"}

#: Routes whose credential is a signature, not a token.
SIGNED = {"/v1/escalations/callback"}

#: Served by the documentation machinery, not gridgeo's routes.
_IGNORED = {"/docs/oauth2-redirect", "/static-offline-docs/{path:path}", "/static-offline-docs"}


def _routes(app) -> set[tuple[str, str]]:
    """(method, path) of every route, included routers walked (FastAPI >= 0.16x wraps
    them), plus every operation of the OpenAPI document."""
    out = set()

    def walk(routes, prefix=""):
        for r in routes:
            if hasattr(r, "original_router"):
                walk(r.original_router.routes, prefix + getattr(r.include_context, "prefix", ""))
                continue
            path = getattr(r, "path", None)
            if path is None or path in _IGNORED or path.startswith("/static"):
                continue
            for m in getattr(r, "methods", None) or ():
                if m not in ("HEAD", "OPTIONS"):
                    out.add((m, prefix + path))

    walk(app.routes)
    for path, ops in app.openapi()["paths"].items():
        out |= {(m.upper(), path) for m in ops}
    return out


@pytest.fixture
def setup(world):
    from sqlalchemy import select, update

    from gridgeo.store import schema

    h = schema.households
    with world.engine.begin() as conn:  # contacts for every household of the tiny township
        for i, hid in enumerate(conn.execute(select(h.c.id).order_by(h.c.id)).scalars()):
            conn.execute(update(h).where(h.c.id == hid).values(contact_name=f"住户{'甲乙丙丁戊己庚'[i % 7]}{i}",
                                                               contact_phone=f"1771234{i:04d}"))
    app = create_app()
    app.dependency_overrides[get_store] = lambda: world
    who = {
        "anonymous": {},
        "admin": headers_for(world, "admin"),
        "planner": headers_for(world, "planner"),
        "command_room": headers_for(world, "command_room"),
        "leadership": headers_for(world, "leadership"),
        "platform_office": headers_for(world, "platform_office", platform=PLATFORM),
        "department": headers_for(world, "department", department=DEPARTMENT),
        "grid_worker": headers_for(world, "grid_worker", grids=WORKER_GRIDS),
    }
    with TestClient(app) as client:
        ctx, events = {}, {}
        long_ago = (dt.datetime.now(CST) - dt.timedelta(days=30)).isoformat()
        for i, (grid, cat, dept, platform) in enumerate(EVENTS):
            r = client.post("/v1/events", json={
                "source": "app", "category_code": cat, "lon": INSIDE[grid][0], "lat": INSIDE[grid][1],
                "reported_at": long_ago, "reporter_name": _ev(i)["name"], "reporter_phone": _ev(i)["phone"]})
            assert r.status_code == 201, r.text
            e = r.json()
            assert (e["grid_code"], e["department"], e["platform"]) == (grid, dept, platform)
            ctx[f"e{i}"], ctx[f"t{i}"] = e["code"], e["reporter_token"]
            events[e["code"]] = (grid, dept, platform)
        yield client, who, ctx, events, world


def _in_scope(role: str, scope: tuple) -> bool:
    grid, dept, platform = scope
    return {"grid_worker": grid in WORKER_GRIDS, "department": dept == DEPARTMENT,
            "platform_office": platform == PLATFORM}.get(role, role in EVERYTHING)


def test_every_route_has_a_rule(setup):
    client, *_ = setup
    routes = _routes(client.app)
    missing = routes - set(RULES) - set(CONSOLE)
    stale = (set(RULES) | set(CONSOLE)) - routes
    assert not missing, f"routes with no authorization rule in tests/api/test_authz.py: {sorted(missing)}"
    assert not stale, f"rules for routes that do not exist: {sorted(stale)}"


def test_endpoint_role_matrix_and_no_leaks(setup):
    client, who, ctx, events, store = setup
    households = store.read("households")
    contacts = [(n, p) for n, p in zip(households["contact_name"], households["contact_phone"]) if p]
    assert contacts, "the tiny township needs household contacts for the leak check"
    failures = []
    for (method, _template), (allowed, build) in sorted(RULES.items()):
        for role, headers in who.items():
            url, kw = build(ctx)
            if "json" in kw and isinstance(kw["json"], dict):  # fill tokens into bodies
                kw = {"json": {k: v.format(**ctx) if isinstance(v, str) else v for k, v in kw["json"].items()}}
            r = client.request(method, url, headers=headers, **kw)
            where = f"{method} {url} as {role}: {r.status_code}"
            if role in allowed:
                if r.status_code in (401, 403) or r.status_code >= 500:
                    failures.append(f"{where} (should be allowed) {r.text[:200]}")
            elif not (r.status_code == (401 if role == "anonymous" or _template in SIGNED else 403)
                      or (r.status_code == 404 and "{code}" in _template)):
                failures.append(f"{where} (should be refused)")
            text = r.text
            # 1. no event outside the role's scope
            if role in {"grid_worker", "department", "platform_office"}:
                for code, scope in events.items():
                    if not _in_scope(role, scope) and re.search(re.escape(code) + r"\b", text):
                        failures.append(f"{where}: leaks {code} (grid {scope[0]}) outside the scope")
            # 2. reporters' contacts only for those who need them, and only in their scope
            for i in range(len(EVENTS)):
                e = _ev(i)
                needs = role in auth.REPORTER_CONTACT_ROLES and _in_scope(role, events[ctx[f"e{i}"]])
                if not needs and (e["phone"] in text or e["name"] in text):
                    failures.append(f"{where}: shows reporter {i}'s name or phone unmasked")
            # 3. household contacts
            if role not in auth.HOUSEHOLD_CONTACT_ROLES:
                for name, phone in contacts:
                    if phone in text:
                        failures.append(f"{where}: shows a household contact ({mask_name(name)}, "
                                        f"{mask_phone(phone)}) unmasked")
    assert not failures, "\n".join(failures)


def test_console_pages_take_no_token(setup):
    client, who, ctx, events, store = setup
    for (method, _template), url in sorted(CONSOLE.items()):
        url = url.format(**ctx)
        for role, headers in who.items():
            r = client.request(method, url, headers=headers, data={"action": "close", "version": "1"},
                               follow_redirects=False)
            where = f"{method} {url} as {role}: {r.status_code}"
            if (url == "/login" and method == "GET") or url in CONSOLE_PUBLIC:
                assert r.status_code == 200, where
            elif method == "GET" or url != "/login":
                assert r.status_code == 303 and r.headers["location"].startswith("/login"), where
            else:  # the log-in form without its own CSRF token
                assert r.status_code == 403, where
            assert not any(re.search(re.escape(code) + r"\b", r.text) for code in events), where
    for code in events:  # nothing was done
        assert client.get(f"/v1/events/{code}", headers=who["command_room"]).json()["version"] == 1


def test_scoped_lists_hold_exactly_the_scope(setup):
    client, who, ctx, events, _ = setup
    for role in ("grid_worker", "department", "platform_office", "command_room"):
        page = client.get("/v1/events?limit=1000", headers=who[role]).json()
        got = {e["code"] for e in page["items"]}
        want = {c for c, scope in events.items() if _in_scope(role, scope)}
        assert got == want, role
        # asking for another grid gives nothing rather than someone else's events
        other = client.get(f"/v1/events?grid={G22}", headers=who[role]).json()
        assert other["total"] == (1 if role == "command_room" else 0), role
    # the supervision list (all four are overdue) is scoped the same way
    sup = client.get("/v1/supervision?limit=1000", headers=who["grid_worker"]).json()
    assert {e["code"] for e in sup["overdue"]["items"]} == {ctx["e0"]}


def test_staff_reporters_are_named_citizens_masked():
    """A grid worker's patrol report names the worker, whose name and work phone the roster
    publishes: masked like a citizen's, a department read 演******* for its colleague."""
    department = auth.Principal(username="d", name="部门", role="department", department="D1")
    worker = {"source": "patrol", "reporter_name": "演示网格员", "reporter_phone": "13800000001",
              "history": [{"action": "report", "actor": "演示网格员"}]}
    for source in ("patrol", "inspection", "department"):
        assert auth.mask_event({**worker, "source": source}, department)["reporter_name"] == "演示网格员"
    for source in ("hotline", "petition", "app"):
        seen = auth.mask_event({**worker, "source": source}, department)
        assert seen["reporter_name"] == "演****" and seen["reporter_phone"] == "138****0001", source
        assert seen["history"][0]["actor"] == "演****"


def test_masking(setup):
    client, who, ctx, events, _ = setup
    full = client.get(f"/v1/events/{ctx['e0']}", headers=who["command_room"]).json()
    assert full["reporter_phone"] == _ev(0)["phone"] and full["reporter_name"] == _ev(0)["name"]
    assert client.get(f"/v1/events/{ctx['e0']}", headers=who["grid_worker"]).json()["reporter_phone"] == _ev(0)["phone"]
    for role in ("department", "platform_office", "leadership", "admin"):
        e = client.get(f"/v1/events/{ctx['e0']}", headers=who[role]).json()
        assert e["reporter_phone"] == "199****0000" and e["reporter_name"] == "举****", role
        assert all(_ev(0)["name"] not in (h["actor"] or "") for h in e["history"]), role
    # households: the grid worker sees the contacts of their grid only, the planner none
    mine = client.get("/v1/households", headers=who["grid_worker"]).json()
    assert mine["total"] > 0 and {h["grid_code"] for h in mine["items"]} == {G11}
    assert all("*" not in (h["contact_phone"] or "") for h in mine["items"])
    assert client.get(f"/v1/households?grid={G21}", headers=who["grid_worker"]).json()["total"] == 0
    planner = client.get("/v1/households", headers=who["planner"]).json()
    assert planner["total"] >= mine["total"]
    assert all(h["contact_phone"] is None or "****" in h["contact_phone"] for h in planner["items"])


def test_tokens_revoked_expired_or_user_off(setup, monkeypatch):
    client, who, ctx, events, store = setup
    monkeypatch.setattr(auth, "CACHE_SECONDS", 0.0)
    auth._CACHE.clear()
    r = client.post("/v1/users", json={"username": "lisi", "name": "李四", "role": "grid_worker",
                                       "grids": [G12]}, headers=who["admin"])
    assert r.status_code == 201 and r.json()["grids"] == [G12]
    r = client.post("/v1/users/lisi/tokens", json={"label": "phone", "days": 1}, headers=who["admin"])
    token, tid = r.json()["token"], r.json()["id"]
    h = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/me", headers=h).json()["grids"] == [G12]
    # only the hash is stored
    listed = client.get("/v1/tokens?username=lisi", headers=who["admin"]).json()
    assert listed[0]["prefix"] == token[:12] and token not in str(listed)
    with store.engine.connect() as conn:
        dump = " ".join(str(r) for r in conn.exec_driver_sql("SELECT * FROM api_tokens").all())
    assert token not in dump and auth.hash_token(token) in dump
    # off, on, revoked
    assert client.patch("/v1/users/lisi", json={"active": False}, headers=who["admin"]).status_code == 200
    assert client.get("/v1/me", headers=h).status_code == 401
    client.patch("/v1/users/lisi", json={"active": True}, headers=who["admin"])
    assert client.get("/v1/me", headers=h).status_code == 200
    assert client.delete(f"/v1/tokens/{tid}", headers=who["admin"]).status_code == 204
    assert client.get("/v1/me", headers=h).status_code == 401
    # expired
    tok, _ = auth.create_token(store, "lisi", days=1e-9)
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {tok}"}).status_code == 401
    # malformed headers
    assert client.get("/v1/me", headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.get("/v1/me", headers={"Authorization": "Bearer"}).status_code == 401
    # every change is in the audit log
    log = store.audit_log(entity="user", entity_id="lisi")
    assert list(log["action"]) == ["create", "deactivate", "activate"]


def test_actions_act_in_the_tokens_role_within_scope(setup):
    client, who, ctx, events, _ = setup
    cr = who["command_room"]
    for action in ("accept", "dispatch"):
        v = client.get(f"/v1/events/{ctx['e0']}", headers=cr).json()["version"]
        assert client.post(f"/v1/events/{ctx['e0']}/actions", json={"action": action, "version": v},
                           headers=cr).status_code == 200
    v = client.get(f"/v1/events/{ctx['e0']}", headers=cr).json()["version"]
    # another department cannot start it: for them the event does not exist
    other = headers_for(client.app.dependency_overrides[get_store](), "department", department="司法所")
    r = client.post(f"/v1/events/{ctx['e0']}/actions", json={"action": "start", "version": v}, headers=other)
    assert r.status_code == 404
    r = client.post(f"/v1/events/{ctx['e0']}/actions", json={"action": "start", "version": v},
                    headers=who["department"])
    assert r.status_code == 200 and r.json()["history"][-1]["role"] == "department"
    # a role cannot be claimed in the body any more
    r = client.post(f"/v1/events/{ctx['e0']}/actions", json={"action": "resolve", "version": v + 1,
                                                              "role": "command_room"}, headers=who["department"])
    assert r.status_code == 422
    assert ACTIONS["start"].roles == ("department",)


def test_dispatch_stays_inside_the_rules(setup):
    """A platform office dispatches inside its platform to departments of the catalogue;
    the command room anywhere, but only to the catalogue's departments; admin takes no
    action. Refusals are 4xx saying what is allowed, and store nothing."""
    client, who, ctx, events, _ = setup
    cr, po = who["command_room"], who["platform_office"]
    code = ctx["e0"]  # ZZ001: stability, 综治办, in the platform office's scope

    def act(headers, action, data=None):
        v = client.get(f"/v1/events/{code}", headers=cr).json()["version"]
        return client.post(f"/v1/events/{code}/actions", json={"action": action, "version": v, "data": data or {}},
                           headers=headers)

    r = act(who["admin"], "accept")
    assert r.status_code == 403 and "takes no action on events" in r.json()["detail"]
    assert act(cr, "accept").status_code == 200
    v = client.get(f"/v1/events/{code}", headers=cr).json()["version"]
    for headers, data, status in [(po, {"platform": "market", "department": "市场监管所"}, 403),
                                  (po, {"department": "市场监管所"}, 403),
                                  (po, {"department": "不存在的部门"}, 422),
                                  (cr, {"department": "不存在的部门"}, 422),
                                  (cr, {"platform": "market", "department": "不存在的部门"}, 422),
                                  (cr, {"platform": "market", "department": "综治办"}, 422)]:
        r = act(headers, "dispatch", data)
        assert r.status_code == status, (data, r.text)
        body = r.json()
        if status == 403:
            assert body["allowed_roles"] == ["command_room"] and "inside its platform" in body["detail"]
        else:
            assert "市场监管所" in body["detail"] and "综治办" in body["detail"]  # the targets it may use
    e = client.get(f"/v1/events/{code}", headers=cr).json()
    assert (e["version"], e["state"], e["platform"], e["department"]) == (v, "accepted", "stability", "综治办")
    r = act(po, "dispatch", {"department": "司法所"})
    assert r.status_code == 200 and (r.json()["platform"], r.json()["department"]) == ("stability", "司法所")
    # the command room may send another event across platforms, to a department of the catalogue
    code = ctx["e1"]
    assert act(cr, "accept").status_code == 200
    r = act(cr, "dispatch", {"platform": "market", "department": "市场监管所"})
    assert r.status_code == 200 and (r.json()["platform"], r.json()["department"]) == ("market", "市场监管所")


def test_like_wildcards_in_filters_match_only_themselves(setup):
    """``%`` and ``_`` in a user's prefix filter are characters, not LIKE wildcards:
    ``village=%`` once matched every event (events, supervision, households, grids)."""
    client, who, ctx, events, _ = setup
    cr = who["command_room"]
    v1 = G11[:12]
    wild = ["%", "_", "%%", v1[:-1] + "_", v1[:3] + "%", "3311%", "_" * 12]
    assert client.get(f"/v1/events?village={v1}", headers=cr).json()["total"] == 2  # the filter works
    assert client.get(f"/v1/households?village={v1}", headers=cr).json()["total"] > 0
    assert len(client.get(f"/v1/grids?village={v1}").json()["features"]) == 2
    for text in wild:
        q = {"village": text}
        assert client.get("/v1/events", params=q, headers=cr).json()["total"] == 0, text
        sup = client.get("/v1/supervision", params=q, headers=cr).json()
        assert sup["overdue"]["total"] == 0, text
        assert client.get("/v1/households", params=q, headers=cr).json()["total"] == 0, text
        assert client.get("/v1/grids", params=q).json()["features"] == [], text
