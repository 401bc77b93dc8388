"""Plans in the store: drafts, publishing, diffs and manual edits.

A draft is a row of ``plans`` with status ``draft`` and no dates, its grids rows of
``grids``. The planner's report, and the blocks the grids are made of (needed for manual
edits), are kept in ``plans.report``. Publishing gives the draft an effective date; the
plan in force then ends that day. :func:`put_in_force` is the one place a plan is
published: :func:`publish` and the grid import (:mod:`gridgeo.io.importing`) both call it.
Every write is one transaction with its line in the audit log.

Manual edits move blocks, or households, between grids of one village in a draft. Each
edit is checked before anything is written: a grid must stay one polygon without holes
and keep at least one block, and never cross a village boundary; these refuse the edit
(:class:`~gridgeo.errors.InvalidPlan`). Workloads leaving the band are allowed (the
department may mean it) and come back as warnings.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import bindparam, select

from gridgeo import crs as _crs
from gridgeo.config import get_settings
from gridgeo.errors import IllegalTransition, InternalError, InvalidPlan, NotFound, StaffStranded
from gridgeo.plan.bands import DEFAULT_BAND, parse_band
from gridgeo.plan.blocks import Metric, clip_lines
from gridgeo.plan.divide import COUNT_COLUMNS, Plan, divide, jsonable
from gridgeo.plan.metrics import enclaves, evaluate
from gridgeo.store import Store, schema, today

__all__ = [
    "get_plan",
    "neighbour_grids",
    "plan_from_store",
    "save_draft",
    "read_plan",
    "publish",
    "put_in_force",
    "diff",
    "move_blocks",
    "move_households",
    "split_grid",
    "merge_grids",
    "undo",
    "renumber_preview",
    "blocks_at",
    "plan_blocks",
    "plan_staffing",
    "transition",
]

_BLOCK_KEY = "blocks"


# -- reading ---------------------------------------------------------------------------


def get_plan(store: Store, ref: int | str, *, conn=None) -> dict:
    """The plan row with id ``ref`` (an int, or a string of digits that is an id) or version."""
    if isinstance(ref, str) and ref.isdigit():
        try:
            return store.plan(int(ref), conn=conn)
        except NotFound:
            pass
    return store.plan(ref, conn=conn)


def _villages(store: Store, conn=None) -> gpd.GeoDataFrame:
    """The villages and communities, with the name of their township (乡镇/街道) as
    ``township`` (grid names carry it)."""
    div = store.read("divisions", conn=conn)
    towns = div[div["level"].isin(["township", "street", "town"])]
    names = dict(zip(towns["code"].astype(str), towns["name"].astype(str)))
    out = div[div["level"].isin(["village", "community"]) & div.geometry.notna()].reset_index(drop=True)
    out["township"] = [names.get(str(c)[:9], "") for c in out["code"]]
    return out


def plan_from_store(store: Store, *, villages: Iterable[str] | None = None, within: str | None = None,
                    from_scratch: bool = False, **kwargs) -> Plan:
    """Plan the villages of the store (all, the ``villages`` listed, or those whose code
    starts with ``within``) with the store's households, roads and staff.

    When a plan is in force, planning starts from it (:func:`gridgeo.plan.replan.replan`):
    villages whose grids are valid and in band keep them, the others are divided again
    close to their old grids. ``from_scratch=True`` (or no plan in force) divides every
    village anew (:func:`~gridgeo.plan.divide`). ``kwargs`` go to either."""
    vil = _villages(store)
    if villages is not None:
        want = [str(v) for v in villages]
        missing = sorted(set(want) - set(vil["code"]))
        if missing:
            raise NotFound(f"no village or community {', '.join(missing[:5])} in the database")
        vil = vil[vil["code"].isin(want)]
    if within:
        vil = vil[vil["code"].str.startswith(str(within))]
    if len(vil) == 0:
        raise NotFound("no village or community to plan in the database" + (f" under {within}" if within else ""))
    x0, y0, x1, y1 = vil.total_bounds
    pad = 0.01  # about 1 km: households snapped from just outside, roads crossing the edge
    hh = store.read("households")
    hh = hh.cx[x0 - pad:x1 + pad, y0 - pad:y1 + pad]
    roads = store.read("roads")
    roads = roads.cx[x0 - pad:x1 + pad, y0 - pad:y1 + pad] if len(roads) else None
    staff = store.read("staff")
    current = None if from_scratch else store.plan_in_force()
    if current is not None:
        from gridgeo.plan.replan import replan

        grids = store.read("grids", plan=current["id"])
        plan = replan(vil, hh, roads, grids, staff=staff, **kwargs)
        plan.report["replan"]["plan"] = current["version"]
        return plan
    plan = divide(vil, hh, roads, staff=staff, **kwargs)
    plan.report["params"]["from_scratch"] = True
    return plan


def read_plan(store: Store, ref: int | str) -> tuple[dict, gpd.GeoDataFrame]:
    """The plan row and its grids."""
    row = get_plan(store, ref)
    grids = store.read("grids", plan=row["id"])
    return row, grids


def _b64(arr: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(arr, dtype=dtype).tobytes()).decode("ascii")


def _unb64(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


def _encode_blocks(blocks: gpd.GeoDataFrame) -> dict:
    """Blocks as JSON: columns as lists, geometry as shapely's ragged arrays (exact float64
    coordinates and offsets, base64), all in one go."""
    gtype, coords, offsets = shapely.to_ragged_array(blocks.geometry.to_numpy())
    return {
        "block": blocks["block"].astype(int).tolist(),
        "village_code": blocks["village_code"].astype(str).tolist(),
        "grid_code": blocks["grid_code"].astype(str).tolist(),
        **{c: blocks[c].astype(float).tolist() for c in (*COUNT_COLUMNS, "workload")},
        "geometry": {"type": int(gtype), "coords": _b64(coords, "<f8"),
                     "offsets": [_b64(o, "<i8") for o in offsets]},
    }


def _decode_blocks(data: dict) -> gpd.GeoDataFrame:
    geo = data["geometry"]
    coords = _unb64(geo["coords"], "<f8").reshape(-1, 2)
    offsets = tuple(_unb64(o, "<i8") for o in geo["offsets"])
    geoms = shapely.from_ragged_array(shapely.GeometryType(geo["type"]), coords, offsets)
    # Polygons mixed with MultiPolygons came back as MultiPolygons: single parts are Polygons.
    single = (shapely.get_type_id(geoms) == 6) & (shapely.get_num_geometries(geoms) == 1)
    geoms[single] = shapely.get_geometry(geoms[single], 0)
    return gpd.GeoDataFrame({k: v for k, v in data.items() if k != "geometry"}, geometry=geoms, crs=4326)


def _blocks(row: dict, grids: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The blocks of a plan; grids without stored blocks are one block each."""
    data = (row.get("report") or {}).get(_BLOCK_KEY)
    blocks = _decode_blocks(data) if data else gpd.GeoDataFrame(
        {"block": pd.Series(dtype=int), "village_code": pd.Series(dtype=str), "grid_code": pd.Series(dtype=str)},
        geometry=gpd.GeoSeries([], crs=4326), crs=4326)
    missing = grids[~grids["code"].isin(set(blocks["grid_code"]))]
    if len(missing):
        start = int(blocks["block"].max()) + 1 if len(blocks) else 0
        extra = gpd.GeoDataFrame({
            "block": np.arange(start, start + len(missing)),
            "village_code": missing["village_code"].to_numpy(),
            "grid_code": missing["code"].to_numpy(),
            **{c: missing[c].astype(float).to_numpy() for c in COUNT_COLUMNS},
            "workload": missing["households"].astype(float).to_numpy(),
        }, geometry=missing.geometry.to_numpy(), crs=4326)
        blocks = pd.concat([blocks, extra], ignore_index=True)
        blocks = gpd.GeoDataFrame(blocks, geometry="geometry", crs=4326)
    return blocks.reset_index(drop=True)


