"""``gridgeo map coverage|workload|events|patrols|plan --out FILE.html``.

Registered on the ``gridgeo`` command through the ``gridgeo.cli`` entry point group
(pyproject.toml), so that the core never imports the maps layer. Each command writes
one self-contained HTML file: scripts, styles and data inlined, opening offline. Errors are
printed by the ``gridgeo`` command (:mod:`gridgeo.cli`), as for every command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gridgeo.cli.common import AtOpt, DatabaseOpt, err, open_store, out

OutOpt = Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.", dir_okay=False)]
VillageOpt = Annotated[Optional[str], typer.Option(help="Only this village or community: 12-digit code, code prefix (township) or name.")]
PeriodOpt = Annotated[Optional[str], typer.Option(help="2026, 2026-Q1, 2026-03, 2026-03-05 or 2025-10/2026-09 (default: the twelve months up to the latest event).")]
PlatformOpt = Annotated[Optional[str], typer.Option(help="Only one platform: stability, market, enforcement, service.")]
PlanOpt = Annotated[Optional[str], typer.Option(help="Grids of this plan version instead.")]
BasemapOpt = Annotated[Optional[str], typer.Option(help="Base map: none, tianditu (needs GRIDGEO_TIANDITU_KEY) or amap (default $GRIDGEO_MAP_BASEMAP, else none).")]

maps_app = typer.Typer(
    help="Save interactive maps (coverage, workload, events, patrols, plan) as HTML files that open offline; build an offline base map.",
    no_args_is_help=True,
)


def _save(m, path: Path, what: str) -> None:
    from gridgeo.maps.offline import render_html

    html = render_html(m)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    out.print(f"{what} map -> {path} ({len(html.encode('utf-8')) / 1e6:.2f} MB)")


def _basemap(name):
    from gridgeo.maps.base import get_basemap

    return get_basemap(name)


@maps_app.command("coverage")
def coverage(out_file: OutOpt, database: DatabaseOpt = None, village: VillageOpt = None,
             at: AtOpt = None, plan: PlanOpt = None, basemap: BasemapOpt = None) -> None:
    """Grids coloured by staffing completeness, village boundaries, who is in each grid."""
    from gridgeo.maps.coverage import coverage_from_store

    m = coverage_from_store(open_store(database), village=village, at=at, plan=plan,
                            basemap=_basemap(basemap))
    _save(m, out_file, "coverage")


@maps_app.command("workload")
def workload(
    out_file: OutOpt,
    database: DatabaseOpt = None,
    measure: Annotated[str, typer.Option(help="per_worker, per_100_households, open or overdue.")] = "per_worker",
    period: PeriodOpt = None, platform: PlatformOpt = None, village: VillageOpt = None,
    at: AtOpt = None, plan: PlanOpt = None, basemap: BasemapOpt = None,
) -> None:
    """A choropleth of each grid's events per worker, per 100 households, open or overdue."""
    from gridgeo.maps.workload import workload_from_store

    m = workload_from_store(open_store(database), measure=measure, period=period, platform=platform,
                            village=village, at=at, plan=plan, basemap=_basemap(basemap))
    _save(m, out_file, "workload")


@maps_app.command("events")
def events(out_file: OutOpt, database: DatabaseOpt = None, period: PeriodOpt = None,
           platform: PlatformOpt = None, village: VillageOpt = None, at: AtOpt = None,
           plan: PlanOpt = None, basemap: BasemapOpt = None) -> None:
    """Events as clusters and heat, with a time slider over the period."""
    from gridgeo.maps.events import events_from_store

    m = events_from_store(open_store(database), period=period, platform=platform, village=village,
                          at=at, plan=plan, basemap=_basemap(basemap))
    _save(m, out_file, "events")


