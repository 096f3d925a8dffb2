"""Cost models over the same road network: closures (barriers) and danger-aware travel cost.

A cost model is a new per-edge array of weights — ``inf`` closes an edge — that
:func:`havenmap.nearest_havens` (``edge_weights=``) and :mod:`havenmap.coverage` take.
The network itself is never modified.

Closures (:func:`read_barriers`, :func:`closure_mask`)
    Barriers come from a vector file (GeoJSON, GeoPackage, GeoParquet; any CRS) or a CSV of
    points (``id``, latitude, longitude), and may mix:

    * **points** (checkpoints) close the road they sit on: the nearest edge(s) within
      ``point_tolerance_m`` (default 20 m; every edge within 1 m of the nearest one, so a
      checkpoint on an intersection closes all roads meeting there);
    * **lines** (blocked roads, cordons) close every edge they cross or run along; touching
      an edge only at its end node does not close it, so a line drawn along a blocked road
      leaves its cross streets open;
    * **polygons** (no-go areas) close every edge that intersects them.

    A closed edge is closed in both directions and as a whole: someone standing on it cannot
    use it either.

Danger (:func:`edge_risk`, :func:`danger_weights`)
    A per-edge ``risk`` (float >= 0; the threat module produces one, a user can supply one)
    turns "fastest" into "fastest acceptable": ``cost = time × (1 + alpha · risk)``, and
    edges with ``risk > max_risk`` are forbidden. Risk comes as an array aligned with the
    edges, or a table/GeoJSON of edges with ``u, v, key, risk`` (OSM node ids and osmnx key
    as in :meth:`RoadNetwork.edges_gdf`) or ``edge, risk`` (edge index).

:func:`cost_weights` combines both. Bad barrier and risk files raise
:class:`~havenmap.errors.InputError` naming the file, the row or feature and the column.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from . import _layers_util as _u
from .errors import InputError, listing
from .network import RoadNetwork
from .snap import edge_tree

__all__ = [
    "DEFAULT_POINT_TOLERANCE_M",
    "closure_mask",
    "cost_weights",
    "danger_weights",
    "edge_risk",
    "read_barriers",
    "read_risk_table",
    "route_exposure",
]

#: How far (metres) a checkpoint may lie from the road it closes.
DEFAULT_POINT_TOLERANCE_M = 20.0
#: Edges within this many metres of a checkpoint's nearest edge are closed with it.
_POINT_TIE_M = 1.0
#: A risk row whose geometry lies farther than this (metres) from its matched edge is refused.
_RISK_GEOMETRY_TOLERANCE_M = 50.0

PathLike = str | os.PathLike[str]


# ---------------------------------------------------------------------- barriers
def read_barriers(source: PathLike | gpd.GeoDataFrame, *, label: str | None = None) -> gpd.GeoDataFrame:
    """Read barriers (closures) from a file or a GeoDataFrame, checked.

    Parameters
    ----------
    source
        GeoJSON/GeoPackage/GeoParquet with point, line and/or polygon features (any declared
        CRS; GeoJSON is EPSG:4326), a CSV of checkpoints (``id``, latitude, longitude), or an
        in-memory GeoDataFrame (no CRS: EPSG:4326 if the coordinates are degrees).
    label
        Name of an in-memory frame in error messages.

    Returns
    -------
    geopandas.GeoDataFrame
        ``barrier_id`` (str: the ``id`` column, else the 1-based feature number), ``kind``
        ('point', 'line' or 'polygon'), ``geometry`` (polygons made valid); the input's CRS.

    Raises
    ------
    havenmap.errors.InputError
        Unreadable file, no features, a missing/empty geometry or one that is not a point,
        line or polygon, no CRS with projected-looking coordinates.
    """
    if isinstance(source, gpd.GeoDataFrame):
        frame, src = _u.prepare_frame(source, label or source.attrs.get("source", "<barriers>"))
        frame = gpd.GeoDataFrame(frame, geometry=source.geometry.name, crs=source.crs)
        src = _u.Source(src.label, "geojson")  # count features, not rows
    else:
        path = os.fspath(source)
        if _u.file_format(Path(path), str(path)) in ("csv", "tsv"):
            from .layers import read_points

            points = read_points(path)
            frame = gpd.GeoDataFrame({"id": points["id"]}, geometry=points.geometry, crs=points.crs)
            frame.index = pd.RangeIndex(1, len(frame) + 1)
            src = _u.Source(str(path), "csv")
        else:
            frame, src = _u.load(path, text_columns=("id",))
            if not isinstance(frame, gpd.GeoDataFrame):
                raise src.fail(
                    "has no geometry; give barriers as GeoJSON/GeoPackage features "
                    "or a CSV of points with latitude/longitude"
                )
    _u.require_rows(frame, src)
    geoms = frame.geometry.to_numpy()
    missing = np.array([g is None for g in geoms]) | shapely.is_empty(geoms)
    if missing.any():
        row = int(frame.index[np.flatnonzero(missing)[0]])
        more = src.more(int(missing.sum()) - 1)
        raise InputError(
            f"{src.loc(row, frame.geometry.name)}: the geometry is empty{more}; "
            "give every barrier a point, line or polygon"
        )
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    nan = ~np.isfinite(coords).all(axis=1)
    if nan.any():
        row = int(frame.index[owner[np.flatnonzero(nan)[0]]])
        raise InputError(
            f"{src.loc(row, frame.geometry.name)}: a coordinate is not a number (NaN or infinite); "
            "fix or remove the feature"
        )
    types = shapely.get_type_id(geoms)
    names = np.array([shapely.GeometryType(t).name for t in types])
    kind_names = {
        "POINT": "point",
        "MULTIPOINT": "point",
        "LINESTRING": "line",
        "MULTILINESTRING": "line",
        "LINEARRING": "line",
        "POLYGON": "polygon",
        "MULTIPOLYGON": "polygon",
    }
    bad = ~np.isin(names, list(kind_names))
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise InputError(
            f"{src.loc(int(frame.index[i]), frame.geometry.name)}: a {names[i].lower()} is not a "
            f"barrier{src.more(int(bad.sum()) - 1)}; use points (checkpoints), lines (blocked roads) "
            "or polygons (no-go areas)"
        )
    crs = frame.crs
    if crs is None:
        minx, miny, maxx, maxy = shapely.total_bounds(geoms)
        if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
            raise InputError(
                f"{src.label}: no CRS is declared and the coordinates are not degrees "
                f"(x {minx:,.0f}..{maxx:,.0f}); save the file with its CRS"
            )
        crs = pyproj.CRS.from_epsg(4326)
    id_col = _u.find_column(list(frame.columns), ("id",))
    ids = (
        frame[id_col].astype("string").fillna("").str.strip()
        if id_col is not None
        else pd.Series([""] * len(frame), index=frame.index, dtype="string")
    )
    ids = ids.mask(ids == "", pd.Series(frame.index.astype(str), index=frame.index))
    kinds = np.array([kind_names[n] for n in names], dtype=object)
    poly = kinds == "polygon"
    geoms = geoms.copy()
    if poly.any():
        geoms[poly] = shapely.make_valid(geoms[poly])
    out = gpd.GeoDataFrame({"barrier_id": ids.to_numpy(dtype=object), "kind": kinds}, geometry=geoms, crs=crs)
    out.index = frame.index
    out.attrs["source"] = src.label
    return out


def closure_mask(
    net: RoadNetwork, barriers: gpd.GeoDataFrame | PathLike, *, point_tolerance_m: float = DEFAULT_POINT_TOLERANCE_M
) -> np.ndarray:
    """Which edges the barriers close (both directions of a two-way road), as a boolean array.

    Parameters
    ----------
    net
        Road network.
    barriers
        Output of :func:`read_barriers`, or anything it reads.
    point_tolerance_m
        A checkpoint farther than this (metres) from every road closes nothing (warned).

    Returns
    -------
    numpy.ndarray
        (n_edges,) bool, True = closed.

    Raises
    ------
    havenmap.errors.InputError
        When no barrier lies within the network's area (wrong CRS or wrong file).
    """
    if not isinstance(barriers, gpd.GeoDataFrame) or "kind" not in barriers.columns:
        barriers = read_barriers(barriers)
    label = barriers.attrs.get("source", "the barriers")
    local = barriers.to_crs(net.crs)
    geoms = local.geometry.to_numpy()
    _check_area(net, barriers, geoms, label)
    tree, edges, lines = edge_tree(net)
    kinds = local["kind"].to_numpy()
    hits = np.zeros(len(local), dtype=np.int64)
    closed_rep = []
    # checkpoints: the nearest road(s) within the tolerance
    pts = np.flatnonzero(kinds == "point")
    if len(pts):
        parts, owner = shapely.get_parts(geoms[pts], return_index=True)
        b, e = tree.query(parts, predicate="dwithin", distance=point_tolerance_m)
        d = shapely.distance(parts[b], lines[e])
        nearest = np.full(len(parts), np.inf)
        np.minimum.at(nearest, b, d)
        keep = d <= nearest[b] + _POINT_TIE_M
        closed_rep.append(e[keep])
        np.add.at(hits, pts[owner[b[keep]]], 1)
    # lines: crossing or running along an edge (not merely touching its end node)
    lns = np.flatnonzero(kinds == "line")
    if len(lns):
        b, e = tree.query(geoms[lns], predicate="intersects")
        inner = shapely.intersection(geoms[lns][b], lines[e])
        real = ~shapely.is_empty(shapely.difference(inner, shapely.boundary(lines[e])))
        closed_rep.append(e[real])
        np.add.at(hits, lns[b[real]], 1)
    polys = np.flatnonzero(kinds == "polygon")
    if len(polys):
        b, e = tree.query(geoms[polys], predicate="intersects")
        closed_rep.append(e)
        np.add.at(hits, polys[b], 1)
    idle = np.flatnonzero(hits == 0)
    if len(idle):
        ids = listing(local["barrier_id"].to_numpy()[idle])
        warnings.warn(
            f"{label}: {len(idle)} barrier(s) close no road (checkpoints farther than "
            f"{point_tolerance_m:g} m from any road, or lines/areas off the roads): {ids}",
            stacklevel=2,
        )
    mask = np.zeros(net.n_edges, dtype=bool)
    rep = edges[np.concatenate(closed_rep)] if closed_rep else np.zeros(0, dtype=np.int64)
    mask[rep] = True
    twin = net.edge_twin[rep]
    mask[twin[twin >= 0]] = True
    return mask


def _check_area(net: RoadNetwork, barriers: gpd.GeoDataFrame, local: np.ndarray, label: str) -> None:
    """Refuse barriers that all lie outside the network's area (a wrong CRS, usually)."""
    x0, y0 = net.node_xy.min(axis=0) - 1000.0
    x1, y1 = net.node_xy.max(axis=0) + 1000.0
    area = shapely.box(x0, y0, x1, y1)
    if shapely.intersects(local, area).any():
        return
    from .layers import looks_swapped

    minx, miny, maxx, maxy = net.bounds_lonlat
    hint = ""
    pts = barriers.copy()
    pts.geometry = barriers.geometry.representative_point()
    if barriers.crs is not None and barriers.crs.is_geographic and looks_swapped(pts, net.bounds_lonlat):
        hint = "; latitude and longitude look swapped"
    raise InputError(
        f"{label}: none of the {len(barriers)} barriers lies within the road network's area "
        f"(lon {minx:.4f}..{maxx:.4f}, lat {miny:.4f}..{maxy:.4f}){hint}; "
        "check that the file is for this area and declares its CRS"
    )


