"""Private helpers for :mod:`havenmap.maps`: safe text, compact geometry, grids, time bins, page assets.

Nothing here draws on a map by itself; :mod:`havenmap.maps` composes these pieces. The
page's own JavaScript (``HM_JS``) and CSS (``HM_CSS``) live at the end of this module:
every layer is handed to the browser as compact JSON (lines as Google-polyline strings
at 1e-5 degrees, heat as integer grid cells) and built there with Leaflet. User text is
placed into the page only through ``textContent`` (never parsed as HTML), except in the
title, legend and layer-control labels, which are built here with :func:`safe_text`.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from shapely.geometry import LineString, MultiLineString, Point, mapping

from havenmap.errors import InputError

WGS84 = "EPSG:4326"
POINT_DIGITS = 5  # decimals of point coordinates: ~1 m, enough to draw, keeps the HTML small
LINE_FACTOR = 1e5  # polyline encoding precision (1e-5 degrees)
SIMPLIFY_M = 5.0  # metres; tolerance of line and polygon simplification
EARTH_M_PER_DEG = 111_320.0

# ------------------------------------------------------------------ colours (explained in the legend)
ROAD_TIERS = (
    # (first zoom level drawn, legend text, style)
    (0, "main road", {"color": "#6b6b6b", "weight": 2.4, "opacity": 0.9}),
    (14, "street (from zoom 14)", {"color": "#8f8f8f", "weight": 1.3, "opacity": 0.85}),
    (15, "path, service road (from zoom 15)", {"color": "#b3b3b3", "weight": 0.8, "opacity": 0.85}),
)
ZOOM_TIERS_ABOVE = 20_000  # road pieces; smaller networks are drawn whole at every zoom
_MAJOR = {"motorway", "trunk", "primary", "secondary", "tertiary"}
_STREET = {"residential", "unclassified", "living_street", "road", "busway"}

HEAT_GRADIENT = {0.4: "#2b83ba", 0.6: "#abdda4", 0.75: "#ffffbf", 0.9: "#fdae61", 1.0: "#d7191c"}
INCIDENT_COLOUR = "#ff7f00"
FATAL_COLOUR = "#b10026"
CLUSTER_COLOUR = "#e66e00"
RISK_COLOURS = ("#fcc5c0", "#fa9fb5", "#f768a1", "#c51b8a", "#7a0177")
HOTSPOT_CLASSES = (  # (significance value, colour, line weight)
    ("hot 99%", "#67000d", 5.0),
    ("hot 95%", "#cb181d", 4.0),
    ("hot 90%", "#fb6a4a", 3.0),
)
BAND_COLOURS = ("#006837", "#31a354", "#78c679", "#addd8e", "#d9f0a3", "#ffffcc")
ROUTE_COLOUR = "#2b5cb8"
STATUS = {  # defender status -> (fill colour, legend text, text colour of the counts)
    "covered": ("#1a9850", "covered: reaches a haven within {slow:g} min", "#146c3a"),
    "slow": ("#f39c12", "slow: reaches a haven, but in more than {slow:g} min", "#9a5b00"),
    "reachable": ("#4575b4", "can reach a haven (time unknown)", "#2c5aa0"),
    "unreachable": ("#c0392b", "unreachable: no haven by road", "#a50f15"),
}
STATUS_ORDER = ("covered", "slow", "reachable", "unreachable")
COUNT_COLOUR = "#756bb1"  # defender cells when status is unknown
ALERT_LEVELS = (  # (rank, colour, legend text); rank from the level word
    (3, "#c2185b", "high / critical alert"),
    (2, "#ef6c00", "medium alert"),
    (1, "#f9a825", "low alert / watch"),
)
_LEVEL_RANK = {
    "critical": 3,
    "severe": 3,
    "red": 3,
    "high": 3,
    "medium": 2,
    "elevated": 2,
    "moderate": 2,
    "amber": 2,
    "orange": 2,
    "low": 1,
    "watch": 1,
    "yellow": 1,
    "minor": 1,
}
_INACTIVE_LEVELS = {"", "none", "ok", "normal", "green", "inactive", "no", "false", "0", "nan", "resolved"}
# patrol units: first the colours no other layer uses (routes to havens are blue, hotspots red,
# service areas green)
UNIT_COLOURS = (
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#7f7f7f",
    "#d62728",
    "#2ca02c",
    "#1f77b4",
)
BASE_COLOUR = "#263238"

# Haven icons by kind: inline SVG (no icon font, no image file). (kind words, colour, glyph, legend text)
_GLYPHS = {
    "flag": '<path d="M8 5v14M8 5h8l-2 3 2 3H8" fill="none" stroke="#fff" stroke-width="1.8" stroke-linejoin="round"/>',
    "cross": '<path d="M10 6h4v4h4v4h-4v4h-4v-4H6v-4h4z" fill="#fff"/>',
    "dome": '<path d="M6 18v-5a6 6 0 0 1 12 0v5zM12 4v3M10.5 5.5h3" fill="#fff" stroke="#fff" stroke-width="1.2"/>',
    "house": '<path d="M5 12l7-6 7 6M7 11v7h10v-7" fill="none" stroke="#fff" stroke-width="1.8" '
    'stroke-linejoin="round"/>',
}
HAVEN_KINDS = (
    (
        (
            "embassy",
            "embajada",
            "ambassade",
            "consulate",
            "consulado",
            "diplomatic",
            "un",
            "united nations",
            "international",
        ),
        "#1e4fa3",
        "flag",
        "embassy / diplomatic",
    ),
    (
        ("clinic", "clínica", "clinica", "hospital", "doctor", "doctors", "health", "medical", "pharmacy"),
        "#1a9641",
        "cross",
        "clinic / hospital",
    ),
    (
        (
            "worship",
            "place of worship",
            "church",
            "iglesia",
            "église",
            "mosque",
            "mezquita",
            "temple",
            "religious",
            "synagogue",
            "chapel",
            "cathedral",
        ),
        "#6a3d9a",
        "dome",
        "place of worship",
    ),
    ((), "#00796b", "house", "other haven / shelter"),
)

# Characters that are harmless in HTML text but active inside JavaScript template literals.
_JS_TEMPLATE_SAFE = str.maketrans({"`": "&#96;", "$": "&#36;", "\\": "&#92;", "{": "&#123;", "}": "&#125;"})
_REACHABLE_WORDS = frozenset({"ok", "reachable", "true", "1", "yes", "covered", "slow"})


# ------------------------------------------------------------------ text and frames


def safe_text(value: Any) -> str:
    """Return ``value`` as text safe to place in HTML, also inside a JS template literal.

    ``None`` and NaN become the empty string. The result shows the original characters
    literally in a browser: ``<script>`` is displayed, never run.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value), quote=True).translate(_JS_TEMPLATE_SAFE)


