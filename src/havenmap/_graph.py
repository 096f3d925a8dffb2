"""The routing core: the one place that turns a road network and a cost model into a searchable
graph, puts points on it, and searches it.

Every analysis — nearest havens, coverage and N-1, service areas, closures and danger costs,
patrol legs, haven siting, threat kernels and alerts — goes through the functions here, on
numpy arrays and ``scipy.sparse.csgraph``: one multi-source search rather than one search per
point, and no Python loop over nodes, edges or points.

Points on the network
---------------------
A snapped point (an edge and a fraction along it, from :func:`havenmap.snap_points`) is placed
by :class:`Places`:

* **At an intersection.** Within ``min(NODE_TOLERANCE_M, NODE_TOLERANCE_SHARE × length)`` of
  an end of its edge the point *is* that node: it leaves by, and is reached from, every street
  there.
* **Part-way along a street** ``e = u → v`` at fraction ``f``: it leaves towards ``v`` for
  ``(1 - f)`` of the edge's cost and, on a two-way street (a twin edge ``v → u``), towards
  ``u`` for ``f`` of the twin's cost; it is reached from ``u`` for ``f`` of the edge's cost and,
  on a two-way street, from ``v`` for ``(1 - f)`` of the twin's. On a one-way street only the
  legal direction exists: a haven there is reached only from behind. Two points on the same
  road connect directly along it. (Walk networks have no one-way streets.)
* Off the network: attached to nothing.

Points are never spliced into the network. A search attaches its *own* points (the sources)
as virtual nodes: extra CSR rows appended to the cached matrix of the cost model, pointing at
the network nodes they link to (an O(points) append, not a rebuild). The points a search is
*asked about* take the best of their links to the network nodes, plus the sources on their own
road. Both are exact: a path from a point leaves its road at one of its ends, or stays on it.

Costs and times
---------------
Zero-cost entries (a point exactly at a node, a zero-length road) are explicit zeros in the CSR
matrices: ``scipy.sparse.csgraph`` treats an explicit zero as an edge of weight 0, and nothing
here ever calls ``eliminate_zeros``.

A cost model is one weight per directed edge (``inf`` = closed). Routes minimise it; the times
and lengths reported are the physical ones along the chosen routes, summed along the search
trees by pointer jumping when they differ from the cost. The cost of part of an edge is that
share of the edge's cost.

Searches
--------
:func:`nearest`
    Every node's k nearest *distinct* sources (one reversed multi-source Dijkstra per rank),
    then :meth:`Nearest.at` for points and :meth:`Nearest.routes` for their routes.
:func:`travel_matrix`
    Many-to-many costs, times and lengths between point sets (one search per origin, in
    chunks, optionally bounded), with the road pieces of any leg.
:func:`bounded_reach`
    Per source, the road pieces from which it is reached within a time (service areas).
:func:`pairs_within`, :func:`bounded_blocks`
    Undirected network distances (metres) within a bound, in spatial tiles (threat kernels,
    alerts, hotspot neighbourhoods).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import shapely
from scipy import sparse
from scipy.sparse import csgraph

from ._arrays import first_of_runs, pointer_sum, ragged_index
from .network import RoadNetwork

__all__ = [
    "NODE_TOLERANCE_M",
    "NODE_TOLERANCE_SHARE",
    "CostGraph",
    "Matrix",
    "Nearest",
    "Pieces",
    "PlaceCosts",
    "Places",
    "Reach",
    "UGraph",
    "bounded_blocks",
    "bounded_reach",
    "cheapest_csr",
    "cost_graph",
    "nearest",
    "node_at",
    "pairs_within",
    "pieces_to_lines",
    "road_positions",
    "travel_matrix",
    "undirected_graph",
]

#: A point within this distance (metres, along its road) of an intersection is at the intersection.
NODE_TOLERANCE_M = 1.0
#: ... or within this share of its road piece's length, whichever is smaller (so a short piece keeps
#: its interior: 2 % of a 10 m piece is 0.2 m).
NODE_TOLERANCE_SHARE = 0.02
_NO_PRED = -9999
#: Cells (sources × graph nodes) of one dense Dijkstra block (bounds memory: about 12 bytes a cell).
_CHUNK_CELLS = 20_000_000


# ====================================================================== points on the network
def node_at(net: RoadNetwork, edge: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """The node a snapped position is at (see the module docstring), or -1 when part-way along its edge.

    Parameters
    ----------
    edge, fraction
        Directed edge index (-1: off the network) and fraction of its planar length (0 at u).
    """
    edge = np.asarray(edge, dtype=np.int64)
    frac = np.asarray(fraction, dtype=np.float64)
    node = np.full(edge.shape, -1, dtype=np.int64)
    on = (edge >= 0) & np.isfinite(frac)
    e = edge[on]
    length = net.geom_length[e]
    along = np.clip(frac[on], 0.0, 1.0) * length
    tol = np.minimum(NODE_TOLERANCE_M, NODE_TOLERANCE_SHARE * length)
    at_u = along <= tol
    at_v = ~at_u & (length - along <= tol)
    node[on] = np.where(at_u, net.edge_u[e], np.where(at_v, net.edge_v[e], -1))
    return node


@dataclass(frozen=True)
class Places:
    """Points placed on the network: at a node, part-way along an edge, or off the network.

    Attributes
    ----------
    node : (p,) int64
        Node index of a point at an intersection, else -1.
    edge : (p,) int64
        Directed edge of a point part-way along a street, else -1.
    frac : (p,) float64
        Fraction along ``edge`` (0 at its start node), NaN unless part-way.
    """

    node: np.ndarray
    edge: np.ndarray
    frac: np.ndarray

    @classmethod
    def locate(cls, net: RoadNetwork, edge: np.ndarray, fraction: np.ndarray) -> Places:
        """Place snapped positions (edge -1 = off the network) by the point rules."""
        edge = np.asarray(edge, dtype=np.int64)
        frac = np.clip(np.asarray(fraction, dtype=np.float64), 0.0, 1.0)
        node = node_at(net, edge, frac)
        part_way = (node < 0) & (edge >= 0)
        return cls(node, np.where(part_way, edge, -1), np.where(part_way, frac, np.nan))

    @classmethod
    def from_snapped(cls, net: RoadNetwork, snapped) -> Places:
        """Place the rows of a :func:`havenmap.snap_points` result (off-network rows attach to nothing)."""
        on = snapped["on_network"].to_numpy(dtype=bool)
        edge = np.where(on, snapped["edge"].to_numpy(dtype=np.int64), -1)
        return cls.locate(net, edge, np.nan_to_num(snapped["edge_fraction"].to_numpy(dtype=np.float64)))

    @classmethod
    def at_nodes(cls, nodes: np.ndarray) -> Places:
        """Points exactly at the given nodes."""
        nodes = np.asarray(nodes, dtype=np.int64)
        return cls(nodes, np.full(len(nodes), -1, dtype=np.int64), np.full(len(nodes), np.nan))

    @classmethod
    def concat(cls, *parts: Places) -> Places:
        """The points of several :class:`Places`, one after the other."""
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("node", "edge", "frac")))

    def __len__(self) -> int:
        return len(self.node)

    @property
    def on(self) -> np.ndarray:
        """Boolean per point: on the network."""
        return (self.node >= 0) | (self.edge >= 0)

    def take(self, index: np.ndarray) -> Places:
        """A subset of the points, in the order of ``index``."""
        return Places(self.node[index], self.edge[index], self.frac[index])

    def xy(self, net: RoadNetwork) -> np.ndarray:
        """Projected (x, y) of every point on the network (NaN for points off it)."""
        out = np.full((len(self), 2), np.nan)
        at = self.node >= 0
        out[at] = net.node_xy[self.node[at]]
        mid = self.edge >= 0
        out[mid] = net.points_along(self.edge[mid], self.frac[mid])
        return out


# ====================================================================== cost graphs
@dataclass
class _Groups:
    """Directed edges sorted by (row, col) node pairs (forward: (u, v); reversed: (v, u)); cached per network."""

    order: np.ndarray
    starts: np.ndarray
    gid: np.ndarray
    row: np.ndarray
    col: np.ndarray
    row_groups: np.ndarray
    single: bool


def _groups(net: RoadNetwork, reverse: bool) -> _Groups:
    def build() -> _Groups:
        a, b = (net.edge_v, net.edge_u) if reverse else (net.edge_u, net.edge_v)
        key = a.astype(np.int64) * net.n_nodes + b
        order = np.argsort(key, kind="stable")
        new = first_of_runs(key[order])
        starts = np.flatnonzero(new)
        row = a[order[starts]]
        return _Groups(
            order,
            starts,
            np.cumsum(new) - 1,
            row,
            b[order[starts]],
            np.bincount(row, minlength=net.n_nodes),
            len(starts) == len(order),
        )

    return net.cached(("graph_groups", reverse), build)


def _index_dtype(*sizes: int) -> type:
    return np.int32 if max(sizes) < np.iinfo(np.int32).max else np.int64


@dataclass
class _Csr:
    """A CSR matrix with the network edge behind every entry (``-1`` for a virtual entry)."""

    matrix: sparse.csr_matrix
    edge: np.ndarray
    _keys: np.ndarray | None = field(default=None, repr=False)

    def entry(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Positions in ``matrix.data`` of the entries (rows[i], cols[i]), which must exist."""
        n = self.matrix.shape[0]
        if self._keys is None:
            indptr = self.matrix.indptr
            self._keys = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr)) * n + self.matrix.indices
        pos = np.searchsorted(self._keys, np.asarray(rows, np.int64) * n + np.asarray(cols, np.int64))
        return np.minimum(pos, len(self._keys) - 1)


