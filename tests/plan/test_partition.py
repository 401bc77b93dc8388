"""The partition's refinements on hand-built block graphs (lattices of square blocks),
where the right answer is known: the road-aware recombination and polish."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from gridgeo.plan.blocks import BlockGraph
from gridgeo.plan.partition import (Objective, _csr, _extended, _grown_half, _repair, _rim_halves, components,
                                    holes, partition, polish, quality, recombine)

SIDE = 100.0  # metres


def lattice(rows: int, cols: int, weight=None, road_rows=(), road_cols=()) -> BlockGraph:
    """``rows`` x ``cols`` square blocks, block ``r * cols + c``. A road runs along the
    line below row ``r`` for each r in ``road_rows`` (between rows r - 1 and r), and
    left of column ``c`` for each c in ``road_cols``."""
    idx = np.arange(rows * cols).reshape(rows, cols)
    hu, hv = idx[:, :-1].ravel(), idx[:, 1:].ravel()  # left-right neighbours
    vu, vv = idx[:-1, :].ravel(), idx[1:, :].ravel()  # up-down neighbours
    h_road = np.isin(np.tile(np.arange(1, cols), rows), road_cols)
    v_road = np.isin(np.repeat(np.arange(1, rows), cols), road_rows)
    u, v = np.concatenate([hu, vu]), np.concatenate([hv, vv])
    n = rows * cols
    outer = np.zeros((rows, cols), dtype=bool)
    outer[0, :] = outer[-1, :] = outer[:, 0] = outer[:, -1] = True
    return BlockGraph(
        n=n, weight=np.ones(n) if weight is None else np.asarray(weight, dtype=float),
        area=np.full(n, SIDE * SIDE), perimeter=np.full(n, 4 * SIDE),
        edge_u=u.astype(np.int64), edge_v=v.astype(np.int64), edge_len=np.full(len(u), SIDE),
        edge_road=np.where(np.concatenate([h_road, v_road]), SIDE, 0.0), outer=outer.ravel(),
        lake_block=np.array([], dtype=np.int64), lake_id=np.array([], dtype=np.int64), n_lakes=0)


def objective(g: BlockGraph, k: int, tolerance: float) -> Objective:
    t = g.weight.sum() / k
    return Objective(target=t, low=t * (1 - tolerance), high=t * (1 + tolerance), tolerance=tolerance)


def assert_rules(g: BlockGraph, labels: np.ndarray, k: int):
    """Every part present, one piece, without a hole."""
    assert np.bincount(labels, minlength=k).min() > 0
    assert not components(_csr(g, g.edge_len), labels, k)
    assert not holes(_extended(g), labels, k, g.n)


def test_polish_moves_the_boundary_onto_the_road():
    # 4 x 4 blocks, a road between rows 1 and 2. The north part holds rows 0-1 and one
    # block of row 2 (9 blocks), the south part the other 7: band 7-9 allows it, but the
    # boundary leaves the road around that block. Moving it south puts the whole
    # boundary on the road, and makes both parts rectangles.
    g = lattice(4, 4, road_rows=(2,))
    start = np.array([0] * 8 + [0, 1, 1, 1] + [1] * 4)
    obj = objective(g, 2, tolerance=0.125)
    before = quality(g, start, 2)
    assert before["road_share"] == pytest.approx(3 / 5)
    res = polish(g, start, 2, obj)
    assert res.labels.tolist() == [0] * 8 + [1] * 8
    after = quality(g, res.labels, 2)
    assert after["road_share"] == 1.0
    assert after["pp_mean"] > before["pp_mean"]


def test_polish_keeps_the_band_even_for_a_road():
    # The same, but the band is exact (8 each): the move would take the north part to 8
    # and the south part to 9... no move keeps both at 8, so nothing moves.
    g = lattice(4, 4, road_rows=(2,))
    start = np.array([0] * 7 + [1] + [0, 1, 1, 1] + [1] * 4)  # 8 and 8, boundary off the road
    obj = objective(g, 2, tolerance=0.0)
    res = polish(g, start, 2, obj)
    assert res.moves == 0
    assert res.labels.tolist() == start.tolist()


def test_recombine_finds_the_road_split_single_moves_cannot_reach():
    # Two 2 x 4 halves side by side (west, east), exactly balanced: every single move
    # breaks the exact band. The road runs east-west between rows 1 and 2. Merging the
    # two and cutting again along the road gives the same shapes, all boundary on it.
    g = lattice(4, 4, road_rows=(2,))
    start = np.tile([0, 0, 1, 1], 4)
    obj = objective(g, 2, tolerance=0.0)
    assert polish(g, start, 2, obj).moves == 0
    labels, accepted = recombine(g, start, 2, obj, road_weight=1.0)
    assert accepted >= 1
    assert quality(g, labels, 2)["road_share"] == 1.0
    assert np.bincount(labels, weights=g.weight).tolist() == [8.0, 8.0]
    assert_rules(g, labels, 2)


@pytest.mark.parametrize("seed", range(6))
def test_partition_never_leaves_the_band_nor_breaks_the_rules(seed):
    """Random workloads and roads on a 14 x 18 lattice, 6 parts: every part in its
    interval, one piece without holes; the polish never lowers the measured quality nor
    pushes a part below its Polsby-Popper floor."""
    rng = np.random.default_rng(seed)
    rows, cols, k = 14, 18, 6
    w = rng.integers(1, 9, size=rows * cols).astype(float)
    g = lattice(rows, cols, weight=w, road_rows=tuple(rng.choice(np.arange(1, rows), 4, replace=False)),
                road_cols=tuple(rng.choice(np.arange(1, cols), 5, replace=False)))
    obj = objective(g, k, tolerance=0.05)
    unpolished = partition(g, k, Objective(**{**obj.__dict__, "road_weight": None}), seed=seed)
    res = partition(g, k, obj, seed=seed)
    for labels in (unpolished.labels, res.labels):
        assert_rules(g, labels, k)
        W = np.bincount(labels, weights=g.weight, minlength=k)
        assert (W >= obj.low - 1e-9).all() and (W <= obj.high + 1e-9).all(), W
    # polish alone, from the unpolished result: quality up, floor kept, band kept
    q0 = quality(g, unpolished.labels, k)
    pol = polish(g, unpolished.labels, k, obj)
    q1 = quality(g, pol.labels, k)
    assert_rules(g, pol.labels, k)
    assert (q1["pp_mean"] + obj.road_weight * q1["road_share"]
            >= q0["pp_mean"] + obj.road_weight * q0["road_share"] - 1e-9)
    assert q1["pp_min"] >= min(obj.pp_floor, q0["pp_min"]) - 1e-9
    W = np.bincount(pol.labels, weights=g.weight, minlength=k)
    assert (W >= obj.low - 1e-9).all() and (W <= obj.high + 1e-9).all()


@pytest.mark.parametrize("seed", range(3))
def test_annealing_keeps_the_rules_never_ends_worse_and_repeats_itself(seed):
    """The annealing after the polish takes worse moves on the way, but returns the best
    partition it saw: never below its (polished) start, every part in its interval, one
    piece without holes; the same seed gives the same partition."""
    rng = np.random.default_rng(100 + seed)
    rows, cols, k = 14, 18, 6
    w = rng.integers(1, 9, size=rows * cols).astype(float)
    g = lattice(rows, cols, weight=w, road_rows=tuple(rng.choice(np.arange(1, rows), 4, replace=False)),
                road_cols=tuple(rng.choice(np.arange(1, cols), 5, replace=False)))
    obj = objective(g, k, tolerance=0.05)
    start = polish(g, partition(g, k, Objective(**{**obj.__dict__, "road_weight": None}), seed=seed).labels,
                   k, obj).labels
    temps = obj.anneal_t0 * np.linspace(1.0, 0.0, 60) ** 2
    runs = [polish(g, start, k, obj, temps=temps, seed=seed) for _ in range(2)]
    assert runs[0].moves > 0  # it did walk, taking worse moves too
    assert runs[0].labels.tolist() == runs[1].labels.tolist()
    q0, q1 = quality(g, start, k), quality(g, runs[0].labels, k)
    assert (q1["pp_mean"] + obj.road_weight * q1["road_share"]
            >= q0["pp_mean"] + obj.road_weight * q0["road_share"] - 1e-9)
    assert_rules(g, runs[0].labels, k)
    W = np.bincount(runs[0].labels, weights=g.weight, minlength=k)
    assert (W >= obj.low - 1e-9).all() and (W <= obj.high + 1e-9).all()


def test_repair_restores_a_missing_part_without_enclosing_it():
    """A part split to restore a missing one is split so that both halves reach its rim:
    a half in the middle of the other (a bisection can give one) would be a grid inside
    a grid. On a 7 x 7 lattice held by one part, the centre 3 x 3 against the ring is
    such a split; the grown half replacing it reaches the rim, and _repair's result
    keeps every rule."""
    g = lattice(7, 7)
    adj = _csr(g, g.edge_len)
    labels = np.zeros(g.n, dtype=np.int64)
    nodes = np.arange(g.n)
    centre = np.zeros((7, 7), dtype=np.int64)
    centre[2:5, 2:5] = 1
    assert not _rim_halves(g, adj, labels, nodes, centre.ravel())
    grown = _grown_half(g, adj, labels, nodes)
    assert _rim_halves(g, adj, labels, nodes, grown)
    assert abs(int(grown.sum()) - g.n // 2) <= 1
    assert not components(adj, grown, 2)
    fixed = _repair(g, labels.copy(), 2, 0, 0.3, [])
    assert_rules(g, fixed, 2)


def test_polish_refuses_a_move_that_would_split_a_part():
    # A 1 x 5 strip: parts [0 0 0 1 1] with a road left of column 3... moving block 2 to
    # part 1 is fine; block 1 would cut part 0 in two and must never move alone.
    g = lattice(1, 5, road_cols=(2,))
    start = np.array([0, 0, 0, 1, 1])
    obj = Objective(target=2.5, low=2.0, high=3.0)
    res = polish(g, start, 2, obj)
    assert_rules(g, res.labels, 2)
    assert quality(g, res.labels, 2)["road_share"] == 1.0
    assert res.labels.tolist() == [0, 0, 1, 1, 1]


def test_quality_matches_a_hand_count():
    g = lattice(2, 2, road_cols=(1,))
    q = quality(g, np.array([0, 1, 0, 1]), 2)
    assert q["road_share"] == 1.0
    # each part a 100 x 200 rectangle: 4 pi 20000 / 600^2
    assert q["pp_mean"] == pytest.approx(4 * np.pi * 20000 / 600**2)
    assert sparse.issparse(_csr(g, g.edge_len))


def test_neighbour_grids_are_the_grids_across_an_edge_of_the_same_village():
    """The editor's move list: a block's neighbour grids share an edge with it (a corner
    is not enough), never its own grid, never another village's."""
    import geopandas as gpd
    import shapely as shp

    from gridgeo.plan.lifecycle import neighbour_grids

    sq = lambda x, y: shp.box(x, y, x + 1e-3, y + 1e-3)  # noqa: E731
    blocks = gpd.GeoDataFrame({
        "block": [0, 1, 2, 3, 4],
        "village_code": ["V1", "V1", "V1", "V1", "V2"],
        "grid_code": ["A", "A", "B", "C", "D"],
    }, geometry=[sq(0, 0), sq(1e-3, 0), sq(2e-3, 0), sq(2e-3, 1e-3), sq(0, -1e-3)], crs=4326)
    # 0 | 1 | 2, with 3 above 2 (a corner of 1) and 4 below 0 in another village
    assert neighbour_grids(blocks) == [[], ["B"], ["A", "C"], ["B"], []]
    assert neighbour_grids(blocks.iloc[:1]) == [[]]
