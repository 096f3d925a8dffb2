"""Array engine behind :mod:`havenmap.coverage`: cached CSR, havens as virtual sources, reach, polygons.

Everything here runs on numpy arrays and ``scipy.sparse.csgraph``; there is no Python loop
over nodes, edges or defenders (only over havens, for the per-haven service areas).

*Graph once, havens on top.* The reversed network CSR under a cost model is built in a
few O(m) array passes from a grouping of the edges by ``(v, u)`` that is computed once
and cached on the network (the default time/length models are cached too). Havens are
not spliced into the graph: each becomes a virtual node with one reversed edge to each
end of its road (cost of the part of the road between that end and the haven), appended
as extra CSR rows. Node costs are then exact, and a defender standing on a road takes the
better of its two ends (plus the havens on its own road) — see :func:`point_costs`.
Splicing instead would rebuild the whole matrix per call (an ``lexsort`` of every edge:
about 1.6 s at a million nodes, six times the Dijkstra it feeds).

*Cost and time.* The cost model (``weights``) chooses the routes; times reported to users
are the physical travel times of those routes. Where the cost model is the travel time
itself (possibly with closed edges) they coincide; otherwise the physical time is summed
along the shortest-path trees by pointer jumping (``O(n log depth)``, vectorised).

*Service-area polygons.* Buffering and unioning the reached road pieces with GEOS grows
faster than linearly (a 145,000-piece grid takes 26 s for one polygon), far too slow for
a hundred havens at country scale. Instead, as Valhalla does for its isochrones, each
haven's reached pieces are sampled densely, the earliest arrival is rasterised on a fine
grid (a third of the buffer width), spread over the buffer radius with a minimum filter
and traced with marching squares (``contourpy``) at each band. The outline therefore
follows the reached road pieces — partial edges cut where the band ends — at about the
buffer distance: every reached point of road is inside with at least ``buffer - 1.2``
cells around it, and no point farther than ``buffer + 2.5`` cells from the reached pieces
is (checked against networkx in the tests). Per haven the grid is capped at
:data:`MAX_CELLS` cells: a reach wider than ~16 km (at the default 50 m buffer) gets
coarser cells and a proportionally wider buffer, which keeps a hundred havens at country
scale to a fraction of a second each.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import contourpy
import numpy as np
import shapely
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from . import _routing
from .network import _MIN_WEIGHT, RoadNetwork, _ragged_index

#: Grid cells per haven raster before the grid coarsens (bounds memory and time per haven).
MAX_CELLS = 1_000_000


# ---------------------------------------------------------------------- the reversed graph, cached
@dataclass
class _Groups:
    """Directed edges sorted by (v, u): position ``i`` holds edge ``order[i]``; cached on the network.

    Group ``g`` (reversed pair ``gv[g] → gu[g]``) spans positions ``starts[g]:starts[g+1]``;
    ``gid[i]`` is the group of position ``i``; ``row_groups[y]`` the number of groups of
    row ``y``. ``single``: no parallel edges.
    """

    order: np.ndarray
    starts: np.ndarray
    gid: np.ndarray
    gv: np.ndarray
    gu: np.ndarray
    row_groups: np.ndarray
    single: bool


def _groups(net: RoadNetwork) -> _Groups:
    cached = net._cache.get("reach_groups")
    if cached is None:
        key = net.edge_v.astype(np.int64) * net.n_nodes + net.edge_u
        order = np.argsort(key, kind="stable")
        sk = key[order]
        new = np.ones(len(sk), dtype=bool)
        new[1:] = sk[1:] != sk[:-1]
        starts = np.flatnonzero(new)
        gv = net.edge_v[order[starts]]
        cached = _Groups(
            order,
            starts,
            np.cumsum(new) - 1,
            gv,
            net.edge_u[order[starts]],
            np.bincount(gv, minlength=net.n_nodes),
            len(starts) == len(order),
        )
        net._cache["reach_groups"] = cached
    return cached


@dataclass
class BaseGraph:
    """The network reversed, under one cost model: ``rev[y, x]`` = cost of the cheapest open edge x → y.

    ``rev_edge`` is that edge per entry (aligned with ``rev.data``); ``weights`` the per-edge
    cost (``inf`` = closed); ``time_is_cost`` whether the cost is the physical travel time.
    """

    net: RoadNetwork
    weights: np.ndarray
    rev: sparse.csr_matrix
    rev_edge: np.ndarray
    time_is_cost: bool
    _in_open: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def in_open(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Open edges by end node: (ptr, edge, time) — the open edges entering y are ``edge[ptr[y]:ptr[y+1]]``."""
        if self._in_open is None:
            g = _groups(self.net)
            edges = g.order[np.isfinite(self.weights[g.order])]
            ptr = np.zeros(self.net.n_nodes + 1, dtype=np.int64)
            np.cumsum(np.bincount(self.net.edge_v[edges], minlength=self.net.n_nodes), out=ptr[1:])
            self._in_open = (ptr, edges, self.net.edge_time[edges])
        return self._in_open

    def max_cost_per_second(self) -> float:
        """Largest cost / physical time over open edges (1 when the cost is the time)."""
        if self.time_is_cost:
            return 1.0
        t = self.net.edge_time
        ok = np.isfinite(self.weights) & (t > 0)
        return float(np.max(self.weights[ok] / t[ok])) if ok.any() else 1.0


