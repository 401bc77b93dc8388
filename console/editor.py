"""The planner's map editor (``/plans/{ref}/edit``): a draft's blocks and grids on a map;
blocks selected by click and shift-click (or typed as ids) are moved to another grid of
their village, split off as a new grid, or two grids merged; each edit is previewed first
(the touched grids' workload, compactness and band, with the village's and the plan's
figures) and can be undone.

Every rule is :mod:`gridgeo.plan.lifecycle`'s: the console calls ``move_blocks``,
``split_grid``, ``merge_grids`` (with ``preview=True`` before applying) and ``undo``, the
same functions as ``/v1/plans/{id}/edits``, ``/split``, ``/merge``, ``/undo`` and
``gridgeo plan``. A refusal comes back as :class:`~gridgeo.errors.InvalidPlan` with its
``reasons``, worded here in Chinese (:data:`REFUSALS`).
"""

from __future__ import annotations

import json
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gridgeo.auth import PLAN_READERS, PLAN_WRITERS
from gridgeo.console.base import Checked, Current, Refused, StoreDep, render, secure_headers, require_role
from gridgeo.errors import GridgeoError, IllegalTransition, InvalidPlan, NotFound
from gridgeo.plan import lifecycle

router = APIRouter(include_in_schema=False)

#: How the console words each rule an edit can break (``InvalidPlan.reasons``).
REFUSALS = {
    "grid_empty": "网格 {grid} 将不剩任何图斑：网格至少保留一个图斑，或改为合并网格",
    "grid_in_pieces": "网格 {grid} 将被分成 {pieces} 块：网格必须连成一片，只能移动与目标网格共边的图斑",
    "grid_hole": "网格 {grid} 将包围本村（社区）的其他土地（形成“洞”）：只有村界本身有洞时网格才可有洞",
    "tiling_broken": "此编辑会使村（社区）内出现空隙或重叠：网格须不重不漏地覆盖全村",
    "crosses_village": "图斑 {block} 属于村（社区）{village}，网格 {grid} 属于 {grid_village}：网格不能跨越村（社区）界",
    "already_in_grid": "所选图斑已在网格 {grid} 中",
    "split_foreign_block": "图斑 {block} 不在网格 {grid} 中：拆分只能选取被拆网格自己的图斑",
    "split_none_or_all": "拆分需要选取网格 {grid} 的部分图斑（该网格共 {blocks} 个），不能一个不选或全部选中",
    "village_full": "村（社区）{village} 已有 999 个网格，编码已用尽",
    "merge_itself": "网格 {grid} 不能与自身合并",
    "merge_across_villages": "网格 {other} 属于 {other_village}，网格 {grid} 属于 {village}：网格不能跨越村（社区）界",
    "nothing_to_undo": "没有可撤销的编辑",
}
ACTIONS = {"move_blocks": "移动图斑", "split_grid": "拆分网格", "merge_grids": "合并网格"}
#: The figures of a preview, village beside plan.
FIGURES = {"grids": ("网格数", "int"), "workload_mean": ("平均工作量（户）", "num"),
           "deviation_max": ("最大工作量偏差", "pct"), "share_in_band": ("工作量在区间内的网格比例", "pct"),
           "polsby_popper_mean": ("平均紧凑度", "num2"), "polsby_popper_min": ("最低紧凑度", "num2"),
           "road_share": ("沿道路河流的边界比例", "pct")}
MAX_IDS = 20_000


def refusal_words(exc: GridgeoError) -> list[str]:
    """What the planner reads when the core refuses an edit."""
    if isinstance(exc, InvalidPlan):
        out = []
        for reason, message in zip(exc.reasons, exc.problems):
            template = REFUSALS.get(reason.get("rule", ""))
            try:
                out.append(template.format(**reason) if template else f"不符合规则：{message}")
            except (KeyError, IndexError):
                out.append(f"不符合规则：{message}")
        return out
    if isinstance(exc, NotFound):
        return ["所选图斑或网格不在此草案中（页面可能已过时，请刷新后重选）"]
    if isinstance(exc, IllegalTransition):
        return ["该方案已不是草案，不能再编辑"]
    return [f"未能完成：{exc}"]


