"""Balanced, compact partition of a block graph into contiguous parts without holes.

1. METIS (``pymetis``, contiguous k-way) gives a first partition, with workloads as
   vertex weights and edge weights that make a cut along a road cheaper than one across
   open land (``road_factor``).
2. Repairs make every part one connected piece, and fill holes: a part that would be
   surrounded by another is absorbed, and the part that grew is split again.
3. Local moves of one block at a time refine it. A move takes a block on the edge of a
   part to a neighbouring part. Moves are scored for every boundary block at once
   (numpy over the block x part matrices); each round applies the best move of each part
   whose two parts are not touched yet by another move of the round, after checking the
   hard rules around the block. The objective, lexicographic:

   * first the *excess*: how far each part's workload lies outside the allowed interval
     (the band, narrowed to ``target * (1 ± tolerance)``);
   * then the *shape*: the cut length (a road counts ``road_factor`` of its length),
     minus the sum of the parts' Polsby-Popper scores, plus their squared deviation.

   Because a move never raises the excess, and a move that leaves it unchanged must
   lower the shape term, refinement cannot cycle.

Hard rules kept by every move: a part stays one connected piece (edges, not corners),
no part gets a hole (except a hole of the village itself), no part becomes empty. The
checks are local and conservative: a path that must be found within a few hundred
blocks of the moved one, else the move is refused.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pymetis
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from gridgeo.plan.blocks import BlockGraph

__all__ = ["Objective", "partition", "partition_from", "components", "holes", "metis"]

_BFS_LIMIT = 400


@dataclass
class Objective:
    """Weights and limits of the refinement."""

    target: float
    low: float  # the allowed interval of a part's workload
    high: float
    road_factor: float = 0.15
    cut_weight: float = 1.0
    compactness_weight: float = 3.0
    balance_weight: float = 1.0
    #: Snakes: a part whose Polsby-Popper falls below ``pp_floor`` costs
    #: ``snake_weight * (pp_floor - pp)²`` more (the least compact grid, not only the mean).
    snake_weight: float = 40.0
    pp_floor: float = 0.4
    tolerance: float = 0.05
    max_rounds: int = 5000
    #: Re-planning: the part each block starts in, and the cost of moving a block out of
    #: it (per unit of workload over the target), so that few households change grid.
    anchor: np.ndarray | None = None
    anchor_weight: float = 0.0


@dataclass
class Result:
    labels: np.ndarray
    rounds: int = 0
    moves: int = 0
    repairs: list[str] = field(default_factory=list)
    excess: float = 0.0
    shape: float = 0.0
    seed: int = 0


def score(g: BlockGraph, labels: np.ndarray, k: int, obj: Objective) -> tuple[float, float]:
    """The objective of a partition: (excess, shape), compared lexicographically."""
    lmat = _csr(g, g.edge_len)
    rows = np.arange(g.n)
    oh = sparse.csr_matrix((np.ones(g.n), (rows, labels)), shape=(g.n, k))
    own = (lmat @ oh).toarray()[rows, labels]
    W = np.bincount(labels, weights=g.weight, minlength=k)
    A = np.bincount(labels, weights=g.area, minlength=k)
    P = np.bincount(labels, weights=g.perimeter - own, minlength=k)
    t = obj.target
    excess = float(((np.maximum(0.0, np.maximum(obj.low - W, W - obj.high)) / t) ** 2).sum())
    cut = labels[g.edge_u] != labels[g.edge_v]
    cost = float((g.edge_len[cut] - (1.0 - obj.road_factor) * g.edge_road[cut]).sum())
    pp = 4 * np.pi * A / np.maximum(P, 1e-9) ** 2
    shape = (obj.cut_weight * cost / max(P.mean(), 1e-9) - obj.compactness_weight * pp.sum()
             + obj.balance_weight * (((W - t) / t) ** 2).sum() + _snake(pp, obj).sum())
    return excess, float(shape)


def _snake(pp: np.ndarray, obj: Objective) -> np.ndarray:
    return obj.snake_weight * np.maximum(0.0, obj.pp_floor - pp) ** 2


def _csr(g: BlockGraph, data: np.ndarray) -> sparse.csr_matrix:
    rows = np.concatenate([g.edge_u, g.edge_v])
    cols = np.concatenate([g.edge_v, g.edge_u])
    return sparse.csr_matrix((np.concatenate([data, data]), (rows, cols)), shape=(g.n, g.n))


def _extended(g: BlockGraph) -> sparse.csr_matrix:
    """Adjacency with the outside (node n) and the holes (nodes n+1 ...) as extra nodes."""
    n = g.n
    outer = np.flatnonzero(g.outer)
    rows = np.concatenate([g.edge_u, g.edge_v, outer, np.full(len(outer), n),
                           g.lake_block, n + 1 + g.lake_id])
    cols = np.concatenate([g.edge_v, g.edge_u, np.full(len(outer), n), outer,
                           n + 1 + g.lake_id, g.lake_block])
    size = n + 1 + g.n_lakes
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(size, size))


def metis(g: BlockGraph, k: int, seed: int, road_factor: float,
          nodes: np.ndarray | None = None) -> np.ndarray:
    """A contiguous k-way METIS partition of ``g`` (or of its subgraph ``nodes``)."""
    cost = g.edge_len - (1.0 - road_factor) * g.edge_road
    adj = _csr(g, cost)
    if nodes is not None:
        adj = adj[nodes][:, nodes]
    else:
        nodes = np.arange(g.n)
    w = g.weight[nodes]
    if len(nodes) <= k:
        return np.arange(len(nodes)) % k
    # Integer weights: workload scaled to ~1000 per part; edge costs to ~10 per median edge.
    vw = np.rint(w * (1000.0 * k / max(w.sum(), 1e-9))).astype(np.int64)
    med = np.median(adj.data) if adj.nnz else 1.0
    ew = np.maximum(1, np.rint(adj.data / max(med, 1e-9) * 10)).astype(np.int64)
    opts = pymetis.Options(seed=int(seed) % (2**31 - 1), ufactor=30, niter=20, contig=1)
    graph = pymetis.CSRAdjacency(adj.indptr.astype(np.int64), adj.indices.astype(np.int64))
    _, parts = pymetis.part_graph(k, graph, vweights=vw, eweights=ew, options=opts)
    return np.asarray(parts, dtype=np.int64)


def components(adj: sparse.csr_matrix, labels: np.ndarray, k: int, parts=None) -> dict[int, tuple]:
    """Parts made of more than one piece: part -> (its blocks, their component numbers)."""
    out = {}
    for p in (range(k) if parts is None else parts):
        nodes = np.flatnonzero(labels == p)
        if len(nodes) < 2:
            continue
        nc, comp = connected_components(adj[nodes][:, nodes], directed=False)
        if nc > 1:
            out[p] = (nodes, comp)
    return out


def holes(ext: sparse.csr_matrix, labels: np.ndarray, k: int, n: int, parts=None) -> dict[int, np.ndarray]:
    """Blocks enclosed by each part: part -> the blocks of its holes that are not village holes."""
    out = {}
    lab = np.concatenate([labels, np.full(ext.shape[0] - n, -1)])
    for p in (range(k) if parts is None else parts):
        keep = np.flatnonzero(lab != p)
        nc, comp = connected_components(ext[keep][:, keep], directed=False)
        if nc == 1:
            continue
        outside = comp[np.searchsorted(keep, n)]
        has_block = np.bincount(comp, weights=(keep < n).astype(float), minlength=nc) > 0
        bad = has_block & (np.arange(nc) != outside)
        if bad.any():
            enclosed = keep[bad[comp] & (keep < n)]
            out[p] = enclosed
    return out


def _regrow(adj: sparse.csr_matrix, labels: np.ndarray, k: int) -> np.ndarray:
    """Give unassigned blocks (-1) to the neighbouring part they share most edge with."""
    labels = labels.copy()
    n = len(labels)
    for _ in range(n):
        todo = labels < 0
        if not todo.any():
            break
        assigned = np.flatnonzero(~todo)
        oh = sparse.csr_matrix((np.ones(len(assigned)), (assigned, labels[assigned])), shape=(n, k))
        share = (adj[todo] @ oh).toarray()
        ok = share.max(axis=1) > 0
        if not ok.any():
            break
        idx = np.flatnonzero(todo)[ok]
        labels[idx] = np.argmax(share[ok], axis=1)
    return labels


def _repair(g: BlockGraph, labels: np.ndarray, k: int, seed: int, road_factor: float,
            notes: list[str]) -> np.ndarray:
    """Make every part connected and hole-free, keeping k parts."""
    adj = _csr(g, g.edge_len)
    ext = _extended(g)
    for attempt in range(8):
        split = components(adj, labels, k)
        for p, (nodes, comp) in split.items():
            wsum = np.bincount(comp, weights=g.weight[nodes] + 1e-6 * g.area[nodes])
            labels[nodes[comp != np.argmax(wsum)]] = -1
        if split:
            labels = _regrow(adj, labels, k)
            notes.append(f"re-joined {len(split)} part(s) in pieces")
        enclosed = holes(ext, labels, k, g.n)
        for p, blocks in enclosed.items():
            labels[blocks] = p
        if enclosed:
            notes.append(f"filled holes of {len(enclosed)} part(s)")
        present = np.bincount(labels[labels >= 0], minlength=k)
        missing = np.flatnonzero(present == 0)
        if not missing.size and not split and not enclosed:
            return labels
        for m in missing:
            wsum = np.bincount(labels, weights=g.weight, minlength=k)
            big = int(np.argmax(wsum))
            nodes = np.flatnonzero(labels == big)
            if len(nodes) < 2:
                continue
            halves = metis(g, 2, seed + attempt + 1, road_factor, nodes)
            labels[nodes[halves == 1]] = m
            notes.append(f"split part {big} to restore {k} parts")
    return labels


class _Checker:
    """Local, conservative checks of the hard rules around one block (see module notes)."""

    def __init__(self, g: BlockGraph, labels: np.ndarray):
        n = g.n
        ext = _extended(g)
        self.n = n
        ind, ptr = ext.indices.tolist(), ext.indptr.tolist()
        self.nbr = [ind[ptr[j]:ptr[j + 1]] for j in range(len(ptr) - 1)]
        self.lab = labels.tolist() + [-1] * (ext.shape[0] - n)

    def move(self, i: int, b: int) -> None:
        self.lab[i] = b

    def ok(self, i: int, a: int, b: int) -> bool:
        lab = self.lab
        nbr_i = self.nbr[i]
        # a without i stays one piece: i's neighbours in a still reach each other.
        if not self._joined(i, [j for j in nbr_i if lab[j] == a], a, True):
            return False
        # b with i gets no hole: the rest around i still reach each other or the outside.
        return self._joined(i, [j for j in nbr_i if lab[j] != b], b, False)

    def _joined(self, i: int, starts: list[int], part: int, inside: bool) -> bool:
        """Whether ``starts`` stay connected without ``i``.

        ``inside``: walk the blocks of ``part``. Otherwise walk everything but ``part``
        (the outside node joins whatever reaches it but is not walked through; a group
        that ends up enclosed is allowed only if it holds no block, i.e. is a village
        hole). Breadth-first from all starts at once, so nearby joins are found first;
        past ``_BFS_LIMIT`` nodes the answer is a conservative no.
        """
        if len(starts) <= 1:
            return True
        lab, nbr, n = self.lab, self.nbr, self.n
        parent = list(range(len(starts)))

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        owner = {i: -1}
        blocks = [False] * len(starts)
        queue = deque()
        roots = len(starts)
        for gi, s in enumerate(starts):
            if s in owner:
                ra, rb = find(owner[s]), find(gi)
                if ra != rb:
                    parent[rb] = ra
                    blocks[ra] = blocks[ra] or blocks[rb]
                    roots -= 1
                continue
            owner[s] = gi
            queue.append(s)
        count = 0
        while queue:
            if roots == 1:
                return True
            x = queue.popleft()
            gx = find(owner[x])
            if x == n:  # the outside: joins, is not walked through
                continue
            if x < n:
                blocks[gx] = True
            count += 1
            if count > _BFS_LIMIT:
                return False
            for y in nbr[x]:
                gy = owner.get(y)
                if gy is not None:
                    if gy >= 0:
                        ry = find(gy)
                        if ry != gx:
                            parent[ry] = gx
                            blocks[gx] = blocks[gx] or blocks[ry]
                            roots -= 1
                    continue
                if (lab[y] == part) == inside:
                    owner[y] = gx
                    queue.append(y)
        if roots == 1:
            return True
        if inside:
            return False
        # Groups that do not reach the outside are enclosed: allowed only when made of
        # village holes alone (a lake becomes a hole of the grid, as it is of the village).
        outer = find(owner[n]) if n in owner else None
        return all(not blocks[g] or g == outer for g in range(len(starts)) if find(g) == g)


def refine(g: BlockGraph, labels: np.ndarray, k: int, obj: Objective) -> Result:
    """Local moves under the hard rules (see the module notes)."""
    n = g.n
    labels = labels.copy()
    res = Result(labels)
    if k < 2 or n <= k:
        return res
    check = _Checker(g, labels)
    t = obj.target
    tau = max(obj.tolerance, 1e-3)
    tabu = np.zeros((n, k), dtype=np.int64)
    rows = np.arange(n)
    w, area, perim = g.weight, g.area, g.perimeter
    lam_cut, lam_pp, lam_dev = obj.cut_weight, obj.compactness_weight, obj.balance_weight
    eu = np.concatenate([g.edge_u, g.edge_v])
    ev = np.concatenate([g.edge_v, g.edge_u])
    elen = np.concatenate([g.edge_len, g.edge_len])
    eroad = np.concatenate([g.edge_road, g.edge_road])

    def excess(W):
        return (np.maximum(0.0, np.maximum(obj.low - W, W - obj.high)) / t) ** 2

    def dev(W):
        return ((W - t) / t) ** 2

    for rnd in range(obj.max_rounds):
        # S[i, p]: edge length block i shares with part p; R: the part of it on roads.
        key = eu * k + labels[ev]
        S = np.bincount(key, weights=elen, minlength=n * k).reshape(n, k)
        R = np.bincount(key, weights=eroad, minlength=n * k).reshape(n, k)
        own = S[rows, labels]
        W = np.bincount(labels, weights=w, minlength=k)
        A = np.bincount(labels, weights=area, minlength=k)
        P = np.bincount(labels, weights=perim - own, minlength=k)
        size = np.bincount(labels, minlength=k)
        cand = S > 0
        cand[rows, labels] = False
        cand &= (size[labels] > 1)[:, None]
        cand &= tabu <= rnd
        i, b = np.nonzero(cand)
        if not len(i):
            break
        a = labels[i]
        wi = w[i]
        C = S - (1.0 - obj.road_factor) * R
        d_cut = (C[i, a] - C[i, b]) / max(P.mean(), 1e-9)
        pa, pb = P[a] - perim[i] + 2 * S[i, a], P[b] + perim[i] - 2 * S[i, b]
        pp_a = 4 * np.pi * (A[a] - area[i]) / np.maximum(pa, 1e-9) ** 2
        pp_b = 4 * np.pi * (A[b] + area[i]) / np.maximum(pb, 1e-9) ** 2
        pp_now = 4 * np.pi * A / np.maximum(P, 1e-9) ** 2
        d_pp = pp_a + pp_b - pp_now[a] - pp_now[b]
        d_snake = (_snake(pp_a, obj) + _snake(pp_b, obj) - _snake(pp_now[a], obj) - _snake(pp_now[b], obj)
                   if obj.snake_weight > 0 else 0.0)
        Wa, Wb = W[a] - wi, W[b] + wi
        d_exc = excess(Wa) + excess(Wb) - excess(W[a]) - excess(W[b])
        d_dev = dev(Wa) + dev(Wb) - dev(W[a]) - dev(W[b])
        d_shape = lam_cut * d_cut - lam_pp * d_pp + lam_dev * d_dev + d_snake
        if obj.anchor is not None and obj.anchor_weight > 0:
            home = obj.anchor[i]
            d_shape = d_shape + obj.anchor_weight * (wi / t) * (
                (b != home).astype(float) - (a != home).astype(float))
        total_excess = excess(W).sum()
        if total_excess > 1e-12:
            sel = d_exc < -1e-12
            score = d_exc / tau**2 + d_shape
            if not sel.any():
                sel = (d_exc <= 1e-15) & (d_shape < -1e-9)
                score = d_shape
        else:
            sel = (d_exc <= 1e-15) & (d_shape < -1e-9)
            score = d_shape
        if not sel.any():
            break
        i, a, b, score = i[sel], a[sel], b[sel], score[sel]
        order = np.argsort(score, kind="stable")
        i, a, b = i[order], a[order], b[order]
        _, best = np.unique(a, return_index=True)  # the best move out of each part
        best = np.sort(best)
        used = np.zeros(k, dtype=bool)
        moved = 0
        for j in best:
            bi, ba, bb = int(i[j]), int(a[j]), int(b[j])
            if used[ba] or used[bb]:
                continue
            if check.ok(bi, ba, bb):
                labels[bi] = bb
                check.move(bi, bb)
                used[ba] = used[bb] = True
                moved += 1
            else:
                tabu[bi, bb] = rnd + 25
        res.rounds = rnd + 1
        res.moves += moved
    res.labels = labels
    return res


def _subgraph(g: BlockGraph, nodes: np.ndarray) -> BlockGraph:
    """The blocks ``nodes`` of ``g`` as a graph of their own; blocks on its edge are outer."""
    idx = np.full(g.n, -1, dtype=np.int64)
    idx[nodes] = np.arange(len(nodes))
    iu, iv = idx[g.edge_u], idx[g.edge_v]
    inside = (iu >= 0) & (iv >= 0)
    outer = g.outer[nodes].copy()
    cross = (iu >= 0) != (iv >= 0)
    outer[iu[cross & (iu >= 0)]] = True
    outer[iv[cross & (iv >= 0)]] = True
    lk = idx[g.lake_block] >= 0
    return BlockGraph(
        n=len(nodes), weight=g.weight[nodes], area=g.area[nodes], perimeter=g.perimeter[nodes],
        edge_u=iu[inside], edge_v=iv[inside], edge_len=g.edge_len[inside], edge_road=g.edge_road[inside],
        outer=outer, lake_block=idx[g.lake_block[lk]], lake_id=g.lake_id[lk], n_lakes=g.n_lakes)


def _halves_ok(g: BlockGraph, halves: np.ndarray) -> bool:
    """Two parts, each one piece touching the region's edge (so neither encloses the other)."""
    if not (g.outer[halves == 0].any() and g.outer[halves == 1].any()):
        return False
    same = halves[g.edge_u] == halves[g.edge_v]
    adj = sparse.csr_matrix((np.ones(int(same.sum())), (g.edge_u[same], g.edge_v[same])), shape=(g.n, g.n))
    return connected_components(adj, directed=False)[0] == 2


