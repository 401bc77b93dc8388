"""Balanced, compact partition of a block graph into contiguous parts without holes.

1. METIS (``pymetis``, contiguous k-way) gives a first partition, with workloads as
   vertex weights and edge weights that make a cut along a road cheaper than one across
   open land (``road_factor``).
2. Repairs make every part one connected piece, and fill holes: a part that would be
   surrounded by another is absorbed, and the part that grew is split again.
3. Local moves of one block at a time refine it (below).
4. A road-aware stage (``Objective.road_weight``) then improves what is measured: pairs
   of neighbouring parts are merged and cut again (:func:`recombine`), and boundary
   blocks moved (:func:`polish`), where that raises mean Polsby-Popper plus
   ``road_weight`` times the share of grid boundary on roads and rivers, keeping every
   part inside its workload interval and above the Polsby-Popper floor. A short seeded
   annealing of the same boundary moves (``Objective.anneal_rounds``; a move that lowers
   that quality is sometimes taken, less often as it cools) leaves the local optimum the
   greedy polish stops in; the best partition it sees is polished again.

The refinement of step 3: a move takes a block on the edge of a part to a
neighbouring part. Moves are scored for every boundary block at once (numpy over the
block x part matrices); each round applies the best move of each part whose two parts
are not touched yet by another move of the round, after checking the hard rules around
the block. The objective, lexicographic:

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

__all__ = ["Objective", "partition", "partition_from", "polish", "quality", "components", "holes", "metis"]

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
    #: The road-aware stage (:func:`recombine`, :func:`polish`): pairs of parts are cut
    #: again and boundary blocks moved to raise mean Polsby-Popper plus ``road_weight``
    #: times the share of grid boundary on roads and rivers, within the workload
    #: interval and without a part falling below ``pp_floor``. None: the stage is off.
    road_weight: float | None = 0.5
    #: Re-planning: the part each block starts in, and the cost of moving a block out of
    #: it (per unit of workload over the target), so that few households change grid.
    anchor: np.ndarray | None = None
    anchor_weight: float = 0.0
    #: Annealing after the polish (road-aware stage only, ``k >= anneal_min_parts``):
    #: ``anneal_rounds`` rounds of boundary moves where a move that lowers the measured
    #: quality by d (in summed Polsby-Popper units) is still taken with probability
    #: exp(-d / T), T cooling from ``anneal_t0`` to 0; the best partition seen is kept
    #: and polished again. Seeded: same seed, same result. 0 rounds: off.
    anneal_rounds: int = 250
    anneal_t0: float = 0.05
    anneal_min_parts: int = 4


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
          nodes: np.ndarray | None = None, adj: sparse.csr_matrix | None = None) -> np.ndarray:
    """A contiguous k-way METIS partition of ``g`` (or of its subgraph ``nodes``);
    ``adj``: the cost adjacency of ``g`` when the caller has it already."""
    if adj is None:
        adj = _csr(g, g.edge_len - (1.0 - road_factor) * g.edge_road)
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
            if not _rim_halves(g, adj, labels, nodes, halves):
                halves = _grown_half(g, adj, labels, nodes)
            labels[nodes[halves == 1]] = m
            notes.append(f"split part {big} to restore {k} parts")
    return labels


def _rims(g: BlockGraph, adj: sparse.csr_matrix, labels: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Which of ``nodes`` (one part) lie on the part's rim: on the village's outer ring,
    or next to a block of another part."""
    mine = np.zeros(len(labels), dtype=bool)
    mine[nodes] = True
    sub = adj[nodes]
    foreign = np.bincount(np.repeat(np.arange(len(nodes)), np.diff(sub.indptr)),
                          weights=(~mine[sub.indices]).astype(float), minlength=len(nodes)) > 0
    return foreign | g.outer[nodes]


def _rim_halves(g, adj, labels, nodes, halves) -> bool:
    """Whether both halves of a split part reach its rim (neither encloses the other)."""
    rim = _rims(g, adj, labels, nodes)
    return bool(rim[halves == 0].any() and rim[halves == 1].any())


def _grown_half(g, adj, labels, nodes) -> np.ndarray:
    """Halves of a part: blocks in breadth-first order from a block on its rim, up to half
    its workload; the grown half reaches the rim, so it cannot be enclosed."""
    from scipy.sparse.csgraph import breadth_first_order

    rim = np.flatnonzero(_rims(g, adj, labels, nodes))
    start = int(rim[0]) if len(rim) else 0
    order = breadth_first_order(adj[nodes][:, nodes], start, directed=False, return_predecessors=False)
    w = g.weight[nodes][order]
    take = order[:max(1, int(np.searchsorted(np.cumsum(w), w.sum() / 2.0)))]
    halves = np.zeros(len(nodes), dtype=np.int64)
    halves[take] = 1
    return halves


