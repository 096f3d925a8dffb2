"""Road networks as compact arrays: nodes, directed edges, costs, geometries and CSR matrices.

A :class:`RoadNetwork` is the one form every havenmap algorithm runs on. It is read
straight from OSM files (XML, bz2 XML, PBF) into numpy arrays, or converted from a user's
osmnx graph (GraphML or in memory), whose directions and ``length``/``travel_time`` values
are respected. The networkx/osmnx view is built on demand with
:meth:`RoadNetwork.to_networkx`.

Units: coordinates in metres in a local UTM CRS (``RoadNetwork.crs``), lengths in metres,
travel times in seconds, speeds in km/h.

Nodes are OSM intersections and way ends; an edge follows the road between two nodes and
keeps the intermediate vertices as its geometry (the shape osmnx's simplified graphs have).
A two-way street is two directed edges (twins) sharing one geometry; a one-way street is one.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from scipy import sparse

from . import _layers_util as _u
from . import _osm
from ._arrays import ragged_index
from ._lines import find_twins
from .errors import NetworkError, listing

if TYPE_CHECKING:  # networkx is imported where a graph is built or read: it costs 0.2 s at start-up
    import networkx as nx

__all__ = ["RoadNetwork", "check_source", "from_bbox", "from_graph", "from_place", "load_network", "utm_crs"]

OSM_SUFFIXES = (".osm", ".osm.bz2", ".osm.gz", ".xml", ".osm.pbf", ".pbf", ".osm.xml")


@dataclass(eq=False)
class RoadNetwork:
    """A directed road network held as arrays.

    Attributes
    ----------
    crs : pyproj.CRS
        Projected metric CRS of ``node_xy`` and edge geometries.
    network_type : str
        'drive', 'walk', 'all' or 'graph' (converted from a user's graph).
    node_id : (n,) int64
        OSM node ids (or the graph's node labels when integers).
    node_xy : (n, 2) float64
        Projected coordinates, metres.
    node_lonlat : (n, 2) float64
        Longitude, latitude (EPSG:4326).
    edge_u, edge_v : (m,) int64
        Edge endpoints as node *indices* (not OSM ids).
    edge_key : (m,) int64
        osmnx key distinguishing parallel edges.
    edge_length : (m,) float64
        Edge length along the road, metres.
    edge_time : (m,) float64
        Travel time, seconds.
    edge_speed : (m,) float64
        Travel speed, km/h.
    edge_twin : (m,) int64
        Index of the reverse edge sharing this edge's geometry, or -1 (one-way).
    geom_offsets : (m + 1,) int64, geom_xy : (p, 2) float64
        Edge ``i``'s geometry is ``geom_xy[geom_offsets[i]:geom_offsets[i+1]]`` (projected), from u to v.
    edge_attrs : pandas.DataFrame
        One row per edge: ``highway``, ``name``, ``osmid``, ``oneway`` where known.
    build_info : dict
        How the network was built, for its report (:func:`havenmap.lines.network_report`):
        empty for OSM files and graphs; for road line layers the joins made, crossings left
        unjoined, pieces dropped and where each speed came from.
    """

    crs: pyproj.CRS
    network_type: str
    node_id: np.ndarray
    node_xy: np.ndarray
    node_lonlat: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    edge_key: np.ndarray
    edge_length: np.ndarray
    edge_time: np.ndarray
    edge_speed: np.ndarray
    edge_twin: np.ndarray
    geom_offsets: np.ndarray
    geom_xy: np.ndarray
    edge_attrs: pd.DataFrame
    source: str = "<memory>"
    build_info: dict[str, Any] = field(default_factory=dict, repr=False)
    _graph: Any = field(default=None, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ sizes
    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.node_id)

    @property
    def n_edges(self) -> int:
        """Number of directed edges."""
        return len(self.edge_u)

    def __repr__(self) -> str:
        return (
            f"RoadNetwork({self.network_type!r}, {self.n_nodes:,} nodes, {self.n_edges:,} edges, "
            f"crs={self.crs.to_string()!r}, source={self.source!r})"
        )

    # ------------------------------------------------------------------ derived data
    def cached(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """Derived data kept with the network: ``build()`` on first use of ``key``, then the same object.

        Search indexes, cost graphs and neighbourhoods depend only on the network's arrays,
        which are not changed after construction, so they are built once per network.
        """
        try:
            return self._cache[key]
        except KeyError:
            value = self._cache[key] = build()
            return value

    def without_caches(self) -> RoadNetwork:
        """The same network without its derived data (search graphs, trees, cost graphs).

        What is sent to a Dask worker: the arrays only, half the bytes; the worker rebuilds what it uses.
        """
        return dataclasses.replace(self, _cache={}, _graph=None)

    # ------------------------------------------------------------------ costs
    def edge_cost(self, cost: str = "time") -> np.ndarray:
        """Per-edge cost array: 'time' (seconds) or 'length' (metres)."""
        if cost == "time":
            return self.edge_time
        if cost == "length":
            return self.edge_length
        raise ValueError(f"unknown cost {cost!r}: use 'time' or 'length'")

    def csr(self, weights: np.ndarray | None = None, cost: str = "time") -> sparse.csr_matrix:
        """CSR adjacency matrix (n × n) of the cheapest edge per node pair.

        ``weights`` (one per edge, ``inf`` or NaN = edge closed) overrides ``cost``.
        """
        from ._graph import cost_graph

        return cost_graph(self, cost, weights).csr(reverse=False).matrix

    # ------------------------------------------------------------------ geometry
    @cached_property
    def geom_length(self) -> np.ndarray:
        """Planar length of each edge geometry in the projected CRS, metres."""
        seg = np.hypot(*np.diff(self.geom_xy, axis=0).T)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        return cum[self.geom_offsets[1:] - 1] - cum[self.geom_offsets[:-1]]

    @cached_property
    def vertex_cum(self) -> np.ndarray:
        """Planar length (m) along ``geom_xy``, cumulated over all edges with no jump between them.

        The distance along edge ``i`` of its vertex ``j`` is ``vertex_cum[j] - vertex_cum[geom_offsets[i]]``;
        the array is non-decreasing, so positions along edges can be found with ``searchsorted``.
        """
        seg = np.hypot(*np.diff(self.geom_xy, axis=0).T)
        seg[self.geom_offsets[1:-1] - 1] = 0.0  # no segment between consecutive edges
        return np.concatenate([[0.0], np.cumsum(seg)])

    def edge_coords(self, i: int) -> np.ndarray:
        """Projected vertex coordinates of edge ``i`` (u → v), shape (p, 2)."""
        return self.geom_xy[self.geom_offsets[i] : self.geom_offsets[i + 1]]

    def edge_geometries(self, edges: np.ndarray | None = None) -> np.ndarray:
        """Shapely LineStrings (projected) for ``edges`` (all edges by default)."""
        idx = np.arange(self.n_edges) if edges is None else np.asarray(edges)
        counts = self.geom_offsets[idx + 1] - self.geom_offsets[idx]
        flat = ragged_index(self.geom_offsets[idx], counts)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        return shapely.from_ragged_array(shapely.GeometryType.LINESTRING, self.geom_xy[flat], (offsets,))

    def points_along(self, edge: np.ndarray, fraction: np.ndarray) -> np.ndarray:
        """Projected (x, y) of the points at ``fraction`` (of planar length) along directed edges ``edge``."""
        edge = np.asarray(edge, dtype=np.int64)
        cum = self.vertex_cum
        start = self.geom_offsets[edge]
        last = self.geom_offsets[edge + 1] - 2  # the edge's last segment's first vertex
        target = cum[start] + np.clip(fraction, 0.0, 1.0) * (cum[last + 1] - cum[start])
        j = start.copy()
        bent = last > start  # straight edges have one segment: no search
        if bent.any():
            j[bent] = np.clip(np.searchsorted(cum, target[bent], side="right") - 1, start[bent], last[bent])
        length = cum[j + 1] - cum[j]
        t = np.divide(target - cum[j], length, out=np.zeros_like(target), where=length > 0)
        xy = self.geom_xy
        return xy[j] + np.clip(t, 0.0, 1.0)[:, None] * (xy[j + 1] - xy[j])

    @cached_property
    def canonical_edge(self) -> np.ndarray:
        """Per directed edge: the directed edge standing for its physical road (itself, or the lower-index twin)."""
        idx = np.arange(self.n_edges)
        return np.where((self.edge_twin >= 0) & (self.edge_twin < idx), self.edge_twin, idx)

    @cached_property
    def undirected_edges(self) -> np.ndarray:
        """One directed edge per physical road piece (a one-way edge, or the lower-index twin)."""
        return np.flatnonzero(self.canonical_edge == np.arange(self.n_edges))

    @cached_property
    def bounds_lonlat(self) -> tuple[float, float, float, float]:
        """(min lon, min lat, max lon, max lat) of the nodes."""
        lo = self.node_lonlat.min(axis=0)
        hi = self.node_lonlat.max(axis=0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    # ------------------------------------------------------------------ frames
    def edges_gdf(self, to_crs: Any = None, *, undirected: bool = False) -> gpd.GeoDataFrame:
        """Edges as a GeoDataFrame (``undirected=True``: one row per physical road piece).

        Columns: ``u``, ``v`` (node ids), ``key``, ``length`` (m), ``travel_time`` (s),
        ``speed_kph``, the ``edge_attrs`` columns (``highway``, ``name``, ``osmid``, ...),
        ``geometry`` (LineString). CRS: the network's, or ``to_crs``.
        """
        frame = gpd.GeoDataFrame(
            {
                "u": self.node_id[self.edge_u],
                "v": self.node_id[self.edge_v],
                "key": self.edge_key,
                "length": self.edge_length,
                "travel_time": self.edge_time,
                "speed_kph": self.edge_speed,
                **{c: self.edge_attrs[c].to_numpy() for c in self.edge_attrs.columns},
            },
            geometry=self.edge_geometries(),
            crs=self.crs,
        )
        if undirected:
            frame = frame.iloc[self.undirected_edges]
        return frame if to_crs is None else frame.to_crs(to_crs)

    def nodes_gdf(self, to_crs: Any = None) -> gpd.GeoDataFrame:
        """Nodes as a GeoDataFrame: ``osmid``, ``lon``, ``lat``, ``geometry`` (Point)."""
        frame = gpd.GeoDataFrame(
            {"osmid": self.node_id, "lon": self.node_lonlat[:, 0], "lat": self.node_lonlat[:, 1]},
            geometry=shapely.points(self.node_xy),
            crs=self.crs,
        )
        return frame if to_crs is None else frame.to_crs(to_crs)

    def to_networkx(self) -> nx.MultiDiGraph:
        """The network as an osmnx-style ``nx.MultiDiGraph`` (projected; built on demand, cached).

        Nodes carry ``x``, ``y`` (metres), ``lon``, ``lat``; edges ``length`` (m),
        ``travel_time`` (s), ``speed_kph``, ``geometry`` and the OSM attributes. Graph
        attribute ``crs``. For a network converted from a user's graph, that graph is returned.
        """
        if self._graph is not None:
            return self._graph
        import networkx as nx

        graph = nx.MultiDiGraph(crs=self.crs, network_type=self.network_type)
        for i, nid in enumerate(self.node_id.tolist()):
            x, y = self.node_xy[i]
            lon, lat = self.node_lonlat[i]
            graph.add_node(nid, x=float(x), y=float(y), lon=float(lon), lat=float(lat))
        geoms = self.edge_geometries()
        attrs = self.edge_attrs.to_dict("records")
        ids = self.node_id
        for i in range(self.n_edges):
            data = {k: v for k, v in attrs[i].items() if v is not None and v == v}
            data.update(
                length=float(self.edge_length[i]),
                travel_time=float(self.edge_time[i]),
                speed_kph=float(self.edge_speed[i]),
                geometry=geoms[i],
            )
            graph.add_edge(int(ids[self.edge_u[i]]), int(ids[self.edge_v[i]]), key=int(self.edge_key[i]), **data)
        self._graph = graph
        return graph

    # ------------------------------------------------------------------ nodes
    def node_index(self, osm_ids: Any) -> np.ndarray:
        """Node indices of the given node ids (KeyError naming the first unknown id)."""
        ids = np.asarray(osm_ids)
        order = np.argsort(self.node_id)
        pos = np.searchsorted(self.node_id, ids, sorter=order)
        pos = np.clip(pos, 0, len(order) - 1)
        found = self.node_id[order[pos]] == ids
        if not np.all(found):
            raise KeyError(f"node id {ids[~found][0]!r} is not in the network")
        return order[pos]


# ---------------------------------------------------------------------- projection
def utm_crs(lon: float, lat: float) -> pyproj.CRS:
    """The WGS 84 / UTM zone CRS containing (lon, lat)."""
    zone = int(np.floor((lon + 180.0) / 6.0)) % 60 + 1
    return pyproj.CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def _project(lonlat: np.ndarray, crs: pyproj.CRS) -> np.ndarray:
    transformer = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x, y = transformer.transform(lonlat[:, 0], lonlat[:, 1])
    return np.column_stack([x, y])


# ---------------------------------------------------------------------- loading
def load_network(
    source: str | os.PathLike[str] | nx.MultiDiGraph,
    network_type: str = "drive",
    *,
    walk_speed_kph: float = _osm.WALK_SPEED_KPH,
    line_options: Any = None,
) -> RoadNetwork:
    """Load a road network from a file or an osmnx graph.

    Parameters
    ----------
    source
        ``.osm``, ``.osm.bz2``, ``.osm.pbf`` (OSM data, filtered to ``network_type``),
        a road line layer (``.shp``, ``.gpkg``, ``.geojson``, ``.parquet``, ``.fgb``: see
        :mod:`havenmap.lines`), ``.graphml`` (an osmnx graph, used as given), or an
        in-memory ``nx.MultiDiGraph`` following osmnx conventions (used as given).
    network_type
        'drive' (one-ways honoured, speeds from ``maxspeed`` or road type) or 'walk'
        (every road both ways at ``walk_speed_kph``), or 'all'. Ignored for graphs.
    walk_speed_kph
        Walking speed for walk networks, km/h.
    line_options
        A :class:`havenmap.lines.LineOptions` (layer, snap tolerance, attribute columns...)
        for line layers; settings other than the defaults are an error for other sources.

    Returns
    -------
    RoadNetwork
    """
    from . import lines

    opts = line_options if line_options is not None else lines.LineOptions()
    if not isinstance(source, (str, os.PathLike)):
        import networkx as nx

        if not isinstance(source, nx.Graph):
            raise NetworkError(
                f"cannot load a network from {type(source).__name__!r} data: "
                "give a file path or an osmnx nx.MultiDiGraph"
            )
        _no_line_options(opts, "an osmnx graph")
        return from_graph(source)
    path = Path(source)
    kind = check_source(path, network_type)
    if path.name.lower().endswith(lines.LINE_SUFFIXES):
        return lines.read_lines(path, options=opts.replace(network_type=network_type, walk_speed_kph=walk_speed_kph))
    _no_line_options(opts, path.name)
    if kind == "graph":
        return _load_graphml(path)
    return from_osm_file(path, network_type, walk_speed_kph=walk_speed_kph)


def check_source(path: str | os.PathLike[str], network_type: str = "drive") -> str:
    """Check a network file can be loaded, without reading it (cheap: run it before other work).

    Returns
    -------
    str
        The ``network_type`` the loaded network will have: ``network_type`` for an OSM file or
        a road line layer, ``'graph'`` for a GraphML file (used as given, whatever
        ``network_type`` says).

    Raises
    ------
    havenmap.errors.NetworkError
        Missing file, a folder, an unknown format, an unknown network type.
    """
    from . import lines

    path = Path(path)
    if not path.exists():
        raise NetworkError(f"{path}: network file not found; check the path and the spelling")
    if path.is_dir():
        raise NetworkError(f"{path}: is a folder; give the network file (.osm, .osm.bz2, .osm.pbf, .graphml, .shp...)")
    name = path.name.lower()
    if name.endswith(".graphml"):
        return "graph"
    if not name.endswith(OSM_SUFFIXES + lines.LINE_SUFFIXES):
        raise NetworkError(
            f"{path}: unknown network format; use an OSM extract (.osm, .osm.bz2, .osm.pbf), a road line layer "
            f"({', '.join(lines.LINE_SUFFIXES)}) or an osmnx .graphml"
        )
    if name.endswith(OSM_SUFFIXES) and network_type not in _osm.NETWORK_TYPES:
        raise NetworkError(f"unknown network type {network_type!r}: use {listing(map(repr, _osm.NETWORK_TYPES))}")
    return network_type


def _no_line_options(opts: Any, what: str) -> None:
    used = opts.line_specific
    if used:
        raise NetworkError(
            f"{used[0]} (--{used[0].replace('_', '-')}) applies to road line layers (.shp, .gpkg, ...), "
            f"not to {what}; leave it out"
        )


def _load_graphml(path: Path) -> RoadNetwork:
    import osmnx as ox

    try:
        graph = ox.load_graphml(path)
    except Exception as exc:  # osmnx raises a variety of parse errors
        raise NetworkError(
            f"{path}: cannot read it as an osmnx GraphML ({_u.one_line(exc)}); check the file is complete "
            "(save it with osmnx.save_graphml or 'havenmap download')"
        ) from exc
    net = _from_graph(graph, str(path))
    net.source = str(path)
    return net


def from_osm_file(
    path: str | os.PathLike[str], network_type: str = "drive", *, walk_speed_kph: float = _osm.WALK_SPEED_KPH
) -> RoadNetwork:
    """Build a :class:`RoadNetwork` from an OSM XML or PBF file (see :func:`load_network`)."""
    ways = _osm.read_ways(str(path), network_type)
    net = _from_ways(ways, network_type, walk_speed_kph)
    net.source = str(path)
    return net


def _from_ways(ways: _osm.OsmWays, network_type: str, walk_speed_kph: float) -> RoadNetwork:
    refs, offsets = ways.refs, ways.offsets
    seg_start, seg_end, seg_way = split_paths(refs, offsets)
    lonlat = np.column_stack([ways.lon, ways.lat])
    at_node = np.zeros(len(refs), dtype=bool)
    at_node[seg_start] = at_node[seg_end] = True
    center = lonlat[at_node].mean(axis=0)
    crs = utm_crs(float(center[0]), float(center[1]))
    forward, backward = _osm.way_directions(ways.tags, network_type)
    tags = ways.tags
    attrs = pd.DataFrame(
        {
            "osmid": ways.way_id,
            "highway": pd.array(tags["highway"], dtype="string"),
            "name": pd.array(tags["name"], dtype="string"),
            "oneway": ~(forward & backward),
            "maxspeed": pd.array(tags["maxspeed"], dtype="string"),
        }
    )
    return assemble_network(
        refs,
        lonlat,
        _project(lonlat, crs),
        seg_start,
        seg_end,
        forward[seg_way],
        backward[seg_way],
        _osm.way_speeds(tags, network_type, walk_speed_kph)[seg_way],
        attrs.iloc[seg_way].reset_index(drop=True),
        crs=crs,
        network_type=network_type,
    )


def split_paths(point_id: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut vertex paths into road pieces between graph nodes.

    A node is a path end or a point that occurs more than once (an intersection: the same
    ``point_id`` at several positions). Interior vertices stay as geometry, as in osmnx's
    simplified graphs.

    Parameters
    ----------
    point_id : (p,) int64
        Identity of the point at every vertex position; equal ids are the same place.
    offsets : (w + 1,) int64
        Path ``i`` owns positions ``offsets[i]:offsets[i+1]`` (at least two each).

    Returns
    -------
    seg_start, seg_end, seg_path : (s,) int64
        First and last vertex position of each piece and the path it belongs to.
    """
    n_paths = len(offsets) - 1
    path_of_pos = np.repeat(np.arange(n_paths), np.diff(offsets))
    _, inverse = np.unique(point_id, return_inverse=True)
    is_node = np.bincount(inverse)[inverse] >= 2
    is_node[offsets[:-1]] = True
    is_node[offsets[1:] - 1] = True
    pos = np.flatnonzero(is_node)
    same_path = path_of_pos[pos[:-1]] == path_of_pos[pos[1:]]
    seg_start, seg_end = pos[:-1][same_path], pos[1:][same_path]
    return seg_start, seg_end, path_of_pos[seg_start]


def assemble_network(
    point_id: np.ndarray,
    lonlat: np.ndarray,
    xy: np.ndarray,
    seg_start: np.ndarray,
    seg_end: np.ndarray,
    seg_forward: np.ndarray,
    seg_backward: np.ndarray,
    seg_speed: np.ndarray,
    seg_attrs: pd.DataFrame,
    *,
    crs: pyproj.CRS,
    network_type: str,
) -> RoadNetwork:
    """Build a :class:`RoadNetwork` from road pieces cut out of vertex paths (see :func:`split_paths`).

    Every piece becomes a forward edge (vertex order) where ``seg_forward``, a backward
    edge where ``seg_backward``; a piece open both ways gives twin edges sharing its
    geometry. Lengths are great-circle metres along the vertices (as osmnx), times follow
    from ``seg_speed`` (km/h). Node ids are the sorted distinct ``point_id`` of piece ends.

    Parameters
    ----------
    point_id : (p,) int64
        Identity of the point at every vertex position.
    lonlat, xy : (p, 2) float64
        Vertex longitude/latitude and projected coordinates (metres, ``crs``).
    seg_start, seg_end : (s,) int64
        First and last vertex position of every piece (consecutive positions of one path).
    seg_forward, seg_backward : (s,) bool
        Directions open on every piece.
    seg_speed : (s,) float64
        Travel speed, km/h.
    seg_attrs : pandas.DataFrame
        One row per piece; becomes ``edge_attrs``.
    """
    step = _osm.haversine_m(lonlat[:-1, 0], lonlat[:-1, 1], lonlat[1:, 0], lonlat[1:, 1])
    cum = np.concatenate([[0.0], np.cumsum(step)])
    seg_length = cum[seg_end] - cum[seg_start]
    fwd = np.flatnonzero(seg_forward)
    bwd = np.flatnonzero(seg_backward)

    node_ids, node_index = np.unique(point_id[np.concatenate([seg_start, seg_end])], return_inverse=True)
    seg_u, seg_v = node_index[: len(seg_start)], node_index[len(seg_start) :]
    node_pos = np.zeros(len(node_ids), dtype=np.int64)
    node_pos[seg_u] = seg_start
    node_pos[seg_v] = seg_end

    edge_seg = np.concatenate([fwd, bwd])
    reverse = np.concatenate([np.zeros(len(fwd), bool), np.ones(len(bwd), bool)])
    edge_u = np.where(reverse, seg_v[edge_seg], seg_u[edge_seg])
    edge_v = np.where(reverse, seg_u[edge_seg], seg_v[edge_seg])

    twin = np.full(len(edge_seg), -1, dtype=np.int64)
    both = np.flatnonzero(seg_forward & seg_backward)
    fwd_pos = np.full(len(seg_start), -1, dtype=np.int64)
    fwd_pos[fwd] = np.arange(len(fwd))
    bwd_pos = np.full(len(seg_start), -1, dtype=np.int64)
    bwd_pos[bwd] = len(fwd) + np.arange(len(bwd))
    twin[fwd_pos[both]] = bwd_pos[both]
    twin[bwd_pos[both]] = fwd_pos[both]

    geom_counts = (seg_end - seg_start + 1)[edge_seg]
    geom_offsets = np.concatenate([[0], np.cumsum(geom_counts)])
    flat = ragged_index(seg_start[edge_seg], geom_counts)
    # reversed edges walk their piece backwards: mirror positions within each edge's run
    rev_rep = np.repeat(reverse, geom_counts)
    start_rep = np.repeat(seg_start[edge_seg], geom_counts)
    end_rep = np.repeat(seg_end[edge_seg], geom_counts)
    flat = np.where(rev_rep, start_rep + end_rep - flat, flat)

    edge_speed = np.asarray(seg_speed, dtype=np.float64)[edge_seg]
    edge_length = seg_length[edge_seg]
    return RoadNetwork(
        crs=crs,
        network_type=network_type,
        node_id=node_ids,
        node_xy=xy[node_pos],
        node_lonlat=lonlat[node_pos],
        edge_u=edge_u,
        edge_v=edge_v,
        edge_key=_parallel_keys(edge_u, edge_v),
        edge_length=edge_length,
        edge_time=edge_length / (edge_speed / 3.6),
        edge_speed=edge_speed,
        edge_twin=twin,
        geom_offsets=geom_offsets,
        geom_xy=xy[flat],
        edge_attrs=seg_attrs.iloc[edge_seg].reset_index(drop=True),
    )


def _parallel_keys(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """osmnx-style keys: 0, 1, ... among edges sharing (u, v)."""
    order = np.lexsort((v, u))
    uu, vv = u[order], v[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (uu[1:] != uu[:-1]) | (vv[1:] != vv[:-1])
    group_start = np.maximum.accumulate(np.where(new, np.arange(len(order)), 0))
    keys = np.empty(len(order), dtype=np.int64)
    keys[order] = np.arange(len(order)) - group_start
    return keys


# ---------------------------------------------------------------------- from osmnx graphs
def from_graph(graph: nx.MultiDiGraph) -> RoadNetwork:
    """Convert an osmnx-style graph to a :class:`RoadNetwork`, respecting it as given.

    Edge directions are kept; existing ``length`` (m) and ``travel_time`` (s) values are
    used; missing ones are computed (length from geometry, speed from ``speed_kph``,
    ``maxspeed`` or road type). Unprojected graphs are projected to local UTM. The graph
    itself is not modified and is returned by :meth:`RoadNetwork.to_networkx`.

    Raises
    ------
    havenmap.errors.NetworkError
        No nodes or edges, node labels that are not integers, nodes without ``x``/``y``, and
        a ``length`` or ``travel_time`` that is negative, infinite or not a number (naming
        the edge).
    """
    return _from_graph(graph, None)


def _from_graph(graph: nx.MultiDiGraph, label: str | None) -> RoadNetwork:
    """:func:`from_graph`; errors start with ``label`` (the GraphML file) when given."""
    try:
        return _graph_arrays(graph)
    except NetworkError as exc:
        if label is None:
            raise
        raise NetworkError(f"{label}: {exc}") from None


def _graph_arrays(graph: nx.MultiDiGraph) -> RoadNetwork:
    import networkx as nx

    if graph.number_of_nodes() == 0 or graph.number_of_edges() == 0:
        raise NetworkError("the graph has no nodes or no edges")
    if not graph.is_directed():
        graph = nx.MultiDiGraph(graph.to_directed())
    graph_crs = pyproj.CRS.from_user_input(graph.graph.get("crs", "EPSG:4326"))
    labels = list(graph.nodes)
    try:
        node_id = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise NetworkError("graph node labels must be integers (osmnx uses OSM node ids)") from exc
    try:
        raw = np.array([(d["x"], d["y"]) for _, d in graph.nodes(data=True)], dtype=np.float64)
    except KeyError as exc:
        raise NetworkError("every graph node needs 'x' and 'y' attributes (osmnx convention)") from exc

    if graph_crs.is_geographic:
        lonlat = raw
        crs = utm_crs(*lonlat.mean(axis=0))
        xy = _project(lonlat, crs)
    else:
        crs = graph_crs
        xy = raw
        back = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        lonlat = np.column_stack(back.transform(raw[:, 0], raw[:, 1]))
    to_xy = pyproj.Transformer.from_crs(graph_crs, crs, always_xy=True)

    position = {label: i for i, label in enumerate(labels)}
    edges = list(graph.edges(keys=True, data=True))
    n_edges = len(edges)
    edge_u = np.fromiter((position[e[0]] for e in edges), dtype=np.int64, count=n_edges)
    edge_v = np.fromiter((position[e[1]] for e in edges), dtype=np.int64, count=n_edges)
    keys = np.array([e[2] if isinstance(e[2], (int, np.integer)) else 0 for e in edges], dtype=np.int64)

    coords = []
    for u, v, _, data in edges:
        geom = data.get("geometry")
        if geom is not None:
            c = np.asarray(geom.coords, dtype=np.float64)[:, :2]
            c = c if graph_crs == crs else np.column_stack(to_xy.transform(c[:, 0], c[:, 1]))
        else:
            c = np.vstack([xy[position[u]], xy[position[v]]])
        coords.append(c)
    geom_offsets = np.concatenate([[0], np.cumsum([len(c) for c in coords])]).astype(np.int64)
    geom_xy = np.vstack(coords)

    planar = np.array([np.hypot(*np.diff(c, axis=0).T).sum() for c in coords])
    length = _edge_numbers(edges, "length", "metres")
    length = np.where(np.isfinite(length), length, planar)
    speed = np.array([_number(d.get("speed_kph"), np.nan) for *_, d in edges])
    missing = ~np.isfinite(speed) | (speed <= 0)
    if missing.any():
        speed[missing] = [_graph_edge_speed(edges[i][3]) for i in np.flatnonzero(missing)]
    time = _edge_numbers(edges, "travel_time", "seconds")
    time = np.where(np.isfinite(time), time, length / (speed / 3.6))

    attrs = pd.DataFrame(
        {
            "osmid": [_first(d.get("osmid")) for *_, d in edges],
            "highway": pd.array([_first(d.get("highway")) for *_, d in edges], dtype="string"),
            "name": pd.array([_first(d.get("name")) for *_, d in edges], dtype="string"),
            "oneway": [bool(d.get("oneway", False)) for *_, d in edges],
        }
    )
    net = RoadNetwork(
        crs=crs,
        network_type="graph",
        node_id=node_id,
        node_xy=xy,
        node_lonlat=lonlat,
        edge_u=edge_u,
        edge_v=edge_v,
        edge_key=keys,
        edge_length=length,
        edge_time=time,
        edge_speed=speed,
        edge_twin=find_twins(edge_u, edge_v, geom_xy, geom_offsets),
        geom_offsets=geom_offsets,
        geom_xy=geom_xy,
        edge_attrs=attrs,
        _graph=graph,
    )
    return net


def _edge_numbers(edges: list[tuple[Any, Any, Any, dict[str, Any]]], key: str, unit: str) -> np.ndarray:
    """Edge attribute ``key`` as floats, NaN where an edge has none (to be computed).

    A value that is there but negative, infinite or not a number is refused, naming the edge:
    it would make routes shorter than their roads (or break the shortest-path search).
    """
    values = np.full(len(edges), np.nan)
    bad: list[int] = []
    for i, (*_, data) in enumerate(edges):
        raw = data.get(key)
        raw = (raw[0] if raw else None) if isinstance(raw, list) else raw
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = np.nan
        if not (np.isfinite(value) and value >= 0):
            bad.append(i)
        values[i] = value
    if bad:
        u, v, k, data = edges[bad[0]]
        raw = data.get(key)
        value = float(values[bad[0]])
        problem = "is negative" if value < 0 else "is infinite" if np.isinf(value) else "is not a number"
        others = f" (and {len(bad) - 1:,} more edges)" if len(bad) > 1 else ""
        raise NetworkError(
            f"edge (u={u}, v={v}, key={k}): {key} {_u.show(raw)} {problem}{others}; give every edge a {key} "
            f"in {unit}, 0 or more, or remove the attribute to have it computed"
        )
    return values


def _number(value: Any, default: float) -> float:
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if np.isfinite(out) else default


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _graph_edge_speed(data: dict[str, Any]) -> float:
    maxspeed = data.get("maxspeed")
    values = maxspeed if isinstance(maxspeed, list) else [maxspeed]
    parsed = [_osm.parse_maxspeed(str(m)) for m in values if m is not None]
    parsed = [p for p in parsed if np.isfinite(p) and p > 0]
    if parsed:
        return float(np.mean(parsed))
    return _osm.DRIVE_SPEED_KPH.get(str(_first(data.get("highway"))), _osm.DEFAULT_DRIVE_SPEED_KPH)


def from_place(query: str | dict[str, str], network_type: str = "drive") -> RoadNetwork:
    """Download the road network of a place name through osmnx (needs the internet; only on request).

    The graph is kept whole (``retain_all``) and simplified; speeds and travel times come
    from osmnx's ``add_edge_speeds``/``add_edge_travel_times``.
    """
    import osmnx as ox

    return _download(
        lambda: ox.graph_from_place(query, network_type=network_type, simplify=True, retain_all=True), f"osm:{query}"
    )


def from_bbox(bbox: tuple[float, float, float, float], network_type: str = "drive") -> RoadNetwork:
    """Download the road network inside ``bbox`` = (west, south, east, north), degrees, through osmnx."""
    import osmnx as ox

    west, south, east, north = bbox
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise NetworkError(f"bbox {bbox}: give west,south,east,north in degrees with west < east, south < north")
    return _download(
        lambda: ox.graph_from_bbox(
            (west, south, east, north), network_type=network_type, simplify=True, retain_all=True
        ),
        f"osm:bbox{tuple(bbox)}",
    )


def _download(fetch, label: str) -> RoadNetwork:
    import osmnx as ox

    try:
        graph = fetch()
    except Exception as exc:  # network failures, geocoding misses, empty areas
        raise NetworkError(f"OSM download for {label} failed: {exc}") from exc
    graph = ox.add_edge_travel_times(ox.add_edge_speeds(graph, fallback=_osm.DEFAULT_DRIVE_SPEED_KPH))
    net = from_graph(graph)
    net.source = label
    return net
