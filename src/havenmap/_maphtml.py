"""Private helpers for :mod:`havenmap.maps`: safe text, compact geometry, palettes, time bins, page assets.

Nothing here draws on a map by itself; :mod:`havenmap._maplayers` composes these pieces
through :class:`havenmap.maps.MapBuilder`. Every layer is handed to the browser as compact
JSON (lines as Google-polyline strings at 1e-5 degrees, heat as integer grid cells) and
built there with Leaflet by the page library, package data ``havenmap/assets/hm.js`` (with
``hm.css``), read by :func:`page_js` / :func:`page_css`. User text is placed into the page
only through ``textContent`` (never parsed as HTML); the page title is escaped with
:func:`safe_text`.
"""

from __future__ import annotations

import html
import importlib.resources
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

# One visual language (checked for colour-vision deficiencies in tests/test_maps.py with
# colorspacious): THREAT is one sequential yellow-orange-red ramp (ColorBrewer YlOrRd) for
# heat, road risk, hot spots, incidents and alerts; REACH one sequential blue ramp
# (ColorBrewer Blues) for service-area bands, routes and defenders who reach a haven;
# defenders who cannot reach one are near-black; havens and patrol units have their own
# categorical colours (Paul Tol's muted scheme) and shapes.
THREAT_RAMP = ("#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026")
REACH_RAMP = ("#08519c", "#3182bd", "#6baed6", "#bdd7e7")
HEAT_GRADIENT = {
    0.2: THREAT_RAMP[0],
    0.4: THREAT_RAMP[1],
    0.6: THREAT_RAMP[2],
    0.8: THREAT_RAMP[3],
    1.0: THREAT_RAMP[4],
}
INCIDENT_COLOUR = THREAT_RAMP[2]
FATAL_COLOUR = THREAT_RAMP[4]
CLUSTER_COLOUR = THREAT_RAMP[1]
RISK_COLOURS = THREAT_RAMP
HOTSPOT_CLASSES = (  # (significance value, colour, line weight)
    ("hot 99%", THREAT_RAMP[4], 5.0),
    ("hot 95%", THREAT_RAMP[3], 4.0),
    ("hot 90%", THREAT_RAMP[2], 3.0),
)
BAND_COLOURS = REACH_RAMP
ROUTE_COLOUR = REACH_RAMP[0]
STATUS = {  # defender status -> (colour, legend text)
    "covered": ("#2171b5", "a haven within {slow:g} min"),
    "slow": ("#9ecae1", "more than {slow:g} min to a haven"),
    "reachable": ("#6baed6", "can reach a haven (time unknown)"),
    "unreachable": ("#252525", "cannot reach any haven"),
}
STATUS_ORDER = ("covered", "slow", "reachable", "unreachable")
COUNT_COLOUR = "#737373"  # defender cells when status is unknown
ALERT_LEVELS = (  # (rank, colour, legend text, summary word); rank from the level word
    (3, THREAT_RAMP[4], "high / critical alert", "high / critical"),
    (2, THREAT_RAMP[2], "medium alert", "medium"),
    (1, THREAT_RAMP[0], "low alert / watch", "low / watch"),
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
# patrol units: the first three differ from every other colour of the map; lines with arrows
# and diamond stops tell them from everything else
UNIT_COLOURS = ("#882255", "#44AA99", "#DDCC77", "#000000", "#88CCEE", "#0077BB")
BASE_COLOUR = "#263238"
HAVEN_COLOURS = ("#332288", "#117733", "#AA4499", "#999933")  # embassy, clinic, worship, other

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
        HAVEN_COLOURS[0],
        "flag",
        "embassy / diplomatic",
    ),
    (
        ("clinic", "clínica", "clinica", "hospital", "doctor", "doctors", "health", "medical", "pharmacy"),
        HAVEN_COLOURS[1],
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
        HAVEN_COLOURS[2],
        "dome",
        "place of worship",
    ),
    ((), HAVEN_COLOURS[3], "house", "other haven / shelter"),
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
    frame = checked_layer(frame, layer)
    if frame is None:
        return None
    return frame if frame.crs.equals(WGS84) else frame.to_crs(WGS84)


def checked_layer(frame: gpd.GeoDataFrame | None, layer: str) -> gpd.GeoDataFrame | None:
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


def wgs84_bounds(frame: gpd.GeoDataFrame) -> np.ndarray:
    """``(west, south, east, north)`` of ``frame`` in degrees."""
    box = gpd.GeoSeries([shapely.box(*frame.total_bounds)], crs=frame.crs).to_crs(WGS84)
    return box.total_bounds


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