def base_graph(net: RoadNetwork, weights: np.ndarray | None = None, cost: str = "time") -> BaseGraph:
    """The reversed CSR of ``net`` under per-edge ``weights`` (default: ``cost``; cached then)."""
    if weights is None:
        cached = net._cache.get(("reach_base", cost))
        if cached is None:
            cached = _build_base(net, net.edge_cost(cost))
            net._cache[("reach_base", cost)] = cached
        return cached
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (net.n_edges,):
        raise ValueError(f"edge weights must have one value per edge ({net.n_edges}), got shape {w.shape}")
    return _build_base(net, w)


def _build_base(net: RoadNetwork, w: np.ndarray) -> BaseGraph:
    g = _groups(net)
    ws = w[g.order]
    ws[np.isnan(ws)] = np.inf
    if g.single:
        gmin, g_edge = ws, g.order
    else:
        gmin = np.minimum.reduceat(ws, g.starts)
        hit = np.flatnonzero(ws == gmin[g.gid])
        g_edge = g.order[hit[np.r_[True, g.gid[hit[1:]] != g.gid[hit[:-1]]]]]  # lowest edge index of the min
    keep = gmin < np.inf
    counts = g.row_groups - np.bincount(g.gv[~keep], minlength=net.n_nodes)
    indptr = np.zeros(net.n_nodes + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    rev = sparse.csr_matrix(
        (np.maximum(gmin[keep], _MIN_WEIGHT), g.gu[keep].astype(np.int32), indptr),
        shape=(net.n_nodes, net.n_nodes),
        copy=False,
    )
    open_ = np.isfinite(w)
    time_is_cost = bool(np.array_equal(w[open_], net.edge_time[open_]))
    return BaseGraph(net, w, rev, g_edge[keep], time_is_cost)


# ---------------------------------------------------------------------- havens as virtual sources
@dataclass
class Sourced:
    """A :class:`BaseGraph` with sources (havens) attached as virtual nodes ``n + h``.

    Source ``h`` sits at fraction ``frac[h]`` of edge ``edge[h]`` (``-1``: off the network,
    attached to nothing). ``rev`` has the extra rows; ``entry_time`` is the physical time
    of every entry of ``rev`` (only when the cost is not the time).
    """

    base: BaseGraph
    edge: np.ndarray
    frac: np.ndarray
    rev: sparse.csr_matrix
    entry_time: np.ndarray | None
    keys: np.ndarray | None = None

    @property
    def n_base(self) -> int:
        """Network nodes (the sources follow)."""
        return self.base.net.n_nodes

    @property
    def source_nodes(self) -> np.ndarray:
        """Graph node of every source."""
        return self.n_base + np.arange(len(self.edge))

    def end_costs(self) -> tuple[np.ndarray, ...]:
        """Per source: (tail node, cost, time) to reach it from its edge's start, and the same from its end."""
        return _end_costs(self.base, self.edge, self.frac)


def _end_costs(base: BaseGraph, edge: np.ndarray, frac: np.ndarray) -> tuple[np.ndarray, ...]:
    """For points on edges: the start node u with the cost/time u → point along the edge, and the end v with
    the cost/time v → point along the twin (inf where closed, one-way or off the network)."""
    net, w = base.net, base.weights
    on = edge >= 0
    e = np.where(on, edge, 0)
    twin = net.edge_twin[e]
    has_twin = on & (twin >= 0)
    t = np.where(has_twin, twin, 0)
    with np.errstate(invalid="ignore"):
        c_u = np.where(on, frac * w[e], np.inf)
        t_u = np.where(on, frac * net.edge_time[e], np.inf)
        c_v = np.where(has_twin, (1.0 - frac) * w[t], np.inf)
        t_v = np.where(has_twin, (1.0 - frac) * net.edge_time[t], np.inf)
    c_u[~np.isfinite(c_u)] = np.inf
    c_v[~np.isfinite(c_v)] = np.inf
    return net.edge_u[e], c_u, t_u, net.edge_v[e], c_v, t_v


def attach(base: BaseGraph, edge: np.ndarray, frac: np.ndarray) -> Sourced:
    """Attach sources on edges (``edge`` -1 = off network) as virtual nodes with reversed edges to both ends."""
    edge = np.asarray(edge, dtype=np.int64)
    frac = np.nan_to_num(np.asarray(frac, dtype=np.float64))
    n, h = base.net.n_nodes, len(edge)
    u, c_u, t_u, v, c_v, t_v = _end_costs(base, edge, frac)
    # each source row: its edge's start u (cost u → source), then its end v (via the twin)
    rows = np.concatenate([np.arange(h), np.arange(h)])
    cols = np.concatenate([u, v])
    cost = np.concatenate([c_u, c_v])
    time = np.concatenate([t_u, t_v])
    ok = np.isfinite(cost)
    rows, cols, cost, time = rows[ok], cols[ok], cost[ok], time[ok]
    o = np.lexsort((cost, cols, rows))
    rows, cols, cost, time = rows[o], cols[o], cost[o], time[o]
    first = np.r_[True, (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])] if len(o) else np.zeros(0, bool)
    rows, cols, cost, time = rows[first], cols[first], cost[first], time[first]
    rev = base.rev
    indptr = np.concatenate([rev.indptr, rev.indptr[-1] + np.cumsum(np.bincount(rows, minlength=h))])
    matrix = sparse.csr_matrix(
        (
            np.concatenate([rev.data, np.maximum(cost, _MIN_WEIGHT)]),
            np.concatenate([rev.indices, cols.astype(np.int32)]),
            indptr,
        ),
        shape=(n + h, n + h),
        copy=False,
    )
    entry_time = None
    if not base.time_is_cost:
        entry_time = np.concatenate([base.net.edge_time[base.rev_edge], time])
    return Sourced(base, edge, frac, matrix, entry_time)