def plain(value: Any, limit: int = 400) -> str:
    """``value`` as plain text for ``textContent`` (not escaped): ``""`` for missing, cut at ``limit``."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = str(value).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_wgs84(frame: gpd.GeoDataFrame | None, layer: str) -> gpd.GeoDataFrame | None:
    """Reproject ``frame`` to EPSG:4326 and drop rows without geometry; ``None`` if nothing is left."""
    frame = _checked(frame, layer)
    if frame is None:
        return None
    return frame if frame.crs.equals(WGS84) else frame.to_crs(WGS84)


def _checked(frame: gpd.GeoDataFrame | None, layer: str) -> gpd.GeoDataFrame | None:
    if frame is None:
        return None
    if not isinstance(frame, gpd.GeoDataFrame):
        raise InputError(
            f"{layer}: expected a GeoDataFrame, got {type(frame).__name__}; "
            "read the layer with geopandas or havenmap.layers first"
        )
    if frame.crs is None:
        raise InputError(
            f"{layer}: the GeoDataFrame has no CRS; set it with .set_crs('EPSG:4326') "
            "(or the CRS the coordinates are in)"
        )
    keep = frame.geometry.notna() & ~frame.geometry.is_empty
    frame = frame.loc[keep]
    return None if frame.empty else frame


def metric_crs(frame: gpd.GeoDataFrame | gpd.GeoSeries) -> Any:
    """The local UTM CRS for ``frame`` (metres)."""
    return frame.estimate_utm_crs()


def column(frame: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name`` of ``frame``, or a column of ``None`` if it is missing."""
    if name in frame.columns:
        return frame[name]
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def id_column(frame: pd.DataFrame, *names: str) -> pd.Series | None:
    """The first of ``names`` present in ``frame`` as str, or ``None``."""
    key = next((c for c in names if c in frame.columns), None)
    return None if key is None else frame[key].astype(str)


def number(value: Any) -> float:
    """``float(value)``, NaN when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def fmt(value: float, spec: str) -> str:
    """Format a number, ``"?"`` when it is not finite."""
    return "?" if not math.isfinite(value) else format(value, spec)


def point_rows(points: gpd.GeoSeries) -> tuple[list[float], list[float]]:
    """Latitudes and longitudes of (representative points of) ``points``, rounded to 5 decimals."""
    pts = points.representative_point() if not (points.geom_type == "Point").all() else points
    return (
        np.round(pts.y.to_numpy(), POINT_DIGITS).tolist(),
        np.round(pts.x.to_numpy(), POINT_DIGITS).tolist(),
    )


# ------------------------------------------------------------------ compact geometry


def line_parts(geoms: Iterable[Any] | np.ndarray) -> np.ndarray:
    """All LineString parts (of LineStrings, MultiLineStrings, collections) with 2+ coordinates."""
    arr = np.asarray(geoms if isinstance(geoms, np.ndarray) else list(geoms), dtype=object)
    if arr.size == 0:
        return arr
    parts = shapely.get_parts(arr)
    parts = parts[shapely.get_type_id(parts) == 1]
    return parts[shapely.get_num_coordinates(parts) >= 2]


def encode_coords(latlon: np.ndarray) -> str:
    """Google polyline encoding (precision 1e-5) of an ``(n, 2)`` array of lat, lon, vectorised.

    The whole array is one delta stream; split it into lines with the vertex counts.
    """
    if len(latlon) == 0:
        return ""
    q = np.round(np.asarray(latlon, dtype=float) * LINE_FACTOR).astype(np.int64)
    delta = np.diff(q, axis=0, prepend=np.zeros((1, 2), dtype=np.int64)).ravel()
    zig = np.where(delta < 0, ~(delta << 1), delta << 1)
    shifts = 5 * np.arange(7, dtype=np.int64)
    chunks = (zig[:, None] >> shifts[None, :]) & 31
    present = np.ones_like(chunks, dtype=bool)
    present[:, 1:] = zig[:, None] >= (np.int64(1) << shifts[None, 1:])
    more = np.zeros_like(present)
    more[:, :-1] = present[:, 1:]
    chars = (chunks | (more * 0x20)) + 63
    return chars[present].astype(np.uint8).tobytes().decode("ascii")


def decode_polyline(text: str, counts: Sequence[int]) -> list[list[tuple[float, float]]]:
    """Inverse of :func:`encode_lines` (reference implementation for tests): lines of (lat, lon)."""
    values, result, shift = [], 0, 0
    for char in text:
        b = ord(char) - 63
        result |= (b & 31) << shift
        shift += 5
        if b < 0x20:
            values.append(~(result >> 1) if result & 1 else result >> 1)
            result, shift = 0, 0
    lat = lon = 0
    it = iter(values)
    lines = []
    for n in counts:
        line = []
        for _ in range(n):
            lat += next(it)
            lon += next(it)
            line.append((lat / LINE_FACTOR, lon / LINE_FACTOR))
        lines.append(line)
    return lines


def encode_lines(geoms: Iterable[Any] | np.ndarray) -> dict[str, Any]:
    """Lines (EPSG:4326) as ``{"enc": polyline string, "counts": vertices per line part}``."""
    parts = line_parts(geoms)
    coords = shapely.get_coordinates(parts)
    return {
        "enc": encode_coords(coords[:, ::-1]),
        "counts": shapely.get_num_coordinates(parts).astype(int).tolist(),
    }


def encode_polygon(geom: Any) -> dict[str, Any]:
    """A (multi)polygon (EPSG:4326) as ``{"enc", "counts" (per ring), "parts" (rings per polygon)}``."""
    polys = [g for g in shapely.get_parts(np.array([geom], dtype=object)) if g.geom_type == "Polygon"]
    rings, parts = [], []
    for poly in polys:
        poly_rings = [poly.exterior, *poly.interiors]
        rings.extend(np.asarray(r.coords)[:-1] for r in poly_rings)  # Leaflet closes rings itself
        parts.append(len(poly_rings))
    coords = np.concatenate(rings) if rings else np.zeros((0, 2))
    return {
        "enc": encode_coords(coords[:, ::-1]),
        "counts": [len(r) for r in rings],
        "parts": parts,
    }


def to_metric(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``frame`` in a metric CRS: its own if projected, else the local UTM zone."""
    return frame if frame.crs.is_projected else frame.to_crs(metric_crs(frame))


def wgs84_geoms(geoms: np.ndarray, crs: Any) -> np.ndarray:
    """Transform a shapely array from ``crs`` to EPSG:4326 (vectorised)."""
    if pyproj.CRS.from_user_input(crs).equals(WGS84):
        return geoms
    transformer = pyproj.Transformer.from_crs(crs, WGS84, always_xy=True)

    def _transform(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, _transform)


def simplified(geoms: np.ndarray, tolerance_m: float = SIMPLIFY_M) -> np.ndarray:
    """Simplify geometries in a metric CRS by ``tolerance_m`` metres (topology of polygons kept)."""
    return shapely.simplify(geoms, tolerance_m, preserve_topology=True)


def road_class(highway: Any) -> str:
    """The OSM ``highway`` value of a road (first one of a list; ``_link`` dropped)."""
    if isinstance(highway, (list, tuple, np.ndarray)):
        highway = highway[0] if len(highway) else ""
    text = plain(highway)
    text = text.strip("[]'\" ").split(",")[0].strip("'\" ").lower()
    return text.removesuffix("_link")