@maps_app.command("patrols")
def patrols(out_file: OutOpt, database: DatabaseOpt = None,
            period: Annotated[Optional[str], typer.Option(help="2026, 2026-Q1, 2026-03, 2026-03-05 or a range (default: this month).")] = None,
            village: VillageOpt = None, basemap: BasemapOpt = None) -> None:
    """Patrol tracks over the grids, each grid coloured by its patrol coverage."""
    from gridgeo.maps.patrols import patrol_from_store

    m = patrol_from_store(open_store(database), period=period, village=village, basemap=_basemap(basemap))
    _save(m, out_file, "patrols")


@maps_app.command("plan")
def plan(
    out_file: OutOpt,
    database: DatabaseOpt = None,
    plan: Annotated[Optional[str], typer.Option("--plan", help="The plan to show (id or version); default the newest plan that is not in force.")] = None,
    draft: Annotated[Optional[Path], typer.Option(help="Or a grid file (GeoPackage, GeoJSON, ...) to show as the draft.", exists=True, dir_okay=False)] = None,
    against: Annotated[Optional[str], typer.Option(help="Compare with this plan instead of the plan in force.")] = None,
    at: AtOpt = None, village: VillageOpt = None, basemap: BasemapOpt = None,
) -> None:
    """A plan (or a draft file) beside the plan in force, the grids that change highlighted."""
    from gridgeo.maps.plan import plan_from_store, plan_map

    store = open_store(database)
    if draft is not None:
        import geopandas as gpd

        grids = gpd.read_file(draft)
        current = store.read("grids", plan=against) if against else store.read("grids", at=at)
        m = plan_map(grids, current, store.read("divisions"), draft_label=f"调整方案（{draft.name}）",
                     basemap=_basemap(basemap))
    else:
        if plan is None:
            plan = _newest_other_plan(store, at)
        m = plan_from_store(store, plan, against=against, at=at, village=village,
                            basemap=_basemap(basemap))
    _save(m, out_file, "plan")


@maps_app.command("basemap")
def basemap(
    out_file: Annotated[Path, typer.Argument(help="The archive to write: NAME.mbtiles or NAME.pmtiles.", dir_okay=False)],
    database: DatabaseOpt = None,
    min_zoom: Annotated[int, typer.Option(help="First zoom level (0..18).")] = 8,
    max_zoom: Annotated[int, typer.Option(help="Last zoom level (0..18); the browser zooms further into it.")] = 16,
    households: Annotated[bool, typer.Option(help="Add the household points (no attribute) from zoom 14. The archive is served to whoever opens the maps: leave them out unless only staff reach the server.")] = False,
) -> None:
    """An offline vector base map of the jurisdiction from the store's own roads, rivers and
    village outlines (GDAL's MVT writer): serve it with GRIDGEO_MAP_BASEMAP=archive and
    GRIDGEO_MAP_TILES=OUT."""
    from gridgeo.maps.basemap import build_basemap

    r = build_basemap(open_store(database), out_file, min_zoom=min_zoom, max_zoom=max_zoom, households=households)
    out.print(f"base map -> {r['path']}: {r['tiles']:,} tiles, zoom {r['min_zoom']}–{r['max_zoom']}, "
              f"layers {', '.join(r['layers'])} ({r['bytes'] / 1e6:.2f} MB)")
    out.print(f"serve it: GRIDGEO_MAP_BASEMAP=archive GRIDGEO_MAP_TILES={Path(r['path']).resolve()} gridgeo serve")


def _newest_other_plan(store, when) -> str:
    plans = store.plans()
    current = store.plan_in_force(when)
    others = plans[plans["id"] != (current["id"] if current else None)]
    if len(others) == 0:
        err.print("[red]error:[/red] no plan other than the one in force: give --plan or --draft")
        raise typer.Exit(1)
    return str(others.sort_values("id").iloc[-1]["version"])


def register(app: typer.Typer) -> None:
    """Add ``gridgeo map`` to the ``gridgeo`` command (the ``gridgeo.cli`` entry point)."""
    app.add_typer(maps_app, name="map")