def road_name(value: Any) -> str:
    """A road's display name: the first of an OSM name list, ``""`` when unnamed."""
    if isinstance(value, (list, tuple, np.ndarray)):
        value = value[0] if len(value) else ""
    return plain(value, 80)


def road_layers(roads: gpd.GeoDataFrame, tolerance_m: float = SIMPLIFY_M) -> tuple[list[dict[str, Any]], list[str]]:
    """The base drawing: road lines by tier and name, merged, simplified and encoded.

    Returns ``(tiers, names)``: one dict per non-empty tier — ``tier`` (index into
    :data:`ROAD_TIERS`), ``minZoom`` (first zoom level drawn: 0 for the lowest non-empty
    tier, and for every tier when the network has at most :data:`ZOOM_TIERS_ABOVE` road
    pieces), ``style``, ``enc``, ``counts`` and ``names`` (per line, an index into
    ``names`` or -1 when unnamed) — and the sorted road names (column ``name``, plain
    text; shown on hover). Reverse duplicates (both directions of a two-way road) are
    drawn once; pieces of one name are merged into as few lines as possible.
    """
    metric = to_metric(roads)
    geoms = metric.geometry.to_numpy()
    tiers = (
        np.array([road_tier(h) for h in metric["highway"]], dtype=int)
        if "highway" in metric.columns
        else np.zeros(len(metric), dtype=int)
    )
    raw = [road_name(v) for v in metric["name"]] if "name" in metric.columns else [""] * len(metric)
    names = sorted({n for n in raw if n})
    lookup = {n: i for i, n in enumerate(names)}
    name_idx = np.array([lookup.get(n, -1) for n in raw], dtype=np.int64)
    layers: list[dict[str, Any]] = []
    whole = len(geoms) <= ZOOM_TIERS_ABOVE
    for tier in range(len(ROAD_TIERS)):
        sel = np.flatnonzero(tiers == tier)
        parts, owner = shapely.get_parts(geoms[sel], return_index=True)
        keep = (shapely.get_type_id(parts) == 1) & (shapely.get_num_coordinates(parts) >= 2)
        parts, part_names = parts[keep], name_idx[sel][owner[keep]]
        if not len(parts):
            continue
        first = _unique_index(parts)
        parts, part_names = parts[first], part_names[first]
        order = np.argsort(part_names, kind="stable")
        groups, group_of = np.unique(part_names[order], return_inverse=True)
        merged = shapely.line_merge(shapely.multilinestrings(parts[order], indices=group_of))
        lines, line_group = shapely.get_parts(merged, return_index=True)
        lines = simplified(lines, tolerance_m)
        ok = (shapely.get_type_id(lines) == 1) & (shapely.get_num_coordinates(lines) >= 2)
        min_zoom, _, style = ROAD_TIERS[tier]
        layers.append(
            {
                "tier": tier,
                "minZoom": 0 if whole or not layers else min_zoom,
                "style": style,
                **encode_lines(wgs84_geoms(lines[ok], metric.crs)),
                "names": groups[line_group[ok]].astype(int).tolist(),
            }
        )
    return layers, names


def _unique_index(parts: np.ndarray) -> np.ndarray:
    """Positions of the first of each set of equal lines (either direction), in order."""
    keys = shapely.to_wkb(shapely.normalize(parts))
    _, first = np.unique(keys, return_index=True)
    return np.sort(first)


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


def as_of_text(as_of: Any) -> str | None:
    """The as-of date as shown under the title: ISO date (or date-time when it has a time)."""
    if as_of is None:
        return None
    if isinstance(as_of, pd.Timestamp) and as_of == as_of.normalize():
        return as_of.date().isoformat()
    return plain(as_of.isoformat() if hasattr(as_of, "isoformat") else as_of, 40)


# ------------------------------------------------------------------ page assets


def page_css() -> str:
    """Our stylesheet (package data ``assets/hm.css``) with the palette as CSS custom properties."""
    palette = {
        "incident": INCIDENT_COLOUR,
        "fatal": FATAL_COLOUR,
        "cluster": CLUSTER_COLOUR,
        "covered": STATUS["covered"][0],
        "slow": STATUS["slow"][0],
        "reachable": STATUS["reachable"][0],
        "unreachable": STATUS["unreachable"][0],
    }
    props = ":root{" + "".join(f"--hm-{k}:{v};" for k, v in palette.items()) + "}\n"
    return props + _asset("hm.css")


def page_js() -> str:
    """Our page library (package data ``assets/hm.js``)."""
    return _asset("hm.js")


def _asset(name: str) -> str:
    return importlib.resources.files("havenmap").joinpath("assets", name).read_text(encoding="utf-8")