def road_tier(highway: Any) -> int:
    """Index into :data:`ROAD_TIERS` for an OSM ``highway`` value (unknown roads: main)."""
    cls = road_class(highway)
    if cls in _MAJOR or cls == "":
        return 0
    return 1 if cls in _STREET else 2


def road_layers(roads: gpd.GeoDataFrame, tolerance_m: float = SIMPLIFY_M) -> list[dict[str, Any]]:
    """The base drawing: road lines by tier, merged, simplified and encoded.

    Returns one dict per non-empty tier: ``tier`` (index into :data:`ROAD_TIERS`),
    ``minZoom`` (first zoom level drawn: 0 for the lowest non-empty tier, and for every
    tier when the network has at most :data:`ZOOM_TIERS_ABOVE` road pieces),
    ``style``, ``enc``, ``counts``. Reverse duplicates (both directions of a two-way
    road) are drawn once.
    """
    metric = to_metric(roads)
    geoms = metric.geometry.to_numpy()
    tiers = (
        np.array([road_tier(h) for h in metric["highway"]], dtype=int)
        if "highway" in metric.columns
        else np.zeros(len(metric), dtype=int)
    )
    layers: list[dict[str, Any]] = []
    whole = len(geoms) <= ZOOM_TIERS_ABOVE
    for tier in range(len(ROAD_TIERS)):
        parts = line_parts(geoms[tiers == tier])
        if not len(parts):
            continue
        parts = _unique_lines(parts)
        merged = shapely.line_merge(MultiLineString(list(parts)))
        parts = line_parts(simplified(shapely.get_parts(np.array([merged], dtype=object)), tolerance_m))
        min_zoom, _, style = ROAD_TIERS[tier]
        layers.append(
            {
                "tier": tier,
                "minZoom": 0 if whole or not layers else min_zoom,
                "style": style,
                **encode_lines(wgs84_geoms(parts, metric.crs)),
            }
        )
    return layers


def _unique_lines(parts: np.ndarray) -> np.ndarray:
    keys = shapely.to_wkb(shapely.normalize(parts))
    _, first = np.unique(keys, return_index=True)
    return parts[np.sort(first)]


def trim_start(line: Any, trim_m: float) -> Any:
    """Remove every part of a (multi)line within ``trim_m`` metres (straight line) of its start.

    Measured as the crow flies, not along the road, so no drawn point lies closer than
    ``trim_m`` to the defender whatever the road does (metric CRS); ``None`` if nothing is left.
    """
    if trim_m <= 0:
        return line
    if isinstance(line, MultiLineString):
        line = shapely.line_merge(line)
    first = line.geoms[0] if isinstance(line, MultiLineString) else line
    quad = 16  # circumscribe the polygonal disk so its edges never fall inside the true circle
    disk = Point(first.coords[0]).buffer(trim_m / math.cos(math.pi / (4 * quad)), quad_segs=quad)
    rest = line.difference(disk)
    parts = [p for p in getattr(rest, "geoms", [rest]) if isinstance(p, LineString) and p.length > 0]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else MultiLineString(parts)


def geojson_geometry(geom: Any, digits: int = POINT_DIGITS) -> dict[str, Any]:
    """GeoJSON geometry dict of ``geom`` with coordinates rounded to ``digits`` decimals."""
    return mapping(shapely.transform(geom, lambda xy: np.round(xy, digits)))


# ------------------------------------------------------------------ defenders: status and grid


def unreachable_mask(frame: pd.DataFrame) -> np.ndarray | None:
    """Boolean array: which rows cannot reach a haven; ``None`` if the frame does not say.

    Uses column ``reachable`` (true/false; missing counts as unreachable) or else column
    ``status`` (``"ok"``, ``"reachable"``, ``"covered"`` or ``"slow"`` mean reachable).
    """
    if "reachable" in frame.columns:
        values = frame["reachable"]
    elif "status" in frame.columns:
        values = frame["status"]
    else:
        return None
    return ~values.map(is_reachable).to_numpy(dtype=bool)