class _Checker:
    """Local, conservative checks of the hard rules around one block (see module notes)."""

    def __init__(self, g: BlockGraph, labels: np.ndarray):
        n = g.n
        self.n = n
        size = n + 1 + g.n_lakes
        # the adjacency of _extended, as neighbour lists (no sparse matrix: this runs
        # once per refinement, hundreds of times on small regions when recombining)
        outer = np.flatnonzero(g.outer)
        src = np.concatenate([g.edge_u, g.edge_v, outer, np.full(len(outer), n),
                              g.lake_block, n + 1 + g.lake_id])
        dst = np.concatenate([g.edge_v, g.edge_u, np.full(len(outer), n), outer,
                              n + 1 + g.lake_id, g.lake_block])
        order = np.lexsort((dst, src))
        ind = dst[order].tolist()
        ptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=size))]).tolist()
        self.nbr = [ind[ptr[j]:ptr[j + 1]] for j in range(size)]
        self.lab = labels.tolist() + [-1] * (size - n)

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
        i, b = _candidates(S, labels, size, tabu, rnd)
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
        moved = _apply_moves(labels, check, tabu, rnd, k, i, a, b, np.argsort(score, kind="stable"))
        res.rounds = rnd + 1
        res.moves += moved
    res.labels = labels
    return res



def _candidates(S, labels, size, tabu, rnd: int):
    """Candidate moves (block ``i`` to part ``b``): into a part the block touches, not its
    own, never the last block of a part, not tabu this round."""
    cand = S > 0
    cand[np.arange(len(labels)), labels] = False
    cand &= (size[labels] > 1)[:, None]
    cand &= tabu <= rnd
    return np.nonzero(cand)


def _apply_moves(labels, check, tabu, rnd: int, k: int, i, a, b, order) -> int:
    """Make the best candidate move out of each part (candidates ``i`` from part ``a`` to
    ``b``, best first by ``order``), at most one move per part touched in a round; a move
    the checker refuses is tabu for 25 rounds. Returns how many blocks moved."""
    i, a, b = i[order], a[order], b[order]
    _, best = np.unique(a, return_index=True)
    used = np.zeros(k, dtype=bool)
    moved = 0
    for j in np.sort(best):  # one candidate per part: a loop over parts, not blocks
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
    return moved


def quality(g: BlockGraph, labels: np.ndarray, k: int) -> dict:
    """The measured quality of a partition, on the graph: Polsby-Popper of every part
    (mean, min) and the share of the cut (inter-part boundary) running on roads."""
    lu, lv = labels[g.edge_u], labels[g.edge_v]
    inner = lu == lv
    A = np.bincount(labels, weights=g.area, minlength=k)
    P = (np.bincount(labels, weights=g.perimeter, minlength=k)
         - 2 * np.bincount(lu[inner], weights=g.edge_len[inner], minlength=k))
    pp = 4 * np.pi * A / np.maximum(P, 1e-9) ** 2
    cut = g.edge_len[~inner].sum()
    road = g.edge_road[~inner].sum()
    return {"pp_mean": float(pp.mean()), "pp_min": float(pp.min()),
            "road_share": float(road / cut) if cut > 0 else 1.0}


