"""Scale-out on dask (gridgeo.scale): batch geolocation of partitioned GeoParquet and
assessment of archives give exactly what the in-process path gives, on a dask.distributed
LocalCluster of two worker processes (the production path, with a scheduler address)."""

from __future__ import annotations

import datetime as dt
import importlib
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from helpers.hand_built import AS_OF, CST, G1, add_bare_event
from typer.testing import CliRunner

from gridgeo.assess import GROUPINGS, assess_many, parse_period, read_facts
from gridgeo.assess.facts import as_utc
from gridgeo.cli import app
from gridgeo.config import get_settings
from gridgeo.errors import InvalidGeometry, InvalidInput, ServiceUnavailable, UnknownCRS
from gridgeo.lookup import Lookup
from gridgeo.scale import (
    InvalidArchive,
    archive_info,
    assess_archive,
    assess_archive_many,
    dask_client,
    export_archive,
    locate_parquet,
    partition_facts,
)
from gridgeo.scale.assess import _read_scope

GROUPS = list(GROUPINGS)  # every grouping, total included
runner = CliRunner()


@pytest.fixture(scope="module")
def client():
    """Two worker processes, one thread each; started once for the module (~2-4 s)."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as c,
    ):
        c.run(importlib.import_module, "gridgeo.scale")  # imports once, not in the first task
        yield c


@pytest.fixture(scope="module")
def archive(replayed, tmp_path_factory):
    root = tmp_path_factory.mktemp("archive") / "a"
    info = export_archive(replayed, root, chunk=5_000)  # several files per month
    return root, info


# -- batch geolocation ----------------------------------------------------------------------


def _points(store, n: int, seed: int) -> gpd.GeoDataFrame:
    """Points over the sample's grids and 2 km around them, every grid vertex (shared edges:
    the half-open rule), points just outside (snapped) and a few without geometry."""
    grids = store.read("grids")
    xmin, ymin, xmax, ymax = grids.total_bounds
    rng = np.random.default_rng(seed)
    x = rng.uniform(xmin - 0.02, xmax + 0.02, n)
    y = rng.uniform(ymin - 0.02, ymax + 0.02, n)
    vertices = shapely.get_coordinates(grids.geometry.boundary.to_numpy())[:500]
    out_x, out_y = (
        xmax + rng.uniform(0, 0.0008, 50),
        rng.uniform(ymin, ymax, 50),
    )  # up to ~80 m east
    geoms = shapely.points(np.r_[x, vertices[:, 0], out_x], np.r_[y, vertices[:, 1], out_y])
    geoms[rng.choice(len(geoms), 5, replace=False)] = None
    return gpd.GeoDataFrame(
        {"pid": np.arange(len(geoms)), "note": np.where(np.arange(len(geoms)) % 3, "巡查", None)},
        geometry=gpd.GeoSeries(geoms, crs=4326),
    )


def _write_parts(frame: pd.DataFrame, directory, parts: int) -> None:
    directory.mkdir(parents=True)
    for i, chunk in enumerate(np.array_split(np.arange(len(frame)), parts)):
        frame.iloc[chunk].to_parquet(directory / f"in-{i}.parquet", index=False)


def _in_process_locate(db_url: str, path, out, crs: str | None = None) -> gpd.GeoDataFrame:
    args = ["locate", str(path), "--out", str(out), "--database", db_url] + (
        ["--crs", crs] if crs else []
    )
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return gpd.read_parquet(out)


@pytest.mark.parametrize("epsg, crs", [(4326, None), (4549, None), (4326, "gcj02")])
def test_locate_parquet_equals_gridgeo_locate(replayed, client, tmp_path, epsg, crs):
    points = _points(replayed, 4_000, seed=epsg)
    if epsg != 4326:
        points = points.to_crs(epsg)  # a projected CGCS2000 Gauss-Krüger layer
    src = tmp_path / "points"
    _write_parts(points, src, 4)
    points.to_parquet(tmp_path / "all.parquet", index=False)
    summary = locate_parquet(src, tmp_path / "located", store=replayed, crs=crs, client=client)
    expected = _in_process_locate(
        str(replayed.engine.url), tmp_path / "all.parquet", tmp_path / "in.parquet", crs
    )
    got = gpd.read_parquet(tmp_path / "located").sort_values("pid").reset_index(drop=True)
    assert summary["partitions"] == 4 and len(summary["files"]) == 4
    pd.testing.assert_frame_equal(
        got, expected.sort_values("pid").reset_index(drop=True), check_exact=True
    )
    # the figures are real: points in grids, snapped, outside and invalid all occur
    assert summary["rows"] == len(points) and summary["located"] == int(
        got["grid_code"].notna().sum()
    )
    assert summary["located"] > 1_000 and summary["snapped"] > 0 and summary["outside"] > 500
    assert summary["invalid"] == 5 and got.crs.to_epsg() == 4326
    assert summary["plan"] == replayed.plan_in_force()["version"]


def test_locate_plain_parquet_lon_lat_bd09(replayed, client, tmp_path):
    points = _points(replayed, 3_000, seed=7)
    frame = pd.DataFrame(
        {
            "pid": points["pid"],
            "x": shapely.get_x(points.geometry.to_numpy()),
            "y": shapely.get_y(points.geometry.to_numpy()),
        }
    )
    frame.loc[3, ["x", "y"]] = [frame.loc[3, "y"], frame.loc[3, "x"]]  # swapped
    _write_parts(frame, tmp_path / "points", 3)
    with pytest.raises(UnknownCRS):
        locate_parquet(
            tmp_path / "points", tmp_path / "x", store=replayed, lon="x", lat="y", client=client
        )
    summary = locate_parquet(
        tmp_path / "points",
        tmp_path / "located",
        store=replayed,
        crs="bd09",
        lon="x",
        lat="y",
        client=client,
    )
    got = pd.read_parquet(tmp_path / "located").sort_values("pid").reset_index(drop=True)
    want = Lookup(replayed, cache_dir=None).many(frame["x"], frame["y"], crs="bd09")
    for col in ["grid_code", "grid_name", "village_code", "village_name"]:
        assert got[col].fillna("-").tolist() == pd.Series(want[col]).fillna("-").tolist(), col
    for col in ["snapped", "outside", "invalid", "swapped"]:
        assert got[col].tolist() == want[col].tolist(), col
    np.testing.assert_array_equal(got["distance_m"].to_numpy(), want["distance_m"].to_numpy())
    assert (
        list(got.columns[:3]) == ["pid", "x", "y"]
        and summary["swapped"] == 1
        and summary["located"] > 500
    )


def test_locate_refuses_to_overwrite(replayed, tmp_path):
    points = _points(replayed, 100, seed=1)
    _write_parts(points, tmp_path / "p", 1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(InvalidArchive, match="not empty"):
        locate_parquet(tmp_path / "p", tmp_path / "out", store=replayed)
    summary = locate_parquet(
        tmp_path / "p", tmp_path / "out", store=replayed, overwrite=True, client="sync"
    )
    assert summary["rows"] == len(points) and not (tmp_path / "out" / "keep.txt").exists()


# -- assessment over an archive ------------------------------------------------------------------


def test_export_writes_months_with_whole_histories(replayed, archive):
    root, info = archive
    assert archive_info(root) == info
    with replayed.engine.connect() as conn:
        n_events, n_actions = (
            conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar()
            for t in ("events", "event_actions")
        )
    assert (
        info["events"] == n_events
        and info["actions"] == n_actions
        and len(info["partitions"]) == 12
    )
    events = gpd.read_parquet(root / "events")  # the month comes from the directory names
    actions = pd.read_parquet(root / "actions")
    assert len(events) == n_events and len(actions) == n_actions
    month = events.set_index("id")["month"].astype(str)
    assert (
        actions["month"].astype(str).to_numpy() == month.reindex(actions["event_id"]).to_numpy()
    ).all()
    local = events["reported_at"].dt.tz_convert("Asia/Shanghai").dt.strftime("%Y-%m")
    assert (local.to_numpy() == events["month"].astype(str).to_numpy()).all()
    assert events.geometry.notna().sum() > 20_000 and events.crs.to_epsg() == 4326


def test_relocating_the_archive_agrees_with_the_pipeline(replayed, archive, client, tmp_path):
    root, _ = archive
    summary = locate_parquet(root / "events", tmp_path / "events", store=replayed, client=client)
    got = gpd.read_parquet(tmp_path / "events").set_index("id")
    events = gpd.read_parquet(root / "events").set_index("id")
    by_position = events["located_by"].isin(["coordinates", "snapped"]).to_numpy()
    assert by_position.sum() > 20_000 and summary["partitions"] == len(
        list((root / "events").rglob("*.parquet"))
    )
    assert (
        got.loc[events.index[by_position], "grid_code"] == events["grid_code"][by_position]
    ).all()
    assert got["month"].astype(str).tolist() == events["month"].astype(str).tolist()


@pytest.mark.parametrize(
    "period, as_of",
    [
        ("2026-Q3", "2026-10-15"),
        ("2025-10/2026-09", "2026-03-15"),
        ("2026-01", "2026-02-10T12:00:00+08:00"),
    ],
)
def test_archive_assessment_equals_in_process(replayed, archive, client, period, as_of):
    root, _ = archive
    want = assess_many(replayed, period, GROUPS, as_of=as_of)
    got = assess_archive_many(root, period, GROUPS, as_of=as_of, client=client)
    assert list(got) == GROUPS
    for g in GROUPS:
        pd.testing.assert_frame_equal(got[g], want[g], check_exact=True, obj=g)
        assert got[g].attrs == want[g].attrs
    assert (
        want["total"].loc["all", "received"] > 1_000
        and want["grid"]["hours_to_close_p90"].notna().sum() > 40
    )


def test_archive_action_flags_and_one_grouping(replayed, archive):
    root, _ = archive
    want = assess_many(replayed, "2026-Q2", ["department"], as_of="2026-07-31")["department"]
    got = assess_archive_many(
        root, "2026-Q2", "department", as_of="2026-07-31", flags="actions", client="sync"
    )
    pd.testing.assert_frame_equal(got["department"], want, check_exact=True)
    zh = assess_archive(root, "2026-Q2", "platform", as_of="2026-07-31", chinese=True)
    assert "按期结案率" in zh.columns and zh.index.name == "编码"


@pytest.fixture
def hand_built_and_bare(hand_built):
    """The hand-built township and its bare event."""
    add_bare_event(hand_built)  # never through the pipeline: placed at export, as read_facts places it
    return hand_built


def test_hand_built_township_on_both_databases(hand_built_and_bare, tmp_path):
    root = tmp_path / "archive"
    export_archive(hand_built_and_bare, root)
    received = []
    for as_of in (AS_OF, dt.datetime(2026, 7, 25, 12, tzinfo=CST), "2026-07-03"):
        want = assess_many(hand_built_and_bare, "2026-Q3", GROUPS, as_of=as_of)
        got = assess_archive_many(root, "2026-Q3", GROUPS, as_of=as_of, client="threads")
        for g in GROUPS:
            pd.testing.assert_frame_equal(
                got[g], want[g], check_exact=True, obj=f"{g} as of {as_of}"
            )
        received.append(int(got["grid"].loc[G1, "received"]))
    assert received == [5, 4, 1]  # the bare event (07-07) counts in G1


def test_partition_facts_equal_read_facts(hand_built_and_bare, tmp_path):
    root = tmp_path / "archive"
    export_archive(hand_built_and_bare, root)
    events = pd.read_parquet(root / "events").drop(columns="month")
    actions = pd.read_parquet(root / "actions").drop(columns="month")
    cats = pd.read_parquet(root / "reference" / "categories.parquet")
    for as_of in (AS_OF, dt.datetime(2026, 7, 25, 12, tzinfo=CST)):
        want = read_facts(hand_built_and_bare, "2026-Q3", as_of=as_of).sort_values("id").reset_index(drop=True)
        got = (
            partition_facts(events, actions, cats, "2026-Q3", as_of)
            .sort_values("id")
            .reset_index(drop=True)
        )
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        assert len(got) >= 8 and got["flags"].any()
        # The scope in its Parquet-filter form picks the events its SQL form picks, and
        # leaves some out (reported after as_of, or due before the period and done).
        period = parse_period("2026-Q3")
        pushed = _read_scope(root / "events", period, as_utc(as_of))
        assert sorted(pushed["id"]) == want["id"].tolist() and len(want) < len(events)


def test_errors_say_whose_fault(replayed, tmp_path, monkeypatch):
    """An unreachable scheduler is a missing service (503), bad input is the caller's (422)."""
    monkeypatch.setenv("GRIDGEO_DASK_CONNECT_TIMEOUT", "0.5")  # 10 s by default
    get_settings.cache_clear()
    try:
        with pytest.raises(ServiceUnavailable, match="no dask scheduler answers at tcp://127.0.0.1:9"):
            with dask_client("tcp://127.0.0.1:9"):
                pass
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert ServiceUnavailable.status == 503
    with pytest.raises(InvalidInput, match="positive number of workers"):
        with dask_client("local:two"):
            pass
    grids = replayed.read("grids")[["code", "geometry"]]
    grids.to_parquet(tmp_path / "polygons.parquet", index=False)
    with pytest.raises(InvalidGeometry, match="must hold points, not Polygon"):
        locate_parquet(tmp_path / "polygons.parquet", tmp_path / "out", store=replayed, client="sync")
    with pytest.raises(InvalidInput, match="give a store or a locator"):
        locate_parquet(tmp_path / "polygons.parquet", tmp_path / "out2")
    with pytest.raises(InvalidArchive) as info:
        archive_info(tmp_path)
    assert isinstance(info.value, InvalidInput) and info.value.status == 422