def _edge_csr(net: RoadNetwork, weights: np.ndarray, reverse: bool) -> _Csr:
    """The cheapest open edge per node pair as a CSR matrix (reversed: ``rev[v, u]`` = cost of u → v)."""
    g = _groups(net, reverse)
    ws = weights[g.order]
    if g.single:
        gmin, g_edge = ws, g.order
    else:
        gmin = np.minimum.reduceat(ws, g.starts)
        hit = np.flatnonzero(ws == gmin[g.gid])
        g_edge = g.order[hit[first_of_runs(g.gid[hit])]]  # the lowest edge index among equal minima
        g_edge = np.where(np.isfinite(gmin), g_edge, g.order[g.starts])
    keep = np.isfinite(gmin)
    n = net.n_nodes
    counts = g.row_groups - np.bincount(g.row[~keep], minlength=n)
    itype = _index_dtype(n, int(keep.sum()))
    indptr = np.zeros(n + 1, dtype=itype)
    np.cumsum(counts, out=indptr[1:])
    matrix = sparse.csr_matrix((gmin[keep], g.col[keep].astype(itype), indptr), shape=(n, n), copy=False)
    return _Csr(matrix, g_edge[keep])


def cheapest_csr(u: np.ndarray, v: np.ndarray, w: np.ndarray, n: int) -> tuple[sparse.csr_matrix, np.ndarray]:
    """An n × n CSR matrix keeping the cheapest of parallel (u, v) entries, and the index of each entry's source.

    Entries with non-finite weight are left out (closed).
    """
    keep = np.flatnonzero(np.isfinite(w))
    order = keep[np.lexsort((w[keep], v[keep], u[keep]))]
    order = order[first_of_runs(u[order], v[order])]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(u[order], minlength=n), out=indptr[1:])
    data = w[order]
    return sparse.csr_matrix((data, v[order].astype(np.int32), indptr), shape=(n, n)), order


@dataclass(eq=False)
class CostGraph:
    """A network under one cost model (see :func:`cost_graph`).

    Attributes
    ----------
    net : RoadNetwork
    weights : (m,) float64
        Cost of every directed edge; ``inf`` = closed.
    time_is_cost : bool
        Whether the cost of every open edge is its physical travel time (then reported times
        need no second pass).
    """

    net: RoadNetwork
    weights: np.ndarray
    time_is_cost: bool
    _csr: dict[bool, _Csr] = field(default_factory=dict, repr=False)
    _in_open: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def csr(self, reverse: bool) -> _Csr:
        """The cheapest open edge per node pair: forward (``[u, v]``) or reversed (``[v, u]``)."""
        if reverse not in self._csr:
            self._csr[reverse] = _edge_csr(self.net, self.weights, reverse)
        return self._csr[reverse]

    def in_open(self) -> tuple[np.ndarray, np.ndarray]:
        """Every open edge by its end node: the open edges entering y are ``edge[ptr[y]:ptr[y + 1]]``."""
        if self._in_open is None:
            order = _groups(self.net, reverse=True).order
            edges = order[np.isfinite(self.weights[order])]
            ptr = np.zeros(self.net.n_nodes + 1, dtype=np.int64)
            np.cumsum(np.bincount(self.net.edge_v[edges], minlength=self.net.n_nodes), out=ptr[1:])
            self._in_open = (ptr, edges)
        return self._in_open

    def max_cost_per_second(self) -> float:
        """Largest cost / physical time over open edges (1 when the cost is the time)."""
        if self.time_is_cost:
            return 1.0
        t = self.net.edge_time
        ok = np.isfinite(self.weights) & (t > 0)
        return float(np.max(self.weights[ok] / t[ok])) if ok.any() else 1.0


def cost_graph(net: RoadNetwork, cost: str = "time", edge_weights: np.ndarray | None = None) -> CostGraph:
    """The network under a cost model: ``cost`` ('time', s, or 'length', m), or per-edge ``edge_weights``.

    ``edge_weights`` has one value per directed edge (``inf`` or NaN = closed; negative values
    are refused). The default models are built once per network and kept with it.
    """
    if edge_weights is None:
        if cost not in ("time", "length"):
            raise ValueError(f"unknown cost {cost!r}: use 'time' or 'length'")
        return net.cached(("cost_graph", cost), lambda: _make_cost_graph(net, net.edge_cost(cost)))
    w = np.asarray(edge_weights, dtype=np.float64)
    if w.shape != (net.n_edges,):
        raise ValueError(f"edge weights must have one value per edge ({net.n_edges}), got shape {w.shape}")
    return _make_cost_graph(net, w)


def _make_cost_graph(net: RoadNetwork, weights: np.ndarray) -> CostGraph:
    w = np.where(np.isnan(weights), np.inf, weights).astype(np.float64)
    if (w < 0).any():
        raise ValueError(f"edge weights must not be negative (edge {int(np.flatnonzero(w < 0)[0])})")
    open_ = np.isfinite(w)
    return CostGraph(net, w, bool(np.array_equal(w[open_], net.edge_time[open_])))


# ====================================================================== road pieces and routes
@dataclass
class Pieces:
    """The road pieces of many routes, in travel order.

    Piece ``i`` runs along directed edge ``edge[i]`` from fraction ``f0[i]`` to ``f1[i]``
    (``f0 <= f1``) and belongs to route ``owner[i]``; a route's pieces are consecutive and
    ``owner`` is non-decreasing. A route may have no piece (a point at its destination).
    """

    edge: np.ndarray
    f0: np.ndarray
    f1: np.ndarray
    owner: np.ndarray
    n_routes: int

    def total(self, per_edge: np.ndarray) -> np.ndarray:
        """Per route: the sum of ``per_edge`` over its pieces, pro rata (e.g. ``net.edge_length`` → metres)."""
        return np.bincount(self.owner, weights=per_edge[self.edge] * (self.f1 - self.f0), minlength=self.n_routes)

    def route(self, i: int) -> Pieces:
        """The pieces of route ``i`` alone."""
        lo, hi = np.searchsorted(self.owner, [i, i + 1])
        sl = slice(lo, hi)
        return Pieces(self.edge[sl], self.f0[sl], self.f1[sl], np.zeros(hi - lo, dtype=np.int64), 1)

    @classmethod
    def concat(cls, parts: list[Pieces]) -> Pieces:
        """Routes of several :class:`Pieces`, numbered one after the other."""
        if not parts:
            return cls(*(np.zeros(0, dtype=t) for t in (np.int64, float, float, np.int64)), 0)
        offsets = np.cumsum([0] + [p.n_routes for p in parts[:-1]])
        return cls(
            np.concatenate([p.edge for p in parts]),
            np.concatenate([p.f0 for p in parts]),
            np.concatenate([p.f1 for p in parts]),
            np.concatenate([p.owner + o for p, o in zip(parts, offsets, strict=True)]),
            int(sum(p.n_routes for p in parts)),
        )

    @classmethod
    def join(cls, parts: list[Pieces]) -> Pieces:
        """One route made of the routes of ``parts`` one after the other (e.g. the legs of a patrol)."""
        joined = cls.concat(parts)
        return cls(joined.edge, joined.f0, joined.f1, np.zeros(len(joined.edge), dtype=np.int64), 1)


