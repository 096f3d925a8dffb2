"""Network kernel density estimation along the roads (threat risk), on the routing core's undirected graph.

The graph is *undirected* (:func:`havenmap._graph.undirected_graph`): risk sits on the road,
whatever the direction of travel. Its edges are the physical road pieces; bounded distances
come from the core's tiled searches (:func:`havenmap._graph.bounded_blocks`).

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

from collections.abc import Callable

import numpy as np

from ._arrays import ragged_index
from ._graph import UGraph, bounded_blocks

__all__ = ["KERNELS", "kernel_cdf", "kernel_pdf", "network_kde"]

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


def kernel_pdf(name: str, t: np.ndarray) -> np.ndarray:
    """Kernel value ``k(t)`` for ``t = d / h >= 0`` (0 at and beyond 1, and for ``inf``)."""
    pdf = KERNELS[name][0]
    t = np.asarray(t, dtype=np.float64)
    inside = t < 1.0
    return np.where(inside, pdf(np.where(inside, t, 0.0)), 0.0)


def kernel_cdf(name: str, t: np.ndarray) -> np.ndarray:
    """``K(t) = ∫_0^min(t, 1) k(s) ds`` for ``t >= 0`` (``K(1) = K(∞) = 1/2``)."""
    return KERNELS[name][1](np.minimum(np.asarray(t, dtype=np.float64), 1.0))


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
        pt = ragged_index(first[sel][q], n_pts)  # points, positions in the sorted arrays
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
        other = graph.out_piece[ragged_index(starts, n_out)]
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
    pt = ragged_index(first, count)
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