def _draft(store, ref: str):
    try:
        row, grids, blocks = lifecycle.plan_blocks(store, ref[:64])
    except NotFound:
        raise Refused(404, f"没有方案 {ref[:64]}") from None
    return row, grids, blocks


def _ids(text) -> list[int]:
    """Block ids typed or selected: numbers separated by commas or spaces."""
    parts = str(text or "").replace("，", ",").replace(",", " ").split()
    if len(parts) > MAX_IDS:
        raise ValueError(f"一次最多选取 {MAX_IDS:,} 个图斑")
    try:
        ids = [int(p) for p in parts]
    except ValueError:
        raise ValueError("图斑编号应为数字，以逗号或空格分隔") from None
    if any(i < 0 or i >= 2**31 for i in ids):
        raise ValueError("图斑编号超出范围")
    return ids


def _state(row: dict, grids) -> dict:
    """The grids and the edit history of a draft, for the page."""
    report = row.get("report") or {}
    per = {g["code"]: g for g in (report.get("grids") or []) if isinstance(g, dict)}
    rows = [{"code": r["code"], "name": r["name"], "village_code": r["village_code"],
             "households": r["households"], "workload": per.get(r["code"], {}).get("workload"),
             "polsby_popper": per.get(r["code"], {}).get("polsby_popper"),
             "in_band": per.get(r["code"], {}).get("in_band")}
            for r in grids.sort_values("code").drop(columns="geometry").to_dict("records")]
    edits = [e for e in (report.get("edits") or []) if isinstance(e, dict)]
    history = [{"action": ACTIONS.get(e.get("action"), e.get("action")), "at": e.get("at"),
                "to_grid": e.get("to_grid"), "from_grids": e.get("from_grids") or [e.get("grid")],
                "blocks": len(e.get("blocks") or []), "undone": bool(e.get("undone"))} for e in edits]
    return {"grid_rows": rows, "history": history[::-1]}


def _page(request, store, who, ref: str, *, result: dict | None = None, status: int = 200):
    row, grids, _ = _draft(store, ref)
    if row["status"] != "draft":
        raise Refused(409, f"方案 {row['version']} 已{'发布' if row['status'] == 'published' else '废止'}，只有草案可以编辑")
    return render(request, "editor.html", {
        "plan": row, "ref": quote(str(row["version"]), safe=""), "result": result, "figures": FIGURES,
        "villages": sorted(set(grids["village_code"])), **_state(row, grids)}, status=status)


@router.get("/plans/{ref}/edit")
def editor(ref: str, request: Request, store: StoreDep, who: Current):
    require_role(who, PLAN_WRITERS)
    return _page(request, store, who, ref)


@router.get("/plans/{ref}/layers")
def layers(ref: str, store: StoreDep, who: Current):
    """The draft's grids and blocks as GeoJSON (the editor's map)."""
    require_role(who, PLAN_READERS)
    row, grids, blocks = _draft(store, ref)
    g = grids[["code", "name", "village_code", "households", "geometry"]]
    b = blocks[["block", "village_code", "grid_code", "households", "geometry"]].rename(columns={"grid_code": "grid"})
    b = b.assign(near=lifecycle.neighbour_grids(blocks))  # the move form offers only these
    empty = {"type": "FeatureCollection", "features": []}
    body = {"plan": row["version"],
            "grids": json.loads(g.to_json(drop_id=True)) if len(g) else empty,
            "blocks": json.loads(b.to_json(drop_id=True)) if len(b) else empty}
    return secure_headers(Response(json.dumps(body, ensure_ascii=False), media_type="application/json"))


@router.get("/plans/{ref}/edit/state")
def state(ref: str, request: Request, store: StoreDep, who: Current):
    require_role(who, PLAN_READERS)
    row, grids, _ = _draft(store, ref)
    return render(request, "_editor_state.html", {"ref": quote(str(row["version"]), safe=""), **_state(row, grids)})