def neighbour_grids(blocks: gpd.GeoDataFrame) -> list[list[str]]:
    """For each block (``block``, ``village_code``, ``grid_code``, geometry), the other
    grids of its village it shares an edge with (touching at a corner is not enough):
    the grids a move of it can go to, sorted."""
    geoms = blocks.geometry.to_numpy()
    grid = blocks["grid_code"].astype(str).to_numpy()
    vil = blocks["village_code"].astype(str).to_numpy()
    out: list[list[str]] = [[] for _ in range(len(blocks))]
    if len(blocks) < 2:
        return out
    i, j = shapely.STRtree(geoms).query(geoms, predicate="touches")
    keep = (i != j) & (grid[i] != grid[j]) & (vil[i] == vil[j])
    i, j = i[keep], j[keep]
    if len(i):
        shared = shapely.intersection(shapely.boundary(geoms[i]), shapely.boundary(geoms[j]))
        edge = shapely.length(shared) > 0
        pairs = pd.DataFrame({"i": i[edge], "grid": grid[j[edge]]}).drop_duplicates()
        for b, codes in pairs.sort_values(["i", "grid"]).groupby("i")["grid"]:
            out[int(b)] = codes.tolist()
    return out


# -- drafts ----------------------------------------------------------------------------


def _new_version(conn, stamp: dt.date) -> str:
    plans = schema.plans
    taken = {r[0] for r in conn.execute(select(plans.c.version).where(
        plans.c.version.like(f"draft-{stamp:%Y%m%d}-%")))}
    n = 1
    while f"draft-{stamp:%Y%m%d}-{n}" in taken:
        n += 1
    return f"draft-{stamp:%Y%m%d}-{n}"


def _grid_records(grids: gpd.GeoDataFrame, plan_id: int) -> list[dict]:
    wkb = shapely.to_wkb(grids.geometry.to_numpy())
    out = []
    for rec, g in zip(grids[["code", "name", "village_code", "kind", *COUNT_COLUMNS]].to_dict("records"), wkb):
        rec = {k: (int(v) if k in COUNT_COLUMNS else v) for k, v in rec.items()}
        rec.update(plan_id=plan_id, geometry=g, kind=rec.get("kind") or "basic")
        out.append(rec)
    return out


def save_draft(store: Store, plan: Plan, *, version: str | None = None, name: str | None = None,
               note: str | None = None, actor: str = "cli", carry_over: bool = True) -> dict:
    """Save ``plan`` as a draft; returns the plan row.

    Parameters
    ----------
    version : str, optional
        A unique label (default ``draft-YYYYMMDD-N``).
    carry_over : bool
        Copy the grids of the plan in force for the villages of the store that ``plan``
        does not divide, so that the draft covers the whole jurisdiction (a plan is
        published whole).

    Raises
    ------
    NotFound
        A village of the plan is not in the store.
    IllegalTransition
        The version label is taken.
    """
    store.check()
    grids = plan.grids
    with store.engine.begin() as conn:
        vil = _villages(store, conn=conn)
        missing = sorted(set(grids["village_code"]) - set(vil["code"]))
        if missing:
            raise NotFound(f"village(s) {', '.join(missing[:5])} of the plan are not in the database: "
                           "import the divisions first")
        carried: list[str] = []
        if carry_over:
            current = store.plan_in_force(conn=conn)
            if current is not None:
                old = store.read("grids", plan=current["id"], conn=conn)
                old = old[~old["village_code"].isin(set(grids["village_code"]))]
                if len(old):
                    carried = sorted(set(old["village_code"]))
                    grids = pd.concat([grids, old[grids.columns.intersection(old.columns)]], ignore_index=True)
                    grids = gpd.GeoDataFrame(grids, geometry="geometry", crs=4326)
        plans = schema.plans
        version = version or _new_version(conn, today())
        if conn.execute(select(plans.c.id).where(plans.c.version == version)).first():
            raise IllegalTransition(f"plan version {version!r} exists already: choose another")
        report = dict(plan.report)
        report["carried_over"] = carried
        report[_BLOCK_KEY] = _encode_blocks(plan.blocks)
        report["edits"] = []
        res = conn.execute(plans.insert().values(
            version=version, name=name or f"网格划分草案 {version}", status="draft",
            created_at=dt.datetime.now(dt.timezone.utc), note=note, report=jsonable(report)))
        plan_id = res.inserted_primary_key[0]
        conn.execute(schema.grids.insert(), _grid_records(grids, plan_id))
        Store.audit(conn, actor=actor, action="plan.draft", entity="plans", entity_id=str(plan_id),
                    detail={"version": version, "grids": int(len(grids)),
                            "villages": sorted(set(plan.grids["village_code"])), "carried_over": carried})
        return store.plan(plan_id, conn=conn)


# -- publishing ------------------------------------------------------------------------


