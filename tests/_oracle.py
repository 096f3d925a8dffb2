"""An independent routing oracle: networkx Dijkstra on the *original* graph, points by explicit arithmetic.

It shares nothing with havenmap's routing model (no splicing, no attachment, no CSR): node-to-node
costs come from networkx on the osmnx-style graph (``net.to_networkx()`` or a hand-built graph),
and every test point is placed by the test itself, so its truth is known by construction:

- a point **at a node** (exactly there, or within the routing core's tolerance of it) *is* that
  node: it leaves by, and is reached from, every street there;
- a point **part-way** along the directed edge e = u→v at fraction f (by length along the edge's
  geometry) leaves towards v for ``(1 - f)·c_e`` and, on a two-way street (a reverse edge with
  the reversed geometry, found here from the geometries), towards u for ``f·c_t``; it is reached
  from u for ``f·c_e`` and, two-way, from v for ``(1 - f)·c_t``; two points on the same physical
  road also connect directly (along e when the second lies ahead, along the twin when behind).

Routes minimise the routing cost ``c`` (travel time, length, or any per-edge weights with
``inf`` = closed); the physical travel time and length *along the chosen route* are carried
alongside. :class:`BruteForce` checks the oracle itself: it inserts the points into a fresh copy
of the graph as explicit nodes and runs plain Dijkstra (written separately, sharing no code with
:class:`Oracle` beyond the twin lookup).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass, field

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely

EdgeKey = tuple[int, int, int]  # (u, v, key) of the original graph
Cost = tuple[float, float, float]  # (routing cost, physical time s, physical length m)
INF: Cost = (math.inf, math.inf, math.inf)
_SOURCE = "__oracle_source__"


# =========================================================================== places
@dataclass(frozen=True)
class Place:
    """Where a test point is, by construction: at a node (``node``) or part-way along ``edge``.

    ``xy`` is the position given to havenmap (network CRS); ``edge``/``fraction`` also record, for
    points placed a few centimetres along a street from a node, which street they were put on.
    """

    id: str
    xy: tuple[float, float]
    node: int | None = None
    edge: EdgeKey | None = None
    fraction: float = math.nan
    kind: str = ""

    @property
    def at_node(self) -> bool:
        return self.node is not None

    def __repr__(self) -> str:
        where = f"node {self.node}" if self.at_node else f"edge {self.edge} at {self.fraction:.4f}"
        return f"<{self.id}: {self.kind or 'point'} at {where}>"


def to_gdf(places: list[Place], crs, extra: dict | None = None) -> gpd.GeoDataFrame:
    """The places as a point layer (``id`` + geometry, EPSG:4326), as a user would give them."""
    frame = gpd.GeoDataFrame(
        {"id": [p.id for p in places], **(extra or {})},
        geometry=shapely.points([p.xy for p in places]),
        crs=crs,
    )
    return frame.to_crs(4326)


def edge_line(graph: nx.MultiDiGraph, e: EdgeKey) -> shapely.LineString:
    """The edge's geometry (a straight line between its nodes where the graph has none)."""
    data = graph.edges[e]
    if data.get("geometry") is not None:
        return data["geometry"]
    u, v, _ = e
    return shapely.LineString([_xy(graph, u), _xy(graph, v)])


def _xy(graph, n) -> tuple[float, float]:
    return float(graph.nodes[n]["x"]), float(graph.nodes[n]["y"])


def find_twins(graph: nx.MultiDiGraph) -> dict[EdgeKey, EdgeKey]:
    """Each two-way street's pair of directed edges: v→u with u→v's geometry reversed.

    A two-way loop (u = v) is two loop edges, one the other reversed. Where several roads share one
    geometry (duplicated OSM ways) the pairing among them is arbitrary, and equivalent.
    """
    twins: dict[EdgeKey, EdgeKey] = {}
    for u, v, k in graph.edges(keys=True):
        if (u, v, k) in twins:
            continue
        mine = np.asarray(edge_line(graph, (u, v, k)).coords)
        for k2 in graph[v].get(u, {}):
            other = (v, u, k2)
            if other == (u, v, k) or other in twins:
                continue
            theirs = np.asarray(edge_line(graph, other).coords)[::-1]
            if theirs.shape == mine.shape and np.allclose(theirs, mine, rtol=0.0, atol=1e-6):
                twins[(u, v, k)], twins[other] = other, (u, v, k)
                break
    return twins


