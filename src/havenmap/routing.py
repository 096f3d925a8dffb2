"""Road distances and travel times between any point layers, with the rules every analysis shares.

Points on the network
---------------------
Every point — defender, haven, incident, base, patrol target, siting candidate — is snapped to
the nearest road edge (:func:`havenmap.snap_points`) and then placed by the same rules:

* A point within :data:`NODE_TOLERANCE_M` (1 m), or :data:`NODE_TOLERANCE_SHARE` (2 %) of its
  edge's length if that is less, of an intersection *is* at that intersection: it leaves by,
  and is reached from, every street there.
* A point part-way along a two-way street may go either way; along a one-way street only the
  legal direction (on ``drive`` networks): a haven part-way along a one-way street is reached
  only from behind. ``walk`` networks have no one-way streets. Two points on the same street
  connect directly along it.
* Points farther than the snapping threshold (``max_snap_m``, 250 m) from every road are off
  the network: reported, never forced onto a road. Tiny disconnected road fragments are not
  snapped to.

Routes minimise a cost — ``cost="time"`` (s) or ``"length"`` (m), or per-edge ``edge_weights``
from :mod:`havenmap.costs` (closures, danger) — and report the physical travel time and length
along the route chosen. All of it runs through one routing core on compact arrays
(``scipy.sparse.csgraph``): one search per origin here, one multi-source search for nearest
havens and coverage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd

from . import _graph
from ._graph import NODE_TOLERANCE_M, NODE_TOLERANCE_SHARE
from .network import RoadNetwork
from .snap import DEFAULT_MAX_SNAP_M, snap_layer

__all__ = ["NODE_TOLERANCE_M", "NODE_TOLERANCE_SHARE", "TravelMatrix", "network_distances", "travel_matrix"]


@dataclass(eq=False)
class TravelMatrix:
    """Travel between two point layers (see :func:`travel_matrix`).

    Attributes
    ----------
    origin_ids, destination_ids : (A,), (B,) object
        Ids as text, in layer order.
    cost : (A, B) float64
        Cost-model value of the cheapest route (``inf``: no route, or beyond ``max_cost``).
    time_s : (A, B) float64
        Physical travel time along that route, seconds.
    """

    origin_ids: np.ndarray
    destination_ids: np.ndarray
    cost: np.ndarray
    time_s: np.ndarray
    _matrix: _graph.Matrix = field(repr=False)

    @property
    def length_m(self) -> np.ndarray:
        """Road length of every route, metres (A, B); computed on first use."""
        return self._matrix.length_m

    def to_frame(self) -> pd.DataFrame:
        """One row per pair with a route: ``origin_id``, ``destination_id``, ``cost``, ``time_s``, ``length_m``."""
        i, j = np.nonzero(np.isfinite(self.cost))
        return pd.DataFrame(
            {
                "origin_id": self.origin_ids[i],
                "destination_id": self.destination_ids[j],
                "cost": self.cost[i, j],
                "time_s": self.time_s[i, j],
                "length_m": self.length_m[i, j],
            }
        )


def travel_matrix(
    net: RoadNetwork,
    origins: gpd.GeoDataFrame,
    destinations: gpd.GeoDataFrame,
    *,
    cost: str = "time",
    edge_weights: np.ndarray | None = None,
    max_cost: float = np.inf,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
) -> TravelMatrix:
    """Cheapest routes by road from every origin to every destination, honouring one-way streets.

    Parameters
    ----------
    net
        Road network.
    origins, destinations
        Point layers with an ``id`` column, any CRS.
    cost, edge_weights
        'time' (s) or 'length' (m), or a per-edge cost array (``inf`` = closed road).
    max_cost
        Pairs costlier than this (cost units) are left out (``inf``): bounds the searches.
    max_snap_m
        Points farther than this from any road (metres) are off-network: no route.

    Returns
    -------
    TravelMatrix
    """
    a = snap_layer(net, origins, "origin", max_snap_m)
    b = snap_layer(net, destinations, "destination", max_snap_m)
    graph = _graph.cost_graph(net, cost, edge_weights)
    found = _graph.travel_matrix(
        graph, _graph.Places.from_snapped(net, a), _graph.Places.from_snapped(net, b), limit=float(max_cost)
    )
    return TravelMatrix(
        a["id"].astype(str).to_numpy(dtype=object), b["id"].astype(str).to_numpy(dtype=object), found.cost,
        found.time_s, found,
    )  # fmt: skip


def network_distances(
    net: RoadNetwork,
    a: gpd.GeoDataFrame,
    b: gpd.GeoDataFrame,
    max_distance_m: float,
    *,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
) -> pd.DataFrame:
    """Every pair of points of ``a`` and ``b`` within ``max_distance_m`` metres of road, direction ignored.

    The distance threat kernels and alerts use: along the roads, both ways, whatever one-way
    signs say (risk sits on the road, not on a direction of travel).

    Returns
    -------
    pandas.DataFrame
        ``a_id``, ``b_id``, ``distance_m`` (metres), one row per pair within the distance,
        sorted by ``a_id`` position then ``b_id`` position.
    """
    sa = snap_layer(net, a, "point", max_snap_m)
    sb = snap_layer(net, b, "point", max_snap_m)
    i, j, d = _graph.pairs_within(
        net, _graph.Places.from_snapped(net, sa), _graph.Places.from_snapped(net, sb), float(max_distance_m)
    )
    return pd.DataFrame(
        {
            "a_id": sa["id"].astype(str).to_numpy(dtype=object)[i],
            "b_id": sb["id"].astype(str).to_numpy(dtype=object)[j],
            "distance_m": d,
        }
    )