def _validate(store: Store, row: dict, grids: gpd.GeoDataFrame) -> list[str]:
    from gridgeo.validate import Report, check_grids, check_households

    report = Report()
    label = f"(plan {row['version']})"
    g = grids.assign(_row=None, _file=label)
    check_grids(g, _villages(store), report, tolerance_m2=get_settings().area_tolerance_m2)
    hh = store.read("households")
    if len(hh):
        check_households(hh.assign(_row=None, _file="(database)"), g, report)
    return [p.message for p in report.errors]


def put_in_force(conn, store: Store, plan_id: int, start: dt.date, *, version: str,
                 name: str | None = None) -> dict | None:
    """Publish plan ``plan_id`` from ``start`` inside the caller's transaction: the one
    place a plan takes effect (``publish`` and the grid import both call it).

    The plan must hold grids: an empty plan would end the plan in force and leave every
    village with none. The published plan in force on ``start`` ends that day; plans
    follow each other in time. The plan gets ``version`` (and ``name`` when given), status
    ``published`` and ``effective_from`` = ``start``.

    Returns
    -------
    dict or None
        The plan row that ended, or None when no plan was in force on ``start``.

    Raises
    ------
    InvalidPlan
        The plan has no grid.
    IllegalTransition
        Another plan has the version label, or a published plan takes effect on or after
        ``start``.
    """
    plans, grids = schema.plans, schema.grids
    if conn.execute(select(grids.c.id).where(grids.c.plan_id == plan_id).limit(1)).first() is None:
        raise InvalidPlan([f"plan {version!r} has no grid: a plan must cover the villages it divides; "
                           "an empty plan would end the plan in force"])
    if conn.execute(select(plans.c.id).where(plans.c.version == version, plans.c.id != plan_id)).first():
        raise IllegalTransition(f"plan version {version!r} exists already: choose another")
    later = conn.execute(
        select(plans.c.version).where(plans.c.status != "draft", plans.c.effective_from >= start,
                                      plans.c.id != plan_id)
    ).first()
    if later:
        raise IllegalTransition(f"plan {later[0]!r} takes effect on or after {start}: choose a later date")
    current = store.plan_in_force(start, conn=conn)
    if current is not None:
        conn.execute(plans.update().where(plans.c.id == current["id"]).values(effective_to=start))
    values = {"status": "published", "effective_from": start, "effective_to": None, "version": version}
    if name is not None:
        values["name"] = name
    conn.execute(plans.update().where(plans.c.id == plan_id).values(**values))
    return current


def transition(store: Store, ref: int | str, effective_from: dt.date | None = None):
    """:func:`~gridgeo.plan.transition.staff_transition` from the plan in force on
    ``effective_from`` (default today) to plan ``ref``, with the store's households and
    staff: where each grid head, instructor and worker goes, the grids left without one,
    the staff left without a grid."""
    from gridgeo.plan.transition import staff_transition

    _, grids = read_plan(store, ref)
    current = store.plan_in_force(effective_from or today())
    old = store.read("grids", plan=current["id"]) if current is not None else grids.iloc[:0]
    res = staff_transition(old, grids, store.read("households"), store.read("staff"),
                           tolerance=get_settings().snap_tolerance_m)
    res.notes.append(f"from plan {current['version']}" if current is not None else "no plan in force")
    return res


def _move_staff(conn, staff: pd.DataFrame, proposals: pd.DataFrame) -> list[dict]:
    """Write the proposed grids of the staff in the publishing transaction; a post that
    would repeat one the person holds already on that grid is dropped. Returns the moves."""
    st = schema.staff
    moves = []
    have = {(str(c), str(r), str(g)) for c, r, g in zip(staff["code"], staff["role"], staff["grid_code"])}
    for p in proposals.to_dict("records"):
        to, key = p["to_grid"], (p["code"], p["role"], p["from_grid"])
        if to is None or to == p["from_grid"] or key not in have:
            continue
        have.discard(key)
        where = (st.c.code == p["code"]) & (st.c.role == p["role"]) & (st.c.grid_code == p["from_grid"])
        if (p["code"], p["role"], to) in have:
            conn.execute(st.delete().where(where))
        else:
            conn.execute(st.update().where(where).values(grid_code=to))
            have.add((p["code"], p["role"], to))
        moves.append({"code": p["code"], "role": p["role"], "from": p["from_grid"], "to": to})
    return moves


def publish(store: Store, ref: int | str, effective_from: dt.date | None = None, *,
            version: str | None = None, actor: str = "cli", allow_stranded: bool = False,
            carry_staff: bool = True) -> dict:
    """Publish a draft: it takes effect on ``effective_from`` (default today, CST) and the
    plan in force ends that day. Returns the plan row.

    The draft is validated first as an import would be (overlaps, gaps, grids leaving
    their village, households in no grid); a draft labelled ``draft-...`` is renamed to
    its effective date unless ``version`` is given.

    Raises
    ------
    IllegalTransition
        The plan is not a draft, a published plan takes effect on or after that date, or
        the version label is taken.
    InvalidPlan
        The draft breaks a rule; nothing was written.
    StaffStranded
        Staff of the plan in force would be left without a grid (and ``allow_stranded``
        is false); nothing was written.

    With ``carry_staff`` (the default) the staff move to the grids :func:`transition`
    proposes, in the same transaction; the audit line lists the moves and whoever is left
    without a grid.
    """
    store.check()
    row, grids = read_plan(store, ref)
    if row["status"] != "draft":
        raise IllegalTransition(f"plan {row['version']!r} is {row['status']}: only a draft can be published",
                                state=row["status"])
    if len(grids) == 0:
        raise InvalidPlan([f"plan {row['version']!r} has no grid"])
    problems = _validate(store, row, grids)
    if problems:
        raise InvalidPlan(problems)
    start = effective_from or today()
    new_version = version or (start.isoformat() if row["version"].startswith("draft-") else row["version"])
    carried = transition(store, row["id"], start)
    stranded = carried.stranded.to_dict("records")
    if stranded and not allow_stranded:
        raise StaffStranded(jsonable(stranded))
    staff = store.read("staff")
    with store.engine.begin() as conn:
        moves = _move_staff(conn, staff, carried.proposals) if carry_staff and len(staff) else []
        name = row["name"]
        if name == f"网格划分草案 {row['version']}":  # the default name follows the new label
            name = f"网格划分 {new_version}"
        ended = put_in_force(conn, store, row["id"], start, version=new_version, name=name)
        Store.audit(conn, actor=actor, action="plan.publish", entity="plans", entity_id=str(row["id"]),
                    detail={"version": new_version, "draft_version": row["version"],
                            "effective_from": start.isoformat(),
                            "ended": ended["version"] if ended else None,
                            "staff_moved": jsonable(moves), "staff_stranded": jsonable(stranded)})
        return store.plan(row["id"], conn=conn)


