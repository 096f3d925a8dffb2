"""Each defender's nearest reachable safe havens, with the road route to each.

:func:`assign_havens` answers the question once for a whole layer of defenders — one
multi-source search from all havens over the compact graph, plus one more pass per extra
rank (see :func:`havenmap._graph.nearest`) — and the one :class:`HavenAssignment` it returns
feeds the routes (:meth:`HavenAssignment.table`, :func:`nearest_havens`), coverage and N-1
(:func:`havenmap.coverage.coverage_of`), defenders' status and the maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd

from . import _graph
from .errors import InputError
from .network import RoadNetwork
from .snap import DEFAULT_MAX_SNAP_M, snap_layer

__all__ = ["NEAREST_COLUMNS", "HavenAssignment", "assign_havens", "assign_snapped", "nearest_havens"]

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

NO_ROUTE = "no road route to any haven (cut off by one-way streets, closures, the risk cap or a disconnected network)"


@dataclass(eq=False)
class HavenAssignment:
    """Every defender's ``k`` nearest distinct reachable havens (see :func:`assign_havens`).

    Attributes
    ----------
    defender_ids, haven_ids, haven_names : (D,), (H,), (H,) object
        Ids (as text) in layer order; havens' names (their id where the layer has none).
    haven : (D, k) int64
        Index into ``haven_ids`` of each defender's nearest, second-nearest, ... haven (-1: none).
    time_s, cost : (D, k) float64
        Physical travel time (s) and cost-model value of the route to that haven (``inf``: none).
    defender_on, haven_on : bool arrays
        On the road network (within the snapping threshold).
    snap_distance_m : (D,) float64
        Defender to the nearest road, metres.
    max_snap_m : float
        The snapping threshold used, metres.
    """

    net: RoadNetwork
    defender_ids: np.ndarray
    haven_ids: np.ndarray
    haven_names: np.ndarray
    haven: np.ndarray
    time_s: np.ndarray
    cost: np.ndarray
    defender_on: np.ndarray
    haven_on: np.ndarray
    snap_distance_m: np.ndarray
    max_snap_m: float
    cost_name: str
    _search: _graph.Nearest = field(repr=False)
    _found: _graph.PlaceCosts = field(repr=False)
    _defender_xy: np.ndarray = field(repr=False)

    @property
    def k(self) -> int:
        """Havens per defender."""
        return self.haven.shape[1]

    @property
    def n_defenders(self) -> int:
        """Number of defenders."""
        return len(self.defender_ids)

    def reasons(self, rank: int = 0) -> np.ndarray:
        """Why each defender has no haven at ``rank`` (0-based), in words; None where it has one."""
        out = np.full(self.n_defenders, None, dtype=object)
        missing = self.haven[:, rank] < 0
        off = missing & ~self.defender_on
        out[off] = [
            f"off network: {d:,.0f} m from the nearest road (limit {self.max_snap_m:,.0f} m)"
            for d in self.snap_distance_m[off]
        ]
        cut = missing & self.defender_on
        out[cut] = NO_ROUTE if rank == 0 else f"fewer than {rank + 1} havens reachable by road"
        return out

    def routes(self, k: int | None = None) -> _graph.Pieces:
        """Road pieces of every defender's route to each of its first ``k`` havens (route ``d * k + r``)."""
        k = self.k if k is None else min(int(k), self.k)
        points = np.repeat(np.arange(self.n_defenders), k)
        ranks = np.tile(np.arange(k), self.n_defenders)
        return self._search.routes(self._found, points, ranks)

    def table(self, k: int | None = None, *, risk: np.ndarray | None = None, geometry: bool = True) -> gpd.GeoDataFrame:
        """The :func:`nearest_havens` table for the first ``k`` havens of every defender (EPSG:4326).

        ``risk`` (per edge) adds ``exposure``, the sum of risk × metres along each route.
        """
        k = self.k if k is None else min(int(k), self.k)
        n = self.n_defenders
        label = self.haven[:, :k].reshape(-1)
        ok = label >= 0
        pieces = self.routes(k)
        rows = pd.DataFrame(
            {
                "defender_id": np.repeat(self.defender_ids, k),
                "rank": np.tile(np.arange(1, k + 1), n),
                "haven_id": pd.array(np.where(ok, self.haven_ids[np.maximum(label, 0)], None), dtype="string"),
                "haven_name": pd.array(np.where(ok, self.haven_names[np.maximum(label, 0)], None), dtype="string"),
                "travel_time_s": np.where(ok, self.time_s[:, :k].reshape(-1), np.nan),
                "distance_m": np.where(ok, pieces.total(self.net.edge_length), np.nan),
                "reachable": ok,
                "reason": np.column_stack([self.reasons(r) for r in range(k)]).reshape(-1),
                "snap_distance_m": np.repeat(self.snap_distance_m, k),
            },
            columns=NEAREST_COLUMNS,
        )
        columns = list(NEAREST_COLUMNS)
        if risk is not None:
            risk = np.asarray(risk, dtype=np.float64)
            rows["exposure"] = np.where(ok, pieces.total(risk * self.net.edge_length), np.nan)
            columns.append("exposure")
        geoms = np.full(len(rows), None, dtype=object)
        if geometry:
            start = np.repeat(self._defender_xy, k, axis=0)
            lines = _graph.pieces_to_lines(self.net, pieces, start)
            geoms[ok] = lines[ok]
        return gpd.GeoDataFrame(rows[columns], geometry=geoms, crs=self.net.crs).to_crs("EPSG:4326")


