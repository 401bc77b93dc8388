"""``gridgeo plan``: divide villages into grids (``plan new``), then list, show, edit,
publish, compare and staff the plans in the database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from typer.core import TyperGroup

from gridgeo.cli.common import (DatabaseOpt, EffectiveFromOpt, deprecated, err, open_store, out, print_report,
                                progress)


class _PlanGroup(TyperGroup):
    """``gridgeo plan``, which also takes the old spelling of ``plan new``: options with no
    subcommand (``gridgeo plan --band 300:500 ...``) run ``plan new``, with a note on stderr."""

    def parse_args(self, ctx, args):  # noqa: D102 - click's
        if args and args[0].startswith("-") and args[0] not in ctx.help_option_names:
            deprecated("gridgeo plan OPTIONS", "gridgeo plan new OPTIONS")
            args = ["new", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_PlanGroup,
    help="Grid plans (网格方案): divide villages into grids (new), then list, show, edit (move), "
         "publish, compare (diff) and staff them.",
    no_args_is_help=True,
)


def _band(value: str) -> tuple[float, float]:
    from gridgeo.errors import InvalidInput
    from gridgeo.plan.bands import parse_band

    try:
        return parse_band(value)
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc), param_hint="--band") from None


def _weights(value: str | None) -> dict[str, float] | None:
    if not value:
        return None
    out = {}
    for part in value.split(","):
        name, _, w = part.partition("=")
        try:
            out[name.strip()] = float(w) if w else 1.0
        except ValueError:
            raise typer.BadParameter(f"{part!r} is not COLUMN=WEIGHT", param_hint="--workload") from None
    return out


def _read(path: Path, layer: str, crs: str | None):
    from gridgeo.io import read_sources

    sources, report = read_sources([path], layer=layer, crs=crs)
    if not report.ok or not sources:
        print_report(report, console=err)
        err.print(f"[red]error:[/red] cannot read the {layer} from {path}")
        raise typer.Exit(1)
    frame = sources[0].frame
    return frame.drop(columns=[c for c in ("_row", "_file") if c in frame.columns])


def _print_metrics(report: dict) -> None:
    m = report.get("metrics") or {}
    table = Table("metric", "value", title="plan")
    for key in ("grids", "blocks", "deviation_max", "deviation_mean", "share_in_band", "polsby_popper_mean",
                "polsby_popper_min", "road_share", "contiguous", "gap_area_m2", "overlap_area_m2", "runtime_s"):
        if key in m:
            table.add_row(key, str(m[key]))
    for key in ("grids_outside_band", "grids_exempt_below_floor", "grids_not_one_polygon", "grids_with_holes"):
        if m.get(key):
            table.add_row(key, ", ".join(m[key][:10]) + (" ..." if len(m[key]) > 10 else ""))
    out.print(table)
    for p in report.get("problems") or []:
        colour = "red" if p.get("severity") == "error" else "yellow"
        out.print(f"[{colour}]{p.get('severity')}:[/{colour}] {p.get('message')}")
    short = [s for s in report.get("staffing") or [] if s.get("short")]
    if short:
        out.print(f"{len(short)} grid(s) short of staff, e.g. " +
                  "; ".join(f"{s['code']}: {s['missing']}" for s in short[:5]))


def _print_replan(report: dict) -> None:
    r = report.get("replan")
    if not r:
        return
    out.print(f"started from plan {r.get('plan', 'in force')}: {len(r['kept'])} village(s) kept as they are, "
              f"{len(r['divided_again'])} divided again; {r['households_changing']:,} households at "
              f"{r['addresses_changing']:,} addresses change grid ({r['households_changing_share']:.1%})")
    touched = [v for v in report.get("villages") or [] if v.get("touched")]
    if touched:
        table = Table("village", "name", "grids", "households changing", "addresses changing", "why", title="divided again")
        for v in touched:
            table.add_row(v["code"], str(v["name"]), str(v["grids"]), f"{v['households_changing']:,}",
                          f"{v['addresses_changing']:,}", v["why"])
        out.print(table)


@app.command()
def new(
    villages: Annotated[Optional[Path], typer.Option(help="Villages / communities: polygons with a code column, or a divisions layer (default: the database's).")] = None,
    households: Annotated[Optional[Path], typer.Option(help="Household address points (households, population, buildings columns); default: the database's.")] = None,
    roads: Annotated[Optional[Path], typer.Option(help="Roads and rivers (lines); default: the database's when planning from it.")] = None,
    staff: Annotated[Optional[Path], typer.Option(help="Staff CSV, for the staffing check (default: the database's when planning from it).")] = None,
    band: Annotated[str, typer.Option(help="Workload band FLOOR:CEILING of a grid.")] = "300:500",
    per_village: Annotated[Optional[int], typer.Option(help="Grids per village instead of the band's choice.")] = None,
    target: Annotated[Optional[float], typer.Option(help="Preferred mean workload (default: the middle of the band).")] = None,
    tolerance: Annotated[float, typer.Option(help="Wanted |w - mean| / mean within a village.")] = 0.05,
    workload: Annotated[Optional[str], typer.Option(help="How points weigh, e.g. households=1,population=0.1 (default households).")] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same plan.")] = 0,
    exclaves: Annotated[str, typer.Option(help="A village part below the floor: 'own' grid or 'attach' to the nearest grid.")] = "own",
    lenient: Annotated[bool, typer.Option("--lenient", help="Plan even where the band cannot be met; the report lists it.")] = False,
    village: Annotated[Optional[list[str]], typer.Option("--village", help="From the database: plan only this village (repeatable).")] = None,
    within: Annotated[Optional[str], typer.Option(help="From the database: plan only villages whose code starts with this (a township).")] = None,
    crs: Annotated[Optional[str], typer.Option(help="CRS of input files that declare none (wgs84, cgcs2000, gcj02, bd09, EPSG:xxxx).")] = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the grids (and blocks) to this GeoPackage.")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write the report (metrics, villages, grids, problems) as JSON.")] = None,
    save_draft: Annotated[bool, typer.Option("--save-draft", help="Save the plan as a draft in the database.")] = False,
    version: Annotated[Optional[str], typer.Option(help="Version label of the saved draft.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Name of the saved draft.")] = None,
    from_scratch: Annotated[bool, typer.Option("--from-scratch", help="From the database: divide every village anew instead of starting from the plan in force.")] = False,
    database: DatabaseOpt = None,
) -> None:
    """Divide villages into grids of balanced workload that follow roads (网格划分).

    From the database, with a plan in force, planning starts from it: villages whose grids
    are valid and in the band keep them; the others are divided again close to their old
    grids (--from-scratch divides every village anew)."""
    import pandas as pd

    from gridgeo.plan import divide
    from gridgeo.plan.lifecycle import plan_from_store, save_draft as _save

    if out_path is None and not save_draft and report is None:
        raise typer.BadParameter("say where the plan goes: --out OUT.gpkg, --report R.json or --save-draft",
                                 param_hint="--out")
    if exclaves not in ("own", "attach"):
        raise typer.BadParameter("use own or attach", param_hint="--exclaves")
    kwargs = dict(band=_band(band), per_village=per_village, target=target, tolerance=tolerance,
                  workload=_weights(workload), seed=seed, exclaves=exclaves, strict=not lenient)
    with progress(6, "planning") as step:
        kwargs["progress"] = step
        if villages is None:
            store = open_store(database)
            result = plan_from_store(store, villages=village or None, within=within,
                                     from_scratch=from_scratch, **kwargs)
        else:
            vil = _read(villages, "divisions", crs)
            hh = _read(households, "households", crs) if households else None
            rd = _read(roads, "roads", crs) if roads else None
            st = pd.read_csv(staff, dtype=str, encoding="utf-8-sig") if staff else None
            result = divide(vil, hh, rd, staff=st, **kwargs)
    if out_path:
        result.to_file(out_path)
    if report:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(result.report, ensure_ascii=False, indent=1), encoding="utf-8")
    _print_metrics(result.report)
    _print_replan(result.report)
    if out_path:
        out.print(f"{len(result.grids)} grids, {len(result.blocks)} blocks -> {out_path}")
    if save_draft:
        row = _save(open_store(database), result, version=version, name=name, actor="cli")
        out.print(f"draft {row['version']} saved (id {row['id']}); publish with "
                  f"`gridgeo plan publish {row['id']} --effective-from YYYY-MM-DD`")


@app.command("list")
def list_plans(database: DatabaseOpt = None) -> None:
    """Every plan: id, version, status, dates, grids."""
    frame = open_store(database).plans()
    table = Table(*[str(c) for c in frame.columns])
    for row in frame.itertuples(index=False):
        table.add_row(*["" if v is None or v != v else str(v) for v in row])
    out.print(table)


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="Plan id or version.")],
    out_path: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write its grids and blocks to this GeoPackage.")] = None,
    database: DatabaseOpt = None,
) -> None:
    """A plan's status, dates and metrics; optionally its grids and blocks (for editing)."""
    from gridgeo.plan.lifecycle import _blocks, read_plan

    row, grids = read_plan(open_store(database), ref)
    out.print(f"plan {row['version']} (id {row['id']}): {row['status']}, "
              f"from {row['effective_from'] or '-'} to {row['effective_to'] or '-'}, {len(grids)} grids")
    _print_metrics(row.get("report") or {})
    if out_path:
        if out_path.exists():
            out_path.unlink()
        grids.drop(columns=["plan_id"], errors="ignore").to_file(out_path, layer="grids", driver="GPKG")
        _blocks(row, grids).to_file(out_path, layer="blocks", driver="GPKG")
        out.print(f"grids and blocks -> {out_path}")


