"""The tiny township, small enough to reason about by hand.

Two villages side by side, 0.01 degree squares near 119.40E 28.40N (about 980 m by
1110 m), each split into two grids west | east. Households sit inside the grids.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import shapely

X0, Y0, D = 119.40, 28.40, 0.01
V1, V2 = "331124201201", "331124201202"


def box(x0, y0, x1, y1):
    return shapely.box(x0, y0, x1, y1)


def make_tiny(tmp_path: Path) -> dict:
    """Write the tiny township's files into ``tmp_path`` (for fixtures of wider scope)."""
    div = gpd.GeoDataFrame(
        {
            "code": ["331124", "331124201", V1, V2],
            "name": ["松阳县", "测试乡", "东村", "西村"],
            "level": ["county", "township", "village", "village"],
            "parent_code": [None, "331124", "331124201", "331124201"],
        },
        geometry=[None, box(X0, Y0, X0 + 2 * D, Y0 + D), box(X0, Y0, X0 + D, Y0 + D),
                  box(X0 + D, Y0, X0 + 2 * D, Y0 + D)],
        crs=4326,
    )
    h = D / 2
    grids = gpd.GeoDataFrame(
        {
            "code": [V1 + "001", V1 + "002", V2 + "001", V2 + "002"],
            "name": ["东村一网格", "东村二网格", "西村一网格", "西村二网格"],
            "village_code": [V1, V1, V2, V2],
            "kind": ["basic"] * 4,
        },
        geometry=[box(X0, Y0, X0 + h, Y0 + D), box(X0 + h, Y0, X0 + D, Y0 + D),
                  box(X0 + D, Y0, X0 + D + h, Y0 + D), box(X0 + D + h, Y0, X0 + 2 * D, Y0 + D)],
        crs=4326,
    )
    pts = [(X0 + 0.002, Y0 + 0.002), (X0 + 0.007, Y0 + 0.005), (X0 + 0.012, Y0 + 0.008),
           (X0 + 0.017, Y0 + 0.003), (X0 + 0.018, Y0 + 0.009)]
    households = gpd.GeoDataFrame(
        {
            "code": [f"H{i:03d}" for i in range(1, 6)],
            "address": [f"测试乡东村{i}号" for i in range(1, 6)],
            "village_code": [V1, V1, V2, V2, V2],
            "households": [1, 2, 1, 3, 1],
            "population": [3, 5, 2, 8, 1],
        },
        geometry=[shapely.Point(p) for p in pts],
        crs=4326,
    )
    path = tmp_path / "tiny.gpkg"
    div.to_file(path, layer="divisions")
    grids.to_file(path, layer="grids")
    households.to_file(path, layer="households")
    staff = tmp_path / "staff.csv"
    staff.write_text(
        "code,name,phone,role,grid_code\n"
        f"P1,张三,13800000001,grid_head,{V1}001\n"
        f"P2,李四,13800000002,full_time_worker,{V1}001\n"
        f"P3,王五,13800000003,instructor,{V1}001\n"
        f"P3,王五,13800000003,instructor,{V1}002\n",
        encoding="utf-8",
    )
    categories = tmp_path / "categories.csv"
    categories.write_text(
        "code,name,platform,department,deadline_hours,major,description\n"
        "ZZ001,矛盾纠纷,stability,综治办,72,false,\n"
        "ZF001,违章搭建,enforcement,综合行政执法中队,120,false,\n",
        encoding="utf-8",
    )
    return {"gpkg": path, "staff": staff, "categories": categories, "divisions": div,
            "grids": grids, "households": households, "dir": tmp_path}