# ---------------------------------------------------------------------- nearest sources of every node
@dataclass
class NodeCosts:
    """Every graph node's k nearest distinct sources: ``cost``, ``label`` (source index, -1), ``time`` (s); (N, k)."""

    cost: np.ndarray
    label: np.ndarray
    time: np.ndarray


def node_costs(src: Sourced, k: int = 1) -> NodeCosts:
    """One multi-source Dijkstra (plus one per extra rank) on the reversed graph from all sources."""
    big_n = src.rev.shape[0]
    sources = src.source_nodes[src.edge >= 0]
    cost = np.full((big_n, k), np.inf)
    label = np.full((big_n, k), -1, dtype=np.int64)
    if len(sources) == 0:
        return NodeCosts(cost, label, cost.copy())
    if k == 1:
        d, pred, origin = csgraph.dijkstra(
            src.rev, directed=True, indices=sources, min_only=True, return_predecessors=True
        )
        cost[:, 0] = d
        label[:, 0] = np.where(origin >= 0, origin - src.n_base, -1)
        if src.entry_time is None:
            return NodeCosts(cost, label, cost.copy())
        time = _tree_time(src, pred)[:, None]
    else:
        fwd = src.rev.T.tocsr()
        found = _routing.k_nearest_sources(fwd, sources, k)
        cost, label = found.dist, np.where(found.label >= 0, sources[np.maximum(found.label, 0)] - src.n_base, -1)
        if src.entry_time is None:
            return NodeCosts(cost, label, cost.copy())
        time = _ranked_time(src, found)
    time[~np.isfinite(cost)] = np.inf
    return NodeCosts(cost, label, time)