def is_reachable(value: Any) -> bool:
    """Read one ``reachable`` / ``status`` value; missing or unknown counts as not reachable."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return False
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    return str(value).strip().lower() in _REACHABLE_WORDS


def defender_status(defenders: pd.DataFrame, slow_minutes: float) -> np.ndarray | None:
    """Status per defender: ``covered``, ``slow``, ``reachable`` or ``unreachable``; ``None`` if unknown.

    From column ``status`` (``covered``/``slow``/``unreachable`` as written; ``ok``/
    ``reachable`` → ``reachable``; anything else → ``unreachable``), else from
    ``travel_time_s`` (s, to the nearest haven) with ``reachable``: covered when
    reachable within ``slow_minutes`` minutes, slow when reachable beyond, unreachable
    when not reachable or no time; else from ``reachable`` alone.
    """
    if "status" in defenders.columns:
        words = defenders["status"].map(lambda v: plain(v).lower())
        return np.array(
            [
                w if w in ("covered", "slow", "unreachable") else ("reachable" if is_reachable(w) else "unreachable")
                for w in words
            ],
            dtype=object,
        )
    if "travel_time_s" in defenders.columns:
        seconds = pd.to_numeric(defenders["travel_time_s"], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(seconds)
        if "reachable" in defenders.columns:
            ok &= defenders["reachable"].map(is_reachable).to_numpy(dtype=bool)
        status = np.where(seconds <= slow_minutes * 60.0, "covered", "slow").astype(object)
        status[~ok] = "unreachable"
        return status
    mask = unreachable_mask(defenders)
    if mask is None:
        return None
    return np.where(mask, "unreachable", "reachable").astype(object)


def grid_keys(points: gpd.GeoDataFrame | gpd.GeoSeries, cell_size_m: float) -> tuple[np.ndarray, np.ndarray, Any]:
    """Cell indices ``(ix, iy)`` of points on a square grid of ``cell_size_m`` metres in local UTM."""
    if not (isinstance(cell_size_m, (int, float)) and cell_size_m > 0):
        raise InputError(f"cell_size_m must be a positive number of metres, got {cell_size_m!r}")
    geo = points.geometry if isinstance(points, gpd.GeoDataFrame) else points
    crs = metric_crs(geo)
    centroids = geo.to_crs(crs).centroid
    ix = np.floor(centroids.x.to_numpy() / cell_size_m).astype(np.int64)
    iy = np.floor(centroids.y.to_numpy() / cell_size_m).astype(np.int64)
    return ix, iy, crs


def cell_polygons(ix: np.ndarray, iy: np.ndarray, cell_size_m: float, crs: Any) -> gpd.GeoSeries:
    """The grid squares ``(ix, iy)`` as polygons in EPSG:4326."""
    x0 = np.asarray(ix) * cell_size_m
    y0 = np.asarray(iy) * cell_size_m
    return gpd.GeoSeries(shapely.box(x0, y0, x0 + cell_size_m, y0 + cell_size_m), crs=crs).to_crs(WGS84)


def grid_status(points: gpd.GeoDataFrame, status: np.ndarray | None, cell_size_m: float) -> gpd.GeoDataFrame:
    """Aggregate points to grid squares with a count per status.

    Returns
    -------
    GeoDataFrame in EPSG:4326, one row per non-empty cell: ``ix``, ``iy`` (cell index),
    ``count`` and one count column per status of :data:`STATUS_ORDER` (zeros when
    ``status`` is ``None``), cell polygon as geometry.
    """
    ix, iy, crs = grid_keys(points, cell_size_m)
    table = pd.DataFrame({"ix": ix, "iy": iy})
    for name in STATUS_ORDER:
        table[name] = (status == name).astype(np.int64) if status is not None else 0
    cells = (
        table.groupby(["ix", "iy"], sort=True)
        .agg(count=("ix", "size"), **{name: (name, "sum") for name in STATUS_ORDER})
        .reset_index()
    )
    return gpd.GeoDataFrame(cells, geometry=cell_polygons(cells["ix"], cells["iy"], cell_size_m, crs).values, crs=WGS84)


def grid_counts(points: gpd.GeoDataFrame, cell_size_m: float) -> gpd.GeoDataFrame:
    """Defenders per square cell: ``count`` and ``unreachable`` (-1 when reachability is unknown)."""
    mask = unreachable_mask(points)
    status = None if mask is None else np.where(mask, "unreachable", "reachable").astype(object)
    cells = grid_status(points, status, cell_size_m)
    unreachable = cells["unreachable"] if mask is not None else -1
    return cells.assign(unreachable=unreachable)[["count", "unreachable", "geometry"]]


def worst_status(counts: dict[str, int]) -> str:
    """The status that colours a cell: the worst one present (unreachable > slow > reachable > covered)."""
    for name in ("unreachable", "slow", "reachable", "covered"):
        if counts.get(name, 0) > 0:
            return name
    return ""


# ------------------------------------------------------------------ alerts


def level_rank(level: Any) -> int:
    """Rank of an alert level word: 3 high, 2 medium, 1 low, 0 inactive; unknown words count as 2."""
    word = plain(level).lower()
    if word in _INACTIVE_LEVELS:
        return 0
    return _LEVEL_RANK.get(word, 2)


def active_alerts(alerts: pd.DataFrame) -> pd.DataFrame:
    """Active alerts with a ``rank`` column (see :func:`level_rank`).

    A row is active unless its ``level`` is empty/none/ok (or ``active`` is false); a
    row without a level is active at medium rank when its ``score`` is positive.
    """
    if "defender_id" not in alerts.columns:
        raise InputError("alerts: column 'defender_id' is missing; alerts join defenders by defender_id")
    if "level" in alerts.columns:
        rank = alerts["level"].map(level_rank)
    else:
        score = pd.to_numeric(column(alerts, "score"), errors="coerce").fillna(0)
        rank = pd.Series(np.where(score > 0, 2, 0), index=alerts.index)
    keep = rank > 0
    if "active" in alerts.columns:
        keep &= alerts["active"].map(is_reachable)  # true/yes/1
    return alerts.loc[keep].assign(rank=rank[keep].astype(int))


# ------------------------------------------------------------------ incidents: time bins and recent


def incident_dates(incidents: pd.DataFrame) -> pd.Series:
    """Incident dates (``date`` or ``event_date`` column) as naive datetimes; NaT where unknown."""
    key = next((c for c in ("date", "event_date") if c in incidents.columns), None)
    if key is None:
        return pd.Series(pd.NaT, index=incidents.index, dtype="datetime64[ns]")
    dates = pd.to_datetime(incidents[key], errors="coerce", utc=True, format="mixed")
    return dates.dt.tz_convert(None)


#: Columns :func:`havenmap.threat.weigh_incidents` adds; with them the heat shows severity.
SEVERITY_COLUMNS = ("type_weight", "fatality_factor", "precision_weight")


def incident_deaths(incidents: pd.DataFrame) -> np.ndarray:
    """Fatalities per incident as integers (missing count as 0)."""
    if "fatalities" not in incidents.columns:
        return np.zeros(len(incidents), dtype=np.int64)
    deaths = pd.to_numeric(incidents["fatalities"], errors="coerce").fillna(0).clip(lower=0)
    return np.rint(deaths.to_numpy(dtype=float)).astype(np.int64)


def incident_weights(incidents: pd.DataFrame) -> np.ndarray:
    """Heat weight per incident (integer units).

    Weighted incidents (with :data:`SEVERITY_COLUMNS`, from the threat module) weigh their
    severity — type × fatalities × location precision, in tenths, at least 1 — without the age
    decay, since the week slider shows time itself. Otherwise ``fatalities + 1``.
    """
    if all(c in incidents.columns for c in SEVERITY_COLUMNS):
        severity = np.prod(
            [pd.to_numeric(incidents[c], errors="coerce").fillna(0).to_numpy(dtype=float) for c in SEVERITY_COLUMNS],
            axis=0,
        )
        return np.maximum(np.rint(10.0 * severity), 1).astype(np.int64)
    return incident_deaths(incidents) + 1


def as_timestamp(as_of: Any) -> pd.Timestamp | None:
    """``as_of`` (date, datetime, text) as a naive Timestamp; ``None`` if missing or unreadable."""
    if as_of is None:
        return None
    try:
        stamp = pd.Timestamp(as_of)
    except (TypeError, ValueError):
        return None
    if pd.isna(stamp):
        return None
    return stamp.tz_convert(None) if stamp.tzinfo is not None else stamp


def _end_of_day(stamp: pd.Timestamp) -> pd.Timestamp:
    """The instant after ``stamp``'s day when it is a plain date (midnight), else ``stamp`` itself."""
    return stamp + pd.Timedelta(days=1) if stamp == stamp.normalize() else stamp + pd.Timedelta(microseconds=1)


