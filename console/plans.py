"""The planner's page (``/plans``): the plans with their status and dates; one plan with its
report, the households that change grid against the plan in force, the map of the draft
beside the plan in force (the maps' ``/maps/plans/{ref}``, opened with the console's
session), and publication with an effective date. Every rule is
:mod:`gridgeo.plan.lifecycle`'s (the planner's ``gridgeo plan`` and ``/v1/plans`` call it too).
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

from fastapi import APIRouter, Request

from gridgeo.auth import PLAN_READERS, PLAN_WRITERS
from gridgeo.console.base import Checked, Current, Refused, StoreDep, redirect, render, require_role
from gridgeo.errors import GridgeoError, NotFound, StaffStranded
from gridgeo.plan import lifecycle
from gridgeo.plan.transition import ROLE_LABELS
from gridgeo.timezone import today

router = APIRouter(include_in_schema=False)

STATUS = {"draft": "草案", "published": "已发布", "superseded": "已废止"}
#: The planner's report figures shown, with their labels.
METRICS = {"grids": "网格数", "workload_mean": "平均工作量（户）", "deviation_max": "最大工作量偏差",
           "share_in_band": "工作量在区间内的网格比例", "polsby_popper_mean": "平均紧凑度（Polsby-Popper）",
           "road_share": "沿道路河流的边界比例", "gap_area_m2": "空隙面积（平方米）",
           "overlap_area_m2": "重叠面积（平方米）", "contiguous": "网格连片"}
#: Why a staff post goes where the transition proposes (``reason`` of the proposals).
STAFF_REASONS = {
    "kept": "网格保留",
    "shares": "原网格 {from_grid} 的 {shared_households} 户划入此网格",
    "follows": "随原网格多数住户（{shared_households} 户）调整",
    "filled": "新网格原无网格员，原网格 {from_grid} 有 {shared_households} 户在其中",
    "unknown_grid": "原网格 {from_grid} 不在现行方案中",
    "no_post": "相关新网格均已有此岗位",
    "no_overlap": "没有新网格与原网格共有住户或土地",
}


def _staff_rows(rows: list[dict]) -> list[dict]:
    return [{**r, "role_label": ROLE_LABELS.get(r.get("role"), r.get("role")),
             "reason_text": STAFF_REASONS.get(r.get("reason") or "", r.get("why") or "").format(**r)} for r in rows]


def _before_publish(store, row) -> dict:
    """What the planner sees above the publish button: the codes the numbering rule would
    give (:func:`gridgeo.plan.lifecycle.renumber_preview`) and where the staff go
    (:func:`gridgeo.plan.lifecycle.transition`, the one publishing checks)."""
    renumber = lifecycle.renumber_preview(store, row["id"])
    t = lifecycle.transition(store, row["id"]).to_dict()
    return {"renumber": renumber[renumber["changes"]].to_dict("records"), "renumber_total": len(renumber),
            "proposals": _staff_rows(t["proposals"]), "stranded": _staff_rows(t["stranded"]),
            "unstaffed": t["unstaffed"], "moves": t["moves"]}


@router.get("/plans")
def plans(request: Request, store: StoreDep, who: Current):
    require_role(who, PLAN_READERS)
    frame = store.plans()
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return render(request, "plans.html", {"plans": rows, "status": STATUS, "in_force": store.plan_in_force()})


def _plan_page(request, store, who, ref: str, *, error: str | None = None, message: str | None = None,
               status: int = 200):
    try:
        row, grids = lifecycle.read_plan(store, ref)
    except NotFound:
        raise Refused(404, f"没有方案 {ref}") from None
    report = row.get("report") or {}
    changed = None
    if row["status"] == "draft":
        try:
            changed = len(lifecycle.diff(store, ref))
        except GridgeoError:
            changed = None
    before = {}
    if row["status"] == "draft":
        try:
            before = _before_publish(store, row)
        except GridgeoError:
            before = {}
    figures = report.get("metrics") if isinstance(report.get("metrics"), dict) else {}
    metrics = {label: figures[key] for key, label in METRICS.items() if key in figures}
    return render(request, "plan.html", {
        "plan": row, "grids": len(grids), "metrics": metrics, "problems": report.get("problems") or [],
        "changed": changed, "status": STATUS, "can_publish": who.principal.role in PLAN_WRITERS and row["status"] == "draft",
        "today": today().isoformat(), "error": error, "message": message,
        "can_edit": who.principal.role in PLAN_WRITERS and row["status"] == "draft",
        "ref": quote(str(row["version"]), safe=""), **before}, status=status)


@router.get("/plans/{ref}")
def plan(ref: str, request: Request, store: StoreDep, who: Current):
    require_role(who, PLAN_READERS)
    message = "方案已发布" if request.query_params.get("done") == "publish" else None
    return _plan_page(request, store, who, ref[:64], message=message)


@router.post("/plans/{ref}/publish")
def publish(ref: str, request: Request, store: StoreDep, who: Checked):
    require_role(who, PLAN_WRITERS)
    form = request.state.form
    try:
        day = dt.date.fromisoformat(str(form.get("effective_from") or ""))
    except ValueError:
        return _plan_page(request, store, who, ref[:64], error="请填写生效日期（年-月-日）", status=422)
    allow = form.get("allow_stranded") == "1"
    try:
        row = lifecycle.publish(store, ref[:64], day, actor=who.principal.actor, allow_stranded=allow)
    except StaffStranded as exc:
        names = "；".join(f"{s.get('name')}（{ROLE_LABELS.get(s.get('role'), s.get('role'))}，原网格 {s.get('from_grid')}）"
                         for s in exc.stranded[:10])
        more = f" 等 {len(exc.stranded)} 人" if len(exc.stranded) > 10 else ""
        return _plan_page(request, store, who, ref[:64], status=409,
                          error=f"未能发布：{len(exc.stranded)} 个人员岗位将没有网格：{names}{more}。"
                                "如确需发布，请勾选“允许部分人员暂无网格”。")
    except GridgeoError as exc:
        return _plan_page(request, store, who, ref[:64], error=f"未能发布：{exc}", status=422)
    return redirect(f"/plans/{quote(str(row['version']), safe='')}?done=publish")