# ---------------------------------------------------------------------- risk
def edge_risk(net: RoadNetwork, source: Any, *, column: str = "risk", label: str | None = None) -> np.ndarray:
    """Per-edge risk (float >= 0) aligned with the network's edges, checked.

    Parameters
    ----------
    net
        Road network.
    source
        One of: an array/list/Series with one value per edge; a DataFrame or GeoDataFrame of
        edges with ``column`` and either ``u``, ``v`` (OSM node ids; ``key`` optional —
        without it a value applies to all parallel edges) or ``edge`` (edge index); or a file
        (CSV, GeoJSON, GeoPackage, Parquet) holding such a table.
    column
        Name of the risk column (any case).
    label
        Name of an in-memory source in error messages.

    Returns
    -------
    numpy.ndarray
        (n_edges,) float64. A two-way road listed in one direction only gives its risk to
        both; edges not listed at all get risk 0 (with a warning saying how many).

    Raises
    ------
    havenmap.errors.InputError
        Wrong length; NaN, blank, non-numeric, infinite or negative risk; no risk column; no
        ``u``/``v`` or ``edge`` columns; rows matching no edge of this network, or the same
        edge twice; edge geometries that lie away from the matched edges (wrong CRS).
    """
    if isinstance(source, (str, os.PathLike)):
        frame, src = _u.load(source)
        return _risk_from_frame(net, frame, src, column)
    if isinstance(source, pd.DataFrame) and _READ_FROM in source.attrs:  # from read_risk_table: rows as in the file
        return _risk_from_frame(net, source, _u.Source(*source.attrs[_READ_FROM]), column)
    if isinstance(source, pd.DataFrame):
        frame, src = _u.prepare_frame(source, label or source.attrs.get("source", "<risk>"))
        if isinstance(source, gpd.GeoDataFrame):
            frame = gpd.GeoDataFrame(frame, geometry=source.geometry.name, crs=source.crs)
        return _risk_from_frame(net, frame, src, column)
    return _risk_from_array(net, source, label or "risk array")