# -- diff ------------------------------------------------------------------------------


def _codes_in(grids: gpd.GeoDataFrame, x: np.ndarray, y: np.ndarray, tolerance: float) -> np.ndarray:
    from gridgeo.locate import Locator

    if len(grids) == 0 or len(x) == 0:
        return np.full(len(x), None, dtype=object)
    loc = Locator.from_frame(grids, "code", tolerance=tolerance, cells_per_grid=64)
    return np.asarray(loc.locate(x, y), dtype=object)


def diff(store: Store, a: int | str, b: int | str | None = None) -> pd.DataFrame:
    """Households whose grid differs between plans ``a`` and ``b`` (``b`` omitted: from the
    plan in force to ``a``).

    Every household of the store is located in both plans (rules of
    :mod:`gridgeo.locate`, snapping included). Returns one row per household that
    changes grid: code, address, village_code, households, population, from_grid,
    to_grid (None where the household is in no grid of that plan). ``attrs`` holds the
    two plan versions and ``villages``: per village, the addresses and households
    changing grid, of how many, and why the planner touched it (from the report of a plan
    made by re-planning).
    """
    if b is None:
        current = store.plan_in_force()
        if current is None:
            raise NotFound("no plan in force to compare with: name both plans")
        a, b = current["id"], a
    ra, ga = read_plan(store, a)
    rb, gb = read_plan(store, b)
    hh = store.read("households")
    tol = get_settings().snap_tolerance_m
    x, y = shapely.get_x(hh.geometry.to_numpy()), shapely.get_y(hh.geometry.to_numpy())
    ca, cb = _codes_in(ga, x, y, tol), _codes_in(gb, x, y, tol)
    changed = (pd.Series(ca).fillna("") != pd.Series(cb).fillna("")).to_numpy()
    out = pd.DataFrame({
        "code": hh["code"].to_numpy(),
        "address": hh["address"].to_numpy(),
        "village_code": hh["village_code"].to_numpy(),
        "households": hh["households"].to_numpy(),
        "population": hh["population"].to_numpy(),
        "from_grid": ca,
        "to_grid": cb,
    })[changed].reset_index(drop=True)
    from gridgeo.plan.replan import grid_changes

    per = grid_changes(ca, cb, hh["households"], hh["village_code"])
    why = {v["code"]: v.get("why") or "" for v in ((rb.get("report") or {}).get("villages") or [])
           if v.get("touched") is not None}
    per["why"] = [why.get(v, "") for v in per["village_code"]]
    per = per[(per["addresses_changing"] > 0) | (per["why"] != "")]
    out.attrs.update(from_plan=ra["version"], to_plan=rb["version"],
                     villages=jsonable(per.to_dict("records")))
    return out


# -- manual edits ----------------------------------------------------------------------


def _refused(*reasons: tuple[str, str, dict]) -> InvalidPlan:
    """An edit refused: each reason is (rule slug, message, the values it names), so that
    the API says it in words and the console in Chinese from the same refusal."""
    return InvalidPlan([m for _, m, _ in reasons], [{"rule": r, **jsonable(v)} for r, _, v in reasons])