def pieces_to_lines(net: RoadNetwork, pieces: Pieces, start_xy: np.ndarray | None = None) -> np.ndarray:
    """One LineString (network CRS) per route, following the road geometry of its pieces.

    Whole edges are copied from the network's flat coordinate array in one gather; partial
    pieces (a route's two ends) are cut in one vectorised pass. A route with no piece (or of
    zero length) becomes a degenerate two-point line at ``start_xy`` (None without it).
    """
    out = np.full(pieces.n_routes, None, dtype=object)
    if len(pieces.edge) == 0 and start_xy is None:
        return out
    edge, f0, f1 = pieces.edge, pieces.f0, pieces.f1
    starts = net.geom_offsets[edge].copy()
    counts = net.geom_offsets[edge + 1] - starts
    partial = np.flatnonzero((f0 > 0.0) | (f1 < 1.0))
    source = net.geom_xy
    if len(partial):
        extra, lengths = _cut_pieces(net, edge[partial], f0[partial], f1[partial])
        starts[partial] = len(net.geom_xy) + np.concatenate([[0], np.cumsum(lengths)[:-1]])
        counts[partial] = lengths
        source = np.vstack([net.geom_xy, extra])
    coords = source[ragged_index(starts, counts)]
    owner = np.repeat(pieces.owner, counts)
    keep = np.ones(len(coords), dtype=bool)
    keep[1:] = (owner[1:] != owner[:-1]) | np.any(coords[1:] != coords[:-1], axis=1)
    coords, owner = coords[keep], owner[keep]
    n_pts = np.bincount(owner, minlength=pieces.n_routes)
    short = np.flatnonzero(n_pts < 2)
    if start_xy is not None and len(short):
        at = np.where(n_pts[short] == 1, -1, 0)
        first = np.searchsorted(owner, short)
        xy = (
            np.where((at == -1)[:, None], coords[np.minimum(first, max(len(coords) - 1, 0))], start_xy[short])
            if len(coords)
            else start_xy[short]
        )
        coords = np.vstack([coords, xy, xy])
        owner = np.concatenate([owner, short, short])
        order = np.argsort(owner, kind="stable")
        coords, owner = coords[order], owner[order]
        n_pts = np.bincount(owner, minlength=pieces.n_routes)
        short = np.flatnonzero(n_pts < 2)
    drawable = n_pts >= 2
    keep = drawable[owner]
    if keep.any():
        lines = shapely.linestrings(coords[keep], indices=owner[keep])
        out[np.flatnonzero(drawable)] = lines
    return out


def _cut_pieces(net: RoadNetwork, edge: np.ndarray, f0: np.ndarray, f1: np.ndarray):
    """Coordinates of the parts ``f0..f1`` of edges (by length along their geometry), all at once.

    Returns the pieces' coordinates back to back and the number of points of each.
    """
    cum = net.vertex_cum
    first, last = net.geom_offsets[edge], net.geom_offsets[edge + 1] - 1
    total = cum[last] - cum[first]
    d0, d1 = cum[first] + f0 * total, cum[first] + f1 * total
    p0 = np.minimum(np.searchsorted(cum, d0, side="right"), last)
    p1 = np.maximum(np.searchsorted(cum, d1, side="left"), p0)
    start_pt = _interpolate(net.geom_xy, cum, first, last, p0, d0)
    end_pt = _interpolate(net.geom_xy, cum, first, last, p1, d1)
    inner = p1 - p0
    counts = inner + 2
    offsets = np.concatenate([[0], np.cumsum(counts)])
    coords = np.empty((offsets[-1], 2))
    coords[offsets[:-1]] = start_pt
    coords[offsets[1:] - 1] = end_pt
    coords[ragged_index(offsets[:-1] + 1, inner)] = net.geom_xy[ragged_index(p0, inner)]
    return coords, counts


def _interpolate(xy, vcum, first, last, after, dist):
    """Point at distance ``dist`` along each edge, given the index of the first vertex beyond it."""
    a = np.clip(after - 1, first, np.maximum(last - 1, first))
    b = np.minimum(a + 1, last)
    span = vcum[b] - vcum[a]
    t = np.clip(np.divide(dist - vcum[a], span, out=np.zeros_like(span), where=span > 0), 0.0, 1.0)
    return xy[a] + (xy[b] - xy[a]) * t[:, None]


# ====================================================================== links between points and nodes
@dataclass
class _Links:
    """How points connect to network nodes: point ``point[i]`` ↔ node ``node[i]`` at ``cost[i]`` / ``time[i]``,
    over road piece (``edge[i]``, ``f0[i]``, ``f1[i]``) in travel direction (edge -1: none, the point is at
    the node)."""

    point: np.ndarray
    node: np.ndarray
    cost: np.ndarray
    time: np.ndarray
    edge: np.ndarray
    f0: np.ndarray
    f1: np.ndarray

    def take(self, index: np.ndarray) -> _Links:
        return _Links(*(getattr(self, name)[index] for name in ("point", "node", "cost", "time", "edge", "f0", "f1")))


def _links(cg: CostGraph, places: Places, leaving: bool) -> _Links:
    """The links by which each point leaves onto (``leaving``) or is reached from the network."""
    net, w, t_edge = cg.net, cg.weights, cg.net.edge_time
    at = np.flatnonzero(places.node >= 0)
    zeros = np.zeros(len(at))
    parts = [(at, places.node[at], zeros, zeros, np.full(len(at), -1), zeros, zeros)]
    mid = np.flatnonzero(places.edge >= 0)
    e, f = places.edge[mid], places.frac[mid]
    twin = net.edge_twin[e]
    tw = np.maximum(twin, 0)
    with np.errstate(invalid="ignore"):
        if leaving:  # along the edge to v; back along the twin to u
            parts.append((mid, net.edge_v[e], (1 - f) * w[e], (1 - f) * t_edge[e], e, f, np.ones(len(e))))
            back = (mid, net.edge_u[e], f * w[tw], f * t_edge[tw], tw, 1 - f, np.ones(len(e)))
        else:  # from u along the edge; from v along the twin
            parts.append((mid, net.edge_u[e], f * w[e], f * t_edge[e], e, np.zeros(len(e)), f))
            back = (mid, net.edge_v[e], (1 - f) * w[tw], (1 - f) * t_edge[tw], tw, np.zeros(len(e)), 1 - f)
    has_twin = twin >= 0
    parts.append(tuple(a[has_twin] for a in back))
    links = _Links(*(np.concatenate(col) for col in zip(*parts, strict=True)))
    ok = np.isfinite(links.cost)
    return links.take(np.flatnonzero(ok))