def point_on_edge(graph: nx.MultiDiGraph, e: EdgeKey, fraction: float) -> tuple[float, float]:
    """Position at ``fraction`` of the edge's geometry length from u."""
    p = edge_line(graph, e).interpolate(fraction, normalized=True)
    return float(p.x), float(p.y)


# =========================================================================== the oracle
class Oracle:
    """Routing truth on ``graph`` for a cost model (see the module docstring).

    Parameters
    ----------
    graph
        osmnx-style ``nx.MultiDiGraph`` (edge ``length`` m, ``travel_time`` s, optional ``geometry``).
    weight
        'travel_time', 'length', or a dict {(u, v, key): routing cost} (``inf``/NaN = closed).
    """

    def __init__(self, graph: nx.MultiDiGraph, weight: str | dict[EdgeKey, float] = "travel_time"):
        self.graph = graph
        self.twin = find_twins(graph)
        self.w: dict[EdgeKey, float] = {}
        self.t: dict[EdgeKey, float] = {}
        self.l: dict[EdgeKey, float] = {}
        for u, v, k, d in graph.edges(keys=True, data=True):
            e = (u, v, k)
            w = float(d[weight]) if isinstance(weight, str) else float(weight[e])
            self.w[e] = w if np.isfinite(w) else math.inf
            self.t[e], self.l[e] = float(d["travel_time"]), float(d["length"])
        # reversed graph of the cheapest open edge per ordered node pair (a self-loop never shortens a route)
        self.reverse = nx.DiGraph()
        self.reverse.add_nodes_from(graph.nodes)
        for (u, v, k), w in self.w.items():
            if u == v or not math.isfinite(w):
                continue
            current = self.reverse.get_edge_data(v, u)
            if current is None or w < current["w"]:
                self.reverse.add_edge(v, u, w=w, t=self.t[(u, v, k)], l=self.l[(u, v, k)])
        self._labels: dict[Place, dict] = {}

    @classmethod
    def for_network(cls, net, cost: str = "time", edge_weights=None) -> Oracle:
        """The oracle on ``net.to_networkx()`` for havenmap's cost arguments (weights in ``net`` edge order)."""
        graph = net.to_networkx()
        if edge_weights is None:
            return cls(graph, {"time": "travel_time", "length": "length"}[cost])
        keys = list(
            zip(
                net.node_id[net.edge_u].tolist(),
                net.node_id[net.edge_v].tolist(),
                net.edge_key.tolist(),
                strict=True,
            )
        )
        assert set(keys) == set(graph.edges(keys=True)), "edge order of the weights does not fit the graph"
        return cls(graph, dict(zip(keys, np.asarray(edge_weights, dtype=float).tolist(), strict=True)))

    # ------------------------------------------------------------------ a point's links to the graph
    def _share(self, e: EdgeKey, share: float) -> Cost | None:
        if not math.isfinite(self.w[e]):
            return None
        return share * self.w[e], share * self.t[e], share * self.l[e]

    def exits(self, p: Place) -> list[tuple[int, Cost]]:
        """(node, cost) the point can leave to."""
        if p.at_node:
            return [(p.node, (0.0, 0.0, 0.0))]
        u, v, _ = p.edge
        out = [(v, self._share(p.edge, 1.0 - p.fraction))]
        if p.edge in self.twin:
            out.append((u, self._share(self.twin[p.edge], p.fraction)))
        return [(n, c) for n, c in out if c is not None]

    def entries(self, q: Place) -> list[tuple[int, Cost]]:
        """(node, cost) from which the point is reached."""
        if q.at_node:
            return [(q.node, (0.0, 0.0, 0.0))]
        u, v, _ = q.edge
        out = [(u, self._share(q.edge, q.fraction))]
        if q.edge in self.twin:
            out.append((v, self._share(self.twin[q.edge], 1.0 - q.fraction)))
        return [(n, c) for n, c in out if c is not None]

    def direct(self, p: Place, q: Place) -> Cost | None:
        """Straight along the shared physical road from p to q, if they are on one."""
        if p.at_node or q.at_node:
            return None
        e, f = p.edge, p.fraction
        if q.edge == e:
            g = q.fraction
        elif self.twin.get(e) == q.edge:
            g = 1.0 - q.fraction
        else:
            return None
        if g >= f:
            return self._share(e, g - f)
        return self._share(self.twin[e], f - g) if e in self.twin else None

    # ------------------------------------------------------------------ searches
    def labels_to(self, q: Place) -> dict[int, Cost]:
        """Cost of the cheapest route from every node to q (networkx Dijkstra on the reversed graph)."""
        if q in self._labels:
            return self._labels[q]
        first: dict[int, Cost] = {}
        for n, c in self.entries(q):
            if n not in first or c[0] < first[n][0]:
                first[n] = c
        graph = self.reverse
        graph.add_node(_SOURCE)
        for n, c in first.items():
            graph.add_edge(_SOURCE, n, w=c[0])
        try:
            pred, dist = nx.dijkstra_predecessor_and_distance(graph, _SOURCE, weight="w")
        finally:
            graph.remove_node(_SOURCE)
        labels: dict[int, Cost] = {}
        for n, d in dist.items():  # settle order: a node's predecessor is settled before it
            if n == _SOURCE:
                continue
            p = pred[n][0]
            if p == _SOURCE:
                labels[n] = first[n]
            else:
                arc, before = graph[p][n], labels[p]
                labels[n] = (d, before[1] + arc["t"], before[2] + arc["l"])
        self._labels[q] = labels
        return labels

    def route(self, p: Place, q: Place) -> Cost:
        """(cost, time, length) of p's cheapest route to q; ``INF`` when there is none."""
        if p.id == q.id:
            return (0.0, 0.0, 0.0)
        labels = self.labels_to(q)
        options = [self.direct(p, q)]
        for n, c in self.exits(p):
            if n in labels:
                options.append(tuple(a + b for a, b in zip(c, labels[n], strict=True)))
        options = [c for c in options if c is not None]
        return min(options, key=lambda c: c[0]) if options else INF

    def nearest(self, defenders: list[Place], havens: list[Place], k: int) -> dict[str, list[tuple]]:
        """{defender id: [(cost, time, length, haven id), ...]} the k cheapest reachable havens, cheapest first."""
        out = {}
        for d in defenders:
            found = [(*self.route(d, h), h.id) for h in havens]
            out[d.id] = sorted((f for f in found if math.isfinite(f[0])), key=lambda f: f[0])[:k]
        return out

    def matrix(self, origins: list[Place], destinations: list[Place]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cost, time, length) arrays (n_origins × n_destinations) of the cheapest routes; ``inf`` = none."""
        out = np.array([[self.route(o, d) for d in destinations] for o in origins], dtype=float)
        return out[..., 0], out[..., 1], out[..., 2]

    def costs_along(self, q: Place, edges: list[EdgeKey], fractions) -> np.ndarray:
        """Cost to q from the points at ``fractions`` of ``edges`` (one fraction per edge; ``inf`` = none)."""
        labels = self.labels_to(q)
        out = np.empty(len(edges))
        for i, (e, f) in enumerate(zip(edges, np.asarray(fractions, dtype=float).tolist(), strict=True)):
            probe = Place("_probe", (0.0, 0.0), edge=e, fraction=f)
            if f <= 0.0 or f >= 1.0:  # an end of the edge is its node
                probe = Place("_probe", (0.0, 0.0), node=e[0] if f <= 0.0 else e[1])
            best = self.direct(probe, q)
            best = math.inf if best is None else best[0]
            for n, c in self.exits(probe):
                if n in labels:
                    best = min(best, c[0] + labels[n][0])
            out[i] = best
        return out

    # ------------------------------------------------------------------ the same, in a havenmap network's indexing
    def on_network(self, net) -> tuple[np.ndarray, np.ndarray]:
        """(routing cost, twin edge index or -1) of every ``net`` edge, from this oracle's graph."""
        if getattr(self, "_net_arrays", (None,))[0] is not net:
            keys = edge_keys(net)
            index = {k: i for i, k in enumerate(keys)}
            w = np.array([self.w[k] for k in keys])
            twin = np.array([index[self.twin[k]] if k in self.twin else -1 for k in keys])
            self._net_arrays = (net, w, twin)
        return self._net_arrays[1], self._net_arrays[2]

    def node_costs(self, net, q: Place) -> np.ndarray:
        """Cost from every ``net`` node (by index) to q; ``inf`` = no route."""
        labels = self.labels_to(q)
        return np.array([labels[n][0] if n in labels else math.inf for n in net.node_id.tolist()])

    def costs_along_edges(self, net, q: Place, edges, fractions) -> np.ndarray:
        """Cost to q from the points at ``fractions`` of ``net`` edges ``edges`` (vectorised :meth:`costs_along`)."""
        w, twin = self.on_network(net)
        edges, f = np.asarray(edges), np.asarray(fractions, dtype=float)
        node = self.node_costs(net, q)
        tw = twin[edges]
        w_back = np.where(tw >= 0, w[np.maximum(tw, 0)], np.inf)
        with np.errstate(invalid="ignore"):
            ahead = _nan_inf((1 - f) * w[edges]) + node[net.edge_v[edges]]
            behind = _nan_inf(f * w_back) + node[net.edge_u[edges]]
            best = np.minimum(ahead, behind)
            best = np.where(f <= 0.0, node[net.edge_u[edges]], np.where(f >= 1.0, node[net.edge_v[edges]], best))
            if not q.at_node:  # the haven's own road, straight to it
                keys = edge_keys(net)
                own = next(i for i, k in enumerate(keys) if k == q.edge)
                g = np.where(edges == own, q.fraction, np.where(tw == own, 1 - q.fraction, np.nan))
                forward = np.where(g >= f, (g - f) * w[edges], np.inf)
                backward = np.where(g < f, (f - g) * w_back, np.inf)
                direct = np.where(np.isnan(g), np.inf, np.minimum(_nan_inf(forward), _nan_inf(backward)))
                best = np.minimum(best, _nan_inf(direct))
        return best


