"""Bounded network distances in spatial tiles, and network kernel density estimation on them.

Network distances never undercut straight-line distances, so every node within network
distance ``limit`` of a source lies within the same straight-line distance. Sources are
grouped into square tiles of side ``side >= limit``; one tile's sources only need the
subgraph of the tiles around it. Each tile runs ``scipy.sparse.csgraph.dijkstra`` with
``limit`` on that small subgraph, for its sources in chunks, so the work grows with the
number of sources times the size of a bandwidth ball, never with sources times the whole
network. A margin of 2 % + 1 m covers projection scale error and lengths slightly shorter
than the geometry.

The graphs here are *undirected*: risk sits on the road, whatever the direction of travel.
Their edges are "pieces": the physical road pieces of the network (:func:`base_graph`),
or those cut at spliced points (:func:`point_graph`, used to find pairs of points within a
distance); each piece keeps its parent network edge so per-edge values can be summed back.

Kernel density (the "simple" network KDE of Xie & Yan 2008 / Okabe et al. 2009): a point of
weight ``w`` contributes ``w · k(d / h) / h`` per metre at network distance ``d``, with ``k``
a compact kernel integrating to 1 over the real line. Points are *not* spliced into the
graph: a point on piece ``a–b`` at ``o`` metres from ``a`` is at ``min(o + d_a(x), L − o +
d_b(x))`` from node ``x``, so one bounded search from each end of each piece holding points
serves all of them. Along a piece ``a–b`` of length ``L`` holding no point, the distance to
a point is ``min(d_a + x, d_b + L − x)``, whose integral is exact in closed form::

    ∫_0^L k(d(x)/h)/h dx = 2·K(m/h) − K(d_a/h) − K(d_b/h),   m = (d_a + d_b + L)/2,

where ``K(t) = ∫_0^min(t,1) k`` (so ``K(∞) = 1/2``); along the point's own piece it is
``K(o/h) + K((L − o)/h)``. The simple KDE is not mass-preserving at junctions (each branch
gets the full kernel); it ranks places consistently, which is what risk needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from ._routing import splice
from .network import RoadNetwork, _ragged_index, csr_min

__all__ = [
    "KERNELS",
    "UGraph",
    "base_graph",
    "bounded_blocks",
    "kernel_cdf",
    "kernel_pdf",
    "network_kde",
    "pairs_within",
    "point_graph",
]

#: Supported kernels: name -> (pdf on |t| < 1, K(t) = integral from 0 to min(t, 1)).
KERNELS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "quartic": (
        lambda t: 15.0 / 16.0 * (1.0 - t * t) ** 2,
        lambda t: 15.0 / 16.0 * (t - 2.0 * t**3 / 3.0 + t**5 / 5.0),
    ),
    "epanechnikov": (lambda t: 0.75 * (1.0 - t * t), lambda t: 0.75 * (t - t**3 / 3.0)),
    "triangular": (lambda t: 1.0 - t, lambda t: t - t * t / 2.0),
    "uniform": (lambda t: np.full_like(t, 0.5), lambda t: 0.5 * t),
}
_MARGIN_REL, _MARGIN_ABS = 0.02, 1.0


def kernel_pdf(name: str, t: np.ndarray) -> np.ndarray:
    """Kernel value ``k(t)`` for ``t = d / h >= 0`` (0 at and beyond 1, and for ``inf``)."""
    pdf = KERNELS[name][0]
    t = np.asarray(t, dtype=np.float64)
    inside = t < 1.0
    return np.where(inside, pdf(np.where(inside, t, 0.0)), 0.0)


def kernel_cdf(name: str, t: np.ndarray) -> np.ndarray:
    """``K(t) = ∫_0^min(t, 1) k(s) ds`` for ``t >= 0`` (``K(1) = K(∞) = 1/2``)."""
    return KERNELS[name][1](np.minimum(np.asarray(t, dtype=np.float64), 1.0))


@dataclass
class UGraph:
    """An undirected graph of road pieces with node coordinates.

    Attributes
    ----------
    xy : (n, 2) float
        Node coordinates, metres (projected).
    a, b, length, parent : (P,) arrays
        Piece end nodes, length (m) and the physical network edge (directed edge index) it belongs to.
    indptr, indices, data
        Symmetric CSR adjacency (cheapest parallel piece per node pair), metres.
    out_ptr, out_piece
        Node -> the pieces whose ``a`` end it is (CSR-style).
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
        matrix, _ = csr_min(np.concatenate([a, b]), np.concatenate([b, a]), np.concatenate([length, length]), n)
        order = np.argsort(a, kind="stable")
        out_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(a, minlength=n), out=out_ptr[1:])
        return cls(
            xy=xy,
            a=a,
            b=b,
            length=length,
            parent=parent,
            indptr=matrix.indptr.astype(np.int64),
            indices=matrix.indices.astype(np.int64),
            data=matrix.data,
            out_ptr=out_ptr,
            out_piece=order,
            local=np.full(n, -1, dtype=np.int64),
        )

    def subgraph(self, nodes: np.ndarray) -> sparse.csr_matrix:
        """CSR of the subgraph induced by ``nodes`` (local numbering = position in ``nodes``).

        ``self.local`` must map ``nodes`` to ``0..len(nodes)-1`` and everything else to -1.
        """
        starts = self.indptr[nodes]
        counts = self.indptr[nodes + 1] - starts
        flat = _ragged_index(starts, counts)
        cols = self.local[self.indices[flat]]
        keep = cols >= 0
        rows = np.repeat(np.arange(len(nodes)), counts)[keep]
        indptr = np.zeros(len(nodes) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(nodes)), out=indptr[1:])
        return sparse.csr_matrix(
            (self.data[flat][keep], cols[keep].astype(np.int32), indptr), shape=(len(nodes), len(nodes))
        )