def polish(g: BlockGraph, labels: np.ndarray, k: int, obj: Objective, *, max_rounds: int = 3000,
           temps: np.ndarray | None = None, seed: int = 0) -> Result:
    """Moves of boundary blocks that raise the measured quality: mean Polsby-Popper plus
    ``obj.road_weight`` times the share of the cut on roads (rivers count as roads).

    Constraints of every move (on top of the hard rules of :func:`refine`): both parts'
    workloads stay inside ``[obj.low, obj.high]`` (a part already outside may only come
    closer), and no part's Polsby-Popper falls below ``obj.pp_floor`` (one already below
    may only rise). All candidate moves are scored at once (numpy over the block x part
    matrices); each round applies the best move out of each part whose two parts are
    untouched by another move of the round. A move is taken only when it raises the
    quality, so the polish ends; ``max_rounds`` bounds it all the same.

    ``temps``: anneal instead, one round per temperature T (in summed Polsby-Popper
    units): a move of gain d is taken with probability min(1, exp(d k / T)), the best of
    each part by gain plus Gumbel noise of scale T / k (random draws seeded by ``seed``);
    returns the best partition seen.
    """
    n = g.n
    labels = labels.copy()
    res = Result(labels)
    if k < 2 or n <= k:
        return res
    road_weight = 1.0 if obj.road_weight is None else obj.road_weight
    pp_floor = obj.pp_floor
    check = _Checker(g, labels)
    tabu = np.zeros((n, k), dtype=np.int64)
    w, area, perim = g.weight, g.area, g.perimeter
    eu = np.concatenate([g.edge_u, g.edge_v])
    ev = np.concatenate([g.edge_v, g.edge_u])
    elen = np.concatenate([g.edge_len, g.edge_len])
    eroad = np.concatenate([g.edge_road, g.edge_road])
    elen_sum, eroad_sum = float(elen.sum()), float(eroad.sum())

    def outside(W):
        return np.maximum(0.0, np.maximum(obj.low - W, W - obj.high))

    if temps is not None:
        rng = np.random.default_rng(seed)
        best_value, best_labels = -np.inf, labels.copy()
        max_rounds = len(temps) + 1
    for rnd in range(max_rounds):
        # Only the boundary matters: the edge length (and road) each block shares with its
        # own part, and with each other part it touches (pairs from the cut edges alone,
        # in block-then-part order), not the dense block x part matrices of refine.
        lu, lv = labels[eu], labels[ev]
        same = lu == lv
        own = np.bincount(eu[same], weights=elen[same], minlength=n)
        own_road = np.bincount(eu[same], weights=eroad[same], minlength=n)
        W = np.bincount(labels, weights=w, minlength=k)
        A = np.bincount(labels, weights=area, minlength=k)
        P = np.bincount(labels, weights=perim - own, minlength=k)
        size = np.bincount(labels, minlength=k)
        cutlen = (elen_sum - own.sum()) / 2.0
        cutroad = (eroad_sum - own_road.sum()) / 2.0
        if temps is not None:
            value = (4 * np.pi * A / np.maximum(P, 1e-9) ** 2).mean() + road_weight * (
                cutroad / cutlen if cutlen > 0 else 1.0)
            if value > best_value + 1e-12:
                best_value, best_labels = value, labels.copy()
        cut = ~same & (elen > 0)
        pair, inv = np.unique(eu[cut] * k + lv[cut], return_inverse=True)
        s_ib = np.bincount(inv, weights=elen[cut], minlength=len(pair))
        r_ib = np.bincount(inv, weights=eroad[cut], minlength=len(pair))
        i, b = pair // k, pair % k
        keep = (size[labels[i]] > 1) & (tabu[i, b] <= rnd)
        i, b, s_ib, r_ib = i[keep], b[keep], s_ib[keep], r_ib[keep]
        if not len(i):
            break
        a = labels[i]
        wi = w[i]
        Wa, Wb = W[a] - wi, W[b] + wi
        ok = (outside(Wa) <= outside(W[a]) + 1e-9) & (outside(Wb) <= outside(W[b]) + 1e-9)
        pa, pb = P[a] - perim[i] + 2 * own[i], P[b] + perim[i] - 2 * s_ib
        pp_a = 4 * np.pi * (A[a] - area[i]) / np.maximum(pa, 1e-9) ** 2
        pp_b = 4 * np.pi * (A[b] + area[i]) / np.maximum(pb, 1e-9) ** 2
        pp_now = 4 * np.pi * A / np.maximum(P, 1e-9) ** 2
        ok &= (pp_a >= np.minimum(pp_floor, pp_now[a])) & (pp_b >= np.minimum(pp_floor, pp_now[b]))
        new_len = cutlen + own[i] - s_ib
        new_road = cutroad + own_road[i] - r_ib
        share_now = cutroad / cutlen if cutlen > 0 else 1.0
        share = np.where(new_len > 0, new_road / np.maximum(new_len, 1e-9), 1.0)
        gain = (pp_a + pp_b - pp_now[a] - pp_now[b]) / k + road_weight * (share - share_now)
        if temps is not None:
            if rnd >= len(temps):
                break
            # Metropolis: a worse move is taken with probability exp(gain / T)
            T = temps[rnd] / k
            sel = ok & (gain > T * np.log(rng.random(len(gain)) + 1e-300))
            prio = gain + T * rng.gumbel(size=len(gain))
        else:
            sel = ok & (gain > 1e-6)
            prio = gain
        if not sel.any():
            if temps is None:
                break
            continue
        i, a, b, prio = i[sel], a[sel], b[sel], prio[sel]
        moved = _apply_moves(labels, check, tabu, rnd, k, i, a, b, np.argsort(-prio, kind="stable"))
        res.rounds = rnd + 1
        res.moves += moved
    res.labels = labels if temps is None else best_labels
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