def _nan_inf(x: np.ndarray) -> np.ndarray:
    """0 × inf (a closed edge's empty share) is no way through: inf."""
    return np.where(np.isnan(x), np.inf, x)


# =========================================================================== undirected metres
class UndirectedOracle:
    """Metres along roads ignoring direction (threat kernels, alerts), with the same point placement."""

    def __init__(self, graph: nx.MultiDiGraph):
        self.graph = graph
        self.twin = find_twins(graph)
        self.l = {(u, v, k): float(d["length"]) for u, v, k, d in graph.edges(keys=True, data=True)}
        self.roads = nx.Graph()
        self.roads.add_nodes_from(graph.nodes)
        for (u, v, _), length in self.l.items():
            if u != v and (not self.roads.has_edge(u, v) or length < self.roads[u][v]["l"]):
                self.roads.add_edge(u, v, l=length)

    def ends(self, p: Place) -> list[tuple[int, float]]:
        if p.at_node:
            return [(p.node, 0.0)]
        u, v, _ = p.edge
        length = self.l[p.edge]
        return [(u, p.fraction * length), (v, (1.0 - p.fraction) * length)]

    def _along(self, p: Place, q: Place) -> float:
        if p.at_node or q.at_node:
            return math.inf
        if q.edge == p.edge:
            return abs(q.fraction - p.fraction) * self.l[p.edge]
        if self.twin.get(p.edge) == q.edge:
            return abs(1.0 - q.fraction - p.fraction) * self.l[p.edge]
        return math.inf

    def distances(self, p: Place, others: list[Place], cutoff: float) -> np.ndarray:
        """Road metres from p to each of ``others`` (``inf`` beyond ``cutoff``)."""
        graph = self.roads
        graph.add_node(_SOURCE)
        for n, o in self.ends(p):
            if not graph.has_edge(_SOURCE, n) or o < graph[_SOURCE][n]["l"]:
                graph.add_edge(_SOURCE, n, l=o)
        try:
            dist = nx.single_source_dijkstra_path_length(graph, _SOURCE, cutoff=cutoff, weight="l")
        finally:
            graph.remove_node(_SOURCE)
        out = []
        for q in others:
            best = self._along(p, q)
            for n, o in self.ends(q):
                if n in dist:
                    best = min(best, dist[n] + o)
            out.append(best if best <= cutoff else math.inf)
        return np.array(out)


