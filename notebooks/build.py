"""Write the analyst notebooks (without outputs) from the cells below.

    .venv/bin/python notebooks/build.py

Edit the cells here, not the .ipynb files: this keeps the stored notebooks free of
outputs and execution counts, and their JSON valid. tests/project/test_notebooks.py runs them.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

# The first code cell of every notebook: a throw-away SQLite database with the sample.
SETUP_NOTE = """\
A throw-away SQLite database (临时数据库) in a temporary folder, with the synthetic sample
township of `data/sample` loaded through the public API. Nothing here touches `gridgeo.db`.
To work on a real database instead, pass its URL to `Store(...)` and skip the loading."""

SHOW = '''from gridgeo.maps import show'''

SHOW_NOTE = """\
`maps.show(m)` draws a map inline, with its vendored Leaflet (no CDN) inlined, so it works
offline. `maps.save(m, "map.html")` writes the same page to a file."""


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str):
    return new_code_cell(text.strip("\n"))


PLANNING = [
    md("""
# Grid planning (网格划分)

The social-development department (社会发展部) divides every village (行政村) and community
(社区) into grids (网格) of balanced workload. Workload is counted in households (户): a
grid should hold between a floor and a ceiling, the *band* (e.g. 300–500 households).

This notebook divides the sample township with two bands, compares the two divisions
(metrics and maps), saves one as a draft plan (草案), publishes it (发布) with an
effective date, and lists the households (户) that change grid."""),
    md(SETUP_NOTE),
    code("""
import datetime as dt
import tempfile

import pandas as pd

from gridgeo import maps
from gridgeo.plan import lifecycle
from gridgeo.sample import load_sample
from gridgeo.store import Store

store = Store(f"sqlite:///{tempfile.mkdtemp()}/gridgeo.db")
store.migrate()
load_sample(store)
store.counts()
"""),
    md(SHOW_NOTE),
    code(SHOW),
    md("""
## Villages and households (行政村与住户)

Every layer is a GeoDataFrame. The villages and communities are the `divisions` of level
`village` / `community`; the households layer holds address points with a household
count. The plan in force (现行方案) is the sample's: one grid per village, with the
street's communities already divided."""),
    code("""
divisions = store.read("divisions")
villages = divisions[divisions["level"].isin(["village", "community"])]
households = store.read("households")
per_village = (households.groupby("village_code")["households"].sum()
               .rename("households (户数)").to_frame()
               .join(villages.set_index("code")[["name", "level"]]))
per_village.sort_values("households (户数)", ascending=False)
"""),
    md("""
## Divide with two bands (两种户数标准)

`plan_from_store` divides the villages of the store with its households, roads and
rivers (grid boundaries prefer them) and staff. Band 300:500 is the usual rule; 200:400
gives smaller grids, and so more of them (and more grid workers needed)."""),
    code("""
bands = {"300:500": (300, 500), "200:400": (200, 400)}
plans = {label: lifecycle.plan_from_store(store, band=band) for label, band in bands.items()}
"""),
    md("""
## Compare the metrics (方案指标对比)

Each plan's `report["metrics"]`: the number of grids, their mean workload and largest
deviation from the target, the share of grids inside the band, compactness
(Polsby–Popper, 1 = a circle), the share of grid boundaries that follow roads and rivers
(`road_share`), and the checks a plan must pass (contiguous, no gaps, no overlaps).
`report["problems"]` lists whatever the planner could not satisfy."""),
    code("""
keys = ["grids", "workload_mean", "deviation_max", "deviation_mean", "share_in_band",
        "polsby_popper_mean", "polsby_popper_min", "road_share", "inter_grid_boundary_km",
        "contiguous", "gap_area_m2", "overlap_area_m2"]
comparison = pd.DataFrame({label: plan.report["metrics"] for label, plan in plans.items()}).loc[keys]
comparison
"""),
    code("""
{label: plan.report["problems"] for label, plan in plans.items()}
"""),
    md("""
Grids per village (每村网格数) under each band: the villages near the floor keep one grid
either way; the large communities are split further under 200:400."""),
    code("""
grids_per_village = pd.DataFrame({label: plan.grids.groupby("village_code").size()
                                  for label, plan in plans.items()}).fillna(0).astype(int)
grids_per_village.join(villages.set_index("code")["name"]).sort_values("200:400", ascending=False)
"""),
    md("""
## Compare the maps (方案地图对比)

`maps.plan_map(right, left)` puts two divisions side by side, synchronised: here
300:500 on the left and 200:400 on the right. Hover a grid for its households."""),
    code("""
show(maps.plan_map(plans["200:400"].grids, plans["300:500"].grids, villages,
                   draft_label="200:400", current_label="300:500"))
"""),
    md("""
## Save a draft and publish it (保存草案并发布)

`save_draft` stores the 300:500 division as a draft plan; `publish` checks it as an
import would (overlaps, gaps, grids leaving their village, households in no grid) and
makes it take effect on a date, ending the plan in force that day."""),
    code("""
draft = lifecycle.save_draft(store, plans["300:500"], version="draft-300-500",
                             name="按300-500户调整网格", actor="analyst")
published = lifecycle.publish(store, draft["id"], effective_from=dt.date(2027, 1, 1), actor="analyst")
store.plans()
"""),
    md("""
## Which households change grid (住户网格变动)

`diff` locates every household in both plans and lists those whose grid differs:
the households whose grid worker (网格员) changes on the effective date."""),
    code("""
moved = lifecycle.diff(store, "2024-01", published["version"])
print(f"{len(moved)} address points, {moved['households'].sum()} households change grid")
moved.head(10)
"""),
    code("""
(moved.groupby("village_code")
      .agg(points=("code", "size"), households=("households", "sum"),
           from_grids=("from_grid", "nunique"), to_grids=("to_grid", "nunique"))
      .join(villages.set_index("code")["name"])
      .sort_values("households", ascending=False))
"""),
    md("""
The published plan beside the plan it replaces, changed grids highlighted
(`maps.plan_from_store(store, new, against=old)`)."""),
    code("""
show(maps.plan_from_store(store, published["version"], against="2024-01"))
"""),
]


