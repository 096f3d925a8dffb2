"""Snap points onto the road network: the nearest road *edge* and the position along it.

A defender in the middle of a long street starts from that point of the street, not from
whichever intersection happens to be closest, so the route leaves in the right direction.
Points farther from any road than ``max_distance_m`` are reported off-network, not forced
onto a road.
"""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import shapely
from scipy import sparse
from scipy.sparse import csgraph

from . import _checks
from ._graph import node_at
from .errors import InputError, OffNetworkError
from .network import RoadNetwork

__all__ = ["DEFAULT_MAX_SNAP_M", "check_max_snap_m", "snap_layer", "snap_points"]

#: Default snapping threshold, metres: a door-to-street distance in most towns, yet small
#: enough that a point in the wrong district is flagged rather than silently moved.
DEFAULT_MAX_SNAP_M = 250.0


def check_max_snap_m(value: float, option: str = "max_snap_m") -> float:
    """The snapping threshold as a float: a finite distance in metres above 0, else an ``InputError``."""
    return _checks.number(value, option, "the snapping distance in metres", above=0)


def snap_points(
    net: RoadNetwork,
    points: gpd.GeoDataFrame,
    max_distance_m: float = DEFAULT_MAX_SNAP_M,
    *,
    require_any: bool = True,
    min_component_nodes: int | None = None,
) -> gpd.GeoDataFrame:
    """Snap each point to the nearest road edge.

    Parameters
    ----------
    net
        The road network.
    points
        Points in any CRS (with an ``id`` column where available).
    max_distance_m
        Points farther than this from every road (metres, finite, above 0) are off-network.
    require_any
        Raise :class:`~havenmap.errors.OffNetworkError` when *every* point is off-network
        (the layer is probably in the wrong area or CRS).
    min_component_nodes
        Road fragments (weakly connected components) with fewer nodes than this are not
        snapped to, as OSRM does with its small-component filter: extracts clipped at their
        border and untagged gaps leave pieces of road connected to nothing, and a defender
        snapped onto one would look cut off. Default: 1 % of the network's nodes, clamped
        to 5..1,000. Pass 0 to snap to every road.

    Returns
    -------
    geopandas.GeoDataFrame
        A copy of ``points`` with added columns: ``edge`` (index of the directed edge,
        -1 when off-network), ``edge_fraction`` (0 at the edge's start node, 1 at its end),
        ``edge_offset_m`` (metres along the edge geometry), ``node`` (index of the intersection
        the point is at — within 1 m, or 2 % of the edge's length if less, of an end of its
        edge — else -1; see :mod:`havenmap.routing`), ``snap_distance_m`` (metres from the
        point to the road), ``on_network`` (bool), ``snap_x``/``snap_y`` (the snapped position
        in the network CRS; the intersection's position for points at one).
    """
    max_distance_m = check_max_snap_m(max_distance_m, "max_distance_m")
    out = points.copy()
    if len(points) == 0:
        for col, value in (
            ("edge", -1),
            ("edge_fraction", np.nan),
            ("edge_offset_m", np.nan),
            ("node", -1),
            ("snap_distance_m", np.nan),
            ("on_network", False),
            ("snap_x", np.nan),
            ("snap_y", np.nan),
        ):
            out[col] = value
        return out
    geoms = points.geometry.to_crs(net.crs).to_numpy() if points.crs is not None else points.geometry.to_numpy()
    tree, candidates, lines = edge_tree(net, _component_floor(net, min_component_nodes))
    idx, dist = tree.query_nearest(geoms, return_distance=True, all_matches=False)
    position = np.zeros(len(points), dtype=np.int64)
    distance = np.full(len(points), np.inf)
    position[idx[0]] = idx[1]
    distance[idx[0]] = dist
    nearest = candidates[position]
    along = shapely.line_locate_point(lines[position], geoms)
    length = net.geom_length[nearest]
    fraction = np.clip(np.divide(along, length, out=np.zeros_like(along), where=length > 0), 0.0, 1.0)
    snapped = shapely.line_interpolate_point(lines[position], along)

    on = distance <= max_distance_m
    if require_any and not on.any():
        raise OffNetworkError(_all_off_message(net, points, distance, max_distance_m))
    edge = np.where(on, nearest, -1)
    node = node_at(net, edge, fraction)
    xy = np.column_stack([shapely.get_x(snapped), shapely.get_y(snapped)])
    xy[node >= 0] = net.node_xy[node[node >= 0]]
    out["edge"] = edge
    out["edge_fraction"] = np.where(on, fraction, np.nan)
    out["edge_offset_m"] = np.where(on, along, np.nan)
    out["node"] = node
    out["snap_distance_m"] = distance
    out["on_network"] = on
    out["snap_x"] = xy[:, 0]
    out["snap_y"] = xy[:, 1]
    return out