def _pair_terms(sub: BlockGraph, halves: np.ndarray, obj: Objective, lref: float):
    """(excess, shape) of the two parts ``halves`` (0/1) of the merged region ``sub``
    alone; shape counts the cut between them. Every edge inside a part and between the
    two lies in ``sub``, so this equals the terms measured on the whole graph."""
    h = halves.astype(np.int64)
    W = np.bincount(h, weights=sub.weight, minlength=2)
    A = np.bincount(h, weights=sub.area, minlength=2)
    hu, hv = h[sub.edge_u], h[sub.edge_v]
    inner = hu == hv
    P = (np.bincount(h, weights=sub.perimeter, minlength=2)
         - 2 * np.bincount(hu[inner], weights=sub.edge_len[inner], minlength=2))
    between = ~inner
    cost = float((sub.edge_len[between] - (1.0 - obj.road_factor) * sub.edge_road[between]).sum())
    t = obj.target
    excess = float(((np.maximum(0.0, np.maximum(obj.low - W, W - obj.high)) / t) ** 2).sum())
    pp = 4 * np.pi * A / np.maximum(P, 1e-9) ** 2
    shape = (obj.cut_weight * cost / lref - obj.compactness_weight * pp.sum()
             + obj.balance_weight * (((W - t) / t) ** 2).sum() + _snake(pp, obj).sum())
    return excess, float(shape)


def _pair_measures(sub: BlockGraph, halves: np.ndarray, obj: Objective):
    """(excess, Polsby-Popper of both, cut length between them, of it on roads)."""
    h = halves.astype(np.int64)
    W = np.bincount(h, weights=sub.weight, minlength=2)
    A = np.bincount(h, weights=sub.area, minlength=2)
    hu, hv = h[sub.edge_u], h[sub.edge_v]
    inner = hu == hv
    P = (np.bincount(h, weights=sub.perimeter, minlength=2)
         - 2 * np.bincount(hu[inner], weights=sub.edge_len[inner], minlength=2))
    excess = float(((np.maximum(0.0, np.maximum(obj.low - W, W - obj.high)) / obj.target) ** 2).sum())
    pp = 4 * np.pi * A / np.maximum(P, 1e-9) ** 2
    return excess, pp, float(sub.edge_len[~inner].sum()), float(sub.edge_road[~inner].sum())


def _better(terms: tuple, than: tuple) -> bool:
    """Lexicographic comparison of (excess, ...) tuples, lower is better, with a
    tolerance of 1e-12 on the excess and 1e-6 on the other terms."""
    for j, (x, y) in enumerate(zip(terms, than)):
        eps = 1e-12 if j == 0 else 1e-6
        if x < y - eps:
            return True
        if x > y + eps:
            return False
    return False


