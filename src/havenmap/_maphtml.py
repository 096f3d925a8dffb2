"""Private helpers for :mod:`havenmap.maps`: safe text, compact GeoJSON, grids, legend HTML.

Nothing here draws on a map by itself; :mod:`havenmap.maps` composes these pieces.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import LineString, MultiLineString, mapping
from shapely.ops import substring

from havenmap.errors import InputError

WGS84 = "EPSG:4326"
COORD_DIGITS = 6  # ~0.1 m; enough for drawing, keeps the HTML small

# Colours used on the map and explained in the legend.
ROAD_COLOUR = "#8c8c8c"
HAVEN_COLOUR = "#1a9641"
ROUTE_COLOUR = "#2b5cb8"
DEFENDER_COLOUR = "#7b3294"
UNREACHABLE_COLOUR = "#d7191c"
HEAT_GRADIENT = {0.4: "#2b83ba", 0.6: "#abdda4", 0.75: "#ffffbf", 0.9: "#fdae61", 1.0: "#d7191c"}
# (upper bound of the class, colour, legend text)
COUNT_CLASSES = (
    (1, "#cbc9e2", "1 defender"),
    (4, "#9e9ac8", "2–4"),
    (9, "#756bb1", "5–9"),
    (math.inf, "#54278f", "10 or more"),
)
SHARE_CLASSES = (
    ("#4575b4", "all can reach a haven"),
    ("#fdae61", "some, under half, cannot"),
    ("#d7191c", "half or more cannot"),
)

# Characters that are harmless in HTML text but active inside the JavaScript template
# literals folium wraps tooltip and popup content in (`${...}` would run code).
_JS_TEMPLATE_SAFE = str.maketrans({"`": "&#96;", "$": "&#36;", "\\": "&#92;", "{": "&#123;", "}": "&#125;"})
_REACHABLE_WORDS = frozenset({"ok", "reachable", "true", "1", "yes"})


def safe_text(value: Any) -> str:
    """Return ``value`` as text safe to place in HTML, also inside a JS template literal.

    ``None`` and NaN become the empty string. The result shows the original characters
    literally in a browser: ``<script>`` is displayed, never run.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value), quote=True).translate(_JS_TEMPLATE_SAFE)


def to_wgs84(frame: gpd.GeoDataFrame | None, layer: str) -> gpd.GeoDataFrame | None:
    """Reproject ``frame`` to EPSG:4326 and drop rows without geometry; ``None`` if nothing is left."""
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
    if frame.empty:
        return None
    return frame if frame.crs.equals(WGS84) else frame.to_crs(WGS84)


def rounded(geoms: Iterable[Any] | np.ndarray, digits: int = COORD_DIGITS) -> np.ndarray:
    """Round every coordinate of ``geoms`` to ``digits`` decimals (vectorised)."""
    arr = np.asarray(list(geoms) if not isinstance(geoms, np.ndarray) else geoms, dtype=object)
    return shapely.transform(arr, lambda xy: np.round(xy, digits))