def _pair_terms(g: BlockGraph, labels: np.ndarray, parts, obj: Objective, lref: float):
    """(excess, shape) of the parts ``parts`` alone; shape counts the cut between them."""
    W = np.array([g.weight[labels == p].sum() for p in parts])
    A = np.array([g.area[labels == p].sum() for p in parts])
    lu, lv = labels[g.edge_u], labels[g.edge_v]
    P = []
    for p in parts:
        mine = labels == p
        inner = (lu == p) & (lv == p)
        P.append(g.perimeter[mine].sum() - 2 * g.edge_len[inner].sum())
    P = np.array(P)
    between = np.isin(lu, parts) & np.isin(lv, parts) & (lu != lv)
    cost = float((g.edge_len[between] - (1.0 - obj.road_factor) * g.edge_road[between]).sum())
    t = obj.target
    excess = float(((np.maximum(0.0, np.maximum(obj.low - W, W - obj.high)) / t) ** 2).sum())
    pp = 4 * np.pi * A / np.maximum(P, 1e-9) ** 2
    shape = (obj.cut_weight * cost / lref - obj.compactness_weight * pp.sum()
             + obj.balance_weight * (((W - t) / t) ** 2).sum() + _snake(pp, obj).sum())
    return excess, float(shape)


def recombine(g: BlockGraph, labels: np.ndarray, k: int, obj: Objective, *, seed: int = 0,
              passes: int = 4, tries: int = 2) -> tuple[np.ndarray, int]:
    """Merge two neighbouring parts and split them again, where that improves the objective.

    Single-block moves stop at local optima that a whole boundary shift would leave: a
    thin part squeezed between two others, say. Pairs are taken worst Polsby-Popper
    first; the merged region is bisected by METIS (``tries`` seeds), repaired and
    refined on its own, and the split kept when (excess, shape) of the pair improves and
    the hard rules hold on the whole graph.
    """
    labels = labels.copy()
    if k < 2:
        return labels, 0
    adj = _csr(g, g.edge_len)
    ext = _extended(g)
    accepted = 0
    for _ in range(passes):
        lu, lv = labels[g.edge_u], labels[g.edge_v]
        cut = lu != lv
        pairs = np.unique(np.column_stack([np.minimum(lu[cut], lv[cut]), np.maximum(lu[cut], lv[cut])]), axis=0)
        rows = np.arange(g.n)
        oh = sparse.csr_matrix((np.ones(g.n), (rows, labels)), shape=(g.n, k))
        own = (adj @ oh).toarray()[rows, labels]
        A = np.bincount(labels, weights=g.area, minlength=k)
        P = np.bincount(labels, weights=g.perimeter - own, minlength=k)
        lref = max(P.mean(), 1e-9)
        pp = 4 * np.pi * A / np.maximum(P, 1e-9) ** 2
        order = np.argsort(pp[pairs[:, 0]] + pp[pairs[:, 1]], kind="stable")
        touched = np.zeros(k, dtype=bool)
        improved = 0
        for a, b in pairs[order]:
            if touched[a] or touched[b]:
                continue
            nodes = np.flatnonzero((labels == a) | (labels == b))
            sub = _subgraph(g, nodes)
            before = _pair_terms(g, labels, (a, b), obj, lref)
            best, best_terms = None, before
            for s in range(tries):
                halves = metis(sub, 2, seed + 7 * s + 1, obj.road_factor)
                if not _halves_ok(sub, halves):
                    halves = _repair(sub, halves, 2, seed + s, obj.road_factor, [])
                halves = refine(sub, halves, 2, obj).labels
                trial = labels.copy()
                trial[nodes] = np.where(halves == 0, a, b)
                terms = _pair_terms(g, trial, (a, b), obj, lref)
                if terms[0] < best_terms[0] - 1e-12 or (
                        terms[0] <= best_terms[0] + 1e-12 and terms[1] < best_terms[1] - 1e-6):
                    best, best_terms = trial, terms
            if best is None:
                continue
            sub_ok = not components(adj, best, k, (a, b)) and not holes(ext, best, k, g.n, (a, b))
            if sub_ok:
                labels = best
                touched[a] = touched[b] = True
                improved += 1
        accepted += improved
        if not improved:
            break
    return labels, accepted