def _answer(request, store, who, ref: str, result: dict, *, changed: bool, status: int = 200):
    """The result panel (htmx) or the whole page; a change tells the map to reload."""
    if not request.headers.get("hx-request"):
        return _page(request, store, who, ref, result=result, status=status)
    response = render(request, "_editor_result.html", {"result": result, "figures": FIGURES}, status=status)
    if changed:
        response.headers["HX-Trigger-After-Swap"] = "plan-changed"
    return response


@router.post("/plans/{ref}/edit/{action}")
def edit(ref: str, action: str, request: Request, store: StoreDep, who: Checked):
    """``move``, ``split`` or ``merge``: previewed unless the form says ``mode=apply``."""
    require_role(who, PLAN_WRITERS)
    form = request.state.form
    apply = form.get("mode") == "apply"
    ref = ref[:64]
    actor = who.principal.actor
    try:
        if action == "move":
            to_grid = str(form.get("to_grid") or "")[:32]
            ids = _ids(form.get("blocks"))
            if not ids or not to_grid:
                raise ValueError("请先在地图上选取图斑，并选择目标网格")
            res = lifecycle.move_blocks(store, ref, ids, to_grid, actor=actor, preview=not apply)
        elif action == "split":
            grid = str(form.get("grid") or "")[:32]
            ids = _ids(form.get("blocks"))
            if not ids or not grid:
                raise ValueError("请先在地图上选取要拆出的图斑（同一网格内）")
            res = lifecycle.split_grid(store, ref, grid, ids, actor=actor, preview=not apply)
        elif action == "merge":
            grid, other = str(form.get("grid") or "")[:32], str(form.get("other") or "")[:32]
            if not grid or not other:
                raise ValueError("请选择要合并的两个网格")
            res = lifecycle.merge_grids(store, ref, grid, other, actor=actor, preview=not apply)
        elif action == "undo":
            res = lifecycle.undo(store, ref, actor=actor)
            undone = res.get("undone") or {}
            return _answer(request, store, who, ref, {
                "undone": ACTIONS.get(undone.get("action"), undone.get("action")), "to_grid": undone.get("to_grid"),
                "metrics": res.get("metrics"), "plan_metrics": res.get("plan_metrics")}, changed=True)
        else:
            raise Refused(404, "没有这种编辑")
    except ValueError as exc:
        return _answer(request, store, who, ref, {"refused": [str(exc)]}, changed=False, status=422)
    except GridgeoError as exc:
        return _answer(request, store, who, ref, {"refused": refusal_words(exc)}, changed=False,
                       status=409 if isinstance(exc, IllegalTransition) else 422)
    return _answer(request, store, who, ref, _result(res), changed=apply)


def _result(res: dict) -> dict:
    """A preview or an applied edit, for the result panel: the touched grids with their
    households before and after, the band warnings, the village's and the plan's figures."""
    lo, hi = (res.get("band") or [None, None])[:2]
    before, after = res.get("households_before") or {}, res.get("households_after") or {}
    grids = []
    for g in res.get("grids") or []:
        grids.append({**g, "before": before.get(g["code"]), "after": after.get(g["code"])})
    warnings = [f"网格 {g['code']} 工作量 {g['workload']:,.0f}，不在区间 {lo:,.0f}–{hi:,.0f} 内（允许保存，请确认是有意为之）"
                for g in grids if g.get("in_band") is False and not g.get("exempt") and lo is not None]
    action = ACTIONS.get(res.get("action"), res.get("action"))
    if res.get("action") == "move_blocks":
        what = f"{action} {len(res.get('blocks') or [])} 个 → 网格 {res.get('to_grid')}"
    elif res.get("action") == "split_grid":
        what = f"{action} {res.get('grid')}：{len(res.get('blocks') or [])} 个图斑成为新网格 {res.get('to_grid')}"
    else:
        what = f"{action}：{', '.join(res.get('removed') or [])} 并入 {res.get('to_grid')}"
    return {"preview": bool(res.get("preview")), "what": what, "grids": grids, "warnings": warnings,
            "removed": res.get("removed") or [], "metrics": res.get("metrics"),
            "plan_metrics": res.get("plan_metrics"), "band": (lo, hi)}
