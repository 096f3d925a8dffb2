"""Independent oracles: networkx computations of what havenmap computes on arrays."""

from __future__ import annotations

from collections import defaultdict

import geopandas as gpd
import networkx as nx
import numpy as np
import shapely


def random_points_on_edges(net, n: int, prefix: str, seed: int) -> gpd.GeoDataFrame:
    """``n`` points placed at random positions along random edges (EPSG:4326), ids prefix0.."""
    rng = np.random.default_rng(seed)
    edges = rng.integers(0, net.n_edges, n)
    fractions = rng.uniform(0.05, 0.95, n)
    geoms = [
        shapely.LineString(net.edge_coords(e)).interpolate(f, normalized=True)
        for e, f in zip(edges, fractions, strict=True)
    ]
    return gpd.GeoDataFrame({"id": [f"{prefix}{i}" for i in range(n)]}, geometry=geoms, crs=net.crs).to_crs(4326)


def split_graph(net, snapped_layers, weights) -> nx.MultiDiGraph:
    """A networkx graph of ``net`` with each snapped point inserted as a node named by its id.

    Built with plain networkx edge removal/insertion, independently of havenmap's splicing.
    """
    graph = nx.MultiDiGraph()
    for i in range(net.n_edges):
        graph.add_edge(int(net.edge_u[i]), int(net.edge_v[i]), key=i, w=float(weights[i]))
    splits = defaultdict(list)
    for snapped in snapped_layers:
        for pid, e, f, on in zip(
            snapped["id"], snapped["edge"], snapped["edge_fraction"], snapped["on_network"], strict=True
        ):
            if not on:
                continue
            splits[int(e)].append((f, pid))
            twin = int(net.edge_twin[e])
            if twin >= 0:
                splits[twin].append((1 - f, pid))
    for e, pieces in splits.items():
        u, v = int(net.edge_u[e]), int(net.edge_v[e])
        graph.remove_edge(u, v, key=e)
        prev, prev_f = u, 0.0
        for f, pid in sorted(pieces):
            graph.add_edge(prev, pid, w=weights[e] * (f - prev_f))
            prev, prev_f = pid, f
        graph.add_edge(prev, v, w=weights[e] * (1 - prev_f))
    return graph


def k_nearest_oracle(graph: nx.MultiDiGraph, defender_ids, haven_ids, k: int):
    """{defender: [(cost, haven), ...] sorted} by networkx Dijkstra from every haven on the reversed graph."""
    reverse = graph.reverse(copy=False)
    dist = {h: nx.single_source_dijkstra_path_length(reverse, h, weight="w") for h in haven_ids if h in graph}
    return {d: sorted((dist[h].get(d, np.inf), h) for h in dist)[:k] for d in defender_ids}