@app.command()
def publish(
    ref: Annotated[str, typer.Argument(help="Draft id or version.")],
    effective_from: EffectiveFromOpt = None,
    version: Annotated[Optional[str], typer.Option(help="Version label (default: the effective date for a draft-... label).")] = None,
    allow_stranded: Annotated[bool, typer.Option("--allow-stranded", help="Publish even if staff are left without a grid.")] = False,
    database: DatabaseOpt = None,
) -> None:
    """Publish a draft after validating it; the staff move to the grids `plan transition`
    proposes. A plan that leaves staff without a grid is refused unless --allow-stranded."""
    from gridgeo.errors import StaffStranded
    from gridgeo.plan.lifecycle import publish as _publish

    try:
        row = _publish(open_store(database), ref, effective_from, version=version, actor="cli",
                       allow_stranded=allow_stranded)
    except StaffStranded as exc:
        err.print(f"[red]error:[/red] {len(exc.stranded)} staff post(s) would be left without a grid; "
                  "nothing was published (see `gridgeo plan transition`, or use --allow-stranded):")
        for s_ in exc.stranded:
            err.print(f"  {s_['name']} ({s_['code']}, {s_['role']}) on grid {s_['from_grid']}: {s_['why']}")
        raise typer.Exit(1) from None
    out.print(f"plan {row['version']} published, in force from {row['effective_from']}")