def point_costs(src: Sourced, nodes: NodeCosts, edge: np.ndarray, frac: np.ndarray) -> NodeCosts:
    """The k nearest distinct sources of points standing on edges (``edge`` -1 = off network).

    A point leaves its road by its end (``(1 - frac)`` of the edge, then that node's
    sources), by its start along the twin road (``frac`` of the twin), or reaches a source
    on the same road directly. The k best distinct sources over those candidates are exact:
    a source outside a node's own k best is beaten by k distinct ones through that node.
    """
    edge = np.asarray(edge, dtype=np.int64)
    frac = np.nan_to_num(np.asarray(frac, dtype=np.float64))
    k = nodes.cost.shape[1]
    m = len(edge)
    # leaving forward to the edge's end v, or back along the twin to its start u
    net, w = src.base.net, src.base.weights
    on = edge >= 0
    e = np.where(on, edge, 0)
    with np.errstate(invalid="ignore"):
        fwd_c = np.where(on, (1.0 - frac) * w[e], np.inf)
        fwd_t = np.where(on, (1.0 - frac) * net.edge_time[e], np.inf)
    twin = net.edge_twin[e]
    back_ok = on & (twin >= 0)
    tw = np.where(back_ok, twin, 0)
    with np.errstate(invalid="ignore"):
        back_c = np.where(back_ok, frac * w[tw], np.inf)
        back_t = np.where(back_ok, frac * net.edge_time[tw], np.inf)
    fwd_c[~np.isfinite(fwd_c)] = np.inf
    back_c[~np.isfinite(back_c)] = np.inf
    ends = [(net.edge_v[e], fwd_c, fwd_t), (net.edge_u[e], back_c, back_t)]
    who, lab, cst, tim = [], [], [], []
    for node, c, t in ends:
        for r in range(k):
            who.append(np.arange(m))
            lab.append(nodes.label[node, r])
            cst.append(c + nodes.cost[node, r])
            tim.append(t + nodes.time[node, r])
    # sources on the point's own road
    s_edge, s_frac = src.edge, src.frac
    order = np.argsort(s_edge, kind="stable")
    lo = np.searchsorted(s_edge[order], edge, side="left")
    hi = np.searchsorted(s_edge[order], edge, side="right")
    cnt = np.where(on, hi - lo, 0)
    if cnt.sum():
        pts = np.repeat(np.arange(m), cnt)
        srcs = order[_ragged_index(lo, cnt)]
        ahead = s_frac[srcs] >= frac[pts]
        gap = np.abs(s_frac[srcs] - frac[pts])
        pe = e[pts]
        road = np.where(ahead, pe, tw[pts])
        usable = ahead | back_ok[pts]
        with np.errstate(invalid="ignore"):
            c = np.where(usable, gap * w[road], np.inf)
            t = np.where(usable, gap * net.edge_time[road], np.inf)
        c[~np.isfinite(c)] = np.inf
        who.append(pts)
        lab.append(srcs)
        cst.append(c)
        tim.append(t)
    who, lab, cst, tim = (np.concatenate(x) for x in (who, lab, cst, tim))
    ok = (lab >= 0) & np.isfinite(cst) & on[who]
    who, lab, cst, tim = who[ok], lab[ok], cst[ok], tim[ok]
    o = np.lexsort((lab, cst, who))
    who, lab, cst, tim = who[o], lab[o], cst[o], tim[o]
    # keep each (point, source) once, at its cheapest; then the first k per point
    pair = who.astype(np.int64) * (len(src.edge) + 1) + lab
    _, first = np.unique(pair, return_index=True)
    first.sort()
    who, lab, cst, tim = who[first], lab[first], cst[first], tim[first]
    rank = np.arange(len(who)) - np.searchsorted(who, who, side="left")
    keep = rank < k
    out = NodeCosts(np.full((m, k), np.inf), np.full((m, k), -1, dtype=np.int64), np.full((m, k), np.inf))
    out.cost[who[keep], rank[keep]] = cst[keep]
    out.label[who[keep], rank[keep]] = lab[keep]
    out.time[who[keep], rank[keep]] = tim[keep]
    return out


