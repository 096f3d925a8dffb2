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
from .network import RoadNetwork
from .snap import DEFAULT_MAX_SNAP_M, snap_points

__all__ = ["NEAREST_COLUMNS", "nearest_havens", "route_pieces_to_line"]

#: Columns of :func:`nearest_havens` (besides ``geometry``), in order.
NEAREST_COLUMNS = [
    "defender_id", "rank", "haven_id", "haven_name", "travel_time_s", "distance_m", "reachable",
    "reason", "snap_distance_m",
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
    records, geoms = [], []
    haven_ids = h_snap["id"].astype(str).to_numpy()
    haven_names = (h_snap["name"] if "name" in h_snap else h_snap["id"]).astype(str).to_numpy()
    for j in range(n_d):
        node = spliced.n_base + j
        on = bool(d_snap["on_network"].iat[j])
        for r in range(k_eff):
            row = {"defender_id": str(d_snap["id"].iat[j]), "rank": r + 1,
                   "snap_distance_m": float(d_snap["snap_distance_m"].iat[j])}
            label = int(found.label[node, r]) if on else -1
            if label < 0:
                row.update(haven_id=None, haven_name=None, travel_time_s=np.nan, distance_m=np.nan,
                           reachable=False, reason=_reason(on, r, row["snap_distance_m"], max_snap_m))
                records.append(row)
                geoms.append(None)
                continue
            pieces = lookup.pieces(found.path(node, r))
            h = haven_rows[label]
            row.update(
                haven_id=haven_ids[h], haven_name=haven_names[h],
                travel_time_s=float(np.sum(net.edge_time[spliced.parent[pieces]] * _span(spliced, pieces))),
                distance_m=float(np.sum(net.edge_length[spliced.parent[pieces]] * _span(spliced, pieces))),
                reachable=True, reason="",
            )
            records.append(row)
            geoms.append(route_pieces_to_line(net, spliced, pieces))
    frame = gpd.GeoDataFrame(pd.DataFrame.from_records(records, columns=NEAREST_COLUMNS),
                             geometry=geoms, crs=net.crs)
    frame["rank"] = frame["rank"].astype("int64")
    frame["reachable"] = frame["reachable"].astype(bool)
    return frame.to_crs("EPSG:4326")


def _span(spliced: _routing.SplicedGraph, pieces: np.ndarray) -> np.ndarray:
    return spliced.f1[pieces] - spliced.f0[pieces]


def _reason(on_network: bool, rank: int, snap_m: float, limit: float) -> str:
    if not on_network:
        return f"off network: {snap_m:,.0f} m from the nearest road (limit {limit:,.0f} m)"
    if rank == 0:
        return "no road route to any haven (cut off by one-way streets, closures or a disconnected network)"
    return f"fewer than {rank + 1} havens reachable by road"


def _warn_off_network(snapped: gpd.GeoDataFrame, what: str) -> None:
    off = snapped.loc[~snapped["on_network"]]
    if len(off):
        ids = ", ".join(f"{i} ({d:,.0f} m)" for i, d in zip(off["id"].astype(str), off["snap_distance_m"],
                                                           strict=True))
        warnings.warn(f"{len(off)} {what}(s) too far from any road, treated as unreachable: {ids}",
                      stacklevel=3)


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


def route_pieces_to_line(net: RoadNetwork, spliced: _routing.SplicedGraph, pieces: np.ndarray):
    """Join spliced pieces into one LineString following the road geometry (network CRS)."""
    if len(pieces) == 0:
        return None
    parts = [_piece_coords(net, int(spliced.parent[p]), float(spliced.f0[p]), float(spliced.f1[p]))
             for p in pieces]
    coords = np.vstack(parts)
    keep = np.r_[True, np.any(np.diff(coords, axis=0) != 0, axis=1)]
    coords = coords[keep]
    if len(coords) == 1:
        coords = np.vstack([coords, coords])
    return shapely.LineString(coords)


def _piece_coords(net: RoadNetwork, edge: int, f0: float, f1: float) -> np.ndarray:
    coords = net.edge_coords(edge)
    if f0 <= 0.0 and f1 >= 1.0:
        return coords
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(coords, axis=0).T))])
    total = cum[-1]
    d0, d1 = f0 * total, f1 * total
    inner = coords[(cum > d0) & (cum < d1)]
    start = np.array([np.interp(d0, cum, coords[:, 0]), np.interp(d0, cum, coords[:, 1])])
    end = np.array([np.interp(d1, cum, coords[:, 0]), np.interp(d1, cum, coords[:, 1])])
    return np.vstack([start, inner, end])
