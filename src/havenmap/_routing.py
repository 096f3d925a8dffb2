"""Routing engine on compact arrays: snapped points spliced into the graph, k-nearest sources.

Everything here runs on numpy arrays and ``scipy.sparse.csgraph``; no per-point searches.

*Splicing.* Each snapped point becomes a virtual node inside its edge (and inside the twin
edge of a two-way street), so a point in the middle of a street is routed from there.
Pieces carry the fraction ``f0..f1`` of their parent edge, so any per-edge cost (time,
length, danger-weighted) applies to them pro rata.

*k nearest sources.* Round 1 is one multi-source Dijkstra from every source (havens) on the
reversed graph: each node's nearest source. Round r > 1 finds each node's r-th nearest
*distinct* source with one more Dijkstra: a node ``v`` takes candidates across edges
``v → w`` whose top-(r-1) source set differs from its own (``c(v, w) + d_i(w)`` for a source
of ``w`` not yet among ``v``'s), and otherwise inherits ``d_r(w)`` along edges between nodes
with the same set. Both rules are needed and sufficient (see the tests against networkx).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from .network import RoadNetwork, csr_min

_NO_PRED = -9999


@dataclass
class SplicedGraph:
    """The network with snapped points spliced in as virtual nodes.

    Node ``i < n_base`` is network node ``i``; node ``n_base + j`` is point ``j``.
    Edge ``k`` runs ``src[k] → dst[k]`` over fraction ``f0[k]..f1[k]`` of network edge ``parent[k]``.
    """

    n_base: int
    n_nodes: int
    src: np.ndarray
    dst: np.ndarray
    parent: np.ndarray
    f0: np.ndarray
    f1: np.ndarray

    def weights(self, edge_weights: np.ndarray) -> np.ndarray:
        """Per-piece weights from per-network-edge weights (``inf`` = closed stays closed)."""
        w = edge_weights[self.parent]
        closed = ~np.isfinite(w)
        return np.where(closed, np.inf, np.where(closed, 0.0, w) * (self.f1 - self.f0))

    def matrix(self, edge_weights: np.ndarray) -> tuple[sparse.csr_matrix, np.ndarray]:
        """CSR matrix of the cheapest piece per node pair, and the piece index per entry."""
        return csr_min(self.src, self.dst, self.weights(edge_weights), self.n_nodes)


def splice(net: RoadNetwork, edge: np.ndarray, fraction: np.ndarray) -> SplicedGraph:
    """Splice points (``edge`` index, ``fraction`` along it; edge -1 = not on the network) into the graph."""
    n = net.n_nodes
    edge = np.asarray(edge, dtype=np.int64)
    fraction = np.asarray(fraction, dtype=np.float64)
    pts = np.flatnonzero(edge >= 0)
    twin = net.edge_twin[edge[pts]]
    has_twin = twin >= 0
    e_edge = np.concatenate([edge[pts], twin[has_twin]])
    e_frac = np.concatenate([fraction[pts], 1.0 - fraction[pts][has_twin]])
    e_node = n + np.concatenate([pts, pts[has_twin]])
    order = np.lexsort((e_node, e_frac, e_edge))
    e_edge, e_frac, e_node = e_edge[order], e_frac[order], e_node[order]

    first = np.ones(len(e_edge), dtype=bool)
    first[1:] = e_edge[1:] != e_edge[:-1]
    last = np.ones(len(e_edge), dtype=bool)
    last[:-1] = e_edge[1:] != e_edge[:-1]
    prev_node = np.where(first, net.edge_u[e_edge], np.roll(e_node, 1))
    prev_frac = np.where(first, 0.0, np.roll(e_frac, 1))

    kept = np.ones(net.n_edges, dtype=bool)
    kept[e_edge] = False
    base = np.flatnonzero(kept)
    tail = np.flatnonzero(last)
    return SplicedGraph(
        n_base=n,
        n_nodes=n + len(edge),
        src=np.concatenate([net.edge_u[base], prev_node, e_node[tail]]),
        dst=np.concatenate([net.edge_v[base], e_node, net.edge_v[e_edge[tail]]]),
        parent=np.concatenate([base, e_edge, e_edge[tail]]),
        f0=np.concatenate([np.zeros(len(base)), prev_frac, e_frac[tail]]),
        f1=np.concatenate([np.ones(len(base)), e_frac, np.ones(len(tail))]),
    )


@dataclass
class NearestSources:
    """Result of :func:`k_nearest_sources` on a graph of N nodes.

    ``dist[v, r]`` is the cost from node v to its (r+1)-th nearest distinct source and
    ``label[v, r]`` that source's position in the ``sources`` array (-1 = unreachable).
    """

    dist: np.ndarray
    label: np.ndarray
    pred: list[np.ndarray]
    jump_node: list[np.ndarray]
    jump_rank: list[np.ndarray]

    def path(self, v: int, rank: int = 0) -> list[int]:
        """Node sequence from ``v`` to its (rank+1)-th nearest source, following graph edges."""
        if not np.isfinite(self.dist[v, rank]):
            return []
        n = self.dist.shape[0]
        nodes = [v]
        while True:
            p = int(self.pred[rank][v])
            if p == _NO_PRED or p < 0:
                break
            if p >= n:  # v took its candidate across a set boundary: continue on w's route
                v, rank = int(self.jump_node[rank][v]), int(self.jump_rank[rank][v])
            else:
                v = p
            nodes.append(v)
        return nodes


def k_nearest_sources(
    matrix: sparse.csr_matrix, sources: np.ndarray, k: int = 1, limit: float = np.inf
) -> NearestSources:
    """For every node, its k nearest distinct sources by shortest path *to* the source.

    Parameters
    ----------
    matrix
        CSR adjacency (cost of travelling ``row → column``).
    sources
        Node indices of the sources (e.g. havens).
    k
        How many nearest distinct sources per node.
    limit
        Ignore paths costlier than this (same unit as the weights).
    """
    n = matrix.shape[0]
    sources = np.asarray(sources, dtype=np.int64)
    reverse = matrix.T.tocsr()
    dist = np.full((n, k), np.inf)
    label = np.full((n, k), -1, dtype=np.int64)
    preds, jump_nodes, jump_ranks = [], [], []
    if len(sources) == 0:
        return NearestSources(dist, label, [np.full(n, _NO_PRED)] * k, [np.zeros(0)] * k, [np.zeros(0)] * k)

    d, pred, src = csgraph.dijkstra(
        reverse, directed=True, indices=sources, min_only=True, return_predecessors=True, limit=limit
    )
    position = np.full(n, -1, dtype=np.int64)
    position[sources] = np.arange(len(sources))
    dist[:, 0] = d
    label[:, 0] = np.where(src >= 0, position[np.maximum(src, 0)], -1)
    preds.append(pred)
    jump_nodes.append(np.zeros(0, dtype=np.int64))
    jump_ranks.append(np.zeros(0, dtype=np.int64))

    rows = np.repeat(np.arange(n), np.diff(matrix.indptr))
    cols, cost = matrix.indices.astype(np.int64), matrix.data
    for r in range(1, min(k, len(sources))):
        d_r, l_r, pred_r, jn, jr = _next_round(dist[:, :r], label[:, :r], rows, cols, cost, n, limit)
        dist[:, r], label[:, r] = d_r, l_r
        preds.append(pred_r)
        jump_nodes.append(jn)
        jump_ranks.append(jr)
    for _ in range(len(preds), k):
        preds.append(np.full(n, _NO_PRED))
        jump_nodes.append(np.zeros(0, dtype=np.int64))
        jump_ranks.append(np.zeros(0, dtype=np.int64))
    return NearestSources(dist, label, preds, jump_nodes, jump_ranks)


def _next_round(
    dist: np.ndarray, label: np.ndarray, rows: np.ndarray, cols: np.ndarray, cost: np.ndarray, n: int, limit: float
):
    """One more Dijkstra: each node's r-th nearest distinct source given the first r-1 (r = dist.shape[1] + 1)."""
    complete = (label >= 0).all(axis=1)  # nodes that reach r-1 sources so far
    live = complete[rows] & (label[cols] >= 0).any(axis=1)
    rows, cols, cost = rows[live], cols[live], cost[live]
    mine = label[rows]  # (E, r-1) sources already held by the edge's tail
    best = np.full(len(rows), np.inf)
    best_rank = np.full(len(rows), -1, dtype=np.int64)
    for i in range(label.shape[1]):
        theirs = label[cols, i]
        fresh = (theirs >= 0) & ~(mine == theirs[:, None]).any(axis=1)
        cand = np.where(fresh, cost + dist[cols, i], np.inf)
        better = cand < best
        best[better], best_rank[better] = cand[better], i
    same_set = (np.sort(mine, axis=1) == np.sort(label[cols], axis=1)).all(axis=1) & complete[cols]

    # candidate per tail node: the cheapest boundary crossing
    has = np.isfinite(best)
    order = np.flatnonzero(has)[np.lexsort((best[has], rows[has]))]
    firsts = order[np.r_[True, rows[order][1:] != rows[order][:-1]]] if len(order) else order
    boundary = rows[firsts]
    n_b = len(boundary)
    jump_node = np.full(n, -1, dtype=np.int64)
    jump_rank = np.full(n, -1, dtype=np.int64)
    jump_node[boundary] = cols[firsts]
    jump_rank[boundary] = best_rank[firsts]

    # reversed graph: w -> v along same-set edges, and virtual z_b -> b with the candidate cost
    src = np.concatenate([cols[same_set], n + np.arange(n_b)])
    dst = np.concatenate([rows[same_set], boundary])
    w = np.maximum(np.concatenate([cost[same_set], best[firsts]]), 1e-9)
    graph = sparse.csr_matrix((w, (src, dst)), shape=(n + n_b, n + n_b))
    if n_b == 0:
        return (np.full(n, np.inf), np.full(n, -1), np.full(n, _NO_PRED), jump_node, jump_rank)
    d, pred, origin = csgraph.dijkstra(
        graph, directed=True, indices=n + np.arange(n_b), min_only=True, return_predecessors=True, limit=limit
    )
    d, pred, origin = d[:n], pred[:n], origin[:n]
    reached = origin >= 0
    b = np.where(reached, origin - n, 0)
    via = boundary[b]
    new_label = np.where(reached, label[jump_node[via], jump_rank[via]], -1)
    return d, new_label, pred, jump_node, jump_rank