EVENTS = [
    md("""
# Events and workload (事件与工作量)

A year of events (事件, October 2025 – September 2026) reported by grid workers on
patrol (巡查), the 12345 hotline, letters and visits (信访) and apps, located in grids,
routed to the four platforms (四个平台) and played through the workflow
(上报 → 受理 → 分流交办 → 处置 → 办结 → 核查 → 结案).

This notebook shows where events are located (some in GCJ-02 coordinates), the workload
(工作量) per grid and per grid worker (网格员), the hot spots (热点), the time patterns
(by month, weekday and hour), and the under-staffed grids (人员不足的网格)."""),
    md(SETUP_NOTE + """

`replay_sample` loads the sample year of events through the intake rules and the state
machine (about 10–15 s)."""),
    code("""
import tempfile

import geopandas as gpd
import pandas as pd

from gridgeo import maps
from gridgeo import workload
from gridgeo.config import get_settings
from gridgeo.crs import convert, metric_epsg
from gridgeo.events.replay import replay_sample
from gridgeo.lookup import Lookup
from gridgeo.sample import load_sample
from gridgeo.store import Store

store = Store(f"sqlite:///{tempfile.mkdtemp()}/gridgeo.db")
store.migrate()
load_sample(store)
replay = replay_sample(store)
pd.Series(replay.located_by, name="events located by (定位方式)")
"""),
    md(SHOW_NOTE),
    code(SHOW),
    md("""
## Locating events (事件定位)

Phones and map apps in China report WGS84, CGCS2000, GCJ-02 (AMap, Tencent, WeChat:
"火星坐标") or BD-09 (Baidu). The raw file has a `crs` column. GCJ-02 is offset by a few
hundred metres, more than a grid's width in a town: located as if it were WGS84, an
event lands in the wrong grid."""),
    code("""
raw = pd.read_csv(get_settings().sample_dir / "events.csv")
raw["crs"].value_counts().rename("events (事件数)")
"""),
    code("""
gcj = raw[raw["crs"] == "gcj02"]
lon, lat = convert(gcj["lon"], gcj["lat"], "gcj02", "wgs84")
gauss_kruger = metric_epsg(float(lon.mean()))   # CGCS2000 3-degree zone, metres
offset_m = (gpd.GeoSeries.from_xy(gcj["lon"], gcj["lat"], crs=4326).to_crs(gauss_kruger)
            .distance(gpd.GeoSeries.from_xy(lon, lat, crs=4326, index=gcj.index).to_crs(gauss_kruger)))
lookup = Lookup(store, cache_dir=None)
as_wgs84 = lookup.many(gcj["lon"], gcj["lat"], crs="wgs84")   # wrong: the offset ignored
as_gcj02 = lookup.many(gcj["lon"], gcj["lat"], crs="gcj02")   # right
pd.Series({
    "GCJ-02 events": len(gcj),
    "median offset, m (偏移)": round(float(offset_m.median()), 1),
    "in another grid if read as WGS84": int((as_wgs84["grid_code"] != as_gcj02["grid_code"]).sum()),
})
"""),
    md("""
Every event located with its own coordinate system: the grid (网格), village and
township (乡镇/街道) of each one, and the points outside the jurisdiction (辖区外)."""),
    code("""
located = pd.concat([lookup.many(part["lon"], part["lat"], crs=crs).set_index(part.index)
                     for crs, part in raw.groupby("crs")]).sort_index()
located[["grid_code", "village_name", "township_name", "snapped", "outside"]].join(raw[["code", "crs"]]).head()
"""),
    code("""
located.groupby("village_name", dropna=False).size().sort_values(ascending=False).rename("events")
"""),
    md("""
## Workload per grid (网格工作量)

`workload.per_grid` over the sample year: households (户), people, grid workers (专职/兼职
网格员), events and their status at the end of the year, events per worker and per 100
households, and the staffing flags."""),
    code("""
AS_OF = "2026-10-01T00:00:00+08:00"   # the figures as they stood the day after the year
grid_load = workload.per_grid(store, "2025-10/2026-09", now=pd.Timestamp(AS_OF).to_pydatetime())
grid_load.sort_values("per_worker", ascending=False).head(10)
"""),
    md("""
## Workload per grid worker (网格员工作量)

`workload.per_worker`: every person on the roster, with the households and events of the
grids they serve. `events_share` divides each grid's events among its workers."""),
    code("""
worker_load = workload.per_worker(store, "2025-10/2026-09", table=grid_load)
worker_load.sort_values("events_share", ascending=False).head(10)
"""),
    md("""
The workload map (工作量分布图): grids shaded by events per worker."""),
    code("""
show(maps.workload_from_store(store, measure="per_worker", period="2025-10/2026-09"))
"""),
    md("""
## Hot spots (事件热点)

The events map: events as clusters and as a heat map (热力图), with a time slider."""),
    code("""
show(maps.events_from_store(store, period="2025-10/2026-09"))
"""),
    md("""
The grids with most events per 100 households (每百户事件数):"""),
    code("""
grid_load.nlargest(10, "per_100_households")[["name", "households", "events", "per_100_households", "overdue"]]
"""),
    md("""
## Time patterns (时间规律)

Events by month (月), weekday (周一 Mon … 周日 Sun) and hour of day (时段), in China Standard
Time (北京时间), per platform
(平台: 综治工作 stability, 市场监管 market, 综合执法 enforcement, 便民服务 service)."""),
    code("""
events = workload.read_events(store, "2025-10/2026-09")
local = events["reported_at"].dt.tz_convert("Asia/Shanghai")
by_month = pd.crosstab(local.dt.strftime("%Y-%m"), events["platform"])
by_weekday = pd.crosstab(local.dt.day_of_week, events["platform"]).rename(
    index=dict(enumerate(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])))
by_hour = pd.crosstab(local.dt.hour, events["platform"])
by_month
"""),
    code("""
by_weekday
"""),
    code("""
try:
    import matplotlib.pyplot as plt
except ImportError:        # matplotlib comes with the `notebooks` extra
    plt = None
if plt is not None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.5))
    by_month.plot(ax=axes[0], title="by month", marker=".")
    by_weekday.plot.bar(ax=axes[1], title="by weekday", stacked=True, legend=False)
    by_hour.plot(ax=axes[2], title="by hour (CST)", legend=False)
    for ax in axes:
        ax.set_xlabel("")
    fig.tight_layout()
"""),
    md("""
## Under-staffed grids (人员配备不足的网格)

A grid needs a grid head (网格长), an instructor (网格指导员) and one worker per so many
households. `understaffed` marks grids short of that; `shortfall` says what is missing."""),
    code("""
short = grid_load[grid_load["understaffed"]]
print(f"{len(short)} of {len(grid_load)} grids are under-staffed")
short[["name", "households", "workers", "need_workers", "shortfall", "events", "per_worker"]].sort_values(
    "per_worker", ascending=False)
"""),
    md("""
The coverage map (覆盖与配备图): grids coloured by staffing completeness."""),
    code("""
show(maps.coverage_from_store(store))
"""),
]