def road_positions(net: RoadNetwork, places: Places) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For points part-way along a street: (point index, physical road = canonical edge, fraction along it)."""
    idx = np.flatnonzero(places.edge >= 0)
    e = places.edge[idx]
    road = net.canonical_edge[e]
    pos = np.where(road == e, places.frac[idx], 1.0 - places.frac[idx])
    return idx, road, pos


def _same_road(cg: CostGraph, a: Places, b: Places) -> _Links:
    """Direct links from points of ``a`` to points of ``b`` part-way along the same road (``point`` = a's index,
    ``node`` = b's index)."""
    net, w = cg.net, cg.weights
    ia, ra, pa = road_positions(net, a)
    ib, rb, pb = road_positions(net, b)
    order = np.argsort(rb, kind="stable")
    rb_sorted = rb[order]
    lo = np.searchsorted(rb_sorted, ra, side="left")
    hi = np.searchsorted(rb_sorted, ra, side="right")
    cnt = hi - lo
    rep = np.repeat(np.arange(len(ia)), cnt)
    j = order[ragged_index(lo, cnt)]
    road, p, q = ra[rep], pa[rep], pb[j]
    forward = q >= p
    twin = net.edge_twin[road]
    edge = np.where(forward, road, np.maximum(twin, 0))
    f0 = np.where(forward, p, 1.0 - p)
    f1 = np.where(forward, q, 1.0 - q)
    with np.errstate(invalid="ignore"):
        cost = (f1 - f0) * w[edge]
    links = _Links(ia[rep], ib[j], cost, (f1 - f0) * net.edge_time[edge], edge, f0, f1)
    return links.take(np.flatnonzero((forward | (twin >= 0)) & np.isfinite(cost)))


# ====================================================================== points attached to a search
@dataclass(eq=False)
class _Attached:
    """A cost graph's CSR (forward, or reversed for searches *towards* the points) with points appended as
    virtual nodes ``n .. n + S - 1`` (rows only: nothing points at them). Entry ``i`` of a virtual row is the
    link of that point; in both orientations its piece runs in travel direction."""

    cg: CostGraph
    reverse: bool
    csr: _Csr
    n_base: int
    base_nnz: int
    v_f0: np.ndarray
    v_f1: np.ndarray
    v_time: np.ndarray
    _entry_time: np.ndarray | None = field(default=None, repr=False)

    @property
    def matrix(self) -> sparse.csr_matrix:
        return self.csr.matrix

    @property
    def size(self) -> int:
        return self.csr.matrix.shape[0]

    def pieces(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(edge, f0, f1) of entries ``pos``: whole edges for network entries, the links' pieces for virtual ones."""
        virtual = pos >= self.base_nnz
        k = np.where(virtual, pos - self.base_nnz, 0)
        f0 = np.where(virtual, self.v_f0[k] if len(self.v_f0) else 0.0, 0.0)
        f1 = np.where(virtual, self.v_f1[k] if len(self.v_f1) else 1.0, 1.0)
        return self.csr.edge[pos], f0, f1

    def entry_time(self) -> np.ndarray:
        """Physical travel time of every entry, seconds."""
        if self._entry_time is None:
            base = self.cg.net.edge_time[self.csr.edge[: self.base_nnz]]
            self._entry_time = np.concatenate([base, self.v_time])
        return self._entry_time

    def entry_value(self, per_edge: np.ndarray) -> np.ndarray:
        """A per-edge quantity (e.g. lengths) for every entry, pro rata on the virtual links."""
        edge = self.csr.edge
        base = per_edge[edge[: self.base_nnz]]
        v_edge = edge[self.base_nnz :]
        virtual = np.where(v_edge >= 0, per_edge[np.maximum(v_edge, 0)] * (self.v_f1 - self.v_f0), 0.0)
        return np.concatenate([base, virtual])


def _attach(cg: CostGraph, places: Places, reverse: bool) -> _Attached:
    """Append ``places`` as virtual nodes: their exits (forward) or entries (``reverse``) as rows."""
    base = cg.csr(reverse)
    links = _links(cg, places, leaving=not reverse)
    o = np.lexsort((links.cost, links.node, links.point))
    links = links.take(o[first_of_runs(links.point[o], links.node[o])])
    n, s = cg.net.n_nodes, len(places)
    m = base.matrix
    itype = _index_dtype(n + s, m.nnz + len(links.point))
    indptr = np.concatenate(
        [
            m.indptr.astype(itype, copy=False),
            m.indptr[-1] + np.cumsum(np.bincount(links.point, minlength=s)).astype(itype),
        ]
    )
    matrix = sparse.csr_matrix(
        (
            np.concatenate([m.data, links.cost]),
            np.concatenate([m.indices.astype(itype, copy=False), links.node.astype(itype)]),
            indptr,
        ),
        shape=(n + s, n + s),
        copy=False,
    )
    csr = _Csr(matrix, np.concatenate([base.edge, links.edge]))
    return _Attached(cg, reverse, csr, n, m.nnz, links.f0, links.f1, links.time)


def _tree_values(att: _Attached, pred: np.ndarray, entry_value: np.ndarray) -> np.ndarray:
    """Sum of ``entry_value`` from every node to its search root along a predecessor tree (per row of ``pred``)."""
    pred = np.atleast_2d(pred)
    rows, size = pred.shape
    nodes = np.arange(size)
    out = np.empty(pred.shape)
    for r in range(rows):
        p = pred[r].astype(np.int64)
        has = p >= 0
        nxt = np.where(has, p, nodes)
        step = np.zeros(size)
        # reversed search: tree entry (p, v) is the road v -> p; forward search: entry (p, v) is p -> v
        step[has] = entry_value[att.csr.entry(p[has], nodes[has])]
        out[r] = pointer_sum(nxt, step)
    return out


# ====================================================================== nearest sources of every node
@dataclass(eq=False)
class Nearest:
    """Every node's ``k`` nearest distinct sources (see :func:`nearest`).

    Attributes
    ----------
    sources : Places
    cost, time : (N, k) float64
        Cost and physical time (s) from every search node to its r-th nearest source (``inf``: none).
        Search nodes are the network's nodes, then one virtual node per source.
    label : (N, k) int64
        That source's index in ``sources`` (-1: none).
    """

    att: _Attached
    sources: Places
    cost: np.ndarray
    label: np.ndarray
    time: np.ndarray
    pred: np.ndarray | None = field(default=None, repr=False)
    jump_node: np.ndarray | None = field(default=None, repr=False)
    jump_rank: np.ndarray | None = field(default=None, repr=False)

    @property
    def k(self) -> int:
        return self.cost.shape[1]

    @property
    def n_base(self) -> int:
        return self.att.n_base

    def at(self, places: Places) -> PlaceCosts:
        """The k nearest distinct sources of points: through the ends of their road, or along it."""
        return _place_costs(self, places)

    def routes(self, found: PlaceCosts, points: np.ndarray, ranks: np.ndarray) -> Pieces:
        """The road pieces from ``points[i]`` to its ``ranks[i]``-th (0-based) nearest source (empty if none)."""
        return _routes(self, found, np.asarray(points, np.int64), np.asarray(ranks, np.int64))


@dataclass
class PlaceCosts:
    """The k nearest distinct sources of points (:meth:`Nearest.at`): ``cost``, ``time`` (s) and ``label``
    (source index, -1) per point and rank, (P, k); ``via_node``/``via_rank``: the node where the route joins
    the network and the rank of the source in that node's list (-1: straight along the road); the first
    piece (``edge`` -1: none) from the point to ``via_node``, or the whole route along the road."""

    cost: np.ndarray
    time: np.ndarray
    label: np.ndarray
    via_node: np.ndarray
    via_rank: np.ndarray
    edge: np.ndarray
    f0: np.ndarray
    f1: np.ndarray


def nearest(cg: CostGraph, sources: Places, k: int = 1, *, paths: bool = False) -> Nearest:
    """Every node's ``k`` nearest distinct sources, by cost of the route *to* the source.

    Round 1 is one multi-source Dijkstra on the reversed graph from every source. Round r > 1
    finds each node's r-th nearest *distinct* source with one more: a node ``v`` takes
    candidates across edges ``v → w`` whose (r-1)-source set differs from its own
    (``c(v, w) + d_i(w)`` for a source of ``w`` not yet among ``v``'s), and inherits
    ``d_r(w)`` along edges between nodes with the same set. (If the r-th source of ``v`` is
    reached through ``w`` and not among ``w``'s first r-1, every source nearer to ``w`` is
    nearer to ``v`` too, so ``w`` holds ``v``'s set; both rules are needed and sufficient.)

    Parameters
    ----------
    paths
        Keep the search trees, for :meth:`Nearest.routes`.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    att = _attach(cg, sources, reverse=True)
    size, n = att.size, att.n_base
    starts = n + np.flatnonzero(sources.on)
    keep_trees = paths or not cg.time_is_cost
    if len(starts) == 0:
        cost = np.full((size, k), np.inf)
        return Nearest(att, sources, cost, np.full((size, k), -1, dtype=np.int64), cost.copy())
    d, pred, origin = csgraph.dijkstra(
        att.matrix, directed=True, indices=starts, min_only=True, return_predecessors=True
    )
    first_label = np.where(origin >= 0, origin.astype(np.int64) - n, -1)
    if k == 1:  # the search's own arrays as the only column, not copies into (size, k) ones
        cost, label = d[:, None], first_label[:, None]
    else:
        cost = np.full((size, k), np.inf)
        label = np.full((size, k), -1, dtype=np.int64)
        cost[:, 0], label[:, 0] = d, first_label
    if k == 1 and cg.time_is_cost and not keep_trees:  # the common case: nothing more to keep
        return Nearest(att, sources, cost, label, cost.copy())
    preds = [pred.astype(np.int32)]
    jumps_n = [np.full(size, -1, dtype=np.int64)]
    jumps_r = [np.full(size, -1, dtype=np.int64)]
    if k > 1:
        fwd_tail = att.matrix.indices.astype(np.int64)  # reversed entry (w, v) is the road v -> w
        fwd_head = np.repeat(np.arange(size, dtype=np.int64), np.diff(att.matrix.indptr))
        for r in range(1, min(k, int(sources.on.sum()))):
            d_r, l_r, pred_r, jn, jr = _next_round(att, cost[:, :r], label[:, :r], fwd_tail, fwd_head)
            cost[:, r], label[:, r] = d_r, l_r
            preds.append(pred_r)
            jumps_n.append(jn)
            jumps_r.append(jr)
    while len(preds) < k:
        preds.append(np.full(size, _NO_PRED, dtype=np.int32))
        jumps_n.append(np.full(size, -1, dtype=np.int64))
        jumps_r.append(np.full(size, -1, dtype=np.int64))
    pred_all, jn_all, jr_all = np.stack(preds), np.stack(jumps_n), np.stack(jumps_r)
    if cg.time_is_cost:
        time = cost.copy()
    else:
        time = _ranked_time(att, pred_all, jn_all, jr_all)
        time[~np.isfinite(cost)] = np.inf
    if not keep_trees:
        pred_all = jn_all = jr_all = None
    return Nearest(att, sources, cost, label, time, pred_all, jn_all, jr_all)


def _next_round(att: _Attached, dist: np.ndarray, label: np.ndarray, tail: np.ndarray, head: np.ndarray):
    """Round r = dist.shape[1] + 1 of :func:`nearest`: each node's r-th nearest distinct source."""
    m = att.matrix
    size = m.shape[0]
    cost = m.data
    complete = (label >= 0).all(axis=1)  # nodes holding r-1 sources so far
    live = np.flatnonzero(complete[tail] & (label[head] >= 0).any(axis=1))
    v, w, c = tail[live], head[live], cost[live]
    mine = label[v]  # (E, r-1) sources already held by the edge's tail
    best = np.full(len(v), np.inf)
    best_rank = np.full(len(v), -1, dtype=np.int64)
    for i in range(label.shape[1]):
        theirs = label[w, i]
        fresh = (theirs >= 0) & ~(mine == theirs[:, None]).any(axis=1)
        cand = np.where(fresh, c + dist[w, i], np.inf)
        better = cand < best
        best[better], best_rank[better] = cand[better], i
    same_set = (np.sort(mine, axis=1) == np.sort(label[w], axis=1)).all(axis=1) & complete[w]

    # the cheapest boundary crossing per tail node becomes a virtual source of this round
    has = np.flatnonzero(np.isfinite(best))
    order = has[np.lexsort((best[has], v[has]))]
    firsts = order[first_of_runs(v[order])] if len(order) else order
    boundary = v[firsts]
    n_b = len(boundary)
    jump_node = np.full(size, -1, dtype=np.int64)
    jump_rank = np.full(size, -1, dtype=np.int64)
    jump_node[boundary] = w[firsts]
    jump_rank[boundary] = best_rank[firsts]
    if n_b == 0:
        return np.full(size, np.inf), np.full(size, -1), np.full(size, _NO_PRED, dtype=np.int32), jump_node, jump_rank
    # the reversed graph restricted to same-set entries, plus one row per boundary node
    data = np.full(len(cost), np.inf)
    data[live[same_set]] = cost[live[same_set]]
    itype = _index_dtype(size + n_b, m.nnz + n_b)
    round_graph = sparse.csr_matrix(
        (
            np.concatenate([data, best[firsts]]),
            np.concatenate([m.indices.astype(itype), boundary.astype(itype)]),
            np.concatenate([m.indptr.astype(itype), (m.nnz + np.arange(1, n_b + 1)).astype(itype)]),
        ),
        shape=(size + n_b, size + n_b),
        copy=False,
    )
    d, pred, origin = csgraph.dijkstra(
        round_graph, directed=True, indices=size + np.arange(n_b), min_only=True, return_predecessors=True
    )
    d, pred, origin = d[:size], pred[:size], origin[:size]
    reached = origin >= 0
    via = boundary[np.where(reached, origin - size, 0)]
    new_label = np.where(reached, label[jump_node[via], jump_rank[via]], -1)
    return d, new_label, pred.astype(np.int32), jump_node, jump_rank


def _ranked_time(att: _Attached, pred: np.ndarray, jump_node: np.ndarray, jump_rank: np.ndarray) -> np.ndarray:
    """Physical time of every node's route to its r-th source, over the (node, rank) states of the search."""
    k, size = pred.shape
    nodes = np.arange(size)
    nxt = np.empty(size * k, dtype=np.int64)
    step = np.zeros(size * k)
    entry_time = att.entry_time()
    for r in range(k):
        p = pred[r].astype(np.int64)
        state = r * size + nodes
        nxt[state] = state
        direct = (p >= 0) & (p < size)
        jump = p >= size
        nxt[state[direct]] = r * size + p[direct]
        step[state[direct]] = entry_time[att.csr.entry(p[direct], nodes[direct])]
        if jump.any():
            jn, jr = jump_node[r][nodes[jump]], jump_rank[r][nodes[jump]]
            nxt[state[jump]] = jr * size + jn
            step[state[jump]] = entry_time[att.csr.entry(jn, nodes[jump])]
    return pointer_sum(nxt, step).reshape(k, size).T


def _place_costs(nn: Nearest, places: Places) -> PlaceCosts:
    cg, k, p = nn.att.cg, nn.k, len(places)
    exits = _links(cg, places, leaving=True)
    r = np.repeat(np.arange(k), len(exits.point))
    node = np.tile(exits.node, k)
    cand = {
        "point": np.tile(exits.point, k),
        "label": nn.label[node, r],
        "cost": np.tile(exits.cost, k) + nn.cost[node, r],
        "time": np.tile(exits.time, k) + nn.time[node, r],
        "via_node": node,
        "via_rank": r,
        "edge": np.tile(exits.edge, k),
        "f0": np.tile(exits.f0, k),
        "f1": np.tile(exits.f1, k),
    }
    direct = _same_road(cg, places, nn.sources)
    extra = {
        "point": direct.point, "label": direct.node, "cost": direct.cost, "time": direct.time,
        "via_node": np.full(len(direct.point), -1), "via_rank": np.full(len(direct.point), -1),
        "edge": direct.edge, "f0": direct.f0, "f1": direct.f1,
    }  # fmt: skip
    c = {key: np.concatenate([cand[key], extra[key]]) for key in cand}
    ok = (c["label"] >= 0) & np.isfinite(c["cost"])
    c = {key: value[ok] for key, value in c.items()}
    # each (point, source) once, at its cheapest; then the first k sources of every point
    o = np.lexsort((c["label"], c["cost"], c["point"]))
    c = {key: value[o] for key, value in c.items()}
    pair = c["point"] * (len(nn.sources) + 1) + c["label"]
    _, first = np.unique(pair, return_index=True)
    first.sort()
    c = {key: value[first] for key, value in c.items()}
    rank = np.arange(len(c["point"])) - np.searchsorted(c["point"], c["point"], side="left")
    keep = rank < k
    who, rank = c["point"][keep], rank[keep]
    out = PlaceCosts(
        cost=np.full((p, k), np.inf), time=np.full((p, k), np.inf), label=np.full((p, k), -1, dtype=np.int64),
        via_node=np.full((p, k), -1, dtype=np.int64), via_rank=np.full((p, k), -1, dtype=np.int64),
        edge=np.full((p, k), -1, dtype=np.int64), f0=np.zeros((p, k)), f1=np.zeros((p, k)),
    )  # fmt: skip
    for key in ("cost", "time", "label", "via_node", "via_rank", "edge", "f0", "f1"):
        getattr(out, key)[who, rank] = c[key][keep]
    return out


def _routes(nn: Nearest, found: PlaceCosts, points: np.ndarray, ranks: np.ndarray) -> Pieces:
    if nn.pred is None:
        raise ValueError("this search kept no trees: call nearest(..., paths=True)")
    n_routes = len(points)
    ok = np.isfinite(found.cost[points, ranks])
    first_edge = found.edge[points, ranks]
    rec_owner = [np.flatnonzero(ok & (first_edge >= 0))]
    rec_edge = [first_edge[rec_owner[0]]]
    rec_f0 = [found.f0[points, ranks][rec_owner[0]]]
    rec_f1 = [found.f1[points, ranks][rec_owner[0]]]
    rec_step = [np.full(len(rec_owner[0]), -1, dtype=np.int64)]
    owner = np.flatnonzero(ok & (found.via_node[points, ranks] >= 0))
    v = found.via_node[points, ranks][owner]
    r = found.via_rank[points, ranks][owner]
    size, n = nn.att.size, nn.n_base
    step = 0
    while len(owner):
        p = nn.pred[r, v].astype(np.int64)
        boundary = (r > 0) & (p >= size)
        nxt = np.where(boundary, nn.jump_node[r, v], p)
        nrank = np.where(boundary, nn.jump_rank[r, v], r)
        go = nxt >= 0
        owner, v, nxt, nrank = owner[go], v[go], nxt[go], nrank[go]
        pos = nn.att.csr.entry(nxt, v)  # reversed entry (next, v): the road v -> next
        e, f0, f1 = nn.att.pieces(pos)
        real = e >= 0  # a source exactly at a node links to it without a piece of road
        rec_owner.append(owner[real])
        rec_edge.append(e[real])
        rec_f0.append(f0[real])
        rec_f1.append(f1[real])
        rec_step.append(np.full(int(real.sum()), step, dtype=np.int64))
        more = nxt < n  # stop at a virtual source node
        owner, v, r = owner[more], nxt[more], nrank[more]
        step += 1
    own, st = np.concatenate(rec_owner), np.concatenate(rec_step)
    o = np.lexsort((st, own))
    return Pieces(np.concatenate(rec_edge)[o], np.concatenate(rec_f0)[o], np.concatenate(rec_f1)[o], own[o], n_routes)


# ====================================================================== many-to-many
@dataclass(eq=False)
class Matrix:
    """Costs between two point sets (see :func:`travel_matrix`): ``cost``, ``time_s`` (origins × destinations);
    ``inf`` = no route.

    The searches run from one side (``reverse``: from the destinations, on the reversed graph);
    ``_links`` are the other side's links to the network and ``_direct`` the same-road links
    (``point`` = searched point, ``node`` = the other point).
    """

    att: _Attached
    origins: Places
    destinations: Places
    cost: np.ndarray
    time_s: np.ndarray
    limit: float
    reverse: bool
    _links: _Links = field(repr=False)
    _direct: _Links = field(repr=False)
    _length: np.ndarray | None = field(default=None, repr=False)
    _forward: Matrix | None = field(default=None, repr=False)

    @property
    def length_m(self) -> np.ndarray:
        """Road length of every route, metres (computed on first use: another pass of the searches)."""
        if self._length is None:
            net = self.att.cg.net
            self._length = self._along(self.att.entry_value(net.edge_length), net.edge_length)
        return self._length

    def _along(self, entry_value: np.ndarray, per_edge: np.ndarray) -> np.ndarray:
        searched = self.destinations if self.reverse else self.origins
        out = np.full((len(searched), len(self.destinations if not self.reverse else self.origins)), np.inf)
        for chunk in _chunks(np.flatnonzero(searched.on), self.att.size):
            dist, pred = csgraph.dijkstra(
                self.att.matrix, directed=True, indices=self.att.n_base + chunk, limit=self.limit,
                return_predecessors=True,
            )  # fmt: skip
            values = _tree_values(self.att, pred, entry_value)
            out[chunk] = _evaluate(dist, values, self._links, self._direct, chunk, out.shape[1], per_edge)[1]
        out = out.T if self.reverse else out
        out[~np.isfinite(self.cost)] = np.inf
        return out

    def routes(self, pairs: np.ndarray) -> Pieces:
        """The road pieces of the routes ``pairs[i] = (origin, destination)`` (empty where no route).

        One search per distinct origin (in chunks), then each route is read off its tree.
        """
        if self.reverse:  # routes are read off forward trees
            if self._forward is None:
                self._forward = travel_matrix(
                    self.att.cg, self.origins, self.destinations, limit=self.limit, reverse=False
                )
            return self._forward.routes(pairs)
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        parts: list[Pieces | None] = [None] * len(pairs)
        origins = np.unique(pairs[:, 0])
        for chunk in _chunks(origins, self.att.size):
            dist, pred = csgraph.dijkstra(
                self.att.matrix, directed=True, indices=self.att.n_base + chunk, limit=self.limit,
                return_predecessors=True,
            )  # fmt: skip
            for row, origin in enumerate(chunk.tolist()):
                for i in np.flatnonzero(pairs[:, 0] == origin).tolist():
                    parts[i] = self._route(origin, int(pairs[i, 1]), dist[row], pred[row].astype(np.int64))
        return Pieces.concat(parts)  # type: ignore[arg-type]

    def _route(self, origin: int, dest: int, dist: np.ndarray, pred: np.ndarray) -> Pieces:
        empty = Pieces(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.int64), 1)
        if not np.isfinite(self.cost[origin, dest]):
            return empty
        ent = self._links.take(np.flatnonzero(self._links.point == dest))
        via = dist[ent.node] + ent.cost
        direct = self._direct.take(np.flatnonzero((self._direct.point == origin) & (self._direct.node == dest)))
        best_direct = direct.cost.min() if len(direct.cost) else np.inf
        if len(via) == 0 or best_direct <= via.min():
            if not len(direct.cost):
                return empty
            i = int(np.argmin(direct.cost))
            return Pieces(direct.edge[[i]], direct.f0[[i]], direct.f1[[i]], np.zeros(1, np.int64), 1)
        j = int(np.argmin(via))
        nodes = [int(ent.node[j])]
        while nodes[-1] != self.att.n_base + origin:
            nodes.append(int(pred[nodes[-1]]))
        nodes = np.asarray(nodes[::-1], dtype=np.int64)
        pos = self.att.csr.entry(nodes[:-1], nodes[1:])
        e, f0, f1 = self.att.pieces(pos)
        e, f0, f1 = np.append(e, ent.edge[j]), np.append(f0, ent.f0[j]), np.append(f1, ent.f1[j])
        real = e >= 0  # points exactly at nodes link to them without a piece of road
        return Pieces(e[real], f0[real], f1[real], np.zeros(int(real.sum()), np.int64), 1)


def _chunks(items: np.ndarray, n_nodes: int) -> Iterator[np.ndarray]:
    size = max(1, _CHUNK_CELLS // max(n_nodes, 1))
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _evaluate(dist, values, entries: _Links, direct: _Links, chunk: np.ndarray, n_dest: int, per_edge):
    """Costs and path values between a chunk of searched points and every other point: through the other
    points' links to the network (``entries``: ``point`` = the other point) or directly along a road."""
    rows = len(chunk)
    cost = np.full((rows, n_dest), np.inf)
    value = np.full((rows, n_dest), np.inf)
    # every destination has at most two entry links: evaluate them as two slots
    order = np.lexsort((entries.cost, entries.point))
    ent = entries.take(order)
    slot = np.arange(len(ent.point)) - np.searchsorted(ent.point, ent.point, side="left")
    link_value = ent.time if per_edge is None else _link_value(ent, per_edge)
    for s in range(int(slot.max()) + 1 if len(slot) else 0):
        sel = slot == s
        dst, node = ent.point[sel], ent.node[sel]
        c = dist[:, node] + ent.cost[sel]
        better = c < cost[:, dst]
        cost[:, dst] = np.where(better, c, cost[:, dst])
        value[:, dst] = np.where(better, values[:, node] + link_value[sel], value[:, dst])
    mine = np.flatnonzero(np.isin(direct.point, chunk))
    if len(mine):
        d = direct.take(mine)
        o = np.lexsort((d.cost, d.node, d.point))
        d = d.take(o[first_of_runs(d.point[o], d.node[o])])  # the cheapest direct link per pair
        r = np.searchsorted(chunk, d.point)
        wins = d.cost <= cost[r, d.node]
        d_value = d.time if per_edge is None else _link_value(d, per_edge)
        cost[r[wins], d.node[wins]] = d.cost[wins]
        value[r[wins], d.node[wins]] = d_value[wins]
    return cost, value


def _link_value(links: _Links, per_edge: np.ndarray) -> np.ndarray:
    return np.where(links.edge >= 0, per_edge[np.maximum(links.edge, 0)] * (links.f1 - links.f0), 0.0)


def travel_matrix(
    cg: CostGraph, origins: Places, destinations: Places, *, limit: float = np.inf, reverse: bool | None = None
) -> Matrix:
    """Cost and physical time (s) of the cheapest route from every origin to every destination.

    One Dijkstra per searched point with those points attached, in chunks that bound memory:
    from the origins on the forward graph, or (``reverse``; by default when there are fewer
    destinations) from the destinations on the reversed graph. The other side takes the better
    of its links to the network, or a direct stretch of road to a point on its own road.
    ``limit`` (cost units) bounds the searches: pairs beyond it are ``inf``. Lengths
    (:attr:`Matrix.length_m`) and routes (:meth:`Matrix.routes`) come on demand.
    """
    if reverse is None:
        reverse = len(destinations) < len(origins)
    searched, queried = (destinations, origins) if reverse else (origins, destinations)
    att = _attach(cg, searched, reverse=reverse)
    links = _links(cg, queried, leaving=reverse)
    direct = _same_road(cg, origins, destinations)
    if reverse:  # keyed by the searched side: the destination
        direct = _Links(direct.node, direct.point, direct.cost, direct.time, direct.edge, direct.f0, direct.f1)
    cost = np.full((len(searched), len(queried)), np.inf)
    time = np.full((len(searched), len(queried)), np.inf)
    need_tree = not cg.time_is_cost
    entry_time = att.entry_time() if need_tree else None
    for chunk in _chunks(np.flatnonzero(searched.on), att.size):
        out = csgraph.dijkstra(
            att.matrix, directed=True, indices=att.n_base + chunk, limit=limit, return_predecessors=need_tree
        )
        dist, pred = out if need_tree else (out, None)
        values = _tree_values(att, pred, entry_time) if need_tree else dist
        cost[chunk], time[chunk] = _evaluate(dist, values, links, direct, chunk, len(queried), None)
    if reverse:
        cost, time = cost.T.copy(), time.T.copy()
    cost[cost > limit] = np.inf
    time[~np.isfinite(cost)] = np.inf
    return Matrix(att, origins, destinations, cost, time, limit, reverse, links, direct)


# ====================================================================== bounded reach of each source
@dataclass
class Reach:
    """One source's reach: road pieces leading towards it, with the travel time at both ends of each.

    Row ``i`` covers fraction ``f0[i]..f1[i]`` of network edge ``edge[i]``, travelled in the
    edge's direction towards the source: travel time to the source is ``t0[i]`` at ``f0`` and
    ``t1[i]`` at ``f1`` (seconds, linear in between; ``t0 >= t1``). A stretch of road covered
    by several rows (both directions of a street, the source's own road) takes the smallest.
    ``node`` / ``node_time`` are the network nodes reached within the time and their travel
    times (seconds).
    """

    source: int
    edge: np.ndarray
    f0: np.ndarray
    f1: np.ndarray
    t0: np.ndarray
    t1: np.ndarray
    node: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    node_time: np.ndarray = field(default_factory=lambda: np.zeros(0))


def bounded_reach(cg: CostGraph, sources: Places, max_time_s: float, chunk: int = 8) -> Iterator[Reach]:
    """For each source on the network, the road pieces from which it is reached within ``max_time_s``.

    One Dijkstra per source on the reversed graph, bounded by ``max_time_s`` (times the largest
    cost per second of the cost model, then filtered on physical time), in chunks of ``chunk``.
    """
    att = _attach(cg, sources, reverse=True)
    net, n = cg.net, att.n_base
    in_ptr, in_edge = cg.in_open()
    in_time = net.edge_time[in_edge]
    links = _links(cg, sources, leaving=False)
    limit = max_time_s * cg.max_cost_per_second() * (1 + 1e-9) + 1e-9
    need_tree = not cg.time_is_cost
    entry_time = att.entry_time() if need_tree else None
    ids = np.flatnonzero(sources.on)
    for start in range(0, len(ids), chunk):
        block = ids[start : start + chunk]
        out = csgraph.dijkstra(att.matrix, directed=True, indices=n + block, limit=limit, return_predecessors=need_tree)
        dist, preds = out if need_tree else (out, None)
        for i, h in enumerate(block.tolist()):
            row = dist[i, :n]
            nodes = np.flatnonzero(row <= limit)
            if need_tree:
                t_node = _subtree_time(att, nodes, preds[i], n + h, entry_time)
                ok = t_node <= max_time_s
                nodes, t_node = nodes[ok], t_node[ok]
            else:
                t_node = row[nodes]
            counts = in_ptr[nodes + 1] - in_ptr[nodes]
            pos = ragged_index(in_ptr[nodes], counts)
            t1 = np.repeat(t_node, counts)
            own = links.take(np.flatnonzero((links.point == h) & (links.edge >= 0)))
            yield Reach(
                h,
                np.concatenate([in_edge[pos], own.edge]),
                np.concatenate([np.zeros(len(pos)), own.f0]),
                np.concatenate([np.ones(len(pos)), own.f1]),
                np.concatenate([t1 + in_time[pos], own.time]),
                np.concatenate([t1, np.zeros(len(own.edge))]),
                nodes,
                t_node,
            )


def _subtree_time(att: _Attached, nodes: np.ndarray, pred: np.ndarray, root: int, entry_time) -> np.ndarray:
    """Physical time to the source for ``nodes`` (sorted network nodes) of one bounded Dijkstra's tree."""
    p = pred[nodes].astype(np.int64)
    at_root = p == root
    inner = (p >= 0) & ~at_root
    nxt = np.arange(len(nodes) + 1)  # the last element stands for the source itself
    nxt[:-1][at_root] = len(nodes)
    nxt[:-1][inner] = np.searchsorted(nodes, p[inner])
    step = np.zeros(len(nodes) + 1)
    walk = p >= 0
    step[:-1][walk] = entry_time[att.csr.entry(p[walk], nodes[walk])]
    return pointer_sum(nxt, step)[:-1]


# ====================================================================== undirected distances
@dataclass
class UGraph:
    """An undirected graph of physical road pieces (metres), with node coordinates.

    Attributes
    ----------
    xy : (n, 2) float
        Node coordinates, metres (projected).
    a, b, length, parent : (P,) arrays
        Piece end nodes, length (m) and the canonical directed edge it is.
    indptr, indices, data
        Symmetric CSR adjacency (cheapest parallel piece per node pair), metres.
    out_ptr, out_piece
        Node -> the pieces whose ``a`` end it is (CSR-style).
    local
        Scratch map from nodes to block columns (see :func:`bounded_blocks`).
    """

    xy: np.ndarray
    a: np.ndarray
    b: np.ndarray
    length: np.ndarray
    parent: np.ndarray
    indptr: np.ndarray = field(repr=False)
    indices: np.ndarray = field(repr=False)
    data: np.ndarray = field(repr=False)
    out_ptr: np.ndarray = field(repr=False)
    out_piece: np.ndarray = field(repr=False)
    local: np.ndarray = field(repr=False)

    @property
    def n(self) -> int:
        """Number of nodes."""
        return len(self.xy)

    @classmethod
    def build(cls, a: np.ndarray, b: np.ndarray, length: np.ndarray, parent: np.ndarray, xy: np.ndarray) -> UGraph:
        """Build from piece arrays (metres) and node coordinates."""
        n = len(xy)
        matrix, _ = cheapest_csr(np.concatenate([a, b]), np.concatenate([b, a]), np.concatenate([length, length]), n)
        order = np.argsort(a, kind="stable")
        out_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(a, minlength=n), out=out_ptr[1:])
        return cls(
            xy=xy, a=a, b=b, length=length, parent=parent, indptr=matrix.indptr.astype(np.int64),
            indices=matrix.indices.astype(np.int64), data=matrix.data, out_ptr=out_ptr, out_piece=order,
            local=np.full(n, -1, dtype=np.int64),
        )  # fmt: skip

    def subgraph(self, nodes: np.ndarray) -> sparse.csr_matrix:
        """CSR of the subgraph induced by ``nodes`` (local numbering = position in ``nodes``).

        ``self.local`` must map ``nodes`` to ``0..len(nodes)-1`` and everything else to -1.
        """
        starts = self.indptr[nodes]
        counts = self.indptr[nodes + 1] - starts
        flat = ragged_index(starts, counts)
        cols = self.local[self.indices[flat]]
        keep = cols >= 0
        rows = np.repeat(np.arange(len(nodes)), counts)[keep]
        indptr = np.zeros(len(nodes) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(nodes)), out=indptr[1:])
        return sparse.csr_matrix(
            (self.data[flat][keep], cols[keep].astype(np.int32), indptr), shape=(len(nodes), len(nodes))
        )

    def piece_of(self, canonical_edge: np.ndarray) -> np.ndarray:
        """Piece index of canonical directed edges."""
        return np.searchsorted(self.parent, canonical_edge)


