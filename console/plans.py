"""The planner's page (``/plans``): the plans with their status and dates, and a new draft
planned from the plan in force (or from scratch) for all villages or one township; one plan
with its report, the households that change grid against the plan in force, the map of the
draft beside the plan in force (the maps' ``/maps/plans/{ref}``, opened with the console's
session), and publication with an effective date. Every rule is
:mod:`gridgeo.plan.lifecycle`'s (the planner's ``gridgeo plan`` and ``/v1/plans`` call it too).
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import quote

from fastapi import APIRouter, Request

from gridgeo.auth import PLAN_READERS, PLAN_WRITERS
from gridgeo.console.base import Checked, Current, Refused, StoreDep, redirect, render, require_role
from gridgeo.errors import GridgeoError, InfeasibleBand, InvalidInput, NotFound, StaffStranded
from gridgeo.plan import lifecycle
from gridgeo.plan.bands import DEFAULT_BAND, parse_band
from gridgeo.plan.transition import ROLE_LABELS
from gridgeo.timezone import today

router = APIRouter(include_in_schema=False)

STATUS = {"draft": "草案", "published": "已发布", "superseded": "已废止"}
#: The planner's report figures shown, with their labels and how each is written for people.
METRICS = {"grids": ("网格数", "int"), "workload_mean": ("平均工作量（户）", "num"),
           "deviation_max": ("最大工作量偏差", "pct"), "share_in_band": ("工作量在区间内的网格比例", "pct"),
           "polsby_popper_mean": ("平均紧凑度（Polsby-Popper）", "num2"),
           "polsby_popper_min": ("最低紧凑度", "num2"), "road_share": ("沿道路河流的边界比例", "pct"),
           "gap_area_m2": ("空隙面积（平方米）", "num"), "overlap_area_m2": ("重叠面积（平方米）", "num"),
           "contiguous": ("网格连片", "bool")}
#: Why re-planning divided a village again (``report["villages"][].why``, written in English
#: by :func:`gridgeo.plan.replan.check_in_force`), in the planner's words: (pattern, Chinese).
WHY = [
    (r"no grid in force: .*", "现行方案中没有网格（新设的村（社区），或现行方案未覆盖）"),
    (r"its grids in force do not tile it as it is now \(([\d,.]+) m² uncovered or outside, "
     r"([\d,.]+) m² overlapping\): its boundary changed",
     r"现行网格与现在的村界不符（\1 平方米未覆盖或超出村界，\2 平方米重叠）：村界已调整"),
    (r"grid\(s\) (.+) in pieces or wrapped around other land", r"网格 \1 不连片或包围其他土地"),
    (r"(\d+) grid\(s\) asked for, (\d+) in force", r"要求划为 \1 个网格，现行 \2 个"),
]
_HOLDS = re.compile(r"(\d{15}) holds ([\d,.]+), (above the ceiling|below the floor) ([\d,.]+)")


def why_words(text: str | None) -> str:
    """Why a village was divided again, in Chinese (the English text where no rule matches)."""
    text = str(text or "").strip()
    if not text:
        return ""
    if text.startswith("grid ") and _HOLDS.search(text):
        parts = [f"网格 {c} 工作量 {x}，{'高于上限' if side.startswith('above') else '低于下限'} {limit}"
                 for c, x, side, limit in _HOLDS.findall(text)]
        more = re.search(r"\(and (\d+) more\)", text)
        return "；".join(parts) + (f"（另有 {more.group(1)} 个网格）" if more else "")
    for pattern, words in WHY:
        if re.fullmatch(pattern, text):
            return re.sub(pattern, words, text)
    return text


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


def _villages(store, row: dict, changes) -> list[dict]:
    """Per village of the draft that changes against the plan in force: its name, how many
    addresses and households change grid of how many, and why (re-planning's reason, or the
    planner's own edits)."""
    names = {v.get("code"): v.get("name") for v in ((row.get("report") or {}).get("villages") or [])
             if isinstance(v, dict)}
    out = []
    for v in changes.attrs.get("villages") or []:
        why = why_words(v.get("why"))
        out.append({**v, "name": names.get(v["village_code"]) or "",
                    "why_text": why or ("草案中手工编辑" if v.get("addresses_changing") else "")})
    return out


def _staff_rows(rows: list[dict]) -> list[dict]:
    return [{**r, "role_label": ROLE_LABELS.get(r.get("role"), r.get("role")),
             "reason_text": STAFF_REASONS.get(r.get("reason") or "", r.get("why") or "").format(**r)} for r in rows]


def _before_publish(store, row) -> dict:
    """What the planner sees above the publish button: the codes the numbering rule would
    give (:func:`gridgeo.plan.lifecycle.renumber_preview`) and where the staff go
    (:func:`gridgeo.plan.lifecycle.transition`, the one publishing checks)."""
    renumber = lifecycle.renumber_preview(store, row["id"])
    t = lifecycle.transition(store, row["id"]).to_dict()
    proposals = _staff_rows(t["proposals"])
    return {"renumber": renumber[renumber["changes"]].to_dict("records"), "renumber_total": len(renumber),
            "proposals": [p for p in proposals if p.get("reason") != "kept"],
            "kept": [p for p in proposals if p.get("reason") == "kept"],
            "stranded": _staff_rows(t["stranded"]),
            "unstaffed": t["unstaffed"], "moves": t["moves"]}


def _plans_page(request, store, who, *, error: str | None = None, form: dict | None = None, status: int = 200):
    frame = store.plans()
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    divisions = store.read("divisions", geometry=False)
    towns = divisions[divisions["level"].isin(["township", "street"])].sort_values("code")
    return render(request, "plans.html", {
        "plans": rows, "status": STATUS, "in_force": store.plan_in_force(), "error": error,
        "can_plan": who.principal.role in PLAN_WRITERS, "townships": towns[["code", "name"]].to_dict("records"),
        "form": {"low": f"{DEFAULT_BAND[0]:g}", "high": f"{DEFAULT_BAND[1]:g}", **(form or {})}}, status=status)


@router.get("/plans")
def plans(request: Request, store: StoreDep, who: Current):
    require_role(who, PLAN_READERS)
    return _plans_page(request, store, who)


def _infeasible(store, exc: InfeasibleBand, band: tuple[float, float]) -> str:
    """The villages a band cannot be met in, by name, in Chinese (the core's reasons are
    English lines that start with the village's code)."""
    codes = list(dict.fromkeys(c for r in exc.reasons for c in re.findall(r"village (\d+)", r)))
    names = store.read("divisions", geometry=False).set_index("code")["name"].to_dict()
    shown = "、".join(f"{names.get(c, c)}（{c}）" for c in codes[:10]) + (f" 等 {len(codes)} 个" if len(codes) > 10 else "")
    return (f"工作量区间 {band[0]:g}–{band[1]:g} 户在这些村（社区）无法满足：{shown or '见报告'}。"
            "可调整区间，或勾选“仍然生成”，把它们列为报告中的问题。")


@router.post("/plans")
def new_draft(request: Request, store: StoreDep, who: Checked):
    """Plan a draft: from the plan in force (villages whose grids are valid and in the band
    keep them; :func:`gridgeo.plan.lifecycle.plan_from_store`) or from scratch, for every
    village or one township's, and save it; then its page."""
    require_role(who, PLAN_WRITERS)
    form = request.state.form
    kept = {k: str(form.get(k) or "")[:200] for k in ("low", "high", "within", "mode", "name", "note", "anyway")}
    try:
        band = parse_band(f"{kept['low'].strip()}:{kept['high'].strip()}")
    except InvalidInput:
        return _plans_page(request, store, who, form=kept, status=422,
                           error="工作量区间应为两个数：下限不小于 0，上限大于 0 且不小于下限")
    within = kept["within"] or None
    if within is not None and not re.fullmatch(r"\d{6,12}", within):
        return _plans_page(request, store, who, form=kept, status=422, error="请选择一个乡镇（街道）")
    try:
        plan = lifecycle.plan_from_store(store, within=within, band=band, from_scratch=kept["mode"] == "scratch",
                                         strict=kept["anyway"] != "1")
        row = lifecycle.save_draft(store, plan, name=kept["name"] or None, note=kept["note"] or None,
                                   actor=who.principal.actor)
    except InfeasibleBand as exc:
        return _plans_page(request, store, who, form=kept, status=422, error=_infeasible(store, exc, band))
    except NotFound:
        return _plans_page(request, store, who, form=kept, status=422, error="所选范围内没有村（社区）可划分")
    except GridgeoError as exc:
        return _plans_page(request, store, who, form=kept, status=422, error=f"未能生成草案：{exc}")
    return redirect(f"/plans/{quote(str(row['version']), safe='')}?done=draft")


def _plan_page(request, store, who, ref: str, *, error: str | None = None, message: str | None = None,
               status: int = 200):
    try:
        row, grids = lifecycle.read_plan(store, ref)
    except NotFound:
        raise Refused(404, f"没有方案 {ref}") from None
    report = row.get("report") or {}
    changed = villages = None
    if row["status"] == "draft":
        try:
            changes = lifecycle.diff(store, ref)
        except GridgeoError:
            changes = None
        if changes is not None:
            changed = {"addresses": len(changes),
                       "households": int(changes["households"].fillna(0).sum())}
            villages = _villages(store, row, changes)
    before = {}
    if row["status"] == "draft":
        try:
            before = _before_publish(store, row)
        except GridgeoError:
            before = {}
    figures = report.get("metrics") if isinstance(report.get("metrics"), dict) else {}
    metrics = [(label, kind, figures[key])
               for key, (label, kind) in METRICS.items() if key in figures]
    return render(request, "plan.html", {
        "plan": row, "grids": len(grids), "metrics": metrics, "problems": report.get("problems") or [],
        "changed": changed, "villages": villages, "status": STATUS,
        "can_publish": who.principal.role in PLAN_WRITERS and row["status"] == "draft",
        "today": today().isoformat(), "error": error, "message": message,
        "can_edit": who.principal.role in PLAN_WRITERS and row["status"] == "draft",
        "ref": quote(str(row["version"]), safe=""), **before}, status=status)


@router.get("/plans/{ref}")
def plan(ref: str, request: Request, store: StoreDep, who: Current):
    require_role(who, PLAN_READERS)
    message = {"publish": "方案已发布", "draft": "草案已生成：可在地图上编辑，核对人员去向后发布"}.get(
        request.query_params.get("done") or "")
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