_READ_FROM = "havenmap_risk_file"  # attrs key: (file label, format) of a table read by read_risk_table


def read_risk_table(path: PathLike, *, column: str = "risk") -> pd.DataFrame:
    """Read a per-edge risk file and check what can be checked without the network.

    The file is read once, before the network is loaded, so a bad risk file fails fast; pass
    the result to :func:`edge_risk` to align it with the network's edges (errors then still
    name the file's rows).

    Raises
    ------
    havenmap.errors.InputError
        As :func:`edge_risk` for the file itself: unreadable, no rows, no risk column, blank,
        non-numeric, infinite or negative risk, no ``u``/``v`` or ``edge`` columns.
    """
    frame, src = _u.load(path)
    _risk_values(frame, src, column)
    cols = list(frame.columns)
    has_uv = _u.find_column(cols, ("u",)) is not None and _u.find_column(cols, ("v",)) is not None
    if not has_uv and _u.find_column(cols, ("edge",)) is None:
        raise src.fail(
            "no u/v (OSM node ids, with key) or edge (edge index) columns to match rows to edges; "
            "add them as in the network's edges"
        )
    frame.attrs[_READ_FROM] = (src.label, src.fmt)
    return frame


def _risk_from_array(net: RoadNetwork, values: Any, label: str) -> np.ndarray:
    try:
        risk = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{label}: risk values must be numbers ({_u.one_line(exc)})") from exc
    if risk.shape != (net.n_edges,):
        raise InputError(
            f"{label}: {risk.size} risk values for {net.n_edges} edges; "
            "give one value per edge, in edge order (or a table with u, v, key, risk)"
        )
    _check_values(risk, lambda i: f"{label}: edge {i}")
    return risk.copy()