def feature_collection(geoms: Sequence[Any], properties: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Build a GeoJSON FeatureCollection dict from shapely geometries and property dicts."""
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": mapping(g), "properties": p}
            for g, p in zip(geoms, properties, strict=True)
        ],
    }


def merged_lines(frame: gpd.GeoDataFrame) -> MultiLineString:
    """All line parts of ``frame`` (EPSG:4326) as one rounded MultiLineString."""
    parts = shapely.get_parts(frame.geometry.to_numpy())
    parts = parts[shapely.get_type_id(parts) == 1]  # LineStrings only
    return rounded(np.array([MultiLineString(list(parts))], dtype=object))[0]


def metric_crs(frame: gpd.GeoDataFrame) -> Any:
    """The local UTM CRS for ``frame`` (metres)."""
    return frame.estimate_utm_crs()


def unreachable_mask(frame: pd.DataFrame) -> np.ndarray | None:
    """Boolean array: which rows cannot reach a haven; ``None`` if the frame does not say.

    Uses column ``reachable`` (true/false; missing counts as unreachable) or else column
    ``status`` (``"ok"`` or ``"reachable"`` means reachable, any other value does not).
    """
    if "reachable" in frame.columns:
        column = frame["reachable"]
    elif "status" in frame.columns:
        column = frame["status"]
    else:
        return None
    return ~column.map(is_reachable).to_numpy(dtype=bool)


def is_reachable(value: Any) -> bool:
    """Read one ``reachable`` / ``status`` value; missing or unknown counts as not reachable."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    return str(value).strip().lower() in _REACHABLE_WORDS


def grid_counts(points: gpd.GeoDataFrame, cell_size_m: float) -> gpd.GeoDataFrame:
    """Aggregate points to square cells of ``cell_size_m`` metres in the local UTM CRS.

    Returns
    -------
    GeoDataFrame in EPSG:4326, one row per non-empty cell, columns ``count`` (points in
    the cell), ``unreachable`` (how many of them cannot reach a haven; -1 when the input
    has no ``reachable``/``status`` column) and the cell polygon as geometry.
    """
    if not cell_size_m > 0:
        raise InputError(f"cell_size_m must be a positive number of metres, got {cell_size_m!r}")
    crs = metric_crs(points)
    centroids = points.geometry.to_crs(crs).centroid
    table = pd.DataFrame(
        {
            "ix": np.floor(centroids.x.to_numpy() / cell_size_m).astype(np.int64),
            "iy": np.floor(centroids.y.to_numpy() / cell_size_m).astype(np.int64),
        }
    )
    mask = unreachable_mask(points)
    table["unreachable"] = mask.astype(np.int64) if mask is not None else 0
    cells = (
        table.groupby(["ix", "iy"], sort=True)
        .agg(count=("unreachable", "size"), unreachable=("unreachable", "sum"))
        .reset_index()
    )
    if mask is None:
        cells["unreachable"] = -1
    x0 = cells["ix"].to_numpy() * cell_size_m
    y0 = cells["iy"].to_numpy() * cell_size_m
    boxes = shapely.box(x0, y0, x0 + cell_size_m, y0 + cell_size_m)
    out = gpd.GeoDataFrame(cells[["count", "unreachable"]], geometry=boxes, crs=crs)
    return out.to_crs(WGS84)


def cell_colour(count: int, unreachable: int) -> str:
    """Fill colour of a defender cell: by share unreachable if known, else by count."""
    if unreachable >= 0:
        share = unreachable / count
        index = 0 if share == 0 else (1 if share < 0.5 else 2)
        return SHARE_CLASSES[index][0]
    return next(colour for bound, colour, _ in COUNT_CLASSES if count <= bound)


def trim_start(line: Any, trim_m: float) -> Any:
    """Cut the first ``trim_m`` metres off a (multi)line in a metric CRS; ``None`` if nothing is left."""
    if trim_m <= 0:
        return line
    if isinstance(line, MultiLineString):
        line = shapely.line_merge(line)
    parts = list(line.geoms) if isinstance(line, MultiLineString) else [line]
    kept: list[LineString] = []
    remaining = trim_m
    for part in parts:
        if remaining <= 0:
            kept.append(part)
        elif part.length > remaining:
            kept.append(substring(part, remaining, part.length))
            remaining = 0.0
        else:
            remaining -= part.length
    kept = [p for p in kept if isinstance(p, LineString) and p.length > 0]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else MultiLineString(kept)


def heat_points(incidents: gpd.GeoDataFrame, bin_above: int, bin_m: float) -> list[list[float]]:
    """``[lat, lon, weight]`` rows for the heatmap, weights scaled to 0..1.

    The weight of an incident is ``fatalities + 1`` when the column exists, else 1. With
    more than ``bin_above`` incidents, they are summed into squares of ``bin_m`` metres
    (drawn at the square's centre) so the file stays small.
    """
    points = incidents.geometry.representative_point()
    weight = np.ones(len(incidents))
    if "fatalities" in incidents.columns:
        fatalities = pd.to_numeric(incidents["fatalities"], errors="coerce").fillna(0).clip(lower=0)
        weight = fatalities.to_numpy(dtype=float) + 1.0
    lon, lat = points.x.to_numpy(), points.y.to_numpy()
    if len(incidents) > bin_above:
        lon, lat, weight = _binned(gpd.GeoSeries(points, crs=incidents.crs), weight, bin_m)
    scale = float(np.quantile(weight, 0.95)) or 1.0
    weight = np.clip(weight / scale, 0.0, 1.0)
    rows = np.column_stack([np.round(lat, COORD_DIGITS), np.round(lon, COORD_DIGITS), np.round(weight, 3)])
    return rows.tolist()


def _binned(points: gpd.GeoSeries, weight: np.ndarray, bin_m: float) -> tuple[np.ndarray, ...]:
    crs = points.estimate_utm_crs()
    metric = points.to_crs(crs)
    table = pd.DataFrame(
        {
            "ix": np.floor(metric.x.to_numpy() / bin_m).astype(np.int64),
            "iy": np.floor(metric.y.to_numpy() / bin_m).astype(np.int64),
            "w": weight,
        }
    )
    sums = table.groupby(["ix", "iy"], sort=False)["w"].sum().reset_index()
    centres = gpd.GeoSeries.from_xy((sums["ix"] + 0.5) * bin_m, (sums["iy"] + 0.5) * bin_m, crs=crs)
    centres = centres.to_crs(WGS84)
    return centres.x.to_numpy(), centres.y.to_numpy(), sums["w"].to_numpy(dtype=float)


def _legend_row(swatch: str, text: str) -> str:
    return (
        f'<div style="display:flex;align-items:center;gap:6px;margin:2px 0">'
        f'<span style="flex:none;width:28px;line-height:0">{swatch}</span><span>{text}</span></div>'
    )


def _line_swatch(colour: str, width: int, dash: str | None = None) -> str:
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<svg width="28" height="10" aria-hidden="true"><line x1="1" y1="5" x2="27" y2="5" '
        f'stroke="{colour}" stroke-width="{width}"{dash_attr}/></svg>'
    )