# =========================================================================== brute force (checks the oracle)
class BruteForce:
    """The points inserted into a fresh copy of the graph as explicit nodes; plain networkx Dijkstra.

    Each directed edge is cut at every point on its physical road (its own points and its twin's, at
    1 - f); a point at a node is that node. Used only to validate :class:`Oracle` on samples.
    """

    def __init__(self, oracle: Oracle, places: list[Place]):
        self.alias = {p.id: (p.node if p.at_node else ("pt", p.id)) for p in places}
        along: dict[EdgeKey, list[tuple[float, object]]] = defaultdict(list)
        for p in places:
            if not p.at_node:
                along[p.edge].append((p.fraction, ("pt", p.id)))
                if p.edge in oracle.twin:
                    along[oracle.twin[p.edge]].append((1.0 - p.fraction, ("pt", p.id)))
        self.graph = nx.MultiDiGraph()
        self.graph.add_nodes_from(oracle.graph.nodes)
        self.graph.add_nodes_from(a for a in self.alias.values())
        for e, w in oracle.w.items():
            if not math.isfinite(w):
                continue
            u, v, _ = e
            cuts = sorted(along.get(e, []), key=lambda c: c[0])
            chain = [(0.0, u), *cuts, (1.0, v)]
            for (f0, a), (f1, b) in itertools.pairwise(chain):
                self.graph.add_edge(a, b, w=w * (f1 - f0))

    def costs_from(self, p: Place, targets: list[Place]) -> np.ndarray:
        dist = nx.single_source_dijkstra_path_length(self.graph, self.alias[p.id], weight="w")
        return np.array([0.0 if q.id == p.id else dist.get(self.alias[q.id], math.inf) for q in targets])