ASSESSMENT = [
    md("""
# Assessment (考核), 2026-Q3

The command room (综合指挥室) assesses departments (部门), the four platforms (四个平台:
综治工作 stability, 市场监管 market, 综合执法 enforcement, 便民服务 service), grids and
workers over a period. The indicators (指标), as docs/design.md has them:

| indicator | 中文 | definition |
|---|---|---|
| `acceptance_rate` | 立案率 | accepted ÷ received |
| `dispatch_rate` | 派遣率 | dispatched ÷ accepted |
| `closure_rate` | 结案率 | closed ÷ due |
| `on_time_rate` | 按期结案率 | closed on time ÷ due |
| `rework_rate` | 返工率 | reworked ÷ due |
| `extension_rate` | 延期率 | extended ÷ due |
| `satisfied_rate` | 满意率 | rated 4–5 ÷ rated |

This notebook shows them per department and per platform for the third quarter of 2026
(2026年第三季度), ranks the units with a minimum volume, and looks at overdue events
(超期事件)."""),
    md(SETUP_NOTE + """

The events are replayed through the workflow (`replay_sample`, about 10–15 s). The
figures are taken *as of* 1 October 2026, the day after the quarter, so that they do not
change with the day the notebook runs."""),
    code("""
import tempfile

import pandas as pd

from gridgeo import assess
from gridgeo.events.replay import replay_sample
from gridgeo.sample import load_sample
from gridgeo.store import Store

store = Store(f"sqlite:///{tempfile.mkdtemp()}/gridgeo.db")
store.migrate()
load_sample(store)
replay_sample(store)

PERIOD, AS_OF = "2026-Q3", "2026-10-01T00:00:00+08:00"
tables = assess.assess_many(store, PERIOD, ["platform", "department", "grid", "category", "total"], as_of=AS_OF)
"""),
    md("""
## Per platform (各平台)

Counts (上报 received, 立案 accepted, 派遣 dispatched, 应结案 due, 结案 closed, 按期结案
closed on time ...), times to close and satisfaction, and the rates. `to_chinese` gives the
same table with Chinese labels, as a report would print it."""),
    code("""
RATES = ["acceptance_rate", "dispatch_rate", "closure_rate", "on_time_rate",
         "rework_rate", "extension_rate", "satisfied_rate"]
platforms = tables["platform"]
platforms[["name", "received", "accepted", "due", "closed", "overdue", "hours_to_close_mean"] + RATES].round(3)
"""),
    code("""
assess.to_chinese(platforms[["name", "received", "due", "closed_on_time"] + RATES].round(3))
"""),
    md("""
## Per department (各部门)

Events are counted for the department they were (last) routed or dispatched to; the row
with no code holds events never routed (rejected at intake, for instance)."""),
    code("""
departments = tables["department"]
departments[["name", "received", "due", "closed", "overdue", "hours_to_close_p90"] + RATES].round(3)
"""),
    md("""
## Rankings with a minimum volume (排名与最低事件量)

A unit with two due events both closed on time would top the table at 100 %. `rank`
ranks only the units with at least `min_volume` events in the indicator's denominator
(due events for 按期结案率); the others follow, unranked, with the reason. With the
default threshold (20) every department qualifies and a small office with 20 due events
comes first; with 50 the small offices are listed after the ranked ones."""),
    code("""
ranked = assess.rank(departments, "on_time_rate", min_volume=50)
print(ranked.attrs["explanation_zh"])
ranked[["name", "due", "on_time_rate", "rank", "tied", "note"]].round(3)
"""),
    md("""
The same for grids (网格排名), by 按期结案率 and by satisfaction (满意率): with the
default minimum volume (`GRIDGEO_RANKING_MIN_VOLUME`, 20), grids with few due events in
the quarter are listed after the ranked ones."""),
    code("""
grid_rank = assess.rank(tables["grid"], "on_time_rate")
print(f"{int(grid_rank['eligible'].sum())} of {len(grid_rank)} grids ranked (min volume {grid_rank.attrs['min_volume']})")
pd.concat([grid_rank.head(5), grid_rank.tail(5)])[["name", "due", "on_time_rate", "rank", "note"]].round(3)
"""),
    md("""
## Overdue events (超期分析)

`overdue` is a snapshot at `as_of`: events still open in a state that runs against the
deadline and past a deadline that fell before the end of the quarter. `closed - closed_on_time`
is the events closed late (逾期结案). Which platforms, departments and categories (事项)
carry them?"""),
    code("""
def overdue_view(table):
    out = table[["name", "due", "closed", "closed_on_time", "overdue", "extended"]].copy()
    out["closed_late"] = out["closed"] - out["closed_on_time"]
    out["late_or_overdue_rate"] = (out["closed_late"] + out["overdue"]) / out["due"].where(out["due"] > 0)
    return out.sort_values("late_or_overdue_rate", ascending=False)

overdue_view(platforms).round(3)
"""),
    code("""
overdue_view(tables["category"]).head(10).round(3)
"""),
    code("""
tables["total"][["received", "due", "closed", "closed_on_time", "overdue"] + RATES].round(3)
"""),
]


NOTEBOOKS = {
    "01_planning.ipynb": PLANNING,
    "02_events_workload.ipynb": EVENTS,
    "03_assessment.ipynb": ASSESSMENT,
}


def build(folder: Path = HERE) -> list[Path]:
    written = []
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells, metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        })
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"{Path(name).stem[:2]}-{i:02d}"   # stable ids: no churn on rebuild
        nbformat.validate(nb)
        path = folder / name
        nbformat.write(nb, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in build():
        print(path)
