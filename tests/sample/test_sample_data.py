"""The committed sample data set (``data/sample``): complete, consistent and up to date."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from gridgeo.layers import LAYERS, PLATFORMS, STAFF_ROLES, SOURCES
from helpers.paths import ROOT

SAMPLE = ROOT / "data" / "sample"
GPKG = SAMPLE / "township.gpkg"
GPKG_LAYERS = ("divisions", "grids", "households", "roads")
CSV_LAYERS = ("staff", "categories", "events")
FILES = ("township.gpkg", "staff.csv", "categories.csv", "events.csv", "event_actions.csv")
ACTION_COLUMNS = ["event_code", "seq", "at", "action", "actor_role", "note", "rating"]
ACTIONS = {"accept", "reject", "dispatch", "return", "escalate", "extend", "supervise",
           "suspend", "start", "resolve", "rework", "verify", "close", "rate"}
ACTOR_ROLES = {"command_room", "platform_office", "department", "grid_worker", "reporter"}
METRIC = 4549  # CGCS2000 / 3-degree Gauss-Kruger CM 120E
GEOM_TYPES = {"divisions": {"Polygon"}, "grids": {"Polygon"}, "households": {"Point"},
              "roads": {"LineString"}}


@pytest.fixture(scope="module")
def layers():
    return {name: pyogrio.read_dataframe(GPKG, layer=name) for name in GPKG_LAYERS}


@pytest.fixture(scope="module")
def tables():
    names = CSV_LAYERS + ("event_actions",)
    return {name: pd.read_csv(SAMPLE / f"{name}.csv", dtype=str, keep_default_na=False)
            for name in names}


@pytest.fixture(scope="module")
def metric(layers):
    return {name: layers[name].to_crs(METRIC) for name in ("divisions", "grids", "households")}


def test_files_exist_and_stay_small():
    sizes = {name: (SAMPLE / name).stat().st_size for name in FILES}
    assert sum(sizes.values()) < 20e6, sizes


def test_csv_files_are_utf8_with_lf_line_endings():
    for name in FILES[1:]:
        raw = (SAMPLE / name).read_bytes()
        raw.decode("utf-8")
        assert b"\r" not in raw, name
        assert raw.endswith(b"\n"), name


def test_gpkg_layers_have_the_contract_columns(layers):
    assert pyogrio.list_layers(GPKG)[:, 0].tolist() == list(GPKG_LAYERS)
    for name, frame in layers.items():
        assert list(frame.columns) == LAYERS[name].column_names + ["geometry"], name
        assert frame.crs.to_epsg() == 4326, name
        assert pyogrio.read_info(GPKG, layer=name)["geometry_name"] == "geometry"
        present = frame.geometry.dropna()
        assert set(present.geom_type) <= GEOM_TYPES[name], name
        assert present.is_valid.all(), name


def test_csv_tables_have_the_contract_columns(tables):
    for name in CSV_LAYERS:
        assert list(tables[name].columns) == LAYERS[name].column_names, name
    assert list(tables["event_actions"].columns) == ACTION_COLUMNS


def test_values_follow_the_layer_contract(layers, tables):
    frames = {**layers, **{n: tables[n] for n in CSV_LAYERS}}
    for name, frame in frames.items():
        for col in LAYERS[name].columns:
            values = frame[col.name]
            text = values.astype(str)
            empty = values.isna() | (text == "")
            if col.required:
                assert not empty.any(), f"{name}.{col.name} has empty values"
            text = text[~empty]
            if col.pattern:
                assert text.str.fullmatch(col.pattern).all(), f"{name}.{col.name}"
            if col.choices:
                assert text.isin(col.choices).all(), f"{name}.{col.name}"


def test_codes_are_unique_and_well_formed(layers, tables):
    div, grids, hh = layers["divisions"], layers["grids"], layers["households"]
    staff, cats, events = tables["staff"], tables["categories"], tables["events"]
    for frame, name in ((div, "divisions"), (grids, "grids"), (hh, "households"),
                        (cats, "categories"), (events, "events"), (layers["roads"], "roads")):
        assert frame["code"].is_unique, name
    assert (div["level"].value_counts().to_dict()
            == {"county": 1, "township": 1, "street": 1, "village": 13, "community": 5})
    parents = dict(zip(div["code"], div["parent_code"]))
    for code, parent in parents.items():
        if len(code) > 6:
            assert parent == code[:-3], code
    villages = set(div.loc[div["level"].isin(["village", "community"]), "code"])
    assert grids["code"].str.fullmatch(r"\d{15}").all()
    assert all(c.startswith(v) for c, v in zip(grids["code"], grids["village_code"]))
    assert set(grids["village_code"]) == villages
    assert set(hh["village_code"]) <= villages
    assert hh["code"].str.fullmatch(r"H\d{6}").all()
    assert hh["address"].is_unique
    assert not staff.duplicated(["code", "grid_code"]).any()
    # a person has one name, phone and role, whichever grid the row is for
    assert (staff.groupby("code")[["name", "phone", "role"]].nunique() == 1).all().all()
    assert set(staff["grid_code"]) <= set(grids["code"])
    assert set(events["category_code"]) <= set(cats["code"])
    patrol = events[events["source"] == "patrol"]
    assert (patrol["reporter_staff_code"] != "").all()
    assert set(patrol["reporter_staff_code"]) <= set(staff["code"])
    assert set(tables["event_actions"]["event_code"]) <= set(events["code"])


def test_grids_tile_each_village_without_gap_or_overlap(metric):
    div, grids = metric["divisions"], metric["grids"]
    geoms = np.array(grids.geometry)
    for code, village in zip(div["code"], div.geometry):
        if len(code) != 12:
            continue
        union = shapely.union_all(geoms[(grids["village_code"] == code).to_numpy()])
        assert shapely.symmetric_difference(union, village).area < 1.0, code
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    pair = left < right
    overlap = shapely.area(shapely.intersection(geoms[left[pair]], geoms[right[pair]]))
    assert overlap.max() < 1.0
    # and villages / communities tile their township / street
    for code, unit in zip(div["code"], div.geometry):
        if len(code) != 9:
            continue
        children = div[div["parent_code"] == code].geometry
        assert shapely.symmetric_difference(children.union_all(), unit).area < 1.0, code


def test_every_household_lies_inside_exactly_one_grid(metric, layers):
    grids, hh = metric["grids"], metric["households"]
    geoms = np.array(grids.geometry)
    pts = np.array(hh.geometry)
    idx_pt, idx_grid = shapely.STRtree(geoms).query(pts, predicate="within")
    assert np.array_equal(np.bincount(idx_pt, minlength=len(pts)), np.ones(len(pts), int))
    grid_of = np.empty(len(pts), dtype=int)
    grid_of[idx_pt] = idx_grid
    assert (grids["village_code"].to_numpy()[grid_of] == hh["village_code"].to_numpy()).all()
    # strictly inside: at least a metre from any grid edge
    assert shapely.distance(pts, shapely.boundary(geoms[grid_of])).min() >= 1.0
    # the grids' totals are the sums of their households
    sums = hh.groupby(grids["code"].to_numpy()[grid_of])[["households", "population",
                                                        "buildings"]].sum()
    g = layers["grids"].set_index("code")
    for col in ("households", "population", "buildings"):
        assert (g[col] == sums[col].reindex(g.index).fillna(0)).all(), col
    assert 18_000 <= hh["households"].sum() <= 22_000


def test_categories_cover_the_four_platforms(tables):
    cats = tables["categories"]
    assert len(cats) >= 40
    assert set(cats["platform"]) == set(PLATFORMS)
    assert (cats["deadline_hours"].astype(int) > 0).all()
    assert cats["major"].isin(["true", "false"]).all()
    assert (cats["major"] == "true").any()
    prefix = {"stability": "ZZ", "market": "SC", "enforcement": "ZF", "service": "BM"}
    assert all(c.startswith(prefix[p]) for c, p in zip(cats["code"], cats["platform"]))


def test_a_year_of_events_with_the_expected_mix(tables):
    ev = tables["events"]
    assert len(ev) >= 20_000
    assert ev["reported_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00").all()
    at = pd.to_datetime(ev["reported_at"], format="ISO8601")
    assert at.min() >= pd.Timestamp("2025-10-01T00:00:00+08:00")
    assert at.max() < pd.Timestamp("2026-10-01T00:00:00+08:00")
    assert set(ev["source"]) == set(SOURCES)
    assert ev["source"].value_counts().index[0] == "patrol"
    located = ev["lon"] != ""
    assert ((ev["lat"] != "") == located).all()
    assert (ev.loc[located, "crs"] != "").all() and (ev.loc[~located, "crs"] == "").all()
    share = ev.loc[located, "crs"].value_counts(normalize=True)
    assert 0.25 <= share["gcj02"] <= 0.40
    assert share["wgs84"] > share["gcj02"] > share["bd09"] > 0
    address_only = ~located & (ev["address"] != "")
    assert 0.03 <= address_only.mean() <= 0.08
    assert 0.002 <= (~located & (ev["address"] == "")).mean() <= 0.01


def test_every_grid_has_staff_and_a_few_are_understaffed(layers, tables):
    staff, grids = tables["staff"], layers["grids"]
    assert set(staff["grid_code"]) == set(grids["code"])
    roles = staff.groupby("grid_code")["role"].agg(set)
    assert roles.map(lambda r: bool(r & {"grid_head", "full_time_worker",
                                         "part_time_worker"})).all()
    assert set(staff["role"]) == set(STAFF_ROLES)
    missing = {role: int((~roles.map(lambda r, role=role: role in r)).sum())
               for role in ("grid_head", "full_time_worker", "instructor")}
    assert all(1 <= n <= 3 for n in missing.values()), missing
    # an instructor serves several grids
    inst = staff[staff["role"] == "instructor"]
    assert inst.groupby("code")["grid_code"].nunique().max() > 1


def test_event_actions_form_consistent_trails(tables):
    act, ev = tables["event_actions"], tables["events"]
    assert set(act["action"]) <= ACTIONS
    assert set(act["actor_role"]) <= ACTOR_ROLES
    seq = act["seq"].astype(int).to_numpy()
    t = pd.to_datetime(act["at"], format="ISO8601").to_numpy()
    same = (act["event_code"].to_numpy()[1:] == act["event_code"].to_numpy()[:-1])
    assert (seq[1:][same] == seq[:-1][same] + 1).all()
    assert (seq[1:][~same] == 1).all() and seq[0] == 1
    assert (t[1:][same] > t[:-1][same]).all()
    first = act.groupby("event_code", sort=False).head(1)
    reported = pd.to_datetime(ev.set_index("code").loc[first["event_code"], "reported_at"],
                              format="ISO8601").to_numpy()
    assert (t[first.index] > reported).all()
    rate = act["action"] == "rate"
    assert act.loc[rate, "rating"].isin(list("12345")).all()
    assert (act.loc[~rate, "rating"] == "").all()
    closed = act.loc[act["action"] == "close", "event_code"].nunique()
    assert 0.9 < closed / len(ev) < 0.99


def test_regenerating_gives_the_same_bytes_and_the_committed_data(tmp_path):
    """Same seed, same bytes (two runs here); and the committed files are up to date.

    CSV files must match the committed ones byte for byte. The GeoPackage is compared by
    content: its bytes also depend on the GDAL version that wrote it.
    """
    script = ROOT / "data" / "make_sample.py"
    runs = [tmp_path / "a", tmp_path / "b"]
    for out in runs:
        subprocess.run([sys.executable, str(script), "--out", str(out), "--quiet"],
                       check=True, cwd=ROOT, timeout=120)
    for name in FILES:
        a = hashlib.sha256((runs[0] / name).read_bytes()).hexdigest()
        b = hashlib.sha256((runs[1] / name).read_bytes()).hexdigest()
        assert a == b, f"{name}: two runs with the same seed differ"
        if name.endswith(".csv"):
            old = hashlib.sha256((SAMPLE / name).read_bytes()).hexdigest()
            assert a == old, f"{name} differs from a fresh run: run python data/make_sample.py"
    import pyogrio

    for layer in pyogrio.list_layers(SAMPLE / "township.gpkg")[:, 0]:
        old = pyogrio.read_dataframe(SAMPLE / "township.gpkg", layer=layer)
        new = pyogrio.read_dataframe(runs[0] / "township.gpkg", layer=layer)
        assert old.drop(columns="geometry").equals(new.drop(columns="geometry")), layer
        assert old.geometry.to_wkb().equals(new.geometry.to_wkb()), layer