# =========================================================================== placing points on real streets
@dataclass
class Streets:
    """Structure of a real street graph, and points placed where routing bugs live.

    Only the largest weakly connected part is used (havenmap does not snap to tiny fragments), and
    only positions whose nearest road is unambiguous (no other road within ``clear_m``).
    """

    graph: nx.MultiDiGraph
    clear_m: float = 0.5
    twin: dict = field(init=False)

    def __post_init__(self) -> None:
        g = self.graph
        self.twin = find_twins(g)
        self.main = max(nx.weakly_connected_components(g), key=len)
        self.edges = [e for e in g.edges(keys=True) if e[0] in self.main and e[1] in self.main]
        self.oneway = [e for e in self.edges if e not in self.twin and e[0] != e[1]]
        self.oneway_nodes = sorted({n for e in self.oneway for n in e[:2]})
        plain = nx.DiGraph((u, v) for u, v, _ in self.edges if u != v)
        # where the bugs live: a node where a one-way street starts but other streets leave too
        # (a defender there may leave by any), and one where a one-way street ends but others arrive too
        starts = {e[0] for e in self.oneway}
        ends = {e[1] for e in self.oneway}
        self.oneway_starts = sorted(n for n in starts if plain.out_degree(n) >= 2)
        self.oneway_ends = sorted(n for n in ends if plain.in_degree(n) >= 2)
        neighbours = {n: set(plain.predecessors(n)) | set(plain.successors(n)) for n in plain}
        self.border_nodes = sorted(
            n
            for n in self.main
            if n in plain and (plain.in_degree(n) == 0 or plain.out_degree(n) == 0 or len(neighbours[n]) == 1)
        )
        self.nodes = sorted(self.main)
        # one line per physical road, for the "no other road nearby" test
        reps = [e for e in self.edges if e not in self.twin or e < self.twin[e]]
        self._road_of = {e: e for e in reps} | {self.twin[e]: e for e in reps if e in self.twin}
        self._reps = reps
        self._lines = [edge_line(g, e) for e in reps]
        self._tree = shapely.STRtree(self._lines)
        xy = np.array([_xy(g, n) for n in self.nodes])
        near = shapely.STRtree(shapely.points(xy))
        lonely = []
        for i, n in enumerate(self.nodes):
            hits = near.query(shapely.Point(xy[i]).buffer(2.0))
            if len(hits) == 1 and self._clear(xy[i], {self._road_of[e] for e in self._incident(n)}):
                lonely.append(n)
        self.clear_nodes = set(lonely)

    def _incident(self, n) -> list[EdgeKey]:
        g = self.graph
        return [(n, v, k) for v, ks in g[n].items() for k in ks] + [
            (u, n, k) for u, ks in g.pred[n].items() for k in ks
        ]

    def _clear(self, xy, allowed: set) -> bool:
        """No road other than ``allowed`` (representative edges) within ``clear_m`` of xy."""
        pt = shapely.Point(xy)
        for i in self._tree.query(pt.buffer(self.clear_m)):
            if self._reps[i] not in allowed and self._lines[i].distance(pt) <= self.clear_m:
                return False
        return True

    # ------------------------------------------------------------------ single places
    def at_node(self, pid: str, n: int, kind: str = "node") -> Place:
        return Place(pid, _xy(self.graph, n), node=n, kind=kind)

    def along(self, pid: str, e: EdgeKey, fraction: float, kind: str = "mid") -> Place:
        return Place(pid, point_on_edge(self.graph, e, fraction), edge=e, fraction=float(fraction), kind=kind)

    def near_node(self, pid: str, e: EdgeKey, at_start: bool, offset_m: float) -> Place:
        """``offset_m`` along e from its start (or end) node: within the node tolerance, so *at* that node."""
        length = edge_line(self.graph, e).length
        f = offset_m / length if at_start else 1.0 - offset_m / length
        node = e[0] if at_start else e[1]
        return Place(pid, point_on_edge(self.graph, e, f), node=node, edge=e, fraction=f, kind="near-node")

    # ------------------------------------------------------------------ samples
    def sample(self, prefix: str, n: int, seed: int, mix: dict[str, float] | None = None) -> list[Place]:
        """``n`` places: a good share at intersections (one-way ones first), the rest mid-street and at borders.

        ``mix`` shares (normalised): 'oneway_node' (a node where a one-way street starts or ends),
        'oneway_start' / 'oneway_end' (a node where a one-way street starts / ends and other streets
        leave / arrive too),
        'node' (any intersection), 'near_node' (0.2–0.6 m along a one-way street of > 60 m from the
        node where it starts or ends: at that node by the tolerance rule), 'mid' (fraction 0.05–0.95
        of an edge > 20 m), 'beyond' (2–4 m from a node along an edge > 100 m: past the tolerance,
        so mid-street), 'border' (extract borders and dead ends: no way in, no way out, one neighbour).
        """
        mix = mix or {
            "oneway_start": 0.15,
            "oneway_end": 0.15,
            "node": 0.1,
            "near_node": 0.1,
            "mid": 0.35,
            "beyond": 0.05,
            "border": 0.1,
        }
        rng = np.random.default_rng(seed)
        kinds = list(mix)
        counts = np.floor(np.array([mix[k] for k in kinds]) / sum(mix.values()) * n).astype(int)
        counts[kinds.index("mid") if "mid" in kinds else 0] += n - counts.sum()
        out: list[Place] = []
        used_nodes: set = set()
        for kind, count in zip(kinds, counts, strict=True):
            made = 0
            for _ in range(200 * max(count, 1)):
                if made == count:
                    break
                place = self._one(kind, f"{prefix}{len(out)}", rng, used_nodes)
                if place is not None:
                    out.append(place)
                    made += 1
                    if place.at_node:
                        used_nodes.add(place.node)
            assert made == count, f"could not place {count} {kind} points"
        return out

    def _pick(self, rng, items):
        return items[int(rng.integers(len(items)))]

    def _one(self, kind: str, pid: str, rng, used: set) -> Place | None:
        g = self.graph
        pools = {
            "oneway_node": self.oneway_nodes,
            "oneway_start": self.oneway_starts,
            "oneway_end": self.oneway_ends,
            "node": self.nodes,
            "border": self.border_nodes,
        }
        if kind in pools:
            pool = pools[kind]
            n = self._pick(rng, pool)
            return None if n in used or n not in self.clear_nodes else self.at_node(pid, n, kind)
        if kind == "near_node":
            e = self._pick(rng, self.oneway)
            at_start = bool(rng.integers(2))
            node = e[0] if at_start else e[1]
            if g.edges[e]["length"] < 60 or node in used or node not in self.clear_nodes:
                return None
            place = self.near_node(pid, e, at_start, float(rng.uniform(0.2, 0.6)))
        elif kind == "beyond":
            e = self._pick(rng, self.edges)
            length = edge_line(g, e).length
            if length < 100 or e[0] == e[1]:
                return None
            offset = float(rng.uniform(2.0, 4.0))
            f = offset / length if rng.integers(2) else 1.0 - offset / length
            place = self.along(pid, e, f, kind="beyond")
        else:
            e = self._pick(rng, self.edges)
            if g.edges[e]["length"] <= 20:
                return None
            place = self.along(pid, e, float(rng.uniform(0.05, 0.95)))
        road = self._road_of[place.edge]
        allowed = {road} | ({self._road_of[x] for x in self._incident(place.node)} if place.at_node else set())
        return place if self._clear(place.xy, allowed) else None