def _dot_swatch(colour: str) -> str:
    return (
        f'<svg width="28" height="14" aria-hidden="true"><circle cx="14" cy="7" r="6" fill="{colour}" '
        f'fill-opacity="0.9" stroke="#ffffff" stroke-width="1.5"/></svg>'
    )


def _box_swatch(colour: str) -> str:
    return (
        f'<svg width="28" height="14" aria-hidden="true"><rect x="4" y="1" width="20" height="12" '
        f'fill="{colour}" fill-opacity="0.6" stroke="{colour}"/></svg>'
    )


def _heat_swatch() -> str:
    stops = "".join(f'<stop offset="{k}" stop-color="{c}"/>' for k, c in HEAT_GRADIENT.items())
    return (
        f'<svg width="28" height="12" aria-hidden="true"><defs><linearGradient id="hm-heat">{stops}'
        '</linearGradient></defs><rect x="1" y="1" width="26" height="10" fill="url(#hm-heat)"/></svg>'
    )


def legend_html(*, layers: set[str], defender_mode: str, route_trim_m: float) -> str:
    """The fixed legend box; ``defender_mode`` is "exact", "share", "count" or "" (no defenders)."""
    rows = []
    if "roads" in layers:
        rows.append(_legend_row(_line_swatch(ROAD_COLOUR, 1), "road (OpenStreetMap)"))
    if "incidents" in layers:
        rows.append(_legend_row(_heat_swatch(), "incident density, weighted by fatalities + 1 (low → high)"))
    if "havens" in layers:
        rows.append(_legend_row(_dot_swatch(HAVEN_COLOUR), "safe haven"))
    if "routes" in layers:
        rows.append(_legend_row(_line_swatch(ROUTE_COLOUR, 3), "route to nearest haven"))
        rows.append(_legend_row(_line_swatch(ROUTE_COLOUR, 2, "6 5"), "route to 2nd, 3rd … nearest haven"))
        if route_trim_m > 0:
            rows.append(_legend_row("", f"<i>routes start {route_trim_m:g} m after the defender</i>"))
    rows.extend(_defender_rows(defender_mode))
    body = "".join(rows)
    return (
        '<div id="hm-legend" style="position:fixed;bottom:30px;right:10px;z-index:1000;'
        "background:rgba(255,255,255,0.93);padding:8px 10px;border:1px solid #999;border-radius:4px;"
        'font:12px/1.3 sans-serif;max-width:300px"><b>Legend</b>' + body + "</div>"
    )


def _defender_rows(mode: str) -> list[str]:
    if mode == "exact":
        return [
            _legend_row(_dot_swatch(DEFENDER_COLOUR), "defender (exact location)"),
            _legend_row(_dot_swatch(UNREACHABLE_COLOUR), "defender who cannot reach a haven"),
        ]
    if mode == "share":
        head = _legend_row("", "<i>defenders per grid cell, by share who cannot reach a haven:</i>")
        return [head] + [_legend_row(_box_swatch(c), t) for c, t in SHARE_CLASSES]
    if mode == "count":
        head = _legend_row("", "<i>defenders per grid cell:</i>")
        return [head] + [_legend_row(_box_swatch(c), t) for _, c, t in COUNT_CLASSES]
    return []


def title_html(title: str, as_of: Any, exact_defenders: bool) -> str:
    """The fixed title box: escaped title, as-of date and, for exact maps, a red warning."""
    parts = [f'<div style="font-weight:bold;font-size:15px">{safe_text(title)}</div>']
    if as_of is not None:
        stamp = as_of.isoformat() if hasattr(as_of, "isoformat") else as_of
        parts.append(f"<div>as of {safe_text(stamp)}</div>")
    if exact_defenders:
        parts.append(
            '<div id="hm-exact-warning" style="color:#ffffff;background:#c00000;font-weight:bold;'
            'padding:2px 6px;margin-top:4px">⚠ EXACT DEFENDER LOCATIONS — do not share</div>'
        )
    return (
        '<div id="hm-title" style="position:fixed;top:10px;left:50%;transform:translateX(-50%);'
        "z-index:1000;background:rgba(255,255,255,0.93);padding:6px 12px;border:1px solid #999;"
        'border-radius:4px;font:13px/1.3 sans-serif;text-align:center">' + "".join(parts) + "</div>"
    )