def recombine(g: BlockGraph, labels: np.ndarray, k: int, obj: Objective, *, seed: int = 0,
              passes: int = 8, tries: int = 2, road_weight: float | None = None) -> tuple[np.ndarray, int]:
    """Merge two neighbouring parts and split them again, where that improves the result.

    Single-block moves stop at local optima that a whole boundary shift would leave: a
    thin part squeezed between two others, say. Pairs are taken worst Polsby-Popper
    first; the merged region is bisected by METIS (``tries`` seeds), repaired and
    refined on its own, and the split kept when the pair improves and the hard rules
    hold on the whole graph. "Improves": (excess, shape) of the pair is lower; or, with
    ``road_weight``, lexicographically: the excess is lower, else the pair's least
    Polsby-Popper (counted up to ``pp_floor``) is higher, else the measured quality of
    the whole partition rises (mean Polsby-Popper plus ``road_weight`` times the share
    of the cut on roads, see :func:`polish`, which also polishes each candidate split).
    """
    labels = labels.copy()
    if k < 2:
        return labels, 0
    adj = _csr(g, g.edge_len)
    ext = _extended(g)
    sub_obj = Objective(**{**obj.__dict__, "road_weight": road_weight})
    accepted = 0
    # A pair whose two parts have not changed since it was last tried is not tried again:
    # the same region gives the same candidate splits (seeded), refused before.
    version = np.zeros(k, dtype=np.int64)
    refused: set[tuple[int, int, int, int]] = set()
    for _ in range(passes):
        lu, lv = labels[g.edge_u], labels[g.edge_v]
        cut = lu != lv
        pairs = np.unique(np.column_stack([np.minimum(lu[cut], lv[cut]), np.maximum(lu[cut], lv[cut])]), axis=0)
        cut_len, cut_road = float(g.edge_len[cut].sum()), float(g.edge_road[cut].sum())
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
            key = (int(a), int(b), int(version[a]), int(version[b]))
            if key in refused:
                continue
            nodes = np.flatnonzero((labels == a) | (labels == b))
            sub = _subgraph(g, nodes)
            now = (labels[nodes] == b).astype(np.int64)
            if road_weight is None:
                best_terms = _pair_terms(sub, now, obj, lref)
            else:
                exc0, pp0, len0, road0 = _pair_measures(sub, now, obj)
                rest_len, rest_road = cut_len - len0, cut_road - road0
                share0 = cut_road / cut_len if cut_len > 0 else 1.0
                floor = min(obj.pp_floor, float(pp0.min()))
                best_terms = (exc0, -floor, -1e-6)
            best = None
            sub_adj = _csr(sub, sub.edge_len - (1.0 - obj.road_factor) * sub.edge_road)
            for s in range(tries):
                halves = metis(sub, 2, seed + 7 * s + 1, obj.road_factor, adj=sub_adj)
                if not _halves_ok(sub, halves):
                    halves = _repair(sub, halves, 2, seed + s, obj.road_factor, [])
                if road_weight is None or _pair_measures(sub, halves, obj)[0] > 1e-12:
                    # the road-aware stage refines a split only to bring it into the
                    # workload interval: the shape terms pull against its polish
                    halves = refine(sub, halves, 2, obj).labels
                if road_weight is None:
                    terms = _pair_terms(sub, halves, obj, lref)
                else:
                    halves = polish(sub, halves, 2, sub_obj).labels
                    exc, pp1, len1, road1 = _pair_measures(sub, halves, obj)
                    if pp1.min() < floor - 1e-9:
                        continue
                    tl = rest_len + len1
                    share1 = (rest_road + road1) / tl if tl > 0 else 1.0
                    gain = (pp1.sum() - pp0.sum()) / k + road_weight * (share1 - share0)
                    terms = (exc, -min(obj.pp_floor, float(pp1.min())), -gain)
                if _better(terms, best_terms):
                    best = labels.copy()
                    best[nodes] = np.where(halves == 0, a, b)
                    best_terms = terms
                    best_cut = None if road_weight is None else (rest_len + len1, rest_road + road1)
            if best is None:
                refused.add(key)
                continue
            sub_ok = not components(adj, best, k, (a, b)) and not holes(ext, best, k, g.n, (a, b))
            if sub_ok:
                labels = best
                touched[a] = touched[b] = True
                version[a] += 1
                version[b] += 1
                improved += 1
                if best_cut is not None:
                    cut_len, cut_road = best_cut
            else:
                refused.add(key)
        accepted += improved
        if not improved:
            break
    return labels, accepted


def partition(g: BlockGraph, k: int, obj: Objective, *, seed: int = 0, starts: int = 1) -> Result:
    """Partition ``g`` into ``k`` contiguous, hole-free, balanced and compact parts.

    METIS is started ``starts`` times (seeds ``seed``, ``seed + 1`` ...), each start
    repaired and refined; the best by (excess, shape) is then improved by recombining
    pairs of parts (:func:`recombine`, road-aware unless ``obj.road_weight`` is None),
    refined again and polished (:func:`polish`). Same seed, same result.
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
        if best is None or _better((res.excess, res.shape), (best.excess, best.shape)):
            best = res
    labels, n_rec = recombine(g, best.labels, k, obj, seed=best.seed, road_weight=obj.road_weight)
    if n_rec:
        again = refine(g, labels, k, obj)
        best.labels = again.labels
        best.rounds += again.rounds
        best.moves += again.moves
        best.repairs.append(f"recombined {n_rec} pair(s) of parts")
    if obj.road_weight is not None:
        pol = polish(g, best.labels, k, obj)
        best.labels = pol.labels
        best.rounds += pol.rounds
        best.moves += pol.moves
        if obj.anneal_rounds and k >= obj.anneal_min_parts:
            # cooling quadratically from anneal_t0 to 0; the best partition seen is kept
            temps = obj.anneal_t0 * np.linspace(1.0, 0.0, obj.anneal_rounds) ** 2
            an = polish(g, best.labels, k, obj, temps=temps, seed=best.seed)
            pol = polish(g, an.labels, k, obj)
            best.labels = pol.labels
            best.rounds += an.rounds + pol.rounds
            best.moves += an.moves + pol.moves
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