def random_points_on_edges(net, n: int, prefix: str, seed: int) -> gpd.GeoDataFrame:
    """``n`` points at random positions (5–95 %) along random edges (EPSG:4326), ids prefix0.., for tests
    that need some points but no routing truth (use :meth:`Streets.sample` where the truth matters)."""
    rng = np.random.default_rng(seed)
    edges = rng.integers(0, net.n_edges, n)
    fractions = rng.uniform(0.05, 0.95, n)
    geoms = [
        shapely.LineString(net.edge_coords(e)).interpolate(f, normalized=True)
        for e, f in zip(edges, fractions, strict=True)
    ]
    return gpd.GeoDataFrame({"id": [f"{prefix}{i}" for i in range(n)]}, geometry=geoms, crs=net.crs).to_crs(4326)


# =========================================================================== checks on havenmap's snapping
def edge_keys(net) -> list[EdgeKey]:
    """(u, v, key) of every ``net`` edge, in ``net`` edge order."""
    return list(
        zip(net.node_id[net.edge_u].tolist(), net.node_id[net.edge_v].tolist(), net.edge_key.tolist(), strict=True)
    )


def assert_snapped_as_placed(net, places: list[Place], layer: gpd.GeoDataFrame, twin: dict) -> None:
    """Guard on the test's own placement: havenmap snaps every point onto the road it was put on.

    A node point must snap to an edge at that node, within 1 m of it; a mid-street point to its
    edge (or the twin) at its fraction. Only which edge was chosen is read from havenmap.
    """
    from havenmap.snap import snap_points

    keys = edge_keys(net)
    snapped = snap_points(net, layer, min_component_nodes=0)
    for p, e, f, x, y in zip(
        places, snapped["edge"], snapped["edge_fraction"], snapped["snap_x"], snapped["snap_y"], strict=True
    ):
        got = keys[int(e)]
        if p.at_node:
            assert p.node in got[:2], f"{p}: snapped to {got}, not a street at its node"
            assert math.hypot(x - p.xy[0], y - p.xy[1]) < 1.0, f"{p}: snapped {x, y}"
        elif got == p.edge:
            assert f == pytest.approx(p.fraction, abs=1e-6), f"{p}: snapped at fraction {f}"
        else:
            assert twin.get(p.edge) == got, f"{p}: snapped to {got}, another road"
            assert f == pytest.approx(1.0 - p.fraction, abs=1e-6), f"{p}: snapped at fraction {f} of the twin"