def partition(g: BlockGraph, k: int, obj: Objective, *, seed: int = 0, starts: int = 2) -> Result:
    """Partition ``g`` into ``k`` contiguous, hole-free, balanced and compact parts.

    METIS is started ``starts`` times (seeds ``seed``, ``seed + 1`` ...), each start
    repaired and refined; the best by (excess, shape) is then improved by recombining
    pairs of parts (:func:`recombine`) and refined again. Same seed, same result.
    """
    if k <= 1:
        return Result(np.zeros(g.n, dtype=np.int64))
    best = None
    for s in range(seed, seed + max(1, starts)):
        labels = metis(g, k, s, obj.road_factor)
        notes: list[str] = []
        labels = _repair(g, labels, k, s, obj.road_factor, notes)
        res = refine(g, labels, k, obj)
        res.repairs = notes
        res.excess, res.shape = score(g, res.labels, k, obj)
        res.seed = s
        if best is None or (res.excess, res.shape) < (best.excess - 1e-12, best.shape):
            best = res
    labels, n_rec = recombine(g, best.labels, k, obj, seed=best.seed)
    if n_rec:
        again = refine(g, labels, k, obj)
        best.labels = again.labels
        best.rounds += again.rounds
        best.moves += again.moves
        best.repairs.append(f"recombined {n_rec} pair(s) of parts")
        best.excess, best.shape = score(g, best.labels, k, obj)
    return best