# -- the command line ----------------------------------------------------------------------------


def test_cli_export_report_and_locate_on_a_cluster(replayed, client, tmp_path):
    db = str(replayed.engine.url)
    address = client.scheduler.address  # as in production: tcp://host:port
    result = runner.invoke(app, ["archive", "export", str(tmp_path / "arch"), "--database", db])
    assert result.exit_code == 0, result.output
    assert "22,000 events" in result.output
    info = runner.invoke(app, ["archive", "info", str(tmp_path / "arch")])
    assert info.exit_code == 0 and "12 partitions by month" in info.output
    args = ["report", "--period", "2026-Q3", "--by", "platform,worker", "--as-of", "2026-10-01"]
    plain = runner.invoke(app, [*args, "--database", db])
    dask = runner.invoke(app, [*args, "--archive", str(tmp_path / "arch"), "--scheduler", address])
    assert plain.exit_code == 0 and dask.exit_code == 0, dask.output
    assert dask.stdout == plain.stdout and "stability,platform,综治工作" in dask.stdout
    body = runner.invoke(app, [*args, "--archive", str(tmp_path / "arch"), "--format", "json"])
    assert json.loads(body.stdout)["tables"]["platform"][0]["code"] == "stability"

    points = _points(replayed, 2_000, seed=3)
    _write_parts(points, tmp_path / "pts", 2)
    located = runner.invoke(
        app,
        [
            "locate",
            str(tmp_path / "pts"),
            "--out",
            str(tmp_path / "out"),
            "--database",
            db,
            "--scheduler",
            address,
        ],
    )
    assert located.exit_code == 0, located.output
    said = " ".join(located.output.split())  # the console wraps long paths at its width
    assert f"{len(points):,} points" in said and "(2 files" in said
    again = runner.invoke(
        app, ["locate", str(tmp_path / "pts"), "--out", str(tmp_path / "out"), "--database", db]
    )
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_cli_errors_say_what_is_wrong(tmp_path):
    bad = runner.invoke(app, ["report", "--period", "2026", "--scheduler", "local"])
    assert bad.exit_code == 2 and "--archive" in bad.output
    missing = runner.invoke(app, ["report", "--period", "2026", "--archive", str(tmp_path)])
    assert missing.exit_code == 1 and "not a gridgeo archive" in " ".join(missing.output.split())
    csv = tmp_path / "p.csv"
    csv.write_text("lon,lat\n119.4,28.4\n")
    wrong = runner.invoke(
        app, ["locate", str(csv), "--out", str(tmp_path / "o"), "--scheduler", "sync"]
    )
    assert wrong.exit_code == 2 and "Parquet" in wrong.output
