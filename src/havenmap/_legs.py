"""Travel-time matrices between stops (bases and targets) on the road network, and the road legs.

All stops are spliced into the graph as virtual nodes (:func:`havenmap._routing.splice`),
then ``csgraph.dijkstra`` runs once per chunk of stop nodes (``indices=`` the stops) and the
S × S block of the result is kept. Paths minimise a routing *cost* (travel time, or a
danger-aware per-edge weight); the physical travel time and length along each chosen path
are summed from the predecessor trees by pointer jumping (``log2(depth)`` vectorised
gathers), so a danger-aware route still reports real seconds and metres.

Units: seconds, metres; costs in the unit of the per-edge weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from . import _routing
from .network import RoadNetwork

#: Cells of (chunk of sources × graph nodes) handled per Dijkstra call (bounds memory: ~12 B per cell).
_CHUNK_CELLS = 20_000_000


@dataclass
class LegMatrix:
    """Pairwise legs between stops.

    Attributes
    ----------
    spliced : SplicedGraph
        The network with the stops spliced in; stop ``j`` is node ``spliced.n_base + j``.
    cost : (S, S) float
        Routing cost of the cheapest path i → j (``inf`` = no road route).
    time_s : (S, S) float
        Travel time along that path, seconds.
    length_m : (S, S) float
        Length of that path, metres (computed on first use: another Dijkstra pass).
    """

    net: RoadNetwork
    spliced: _routing.SplicedGraph
    weights: np.ndarray
    cost: np.ndarray
    time_s: np.ndarray
    _csr: sparse.csr_matrix = field(repr=False)
    _piece_of_entry: np.ndarray = field(repr=False)
    _pred: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _length_m: np.ndarray | None = field(default=None, repr=False)

    @property
    def length_m(self) -> np.ndarray:
        """Road length of every leg, metres (S × S; computed once, on first use)."""
        if self._length_m is None:
            self._length_m = self._along_paths(self.net.edge_length)
        return self._length_m

    def _along_paths(self, per_edge: np.ndarray) -> np.ndarray:
        entry = per_edge[self.spliced.parent[self._piece_of_entry]] * _span(self.spliced)[self._piece_of_entry]
        stops = self.spliced.n_base + np.arange(self.n_stops)
        out = np.full(self.cost.shape, np.inf)
        for chunk in _chunks(np.arange(self.n_stops), self._csr.shape[0]):
            _, pred = csgraph.dijkstra(self._csr, directed=True, indices=stops[chunk], return_predecessors=True)
            out[chunk] = _along_tree(self._csr, pred, entry, stops)
        out[~np.isfinite(self.cost)] = np.inf
        np.fill_diagonal(out, 0.0)
        return out

    def leg_value(self, i: int, j: int, per_edge: np.ndarray) -> float:
        """Sum of a per-edge quantity (e.g. ``net.edge_length``) pro rata along the leg i → j."""
        pieces = self.pieces(i, j)
        return float(np.sum(per_edge[self.spliced.parent[pieces]] * _span(self.spliced)[pieces]))

    @property
    def n_stops(self) -> int:
        """Number of stops S."""
        return self.cost.shape[0]

    def stop_node(self, j: int) -> int:
        """Spliced-graph node of stop ``j``."""
        return self.spliced.n_base + j

    def prepare(self, sources: np.ndarray) -> None:
        """Compute (and keep) the shortest-path trees of the given stops, one Dijkstra per chunk."""
        todo = np.array(sorted({int(s) for s in sources} - set(self._pred)), dtype=np.int64)
        for chunk in _chunks(todo, self._csr.shape[0]):
            _, pred = csgraph.dijkstra(
                self._csr, directed=True, indices=self.spliced.n_base + chunk, return_predecessors=True
            )
            for s, row in zip(chunk.tolist(), pred, strict=True):
                self._pred[s] = row.astype(np.int32)

    def pieces(self, i: int, j: int) -> np.ndarray:
        """Spliced pieces (indices into ``spliced.src/dst/parent/f0/f1``) along the leg i → j."""
        if i == j or not np.isfinite(self.cost[i, j]):
            return np.zeros(0, dtype=np.int64)
        self.prepare(np.array([i]))
        pred = self._pred[i]
        node, start = self.stop_node(j), self.stop_node(i)
        nodes = [node]
        while node != start:
            node = int(pred[node])
            if node < 0:  # pragma: no cover - cost finite means the tree reaches j
                raise RuntimeError(f"broken shortest-path tree between stops {i} and {j}")
            nodes.append(node)
        nodes.reverse()
        return _entry_pieces(self._csr, self._piece_of_entry, np.asarray(nodes, dtype=np.int64))


def leg_matrix(
    net: RoadNetwork, edge: np.ndarray, fraction: np.ndarray, edge_weights: np.ndarray | None = None
) -> LegMatrix:
    """All-pairs legs between stops placed at (``edge``, ``fraction``) on the network.

    Parameters
    ----------
    net
        Road network.
    edge, fraction
        Each stop's directed edge index and position along it (0 = start node, 1 = end
        node), as from :func:`havenmap.snap_points`. Every stop must be on the network.
    edge_weights
        Optional per-edge routing cost (``inf`` or NaN closes the edge); default the
        travel time in seconds. Reported times and lengths stay physical.
    """
    edge = np.asarray(edge, dtype=np.int64)
    if np.any(edge < 0):
        raise ValueError("every stop must be on the network (edge >= 0)")
    spliced = _routing.splice(net, edge, fraction)
    weights = net.edge_time if edge_weights is None else np.asarray(edge_weights, dtype=np.float64)
    matrix, piece_of_entry = spliced.matrix(weights)
    entry_time = net.edge_time[spliced.parent[piece_of_entry]] * _span(spliced)[piece_of_entry]
    n_stops = len(edge)
    cost = np.full((n_stops, n_stops), np.inf)
    time_s = np.full((n_stops, n_stops), np.inf)
    stops = spliced.n_base + np.arange(n_stops)
    for chunk in _chunks(np.arange(n_stops), matrix.shape[0]):
        if edge_weights is None:  # cost is the travel time: no predecessor trees needed
            cost[chunk] = csgraph.dijkstra(matrix, directed=True, indices=stops[chunk])[:, stops]
            time_s[chunk] = cost[chunk]
        else:
            dist, pred = csgraph.dijkstra(matrix, directed=True, indices=stops[chunk], return_predecessors=True)
            cost[chunk] = dist[:, stops]
            time_s[chunk] = _along_tree(matrix, pred, entry_time, stops)
    time_s[~np.isfinite(cost)] = np.inf
    np.fill_diagonal(cost, 0.0)
    np.fill_diagonal(time_s, 0.0)
    return LegMatrix(
        net=net, spliced=spliced, weights=weights, cost=cost, time_s=time_s, _csr=matrix, _piece_of_entry=piece_of_entry
    )


def _span(spliced: _routing.SplicedGraph) -> np.ndarray:
    return spliced.f1 - spliced.f0


def _chunks(items: np.ndarray, n_nodes: int):
    size = max(1, _CHUNK_CELLS // max(n_nodes, 1))
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _entry_of(matrix: sparse.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """CSR data position of entries (rows, cols) that exist (columns sorted within each row)."""
    n = matrix.shape[0]
    keys = np.repeat(np.arange(n, dtype=np.int64), np.diff(matrix.indptr)) * n + matrix.indices
    return np.searchsorted(keys, rows.astype(np.int64) * n + cols)


def _entry_pieces(matrix, piece_of_entry: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    if len(nodes) < 2:
        return np.zeros(0, dtype=np.int64)
    return piece_of_entry[_entry_of(matrix, nodes[:-1], nodes[1:])]


def _along_tree(
    matrix: sparse.csr_matrix, pred: np.ndarray, entry_value: np.ndarray, targets: np.ndarray
) -> np.ndarray:
    """Sum ``entry_value`` along each tree path source → target (pointer jumping), shape (chunk, T)."""
    rows, n = pred.shape
    has = pred >= 0
    value = np.zeros(pred.shape)
    r_idx, c_idx = np.nonzero(has)
    value[r_idx, c_idx] = entry_value[_entry_of(matrix, pred[r_idx, c_idx], c_idx)]
    ptr = np.where(has, pred, -1).astype(np.int64)
    row_off = (np.arange(rows, dtype=np.int64) * n)[:, None]
    flat_value = value.ravel()
    while True:
        live = ptr >= 0
        if not live.any():
            break
        gather = np.where(live, ptr + row_off, 0).ravel()
        flat_value = np.where(live.ravel(), flat_value + flat_value[gather], flat_value)
        ptr = np.where(live, ptr.ravel()[gather].reshape(ptr.shape), -1)
    out = flat_value.reshape(pred.shape)[:, targets]
    return out