def partition_from(g: BlockGraph, k: int, obj: Objective, start: np.ndarray, *, seed: int = 0,
                   anchor_weight: float = 10.0) -> tuple[Result, np.ndarray]:
    """Re-partition ``g`` into ``k`` parts, staying close to the partition ``start``.

    ``start`` gives each block's part in the division in force (``-1``: none, e.g. land
    that was in no grid). Blocks without one join the neighbouring part they share most
    edge with. While there are too many parts the lightest merges into its lightest
    neighbour; while too few, the heaviest is halved (METIS bisection), its heavier half
    keeping the part. Repairs restore the hard rules, then the local moves of
    :func:`refine` bring every part into the band, each move costing ``anchor_weight``
    times the workload it takes out of its part (over the target) on top of the shape
    terms: the division moves as few households as the band allows. No recombination.

    Returns
    -------
    (Result, origin)
        ``origin[p]``: the part of ``start`` part ``p`` continues (its code is kept), or
        ``-1`` for a new part.
    """
    start = np.asarray(start, dtype=np.int64)
    present = np.unique(start[start >= 0])
    if k <= 1 or len(present) == 0:
        res = partition(g, k, obj, seed=seed) if k > 1 else Result(np.zeros(g.n, dtype=np.int64))
        origin = np.full(max(k, 1), -1, dtype=np.int64)
        if k <= 1 and len(present):
            # one grid: it continues the start part holding most workload
            w = np.bincount(np.searchsorted(present, start[start >= 0]), weights=g.weight[start >= 0],
                            minlength=len(present))
            origin[0] = present[int(np.argmax(w))]
        return res, origin
    labels = np.where(start >= 0, np.searchsorted(present, np.maximum(start, 0)), -1)
    origin = list(present)
    adj = _csr(g, g.edge_len)
    labels = _regrow(adj, labels, len(origin))
    notes: list[str] = []
    # Too many parts: merge the lightest into its lightest neighbour.
    while len(origin) > k:
        m = len(origin)
        W = np.bincount(labels, weights=g.weight, minlength=m)
        s = int(np.argmin(W))
        lu, lv = labels[g.edge_u], labels[g.edge_v]
        nb = np.unique(np.concatenate([lv[(lu == s) & (lv != s)], lu[(lv == s) & (lu != s)]]))
        into = int(nb[np.argmin(W[nb])]) if len(nb) else int(np.argsort(W)[1])
        labels[labels == s] = into
        labels[labels > s] -= 1
        del origin[s]
        notes.append("merged a grid into its neighbour")
    # Too few: halve the heaviest; its heavier half keeps the part.
    while len(origin) < k:
        m = len(origin)
        W = np.bincount(labels, weights=g.weight, minlength=m)
        big = int(np.argmax(W))
        nodes = np.flatnonzero(labels == big)
        if len(nodes) < 2:
            break
        halves = metis(g, 2, seed + m, obj.road_factor, nodes)
        w1 = g.weight[nodes][halves == 1].sum()
        w0 = g.weight[nodes][halves == 0].sum()
        new_half = 1 if w1 <= w0 else 0
        labels[nodes[halves == new_half]] = m
        origin.append(-1)
        notes.append("split a grid in two")
    labels = _repair(g, labels, k, seed, obj.road_factor, notes)
    anchored = Objective(**{**obj.__dict__, "anchor": labels.copy(), "anchor_weight": anchor_weight})
    res = refine(g, labels, k, anchored)
    res.repairs = notes + res.repairs
    res.excess, res.shape = score(g, res.labels, k, obj)
    res.seed = seed
    return res, np.asarray(origin + [-1] * (k - len(origin)), dtype=np.int64)