@app.command()
def transition(
    ref: Annotated[str, typer.Argument(help="Draft id or version.")],
    effective_from: EffectiveFromOpt = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the proposals to this CSV.")] = None,
    database: DatabaseOpt = None,
) -> None:
    """Where each grid head, instructor and worker goes if this draft is published; grids
    left without one; staff left without a grid."""
    from gridgeo.io.exporting import neutralise_formulas
    from gridgeo.plan.lifecycle import transition as _transition

    res = _transition(open_store(database), ref, effective_from)
    moving = res.proposals[res.proposals["to_grid"].notna() & (res.proposals["to_grid"] != res.proposals["from_grid"])]
    out.print(f"{len(res.proposals)} staff post(s): {len(moving)} move, {len(res.stranded)} left without a grid; "
              f"{len(res.unstaffed)} grid(s) missing someone")
    if len(moving):
        table = Table("staff", "name", "role", "from grid", "to grid", "why", title="moves")
        for r in moving.itertuples(index=False):
            table.add_row(r.code, r.name, r.role, r.from_grid, r.to_grid, r.why)
        out.print(table)
    for r in res.stranded.itertuples(index=False):
        err.print(f"[yellow]without a grid:[/yellow] {r.name} ({r.code}, {r.role}) on {r.from_grid}: {r.why}")
    for r in res.unstaffed.itertuples(index=False):
        out.print(f"grid {r.grid} ({r.name}) has no {'、'.join(r.missing)}")
    if out_path:
        neutralise_formulas(res.proposals).to_csv(out_path, index=False)
        out.print(f"-> {out_path}")