def assign_havens(
    net: RoadNetwork,
    defenders: gpd.GeoDataFrame,
    havens: gpd.GeoDataFrame,
    *,
    k: int = 1,
    cost: str = "time",
    edge_weights: np.ndarray | None = None,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
    routes: bool = True,
) -> HavenAssignment:
    """Every defender's ``k`` nearest distinct reachable havens by road, answered once.

    Parameters
    ----------
    net
        Road network.
    defenders, havens
        Point layers with an ``id`` column (havens may have ``name``), any CRS.
    k
        Havens per defender (rank 1 = nearest).
    cost
        What "nearest" minimises: 'time' (travel time, s) or 'length' (road distance, m).
    edge_weights
        Optional per-edge cost overriding ``cost`` (``inf`` closes an edge): a closure or
        danger-aware cost model from :mod:`havenmap.costs`. Reported times stay physical.
    max_snap_m
        Points farther than this from any road (metres) are off-network (with a warning).
    routes
        Keep what is needed to draw the routes (:meth:`HavenAssignment.table`); coverage alone
        does not need it.

    Returns
    -------
    HavenAssignment
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if cost not in ("time", "length"):
        raise InputError(f"cost {cost!r}: use 'time' or 'length'")
    d = snap_layer(net, defenders, "defender", max_snap_m)
    h = snap_layer(net, havens, "haven", max_snap_m)
    graph = _graph.cost_graph(net, cost, edge_weights)
    found = assign_snapped(graph, d, h, k=k, max_snap_m=max_snap_m, routes=routes)
    found.cost_name = "custom" if edge_weights is not None else cost
    return found


def assign_snapped(
    graph: _graph.CostGraph,
    defenders: pd.DataFrame,
    havens: pd.DataFrame,
    *,
    k: int = 1,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
    routes: bool = True,
) -> HavenAssignment:
    """:func:`assign_havens` on layers already snapped (:func:`havenmap.snap.snap_layer`) and a built cost graph.

    For many runs over the same defenders and cost model (what-if sweeps): the points are
    snapped, and the cost graph (:func:`havenmap._graph.cost_graph`) built, once.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    net = graph.net
    d, h = defenders, havens
    search = _graph.nearest(graph, _graph.Places.from_snapped(net, h), k, paths=routes)
    found = search.at(_graph.Places.from_snapped(net, d))
    names = h["name"] if "name" in h.columns else h["id"]
    return HavenAssignment(
        net=net,
        defender_ids=d["id"].astype(str).to_numpy(dtype=object),
        haven_ids=h["id"].astype(str).to_numpy(dtype=object),
        haven_names=names.astype(str).to_numpy(dtype=object),
        haven=found.label,
        time_s=found.time,
        cost=found.cost,
        defender_on=d["on_network"].to_numpy(dtype=bool),
        haven_on=h["on_network"].to_numpy(dtype=bool),
        snap_distance_m=d["snap_distance_m"].to_numpy(dtype=np.float64),
        max_snap_m=float(max_snap_m),
        cost_name="time" if graph.time_is_cost else "custom",
        _search=search,
        _found=found,
        _defender_xy=np.column_stack([d["snap_x"].to_numpy(float), d["snap_y"].to_numpy(float)]),
    )


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
    """Find each defender's ``k`` nearest reachable havens by road, with the route to each.

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
        ``distance_m`` (m), ``reachable`` (bool), ``reason`` (why not reachable; None if
        reachable), ``snap_distance_m`` (defender to road, m), ``geometry`` (the road route
        as a LineString from the defender's road position to the haven's; None if
        unreachable). Every defender appears: none is dropped. See :mod:`havenmap.routing`
        for how points at intersections and on one-way streets are handled.
    """
    found = assign_havens(
        net, defenders, havens, k=min(k, max(len(havens), 1)), cost=cost, edge_weights=edge_weights,
        max_snap_m=max_snap_m,
    )  # fmt: skip
    return found.table(risk=risk)