# =========================================================================== comparing havenmap with the oracle
def assert_nearest_matches(result, expected: dict, column: str, k: int, n_havens: int, places=None) -> int:
    """Check a ``nearest_havens`` result against ``Oracle.nearest`` (every failure listed); returns the rows checked.

    ``column`` is the result column holding the routing cost ('travel_time_s' for time, 'distance_m'
    for length, None for other weights: then only the physical time and length are compared).
    Equal costs may pick either haven.
    """
    where = {p.id: p for p in places or []}
    failures, checked = [], 0
    groups = dict(tuple(result.groupby("defender_id")))
    for d, options in expected.items():
        rows = groups[d].sort_values("rank")
        if rows["rank"].tolist() != list(range(1, min(k, n_havens) + 1)):
            failures.append(f"{d}: ranks {rows['rank'].tolist()}")
            continue
        for rank, row in enumerate(rows.itertuples(), start=1):
            got = (
                f"got {row.haven_id} {row.travel_time_s:.3f} s {row.distance_m:.2f} m" if row.reachable else "got none"
            )
            label = f"{where.get(d, d)} rank {rank}"
            if rank > len(options):
                if row.reachable:
                    failures.append(f"{label}: expected no haven, {got}")
                continue
            cost, t, length, h = options[rank - 1]
            want = f"expected {h} {t:.3f} s {length:.2f} m"
            if not row.reachable:
                failures.append(f"{label}: {want}, {got}")
                continue
            same = {o[3]: o for o in options if math.isclose(o[0], cost, rel_tol=1e-6, abs_tol=1e-3)}
            mine = same.get(row.haven_id)
            ok = mine is not None and (
                column is None or math.isclose(getattr(row, column), cost, rel_tol=1e-6, abs_tol=1e-3)
            )
            ok = ok and math.isclose(row.travel_time_s, mine[1], rel_tol=1e-6, abs_tol=1e-3)
            ok = ok and math.isclose(row.distance_m, mine[2], rel_tol=1e-6, abs_tol=1e-3)
            if not ok:
                failures.append(f"{label}: {want}, {got}")
            checked += 1
    assert not failures, f"{len(failures)} wrong rows, e.g.:\n" + "\n".join(failures[:12])
    return checked


