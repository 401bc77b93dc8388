"""Events in the console: the command room's queues, search, one event with its actions,
bulk accept/dispatch, the supervision board and the task lists of platforms and departments.

Every read goes through :func:`gridgeo.auth.scoped` / :func:`gridgeo.auth.sees_event` and
:func:`gridgeo.auth.mask_event`; every action through
:func:`gridgeo.events.service.take_action` with the version the page showed. The buttons
on an event are the actions :mod:`gridgeo.events.workflow` allows the user's role now, each
asking only for what that action needs.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile

from gridgeo import auth
from gridgeo.auth import ALL_EVENTS
from gridgeo.console.photos import photos_of
from gridgeo.api.uploads import read_upload
from gridgeo.config import get_settings
from gridgeo.console.base import (Checked, Current, Refused, StoreDep, redirect, render,
                                  require_csrf, require_role)
from gridgeo.errors import (GridgeoError, IllegalTransition, InvalidEvent, MalformedBody, NotFound,
                            PhotoTooLarge, RoleNotAllowed, StaleVersion, UnsupportedPhoto)
from gridgeo.events import catalogue, queries
from gridgeo.events.routing import ESCALATION_TARGETS
from gridgeo.events.service import MAX_EXTENSION_HOURS, NOTE_REQUIRED, take_action
from gridgeo.events.workflow import (ACTIONS, ACTOR_OF_ACCOUNT, FINAL_STATES, REJECT_REASONS, STATES,
                                     WORKFLOW_ACTORS, waiting_for)
from gridgeo.layers import PLATFORMS, SOURCES
from gridgeo.photos import PHOTO_WRITERS, STAGE_STATES, STAGES, add_photos, ingest
from gridgeo.store import schema

router = APIRouter(include_in_schema=False)

#: The queues on the command room's page, in order, with their labels.
QUEUE_LABELS = {
    "to_accept": "待受理", "unlocated": "无法定位", "to_dispatch": "待分派", "to_close": "待结案",
    "due_soon": "临期", "overdue": "超期", "duplicates": "疑似重复", "to_review": "待研判",
    "outside": "辖区外", "extension_requests": "延期申请",
}
#: Actions the queue pages take on several events at once.
BULK = {"to_accept": "accept", "to_dispatch": "dispatch"}
#: Actions taken on several events at once, and the page each comes back to (督办: the board).
BULK_ACTIONS = {"accept": "/command?queue=to_accept", "dispatch": "/command?queue=to_dispatch",
                "supervise": "/supervision"}
PAGE = 50
LOCATED_BY = {"coordinates": "坐标", "snapped": "坐标（吸附）", "address": "地址匹配",
              "reporter_grid": "上报人网格", "outside": "辖区外", "unlocated": "未定位", "manual": "人工定位"}


def _page_number(request: Request) -> int:
    try:
        return max(1, min(int(request.query_params.get("page", "1")), 10_000))
    except ValueError:
        return 1


def _event_page(store, who, code: str) -> dict:
    """The event as this user may see it, or NotFound (outside the scope as unknown)."""
    principal = who.principal
    auth.event_filters(principal, "reading events")
    event = queries.get_event(store, code)
    if not auth.sees_event(principal, event):
        raise NotFound(f"no event {code!r}")
    return auth.mask_event(event, principal)


#: Where an event's page may say the user came from (``?from=``): the list's section, marked
#: in the navigation. Anything else: the role's home.
CAME_FROM = {"command": "/command", "events": "/events", "supervision": "/supervision", "tasks": "/tasks",
             "grid": "/grid", "dashboard": "/dashboard"}


def _section(request: Request, who, came: str | None) -> str:
    """The navigation's section for an event's page: the list the user came from, if it is
    one of :data:`CAME_FROM` and in the user's navigation, else the role's home."""
    from gridgeo.console.base import NAV, home

    role = who.principal.role
    mine = {p for p, _, roles in NAV if role in roles}
    path = CAME_FROM.get(came or "")
    return path if path in mine else home(role)


def grid_names(store, *lists) -> dict[str, str]:
    """code -> name of the grids of the events listed (one read; people read names)."""
    codes = sorted({e["grid_code"] for items in lists for e in items if e.get("grid_code")})
    if not codes:
        return {}
    frame = store.read("grids", where=schema.grids.c.code.in_(codes), geometry=False)
    return {c: n for c, n in zip(frame["code"], frame["name"]) if n}


def _readable(who) -> None:
    try:
        auth.event_filters(who.principal, "reading events")
    except RoleNotAllowed:
        raise Refused(403, "您的角色不查看事件") from None


# -- the command room ---------------------------------------------------------------------


@router.get("/command")
def command(request: Request, store: StoreDep, who: Current, result: dict | None = None):
    require_role(who, ALL_EVENTS)
    queue = request.query_params.get("queue", "to_accept")
    if queue not in QUEUE_LABELS:
        queue = "to_accept"
    page = _page_number(request)
    counts = queries.queue_counts(store)
    order = "deadline_at" if queue in ("due_soon", "overdue") else "reported_at"
    listing = queries.list_events(store, limit=PAGE, offset=(page - 1) * PAGE, order=order,
                                  **queries.QUEUES[queue])
    items = [auth.mask_event(e, who.principal) for e in listing["items"]]
    return render(request, "command.html", {
        "queues": QUEUE_LABELS, "queue": queue, "counts": counts, "items": items,
        "total": listing["total"], "page": page, "pages": max(1, -(-listing["total"] // PAGE)),
        "bulk": BULK.get(queue) if who.principal.role == "command_room" else None,
        "targets": _targets(store, who), "result": result, "names": grid_names(store, items)})


def _targets(store, who) -> dict[str, list[str]]:
    """Where this user may dispatch: the catalogue's platforms and departments (a platform
    office: its own platform; the core refuses anything else anyway)."""
    with store.engine.connect() as conn:
        targets = catalogue.dispatch_targets(conn)
    if who.principal.role == "platform_office":
        targets = {p: d for p, d in targets.items() if p == who.principal.platform}
    return targets


@router.post("/events/bulk")
def bulk(request: Request, store: StoreDep, who: Checked):
    """Accept, dispatch or supervise (督办) the ticked events, each at the version the page
    showed; the page they were ticked on again, with what was done and what was not."""
    require_role(who, {"command_room"})
    form = request.state.form
    action = form.get("action")
    if action not in BULK_ACTIONS:
        raise Refused(400, "批量操作只能是受理、分派或督办")
    data = _dispatch_data(form.get("target")) if action == "dispatch" else {}
    note = form.get("note") if action == "supervise" else None
    note = note[:4000] if isinstance(note, str) else None
    done, failed = [], []
    for item in form.getlist("item")[:200]:
        code, _, version = str(item)[:64].partition(":")
        try:
            if action == "dispatch" and not data:
                _not_back_to_the_returner(store, code)
            take_action(store, code, action, role=who.principal.role, actor=who.principal.actor,
                        version=int(version), note=note, data=dict(data),
                        allow=lambda row: auth.sees_event(who.principal, row))
            done.append(code)
        except (GridgeoError, ValueError) as exc:
            failed.append((code, _why(exc)))
    path, _, query = BULK_ACTIONS[action].partition("?")
    # The list's page, as if asked for (its address, so the navigation marks its section).
    scope = dict(request.scope, path=path, query_string=query.encode())
    result = {"action": ACTIONS[action].label, "done": done, "failed": failed}
    page = supervision if action == "supervise" else command
    response = page(Request(scope), store, who, result=result)
    response.headers["HX-Push-Url"] = BULK_ACTIONS[action]
    return response


def _not_back_to_the_returner(store, code: str) -> None:
    """A returned event is not sent back to the department that returned it by default: in a
    bulk dispatch "to each event's department" it is left for a choice of its own."""
    event = queries.get_event(store, code[:32], history=False)
    if event["state"] == "returned":
        raise InvalidEvent("a returned event needs a department chosen",
                           zh=f"已被{event.get('department') or '责任部门'}退回，请打开事件另选分派部门")


@router.get("/events/bulk")
def bulk_again(who: Current):
    return redirect("/command")


def _dispatch_data(target) -> dict:
    if not target:
        return {}
    platform, _, department = str(target).partition("|")
    return {"platform": platform, "department": department}


def _why(exc: Exception) -> str:
    """Why one event of a bulk action was not done: the core's Chinese message."""
    if isinstance(exc, NotFound):
        return "未找到该事件"
    if isinstance(exc, ValueError) and not isinstance(exc, GridgeoError):
        return "事件版本号有误，请刷新页面后重试"
    return _zh(exc)