@app.command()
def diff(
    a: Annotated[str, typer.Argument(help="Plan id or version: with B, the plan compared from; alone, the plan compared with the plan in force.")],
    b: Annotated[Optional[str], typer.Argument(help="Plan id or version (to).")] = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write every change to this CSV.")] = None,
    database: DatabaseOpt = None,
) -> None:
    """Households and addresses that change grid between two plans."""
    from gridgeo.io.exporting import neutralise_formulas
    from gridgeo.plan.lifecycle import diff as _diff

    store = open_store(database)
    if b is None:
        current = store.plan_in_force()
        if current is None:
            raise typer.BadParameter("no plan in force: name both plans", param_hint="B")
        a, b = str(current["id"]), a
    frame = _diff(store, a, b)
    out.print(f"{len(frame):,} address points ({int(frame['households'].sum()):,} households) change grid "
              f"from plan {frame.attrs['from_plan']} to {frame.attrs['to_plan']}")
    per = frame.attrs.get("villages") or []
    if per:
        vt = Table("village", "addresses changing", "households changing", "of households", "why touched",
                   title="per village")
        for v in per:
            vt.add_row(v["village_code"], f"{v['addresses_changing']:,}", f"{v['households_changing']:,}",
                       f"{v['households']:,}", v.get("why") or "")
        out.print(vt)
    if len(frame):
        moves = frame.groupby(["from_grid", "to_grid"], dropna=False)["households"].agg(["size", "sum"])
        table = Table("from grid", "to grid", "points", "households")
        for (f, t), r in moves.sort_values("sum", ascending=False).head(30).iterrows():
            table.add_row(str(f), str(t), str(r["size"]), str(int(r["sum"])))
        out.print(table)
    if out_path:
        neutralise_formulas(frame).to_csv(out_path, index=False)
        out.print(f"-> {out_path}")