def piece_times(net, twin: dict, pieces, edges: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Smallest time the ``reach_edges`` pieces give each point (net edge index, fraction); ``inf`` where none does.

    A piece on the twin of an edge covers the same stretch of road at 1 - f.
    """
    keys = edge_keys(net)
    index = {key: i for i, key in enumerate(keys)}
    twin_of = np.array([index[twin[key]] if key in twin else -1 for key in keys])
    edges = np.asarray(edges)
    fractions = np.asarray(fractions, dtype=float)
    best = np.full(len(edges), np.inf)
    e = pieces["edge"].to_numpy(dtype=np.int64)
    f0, f1 = pieces["fraction_from"].to_numpy(dtype=float), pieces["fraction_to"].to_numpy(dtype=float)
    t0, t1 = pieces["time_from_s"].to_numpy(dtype=float), pieces["time_to_s"].to_numpy(dtype=float)
    order = np.argsort(e, kind="stable")
    e, f0, f1, t0, t1 = e[order], f0[order], f1[order], t0[order], t1[order]
    for own, fr in ((edges, fractions), (twin_of[edges], 1.0 - fractions)):
        lo, hi = np.searchsorted(e, own, "left"), np.searchsorted(e, own, "right")
        lo[own < 0] = hi[own < 0] = 0
        for i in np.flatnonzero(hi > lo):
            j = slice(lo[i], hi[i])
            a, b = np.minimum(f0[j], f1[j]), np.maximum(f0[j], f1[j])
            inside = (fr[i] >= a - 1e-12) & (fr[i] <= b + 1e-12)
            span = np.where(f1[j] != f0[j], f1[j] - f0[j], 1.0)
            t = np.where(f1[j] != f0[j], t0[j] + (t1[j] - t0[j]) * (fr[i] - f0[j]) / span, np.minimum(t0[j], t1[j]))
            if inside.any():
                best[i] = min(best[i], float(t[inside].min()))
    return best