def _component_floor(net: RoadNetwork, min_component_nodes: int | None) -> int:
    if min_component_nodes is not None:
        return int(min_component_nodes)
    return int(np.clip(0.01 * net.n_nodes, 5, 1000))


def edge_tree(net: RoadNetwork, floor: int = 0) -> tuple[shapely.STRtree, np.ndarray, np.ndarray]:
    """STRtree over one geometry per physical road piece, cached on the network.

    Returns (tree, edge index of each geometry, the LineStrings). Pieces in weakly connected
    fragments with fewer than ``floor`` nodes are left out (``floor <= 1``: every road).
    """

    def build() -> tuple[shapely.STRtree, np.ndarray, np.ndarray]:
        candidates = net.undirected_edges
        if floor > 1:
            # structure only: a COO adjacency (O(m) to convert), not net.csr()'s sorted cheapest-edge matrix
            adjacency = sparse.coo_matrix(
                (np.ones(net.n_edges, dtype=np.float32), (net.edge_u, net.edge_v)), shape=(net.n_nodes, net.n_nodes)
            )
            _, label = csgraph.connected_components(adjacency, directed=True, connection="weak")
            size = np.bincount(label)
            candidates = candidates[size[label[net.edge_u[candidates]]] >= min(floor, size.max())]
        lines = net.edge_geometries(candidates)
        return shapely.STRtree(lines), candidates, lines

    return net.cached(("snap_tree", floor), build)


def _all_off_message(net: RoadNetwork, points: gpd.GeoDataFrame, distance: np.ndarray, limit: float) -> str:
    source = points.attrs.get("source", "the points")
    message = (
        f"{source}: all {len(points)} points are farther than {limit:.0f} m from the road network "
        f"(nearest {np.min(distance):,.0f} m)"
    )
    lonlat = points.geometry.to_crs("EPSG:4326") if points.crs is not None else points.geometry
    x, y = shapely.get_x(lonlat.to_numpy()), shapely.get_y(lonlat.to_numpy())
    minx, miny, maxx, maxy = net.bounds_lonlat
    pad = 0.05
    inside_swapped = (y >= minx - pad) & (y <= maxx + pad) & (x >= miny - pad) & (x <= maxy + pad)
    if inside_swapped.mean() > 0.5:
        return message + "; latitude and longitude look swapped: swap the columns (or name them with --lat/--lon)"
    return message + (
        f"; the network covers lon {minx:.4f}..{maxx:.4f}, lat {miny:.4f}..{maxy:.4f}: "
        "check the file is for this area and in EPSG:4326 (or declares its CRS)"
    )


def snap_layer(net: RoadNetwork, layer: gpd.GeoDataFrame, what: str, max_distance_m: float = DEFAULT_MAX_SNAP_M):
    """:func:`snap_points` for a layer of ``what`` (e.g. 'defender') that must have an ``id`` column.

    Points off the network are named in one warning (the first ten, then how many more); the
    layer being entirely off the network is an error (wrong area or CRS).
    """
    if "id" not in layer.columns:
        raise InputError(
            f"{layer.attrs.get('source', 'the ' + what + ' layer')}: no 'id' column; give every {what} an id"
        )
    snapped = snap_points(net, layer, max_distance_m)
    off = ~snapped["on_network"].to_numpy(dtype=bool)
    if off.any():
        ids = snapped["id"].astype(str).to_numpy()[off][:10]
        dist = snapped["snap_distance_m"].to_numpy()[off][:10]
        listed = ", ".join(f"{i} ({d:,.0f} m)" for i, d in zip(ids, dist, strict=True))
        more = f" and {int(off.sum()) - 10:,} more" if off.sum() > 10 else ""
        warnings.warn(
            f"{int(off.sum())} {what}(s) too far from any road, treated as unreachable: {listed}{more}", stacklevel=3
        )
    return snapped
