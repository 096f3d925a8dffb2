"""Each defender's nearest reachable safe havens, with the road route to each.

One multi-source Dijkstra from all havens over the compact graph answers every defender
at once (plus one more pass per extra rank for ``k > 1``); see :mod:`havenmap._routing`.
"""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import _routing
from .network import RoadNetwork, _ragged_index
from .snap import DEFAULT_MAX_SNAP_M, snap_points

__all__ = ["NEAREST_COLUMNS", "nearest_havens", "route_pieces_to_line", "routes_to_lines"]

#: Columns of :func:`nearest_havens` (besides ``geometry``), in order.
NEAREST_COLUMNS = [
    "defender_id",
    "rank",
    "haven_id",
    "haven_name",
    "travel_time_s",
    "distance_m",
    "reachable",
    "reason",
    "snap_distance_m",
]


def nearest_havens(
    net: RoadNetwork,
    defenders: gpd.GeoDataFrame,
    havens: gpd.GeoDataFrame,
    *,
    k: int = 1,
    cost: str = "time",
    edge_weights: np.ndarray | None = None,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
    risk: np.ndarray | None = None,
) -> gpd.GeoDataFrame:
    """Find each defender's ``k`` nearest reachable havens by road.

    Parameters
    ----------
    net
        Road network.
    defenders, havens
        Point layers with an ``id`` column (havens may have ``name``), any CRS.
    k
        Number of nearest havens per defender (rank 1 = nearest).
    cost
        What "nearest" minimises: 'time' (travel time, s) or 'length' (road distance, m).
    edge_weights
        Optional per-edge cost overriding ``cost`` (``inf`` closes an edge), e.g. a
        closure or danger-aware cost model. Reported times and distances stay physical.
    max_snap_m
        Points farther than this from any road (metres) are off-network.
    risk
        Optional per-edge risk (see :func:`havenmap.costs.edge_risk`): adds the column
        ``exposure`` = sum of risk × metres along each route (NaN if unreachable).

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326, one row per defender and rank ``1..min(k, number of havens)``:
        ``defender_id``, ``rank``, ``haven_id``, ``haven_name``, ``travel_time_s`` (s),
        ``distance_m`` (m), ``reachable`` (bool), ``reason`` (why not reachable; empty if
        reachable), ``snap_distance_m`` (defender to road, m), ``geometry`` (the road route
        as a LineString from the defender's snapped position to the haven's; None if
        unreachable). Every defender appears: none is dropped.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    d_snap = snap_points(net, defenders, max_snap_m)
    h_snap = snap_points(net, havens, max_snap_m)
    _warn_off_network(d_snap, "defender")
    _warn_off_network(h_snap, "haven")

    n_d = len(d_snap)
    spliced = _routing.splice(
        net,
        np.concatenate([d_snap["edge"].to_numpy(), h_snap["edge"].to_numpy()]),
        np.concatenate([d_snap["edge_fraction"].to_numpy(), h_snap["edge_fraction"].to_numpy()]),
    )
    weights = net.edge_cost(cost) if edge_weights is None else np.asarray(edge_weights, dtype=np.float64)
    matrix, piece_of_entry = spliced.matrix(weights)
    haven_rows = np.flatnonzero(h_snap["on_network"].to_numpy())
    haven_nodes = spliced.n_base + n_d + haven_rows
    k_eff = min(k, len(h_snap))
    found = _routing.k_nearest_sources(matrix, haven_nodes, k_eff)

    lookup = _EntryLookup(matrix, piece_of_entry)
    haven_ids = h_snap["id"].astype(str).to_numpy()
    haven_names = (h_snap["name"] if "name" in h_snap else h_snap["id"]).astype(str).to_numpy()
    defender_ids = d_snap["id"].astype(str).to_numpy()
    on_network = d_snap["on_network"].to_numpy(dtype=bool)
    snap_m = d_snap["snap_distance_m"].to_numpy(dtype=float)

    rows = pd.DataFrame(
        {
            "defender_id": np.repeat(defender_ids, k_eff),
            "rank": np.tile(np.arange(1, k_eff + 1), n_d),
            "snap_distance_m": np.repeat(snap_m, k_eff),
        }
    )
    label = found.label[spliced.n_base : spliced.n_base + n_d].copy()
    label[~on_network] = -1
    label = label.reshape(-1)
    ok = label >= 0
    route_pieces = [lookup.pieces(found.path(spliced.n_base + i // k_eff, i % k_eff)) for i in np.flatnonzero(ok)]
    span = [_span(spliced, p) for p in route_pieces]
    haven = haven_rows[label[ok]]
    rows["haven_id"] = pd.Series(pd.NA, index=rows.index, dtype="string")
    rows["haven_name"] = pd.Series(pd.NA, index=rows.index, dtype="string")
    rows.loc[ok, "haven_id"] = haven_ids[haven]
    rows.loc[ok, "haven_name"] = haven_names[haven]
    rows["travel_time_s"] = np.nan
    rows["distance_m"] = np.nan
    parents = [spliced.parent[p] for p in route_pieces]
    rows.loc[ok, "travel_time_s"] = [float(net.edge_time[e] @ f) for e, f in zip(parents, span, strict=True)]
    rows.loc[ok, "distance_m"] = [float(net.edge_length[e] @ f) for e, f in zip(parents, span, strict=True)]
    rows["reachable"] = ok
    rows["reason"] = ""
    for i in np.flatnonzero(~ok):
        j = i // k_eff
        rows.at[i, "reason"] = _reason(bool(on_network[j]), i % k_eff, snap_m[j], max_snap_m)
    geometry = np.full(len(rows), None, dtype=object)
    geometry[ok] = routes_to_lines(net, spliced, route_pieces)
    columns = NEAREST_COLUMNS
    if risk is not None:  # route exposure (coverage/costs helper): risk × metres along the route
        risk = np.asarray(risk, dtype=np.float64)
        rows["exposure"] = np.nan
        rows.loc[ok, "exposure"] = [
            float((risk[e] * net.edge_length[e]) @ f) for e, f in zip(parents, span, strict=True)
        ]
        columns = [*NEAREST_COLUMNS, "exposure"]
    frame = gpd.GeoDataFrame(rows[columns], geometry=geometry, crs=net.crs)
    return frame.to_crs("EPSG:4326")


def _span(spliced: _routing.SplicedGraph, pieces: np.ndarray) -> np.ndarray:
    return spliced.f1[pieces] - spliced.f0[pieces]


def _reason(on_network: bool, rank: int, snap_m: float, limit: float) -> str:
    if not on_network:
        return f"off network: {snap_m:,.0f} m from the nearest road (limit {limit:,.0f} m)"
    if rank == 0:
        return (
            "no road route to any haven (cut off by one-way streets, closures, the risk cap or a disconnected network)"
        )
    return f"fewer than {rank + 1} havens reachable by road"


def _warn_off_network(snapped: gpd.GeoDataFrame, what: str) -> None:
    off = snapped.loc[~snapped["on_network"]]
    if len(off):
        ids = ", ".join(f"{i} ({d:,.0f} m)" for i, d in zip(off["id"].astype(str), off["snap_distance_m"], strict=True))
        warnings.warn(f"{len(off)} {what}(s) too far from any road, treated as unreachable: {ids}", stacklevel=3)


class _EntryLookup:
    """Map consecutive path nodes (a, b) to the spliced piece the CSR entry a → b came from."""

    def __init__(self, matrix, piece_of_entry: np.ndarray) -> None:
        self.n = matrix.shape[0]
        rows = np.repeat(np.arange(self.n, dtype=np.int64), np.diff(matrix.indptr))
        self.keys = rows * self.n + matrix.indices
        self.piece_of_entry = piece_of_entry

    def pieces(self, nodes: list[int]) -> np.ndarray:
        arr = np.asarray(nodes, dtype=np.int64)
        if len(arr) < 2:
            return np.zeros(0, dtype=np.int64)
        pos = np.searchsorted(self.keys, arr[:-1] * self.n + arr[1:])
        return self.piece_of_entry[pos]


def routes_to_lines(net: RoadNetwork, spliced: _routing.SplicedGraph, routes: list[np.ndarray]) -> np.ndarray:
    """LineStrings (network CRS) following the road geometry of each route's spliced pieces.

    Vectorised: whole edges are copied from the network's flat coordinate array in one
    gather; only the few partial pieces (at a route's two ends, or where it passes another
    snapped point) are cut individually.
    """
    if not routes:
        return np.zeros(0, dtype=object)
    pieces = np.concatenate(routes)
    route_of_piece = np.repeat(np.arange(len(routes)), [len(r) for r in routes])
    edge, f0, f1 = spliced.parent[pieces], spliced.f0[pieces], spliced.f1[pieces]
    starts = net.geom_offsets[edge].copy()
    counts = net.geom_offsets[edge + 1] - starts
    partial = np.flatnonzero((f0 > 0.0) | (f1 < 1.0))
    source = net.geom_xy
    if len(partial):
        extra, lengths = _cut_pieces(net, edge[partial], f0[partial], f1[partial])
        starts[partial] = len(net.geom_xy) + np.concatenate([[0], np.cumsum(lengths)[:-1]])
        counts[partial] = lengths
        source = np.vstack([net.geom_xy, extra])
    coords = source[_ragged_index(starts, counts)]
    owner = np.repeat(route_of_piece, counts)
    keep = np.ones(len(coords), dtype=bool)
    keep[1:] = (owner[1:] != owner[:-1]) | np.any(coords[1:] != coords[:-1], axis=1)
    coords, owner = coords[keep], owner[keep]
    single = np.flatnonzero(np.bincount(owner, minlength=len(routes)) == 1)
    if len(single):  # a route of zero length (defender at the haven): a degenerate 2-point line
        coords = np.vstack([coords, coords[np.searchsorted(owner, single)]])
        owner = np.concatenate([owner, single])
        order = np.argsort(owner, kind="stable")
        coords, owner = coords[order], owner[order]
    return shapely.linestrings(coords, indices=owner)


def route_pieces_to_line(net: RoadNetwork, spliced: _routing.SplicedGraph, pieces: np.ndarray):
    """One route's LineString (network CRS), or None for an empty route."""
    if len(pieces) == 0:
        return None
    return routes_to_lines(net, spliced, [np.asarray(pieces)])[0]


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
    coords[_ragged_index(offsets[:-1] + 1, inner)] = net.geom_xy[_ragged_index(p0, inner)]
    return coords, counts


def _interpolate(xy, vcum, first, last, after, dist):
    """Point at distance ``dist`` along each edge, given the index of the first vertex beyond it."""
    a = np.clip(after - 1, first, np.maximum(last - 1, first))
    b = np.minimum(a + 1, last)
    span = vcum[b] - vcum[a]
    t = np.clip(np.divide(dist - vcum[a], span, out=np.zeros_like(span), where=span > 0), 0.0, 1.0)
    return xy[a] + (xy[b] - xy[a]) * t[:, None]