def point_graph(net: RoadNetwork, edge: np.ndarray, fraction: np.ndarray, xy: np.ndarray) -> tuple[UGraph, np.ndarray]:
    """The undirected piece graph of ``net`` with points spliced in as nodes.

    Parameters
    ----------
    edge, fraction
        Each point's directed edge index (-1: not on the network) and fraction along it.
    xy
        Each point's projected coordinates (metres), on the road.

    Returns
    -------
    (UGraph, node) where ``node[j]`` is point j's node (``net.n_nodes + j``; -1 when off-network).
    """
    spliced = splice(net, edge, fraction)
    idx = np.arange(net.n_edges)
    canonical = (net.edge_twin < 0) | (idx < net.edge_twin)
    keep = canonical[spliced.parent]
    parent = spliced.parent[keep]
    length = net.edge_length[parent] * (spliced.f1[keep] - spliced.f0[keep])
    node_xy = np.vstack([net.node_xy, np.asarray(xy, dtype=np.float64).reshape(-1, 2)])
    graph = UGraph.build(spliced.src[keep], spliced.dst[keep], length, parent, node_xy)
    node = np.where(np.asarray(edge) >= 0, net.n_nodes + np.arange(len(edge)), -1)
    return graph, node


def _tile_side(xy: np.ndarray, reach: float, target: int) -> float:
    """Tile side (m): at least ``reach``; larger when sources are sparse (about ``target`` per tile)."""
    if len(xy) < 2:
        return max(reach, 1.0)
    span = np.ptp(xy, axis=0)
    area = max(float(span[0]) * float(span[1]), reach * reach)
    return max(reach, float(np.sqrt(target * area / len(xy))), 1.0)


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
    """Bounded multi-source shortest paths, tile by tile.

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
        (``inf`` beyond ``limit``). Every node within ``limit`` of a searched node is in its
        block. While the consumer holds a yielded block, ``graph.local`` maps block nodes to
        their column in ``dist`` (-1 elsewhere).
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
        block = order[_ragged_index(lo_pos, hi_pos - lo_pos)]
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


def network_kde(
    graph: UGraph,
    piece: np.ndarray,
    offset: np.ndarray,
    weights: np.ndarray,
    bandwidth: float,
    kernel: str = "quartic",
    **tiling: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Network kernel density of weighted points lying on pieces of ``graph``.

    A point at ``offset`` metres from end ``a`` of piece ``e = a–b`` (length ``L``) is at
    network distance ``d(x) = min(o + d_a(x), L − o + d_b(x))`` from a node ``x``, so one
    bounded Dijkstra from each end of each piece holding points serves all its points, on
    the plain road graph (no point is spliced in). Along its own piece a point's distance is
    ``|x − o|`` (a detour around a loop shorter than that is ignored).

    Piece integrals: with ``K'(t) = K(t) − 1/2`` (zero beyond the kernel's support), a piece
    ``a–b`` holding no point receives ``Σ_i w_i [2·K'(m_i/h) − K'(d_ia/h) − K'(d_ib/h)]``
    with ``m = (d_a + d_b + L)/2``; the last two sums are per node, and ``K'(m_i/h)`` is
    non-zero only when both ends are within the bandwidth. A point's own piece receives
    ``K(o/h) + K((L−o)/h)`` instead, applied as a correction of the generic value.

    Parameters
    ----------
    piece, offset, weights
        Per point: the piece it lies on, metres from the piece's ``a`` end, its weight.
    bandwidth
        Kernel bandwidth ``h``, metres.

    Returns
    -------
    node_density : (n,) float
        Density at each node, weight per metre.
    piece_mass : (P,) float
        Integral of the density along each piece (weight; divide by length for the mean).
    """
    h = float(bandwidth)
    node_density = np.zeros(graph.n)
    node_tail = np.zeros(graph.n)  # Σ_i w_i K'(d_i / h)
    piece_m = np.zeros(len(graph.a))  # Σ_i w_i K'(m_i / h)
    piece = np.asarray(piece, dtype=np.int64)
    order = np.argsort(piece, kind="stable")
    p_sorted = piece[order]
    o_sorted = np.asarray(offset, dtype=np.float64)[order]
    w_sorted = np.asarray(weights, dtype=np.float64)[order]
    held, first, count = np.unique(p_sorted, return_index=True, return_counts=True)
    if len(held) == 0:
        return node_density, piece_m
    ends = np.column_stack([graph.a[held], graph.b[held]])
    anchor = (graph.xy[ends[:, 0]] + graph.xy[ends[:, 1]]) / 2.0
    half = np.hypot(*(graph.xy[ends[:, 0]] - graph.xy[ends[:, 1]]).T) / 2.0
    own_fix = np.zeros(len(graph.a))
    for sel, block, dist in bounded_blocks(graph, ends, h, anchor_xy=anchor, extra=half, **tiling):
        k = len(sel)
        d_a, d_b = dist[:k], dist[k:]
        _own_piece(graph, kernel, h, held[sel], first[sel], count[sel], o_sorted, w_sorted, d_a, d_b, own_fix)
        q, x = np.nonzero((d_a < h) | (d_b < h))  # (held piece in chunk, block column)
        n_pts = count[sel][q]
        pt = _ragged_index(first[sel][q], n_pts)  # points, positions in the sorted arrays
        q, x = np.repeat(q, n_pts), np.repeat(x, n_pts)
        o, length = o_sorted[pt], graph.length[held[sel][q]]
        t = np.minimum(o + d_a[q, x], length - o + d_b[q, x]) / h
        near = t < 1.0
        pt, q, x, o, length, t = pt[near], q[near], x[near], o[near], length[near], t[near]
        w = w_sorted[pt]
        node = block[x]
        np.add.at(node_density, node, w * kernel_pdf(kernel, t))
        np.add.at(node_tail, node, w * (kernel_cdf(kernel, t) - 0.5))
        # m-terms: pieces whose a end is this node and whose b end is near too
        starts = graph.out_ptr[node]
        n_out = graph.out_ptr[node + 1] - starts
        other = graph.out_piece[_ragged_index(starts, n_out)]
        rep = np.repeat(np.arange(len(node)), n_out)
        col = graph.local[graph.b[other]]
        inside = col >= 0
        rep, other, col = rep[inside], other[inside], col[inside]
        qr, orr = q[rep], o[rep]
        t_b = np.minimum(orr + d_a[qr, col], length[rep] - orr + d_b[qr, col]) / h
        both = t_b < 1.0
        rep, other, t_b = rep[both], other[both], t_b[both]
        tm = (t[rep] + t_b + graph.length[other] / h) / 2.0
        np.add.at(piece_m, other, w[rep] * (kernel_cdf(kernel, tm) - 0.5))
    piece_mass = 2.0 * piece_m - node_tail[graph.a] - node_tail[graph.b] + own_fix
    return node_density / h, np.maximum(piece_mass, 0.0)