# ---------------------------------------------------------------------- physical times along trees
def _pointer_sum(nxt: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Sum of ``step`` along ``nxt`` pointers to the root (roots point to themselves with step 0).

    Pointer jumping: each pass doubles the distance every pointer spans, so a tree of
    depth D takes log2(D) vectorised passes.
    """
    acc = step.astype(np.float64).copy()
    ptr = nxt.copy()
    while True:
        nxt_ptr = ptr[ptr]
        if np.array_equal(nxt_ptr, ptr):
            return acc
        acc += acc[ptr]
        ptr = nxt_ptr


def _entry_time(src: Sourced, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Physical time of the reversed-graph entries (rows[i], cols[i]) (each must be an entry)."""
    if src.keys is None:
        big_n = src.rev.shape[0]
        src.keys = np.repeat(np.arange(big_n, dtype=np.int64), np.diff(src.rev.indptr)) * big_n + src.rev.indices
    pos = np.searchsorted(src.keys, rows.astype(np.int64) * src.rev.shape[0] + cols)
    return src.entry_time[np.minimum(pos, len(src.keys) - 1)]


def _tree_time(src: Sourced, pred: np.ndarray) -> np.ndarray:
    """Physical time from every node to its tree root, following a reversed-graph predecessor array."""
    big_n = len(pred)
    nodes = np.arange(big_n)
    has = pred >= 0
    nxt = np.where(has, pred, nodes)
    step = np.zeros(big_n)
    # reversed entry pred -> v is the forward road v -> pred
    step[has] = _entry_time(src, pred[has], nodes[has])
    return _pointer_sum(nxt, step)


def _ranked_time(src: Sourced, found: _routing.NearestSources) -> np.ndarray:
    """Physical time of each node's route to its r-th source, over the (node, rank) states of ``found``."""
    big_n, k = found.dist.shape
    nodes = np.arange(big_n)
    nxt = np.empty(big_n * k, dtype=np.int64)
    step = np.zeros(big_n * k)
    for r in range(k):
        pred = np.asarray(found.pred[r], dtype=np.int64)
        state = r * big_n + nodes
        nxt[state] = state
        direct = (pred >= 0) & (pred < big_n)
        jump = pred >= big_n
        nxt[state[direct]] = r * big_n + pred[direct]
        step[state[direct]] = _entry_time(src, pred[direct], nodes[direct])
        if jump.any():
            jn, jr = found.jump_node[r][nodes[jump]], found.jump_rank[r][nodes[jump]]
            nxt[state[jump]] = jr * big_n + jn
            step[state[jump]] = _entry_time(src, jn, nodes[jump])
    total = _pointer_sum(nxt, step).reshape(k, big_n).T
    return np.where(np.isfinite(found.dist), total, np.inf)


# ---------------------------------------------------------------------- bounded reach per source
@dataclass
class Reach:
    """One source's reach: road pieces leading towards it, with the time at both ends of each.

    Row ``i`` covers fraction ``f0[i]..f1[i]`` of network edge ``edge[i]``, travelled in the
    edge's direction towards the source: travel time to the source is ``t0[i]`` at ``f0``
    and ``t1[i]`` at ``f1`` (seconds, linear in between; ``t0 >= t1``). A point of road
    covered by several rows (both directions of a street, or the source's own road) takes
    the smallest time.
    """

    source: int
    edge: np.ndarray
    f0: np.ndarray
    f1: np.ndarray
    t0: np.ndarray
    t1: np.ndarray


def bounded_reach(
    src: Sourced, max_time_s: float, sources: np.ndarray | None = None, chunk: int = 8
) -> Iterator[Reach]:
    """For each source, the road pieces from which it is reached within ``max_time_s`` at their near end.

    One Dijkstra per source on the reversed graph, bounded by ``max_time_s`` (times the largest
    cost per second of the cost model), in chunks of ``chunk`` sources.
    """
    base, net = src.base, src.base.net
    n = net.n_nodes
    in_ptr, in_edge, in_time = base.in_open()
    sources = np.flatnonzero(src.edge >= 0) if sources is None else np.asarray(sources, dtype=np.int64)
    limit = max_time_s * base.max_cost_per_second() * (1 + 1e-9) + 1e-9
    _, c_u, t_u, _, c_v, t_v = src.end_costs()
    for start in range(0, len(sources), chunk):
        block = sources[start : start + chunk]
        out = csgraph.dijkstra(
            src.rev, directed=True, indices=n + block, limit=limit, return_predecessors=src.entry_time is not None
        )
        dist, preds = (out, None) if src.entry_time is None else out
        for i, h in enumerate(block):
            row = dist[i, :n]
            nodes = np.flatnonzero(row <= limit)
            if src.entry_time is None:
                t_node = row[nodes]
            else:
                t_node = _subtree_time(src, nodes, preds[i], n + h)
                ok = t_node <= max_time_s
                nodes, t_node = nodes[ok], t_node[ok]
            counts = in_ptr[nodes + 1] - in_ptr[nodes]
            pos = _ragged_index(in_ptr[nodes], counts)
            edges = in_edge[pos]
            t1 = np.repeat(t_node, counts)
            t0 = t1 + in_time[pos]
            # the source's own road: from its start u up to the source, from its end v back along the twin
            e = src.edge[h]
            own_e, own_f1, own_t0 = [], [], []
            if np.isfinite(c_u[h]):
                own_e.append(e)
                own_f1.append(src.frac[h])
                own_t0.append(t_u[h])
            if np.isfinite(c_v[h]):
                own_e.append(net.edge_twin[e])
                own_f1.append(1.0 - src.frac[h])
                own_t0.append(t_v[h])
            yield Reach(
                int(h),
                np.concatenate([edges, np.asarray(own_e, dtype=np.int64)]),
                np.zeros(len(edges) + len(own_e)),
                np.concatenate([np.ones(len(edges)), own_f1]),
                np.concatenate([t0, own_t0]),
                np.concatenate([t1, np.zeros(len(own_e))]),
            )


def _subtree_time(src: Sourced, nodes: np.ndarray, pred: np.ndarray, root: int) -> np.ndarray:
    """Physical time to the source for ``nodes`` (sorted network nodes) of one bounded Dijkstra's tree."""
    p = pred[nodes].astype(np.int64)
    at_root = p == root
    inner = (p >= 0) & ~at_root
    nxt = np.arange(len(nodes) + 1)  # the last element stands for the source itself
    nxt[:-1][at_root] = len(nodes)
    nxt[:-1][inner] = np.searchsorted(nodes, p[inner])
    step = np.zeros(len(nodes) + 1)
    walk = p >= 0
    step[:-1][walk] = _entry_time(src, p[walk], nodes[walk])
    return _pointer_sum(nxt, step)[:-1]


# ---------------------------------------------------------------------- points along edges
def _vertex_cum(net: RoadNetwork) -> tuple[np.ndarray, np.ndarray]:
    """The network's cumulative vertex lengths and the segment lengths (0 between edges)."""
    cum = net.vertex_cum
    return cum, np.diff(cum)


def points_along(net: RoadNetwork, edge: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """Projected (x, y) of the points at ``fraction`` (of planar length) along edges ``edge``."""
    cum, seg = _vertex_cum(net)
    start = net.geom_offsets[edge]
    last = net.geom_offsets[edge + 1] - 2  # last segment's first vertex
    target = cum[start] + np.clip(fraction, 0.0, 1.0) * (cum[last + 1] - cum[start])
    j = start.copy()
    bent = last > start  # straight edges have one segment: no search
    if bent.any():
        j[bent] = np.clip(np.searchsorted(cum, target[bent], side="right") - 1, start[bent], last[bent])
    length = seg[j]
    t = np.divide(target - cum[j], length, out=np.zeros_like(target), where=length > 0)
    xy = net.geom_xy
    return xy[j] + np.clip(t, 0.0, 1.0)[:, None] * (xy[j + 1] - xy[j])


def reach_samples(
    net: RoadNetwork, reach: Reach, bands_s: np.ndarray, spacing_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Points along the reached part of every piece, at most ``spacing_m`` apart, with their times.

    Each piece is sampled from where its time drops to the largest band to its end towards
    the source, vertex to vertex of the road geometry (so the samples lie on the road); the
    exact cut of every other band is a sample too, so each band's reach is represented to
    the cut. Work per sample is a few sequential array passes (per-piece and per-segment
    values are computed first and repeated).
    """
    t_max = float(bands_s.max())
    inside = reach.t1 <= t_max
    e, f0, f1 = reach.edge[inside], reach.f0[inside], reach.f1[inside]
    t0, t1 = reach.t0[inside], reach.t1[inside]
    span, dt = f1 - f0, t0 - t1
    with np.errstate(divide="ignore", invalid="ignore"):
        s_start = np.clip(1.0 - np.where(dt > 0, (t_max - t1) / dt, 1.0), 0.0, 1.0)
    a, ta = f0 + s_start * span, t0 - s_start * dt  # reached part: fraction a (time ta) .. f1 (time t1)
    cum, seg = _vertex_cum(net)
    start = net.geom_offsets[e]
    last = net.geom_offsets[e + 1] - 2  # first vertex of the edge's last segment
    length = cum[last + 1] - cum[start]
    pos_a = cum[start] + a * length
    pos_b = cum[start] + f1 * length
    j0, j1 = start.copy(), start.copy()
    bent = np.flatnonzero(last > start)
    if len(bent):
        j0[bent] = np.clip(np.searchsorted(cum, pos_a[bent], side="right") - 1, start[bent], last[bent])
        j1[bent] = np.clip(np.searchsorted(cum, pos_b[bent], side="left") - 1, j0[bent], last[bent])
    # one row per (piece, geometry segment) overlapping the reached part
    n_seg = j1 - j0 + 1
    pid = np.repeat(np.arange(len(e)), n_seg)
    j = _ragged_index(j0, n_seg)
    lo = np.maximum(cum[j], pos_a[pid])
    hi = np.maximum(np.minimum(cum[j + 1], pos_b[pid]), lo)
    seg_len = seg[j]
    xy = net.geom_xy
    step = xy[j + 1] - xy[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        u_lo = np.where(seg_len > 0, (lo - cum[j]) / seg_len, 0.0)
        u_hi = np.where(seg_len > 0, (hi - cum[j]) / seg_len, 0.0)
        slope = np.where(pos_b > pos_a, (t1 - ta) / (pos_b - pos_a), 0.0)[pid]
    p_lo = xy[j] + u_lo[:, None] * step
    p_hi = xy[j] + u_hi[:, None] * step
    tm_lo = ta[pid] + slope * (lo - pos_a[pid])
    tm_hi = ta[pid] + slope * (hi - pos_a[pid])
    n_s = np.maximum(np.ceil((hi - lo) / spacing_m).astype(np.int64), 1) + 1
    ends = np.cumsum(n_s)
    w = (
        (np.arange(ends[-1]) - np.repeat(ends - n_s, n_s)) / np.repeat(n_s - 1, n_s).astype(np.float64)
        if len(n_s)
        else np.zeros(0)
    )
    pts = np.repeat(p_lo, n_s, axis=0) + w[:, None] * np.repeat(p_hi - p_lo, n_s, axis=0)
    times = np.repeat(tm_lo, n_s) + w * np.repeat(tm_hi - tm_lo, n_s)
    # exact band cuts (the widest band's cut is the first sample of each piece already)
    cut_e, cut_f, cut_t = [], [], []
    for band in bands_s[bands_s < t_max]:
        with np.errstate(divide="ignore", invalid="ignore"):
            g = (ta - band) / (ta - t1)
        hit = np.flatnonzero((ta > band) & (t1 <= band) & np.isfinite(g))
        cut_e.append(e[hit])
        cut_f.append(a[hit] + g[hit] * (f1[hit] - a[hit]))
        cut_t.append(np.full(len(hit), band))
    if cut_e:
        ce = np.concatenate(cut_e)
        pts = np.vstack([pts, points_along(net, ce, np.concatenate(cut_f))])
        times = np.concatenate([times, *cut_t])
    return pts, times


def haven_polygons(
    net: RoadNetwork, reach: Reach, bands_s: np.ndarray, buffer_m: float, cells_per_buffer: int = 3
) -> list[shapely.Geometry]:
    """A source's service area per band: :func:`reach_samples` then :func:`band_polygons`.

    The grid cell is ``buffer_m / cells_per_buffer``, coarsened when the reach's extent would
    need more than :data:`MAX_CELLS` cells (the buffer then widens with it); samples are
    spaced one cell apart.
    """
    inside = reach.t1 <= bands_s.max()
    if not inside.any():
        return [shapely.Polygon()] * len(bands_s)
    ends = np.concatenate([net.edge_u[reach.edge[inside]], net.edge_v[reach.edge[inside]]])
    lo, hi = _bounds(net.node_xy[ends])
    extent = hi - lo
    cell = _cell_size(extent, buffer_m / cells_per_buffer, cells_per_buffer)
    xy, t = reach_samples(net, reach, bands_s, spacing_m=cell)
    return band_polygons(xy, t, bands_s, cell * cells_per_buffer, cells_per_buffer)


def _bounds(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(min x, min y), (max x, max y) of an (n, 2) array (column by column: axis-0 reductions are slow)."""
    x, y = xy[:, 0], xy[:, 1]
    return np.array([x.min(), y.min()]), np.array([x.max(), y.max()])


def _cell_size(extent: np.ndarray, cell: float, cells_per_buffer: int) -> float:
    pad = cells_per_buffer + 2
    cells = float(np.prod(np.asarray(extent) / cell + 2 * pad + 1))
    return cell * float(np.sqrt(cells / MAX_CELLS)) if cells > MAX_CELLS else cell


def band_polygons(
    xy: np.ndarray, times: np.ndarray, bands_s: np.ndarray, buffer_m: float, cells_per_buffer: int = 3
) -> list[shapely.Geometry]:
    """One (Multi)Polygon per band: the area within ``buffer_m`` of the samples with time <= band.

    Rasterised on a grid of ``buffer_m / cells_per_buffer`` (coarsened above :data:`MAX_CELLS`
    cells, widening the buffer to keep ``cells_per_buffer`` cells), min-filtered over a disc
    of the buffer radius and traced with marching squares at each band (outline midway
    between reached and unreached cell centres; exactly collinear vertices dropped, so the
    bands stay nested). Empty polygons for bands no sample reaches.
    """
    empty = shapely.Polygon()
    if len(times) == 0:
        return [empty] * len(bands_s)
    lo, hi = _bounds(xy)
    pad = cells_per_buffer + 2
    cell = _cell_size(hi - lo, buffer_m / cells_per_buffer, cells_per_buffer)
    origin = lo - pad * cell
    shape = (np.floor((hi - origin) / cell).astype(np.int64) + pad + 1)[::-1]  # rows (y), cols (x)
    ij = np.floor((xy - origin) / cell).astype(np.int64)
    grid = np.full(shape, np.inf, dtype=np.float32)
    np.minimum.at(grid, (ij[:, 1], ij[:, 0]), times.astype(np.float32))
    r = cells_per_buffer
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    grid = ndimage.minimum_filter(grid, footprint=(xx**2 + yy**2) <= r * r, mode="constant", cval=np.inf)
    row_min, col_min = grid.min(axis=1), grid.min(axis=0)
    out = []
    for band in bands_s:
        rows = np.flatnonzero(row_min <= np.float32(band))
        if not len(rows):
            out.append(empty)
            continue
        cols = np.flatnonzero(col_min <= np.float32(band))
        mask = grid <= np.float32(band)
        r0, r1 = max(rows[0] - 1, 0), min(rows[-1] + 2, shape[0])
        c0, c1 = max(cols[0] - 1, 0), min(cols[-1] + 2, shape[1])
        crop = mask[r0:r1, c0:c1].astype(np.float64)
        # index coordinates: column = x, row = y; cell (row, col) is centred at origin + (col, row) + 0.5 cells
        gen = contourpy.contour_generator(z=crop, fill_type=contourpy.FillType.OuterOffset)
        points, offsets = gen.filled(0.5, 2.0)
        out.append(_to_polygons(points, offsets, origin + (np.array([c0, r0]) + 0.5) * cell, cell))
    return out


def _to_polygons(
    points: list[np.ndarray], offsets: list[np.ndarray], origin: np.ndarray, scale: float
) -> shapely.Geometry:
    """contourpy OuterOffset output in index space (shell then holes per polygon) to one (Multi)Polygon.

    Vertices exactly collinear with their neighbours (runs along grid rows, columns and
    diagonals; exact in index space, where every vertex is a multiple of 0.5) are dropped.
    """
    coords = np.vstack(points)
    sizes = np.concatenate([np.diff(o.astype(np.int64)) for o in offsets])
    ring_poly = np.concatenate([np.full(len(o) - 1, p) for p, o in enumerate(offsets)])
    ring = np.repeat(np.arange(len(sizes)), sizes)
    ends = np.cumsum(sizes)
    first = np.zeros(len(coords), dtype=bool)
    first[ends - sizes] = True
    last = np.zeros(len(coords), dtype=bool)
    last[ends - 1] = True
    d_in = coords - np.roll(coords, 1, axis=0)
    d_out = np.roll(coords, -1, axis=0) - coords
    straight = d_in[:, 0] * d_out[:, 1] - d_in[:, 1] * d_out[:, 0] == 0
    keep = first | last | ~straight
    ring_geoms = shapely.linearrings(origin + coords[keep] * scale, indices=ring[keep])
    polys = shapely.polygons(ring_geoms, indices=ring_poly)
    return polys[0] if len(polys) == 1 else shapely.multipolygons(polys)