def _ids(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@app.command()
def move(
    ref: Annotated[str, typer.Argument(help="Draft id or version.")],
    to: Annotated[str, typer.Option("--to", help="Grid code the blocks or households go to.")],
    blocks: Annotated[Optional[str], typer.Option(help="Block ids, comma-separated (see `plan show --out`).")] = None,
    households: Annotated[Optional[str], typer.Option(help="Household codes, comma-separated.")] = None,
    at: Annotated[Optional[list[str]], typer.Option("--at", help="The block at LON,LAT (repeatable): no block id needed.")] = None,
    preview: Annotated[bool, typer.Option("--preview", help="Check and measure only; write nothing.")] = False,
    database: DatabaseOpt = None,
) -> None:
    """Move blocks (by id or by a point in them) or households between grids of a draft;
    the edit is validated first."""
    from gridgeo.plan.lifecycle import move_blocks, move_households

    if sum(map(bool, (blocks, households, at))) != 1:
        raise typer.BadParameter("give one of --blocks, --at or --households", param_hint="--blocks")
    store = open_store(database)
    if blocks or at:
        ids = _block_ids(store, ref, blocks, at)
        res = move_blocks(store, ref, ids, to, actor="cli", preview=preview)
    else:
        res = move_households(store, ref, _ids(households), to, actor="cli", preview=preview)
    out.print(("would move" if preview else "moved") +
              f" {res['moved_households']:,.0f} households to {res['to_grid']} from "
              f"{', '.join(res['from_grids'])}; households now: " +
              ", ".join(f"{c} {v:,.0f}" for c, v in res["households_after"].items()))
    _print_edit(res)


def _block_ids(store, ref: str, blocks: str | None, at: list[str] | None) -> list[int]:
    from gridgeo.plan.lifecycle import blocks_at

    if blocks:
        try:
            return [int(b) for b in _ids(blocks)]
        except ValueError:
            raise typer.BadParameter(f"{blocks!r}: block ids are integers", param_hint="--blocks") from None
    pts = []
    for p in at or []:
        try:
            lon, lat = (float(v) for v in p.split(","))
        except ValueError:
            raise typer.BadParameter(f"{p!r} is not LON,LAT", param_hint="--at") from None
        pts.append((lon, lat))
    found = blocks_at(store, ref, [p[0] for p in pts], [p[1] for p in pts])
    missing = [f"{x},{y}" for (x, y), b in zip(pts, found) if b is None]
    if missing:
        raise typer.BadParameter(f"no block of plan {ref} at {'; '.join(missing)}", param_hint="--at")
    return sorted(set(found))


def _print_edit(res: dict) -> None:
    for w in res["warnings"]:
        err.print(f"[yellow]warning:[/yellow] {w}")
    for label, m in (("villages touched", res.get("metrics") or {}), ("whole plan", res.get("plan_metrics") or {})):
        out.print(f"{label} ({m.get('scope')}): {m.get('grids')} grids, in band {m.get('share_in_band')}, "
                  f"Polsby-Popper mean {m.get('polsby_popper_mean')} (min {m.get('polsby_popper_min')}), "
                  f"max deviation {m.get('deviation_max')}")


@app.command()
def split(
    ref: Annotated[str, typer.Argument(help="Draft id or version.")],
    grid: Annotated[str, typer.Option("--grid", help="The grid to split.")],
    blocks: Annotated[Optional[str], typer.Option(help="Its blocks that form the new grid, comma-separated.")] = None,
    at: Annotated[Optional[list[str]], typer.Option("--at", help="The block at LON,LAT (repeatable).")] = None,
    preview: Annotated[bool, typer.Option("--preview", help="Check and measure only; write nothing.")] = False,
    database: DatabaseOpt = None,
) -> None:
    """Split a grid of a draft along blocks: the blocks given become a new grid."""
    from gridgeo.plan.lifecycle import split_grid

    if bool(blocks) == bool(at):
        raise typer.BadParameter("give either --blocks or --at", param_hint="--blocks")
    store = open_store(database)
    res = split_grid(store, ref, grid, _block_ids(store, ref, blocks, at), actor="cli", preview=preview)
    out.print(("would split" if preview else "split") + f" {grid}: new grid {res['to_grid']}; households now: " +
              ", ".join(f"{c} {v:,.0f}" for c, v in res["households_after"].items()))
    _print_edit(res)


@app.command()
def merge(
    ref: Annotated[str, typer.Argument(help="Draft id or version.")],
    grid: Annotated[str, typer.Argument(help="The grid that stays.")],
    other: Annotated[str, typer.Argument(help="The grid that joins it and ends.")],
    preview: Annotated[bool, typer.Option("--preview", help="Check and measure only; write nothing.")] = False,
    database: DatabaseOpt = None,
) -> None:
    """Merge two neighbouring grids of a draft (same village)."""
    from gridgeo.plan.lifecycle import merge_grids

    res = merge_grids(open_store(database), ref, grid, other, actor="cli", preview=preview)
    out.print(("would merge" if preview else "merged") + f" {other} into {grid}: "
              f"{res['households_after'].get(grid, 0):,.0f} households")
    _print_edit(res)


@app.command()
def undo(
    ref: Annotated[str, typer.Argument(help="Draft id or version.")],
    database: DatabaseOpt = None,
) -> None:
    """Undo the last edit of a draft."""
    from gridgeo.plan.lifecycle import undo as _undo

    res = _undo(open_store(database), ref, actor="cli")
    out.print(f"undone: {res['undone']['action']} of {res['undone']['at']}")


@app.command()
def renumber(
    ref: Annotated[str, typer.Argument(help="Plan id or version.")],
    database: DatabaseOpt = None,
) -> None:
    """Preview: the codes the numbering rule would give the plan's grids (re-planning keeps
    the codes of continuing grids, so they can differ)."""
    from gridgeo.plan.lifecycle import renumber_preview

    frame = renumber_preview(open_store(database), ref)
    changes = frame[frame["changes"]]
    out.print(f"{len(frame)} grids; {len(changes)} would take another code under the numbering rule")
    if len(changes):
        table = Table("grid", "name", "by the rule")
        for r in changes.itertuples(index=False):
            table.add_row(r.code, r.name, r.renumbered)
        out.print(table)


@app.command()
def staffing(
    ref: Annotated[str, typer.Argument(help="Plan id or version.")],
    households_per_worker: Annotated[Optional[int], typer.Option(help="One worker per this many households (default: the setting).")] = None,
    out_path: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the table to this CSV.")] = None,
    database: DatabaseOpt = None,
) -> None:
    """Staff each grid needs (1 grid head, 1 instructor, ceil(households / N) workers) and has."""
    from gridgeo.io.exporting import neutralise_formulas
    from gridgeo.plan.lifecycle import plan_staffing

    frame = plan_staffing(open_store(database), ref, households_per_worker=households_per_worker)
    short = frame[frame["short"]]
    out.print(f"{len(frame)} grids, {len(short)} short of staff")
    table = Table("grid", "households", "workers needed", "workers", "missing")
    for r in short.itertuples(index=False):
        table.add_row(r.code, str(r.households), str(r.need_workers), str(r.workers), r.missing)
    out.print(table)
    if out_path:
        neutralise_formulas(frame).to_csv(out_path, index=False)
        out.print(f"-> {out_path}")