def _check_values(risk: np.ndarray, where_of) -> None:
    for bad, what in ((np.isnan(risk), "is NaN or blank"), (np.isinf(risk), "is infinite"), (risk < 0, "is negative")):
        if bad.any():
            idx = np.flatnonzero(bad)
            more = f" (and {len(idx) - 1} more)" if len(idx) > 1 else ""
            raise InputError(f"{where_of(int(idx[0]))}: risk {what}{more}; give a number >= 0 (0 = no danger)")


def _risk_values(frame: pd.DataFrame, src: _u.Source, column: str) -> tuple[object, np.ndarray]:
    """The risk column and its values (float >= 0, one per row), checked."""
    _u.require_rows(frame, src)
    cols = list(frame.columns)
    risk_col = _u.find_column(cols, (column,))
    if risk_col is None:
        shown = ", ".join(str(c) for c in cols[:12])
        raise src.fail(f"no {column!r} column (columns: {shown}); add one with a number >= 0 per edge")
    values, blank, bad = _u.parse_numbers(frame[risk_col])
    for flagged, what in ((bad, "is not a finite number"), (blank, "is blank or NaN")):
        if flagged.any():
            row = int(flagged[flagged].index[0])
            raise InputError(
                f"{src.loc(row, risk_col)}: risk {what}{src.more(int(flagged.sum()) - 1)}; "
                "give a number >= 0 (0 = no danger)"
            )
    risk_rows = values.to_numpy(dtype=np.float64)
    rows = frame.index.to_numpy()
    _check_values(risk_rows, lambda i: src.loc(int(rows[i]), risk_col))
    return risk_col, risk_rows