#: What the console says when the core gave no Chinese message for a kind of refusal.
FALLBACK_ZH = {StaleVersion: "该事件已被他人修改，您的操作未执行：请重新载入后再操作",
               IllegalTransition: "当前状态下不能执行该操作", RoleNotAllowed: "您的角色不能执行该操作",
               NotFound: "未找到该事件"}


def _zh(exc: Exception) -> str:
    """The core's Chinese message for a refused action (never its English one)."""
    said = getattr(exc, "zh", None)
    if said:
        return said
    return next((text for kind, text in FALLBACK_ZH.items() if isinstance(exc, kind)),
                "填写的内容无法使用，请检查后重试")


# -- search ---------------------------------------------------------------------------------


@router.get("/events")
def search(request: Request, store: StoreDep, who: Current):
    _readable(who)
    q = request.query_params
    state = [s for s in q.getlist("state") if s in STATES]
    platform = [p for p in q.getlist("platform") if p in PLATFORMS]
    source = [s for s in q.getlist("source") if s in SOURCES]
    filters: dict[str, Any] = {"state": state or None, "source": source or None}
    if q.get("overdue") == "1":
        filters["overdue"] = True
    if q.get("text"):
        filters["text"] = q["text"][:100]
    grid = q.get("grid") or None
    page = _page_number(request)
    scope = auth.scoped(who.principal, platform=platform or None, grid=[grid] if grid else None,
                        department=None)
    listing = queries.list_events(store, limit=PAGE, offset=(page - 1) * PAGE, **filters, **scope)
    items = [auth.mask_event(e, who.principal) for e in listing["items"]]
    return render(request, "events.html", {
        "items": items, "total": listing["total"], "page": page,
        "pages": max(1, -(-listing["total"] // PAGE)), "states": STATES, "sources": SOURCES,
        "q": {"state": state, "platform": platform, "source": source, "overdue": q.get("overdue") == "1",
              "text": q.get("text", "")[:100], "grid": (grid or "")[:15]},
        "query": str(request.url.query), "names": grid_names(store, items)})


# -- one event ------------------------------------------------------------------------------


def _actions_for(event: dict, who) -> list[str]:
    """The actions this user's role may take on the event now (the workflow's answer)."""
    actor = ACTOR_OF_ACCOUNT.get(who.principal.role or "")
    return [a for a, roles in event.get("allowed_actions", {}).items() if actor in roles and a != "rate"]


def _grid_of(store, grid_code: str | None) -> tuple[str | None, str | None, tuple | None]:
    """The event's grid as GeoJSON (for the map), its name (people read names, not codes)
    and its bounds."""
    if not grid_code:
        return None, None, None
    frame = store.read("grids", where=schema.grids.c.code == grid_code)
    if not len(frame):
        return None, None, None
    return (frame[["code", "name", "geometry"]].to_json(drop_id=True), frame["name"].iloc[0] or None,
            tuple(frame.total_bounds))


def _ground_bbox(event: dict, grid_bounds) -> str | None:
    """The box whose ground (roads, rivers: ``/maps/ground``) the event's map draws: its grid's,
    with the point; None for an event placed nowhere."""
    boxes = [grid_bounds] if grid_bounds is not None else []
    if event.get("position"):
        p = event["position"]
        boxes.append((p["lon"], p["lat"], p["lon"], p["lat"]))
    if not boxes:
        return None
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    if x1 - x0 > 0.2 or y1 - y0 > 0.2:  # a grid is a neighbourhood; anything wider: around the point
        if not event.get("position"):
            return None
        x0 = x1 = event["position"]["lon"]
        y0 = y1 = event["position"]["lat"]
    return ",".join(f"{v:.6f}" for v in (x0, y0, x1, y1))


def _show(request: Request, store, who, code: str, *, message: str | None = None, error: str | None = None,
          status: int = 200, came: str | None = None, stale: bool = False):
    response = _show_page(request, store, who, code, message=message, error=error, status=status, came=came,
                          stale=stale)
    # A refused action answers with the event's page: its address is the event's, not the
    # action's (htmx puts it in the history; a reload then shows the event again).
    response.headers["HX-Push-Url"] = f"/events/{quote(code[:32], safe='')}" + (f"?from={came}" if came in CAME_FROM else "")
    return response


def _show_page(request: Request, store, who, code: str, *, message: str | None = None,
               error: str | None = None, status: int = 200, came: str | None = None, stale: bool = False):
    try:
        event = _event_page(store, who, code)
    except NotFound:
        raise Refused(404, f"未找到事件 {code}（不存在，或不在您的管辖范围内）") from None
    actions = _actions_for(event, who)
    candidates = [c["code"] if isinstance(c, dict) else str(c) for c in event.get("duplicate_candidates") or []]
    grid_json, grid_name, grid_bounds = _grid_of(store, event.get("grid_code"))
    section = _section(request, who, came)
    history = event.get("history") or []
    returned = next((h for h in reversed(history) if h["action"] == "return"), None) \
        if event["state"] == "returned" else None
    asked = next((h for h in reversed(history) if h["action"] == "ask_extension"), None) \
        if event.get("extension_requested_hours") is not None else None
    return render(request, "event.html", {
        "returned": returned, "asked": asked, "stale": stale,
        "approvers": "或".join(WORKFLOW_ACTORS[r] for r in ACTIONS["grant_extension"].roles),
        "ground_bbox": _ground_bbox(event, grid_bounds),
        "e": event, "actions": actions, "ACTIONS": ACTIONS, "message": message, "error": error,
        "targets": _targets(store, who) if "dispatch" in actions else {},
        "reject_reasons": REJECT_REASONS, "escalation": ESCALATION_TARGETS, "candidates": candidates,
        "note_required": NOTE_REQUIRED, "max_hours": MAX_EXTENSION_HOURS, "final": event["state"] in FINAL_STATES,
        "grid_json": grid_json, "grid_name": grid_name, "located_by": LOCATED_BY,
        "sources": SOURCES, "states": STATES, "position_json": json.dumps(event.get("position")),
        "attached": photos_of(store, who, event["code"]), "photo_stages": _photo_stages(event, who),
        "max_photo_mb": get_settings().max_photo_bytes // 1_000_000,
        "section": section, "came": came if CAME_FROM.get(came or "") == section else None}, status=status)


def _photo_stages(event: dict, who) -> dict[str, str]:
    """The photo stages (处置前 / 处置后) this user may add to the event now."""
    if who.principal.role not in PHOTO_WRITERS:
        return {}
    return {s: label for s, label in STAGES.items() if event["state"] in STAGE_STATES[s]}


@router.get("/events/{code}")
def event_page(code: str, request: Request, store: StoreDep, who: Current):
    _readable(who)
    done = request.query_params.get("done")
    message = f"已{ACTIONS[done].label}" if done in ACTIONS else None
    if request.query_params.get("photo") in STAGES:
        message = f"已上传{STAGES[request.query_params['photo']]}照片"
    return _show(request, store, who, code[:32], message=message, came=request.query_params.get("from"))


def _action_data(action: str, form) -> tuple[dict, str | None]:
    """The fields ``action`` needs, from the form (only those)."""
    note = form.get("note")
    note = note[:4000] if isinstance(note, str) else None
    data: dict[str, Any] = {}
    if action == "dispatch":
        data = _dispatch_data(form.get("target"))
    elif action == "reject":
        data["reason"] = form.get("reason") or "other"
    elif action == "merge":
        data["into"] = (form.get("into") or "").strip()[:32]
    elif action in ("extend", "ask_extension"):
        hours = (form.get("hours") or "").strip()[:10]
        if hours:
            data["hours"] = hours
    elif action == "escalate":
        if form.get("to") in ESCALATION_TARGETS:
            data["to"] = form.get("to")
    elif action == "locate":
        grid = (form.get("grid_code") or "").strip()[:15]
        if grid:
            data["grid_code"] = grid
    return data, note


@router.get("/events/{code}/actions")
def act_again(code: str, who: Current):
    """A reload of a refused action's page: the event."""
    return redirect(f"/events/{quote(code[:32], safe='')}")


@router.post("/events/{code}/actions")
def act(code: str, request: Request, store: StoreDep, who: Checked):
    """Take one action at the version the page showed; the page again, with what happened."""
    _readable(who)
    form = request.state.form
    action = form.get("action")
    if action not in ACTIONS:
        raise Refused(400, "未知的操作")
    try:
        version = int(form.get("version") or "")
    except ValueError:
        raise Refused(400, "缺少事件版本号，请刷新页面后重试") from None
    data, note = _action_data(action, form)
    came = form.get("from") if form.get("from") in CAME_FROM else None
    principal = who.principal
    try:
        if action == "dispatch" and not data:  # no department chosen: never back to the one that returned it
            _not_back_to_the_returner(store, code)
        take_action(store, code[:32], action, role=principal.role, actor=principal.actor, version=version,
                    note=note, data=data, allow=lambda row: auth.sees_event(principal, row))
    except StaleVersion as exc:  # someone else acted first: said so, the fresh state shown, a reload offered
        return _show(request, store, who, code, came=came, status=409, stale=True,
                     error=f"“{ACTIONS[action].label}”未执行：{_zh(exc)}。以下是最新状态。")
    except IllegalTransition as exc:
        return _show(request, store, who, code, came=came, status=409,
                     error=f"“{ACTIONS[action].label}”未执行：{_zh(exc)}。以下是最新状态。")
    except RoleNotAllowed as exc:
        return _show(request, store, who, code, came=came, status=403,
                     error=f"“{ACTIONS[action].label}”未执行：{_zh(exc)}。")
    except NotFound:
        raise Refused(404, f"未找到事件 {code}（不存在，或不在您的管辖范围内）") from None
    except InvalidEvent as exc:
        return _show(request, store, who, code, came=came, status=422,
                     error=f"“{ACTIONS[action].label}”未完成：{_zh(exc)}")
    return redirect(f"/events/{quote(code[:32], safe='')}?done={action}" + (f"&from={came}" if came else ""))


@router.get("/events/{code}/photos")
def add_photo_again(code: str, who: Current):
    """A reload of a refused upload's page: the event."""
    return redirect(f"/events/{quote(code[:32], safe='')}")


@router.post("/events/{code}/photos")
async def add_photo(code: str, request: Request, store: StoreDep, who: Current):
    """A photo of the scene (处置前) or of the result (处置后) from the event's page: the
    core's rules (decoding, size, the stages each state takes, the scope); the page again,
    with what happened. The body is bounded by the API's BodyGuard (one photo)."""
    code = code[:32]
    try:
        form = await request.form(max_files=1, max_fields=8, max_part_size=64 * 1024)
    except Exception:  # noqa: BLE001 - no form, or more than one file: refused, never a 500
        raise Refused(400, "请求格式不正确（每次上传一张照片）") from None
    try:
        require_csrf(request, who, form.get("csrf"))
        _readable(who)
        require_role(who, PHOTO_WRITERS)
        stage = form.get("stage")
        came = form.get("from") if form.get("from") in CAME_FROM else None
        if stage not in STAGES:
            raise Refused(400, "请选择照片类型（处置前或处置后）")
        part = form.get("photo")
        if not isinstance(part, UploadFile) or not part.filename:
            return _show(request, store, who, code, came=came, status=422, error="未上传：请选择一张照片。")
        principal = who.principal
        try:
            data = await read_upload(part)
            photo = await anyio.to_thread.run_sync(ingest, data)
            await anyio.to_thread.run_sync(lambda: add_photos(
                store, code, [photo], stage=stage, actor=principal.actor, role=principal.role,
                allow=lambda row: auth.sees_event(principal, row)))
        except NotFound:
            raise Refused(404, f"未找到事件 {code}（不存在，或不在您的管辖范围内）") from None
        except (PhotoTooLarge, MalformedBody):
            limit = get_settings().max_photo_bytes // 1_000_000
            return _show(request, store, who, code, came=came, status=413,
                         error=f"未上传：照片过大（每张不超过 {limit} MB，像素数也有上限），请压缩后重试。")
        except UnsupportedPhoto:
            return _show(request, store, who, code, came=came, status=415,
                         error="未上传：不是可识别的图片（请上传 JPEG、PNG、WebP 或 HEIC 照片）。")
        except IllegalTransition:
            return _show(request, store, who, code, came=came, status=409,
                         error=f"未上传：该事件{STATES.get(_state(store, code), '')}，"
                               f"此时不能上传{STAGES[stage]}照片。以下是最新状态。")
    finally:
        await form.close()
    back = f"/events/{quote(code, safe='')}?photo={stage}"
    return redirect(back + (f"&from={came}" if came else ""))


def _state(store, code: str) -> str:
    return queries.get_event(store, code, history=False)["state"]


# -- supervision and task lists --------------------------------------------------------------


@router.get("/supervision")
def supervision(request: Request, store: StoreDep, who: Current, result: dict | None = None):
    _readable(who)
    page = _page_number(request)
    scope = auth.scoped(who.principal, "supervision", grid=None, platform=None, department=None)
    board = queries.supervision(store, limit=PAGE, offset=(page - 1) * PAGE, **scope)
    mask = lambda items: [auth.mask_event(e, who.principal) for e in items]  # noqa: E731
    overdue = mask(board["overdue"]["items"])
    return render(request, "supervision.html", {
        "overdue": overdue, "total": board["overdue"]["total"],
        "names": grid_names(store, overdue, board["escalated"]["items"], board["suspended"]["items"]),
        "by_platform": board["overdue"]["by_platform"], "escalated": board["escalated"],
        "suspended": board["suspended"], "page": page, "result": result,
        "bulk": "supervise" if who.principal.role in ACTIONS["supervise"].roles else None,
        "pages": max(1, -(-board["overdue"]["total"] // PAGE))})


@router.get("/tasks")
def tasks(request: Request, store: StoreDep, who: Current):
    """What waits for this platform office or department, the nearest deadline first."""
    require_role(who, {"platform_office", "department"})
    page = _page_number(request)
    states = waiting_for(who.principal.role)
    scope = auth.scoped(who.principal, grid=None, platform=None, department=None)
    listing = queries.list_events(store, state=states, order="deadline_at", limit=PAGE,
                                  offset=(page - 1) * PAGE, **scope)
    counts = queries.queue_counts(store, state=states, **scope)
    due_soon, overdue = counts["due_soon"], counts["overdue"]
    items = [auth.mask_event(e, who.principal) for e in listing["items"]]
    asked = []  # extension requests waiting for this role's answer (申请延期), the oldest deadline first
    if ACTOR_OF_ACCOUNT.get(who.principal.role) in ACTIONS["grant_extension"].roles:
        asked = [auth.mask_event(e, who.principal) for e in queries.list_events(
            store, order="deadline_at", limit=PAGE, **queries.QUEUES["extension_requests"], **scope)["items"]]
    return render(request, "tasks.html", {
        "asked": asked,
        "items": items, "total": listing["total"], "due_soon": due_soon, "overdue": overdue,
        "page": page, "pages": max(1, -(-listing["total"] // PAGE)),
        "states": [STATES[s] for s in states], "names": grid_names(store, items, asked)})