def heat_frames(
    incidents: gpd.GeoDataFrame, as_of: pd.Timestamp | None, bin_m: float = 50.0, max_cells: int = 20_000
) -> dict[str, Any]:
    """Incident heat, binned on a lat/lon grid, for all dates and for each ISO week.

    Incidents (EPSG:4326) dated after ``as_of`` are left out. Points are summed (weight
    ``fatalities + 1``) into squares of ``bin_m`` metres; the squares double in size
    until the all-dates picture has at most ``max_cells`` of them.

    Returns
    -------
    dict with ``lat0``, ``lon0``, ``dlat``, ``dlon`` (grid origin and step, degrees),
    ``bin_m`` (metres), ``all`` (flat ``[ix, iy, weight, ...]`` ints), ``weeks`` (labels,
    one per ISO week from the first to the last dated incident, Monday start), ``starts``
    (ISO date of each week's Monday), ``n`` and ``deaths`` (incidents and fatalities per
    week), ``frames`` (one flat list per week), ``total`` (incidents drawn).
    """
    dates = incident_dates(incidents)
    if as_of is not None:
        keep = (dates.isna() | (dates < _end_of_day(as_of))).to_numpy()
        incidents, dates = incidents.loc[keep], dates.loc[keep]
    weight = incident_weights(incidents)
    pts = incidents.geometry
    pts = pts if (pts.geom_type == "Point").all() else pts.representative_point()
    lon, lat = pts.x.to_numpy(), pts.y.to_numpy()
    out: dict[str, Any] = {"weeks": [], "starts": [], "n": [], "deaths": [], "frames": [], "total": len(lon)}
    if not len(lon):
        out.update(lat0=0.0, lon0=0.0, dlat=1.0, dlon=1.0, bin_m=bin_m, all=[])
        return out
    lat0, lon0 = float(lat.min()), float(lon.min())
    coslat = max(math.cos(math.radians(float(np.mean(lat)))), 0.01)
    while True:
        dlat, dlon = bin_m / EARTH_M_PER_DEG, bin_m / (EARTH_M_PER_DEG * coslat)
        ix = np.floor((lon - lon0) / dlon).astype(np.int64)
        iy = np.floor((lat - lat0) / dlat).astype(np.int64)
        key = ix * (int(iy.max()) + 1) + iy
        if len(np.unique(key)) <= max_cells:
            break
        bin_m *= 2.0
    out.update(lat0=round(lat0, 7), lon0=round(lon0, 7), dlat=dlat, dlon=dlon, bin_m=bin_m)
    table = pd.DataFrame({"ix": ix, "iy": iy, "w": weight})
    out["all"] = _flat_cells(table.groupby(["ix", "iy"], sort=True)["w"].sum().reset_index())
    week_start = (dates - pd.to_timedelta(dates.dt.day_of_week, unit="D")).dt.normalize()
    dated = week_start.notna().to_numpy()
    if not dated.any():
        return out
    first = week_start[dated].min()
    last = (
        max(week_start[dated].max(), (as_of - pd.Timedelta(days=as_of.weekday())).normalize())
        if as_of is not None
        else week_start[dated].max()
    )
    n_weeks = int((last - first).days // 7) + 1
    widx = ((week_start[dated] - first).dt.days // 7).to_numpy().astype(np.int64)
    deaths = incident_deaths(incidents)[dated]
    out["n"] = np.bincount(widx, minlength=n_weeks).astype(int).tolist()
    out["deaths"] = np.bincount(widx, weights=deaths, minlength=n_weeks).astype(int).tolist()
    starts = [first + pd.Timedelta(weeks=k) for k in range(n_weeks)]
    out["starts"] = [s.date().isoformat() for s in starts]
    out["weeks"] = [f"{s.isocalendar().year}-W{s.isocalendar().week:02d} ({s:%d %b})" for s in starts]
    weekly = (
        pd.DataFrame({"k": widx, "ix": ix[dated], "iy": iy[dated], "w": weight[dated]})
        .groupby(["k", "ix", "iy"], sort=True)["w"]
        .sum()
        .reset_index()
    )
    bounds = np.searchsorted(weekly["k"].to_numpy(), np.arange(n_weeks + 1))
    flat = weekly[["ix", "iy", "w"]].to_numpy(dtype=np.int64)
    out["frames"] = [flat[bounds[k] : bounds[k + 1]].ravel().tolist() for k in range(n_weeks)]
    return out


def _flat_cells(cells: pd.DataFrame) -> list[int]:
    return cells[["ix", "iy", "w"]].to_numpy(dtype=np.int64).ravel().tolist()


def recent_incidents(
    incidents: gpd.GeoDataFrame, as_of: pd.Timestamp | None, days: float, cap: int
) -> dict[str, Any] | None:
    """Marker rows for incidents of the last ``days`` days up to ``as_of`` (default: the latest date).

    Returns ``None`` when no incident has a date. Otherwise a dict: ``rows`` (most recent
    first, at most ``cap``) of ``[lat, lon, type index, date, fatalities, notes, id]`` with
    plain (unescaped) text, ``types`` (the type texts), ``total`` (recent incidents before
    the cap), ``start`` / ``end`` (ISO dates of the window).
    """
    dates = incident_dates(incidents)
    if dates.notna().sum() == 0:
        return None
    end = as_of if as_of is not None else dates.max().normalize()
    start = end.normalize() - pd.Timedelta(days=float(days)) + pd.Timedelta(days=1)
    keep = ((dates >= start) & (dates < _end_of_day(end))).to_numpy()
    recent = incidents.loc[keep].assign(_date=dates[keep])
    total = len(recent)
    recent = recent.sort_values("_date", ascending=False, kind="stable").head(int(cap))
    kinds = [
        " / ".join(p for p in (plain(a, 80), plain(b, 80)) if p) or "incident"
        for a, b in zip(column(recent, "event_type"), column(recent, "sub_event_type"), strict=True)
    ]
    types = sorted(set(kinds))
    index = {t: i for i, t in enumerate(types)}
    lat, lon = point_rows(recent.geometry)
    deaths = incident_deaths(recent)
    ids = column(recent, "incident_id")
    rows = [
        [la, lo, index[k], d.date().isoformat(), int(f), plain(n), plain(i, 60)]
        for la, lo, k, d, f, n, i in zip(
            lat, lon, kinds, recent["_date"], deaths, column(recent, "notes"), ids, strict=True
        )
    ]
    return {
        "rows": rows,
        "types": types,
        "total": total,
        "start": start.date().isoformat(),
        "end": end.date().isoformat(),
    }


# ------------------------------------------------------------------ icons


def haven_kind(kind: Any) -> int:
    """Index into :data:`HAVEN_KINDS` for a haven's ``kind`` text."""
    # whole words only: "un" (United Nations) must not match "community_centre" or "Fundación"
    tokens = set(re.split(r"[\W_]+", plain(kind).lower()))
    text = " ".join(re.split(r"[\W_]+", plain(kind).lower()))
    for i, (words, *_rest) in enumerate(HAVEN_KINDS[:-1]):
        if any((w in tokens) if " " not in w else (w in text) for w in words):
            return i
    return len(HAVEN_KINDS) - 1


def haven_icon_svg(index: int, size: int = 24) -> str:
    """Inline SVG of the haven icon ``index`` (a coloured badge with a white glyph)."""
    _, colour, glyph, _ = HAVEN_KINDS[index]
    return (
        f'<svg width="{size}" height="{size}" viewBox="0 0 24 24" aria-hidden="true">'
        f'<rect x="1" y="1" width="22" height="22" rx="6" fill="{colour}" stroke="#fff" stroke-width="1.5"/>'
        f"{_GLYPHS[glyph]}</svg>"
    )


def alert_icon_svg(colour: str, size: int = 22) -> str:
    """Inline SVG warning triangle in ``colour``."""
    return (
        f'<svg width="{size}" height="{size}" viewBox="0 0 24 24" aria-hidden="true">'
        f'<path d="M12 2 23 21H1z" fill="{colour}" stroke="#fff" stroke-width="1.5" stroke-linejoin="round"/>'
        '<path d="M12 8v6M12 16.5v2" stroke="#fff" stroke-width="2.4" stroke-linecap="round"/></svg>'
    )


def base_icon_svg(size: int = 22) -> str:
    """Inline SVG of a patrol base: dark square with a white 'B'."""
    return (
        f'<svg width="{size}" height="{size}" viewBox="0 0 24 24" aria-hidden="true">'
        f'<rect x="1.5" y="1.5" width="21" height="21" rx="3" fill="{BASE_COLOUR}" stroke="#fff" stroke-width="1.5"/>'
        '<text x="12" y="17" text-anchor="middle" font-size="14" font-weight="bold" fill="#fff" '
        'font-family="sans-serif">B</text></svg>'
    )


# ------------------------------------------------------------------ legend and title


def _row(swatch: str, text: str) -> str:
    return '<div class="hm-lrow"><span class="hm-sw">' + swatch + "</span><span>" + text + "</span></div>"


def line_swatch(colour: str, width: float, dash: str | None = None, arrow: bool = False) -> str:
    """A short line in ``colour`` (SVG), optionally dashed and with an arrowhead."""
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    head = f'<path d="M18 1 26 5 18 9z" fill="{colour}"/>' if arrow else ""
    return (
        f'<svg width="28" height="10" aria-hidden="true"><line x1="1" y1="5" x2="{22 if arrow else 27}" y2="5" '
        f'stroke="{colour}" stroke-width="{width}"{dash_attr}/>{head}</svg>'
    )


def dot_swatch(colour: str, border: str = "#ffffff", r: float = 6) -> str:
    """A filled circle (SVG)."""
    return (
        f'<svg width="28" height="14" aria-hidden="true"><circle cx="14" cy="7" r="{r}" fill="{colour}" '
        f'stroke="{border}" stroke-width="1.5"/></svg>'
    )


def box_swatch(colour: str, opacity: float = 0.45, stroke: str | None = None, dash: str | None = None) -> str:
    """A filled rectangle (SVG)."""
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<svg width="28" height="14" aria-hidden="true"><rect x="3" y="1.5" width="22" height="11" '
        f'fill="{colour}" fill-opacity="{opacity}" stroke="{stroke or colour}" stroke-width="1.5"{dash_attr}/></svg>'
    )


def heat_swatch() -> str:
    """The heat colour ramp (SVG)."""
    stops = "".join(f'<stop offset="{k}" stop-color="{c}"/>' for k, c in HEAT_GRADIENT.items())
    return (
        f'<svg width="28" height="12" aria-hidden="true"><defs><linearGradient id="hm-heat">{stops}'
        '</linearGradient></defs><rect x="1" y="1" width="26" height="10" fill="url(#hm-heat)"/></svg>'
    )


def html_swatch(inner: str) -> str:
    """Any small inline HTML/SVG as a swatch."""
    return inner


def legend_html(sections: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> str:
    """The legend box: titled sections of (swatch HTML, escaped text HTML) rows."""
    body = []
    for title, rows in sections:
        if not rows:
            continue
        body.append(f'<div class="hm-lsec">{title}</div>')
        body.extend(_row(swatch, text) for swatch, text in rows)
    return (
        '<div id="hm-legend" class="hm-panel leaflet-control"><details open><summary><b>Legend</b></summary>'
        + "".join(body)
        + "</details></div>"
    )


def title_html(title: str, as_of: Any, exact_defenders: bool) -> str:
    """The title box: escaped title, as-of date and, for exact maps, a red warning."""
    parts = [f'<div class="hm-title-name">{safe_text(title)}</div>']
    if as_of is not None:
        stamp = as_of.isoformat() if hasattr(as_of, "isoformat") else as_of
        if isinstance(as_of, pd.Timestamp) and as_of == as_of.normalize():
            stamp = as_of.date().isoformat()
        parts.append(f'<div class="hm-asof">as of {safe_text(stamp)}</div>')
    if exact_defenders:
        parts.append('<div id="hm-exact-warning">⚠ EXACT DEFENDER LOCATIONS — do not share</div>')
    return '<div id="hm-title" class="hm-panel">' + "".join(parts) + "</div>"


# ------------------------------------------------------------------ page assets

HM_CSS = """
.leaflet-container{background:#f2efe9;font:12px/1.35 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
.leaflet-heatmap-layer{pointer-events:none;opacity:.6}
.hm-panel{background:rgba(255,255,255,.94);border:1px solid #999;border-radius:4px;padding:6px 8px;
 box-shadow:0 1px 4px rgba(0,0,0,.25);font:12px/1.35 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
#hm-title{position:absolute;top:10px;left:50%;transform:translateX(-50%);z-index:1000;text-align:center;
 max-width:46%;pointer-events:auto}
.hm-title-name{font-weight:bold;font-size:15px}
#hm-exact-warning{color:#fff;background:#c00000;font-weight:bold;padding:2px 6px;margin-top:4px}
#hm-legend{max-height:44vh;overflow:auto;max-width:280px;margin-bottom:4px}
#hm-legend summary{cursor:pointer}
.hm-lsec{margin:6px 0 2px;font-weight:bold;color:#333;border-top:1px solid #ddd;padding-top:3px}
.hm-lrow{display:flex;align-items:center;gap:6px;margin:1px 0}
.hm-sw{flex:none;width:28px;line-height:0;text-align:center}
.hm-box{width:max-content;max-width:320px;white-space:normal;overflow-wrap:break-word}
.hm-box .hm-head{font-weight:bold}
.hm-inc{background:#ff7f00;border:1.5px solid #7a3b00;border-radius:50%;box-sizing:border-box}
.hm-inc-fatal{background:#b10026;border-color:#3d000d}
.leaflet-cluster-anim .leaflet-marker-icon:not(.hm-cluster):not(.hm-inc){transition:none}
.hm-cluster{background:rgba(230,110,0,.9);color:#fff;border:2px solid #fff;border-radius:50%;display:flex;
 align-items:center;justify-content:center;font:bold 11px/1 sans-serif;box-sizing:border-box;box-shadow:0 0 2px #5a2a00}
.hm-icon{line-height:0}
.hm-stop{display:flex;align-items:center;justify-content:center;border-radius:4px;color:#fff;font-weight:bold;
 font-size:11px;border:1.5px solid #fff;box-sizing:border-box;box-shadow:0 0 0 1px #222}
.hm-badge-icon{width:0;height:0}
.hm-badge{position:absolute;transform:translate(-50%,-50%);display:inline-flex;gap:3px;
 background:rgba(255,255,255,.92);border:1px solid #555;border-radius:8px;padding:0 4px;font:bold 11px/15px sans-serif;
 white-space:nowrap}
.hm-time{width:240px}
.hm-time .hm-chart{display:block;margin:3px 0}
.hm-time .hm-bar{fill:#a3a3a3;cursor:pointer}
.hm-time .hm-bar-on{fill:#d7191c}
.hm-time .hm-row{display:flex;align-items:center;gap:4px}
.hm-time input[type=range]{flex:1;min-width:0}
.hm-time button{font-size:11px;padding:0 4px;cursor:pointer}
.hm-label{margin-top:2px}
"""

for _name, (_fill, _text, _ink) in STATUS.items():
    HM_CSS += f".hm-st-{_name}{{color:{_ink}}}\n"

HM_JS = r"""
(function () {
  "use strict";
  var HM = (window.HM = window.HM || {});
  HM.groups = {};
  HM.map = null;

  // Google polyline decoding (1e-5 degrees); one delta stream split into lines by counts.
  function decode(s, counts) {
    var out = new Array(counts.length), i = 0, lat = 0, lng = 0;
    function next() {
      var result = 0, shift = 0, b;
      do { b = s.charCodeAt(i++) - 63; result |= (b & 31) << shift; shift += 5; } while (b >= 32);
      return (result & 1) ? ~(result >> 1) : (result >> 1);
    }
    for (var c = 0; c < counts.length; c++) {
      var n = counts[c], line = new Array(n);
      for (var k = 0; k < n; k++) { lat += next(); lng += next(); line[k] = [lat / 1e5, lng / 1e5]; }
      out[c] = line;
    }
    return out;
  }
  HM.decode = decode;

  // A tooltip/popup body: every line is set as textContent, so user text is never parsed as HTML.
  function box(lines) {
    var div = document.createElement("div");
    div.className = "hm-box";
    for (var i = 0; i < lines.length; i++) {
      if (lines[i] === null || lines[i] === undefined || lines[i] === "") continue;
      var row = document.createElement("div");
      if (i === 0) row.className = "hm-head";
      row.textContent = String(lines[i]);
      div.appendChild(row);
    }
    return div;
  }
  HM.box = box;
  function tip(layer, lines, sticky) {
    layer.bindTooltip(function () { return box(lines); }, {sticky: !!sticky, className: "hm-tip"});
  }
  function pop(layer, lines) {
    layer.bindPopup(function () { return box(lines); }, {maxWidth: 340});
  }
  function rendererFor(d) {
    if (d.canvas) return L.canvas({pane: d.pane, padding: 0.3});
    return d.pane ? L.svg({pane: d.pane}) : null;
  }

  HM.call = function (fn, target, d) {
    if (d && d.layer) HM.groups[d.layer] = target;
    return HM[fn](target, d);
  };

  HM.setup = function (map, d) {
    HM.map = map;
    d.panes.forEach(function (p) { map.createPane(p[0]).style.zIndex = p[1]; });
    var c = map.getContainer(), title = document.getElementById("hm-title");
    if (title) {
      c.appendChild(title);
      L.DomEvent.disableClickPropagation(title);
      L.DomEvent.disableScrollPropagation(title);
    }
  };

  HM.legend = function (map, d) {
    var el = document.getElementById("hm-legend");
    if (!el) return;
    var ctl = L.control({position: "bottomright"});
    ctl.onAdd = function () {
      L.DomEvent.disableClickPropagation(el);
      L.DomEvent.disableScrollPropagation(el);
      return el;
    };
    ctl.addTo(map);
  };

  // Roads: one canvas polyline per tier, each drawn from its own zoom level.
  HM.ZoomTiers = L.Layer.extend({
    initialize: function (layers, zooms, attribution) {
      this._tiers = layers; this._zooms = zooms;
      L.setOptions(this, {attribution: attribution});
    },
    getLayers: function () { return this._tiers.slice(); },
    onAdd: function (map) { map.on("zoomend", this._sync, this); this._sync(); },
    onRemove: function (map) {
      map.off("zoomend", this._sync, this);
      this._tiers.forEach(function (l) { if (map.hasLayer(l)) map.removeLayer(l); });
    },
    _sync: function () {
      var map = this._map, z = map.getZoom();
      for (var i = 0; i < this._tiers.length; i++) {
        var want = z >= this._zooms[i], has = map.hasLayer(this._tiers[i]);
        if (want && !has) map.addLayer(this._tiers[i]);
        else if (!want && has) map.removeLayer(this._tiers[i]);
      }
    }
  });
  HM.roads = function (group, d) {
    var renderer = L.canvas({pane: d.pane, padding: 0.3}), layers = [], zooms = [];
    d.tiers.forEach(function (t) {
      layers.push(L.polyline(decode(t.enc, t.counts),
        L.extend({renderer: renderer, interactive: false, smoothFactor: 1.5, className: "hm-road"}, t.style)));
      zooms.push(t.minZoom);
    });
    group.addLayer(new HM.ZoomTiers(layers, zooms, d.attribution));
  };

  // Incident heat with a week slider (a bar chart of incidents per week; last position = all weeks).
  HM.heat = function (group, d) {
    function pts(a) {
      var out = new Array(a.length / 3);
      for (var i = 0, j = 0; i < a.length; i += 3, j++)
        out[j] = [d.lat0 + (a[i + 1] + 0.5) * d.dlat, d.lon0 + (a[i] + 0.5) * d.dlon, a[i + 2]];
      return out;
    }
    var all = pts(d.all), layer = L.heatLayer(all, d.options), n = d.weeks.length;
    group.addLayer(layer);
    // Keep the binned grid continuous when zoomed in: radius at least ~one bin in pixels.
    function fitRadius() {
      var map = group._map;
      if (!map) return;
      var mpp = 40075016.686 * Math.cos(map.getCenter().lat * Math.PI / 180) / Math.pow(2, map.getZoom() + 8);
      var r = Math.max(d.options.radius, Math.min(80, Math.round(1.1 * d.binM / mpp)));
      if (r !== layer.options.radius) layer.setOptions({radius: r, blur: Math.round(r * 0.8)});
    }
    group.on("add", function () {
      group._map.off("zoomend", fitRadius);
      group._map.on("zoomend", fitRadius);
      fitRadius();
    });
    HM.heatLayer = layer;
    if (!n) return;
    var frames = new Array(n), ctl = L.control({position: "bottomleft"}), label, input, bars = [], current = n;
    function show(i) {
      i = Math.max(0, Math.min(n, i | 0));
      current = i;
      if (i === n) { layer.setLatLngs(all); }
      else { frames[i] = frames[i] || pts(d.frames[i]); layer.setLatLngs(frames[i]); }
      if (input) {
        input.value = i;
        label.textContent = i === n ? d.allLabel
          : d.weeks[i] + ": " + d.n[i] + " incident" + (d.n[i] === 1 ? "" : "s") + ", " + d.deaths[i] + " killed";
        for (var k = 0; k < bars.length; k++)
          bars[k].setAttribute("class", (i === n || k === i) ? "hm-bar hm-bar-on" : "hm-bar");
      }
      HM.heatFrame = i;
    }
    HM.heatShow = show;
    function button(parent, text, title, fn) {
      var b = L.DomUtil.create("button", "", parent);
      b.type = "button"; b.textContent = text; b.title = title;
      b.addEventListener("click", fn);
      return b;
    }
    ctl.onAdd = function () {
      var div = L.DomUtil.create("div", "hm-panel hm-time");
      L.DomUtil.create("div", "hm-head", div).textContent = d.title;
      var ns = "http://www.w3.org/2000/svg", W = 240, H = 34, max = 1;
      for (var m = 0; m < n; m++) max = Math.max(max, d.n[m]);
      var svg = document.createElementNS(ns, "svg"), bw = W / n;
      svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("class", "hm-chart");
      bars = [];
      for (var k = 0; k < n; k++) {
        var h = d.n[k] ? Math.max(2, Math.round((H - 2) * d.n[k] / max)) : 0;
        var r = document.createElementNS(ns, "rect");
        r.setAttribute("x", (k * bw).toFixed(2)); r.setAttribute("y", H - h);
        r.setAttribute("width", Math.max(bw - 1, 0.6).toFixed(2)); r.setAttribute("height", h);
        var t = document.createElementNS(ns, "title");
        t.textContent = d.weeks[k] + ": " + d.n[k];
        r.appendChild(t);
        r.addEventListener("click", (function (kk) { return function () { show(kk); }; })(k));
        svg.appendChild(r); bars.push(r);
      }
      div.appendChild(svg);
      var row = L.DomUtil.create("div", "hm-row", div);
      button(row, "\u25C0", "previous week", function () { show(current === n ? n - 1 : current - 1); });
      input = L.DomUtil.create("input", "", row);
      input.type = "range"; input.min = 0; input.max = n; input.step = 1; input.value = current;
      input.title = "week (far right: all weeks)";
      input.addEventListener("input", function () { show(+input.value); });
      button(row, "\u25B6", "next week", function () { show(current + 1); });
      button(row, "all", "all weeks", function () { show(n); });
      label = L.DomUtil.create("div", "hm-label", div);
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      setTimeout(function () { show(current); }, 0);
      return div;
    };
    ctl.onRemove = function () { input = null; };
    group.on("add", function () { ctl.addTo(group._map); });
    group.on("remove", function () { ctl.remove(); });
    HM.heatControl = ctl;
  };

  // Recent incidents: clustered markers, popups built from text.
  HM.incidents = function (group, d) {
    var icons = [L.divIcon({className: "hm-inc", iconSize: [12, 12]}),
                 L.divIcon({className: "hm-inc hm-inc-fatal", iconSize: [14, 14]})];
    var cluster = L.markerClusterGroup({
      chunkedLoading: true, maxClusterRadius: 50, showCoverageOnHover: false,
      iconCreateFunction: function (c) {
        var k = c.getChildCount(), s = k < 10 ? 22 : (k < 100 ? 28 : 34);
        return L.divIcon({html: String(k), className: "hm-cluster", iconSize: [s, s]});
      }
    });
    var markers = d.rows.map(function (r) {
      var m = L.marker([r[0], r[1]], {icon: icons[r[4] > 0 ? 1 : 0], keyboard: false});
      pop(m, [d.types[r[2]], "date: " + r[3], "fatalities: " + r[4], r[5], r[6] ? "id: " + r[6] : ""]);
      return m;
    });
    cluster.addLayers(markers);
    group.addLayer(cluster);
  };

  function arrows(line, colour) {
    if (line.setText) line.setText("\u25BA        ", {repeat: true, offset: 5,
      attributes: {fill: colour, "font-size": "15px", "class": "hm-arrow"}});
  }

  // Lines: groups of encoded lines, each group one style; per-line tooltips when given.
  HM.lines = function (group, d) {
    var renderer = rendererFor(d);
    d.groups.forEach(function (g) {
      var lls = decode(g.enc, g.counts);
      var opts = L.extend({interactive: !!(g.tips || g.tip), smoothFactor: 1}, g.style);
      if (renderer) opts.renderer = renderer;
      if (g.tips) {
        for (var i = 0; i < lls.length; i++) {
          var one = L.polyline(lls[i], opts);
          tip(one, g.tips[i], true);
          if (g.arrows) arrows(one, g.style.color);
          group.addLayer(one);
        }
      } else if (lls.length) {
        var l = L.polyline(lls, opts);
        if (g.tip) tip(l, g.tip, true);
        group.addLayer(l);
      }
    });
  };

  // Polygons (encoded rings), with an optional badge of coloured counts at the centre.
  HM.areas = function (group, d) {
    var renderer = rendererFor(d);
    d.items.forEach(function (it) {
      var rings = decode(it.enc, it.counts), polys = [], r = 0;
      it.parts.forEach(function (k) { polys.push(rings.slice(r, r + k)); r += k; });
      var opts = L.extend({className: d.cls || ""}, it.style);
      if (renderer) opts.renderer = renderer;
      var p = L.polygon(polys.length === 1 ? polys[0] : polys, opts);
      if (it.tip) tip(p, it.tip, true);
      if (it.popup) pop(p, it.popup);
      group.addLayer(p);
      if (it.badge) {
        var el = document.createElement("div");
        el.className = "hm-badge";
        it.badge.forEach(function (b) {
          var s = document.createElement("span");
          s.className = b[1]; s.textContent = b[0];
          el.appendChild(s);
        });
        var m = L.marker(it.center, {icon: L.divIcon({className: "hm-badge-icon", html: el, iconSize: null}),
                                      keyboard: false, interactive: false});
        group.addLayer(m);
      }
    });
  };

  // Point markers with inline-SVG or text icons.
  HM.points = function (group, d) {
    var icons = d.icons.map(function (ic) {
      return ic.html === null ? null : L.divIcon({className: ic.cls, html: ic.html, iconSize: [ic.size, ic.size]});
    });
    d.rows.forEach(function (r) {
      var icon = icons[r[2]];
      if (icon === null) {
        var ic = d.icons[r[2]], el = document.createElement("div");
        el.className = "hm-stop"; el.style.background = ic.color;
        el.style.width = el.style.height = ic.size + "px";
        el.textContent = r[5];
        icon = L.divIcon({className: ic.cls, html: el, iconSize: [ic.size, ic.size]});
      }
      var m = L.marker([r[0], r[1]], {icon: icon, keyboard: false, riseOnHover: true});
      if (r[3]) tip(m, r[3]);
      if (r[4]) pop(m, r[4]);
      group.addLayer(m);
    });
  };

  // Circle markers (exact defender points): rows [lat, lon, style index, tooltip lines].
  HM.dots = function (group, d) {
    d.rows.forEach(function (r) {
      var m = L.circleMarker([r[0], r[1]], d.styles[r[2]]);
      tip(m, r[3]);
      group.addLayer(m);
    });
  };

  // Patrol days behave like radio buttons: switching one on switches the others off.
  HM.radio = function (map, d) {
    var gs = d.names.map(function (k) { return HM.groups[k]; }).filter(Boolean);
    map.on("overlayadd", function (e) {
      if (gs.indexOf(e.layer) < 0) return;
      // in a microtask: after the layer control has handled the click, so it redraws its checkboxes
      Promise.resolve().then(function () {
        gs.forEach(function (g) { if (g !== e.layer && map.hasLayer(g)) map.removeLayer(g); });
      });
    });
  };

  HM.ready = function (map) {
    HM.built = performance.now();
    HM.home = {center: map.getCenter(), zoom: map.getZoom()};
    requestAnimationFrame(function () {
      requestAnimationFrame(function () {
        window.hmDrawn = performance.now();
        document.documentElement.setAttribute("data-hm-drawn", "1");
      });
    });
  };

  // For tests and debugging: per layer-control group, whether it is on and how many leaves it holds/draws.
  HM.stats = function () {
    var out = {};
    Object.keys(HM.groups).forEach(function (name) {
      var g = HM.groups[name], total = 0, drawn = 0;
      (function walk(l) {
        if (L.MarkerClusterGroup && l instanceof L.MarkerClusterGroup) {
          var k = l.getLayers().length; total += k; if (l._map) drawn += k; return;
        }
        if (l.getLayers && !(l instanceof L.Path)) { l.getLayers().forEach(walk); return; }
        total += 1; if (l._map) drawn += 1;
      })(g);
      out[name] = {on: !!(HM.map && HM.map.hasLayer(g)), total: total, drawn: drawn};
    });
    return out;
  };
})();
"""