def _risk_from_frame(net: RoadNetwork, frame: pd.DataFrame, src: _u.Source, column: str) -> np.ndarray:
    _, risk_rows = _risk_values(frame, src, column)
    rows = frame.index.to_numpy()
    edge, pos = _match_edges(net, frame, src)
    _check_geometry(net, frame, src, edge, pos)
    order = np.argsort(edge, kind="stable")
    dup = np.flatnonzero(np.diff(edge[order]) == 0)
    if len(dup):
        first, second = sorted((rows[pos[order[dup[0]]]], rows[pos[order[dup[0] + 1]]]))
        raise InputError(
            f"{src.loc(int(second))}: the same edge as {src.unit} {first} "
            f"(edge {edge[order[dup[0]]]}); give each edge once"
        )
    out = np.full(net.n_edges, np.nan)
    out[edge] = risk_rows[pos]
    twin = net.edge_twin
    fill = np.isnan(out) & (twin >= 0)
    fill[fill] = ~np.isnan(out[twin[fill]])
    out[fill] = out[twin[fill]]
    missing = np.isnan(out)
    if missing.any():
        warnings.warn(
            f"{src.label}: {int(missing.sum()):,} of {net.n_edges:,} edges have no risk row; they get risk 0",
            stacklevel=3,
        )
        out[missing] = 0.0
    return out