def _draft(store: Store, ref) -> tuple[dict, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    row, grids = read_plan(store, ref)
    if row["status"] != "draft":
        raise IllegalTransition(f"plan {row['version']!r} is {row['status']}: only a draft can be edited; "
                                "make a new draft", state=row["status"])
    return row, grids, _blocks(row, grids)


def _check_edit(blocks: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, touched: set[str],
                villages: gpd.GeoDataFrame) -> tuple[dict[str, Any], list[tuple[str, str, dict]]]:
    """New geometry of the touched grids, or the problems that refuse the edit (rule,
    message, values: :func:`_refused`)."""
    problems = []
    geoms: dict[str, Any] = {}
    vgeom = villages.set_index("code").geometry
    for code in sorted(touched):
        mine = blocks[blocks["grid_code"] == code]
        if len(mine) == 0:
            problems.append(("grid_empty", f"grid {code} would have no block left: move blocks into it, "
                             "or leave it at least one", {"grid": code}))
            continue
        geom = shapely.coverage_union_all(mine.geometry.to_numpy())
        if geom.geom_type != "Polygon":
            pieces = int(shapely.get_num_geometries(geom))
            problems.append(("grid_in_pieces", f"grid {code} would be in {pieces} pieces: "
                             "a grid is one polygon; move blocks that touch it along an edge",
                             {"grid": code, "pieces": pieces}))
            continue
        geoms[code] = geom
    if geoms:
        codes = list(geoms)
        vg = np.array([vgeom.get(str(grids.set_index("code").loc[c, "village_code"])) for c in codes],
                      dtype=object)
        bad = enclaves(np.array([geoms[c] for c in codes], dtype=object), vg)
        for c, b in zip(codes, bad):
            if b:
                problems.append(("grid_hole", f"grid {c} would surround other land of its village (a hole): "
                                 "a grid has a hole only where its village has one", {"grid": c}))
    return geoms, problems


def _band(report: dict) -> tuple[float, float]:
    return parse_band((report.get("params") or {}).get("band") or DEFAULT_BAND)


def _grid_rows(grids: gpd.GeoDataFrame) -> list[dict]:
    """Grid rows as JSON (geometry as WKB hex): an edit's undo snapshot."""
    out = []
    for rec, wkb in zip(grids[["code", "name", "village_code", "kind", *COUNT_COLUMNS]].to_dict("records"),
                        shapely.to_wkb(grids.geometry.to_numpy(), hex=True)):
        out.append({**{k: (int(v) if k in COUNT_COLUMNS else v) for k, v in rec.items()}, "geometry": wkb})
    return out


def _measure(store: Store, report: dict, new: gpd.GeoDataFrame, villages: gpd.GeoDataFrame, touched_villages,
             roads) -> tuple[dict, pd.DataFrame, dict, pd.DataFrame]:
    """Metrics of the villages an edit touched, and of the whole plan (each labelled)."""
    band = _band(report)
    exempt = set((report.get("metrics") or {}).get("grids_exempt_below_floor") or [])
    road = roads if len(roads) else None
    mine = new[new["village_code"].isin(set(touched_villages))]
    vm, vper = evaluate(mine, villages[villages["code"].isin(set(touched_villages))], road, band=band, exempt=exempt)
    pm, pper = evaluate(new, villages[villages["code"].isin(set(new["village_code"]))], road, band=band,
                        exempt=exempt)
    vm = {"scope": "villages " + ", ".join(sorted(set(touched_villages))), **vm}
    pm = {"scope": "plan", **pm}
    return vm, vper, pm, pper


def _apply(store: Store, row: dict, grids: gpd.GeoDataFrame, blocks: gpd.GeoDataFrame,
           touched: set[str], edit: dict, actor: str, *, before: gpd.GeoDataFrame,
           added: dict[str, str] | None = None, removed: set[str] | None = None,
           preview: bool = False) -> dict:
    """Validate and write an edit of a draft; returns what changed, the warnings and the
    metrics of the villages touched and of the plan (labelled).

    ``blocks`` is the draft's blocks after the edit, ``before`` before it; ``added`` the
    grids the edit creates (code -> name), ``removed`` those it ends. The touched village's
    blocks and grids before the edit are kept in the edit's line of the report, for
    :func:`undo`. ``preview``: check and measure, write nothing.
    """
    added, removed = dict(added or {}), set(removed or ())
    villages = _villages(store)
    vcode = grids.set_index("code")["village_code"].reindex(sorted((touched | removed) - set(added))).dropna()
    touched_villages = sorted(set(vcode))
    new = grids.copy()
    if added:
        extra = gpd.GeoDataFrame({"code": list(added), "name": list(added.values()),
                                  "village_code": touched_villages[0], "kind": "basic",
                                  **{c: 0 for c in COUNT_COLUMNS}},
                                 geometry=[None] * len(added), crs=4326)
        new = gpd.GeoDataFrame(pd.concat([new, extra], ignore_index=True), geometry="geometry", crs=4326)
    new = new[~new["code"].isin(removed)].reset_index(drop=True)
    live = touched - removed
    geoms, problems = _check_edit(blocks, new, live, villages)
    if problems:
        raise _refused(*problems)
    report = dict(row.get("report") or {})
    band = _band(report)
    totals = blocks.groupby("grid_code")[[*COUNT_COLUMNS, "workload"]].sum()
    new = new.set_index("code")
    for code, geom in geoms.items():
        new.at[code, "geometry"] = geom
        for c in COUNT_COLUMNS:
            new.at[code, c] = int(round(totals.loc[code, c]))
    new = gpd.GeoDataFrame(new.reset_index(), geometry="geometry", crs=4326)
    new["workload"] = new["code"].map(totals["workload"]).fillna(new["households"]).astype(float)
    old_hh = grids.set_index("code")["households"]
    before_hh = {c: float(old_hh.get(c, 0.0)) for c in sorted(touched | removed)}
    after_hh = new.set_index("code")["households"]
    warnings = []
    for code in sorted(live):
        w = float(new.set_index("code").loc[code, "workload"])
        if not band[0] <= w <= band[1]:
            warnings.append(f"grid {code} now holds a workload of {w:,.0f}, outside the band "
                            f"{band[0]:,.0f}-{band[1]:,.0f}")
    roads = store.read("roads")
    vm, vper, metrics, per_grid = _measure(store, report, new, villages, touched_villages, roads)
    if not vm.get("contiguous", True) or (vm.get("overlap_area_m2") or 0) > get_settings().area_tolerance_m2:
        raise _refused(("tiling_broken", f"the edit would break the tiling of the village: {vm}",
                        {"villages": touched_villages}))
    summary = {**edit, "at": dt.datetime.now(dt.timezone.utc).isoformat(), "actor": actor,
               "households_before": before_hh,
               "households_after": {c: float(after_hh.get(c, 0.0)) for c in sorted(live)},
               "added": sorted(added), "removed": sorted(removed), "warnings": warnings}
    touched_rows = vper[vper["code"].isin(live)].to_dict("records")
    result = {"plan": row["version"], **summary, "metrics": vm, "plan_metrics": metrics, "grids": touched_rows,
              "band": list(band), "preview": preview}
    if preview:
        return jsonable(result)
    old_metrics = report.get("metrics") or {}
    metrics = {k: v for k, v in metrics.items() if k != "scope"}
    metrics.update({k: old_metrics[k] for k in ("blocks", "runtime_s") if k in old_metrics})
    metrics["blocks"] = int(len(blocks))
    report["metrics"] = metrics
    report["grids"] = per_grid.merge(new[["code", "name", "households", "population"]], on="code").to_dict("records")
    report[_BLOCK_KEY] = _encode_blocks(blocks)
    snap = {"village": touched_villages[0],
            "blocks": _encode_blocks(before[before["village_code"].isin(touched_villages)]),
            "grids": _grid_rows(grids[grids["village_code"].isin(touched_villages)])}
    report["edits"] = list(report.get("edits") or []) + [{**summary, "undo": snap}]
    _write_grids(store, row, report, new, changed=live, added=set(added), removed=removed)
    with store.engine.begin() as conn:
        Store.audit(conn, actor=actor, action="plan.edit", entity="plans", entity_id=str(row["id"]),
                    detail=jsonable({k: v for k, v in summary.items() if k not in ("at", "actor")}))
    return jsonable(result)


def _write_grids(store: Store, row: dict, report: dict, new: gpd.GeoDataFrame, *, changed: set[str],
                 added: set[str], removed: set[str]) -> None:
    """Write a draft's changed, added and removed grids and its report in one transaction."""
    g = schema.grids
    with store.engine.begin() as conn:
        current = conn.execute(select(schema.plans.c.status).where(schema.plans.c.id == row["id"])).scalar()
        if current != "draft":
            raise IllegalTransition(f"plan {row['version']!r} was {current} meanwhile: only a draft can be edited")
        if removed:
            conn.execute(g.delete().where(g.c.plan_id == row["id"], g.c.code.in_(sorted(removed))))
        if added:
            conn.execute(g.insert(), _grid_records(new[new["code"].isin(added)], row["id"]))
        recs = _grid_records(new[new["code"].isin(changed - added)], row["id"])
        if recs:
            conn.execute(
                g.update().where(g.c.plan_id == bindparam("_plan"), g.c.code == bindparam("_code")).values(
                    geometry=bindparam("geometry"), households=bindparam("households"),
                    population=bindparam("population"), buildings=bindparam("buildings"),
                    name=bindparam("name")),
                [{"_plan": r["plan_id"], "_code": r["code"], "geometry": r["geometry"], "households": r["households"],
                  "population": r["population"], "buildings": r["buildings"], "name": r["name"]} for r in recs])
        conn.execute(schema.plans.update().where(schema.plans.c.id == row["id"]).values(report=jsonable(report)))


def move_blocks(store: Store, ref: int | str, blocks: Iterable[int], to_grid: str, *,
                actor: str = "cli", preview: bool = False) -> dict:
    """Move ``blocks`` (ids of the draft's blocks) to grid ``to_grid`` of the same village.

    Raises
    ------
    NotFound
        An unknown block or grid.
    InvalidPlan
        The edit would cross a village boundary, leave a grid empty, in pieces or with a
        hole; nothing was written.
    IllegalTransition
        The plan is not a draft.
    """
    row, grids, allb = _draft(store, ref)
    before = allb.copy()
    ids = [int(b) for b in blocks]
    known = set(allb["block"].astype(int))
    unknown = [b for b in ids if b not in known]
    if unknown:
        raise NotFound(f"no block {', '.join(map(str, unknown[:5]))} in plan {row['version']!r}")
    target = grids[grids["code"] == str(to_grid)]
    if len(target) == 0:
        raise NotFound(f"no grid {to_grid!r} in plan {row['version']!r}")
    village = target["village_code"].iloc[0]
    sel = allb["block"].isin(ids).to_numpy()
    other = allb.loc[sel & (allb["village_code"] != village).to_numpy()]
    if len(other):
        raise _refused(*[("crosses_village", f"block {int(b)} lies in village {v}, grid {to_grid} in village "
                          f"{village}: a grid never crosses a village boundary",
                          {"block": int(b), "village": v, "grid": str(to_grid), "grid_village": village})
                         for b, v in zip(other["block"], other["village_code"])])
    sources = set(allb.loc[sel, "grid_code"]) - {str(to_grid)}
    if not sources:
        raise _refused(("already_in_grid", f"the block(s) are in grid {to_grid} already", {"grid": str(to_grid)}))
    allb.loc[sel, "grid_code"] = str(to_grid)
    moved = allb.loc[sel]
    edit = {"action": "move_blocks", "blocks": ids, "to_grid": str(to_grid), "from_grids": sorted(sources),
            "moved_households": float(moved["households"].sum())}
    return _apply(store, row, grids, allb, sources | {str(to_grid)}, edit, actor, before=before, preview=preview)


def move_households(store: Store, ref: int | str, households: Iterable[str], to_grid: str, *,
                    actor: str = "cli", preview: bool = False) -> dict:
    """Move households (codes of the store) to grid ``to_grid`` of their village.

    The block holding a household is split around it: the Voronoi cells of the address
    points in the block, clipped to it, separate the household's cell from the rest, and
    that cell moves. Households at the same address point move together. The cell must
    touch ``to_grid`` along an edge, or the edit is refused.
    """
    row, grids, allb = _draft(store, ref)
    before = allb.copy()
    codes = [str(c) for c in households]
    hh = store.read("households")
    found = hh[hh["code"].isin(codes)]
    missing = sorted(set(codes) - set(found["code"]))
    if missing:
        raise NotFound(f"no household {', '.join(missing[:5])} in the database")
    target = grids[grids["code"] == str(to_grid)]
    if len(target) == 0:
        raise NotFound(f"no grid {to_grid!r} in plan {row['version']!r}")
    village = target["village_code"].iloc[0]
    tol = get_settings().snap_tolerance_m
    bgeoms = allb.geometry.to_numpy()
    x, y = shapely.get_x(hh.geometry.to_numpy()), shapely.get_y(hh.geometry.to_numpy())
    from gridgeo.locate import Locator

    loc = Locator.from_frame(gpd.GeoDataFrame({"i": np.arange(len(allb))}, geometry=bgeoms, crs=4326), "i",
                             tolerance=tol, cells_per_grid=16)
    hh_block = pd.Series(loc.locate(x, y), dtype=object).fillna(-1).to_numpy(dtype=np.int64)
    sel = hh["code"].isin(codes).to_numpy()
    outside = hh.loc[sel & (hh_block < 0), "code"].tolist()
    if outside:
        raise InvalidPlan([f"household {c} is in no grid of plan {row['version']!r}" for c in outside])
    wrong = hh.loc[sel & (allb["village_code"].to_numpy()[np.maximum(hh_block, 0)] != village), "code"].tolist()
    if wrong:
        raise InvalidPlan([f"household {c} is not in village {village} of grid {to_grid}: a grid never "
                           "crosses a village boundary" for c in wrong])
    already = hh.loc[sel & (allb["grid_code"].to_numpy()[np.maximum(hh_block, 0)] == str(to_grid)), "code"].tolist()
    if len(already) == len(codes):
        raise InvalidPlan([f"household(s) {', '.join(already[:5])} are in grid {to_grid} already"])
    # Carve: the cells of the chosen address points in each block they are in.
    carve_lines = []
    carve_zone = []
    for b in np.unique(hh_block[sel]):
        in_b = hh_block == b
        pts = np.unique(shapely.get_coordinates(hh.geometry.to_numpy()[in_b]), axis=0)
        chosen = np.unique(shapely.get_coordinates(hh.geometry.to_numpy()[in_b & sel]), axis=0)
        block = bgeoms[b]
        if len(pts) == len(chosen):
            carve_zone.append(block)
            continue
        cells = shapely.get_parts(shapely.voronoi_polygons(
            shapely.multipoints(pts), extend_to=shapely.envelope(block).buffer(1e-3)))
        cells = cells[shapely.contains_xy(cells[:, None], chosen[:, 0], chosen[:, 1]).any(axis=1)] \
            if len(cells) else cells
        zone = shapely.intersection(shapely.union_all(cells), block)
        carve_zone.append(zone)
        carve_lines.append(clip_lines(shapely.boundary(shapely.union_all(cells)), block))
    vil_sel = (allb["village_code"] == village).to_numpy()
    if carve_lines:
        mine = (hh_block >= 0) & vil_sel[np.maximum(hh_block, 0)]
        allb = _recut(allb, vil_sel, carve_lines, hh[mine], tol)
        vil_sel = (allb["village_code"] == village).to_numpy()
    zone = shapely.union_all(carve_zone)
    rep = shapely.point_on_surface(allb.geometry.to_numpy())
    inside = vil_sel & shapely.contains_xy(zone, shapely.get_x(rep), shapely.get_y(rep))
    sources = set(allb.loc[inside, "grid_code"]) - {str(to_grid)}
    allb.loc[inside, "grid_code"] = str(to_grid)
    edit = {"action": "move_households", "households": codes, "to_grid": str(to_grid),
            "from_grids": sorted(sources),
            "moved_households": float(hh.loc[sel, "households"].sum())}
    return _apply(store, row, grids, allb, sources | {str(to_grid)}, edit, actor, before=before, preview=preview)


def _grid_of(grids: gpd.GeoDataFrame, code: str, row: dict) -> pd.Series:
    hit = grids[grids["code"] == str(code)]
    if len(hit) == 0:
        raise NotFound(f"no grid {code!r} in plan {row['version']!r}")
    return hit.iloc[0]


def split_grid(store: Store, ref: int | str, grid: str, blocks: Iterable[int], *, actor: str = "cli",
               preview: bool = False) -> dict:
    """Split grid ``grid`` of a draft along its blocks: ``blocks`` (ids) become a new grid of
    the same village, with the next free code and a name of the sample's pattern. Both
    grids must stay one polygon without holes (else :class:`InvalidPlan`, nothing written)."""
    from gridgeo.plan.divide import grid_name

    row, grids, allb = _draft(store, ref)
    before = allb.copy()
    g = _grid_of(grids, grid, row)
    ids = {int(b) for b in blocks}
    mine = allb["grid_code"] == str(grid)
    inside = set(allb.loc[mine, "block"].astype(int))
    foreign = sorted(ids - inside)
    if foreign:
        raise _refused(*[("split_foreign_block", f"block {b} is not in grid {grid}: a split takes blocks of the "
                          "grid split", {"block": b, "grid": str(grid)}) for b in foreign[:5]])
    if not ids or ids == inside:
        raise _refused(("split_none_or_all", f"a split needs some of the blocks of grid {grid}, not none nor all "
                        f"({len(inside)} block(s))", {"grid": str(grid), "blocks": len(inside)}))
    village = str(g["village_code"])
    taken = {int(c[len(village):]) for c in grids["code"] if c.startswith(village) and c[len(village):].isdigit()}
    seq = next(n for n in range(1, 1000) if n not in taken) if len(taken) < 999 else None
    if seq is None:
        raise _refused(("village_full", f"village {village} has 999 grids: codes allow no more", {"village": village}))
    code = f"{village}{seq:03d}"
    vil = _villages(store).set_index("code")
    count = int((grids["village_code"] == village).sum()) + 1
    name = grid_name(str(vil.at[village, "township"]), str(vil.at[village, "name"]), seq, count)
    allb.loc[allb["block"].isin(ids).to_numpy(), "grid_code"] = code
    edit = {"action": "split_grid", "grid": str(grid), "to_grid": code, "blocks": sorted(ids),
            "moved_households": float(allb.loc[allb["grid_code"] == code, "households"].sum())}
    return _apply(store, row, grids, allb, {str(grid), code}, edit, actor, before=before,
                  added={code: name}, preview=preview)


def merge_grids(store: Store, ref: int | str, grid: str, other: str, *, actor: str = "cli",
                preview: bool = False) -> dict:
    """Merge grid ``other`` into ``grid`` (same village, sharing an edge): ``other``'s blocks
    join ``grid`` and ``other`` ends. The merged grid must be one polygon without holes."""
    row, grids, allb = _draft(store, ref)
    before = allb.copy()
    a, b = _grid_of(grids, grid, row), _grid_of(grids, other, row)
    if str(grid) == str(other):
        raise _refused(("merge_itself", f"grid {grid} cannot be merged with itself", {"grid": str(grid)}))
    if a["village_code"] != b["village_code"]:
        raise _refused(("merge_across_villages", f"grid {other} is in village {b['village_code']}, grid {grid} in "
                        f"village {a['village_code']}: a grid never crosses a village boundary",
                        {"grid": str(grid), "other": str(other), "village": a["village_code"],
                         "other_village": b["village_code"]}))
    moved = allb["grid_code"] == str(other)
    allb.loc[moved, "grid_code"] = str(grid)
    edit = {"action": "merge_grids", "to_grid": str(grid), "from_grids": [str(other)],
            "moved_households": float(allb.loc[moved, "households"].sum())}
    return _apply(store, row, grids, allb, {str(grid)}, edit, actor, before=before, removed={str(other)},
                  preview=preview)


def undo(store: Store, ref: int | str, *, actor: str = "cli") -> dict:
    """Undo the last edit of a draft not undone yet: its village's blocks and grids come back
    as they were before it. Returns the edit undone.

    Raises
    ------
    InvalidPlan
        No edit to undo.
    """
    row, grids, allb = _draft(store, ref)
    report = dict(row.get("report") or {})
    edits = list(report.get("edits") or [])
    last = next((i for i in range(len(edits) - 1, -1, -1) if edits[i].get("undo") and not edits[i].get("undone")),
                None)
    if last is None:
        raise _refused(("nothing_to_undo", f"plan {row['version']!r} has no edit to undo", {"plan": row["version"]}))
    snap = edits[last]["undo"]
    village = snap["village"]
    old_blocks = _decode_blocks(snap["blocks"])
    blocks = pd.concat([allb[allb["village_code"] != village], old_blocks], ignore_index=True)
    blocks = gpd.GeoDataFrame(blocks, geometry="geometry", crs=4326).sort_values("block").reset_index(drop=True)
    rows = snap["grids"]
    old = gpd.GeoDataFrame([{k: v for k, v in r.items() if k != "geometry"} for r in rows],
                           geometry=shapely.from_wkb([r["geometry"] for r in rows]), crs=4326)
    new = pd.concat([grids[grids["village_code"] != village].drop(columns=["plan_id"], errors="ignore"), old],
                    ignore_index=True)
    new = gpd.GeoDataFrame(new, geometry="geometry", crs=4326)
    now = set(grids.loc[grids["village_code"] == village, "code"])
    then = set(old["code"])
    edits[last] = {**edits[last], "undone": dt.datetime.now(dt.timezone.utc).isoformat()}
    report["edits"] = edits
    report[_BLOCK_KEY] = _encode_blocks(blocks)
    villages = _villages(store)
    vm, _, metrics, per_grid = _measure(store, report, new.assign(workload=new["households"].astype(float)),
                                       villages, [village], store.read("roads"))
    report["metrics"] = {**{k: v for k, v in metrics.items() if k != "scope"}, "blocks": int(len(blocks))}
    report["grids"] = per_grid.merge(new[["code", "name", "households", "population"]], on="code").to_dict("records")
    _write_grids(store, row, report, new, changed=then & now, added=then - now, removed=now - then)
    summary = {k: v for k, v in edits[last].items() if k != "undo"}
    with store.engine.begin() as conn:
        Store.audit(conn, actor=actor, action="plan.undo", entity="plans", entity_id=str(row["id"]),
                    detail=jsonable({"undone": summary.get("action"), "at": summary.get("at"), "village": village}))
    return jsonable({"plan": row["version"], "undone": summary, "metrics": vm, "plan_metrics": {"scope": "plan", **metrics}})


def renumber_preview(store: Store, ref: int | str) -> pd.DataFrame:
    """The codes the numbering rule (:func:`gridgeo.plan.divide.number_grids`: west→east in
    latitude bands from the north) would give each grid of a plan, per village, beside the
    codes it has: code, name, village_code, renumbered (the rule's code), changes. Grids
    continued from the plan in force keep their codes when a plan is re-planned, so a
    draft's codes can differ from the rule; this shows how before publishing."""
    from gridgeo.plan.divide import number_grids

    _, grids = read_plan(store, ref)
    cent = shapely.centroid(grids.geometry.to_numpy())
    cx, cy = shapely.get_x(cent), shapely.get_y(cent)
    out = np.empty(len(grids), dtype=object)
    vcodes = grids["village_code"].astype(str).to_numpy()
    for v in np.unique(vcodes):
        sel = np.flatnonzero(vcodes == v)
        order = sel[number_grids(cx[sel], cy[sel])]
        for seq, r in enumerate(order, 1):
            out[r] = f"{v}{seq:03d}"
    frame = pd.DataFrame({"code": grids["code"].to_numpy(), "name": grids["name"].to_numpy(),
                          "village_code": vcodes, "renumbered": out})
    frame["changes"] = frame["code"] != frame["renumbered"]
    return frame


def plan_blocks(store: Store, ref: int | str) -> tuple[dict, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The plan row, its grids and the blocks they are made of (block, village_code,
    grid_code, counts, workload): what a manual edit moves (``/v1/plans/{id}/blocks``
    and the console's editor show them)."""
    row, grids = read_plan(store, ref)
    return row, grids, _blocks(row, grids)


def blocks_at(store: Store, ref: int | str, lon, lat) -> list[int | None]:
    """The block ids of a draft at points (lon/lat), None where no block is: so that an edit
    can be asked for by a place instead of an id."""
    from gridgeo.locate import Locator

    row, grids = read_plan(store, ref)
    allb = _blocks(row, grids)
    loc = Locator.from_frame(gpd.GeoDataFrame({"block": allb["block"].astype(int)}, geometry=allb.geometry.to_numpy(),
                                              crs=4326), "block", tolerance=0, cells_per_grid=16)
    got = loc.locate(np.atleast_1d(np.asarray(lon, dtype=float)), np.atleast_1d(np.asarray(lat, dtype=float)))
    return [None if v is None or v != v else int(v) for v in got]


def _recut(blocks: gpd.GeoDataFrame, village: np.ndarray, lines, households: gpd.GeoDataFrame,
           tol: float) -> gpd.GeoDataFrame:
    """Re-polygonize a village's blocks with extra cut lines; pieces keep their block's grid.

    All the village's block edges are noded once with the new lines, so neighbours keep
    sharing exact vertices. The largest piece of a block keeps its id; other pieces get
    new ids. Household totals of the village's blocks are counted again.
    """
    from gridgeo.plan.blocks import _faces, _lines

    old = blocks[village]
    vgeom = shapely.coverage_union_all(old.geometry.to_numpy())
    linework = shapely.union_all(np.concatenate([
        _lines(shapely.boundary(old.geometry.to_numpy())),
        _lines(np.concatenate([np.atleast_1d(np.asarray(x, dtype=object)) for x in lines]))]))
    faces = _faces(shapely.get_parts(linework), vgeom)
    rep = shapely.point_on_surface(faces)
    fi, bi = shapely.STRtree(old.geometry.to_numpy()).query(rep, predicate="within")
    owner = np.full(len(faces), -1)
    owner[fi] = bi
    if (owner < 0).any():
        raise InternalError("a re-cut piece lies in no block")
    m = Metric(_crs.metric_epsg(float(np.mean(shapely.bounds(vgeom)[[0, 2]]))))
    area = m.area(faces)
    ids = old["block"].to_numpy()[owner].astype(int)
    order = np.lexsort((-area, owner))
    first = np.zeros(len(faces), dtype=bool)
    first[order[np.unique(owner[order], return_index=True)[1]]] = True
    next_id = int(blocks["block"].max()) + 1
    ids[~first] = np.arange(next_id, next_id + (~first).sum())
    new = gpd.GeoDataFrame({
        "block": ids,
        "village_code": old["village_code"].to_numpy()[owner],
        "grid_code": old["grid_code"].to_numpy()[owner],
    }, geometry=faces, crs=4326)
    from gridgeo.locate import Locator

    loc = Locator.from_frame(gpd.GeoDataFrame({"i": np.arange(len(new))}, geometry=faces, crs=4326), "i",
                             tolerance=tol, cells_per_grid=16)
    hx, hy = shapely.get_x(households.geometry.to_numpy()), shapely.get_y(households.geometry.to_numpy())
    where = pd.Series(loc.locate(hx, hy), dtype=object).fillna(-1).to_numpy(dtype=np.int64)
    hit = where >= 0
    idx = where[hit]
    for c in COUNT_COLUMNS:
        vals = pd.to_numeric(households[c], errors="coerce").fillna(1 if c == "households" else 0).to_numpy()[hit]
        new[c] = np.bincount(idx, weights=vals, minlength=len(new))
    # Blocks keep their workload per household (the planner's weights).
    ratio = (old["workload"].sum() / old["households"].sum()) if old["households"].sum() else 1.0
    new["workload"] = new["households"] * ratio
    out = pd.concat([blocks[~village], new], ignore_index=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=4326).sort_values("block").reset_index(drop=True)


def plan_staffing(store: Store, ref: int | str, *, households_per_worker: int | None = None) -> pd.DataFrame:
    """:func:`~gridgeo.plan.staffing.staffing` of a stored plan against the store's staff."""
    from gridgeo.plan.staffing import staffing

    _, grids = read_plan(store, ref)
    return staffing(grids, store.read("staff"), households_per_worker=households_per_worker)