def _own_piece(
    graph: UGraph,
    kernel: str,
    h: float,
    pieces: np.ndarray,
    first: np.ndarray,
    count: np.ndarray,
    o_sorted: np.ndarray,
    w_sorted: np.ndarray,
    d_a: np.ndarray,
    d_b: np.ndarray,
    own_fix: np.ndarray,
) -> None:
    """Replace, on each point's own piece, the generic integral by ``K(o/h) + K((L−o)/h)``."""
    pt = _ragged_index(first, count)
    q = np.repeat(np.arange(len(pieces)), count)
    p = pieces[q]
    o, length = o_sorted[pt], graph.length[p]
    col_a, col_b = graph.local[graph.a[p]], graph.local[graph.b[p]]
    t_a = np.minimum(o, length - o + d_b[q, col_a]) / h  # the generic pass's distances to the ends
    t_b = np.minimum(length - o, o + d_a[q, col_b]) / h
    cdf = kernel_cdf
    generic = 2 * cdf(kernel, (t_a + t_b + length / h) / 2) - cdf(kernel, t_a) - cdf(kernel, t_b)
    truth = cdf(kernel, o / h) + cdf(kernel, np.maximum(length - o, 0.0) / h)
    np.add.at(own_fix, p, w_sorted[pt] * (truth - generic))


def base_graph(net: RoadNetwork) -> UGraph:
    """The undirected graph of ``net``'s physical road pieces (cached on the network)."""

    def build() -> UGraph:
        phys = net.undirected_edges
        return UGraph.build(net.edge_u[phys], net.edge_v[phys], net.edge_length[phys], phys, net.node_xy)

    return net.cached("kde_base_graph", build)


def pairs_within(
    graph: UGraph, sources: np.ndarray, target_id: np.ndarray, limit: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (source, target) pairs within network distance ``limit``.

    Parameters
    ----------
    sources
        Source nodes.
    target_id
        Per graph node: the target number it carries, or -1.

    Returns
    -------
    (source position, target id, distance m), one entry per pair within ``limit``.
    """
    out_s, out_t, out_d = [], [], []
    for sel, block, dist in bounded_blocks(graph, sources, limit):
        tid = target_id[block]
        cols = np.flatnonzero(tid >= 0)
        sub = dist[:, cols]
        i, j = np.nonzero(sub <= limit)
        out_s.append(sel[i])
        out_t.append(tid[cols[j]])
        out_d.append(sub[i, j])
    if not out_s:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(out_s), np.concatenate(out_t), np.concatenate(out_d)