def _match_edges(net: RoadNetwork, frame: pd.DataFrame, src: _u.Source) -> tuple[np.ndarray, np.ndarray]:
    """Edges the rows name, from u, v (and key) node ids, else from an ``edge`` column.

    Returns (edge, row position) pairs: a row without ``key`` names every parallel edge.
    """
    cols = list(frame.columns)
    u_col, v_col = _u.find_column(cols, ("u",)), _u.find_column(cols, ("v",))
    key_col, e_col = _u.find_column(cols, ("key",)), _u.find_column(cols, ("edge",))
    rows = frame.index.to_numpy()
    if u_col is not None and v_col is not None:
        ints = {col: _integers(frame[col], src, col) for col in (u_col, v_col, key_col) if col is not None}
        u_idx = _node_positions(net, ints[u_col])
        v_idx = _node_positions(net, ints[v_col])
        n = np.int64(net.n_nodes)
        hay = net.edge_u.astype(np.int64) * n + net.edge_v
        needle = np.where((u_idx >= 0) & (v_idx >= 0), u_idx * n + v_idx, -1)
        if key_col is not None:
            kmax = np.int64(max(int(net.edge_key.max()), int(ints[key_col].max()), 0) + 1)
            hay = hay * kmax + net.edge_key
            needle = np.where(needle >= 0, needle * kmax + ints[key_col], -1)
        order = np.argsort(hay, kind="stable")
        lo = np.searchsorted(hay[order], needle, side="left")
        hi = np.searchsorted(hay[order], needle, side="right")
        count = np.where(needle >= 0, hi - lo, 0)
        unmatched = count == 0
        if unmatched.any():
            i = np.flatnonzero(unmatched)[0]
            what = f"u={ints[u_col][i]}, v={ints[v_col][i]}" + (f", key={ints[key_col][i]}" if key_col else "")
            raise InputError(
                f"{src.loc(int(rows[i]), str(u_col))}: no edge {what} in this road network"
                f"{src.more(int(unmatched.sum()) - 1)}; the risk layer must come from the same "
                "network (same OSM extract and network type)"
            )
        pos = np.repeat(np.arange(len(needle)), count)
        ends = np.cumsum(count)
        edge = order[np.arange(ends[-1]) + np.repeat(lo - (ends - count), count)]
        return edge, pos
    if e_col is not None:
        edge = _integers(frame[e_col], src, e_col)
        out_of = (edge < 0) | (edge >= net.n_edges)
        if out_of.any():
            i = np.flatnonzero(out_of)[0]
            raise InputError(
                f"{src.loc(int(rows[i]), str(e_col))}: edge {edge[i]} is not an edge index of this "
                f"network (0..{net.n_edges - 1}){src.more(int(out_of.sum()) - 1)}; "
                "match edges by u, v, key instead"
            )
        return edge, np.arange(len(edge))
    raise src.fail(
        "no u/v (OSM node ids, with key) or edge (edge index) columns to match rows to edges; "
        "add them as in the network's edges"
    )


def _integers(series: pd.Series, src: _u.Source, col: object) -> np.ndarray:
    values, blank, bad = _u.parse_numbers(series)
    arr = values.to_numpy(dtype=np.float64)
    frac = np.isfinite(arr) & (arr != np.round(arr))
    for flagged, what in ((bad | pd.Series(frac, index=series.index), "is not a whole number"), (blank, "is blank")):
        if flagged.any():
            row = int(flagged[flagged].index[0])
            raise InputError(
                f"{src.loc(row, str(col))}: {what}{src.more(int(flagged.sum()) - 1)}; "
                "give integer ids as in the network's edges"
            )
    return arr.astype(np.int64)


def _node_positions(net: RoadNetwork, ids: np.ndarray) -> np.ndarray:
    order = np.argsort(net.node_id)
    pos = np.clip(np.searchsorted(net.node_id, ids, sorter=order), 0, len(order) - 1)
    found = net.node_id[order[pos]] == ids
    return np.where(found, order[pos], -1)


def _check_geometry(net: RoadNetwork, frame: pd.DataFrame, src: _u.Source, edge: np.ndarray, pos: np.ndarray) -> None:
    """Refuse a risk layer whose geometries lie away from the edges they name (wrong CRS)."""
    if not isinstance(frame, gpd.GeoDataFrame):
        return
    geoms = frame.geometry.to_numpy()[pos]
    present = np.array([g is not None for g in geoms]) & ~shapely.is_empty(geoms)
    if not present.any():
        return
    if frame.crs is None:
        minx, miny, maxx, maxy = shapely.total_bounds(geoms[present])
        if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
            raise InputError(
                f"{src.label}: no CRS is declared and the coordinates are not degrees; save the file with its CRS"
            )
        crs = pyproj.CRS.from_epsg(4326)
    else:
        crs = frame.crs
    local = gpd.GeoSeries(geoms[present], crs=crs).to_crs(net.crs).to_numpy()
    mid = shapely.point_on_surface(local)
    lines = net.edge_geometries(edge[present])
    dist = shapely.distance(mid, lines)
    far = dist > _RISK_GEOMETRY_TOLERANCE_M
    if far.any():
        i = np.flatnonzero(far)[0]
        row = int(frame.index[pos[np.flatnonzero(present)[i]]])
        raise InputError(
            f"{src.loc(row, frame.geometry.name)}: the geometry lies {dist[i]:,.0f} m from edge "
            f"{edge[np.flatnonzero(present)[i]]} it names{src.more(int(far.sum()) - 1)}; "
            f"check the file's CRS ({crs.to_string()}) and that it comes from this network"
        )