def undirected_graph(net: RoadNetwork) -> UGraph:
    """The undirected graph of ``net``'s physical road pieces, lengths in metres (kept with the network)."""

    def build() -> UGraph:
        phys = net.undirected_edges
        return UGraph.build(net.edge_u[phys], net.edge_v[phys], net.edge_length[phys], phys, net.node_xy)

    return net.cached("undirected_graph", build)


def _tile_side(xy: np.ndarray, reach: float, target: int) -> float:
    """Tile side (m): at least ``reach``; larger when sources are sparse (about ``target`` per tile)."""
    if len(xy) < 2:
        return max(reach, 1.0)
    span = np.ptp(xy, axis=0)
    area = max(float(span[0]) * float(span[1]), reach * reach)
    return max(reach, float(np.sqrt(target * area / len(xy))), 1.0)


_MARGIN_REL, _MARGIN_ABS = 0.02, 1.0


def bounded_blocks(
    graph: UGraph,
    sources: np.ndarray,
    limit: float,
    *,
    anchor_xy: np.ndarray | None = None,
    extra: np.ndarray | None = None,
    chunk: int = 64,
    target_per_tile: int = 16,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Bounded multi-source undirected shortest paths, tile by tile.

    Network distances never undercut straight-line distances, so every node within network
    distance ``limit`` of a source lies within the same straight-line distance. Sources are
    grouped into square tiles of side ``>= limit``; one tile's sources only need the subgraph
    of the tiles around it (a margin of 2 % + 1 m covers projection scale error), so the work
    grows with the number of sources times the size of a ``limit`` ball, never with sources
    times the whole network.

    Parameters
    ----------
    sources
        (N,) source nodes, or (N, 2) node pairs (both searched in the same chunk).
    limit
        Distance limit, metres.
    anchor_xy, extra
        Where each source sits for tiling (default: its node) and how much farther than
        ``limit`` its searches may reach from there (default 0), metres.

    Yields
    ------
    (sel, block, dist)
        ``sel`` are positions in ``sources``; ``block`` the graph nodes of the tile's
        neighbourhood; ``dist[i, j]`` the network distance (m) from source ``sources[sel[i]]``
        (for pairs: rows ``0..k-1`` the first nodes, ``k..2k-1`` the second) to ``block[j]``
        (``inf`` beyond ``limit``). While the consumer holds a yielded block, ``graph.local``
        maps block nodes to their column in ``dist`` (-1 elsewhere).
    """
    sources = np.asarray(sources, dtype=np.int64)
    if len(sources) == 0:
        return
    anchor = graph.xy[sources] if anchor_xy is None else np.asarray(anchor_xy, dtype=np.float64)
    extra = np.zeros(len(sources)) if extra is None else np.asarray(extra, dtype=np.float64)
    reach = limit * (1.0 + _MARGIN_REL) + _MARGIN_ABS
    side = _tile_side(anchor, reach, target_per_tile)
    pad = int(np.ceil((reach + extra.max() * (1.0 + _MARGIN_REL)) / side))
    origin = np.minimum(graph.xy.min(axis=0), anchor.min(axis=0))
    cell = np.floor((graph.xy - origin) / side).astype(np.int64) + pad
    src_cell = np.floor((anchor - origin) / side).astype(np.int64) + pad
    ny = int(max(cell[:, 1].max(), src_cell[:, 1].max())) + pad + 1
    key = cell[:, 0] * ny + cell[:, 1]
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    src_key = src_cell[:, 0] * ny + src_cell[:, 1]
    src_order = np.argsort(src_key, kind="stable")
    tiles, tile_start = np.unique(src_key[src_order], return_index=True)
    tile_end = np.append(tile_start[1:], len(src_order))
    for t, k in enumerate(tiles.tolist()):
        tile_sel = src_order[tile_start[t] : tile_end[t]]
        r = int(np.ceil((reach + extra[tile_sel].max() * (1.0 + _MARGIN_REL)) / side))
        lo = np.array([k + dx * ny - r for dx in range(-r, r + 1)])
        lo_pos = np.searchsorted(sorted_key, lo, side="left")
        hi_pos = np.searchsorted(sorted_key, lo + 2 * r, side="right")
        block = order[ragged_index(lo_pos, hi_pos - lo_pos)]
        graph.local[block] = np.arange(len(block))
        try:
            sub = graph.subgraph(block)
            for c0 in range(0, len(tile_sel), chunk):
                sel = tile_sel[c0 : c0 + chunk]
                idx = sources[sel].T.ravel()  # pairs: all first nodes, then all second nodes
                dist = csgraph.dijkstra(sub, directed=True, indices=graph.local[idx], limit=limit)
                yield sel, block, dist
        finally:
            graph.local[block] = -1


@dataclass
class _UPlaces:
    """Points on the undirected graph: piece ``piece`` (-1 at a node) at ``offset`` metres from its ``a`` end;
    ``end_a``/``end_b`` the nodes to search from (both the point's node when at a node), ``length`` the piece's."""

    index: np.ndarray
    end_a: np.ndarray
    end_b: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    piece: np.ndarray


def _uplaces(net: RoadNetwork, graph: UGraph, places: Places) -> _UPlaces:
    at = np.flatnonzero(places.node >= 0)
    idx, road, pos = road_positions(net, places)
    piece = graph.piece_of(road)
    length = graph.length[piece]
    return _UPlaces(
        index=np.concatenate([at, idx]),
        end_a=np.concatenate([places.node[at], graph.a[piece]]),
        end_b=np.concatenate([places.node[at], graph.b[piece]]),
        offset=np.concatenate([np.zeros(len(at)), pos * length]),
        length=np.concatenate([np.zeros(len(at)), length]),
        piece=np.concatenate([np.full(len(at), -1), piece]),
    )


def pairs_within(net: RoadNetwork, a: Places, b: Places, limit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of points (a[i], b[j]) within ``limit`` metres of road of each other, direction ignored.

    A point at offset ``o`` on a piece of length ``L`` is ``o`` from its ``a`` end and ``L − o``
    from its ``b`` end; bounded searches from the ends of every piece holding a point of ``a``
    (tile by tile, :func:`bounded_blocks`) give its distance to every node nearby, and a point
    of ``b`` takes the better of its two ends. Points on the same piece also connect directly.

    Returns
    -------
    (i, j, distance_m)
        Indices into ``a`` and ``b`` of every pair within ``limit`` (each pair once, at its
        shortest), and the distance, metres.
    """
    graph = undirected_graph(net)
    pa, pb = _uplaces(net, graph, a), _uplaces(net, graph, b)
    # the targets' ends, grouped by node: (node, point, extra metres)
    t_node = np.concatenate([pb.end_a, pb.end_b[pb.piece >= 0]])
    t_point = np.concatenate([pb.index, pb.index[pb.piece >= 0]])
    t_extra = np.concatenate([pb.offset, (pb.length - pb.offset)[pb.piece >= 0]])
    order = np.argsort(t_node, kind="stable")
    t_node, t_point, t_extra = t_node[order], t_point[order], t_extra[order]
    t_ptr = np.searchsorted(t_node, np.arange(graph.n + 1))
    out_i, out_j, out_d = [], [], []
    ends = np.column_stack([pa.end_a, pa.end_b])
    anchor = (graph.xy[pa.end_a] + graph.xy[pa.end_b]) / 2.0
    for sel, block, dist in bounded_blocks(graph, ends, limit, anchor_xy=anchor, extra=pa.length / 2.0):
        k = len(sel)
        counts = t_ptr[block + 1] - t_ptr[block]
        rows = ragged_index(t_ptr[block], counts)
        if len(rows) == 0:
            continue
        cols = np.repeat(np.arange(len(block)), counts)
        off, length = pa.offset[sel][:, None], pa.length[sel][:, None]
        d = np.minimum(off + dist[:k][:, cols], length - off + dist[k:][:, cols]) + t_extra[rows][None, :]
        i, c = np.nonzero(d <= limit)
        out_i.append(pa.index[sel][i])
        out_j.append(t_point[rows][c])
        out_d.append(d[i, c])
    # points on the same piece: straight along it
    same = _same_piece_pairs(pa, pb)
    out_i.append(same[0])
    out_j.append(same[1])
    out_d.append(same[2])
    i, j, d = np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)
    keep = d <= limit
    i, j, d = i[keep], j[keep], d[keep]
    o = np.lexsort((d, j, i))
    first = first_of_runs(i[o], j[o])
    return i[o][first], j[o][first], d[o][first]


def _same_piece_pairs(pa: _UPlaces, pb: _UPlaces) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sa = np.flatnonzero(pa.piece >= 0)
    sb = np.flatnonzero(pb.piece >= 0)
    order = sb[np.argsort(pb.piece[sb], kind="stable")]
    keys = pb.piece[order]
    lo = np.searchsorted(keys, pa.piece[sa], side="left")
    hi = np.searchsorted(keys, pa.piece[sa], side="right")
    rep = np.repeat(sa, hi - lo)
    other = order[ragged_index(lo, hi - lo)]
    return pa.index[rep], pb.index[other], np.abs(pa.offset[rep] - pb.offset[other])
