"""Self-contained offline HTML maps: roads, incident heat, havens, routes, defenders.

Maps are built with ``offlinefolium`` (folium with Leaflet and plugins inlined). The
saved HTML fetches nothing from the network: no tile layer unless the caller passes
``tiles``, no CDN scripts or stylesheets, no icon images. The road network itself is
the base drawing.

Defender locations are sensitive. By default they are aggregated to a square grid and
routes are cut short near their start, so no defender's exact position reaches the
file; ``exact_defenders=True`` opts in to exact points and marks the map with a warning.
Every user-supplied string is HTML-escaped before it reaches the page.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import offlinefolium as folium
import pandas as pd
from offlinefolium import plugins
from offlinefolium.utilities import JsCode

from havenmap import _maphtml as mh
from havenmap._io import write_text

__all__ = ["nearest_map", "save_map"]

HEAT_BIN_ABOVE = 5000  # incidents; above this they are summed into squares
HEAT_BIN_M = 50.0  # metres, side of those squares
_EXACT_ATTR = "havenmap_exact_defenders"


def nearest_map(
    *,
    roads: gpd.GeoDataFrame | None = None,
    incidents: gpd.GeoDataFrame | None = None,
    havens: gpd.GeoDataFrame | None = None,
    defenders: gpd.GeoDataFrame | None = None,
    routes: gpd.GeoDataFrame | None = None,
    title: str = "havenmap",
    as_of: Any = None,
    exact_defenders: bool = False,
    cell_size_m: float = 500.0,
    tiles: Any = None,
    route_trim_m: float = 150.0,
) -> folium.Map:
    """Draw roads, incident heat, safe havens, routes to havens and defenders on one map.

    Every input is a GeoDataFrame in any CRS (reprojected to EPSG:4326 for drawing) or
    ``None`` to leave that layer out. Each layer is a named group in an always-open layer
    control; a legend and a title box are fixed on the page.

    Parameters
    ----------
    roads
        Road centrelines (LineStrings); drawn as thin grey lines, the map's base drawing.
    incidents
        Threat incidents (points); drawn as a heatmap weighted by ``fatalities + 1`` if
        that column exists. More than 5,000 incidents are summed into 50 m squares.
    havens
        Safe havens (points); columns ``name`` and ``kind`` are shown (escaped) in the
        tooltip and popup. ``haven_id`` (or ``id``) links them to ``routes``.
    defenders
        Defender locations (points). Aggregated to square cells of ``cell_size_m`` unless
        ``exact_defenders``. Column ``reachable`` (bool) or ``status`` ("ok" = reachable)
        is used to count defenders who cannot reach a haven; without either, and when
        every defender's ``defender_id`` (or ``id``) appears in ``routes``, a defender is
        reachable if any of its routes is.
    routes
        Routes to havens (LineStrings starting at the defender), columns ``defender_id``,
        ``rank`` (1 = nearest), ``haven_id``, ``travel_time_s`` (s), ``distance_m`` (m),
        ``reachable``, optionally ``haven_name`` (as from
        :func:`havenmap.havens.nearest_havens`). Rank 1 is drawn solid, rank 2 and above dashed. Unless
        ``exact_defenders``, the first ``route_trim_m`` metres are cut off and routes
        shorter than that are not drawn, so a route does not show where a defender is.
    title
        Shown (escaped) in the title box and as the page title.
    as_of
        Date or datetime (or text) shown under the title.
    exact_defenders
        Draw defenders as exact points (and routes untrimmed) and show the warning
        "EXACT DEFENDER LOCATIONS" in the title box. :func:`save_map` then writes the
        file readable by the owner only.
    cell_size_m
        Side of the defender aggregation cells in metres (local UTM grid).
    tiles
        Optional folium tiles (name, URL template or TileLayer). Default ``None``: no
        tiles, nothing is fetched. Passing tiles makes the browser download them.
    route_trim_m
        Metres cut from the start of each route when defenders are not exact.

    Returns
    -------
    offlinefolium.Map
        Save it with :func:`save_map`.
    """
    defenders = _with_reachability(defenders, routes)
    roads, incidents, havens, defenders, routes = (
        mh.to_wgs84(frame, name)
        for frame, name in (
            (roads, "roads"),
            (incidents, "incidents"),
            (havens, "havens"),
            (defenders, "defenders"),
            (routes, "routes"),
        )
    )
    m = _base_map(title, tiles)
    setattr(m, _EXACT_ATTR, bool(exact_defenders))
    trim_m = 0.0 if exact_defenders else float(route_trim_m)
    drawn: dict[str, gpd.GeoDataFrame] = {}
    if roads is not None:
        drawn["roads"] = _add_roads(m, roads)
    if incidents is not None:
        drawn["incidents"] = _add_heat(m, incidents)
    defender_mode = ""
    if defenders is not None:
        drawn["defenders"], defender_mode = _add_defenders(m, defenders, exact_defenders, cell_size_m)
    if routes is not None:
        shown = _add_routes(m, routes, havens, trim_m)
        if shown is not None:
            drawn["routes"] = shown
    if havens is not None:
        drawn["havens"] = _add_havens(m, havens)
    folium.LayerControl(collapsed=False).add_to(m)
    _add_boxes(m, title, as_of, exact_defenders, set(drawn), defender_mode, trim_m)
    _fit(m, list(drawn.values()))
    return m


def _with_reachability(
    defenders: gpd.GeoDataFrame | None, routes: gpd.GeoDataFrame | None
) -> gpd.GeoDataFrame | None:
    """Add ``reachable`` to defenders from ``routes`` when the defenders do not say themselves.

    Only when every defender (column ``defender_id`` or ``id``) appears in ``routes``;
    a defender is reachable if any of its routes is.
    """
    if defenders is None or routes is None or mh.unreachable_mask(defenders) is not None:
        return defenders
    key = next((c for c in ("defender_id", "id") if c in defenders.columns), None)
    if key is None or not {"defender_id", "reachable"} <= set(routes.columns):
        return defenders
    ids = defenders[key].astype(str)
    route_ids = routes["defender_id"].astype(str)
    if not ids.isin(set(route_ids)).all():
        return defenders
    ok = set(route_ids[routes["reachable"].map(mh.is_reachable).to_numpy(dtype=bool)])
    return defenders.assign(reachable=ids.isin(ok).to_numpy())


def save_map(m: folium.Map, path: str | os.PathLike[str], private: bool | None = None) -> Path:
    """Write the map as one self-contained HTML file, atomically.

    Parameters
    ----------
    m
        A map from :func:`nearest_map` (or any folium map).
    path
        Destination ``.html`` file; its folder is created if needed.
    private
        Create the file readable by the owner only (mode 0600). Default: only when the
        map shows exact defender locations.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    if private is None:
        private = bool(getattr(m, _EXACT_ATTR, False))
    return write_text(path, m.get_root().render(), private=private)