# ---------------------------------------------------------------------- weights
def danger_weights(
    net: RoadNetwork,
    risk: Any,
    *,
    alpha: float = 1.0,
    max_risk: float | None = None,
    cost: str = "time",
    base: np.ndarray | None = None,
) -> np.ndarray:
    """Danger-aware per-edge cost: ``base × (1 + alpha · risk)``, ``inf`` where ``risk > max_risk``.

    Parameters
    ----------
    net
        Road network.
    risk
        Per-edge risk, or anything :func:`edge_risk` reads.
    alpha
        Weight of danger (>= 0): with ``alpha = 1`` an edge of risk 1 costs twice its time.
        Risk from :mod:`havenmap.threat` is in weighted incidents per km of road, so pick
        ``alpha`` and ``max_risk`` from its distribution (e.g. ``alpha = 1 / median risk``).
    max_risk
        Edges with a higher risk are forbidden (None: no cap).
    cost, base
        The cost to scale: ``net.edge_cost(cost)``, or a given per-edge array.

    Returns
    -------
    numpy.ndarray
        New (n_edges,) float64 array; the network is not changed.
    """
    if not np.isfinite(alpha) or alpha < 0:
        raise InputError(f"--alpha {alpha}: must be a number >= 0 (0 ignores danger, 1 doubles time at risk 1)")
    if max_risk is not None and (not np.isfinite(max_risk) or max_risk < 0):
        raise InputError(f"--max-risk {max_risk}: must be a number >= 0")
    r = risk if isinstance(risk, np.ndarray) and risk.shape == (net.n_edges,) else edge_risk(net, risk)
    _check_values(np.asarray(r, dtype=np.float64), lambda i: f"risk array: edge {i}")
    w = (net.edge_cost(cost) if base is None else np.asarray(base, dtype=np.float64)) * (1.0 + alpha * r)
    if max_risk is not None:
        forbidden = r > max_risk
        w[forbidden] = np.inf
        if forbidden.mean() > 0.2:
            warnings.warn(
                f"--max-risk {max_risk:g} forbids {forbidden.mean():.0%} of the roads (risk ranges "
                f"{r.min():.3g}..{r.max():.3g}, median {np.median(r):.3g}); many defenders may be cut off",
                UserWarning,
                stacklevel=2,
            )
    return w


def cost_weights(
    net: RoadNetwork,
    *,
    cost: str = "time",
    closures: Any = None,
    risk: Any = None,
    alpha: float = 1.0,
    max_risk: float | None = None,
    point_tolerance_m: float = DEFAULT_POINT_TOLERANCE_M,
) -> np.ndarray:
    """Per-edge weights of a whole cost model: ``cost``, danger (if ``risk``), closures (if ``closures``).

    ``closures`` is anything :func:`closure_mask` takes (a file or barriers), or a boolean
    per-edge mask. Returns a new array (``inf`` = closed); the network is not changed.
    """
    w = net.edge_cost(cost).astype(np.float64, copy=True)
    if risk is not None:
        w = danger_weights(net, risk, alpha=alpha, max_risk=max_risk, base=w)
    if closures is not None:
        mask = (
            closures
            if isinstance(closures, np.ndarray) and closures.dtype == bool
            else closure_mask(net, closures, point_tolerance_m=point_tolerance_m)
        )
        w[mask] = np.inf
    return w


def route_exposure(net: RoadNetwork, risk: np.ndarray, edges: np.ndarray, spans: np.ndarray) -> float:
    """Exposure of a route: sum of ``risk × length`` (risk-metres) over its edges or parts of edges.

    ``edges`` are network edge indices and ``spans`` the fraction of each travelled.
    """
    edges = np.asarray(edges, dtype=np.int64)
    return float(np.sum(np.asarray(risk)[edges] * net.edge_length[edges] * np.asarray(spans, dtype=np.float64)))