def _base_map(title: str, tiles: Any) -> folium.Map:
    m = folium.Map(location=None, tiles=tiles, control_scale=True, maxZoom=19)
    # Leaflet is all the page needs; drop jQuery, Bootstrap, Font Awesome and the
    # glyphicon CSS (which still points at a CDN for its fonts).
    m.default_js = [pair for pair in m.default_js if pair[0] == "leaflet"]
    m.default_css = [pair for pair in m.default_css if pair[0] == "leaflet_css"]
    root = m.get_root()
    root.title = mh.safe_text(title)
    # Let the road drawing show through the heat.
    root.header.add_child(folium.Element("<style>.leaflet-heatmap-layer{opacity:0.7}</style>"), name="hm_css")
    return m


def _group(m: folium.Map, name: str) -> folium.FeatureGroup:
    return folium.FeatureGroup(name=name, overlay=True, control=True, show=True).add_to(m)


def _add_roads(m: folium.Map, roads: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    lines = mh.merged_lines(roads)
    style = {"color": mh.ROAD_COLOUR, "weight": 1, "opacity": 0.8}
    data = mh.feature_collection([lines], [{"style": style}])
    folium.GeoJson(
        data,
        name="roads",
        control=False,
        interactive=False,
        renderer=JsCode("L.canvas({padding: 0.5})"),  # one canvas, not one SVG path per road
        attribution="Roads © OpenStreetMap contributors",
    ).add_to(_group(m, "Roads"))
    return roads


def _add_heat(m: folium.Map, incidents: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    rows = mh.heat_points(incidents, HEAT_BIN_ABOVE, HEAT_BIN_M)
    plugins.HeatMap(
        rows,
        name="incident heat",
        control=False,
        radius=18,
        blur=14,
        min_opacity=0.35,
        gradient=mh.HEAT_GRADIENT,
    ).add_to(_group(m, "Incident heatmap"))
    return incidents


def _add_havens(m: folium.Map, havens: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    points = havens.geometry.representative_point()
    labels = [
        _haven_label(name, kind)
        for name, kind in zip(_column(havens, "name"), _column(havens, "kind"), strict=True)
    ]
    style = {
        "color": "#ffffff",
        "weight": 2,
        "fill": True,
        "fillColor": mh.HAVEN_COLOUR,
        "fillOpacity": 0.95,
        "radius": 8,
    }
    data = mh.feature_collection(
        mh.rounded(points.to_numpy()), [{"label": label, "style": style} for label in labels]
    )
    marker = folium.CircleMarker(radius=8, class_name="hm-haven")
    folium.GeoJson(
        data,
        name="havens",
        control=False,
        marker=marker,
        tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False),
        popup=folium.GeoJsonPopup(fields=["label"], labels=False),
    ).add_to(_group(m, "Safe havens"))
    return havens


def _haven_label(name: Any, kind: Any) -> str:
    name = mh.safe_text(name) or "(unnamed haven)"
    kind = mh.safe_text(kind)
    return f"<b>{name}</b>" + (f"<br>{kind}" if kind else "")


def _add_routes(
    m: folium.Map, routes: gpd.GeoDataFrame, havens: gpd.GeoDataFrame | None, trim_m: float
) -> gpd.GeoDataFrame | None:
    routes = _drawable_routes(routes, trim_m)
    if routes is None:
        return None
    names = _haven_names(havens)
    props = [
        _route_props(rank, haven_id, haven_name, seconds, metres, names)
        for rank, haven_id, haven_name, seconds, metres in zip(
            routes["hm_rank"],
            _column(routes, "haven_id"),
            _column(routes, "haven_name"),
            _column(routes, "travel_time_s"),
            _column(routes, "distance_m"),
            strict=True,
        )
    ]
    folium.GeoJson(
        mh.feature_collection(mh.rounded(routes.geometry.to_numpy()), props),
        name="routes",
        control=False,
        class_name="hm-route",
        tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False, sticky=True),
    ).add_to(_group(m, "Routes to havens"))
    return routes


def _drawable_routes(routes: gpd.GeoDataFrame, trim_m: float) -> gpd.GeoDataFrame | None:
    """Reachable routes, nearest drawn last (on top), trimmed at the start; ``None`` if none is left."""
    mask = mh.unreachable_mask(routes) if "reachable" in routes.columns else None
    if mask is not None:
        routes = routes.loc[~mask]
    if routes.empty:
        return None
    if trim_m > 0:
        crs = mh.metric_crs(routes)
        metric = routes.geometry.to_crs(crs)
        trimmed = gpd.GeoSeries([mh.trim_start(g, trim_m) for g in metric], crs=crs, index=routes.index)
        routes = routes.set_geometry(trimmed.to_crs(mh.WGS84))
        routes = routes.loc[routes.geometry.notna() & ~routes.geometry.is_empty]
    if routes.empty:
        return None
    rank = pd.to_numeric(routes["rank"], errors="coerce") if "rank" in routes.columns else 1
    return routes.assign(hm_rank=rank).sort_values("hm_rank", ascending=False, kind="stable")


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name`` of ``frame``, or a column of ``None`` if it is missing."""
    if name in frame.columns:
        return frame[name]
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _haven_names(havens: gpd.GeoDataFrame | None) -> dict[str, str]:
    """Map str(haven id) → escaped haven name, from column ``haven_id`` or ``id``."""
    if havens is None or "name" not in havens.columns:
        return {}
    key = next((c for c in ("haven_id", "id") if c in havens.columns), None)
    ids = havens[key] if key else havens.index.to_series()
    return {str(i): mh.safe_text(n) for i, n in zip(ids, havens["name"], strict=True)}


def _route_props(
    rank: Any, haven_id: Any, haven_name: Any, seconds: Any, metres: Any, names: dict[str, str]
) -> dict[str, Any]:
    rank = _number(rank)
    rank = int(rank) if math.isfinite(rank) else 1
    haven = mh.safe_text(haven_name) or names.get(str(haven_id)) or mh.safe_text(haven_id) or "haven"
    minutes = _number(seconds) / 60.0
    km = _number(metres) / 1000.0
    what = "nearest haven" if rank == 1 else f"haven no. {rank} by travel time"
    label = f"{what}: <b>{haven}</b><br>{_fmt(minutes, '.1f')} min, {_fmt(km, '.2f')} km"
    style = {
        "color": mh.ROUTE_COLOUR,
        "weight": 3 if rank == 1 else 2,
        "opacity": 0.9 if rank == 1 else 0.75,
        "dashArray": None if rank == 1 else "6 5",
    }
    return {"label": label, "style": style}


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _fmt(value: float, spec: str) -> str:
    return "?" if not math.isfinite(value) else format(value, spec)


def _add_defenders(
    m: folium.Map, defenders: gpd.GeoDataFrame, exact: bool, cell_size_m: float
) -> tuple[gpd.GeoDataFrame, str]:
    if exact:
        return _add_exact_defenders(m, defenders), "exact"
    cells = mh.grid_counts(defenders, float(cell_size_m))
    mode = "share" if (cells["unreachable"] >= 0).all() else "count"
    props = []
    for count, unreachable in zip(cells["count"], cells["unreachable"], strict=True):
        colour = mh.cell_colour(int(count), int(unreachable))
        label = f"<b>{int(count)}</b> defender{'s' if count != 1 else ''} in this {cell_size_m:g} m cell"
        if unreachable >= 0:
            label += f"<br><b>{int(unreachable)}</b> cannot reach a haven"
        props.append(
            {"label": label, "style": {"color": colour, "weight": 1, "fillColor": colour, "fillOpacity": 0.4}}
        )
    folium.GeoJson(
        mh.feature_collection(mh.rounded(cells.geometry.to_numpy()), props),
        name="defender cells",
        control=False,
        class_name="hm-defender-cell",
        tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False),
    ).add_to(_group(m, "Defenders (aggregated)"))
    return cells, mode


def _add_exact_defenders(m: folium.Map, defenders: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    points = defenders.geometry.representative_point()
    mask = mh.unreachable_mask(defenders)
    unreachable = mask if mask is not None else np.zeros(len(defenders), dtype=bool)
    name_col = next((c for c in ("name", "defender_id", "id") if c in defenders.columns), None)
    names = defenders[name_col] if name_col else pd.Series([None] * len(defenders))
    props = []
    for name, cannot in zip(names, unreachable, strict=True):
        label = f"<b>{mh.safe_text(name) or '(unnamed defender)'}</b>"
        label += "<br>cannot reach a haven" if cannot else ""
        colour = mh.UNREACHABLE_COLOUR if cannot else mh.DEFENDER_COLOUR
        props.append(
            {
                "label": label,
                "style": {
                    "color": "#ffffff",
                    "weight": 1.5,
                    "fill": True,
                    "fillColor": colour,
                    "fillOpacity": 0.9,
                    "radius": 6,
                },
            }
        )
    folium.GeoJson(
        mh.feature_collection(mh.rounded(points.to_numpy()), props),
        name="defenders",
        control=False,
        marker=folium.CircleMarker(radius=6, class_name="hm-defender"),
        tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False),
    ).add_to(_group(m, "Defenders (EXACT locations)"))
    return defenders


def _add_boxes(
    m: folium.Map, title: str, as_of: Any, exact: bool, layers: set[str], defender_mode: str, trim_m: float
) -> None:
    html_part = m.get_root().html
    html_part.add_child(folium.Element(mh.title_html(title, as_of, exact)), name="hm_title")
    legend = mh.legend_html(layers=layers, defender_mode=defender_mode, route_trim_m=trim_m)
    html_part.add_child(folium.Element(legend), name="hm_legend")


def _fit(m: folium.Map, frames: list[gpd.GeoDataFrame]) -> None:
    if not frames:
        return
    bounds = np.array([frame.total_bounds for frame in frames])
    west, south = bounds[:, 0].min(), bounds[:, 1].min()
    east, north = bounds[:, 2].max(), bounds[:, 3].max()
    m.location = [float((south + north) / 2), float((west + east) / 2)]
    m.fit_bounds([[float(south), float(west)], [float(north), float(east)]], padding=(20, 20), max_zoom=17)
