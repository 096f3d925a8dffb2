"""Self-contained offline HTML maps for commanders: threat, havens, reach, alerts and patrols.

Maps are built with ``offlinefolium`` (folium with Leaflet and its plugins' code shipped
in the package). The saved HTML fetches nothing: every script, style and icon is inlined
(icons are inline SVG or text, never an icon font), no tile layer is added unless the
caller passes ``tiles``, and the road network itself — generalised by zoom — is the
base map.

Defender locations are sensitive. By default they are aggregated to a square grid
(counts per cell), alerts are shown per cell, and routes to havens are cut short near
their start, so no defender's exact position reaches the file; ``exact_defenders=True``
opts in to exact points and marks the map with a warning (and :func:`save_map` then
writes the file readable by the owner only). User text reaches the page only as text:
tooltips and popups are built with ``textContent`` in the browser, and the title, legend
and layer names are HTML-escaped.

Large inputs are pre-aggregated so the file stays small and quick to draw: roads are
merged, simplified (5 m) and polyline-encoded at 1e-5 degrees, minor roads are drawn
only from zoom 14/15; incident heat is binned per ISO week on a 50 m grid (coarser when
needed); only the last ``recent_days`` of incidents become (clustered) markers, at most
2,000. Measured in ``benchmarks/bench_map.py``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import offlinefolium as folium
import pandas as pd
import shapely
from branca.element import Element, Figure, MacroElement
from jinja2.utils import htmlsafe_json_dumps
from offlinefolium import plugins
from offlinefolium.elements import _res

from havenmap import _maphtml as mh
from havenmap._io import write_text
from havenmap.errors import InputError

__all__ = ["commander_map", "coverage_map", "nearest_map", "patrol_map", "save_map", "siting_map", "threat_map"]

MAX_RECENT_MARKERS = 2000  # recent incidents drawn as markers, most recent first
MAX_LINE_TIPS = 3000  # hotspot lines with their own tooltip; above, drawn per class without
HEAT_BIN_M = 50.0  # metres; side of the heat squares (doubled until at most HEAT_MAX_CELLS)
HEAT_MAX_CELLS = 20_000
ROUTE_ARROW_GLYPH = "►"
# Map panes (name, z-index): roads under everything, then areas, heat, risk; the default
# overlay pane (400, SVG: routes, hotspots, patrols) and markers (600) above.
PANES = (("hmRoads", 250), ("hmAreas", 350), ("hmHeat", 380), ("hmRisk", 390))
_EXACT_ATTR = "havenmap_exact_defenders"


def _plugin_assets(cls: Any) -> list[tuple[str, str, str]]:
    return [(name, "js", url) for name, url in cls.default_js] + [(name, "css", url) for name, url in cls.default_css]


def _leaflet_assets() -> list[tuple[str, str, str]]:
    from offlinefolium.offlinefolium import _default_css, _default_js

    js = [("leaflet", "js", url) for name, url in _default_js if name == "leaflet"]
    css = [("leaflet_css", "css", url) for name, url in _default_css if name == "leaflet_css"]
    return js + css


# Inlined third-party code, by name: offlinefolium's copies (keys are the original URLs,
# used only to look the text up; nothing is linked).
_DEPS: dict[str, list[tuple[str, str, str]]] = {
    "leaflet": _leaflet_assets(),
    "heat": _plugin_assets(plugins.HeatMap),
    "cluster": _plugin_assets(plugins.MarkerCluster),
    "textpath": _plugin_assets(plugins.PolyLineTextPath),
    "fullscreen": _plugin_assets(plugins.Fullscreen),
    "measure": _plugin_assets(plugins.MeasureControl),
}
_BANNER = re.compile(r"/\*\*\s*\n\s*\*\s*(?:Minified by jsDelivr|Skipped minification).*?\*/", re.S)
_SOURCEMAP = re.compile(r"(?://[#@]\s*sourceMappingURL=[^\n]*|/\*[#@]\s*sourceMappingURL=.*?\*/)")


def _clean_asset(text: str) -> str:
    """Drop CDN banners and source-map references from an inlined library (nothing else changes)."""
    return _SOURCEMAP.sub("", _BANNER.sub("", text))


class _Raw(Element):
    """Text placed into the page verbatim.

    branca wraps every rendered macro in a new ``Element(text)``, i.e. parses it again as
    a jinja2 template: data holding ``{{ ... }}`` would be *evaluated* while saving
    (template injection). Everything this module puts into the page (libraries, data,
    title, legend) goes through this class instead, which is never parsed.
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self._name = "HmRaw"
        self.text = text

    def render(self, **kwargs: Any) -> str:
        return self.text


def _inline(figure: Figure, deps: Iterable[str]) -> None:
    """Put the page's own code and the named libraries into the page header (once each)."""
    for dep in ("leaflet", *deps):
        for name, kind, url in _DEPS[dep]:
            tag = "script" if kind == "js" else "style"
            figure.header.add_child(_Raw(f"<{tag}>{_clean_asset(_res[url])}</{tag}>"), name=f"hm_{name}")
    figure.header.add_child(_Raw(f"<style>{mh.HM_CSS}</style>"), name="hm_css")
    figure.header.add_child(_Raw(f"<script>{mh.HM_JS}</script>"), name="hm_js")


class _Call(MacroElement):
    """One call of the page's ``HM`` library: ``HM.call(fn, <parent layer or map>, <JSON data>)``.

    The JSON is made safe for a ``<script>`` block (``<``, ``>``, ``&``, ``'`` as ``\\u``
    escapes) and placed verbatim (see :class:`_Raw`).
    """

    def __init__(self, fn: str, data: dict[str, Any], deps: Sequence[str] = ()) -> None:
        super().__init__()
        self._name = "HmCall"
        self.fn = fn
        self.data = htmlsafe_json_dumps(data, separators=(",", ":"), allow_nan=False)
        self.deps = tuple(deps)

    def render(self, **kwargs: Any) -> None:
        figure = self.get_root()
        _inline(figure, self.deps)
        code = f"HM.call({json.dumps(self.fn)}, {self._parent.get_name()}, {self.data});"
        figure.script.add_child(_Raw(code), name=self.get_name())


class _Script(MacroElement):
    """Fixed JavaScript run with the map as ``map`` (controls from inlined plugins)."""

    def __init__(self, code: str, deps: Sequence[str] = ()) -> None:
        super().__init__()
        self._name = "HmScript"
        self.code = code
        self.deps = tuple(deps)

    def render(self, **kwargs: Any) -> None:
        figure = self.get_root()
        _inline(figure, self.deps)
        code = f"(function (map) {{ {self.code} }})({self._parent.get_name()});"
        figure.script.add_child(_Raw(code), name=self.get_name())


_FULLSCREEN_JS = (
    "L.control.fullscreen({position: 'topleft', title: 'Full screen', titleCancel: 'Exit full screen'}).addTo(map);"
)
# leaflet-measure 2.1.7 with Leaflet >= 1.8 needs this capture-marker fix (as folium ships it).
_MEASURE_JS = (
    "L.Control.Measure.include({_setCaptureMarkerIcon: function () {"
    " this._captureMarker.options.autoPanOnFocus = false;"
    " this._captureMarker.setIcon(L.divIcon({iconSize: this._map.getSize().multiplyBy(2)})); }});"
    "map.addControl(new L.Control.Measure({position: 'topleft', primaryLengthUnit: 'meters',"
    " secondaryLengthUnit: 'kilometers', primaryAreaUnit: 'sqmeters', secondaryAreaUnit: 'hectares',"
    " activeColor: '#d7191c', completedColor: '#2b5cb8'}));"
)


# ================================================================== public API


def commander_map(
    *,
    roads: Any = None,
    incidents: gpd.GeoDataFrame | None = None,
    edge_risk: gpd.GeoDataFrame | None = None,
    hotspots: gpd.GeoDataFrame | None = None,
    havens: gpd.GeoDataFrame | None = None,
    service_areas: gpd.GeoDataFrame | None = None,
    defenders: gpd.GeoDataFrame | None = None,
    coverage: pd.DataFrame | None = None,
    routes: gpd.GeoDataFrame | None = None,
    patrol_routes: gpd.GeoDataFrame | None = None,
    patrol_stops: gpd.GeoDataFrame | None = None,
    bases: gpd.GeoDataFrame | None = None,
    alerts: pd.DataFrame | None = None,
    title: str = "havenmap",
    as_of: Any = None,
    exact_defenders: bool = False,
    cell_size_m: float = 500.0,
    route_trim_m: float = 150.0,
    tiles: Any = None,
    recent_days: float = 30,
    slow_minutes: float = 10.0,
) -> folium.Map:
    """One offline map of threat, havens and their reach, defenders' status, alerts and patrols.

    Every layer is optional (``None`` leaves it out); GeoDataFrames may be in any CRS.
    Each layer is a group in an always-open layer control. On by default: the heatmap,
    recent incidents, hotspot roads, service areas, defenders' status, alerts, routes,
    havens, patrol bases and patrol day 1; off: road risk and the other patrol days.
    A legend explains every colour; scale bar, full-screen button and measure tool are
    on the map; the title box shows ``title`` and ``as_of``.

    Parameters
    ----------
    roads
        A :class:`havenmap.RoadNetwork` or road centrelines (GeoDataFrame of LineStrings,
        column ``highway`` optional): the base map. Main roads are always drawn,
        streets from zoom 14, paths and service roads from zoom 15; geometry is merged
        and simplified by 5 m.
    incidents
        Threat incidents (points; columns as from :func:`havenmap.read_incidents`:
        ``incident_id``, ``date``, ``event_type``, ``sub_event_type``, ``fatalities``,
        ``notes``). Drawn as a heatmap (weight ``fatalities + 1``) with a week slider,
        and the last ``recent_days`` days as clustered markers (at most 2,000, most
        recent first) whose popups show type, date, fatalities and notes. Incidents
        dated after ``as_of`` are left out.
    edge_risk
        Per-edge risk: GeoDataFrame ``u, v, key, edge, risk`` (≥ 0), LineStrings.
        Edges with risk > 0 are drawn in five quantile classes (layer off by default).
    hotspots
        Hot-spot edges: ``risk, gi_z, p_value, significance`` ('hot 99%' / 'hot 95%' /
        'hot 90%'), LineStrings; coloured by significance, with a tooltip per edge.
    havens
        Safe havens (points): ``id`` (or ``haven_id``), ``name``, ``kind``; an inline SVG
        icon per kind (embassy, clinic, place of worship, other).
    service_areas
        ``haven_id, minutes, geometry`` (polygons): merged per band (e.g. 5 / 10 / 15
        minutes) and drawn as translucent polygons, the smallest band darkest.
    defenders
        Defender locations (points), ``id`` (or ``defender_id``). Their status is read
        from ``status`` (covered / slow / unreachable), or ``travel_time_s`` (s) and
        ``reachable``, or ``reachable`` alone (see ``coverage``). Aggregated by default
        to square cells of ``cell_size_m``, each with its counts per status.
    coverage
        Optional per-defender coverage table ``defender_id, travel_time_s, reachable``
        (as from the coverage module), joined to ``defenders`` when they lack those
        columns.
    routes
        Routes to havens (LineStrings starting at the defender), ``defender_id``,
        ``rank``, ``haven_id``, ``travel_time_s``, ``distance_m``, ``reachable``,
        optionally ``haven_name`` (as from :func:`havenmap.nearest_havens`). Rank 1 solid,
        others dashed. The first ``route_trim_m`` metres are cut off unless
        ``exact_defenders``.
    patrol_routes
        ``unit, day, base_id, prize, duration_min, geometry`` (LineStrings): one colour per
        unit, with direction arrows; one layer per day (switching a day on switches the
        others off).
    patrol_stops
        ``unit, day, stop, target_id, geometry`` (points): numbered in the unit's colour.
    bases
        Patrol bases (points) with ``id``, ``name``.
    alerts
        Early-warning alerts ``defender_id, score, level, reason``: active alerts (level
        not empty/none/ok) are joined to defenders by id and shown on the defenders'
        cells (or points when exact), coloured by level, with the reason texts.
    title
        Scenario name: the title box and the page title (escaped).
    as_of
        Date of the picture (date, datetime or ISO text): shown under the title; the end
        of the recent-incident window (default: the latest incident date).
    exact_defenders
        Draw defenders (and their alerts) as exact points and routes untrimmed; the map
        is then marked "EXACT DEFENDER LOCATIONS".
    cell_size_m
        Side of the defender cells in metres (local UTM grid).
    route_trim_m
        Metres cut from the start of each route when defenders are not exact.
    tiles
        ``None`` (default): no tiles, nothing is fetched. ``"osm"`` (or a folium
        ``TileLayer``, or a URL template): an online tile layer that can be switched on
        in the layer control (the road drawing stays the default base). Tiles make the
        browser download them.
    recent_days
        Days of recent incidents drawn as markers (window ending at ``as_of``).
    slow_minutes
        A defender who reaches a haven within this many minutes is "covered", beyond it
        "slow".

    Returns
    -------
    offlinefolium.Map
        Save it with :func:`save_map`.
    """
    stamp = mh.as_timestamp(as_of)
    defenders = _with_coverage(defenders, coverage)
    defenders = _with_reachability(defenders, routes)
    frames = {
        name: mh.to_wgs84(frame, name)
        for name, frame in (
            ("incidents", incidents),
            ("edge_risk", edge_risk),
            ("hotspots", hotspots),
            ("havens", havens),
            ("service_areas", service_areas),
            ("defenders", defenders),
            ("routes", routes),
            ("patrol_routes", patrol_routes),
            ("patrol_stops", patrol_stops),
            ("bases", bases),
        )
    }
    road_frame = _road_frame(roads)
    m = _new_map(title)
    setattr(m, _EXACT_ATTR, bool(exact_defenders))
    legend: list[tuple[str, list[tuple[str, str]]]] = []
    bounds: list[np.ndarray] = []

    if road_frame is not None:
        legend.append(("Base map", _add_roads(m, road_frame)))
        bounds.append(_wgs84_bounds(road_frame))
    if tiles is not None:
        _add_tiles(m, tiles, default=road_frame is None)

    threat: list[tuple[str, str]] = []
    inc = frames["incidents"]
    if inc is not None:
        threat += _add_heat(m, inc, stamp)
        threat += _add_recent(m, inc, stamp, recent_days)
        bounds.append(inc.total_bounds)
    if frames["hotspots"] is not None:
        threat += _add_hotspots(m, frames["hotspots"])
        bounds.append(frames["hotspots"].total_bounds)
    if frames["edge_risk"] is not None:
        threat += _add_risk(m, frames["edge_risk"])
    legend.append(("Threat", threat))

    safety: list[tuple[str, str]] = []
    if frames["service_areas"] is not None:
        safety += _add_service_areas(m, frames["service_areas"])
        bounds.append(frames["service_areas"].total_bounds)
    cells = None
    dfd = frames["defenders"]
    if dfd is not None:
        if not exact_defenders:
            cell_size_m = _legible_cell_size(dfd, float(cell_size_m))
        rows, cells = _add_defenders(m, dfd, exact_defenders, cell_size_m, slow_minutes)
        safety += rows
        bounds.append(dfd.total_bounds if exact_defenders else cells.total_bounds)
    if alerts is not None:
        safety += _add_alerts(m, alerts, dfd, cells, exact_defenders, cell_size_m)
    trim_m = 0.0 if exact_defenders else float(route_trim_m)
    if frames["routes"] is not None:
        safety += _add_routes(m, frames["routes"], frames["havens"], trim_m)
    if frames["havens"] is not None:
        safety += _add_havens(m, frames["havens"])
        bounds.append(frames["havens"].total_bounds)
    legend.append(("Safety", safety))

    patrol: list[tuple[str, str]] = []
    if frames["bases"] is not None:
        patrol += _add_bases(m, frames["bases"])
        bounds.append(frames["bases"].total_bounds)
    if frames["patrol_routes"] is not None or frames["patrol_stops"] is not None:
        patrol += _add_patrols(m, frames["patrol_routes"], frames["patrol_stops"])
        bounds += [f.total_bounds for f in (frames["patrol_routes"], frames["patrol_stops"]) if f is not None]
    legend.append(("Patrols", patrol))

    _add_chrome(m, title, stamp if stamp is not None else as_of, exact_defenders, legend)
    # the road network is the area of operations: outliers (an offshore defender cell) must not
    # shrink the city to a corner of the screen
    _fit(m, bounds[:1] if road_frame is not None else bounds)
    m.add_child(_Call("ready", {}))
    return m


def threat_map(
    *,
    roads: Any,
    incidents: gpd.GeoDataFrame | None,
    edge_risk: gpd.GeoDataFrame | None = None,
    hotspots: gpd.GeoDataFrame | None = None,
    title: str = "havenmap — threat",
    as_of: Any = None,
    recent_days: float = 30,
    tiles: Any = None,
) -> folium.Map:
    """Threat only: incident heatmap by week, recent incidents, hotspot roads, road risk.

    See :func:`commander_map` for the parameters.
    """
    return commander_map(
        roads=roads,
        incidents=incidents,
        edge_risk=edge_risk,
        hotspots=hotspots,
        title=title,
        as_of=as_of,
        recent_days=recent_days,
        tiles=tiles,
    )


def patrol_map(
    *,
    roads: Any,
    routes: gpd.GeoDataFrame | None,
    stops: gpd.GeoDataFrame | None,
    bases: gpd.GeoDataFrame | None = None,
    title: str = "havenmap — patrols",
    as_of: Any = None,
    tiles: Any = None,
) -> folium.Map:
    """Patrols only: each unit's route in its own colour with arrows and numbered stops, by day.

    ``routes``/``stops`` are the patrol plan's GeoDataFrames (see :func:`commander_map`'s
    ``patrol_routes`` / ``patrol_stops``).
    """
    return commander_map(
        roads=roads, patrol_routes=routes, patrol_stops=stops, bases=bases, title=title, as_of=as_of, tiles=tiles
    )


def coverage_map(
    *,
    roads: Any,
    havens: gpd.GeoDataFrame | None,
    service_areas: gpd.GeoDataFrame | None = None,
    defenders: gpd.GeoDataFrame | None = None,
    coverage: pd.DataFrame | None = None,
    title: str = "havenmap — coverage",
    as_of: Any = None,
    exact_defenders: bool = False,
    cell_size_m: float = 500.0,
    slow_minutes: float = 10.0,
    tiles: Any = None,
) -> folium.Map:
    """Havens, their service-area bands and defenders' status (covered / slow / unreachable).

    See :func:`commander_map` for the parameters.
    """
    return commander_map(
        roads=roads,
        havens=havens,
        service_areas=service_areas,
        defenders=defenders,
        coverage=coverage,
        title=title,
        as_of=as_of,
        exact_defenders=exact_defenders,
        cell_size_m=cell_size_m,
        slow_minutes=slow_minutes,
        tiles=tiles,
    )


def nearest_map(
    *,
    roads: Any = None,
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
    """Roads, incident heat, safe havens, routes to havens and defenders (a :func:`commander_map`).

    Defenders without a ``reachable``/``status`` column take their reachability (and the
    rank-1 ``travel_time_s``) from ``routes`` when every defender appears there. See
    :func:`commander_map` for the parameters.
    """
    return commander_map(
        roads=roads,
        incidents=incidents,
        havens=havens,
        defenders=defenders,
        routes=routes,
        title=title,
        as_of=as_of,
        exact_defenders=exact_defenders,
        cell_size_m=cell_size_m,
        tiles=tiles,
        route_trim_m=route_trim_m,
    )


def siting_map(
    *,
    roads: Any,
    havens: gpd.GeoDataFrame | None,
    candidates: gpd.GeoDataFrame,
    service_areas_before: gpd.GeoDataFrame | None = None,
    service_areas_after: gpd.GeoDataFrame | None = None,
    defenders: gpd.GeoDataFrame | None = None,
    coverage: pd.DataFrame | None = None,
    minutes: float = 10.0,
    title: str = "havenmap — where to open the next havens",
    exact_defenders: bool = False,
    cell_size_m: float = 500.0,
    tiles: Any = None,
) -> folium.Map:
    """Where to open the next havens: existing havens, chosen and rejected candidates, reach before/after.

    ``havens`` is :attr:`havenmap.siting.SitingResult.havens` (``status`` 'existing' / 'new'),
    ``candidates`` its ``candidates`` (``site_id``, ``name``, ``chosen``, ``order``, ``gain``,
    ``weight_within``); chosen sites are numbered in the order to open them. Service areas are
    ``haven_id, minutes, geometry`` polygons (before: existing havens only, grey outline; after:
    with the new havens, green); defenders' status after siting (``coverage``, within
    ``minutes``) is aggregated to cells unless ``exact_defenders``. See :func:`commander_map`.
    """
    defenders = _with_coverage(defenders, coverage)
    road_frame = _road_frame(roads)
    m = _new_map(title)
    setattr(m, _EXACT_ATTR, bool(exact_defenders))
    legend: list[tuple[str, list[tuple[str, str]]]] = []
    if road_frame is not None:
        legend.append(("Base map", _add_roads(m, road_frame)))
    if tiles is not None:
        _add_tiles(m, tiles, default=road_frame is None)
    before = mh.to_wgs84(service_areas_before, "service_areas_before")
    after = mh.to_wgs84(service_areas_after, "service_areas_after")
    dfd = mh.to_wgs84(defenders, "defenders")
    existing = None
    if havens is not None:
        existing = mh.to_wgs84(havens.loc[mh.column(havens, "status").astype(str) != "new"], "havens")
    rows: list[tuple[str, str]] = []
    if before is not None:
        rows += _add_service_areas(
            m, before, label="before siting", layer="service_areas_before", colours=("#6f6f6f",), fill=0.04
        )
    if after is not None:
        rows += _add_service_areas(m, after, label="after siting")
    if dfd is not None:
        size = float(cell_size_m) if exact_defenders else _legible_cell_size(dfd, float(cell_size_m))
        rows += _add_defenders(m, dfd, exact_defenders, size, minutes)[0]
    if existing is not None:
        rows += _add_havens(m, existing)
    rows += _add_candidates(m, mh.to_wgs84(candidates, "candidates"))
    legend.append(("Siting", rows))
    _add_chrome(m, title, None, exact_defenders, legend)
    _fit(m, [_wgs84_bounds(road_frame)] if road_frame is not None else [candidates.to_crs(mh.WGS84).total_bounds])
    m.add_child(_Call("ready", {}))
    return m


def save_map(m: folium.Map, path: str | os.PathLike[str], private: bool | None = None) -> Path:
    """Write the map as one self-contained HTML file, atomically.

    Parameters
    ----------
    m
        A map from :func:`commander_map` (or any folium map).
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


# ================================================================== inputs


def _road_frame(roads: Any) -> gpd.GeoDataFrame | None:
    """Roads as a GeoDataFrame (from a RoadNetwork: one row per physical road piece)."""
    if roads is None:
        return None
    if hasattr(roads, "edges_gdf") and not isinstance(roads, gpd.GeoDataFrame):
        return roads.edges_gdf(undirected=True)
    return mh._checked(roads, "roads")


def _with_coverage(defenders: gpd.GeoDataFrame | None, coverage: pd.DataFrame | None) -> gpd.GeoDataFrame | None:
    """Join the per-defender coverage columns onto ``defenders`` (by ``id``/``defender_id``)."""
    if defenders is None or coverage is None:
        return defenders
    if "defender_id" not in coverage.columns:
        raise InputError("coverage: column 'defender_id' is missing; it joins the table to defenders' id")
    ids = mh.id_column(defenders, "id", "defender_id")
    if ids is None:
        raise InputError("defenders: no 'id' or 'defender_id' column to join the coverage table on")
    cols = [c for c in ("travel_time_s", "reachable", "status") if c in coverage.columns]
    table = coverage.assign(defender_id=coverage["defender_id"].astype(str)).drop_duplicates("defender_id")
    table = table.set_index("defender_id")[cols]
    joined = defenders.drop(columns=[c for c in cols if c in defenders.columns])
    for c in cols:
        joined[c] = ids.map(table[c]).to_numpy()
    if "reachable" in cols:
        joined["reachable"] = joined["reachable"].map(mh.is_reachable)
    return joined


def _with_reachability(defenders: gpd.GeoDataFrame | None, routes: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame | None:
    """Add ``reachable`` (and ``travel_time_s`` of rank 1) to defenders from ``routes``.

    ``reachable`` only when the defenders do not say themselves and every defender
    (column ``defender_id`` or ``id``) appears in ``routes``; a defender is reachable if
    any of its routes is. ``travel_time_s`` (rank-1 route, reachable only) when the
    defenders lack it and have or get ``reachable``.
    """
    if defenders is None or routes is None or "defender_id" not in routes.columns:
        return defenders
    ids = mh.id_column(defenders, "defender_id", "id")
    if ids is None:
        return defenders
    route_ids = routes["defender_id"].astype(str)
    if mh.unreachable_mask(defenders) is None:
        if "reachable" not in routes.columns or not ids.isin(set(route_ids)).all():
            return defenders
        ok = set(route_ids[routes["reachable"].map(mh.is_reachable).to_numpy(dtype=bool)])
        defenders = defenders.assign(reachable=ids.isin(ok).to_numpy())
    if "travel_time_s" not in defenders.columns and "travel_time_s" in routes.columns and "status" not in defenders:
        first = routes
        if "rank" in routes.columns:
            first = routes.loc[pd.to_numeric(routes["rank"], errors="coerce") == 1]
        if "reachable" in first.columns:
            first = first.loc[first["reachable"].map(mh.is_reachable).to_numpy(dtype=bool)]
        seconds = pd.to_numeric(first["travel_time_s"], errors="coerce")
        table = pd.Series(seconds.to_numpy(), index=first["defender_id"].astype(str).to_numpy())
        table = table[~table.index.duplicated()]
        defenders = defenders.assign(travel_time_s=ids.map(table).to_numpy(dtype=float))
    return defenders


# ================================================================== map and chrome


def _new_map(title: str) -> folium.Map:
    m = folium.Map(location=None, tiles=None, control_scale=True, maxZoom=19, zoomSnap=0.5)
    # Everything the page needs is inlined by _inline (cleaned); no jQuery, Bootstrap,
    # Font Awesome or glyphicon CSS (which still points at a CDN for its fonts).
    m.default_js = []
    m.default_css = []
    m.get_root().title = mh.safe_text(title)
    m.add_child(_Call("setup", {"panes": [list(p) for p in PANES]}))
    return m


def _group(m: folium.Map, name: str, show: bool = True, base: bool = False) -> folium.FeatureGroup:
    """A layer-control group; ``name`` is HTML (Leaflet's layer control uses innerHTML): escape user text."""
    return folium.FeatureGroup(name=name, overlay=not base, control=True, show=show).add_to(m)


def _add_tiles(m: folium.Map, tiles: Any, default: bool) -> None:
    if isinstance(tiles, folium.TileLayer):
        layer = tiles
    elif isinstance(tiles, str) and tiles.lower() in ("osm", "openstreetmap"):
        layer = folium.TileLayer("OpenStreetMap", name="OpenStreetMap tiles (online)", show=default)
    elif isinstance(tiles, str) and "{z}" in tiles:
        layer = folium.TileLayer(tiles, name="Tiles (online)", attr="tiles: see the tile server's terms", show=default)
    else:
        raise InputError(
            f"tiles={tiles!r}: use None (offline), 'osm', a URL template with {{z}}/{{x}}/{{y}} or a folium TileLayer"
        )
    layer.overlay = False
    layer.control = True
    layer.add_to(m)


def _add_chrome(
    m: folium.Map, title: str, as_of: Any, exact: bool, legend: list[tuple[str, list[tuple[str, str]]]]
) -> None:
    folium.LayerControl(collapsed=False, position="topright").add_to(m)
    m.add_child(_Script(_FULLSCREEN_JS, deps=("fullscreen",)))
    m.add_child(_Script(_MEASURE_JS, deps=("measure",)))
    root = m.get_root()
    root.html.add_child(_Raw(mh.title_html(title, as_of, exact)), name="hm_title")
    if exact:
        legend.insert(0, ("⚠ Exact defender locations", [("", "This map shows where defenders are. Do not share it.")]))
    root.html.add_child(_Raw(mh.legend_html(legend)), name="hm_legend")
    m.add_child(_Call("legend", {}))


def _wgs84_bounds(frame: gpd.GeoDataFrame) -> np.ndarray:
    box = gpd.GeoSeries([shapely.box(*frame.total_bounds)], crs=frame.crs).to_crs(mh.WGS84)
    return box.total_bounds


def _fit(m: folium.Map, bounds: list[np.ndarray]) -> None:
    bounds = [b for b in bounds if np.all(np.isfinite(b))]
    if not bounds:
        return
    arr = np.array(bounds)
    west, south = arr[:, 0].min(), arr[:, 1].min()
    east, north = arr[:, 2].max(), arr[:, 3].max()
    m.location = [float((south + north) / 2), float((west + east) / 2)]
    m.fit_bounds([[float(south), float(west)], [float(north), float(east)]], padding=(20, 20), max_zoom=17)


# ================================================================== layers


def _add_roads(m: folium.Map, roads: gpd.GeoDataFrame) -> list[tuple[str, str]]:
    tiers = mh.road_layers(roads)
    group = _group(m, "Road network (offline base map)", base=True)
    group.add_child(
        _Call(
            "roads",
            {
                "layer": "roads",
                "pane": "hmRoads",
                "attribution": "Roads © OpenStreetMap contributors",
                "tiers": [{k: t[k] for k in ("minZoom", "style", "enc", "counts")} for t in tiers],
            },
        )
    )
    rows = []
    for t in tiers:
        _, text, style = mh.ROAD_TIERS[t["tier"]]
        if t["minZoom"] == 0:
            text = text.split(" (from")[0]
        rows.append((mh.line_swatch(style["color"], max(1, style["weight"])), text))
    return rows


def _add_heat(m: folium.Map, incidents: gpd.GeoDataFrame, as_of: pd.Timestamp | None) -> list[tuple[str, str]]:
    heat = mh.heat_frames(incidents, as_of, HEAT_BIN_M, HEAT_MAX_CELLS)
    if not heat["total"]:
        return []
    n_weeks = len(heat["weeks"])
    until = f" up to {as_of.date().isoformat()}" if as_of is not None else ""
    data = {
        "layer": "heat",
        "title": "Incident heatmap — by week",
        "allLabel": f"all weeks: {heat['total']:,} incidents{until}",
        "options": {
            "pane": "hmHeat",
            "radius": 20,
            "blur": 16,
            "minOpacity": 0.3,
            "maxZoom": 17,
            "gradient": {str(k): v for k, v in mh.HEAT_GRADIENT.items()},
        },
        "binM": heat["bin_m"],
        **{k: heat[k] for k in ("lat0", "lon0", "dlat", "dlon", "all", "weeks", "n", "deaths", "frames")},
    }
    group = _group(m, "Incident heatmap (by week)")
    group.add_child(_Call("heat", data, deps=("heat",)))
    weighting = (
        "type × fatalities × precision"
        if all(c in incidents.columns for c in mh.SEVERITY_COLUMNS)
        else "fatalities + 1"
    )
    text = f"incident density (weight: {weighting}), low → high; {heat['bin_m']:g} m bins"
    if n_weeks:
        text += f"; slider: {n_weeks} week{'s' if n_weeks != 1 else ''}"
    return [(mh.heat_swatch(), text)]


def _add_recent(
    m: folium.Map, incidents: gpd.GeoDataFrame, as_of: pd.Timestamp | None, days: float
) -> list[tuple[str, str]]:
    recent = mh.recent_incidents(incidents, as_of, days, MAX_RECENT_MARKERS)
    if recent is None:
        return []
    group = _group(m, f"Recent incidents ({days:g} days)")
    group.add_child(
        _Call("incidents", {"layer": "recent", "rows": recent["rows"], "types": recent["types"]}, deps=("cluster",))
    )
    shown = len(recent["rows"])
    note = f"{recent['start']} – {recent['end']}: {recent['total']:,} incidents"
    if shown < recent["total"]:
        note += f", the {shown:,} most recent shown"
    cluster = (
        '<svg width="28" height="20" aria-hidden="true"><circle cx="14" cy="10" r="9" '
        f'fill="{mh.CLUSTER_COLOUR}" stroke="#fff" stroke-width="2"/><text x="14" y="14" '
        'text-anchor="middle" font-size="10" font-weight="bold" fill="#fff">12</text></svg>'
    )
    return [
        (mh.dot_swatch(mh.INCIDENT_COLOUR, "#7a3b00", 5), f"recent incident, no deaths ({mh.safe_text(note)})"),
        (mh.dot_swatch(mh.FATAL_COLOUR, "#3d000d", 5), "recent incident with deaths"),
        (cluster, "cluster: number of recent incidents (click to zoom in)"),
    ]


def _add_hotspots(m: folium.Map, hotspots: gpd.GeoDataFrame) -> list[tuple[str, str]]:
    if "significance" not in hotspots.columns:
        raise InputError("hotspots: column 'significance' is missing ('hot 99%', 'hot 95%' or 'hot 90%')")
    sig = hotspots["significance"].map(lambda v: mh.plain(v).lower())
    with_tips = len(hotspots) <= MAX_LINE_TIPS
    groups, rows = [], []
    for value, colour, weight in mh.HOTSPOT_CLASSES:
        part = hotspots.loc[(sig == value).to_numpy()]
        if part.empty:
            continue
        label = f"hot spot road, {value.split()[-1]} confidence (Gi*)"
        g: dict[str, Any] = {
            "style": {"color": colour, "weight": weight, "opacity": 0.9, "lineCap": "round", "className": "hm-hotspot"}
        }
        if with_tips:
            # one line per edge (multi-part edges keep their first part so tips stay aligned)
            firsts = [mh.line_parts([geom])[:1] for geom in part.geometry]
            keep = [i for i, f in enumerate(firsts) if len(f)]
            enc = mh.encode_lines(np.concatenate([firsts[i] for i in keep]) if keep else [])
            g.update(enc)
            g["tips"] = [_hotspot_tip(value, part.iloc[i]) for i in keep]
        else:
            g.update(mh.encode_lines(part.geometry.to_numpy()))
            g["tip"] = [label]
        groups.append(g)
        rows.append((mh.line_swatch(colour, weight), label))
    if groups:
        group = _group(m, "Hotspot roads")
        data = {"layer": "hotspots", "groups": groups}
        if not with_tips:
            data.update(canvas=True, pane="hmRisk")
            for g in groups:
                g["style"]["interactive"] = False
                g.pop("tip", None)
        group.add_child(_Call("lines", data))
    return rows


def _hotspot_tip(value: str, row: pd.Series) -> list[str]:
    risk = mh.number(row.get("risk"))
    z = mh.number(row.get("gi_z"))
    p = mh.number(row.get("p_value"))
    return [
        f"hot spot road ({value.split()[-1]} confidence)",
        f"risk {mh.fmt(risk, '.3g')}",
        f"Gi* z = {mh.fmt(z, '.2f')}, p = {mh.fmt(p, '.2g')}",
    ]


def _add_risk(m: folium.Map, edge_risk: gpd.GeoDataFrame) -> list[tuple[str, str]]:
    if "risk" not in edge_risk.columns:
        raise InputError("edge_risk: column 'risk' is missing (risk per edge, a number >= 0)")
    risk = pd.to_numeric(edge_risk["risk"], errors="coerce").to_numpy(dtype=float)
    positive = np.isfinite(risk) & (risk > 0)
    if not positive.any():
        return []
    # both directions of a two-way road carry the same risk and geometry: draw it once
    keys = shapely.to_wkb(shapely.normalize(edge_risk.geometry.to_numpy()))
    first = np.zeros(len(keys), dtype=bool)
    first[np.unique(keys, return_index=True)[1]] = True
    positive &= first
    values = risk[positive]
    edges = np.unique(np.quantile(values, np.linspace(0, 1, len(mh.RISK_COLOURS) + 1)))
    if len(edges) < 2:
        edges = np.array([values.min(), values.max()])
    cls = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    geoms = edge_risk.geometry.to_numpy()[positive]
    n_cls = len(edges) - 1
    colours = mh.RISK_COLOURS[len(mh.RISK_COLOURS) - n_cls :] if n_cls < len(mh.RISK_COLOURS) else mh.RISK_COLOURS
    groups, rows = [], []
    for k in range(n_cls):
        sel = cls == k
        if not sel.any():
            continue
        colour = colours[k]
        groups.append(
            {
                "style": {"color": colour, "weight": 2.5, "opacity": 0.85, "interactive": False},
                **mh.encode_lines(geoms[sel]),
            }
        )
        rows.append((mh.line_swatch(colour, 2.5), f"road risk {edges[k]:.3g} – {edges[k + 1]:.3g}"))
    group = _group(m, "Road risk", show=False)
    group.add_child(_Call("lines", {"layer": "risk", "canvas": True, "pane": "hmRisk", "groups": groups}))
    return rows


def _add_service_areas(
    m: folium.Map,
    areas: gpd.GeoDataFrame,
    *,
    label: str | None = None,
    layer: str = "service_areas",
    colours: Sequence[str] = mh.BAND_COLOURS,
    fill: float = 0.12,
) -> list[tuple[str, str]]:
    """Service-area bands (``label``: e.g. 'before siting', shown in the layer name and legend)."""
    if "minutes" not in areas.columns:
        raise InputError("service_areas: column 'minutes' is missing (the band's travel time in minutes)")
    metric = mh.to_metric(areas)
    minutes = pd.to_numeric(metric["minutes"], errors="coerce")
    bands = sorted(float(x) for x in minutes.dropna().unique())
    colours = {b: colours[min(i, len(colours) - 1)] for i, b in enumerate(bands)}
    items, rows = [], []
    for band in reversed(bands):  # largest first, smaller bands on top
        geom = shapely.union_all(metric.geometry.to_numpy()[(minutes == band).to_numpy()])
        geom = mh.simplified(np.array([geom], dtype=object))[0]
        geom = mh.wgs84_geoms(np.array([geom], dtype=object), metric.crs)[0]
        if geom.is_empty:
            continue
        colour = colours[band]
        items.append(
            {
                "style": {"color": colour, "weight": 1, "opacity": 0.5, "fillColor": colour, "fillOpacity": fill},
                "tip": [f"within {band:g} min of a haven" + (f" ({label})" if label else "")],
                **mh.encode_polygon(geom),
            }
        )
        what = f"service area {label}" if label else "service area"
        rows.append((mh.box_swatch(colour, 0.35), f"{mh.safe_text(what)}: a haven within {band:g} min"))
    bands_text = " / ".join(f"{b:g}" for b in bands)
    name = f"Service areas {label} ({bands_text} min)" if label else f"Service areas ({bands_text} min)"
    group = _group(m, mh.safe_text(name))
    group.add_child(_Call("areas", {"layer": layer, "pane": "hmAreas", "cls": "hm-service-area", "items": items}))
    return list(reversed(rows))


#: At most this many defender cells: beyond, cells double in size so the badges stay readable.
MAX_DEFENDER_CELLS = 1500


def _legible_cell_size(defenders: gpd.GeoDataFrame, cell_m: float) -> float:
    """``cell_m``, doubled until the defenders fill at most :data:`MAX_DEFENDER_CELLS` cells."""
    if len(defenders) <= MAX_DEFENDER_CELLS:
        return cell_m
    xy = shapely.get_coordinates(defenders.to_crs(defenders.estimate_utm_crs()).geometry.to_numpy())
    while len(np.unique(np.floor(xy / cell_m), axis=0)) > MAX_DEFENDER_CELLS:
        cell_m *= 2.0
    return cell_m


def _add_defenders(
    m: folium.Map, defenders: gpd.GeoDataFrame, exact: bool, cell_size_m: float, slow_minutes: float
) -> tuple[list[tuple[str, str]], gpd.GeoDataFrame | None]:
    status = mh.defender_status(defenders, slow_minutes)
    present = [s for s in mh.STATUS_ORDER if status is not None and (status == s).any()]
    legend_rows = [
        (
            mh.box_swatch(mh.STATUS[s][0]) if not exact else mh.dot_swatch(mh.STATUS[s][0]),
            mh.safe_text(mh.STATUS[s][1].format(slow=slow_minutes)),
        )
        for s in present
    ]
    if exact:
        _add_exact_defenders(m, defenders, status, slow_minutes)
        return [*legend_rows, ("", "<i>exact defender locations</i>")], None
    cells = mh.grid_status(defenders, status, float(cell_size_m))
    items = []
    for _, cell in cells.iterrows():
        counts = {s: int(cell[s]) for s in mh.STATUS_ORDER}
        worst = mh.worst_status(counts)
        colour = mh.STATUS[worst][0] if worst else mh.COUNT_COLOUR
        total = int(cell["count"])
        tip = [f"{total} defender{'s' if total != 1 else ''} in this {cell_size_m:g} m cell"]
        tip += [f"{counts[s]} {_status_words(s, slow_minutes)}" for s in mh.STATUS_ORDER if counts[s]]
        badge = [[str(counts[s]), f"hm-st-{s}"] for s in mh.STATUS_ORDER if counts[s]] or [[str(total), "hm-st-n"]]
        centre = cell.geometry.centroid
        items.append(
            {
                "style": {"color": colour, "weight": 1.2, "opacity": 0.9, "fillColor": colour, "fillOpacity": 0.3},
                "tip": tip,
                "badge": badge,
                "center": [round(centre.y, mh.POINT_DIGITS), round(centre.x, mh.POINT_DIGITS)],
                **mh.encode_polygon(cell.geometry),
            }
        )
    group = _group(m, f"Defenders' status (per {cell_size_m:g} m cell)")
    group.add_child(
        _Call("areas", {"layer": "defenders", "pane": "hmAreas", "cls": "hm-defender-cell", "items": items})
    )
    head = f"<i>defenders per {cell_size_m:g} m cell; cell colour = worst status in it; numbers = count per status</i>"
    if not present:
        legend_rows = [(mh.box_swatch(mh.COUNT_COLOUR), "defenders (status unknown); number = count")]
    return [("", head), *legend_rows], cells


def _status_words(status: str, slow_minutes: float) -> str:
    return {
        "covered": f"covered (haven ≤ {slow_minutes:g} min)",
        "slow": f"slow (haven > {slow_minutes:g} min)",
        "reachable": "can reach a haven",
        "unreachable": "cannot reach a haven",
    }[status]


def _add_exact_defenders(
    m: folium.Map, defenders: gpd.GeoDataFrame, status: np.ndarray | None, slow_minutes: float
) -> None:
    order = list(mh.STATUS_ORDER)
    styles = [
        {
            "radius": 6,
            "color": "#ffffff",
            "weight": 1.5,
            "fillColor": mh.STATUS[s][0],
            "fillOpacity": 0.95,
            "className": "hm-defender",
        }
        for s in order
    ]
    styles.append(
        {
            "radius": 6,
            "color": "#ffffff",
            "weight": 1.5,
            "fillColor": mh.COUNT_COLOUR,
            "fillOpacity": 0.95,
            "className": "hm-defender",
        }
    )
    lat, lon = mh.point_rows(defenders.geometry)
    names = defenders["name"] if "name" in defenders.columns else mh.column(defenders, "id")
    rows = []
    for i, (la, lo, name) in enumerate(zip(lat, lon, names, strict=True)):
        s = status[i] if status is not None else ""
        idx = order.index(s) if s in order else len(order)
        rows.append(
            [la, lo, idx, [mh.plain(name, 120) or "(unnamed defender)", _status_words(s, slow_minutes) if s else ""]]
        )
    group = _group(m, "Defenders (EXACT locations)")
    group.add_child(_Call("dots", {"layer": "defenders", "styles": styles, "rows": rows}))


def _add_alerts(
    m: folium.Map,
    alerts: pd.DataFrame,
    defenders: gpd.GeoDataFrame | None,
    cells: gpd.GeoDataFrame | None,
    exact: bool,
    cell_size_m: float,
) -> list[tuple[str, str]]:
    active = mh.active_alerts(alerts)
    if active.empty or defenders is None:
        return [("", "<i>no active alerts</i>")] if defenders is not None else []
    ids = mh.id_column(defenders, "id", "defender_id")
    if ids is None:
        raise InputError("defenders: no 'id' or 'defender_id' column to join the alerts on")
    active = active.assign(defender_id=active["defender_id"].astype(str))
    position = pd.Series(np.arange(len(ids)), index=ids.to_numpy())
    position = position[~position.index.duplicated()]
    matched = active.loc[active["defender_id"].isin(position.index)]
    unmatched = active["defender_id"].nunique() - matched["defender_id"].nunique()
    if matched.empty:
        return [("", f"<i>{unmatched} active alert(s) for defenders not on this map</i>")]
    matched = matched.assign(_pos=position[matched["defender_id"]].to_numpy())
    icons = [
        {"html": mh.alert_icon_svg(colour), "cls": "hm-icon hm-alert", "size": 22} for _, colour, _ in mh.ALERT_LEVELS
    ]
    rank_to_icon = {rank: i for i, (rank, _, _) in enumerate(mh.ALERT_LEVELS)}
    points_rows, items = [], []
    if exact:
        lat, lon = mh.point_rows(defenders.geometry)
        names = defenders["name"] if "name" in defenders.columns else ids
        for pos, rows in matched.groupby("_pos", sort=True):
            lines = [mh.plain(names.iloc[pos], 120) or "(unnamed defender)", *_alert_lines(rows)]
            rank = int(rows["rank"].max())
            points_rows.append([lat[pos], lon[pos], rank_to_icon[rank], lines, lines, None])
    else:
        ix, iy, crs = mh.grid_keys(defenders, float(cell_size_m))
        matched = matched.assign(_ix=ix[matched["_pos"]], _iy=iy[matched["_pos"]])
        for (cx, cy), rows in matched.groupby(["_ix", "_iy"], sort=True):
            rank = int(rows["rank"].max())
            colour = next(c for r, c, _ in mh.ALERT_LEVELS if r == rank)
            cell = mh.cell_polygons(np.array([cx]), np.array([cy]), float(cell_size_m), crs).iloc[0]
            n = rows["defender_id"].nunique()
            lines = [
                f"{n} defender{'s' if n != 1 else ''} with active alerts in this {cell_size_m:g} m cell",
                *_alert_lines(rows),
            ]
            items.append(
                {
                    "style": {
                        "color": colour,
                        "weight": 3,
                        "opacity": 0.95,
                        "dashArray": "7 5",
                        "fillColor": colour,
                        "fillOpacity": 0.1,
                    },
                    "tip": lines[:1],
                    "popup": lines,
                    **mh.encode_polygon(cell),
                }
            )
            centre = cell.centroid
            points_rows.append(
                [
                    round(centre.y, mh.POINT_DIGITS),
                    round(centre.x, mh.POINT_DIGITS),
                    rank_to_icon[rank],
                    lines[:3],
                    lines,
                    None,
                ]
            )
    group = _group(m, "Alerts: defenders' areas" if not exact else "Alerts (EXACT defender locations)")
    if items:
        group.add_child(_Call("areas", {"layer": "alerts", "pane": "hmAreas", "cls": "hm-alert-cell", "items": items}))
    group.add_child(
        _Call("points", {"layer": "alerts" if not items else "alert_icons", "icons": icons, "rows": points_rows})
    )
    ranks = set(matched["rank"])
    rows_out = [(mh.alert_icon_svg(colour, 16), text) for rank, colour, text in mh.ALERT_LEVELS if rank in ranks]
    if not exact:
        rows_out.insert(
            0,
            (
                mh.box_swatch("#c2185b", 0.1, dash="4 3"),
                "cell with defenders under an active early-warning alert (click for reasons)",
            ),
        )
    if unmatched:
        rows_out.append(("", f"<i>{unmatched} active alert(s) for defenders not on this map</i>"))
    return rows_out


def _alert_lines(rows: pd.DataFrame, limit: int = 6) -> list[str]:
    """'level: reason' lines of a cell's alerts, highest level first, de-duplicated."""
    rows = rows.sort_values("rank", ascending=False, kind="stable")
    lines: list[str] = []
    for level, reason, score in zip(
        mh.column(rows, "level"), mh.column(rows, "reason"), mh.column(rows, "score"), strict=True
    ):
        text = mh.plain(reason, 200) or "(no reason given)"
        head = mh.plain(level, 20) or "alert"
        value = mh.number(score)
        line = f"{head}: {text}" + (f" (score {value:.3g})" if math.isfinite(value) else "")
        if line not in lines:
            lines.append(line)
    if len(lines) > limit:
        lines = [*lines[:limit], f"… and {len(lines) - limit} more"]
    return lines


def _add_routes(
    m: folium.Map, routes: gpd.GeoDataFrame, havens: gpd.GeoDataFrame | None, trim_m: float
) -> list[tuple[str, str]]:
    routes = _drawable_routes(routes, trim_m)
    if routes is None:
        return []
    names = _haven_names(havens)
    groups = []
    for nearest in (False, True):  # dashed alternatives under the nearest routes
        part = routes.loc[(routes["hm_rank"] == 1).to_numpy() == nearest]
        if part.empty:
            continue
        firsts = [mh.line_parts([g]) for g in part.geometry]
        keep = [i for i, f in enumerate(firsts) if len(f)]
        lines = [
            shapely.line_merge(shapely.multilinestrings(firsts[i])) if len(firsts[i]) > 1 else firsts[i][0]
            for i in keep
        ]
        lines = [ln if ln.geom_type == "LineString" else max(ln.geoms, key=lambda g: g.length) for ln in lines]
        tips = [_route_tip(part.iloc[i], names) for i in keep]
        style = {
            "color": mh.ROUTE_COLOUR,
            "weight": 3 if nearest else 2,
            "opacity": 0.9 if nearest else 0.75,
            "className": "hm-route",
        }
        if not nearest:
            style["dashArray"] = "6 5"
        groups.append({"style": style, "tips": tips, **mh.encode_lines(lines)})
    _group(m, "Routes to havens").add_child(_Call("lines", {"layer": "routes", "groups": groups}))
    rows = [
        (mh.line_swatch(mh.ROUTE_COLOUR, 3), "route to the nearest haven"),
        (mh.line_swatch(mh.ROUTE_COLOUR, 2, "6 5"), "route to the 2nd, 3rd … nearest haven"),
    ]
    if trim_m > 0:
        rows.append(("", f"<i>routes start {trim_m:g} m after the defender</i>"))
    return rows


def _drawable_routes(routes: gpd.GeoDataFrame, trim_m: float) -> gpd.GeoDataFrame | None:
    """Reachable routes, trimmed at the start, with ``hm_rank``; ``None`` if none is left."""
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
    rank = pd.to_numeric(routes["rank"], errors="coerce").fillna(1) if "rank" in routes.columns else 1
    return routes.assign(hm_rank=rank)


def _haven_names(havens: gpd.GeoDataFrame | None) -> dict[str, str]:
    """Map str(haven id) → haven name (plain text), from column ``haven_id`` or ``id``."""
    if havens is None or "name" not in havens.columns:
        return {}
    ids = mh.id_column(havens, "haven_id", "id")
    ids = ids if ids is not None else havens.index.to_series().astype(str)
    return {i: mh.plain(n, 120) for i, n in zip(ids, havens["name"], strict=True)}


def _route_tip(row: pd.Series, names: dict[str, str]) -> list[str]:
    rank = mh.number(row.get("hm_rank"))
    rank = int(rank) if math.isfinite(rank) else 1
    haven_id = row.get("haven_id")
    haven = mh.plain(row.get("haven_name"), 120) or names.get(str(haven_id)) or mh.plain(haven_id) or "haven"
    minutes = mh.number(row.get("travel_time_s")) / 60.0
    km = mh.number(row.get("distance_m")) / 1000.0
    what = "nearest haven" if rank == 1 else f"haven no. {rank} by travel time"
    return [f"{what}: {haven}", f"{mh.fmt(minutes, '.1f')} min, {mh.fmt(km, '.2f')} km"]


def _add_havens(m: folium.Map, havens: gpd.GeoDataFrame) -> list[tuple[str, str]]:
    kinds = [mh.haven_kind(k) for k in mh.column(havens, "kind")]
    icons = [{"html": mh.haven_icon_svg(i), "cls": "hm-icon hm-haven", "size": 24} for i in range(len(mh.HAVEN_KINDS))]
    lat, lon = mh.point_rows(havens.geometry)
    ids = mh.id_column(havens, "id", "haven_id")
    ids = ids if ids is not None else pd.Series([""] * len(havens))
    rows = []
    for la, lo, k, name, kind, hid in zip(
        lat, lon, kinds, mh.column(havens, "name"), mh.column(havens, "kind"), ids, strict=True
    ):
        name_text = mh.plain(name, 120) or "(unnamed haven)"
        kind_text = mh.plain(kind, 60)
        rows.append(
            [
                la,
                lo,
                k,
                [name_text, kind_text],
                [name_text, f"kind: {kind_text}" if kind_text else "", f"id: {mh.plain(hid, 60)}"],
                None,
            ]
        )
    _group(m, "Safe havens").add_child(_Call("points", {"layer": "havens", "icons": icons, "rows": rows}))
    return [(mh.haven_icon_svg(i, 16), text) for i, (_, _, _, text) in enumerate(mh.HAVEN_KINDS) if i in set(kinds)]


#: Chosen siting candidates (numbered) and rejected ones.
CHOSEN_COLOUR, REJECTED_COLOUR = "#c2185b", "#8a8a8a"


def _add_candidates(m: folium.Map, candidates: gpd.GeoDataFrame) -> list[tuple[str, str]]:
    chosen = mh.column(candidates, "chosen").astype(bool).to_numpy()
    lat, lon = mh.point_rows(candidates.geometry)
    ids = mh.id_column(candidates, "site_id", "id")
    ids = ids if ids is not None else pd.Series([""] * len(candidates))
    dot = (
        f'<svg width="12" height="12" viewBox="0 0 12 12" aria-hidden="true"><circle cx="6" cy="6" r="4.5" '
        f'fill="#ffffff" stroke="{REJECTED_COLOUR}" stroke-width="2"/></svg>'
    )
    icons = [
        {"html": dot, "cls": "hm-icon hm-candidate", "size": 12},
        {"html": None, "cls": "hm-icon hm-stop-icon hm-chosen", "size": 20, "color": CHOSEN_COLOUR},
    ]
    rows = []
    for la, lo, pick, name, sid, order, gain, within in zip(
        lat, lon, chosen, mh.column(candidates, "name"), ids, mh.column(candidates, "order"),
        mh.column(candidates, "gain"), mh.column(candidates, "weight_within"), strict=True,
    ):  # fmt: skip
        name_text = mh.plain(name, 120) or mh.plain(sid, 60)
        number = mh.plain(_int_text(order), 6) if pick else None
        head = f"open no. {number}: {name_text}" if pick else f"candidate (not chosen): {name_text}"
        lines = [
            head,
            f"id: {mh.plain(sid, 60)}",
            f"defender weight within the band: {mh.fmt(mh.number(within), '.3g')}",
        ]
        if pick:
            lines.append(f"gain when opened: {mh.fmt(mh.number(gain), '.4g')}")
        rows.append([la, lo, int(pick), lines[:2], lines, number])
    group = _group(m, "Candidate sites (numbered: open in this order)")
    group.add_child(_Call("points", {"layer": "candidates", "icons": icons, "rows": rows}))
    legend = [(mh.html_swatch(_stop_swatch(CHOSEN_COLOUR)), "chosen site, numbered in the order to open it")]
    if (~chosen).any():
        legend.append((mh.html_swatch(dot), "candidate site not chosen"))
    return legend


def _stop_swatch(colour: str) -> str:
    return (
        f'<span style="display:inline-block;width:14px;height:14px;border-radius:3px;background:{colour};'
        'color:#fff;font:bold 10px sans-serif;text-align:center;line-height:14px">1</span>'
    )


def _add_bases(m: folium.Map, bases: gpd.GeoDataFrame) -> list[tuple[str, str]]:
    lat, lon = mh.point_rows(bases.geometry)
    ids = mh.id_column(bases, "id", "base_id")
    ids = ids if ids is not None else pd.Series([""] * len(bases))
    rows = [
        [la, lo, 0, [mh.plain(name, 120) or mh.plain(i) or "patrol base", f"base {mh.plain(i, 60)}"], None, None]
        for la, lo, name, i in zip(lat, lon, mh.column(bases, "name"), ids, strict=True)
    ]
    icons = [{"html": mh.base_icon_svg(), "cls": "hm-icon hm-base", "size": 22}]
    _group(m, "Patrol bases").add_child(_Call("points", {"layer": "bases", "icons": icons, "rows": rows}))
    return [(mh.base_icon_svg(16), "patrol base")]


def _add_patrols(
    m: folium.Map, routes: gpd.GeoDataFrame | None, stops: gpd.GeoDataFrame | None
) -> list[tuple[str, str]]:
    frames = [f for f in (routes, stops) if f is not None]
    for f, name in ((routes, "patrol_routes"), (stops, "patrol_stops")):
        if f is not None and "unit" not in f.columns:
            raise InputError(f"{name}: column 'unit' is missing (the patrol unit of each row)")
    units = sorted({mh.plain(u, 80) for f in frames for u in f["unit"]}, key=_natural)
    colour = {u: mh.UNIT_COLOURS[i % len(mh.UNIT_COLOURS)] for i, u in enumerate(units)}
    days = sorted({_day(d) for f in frames for d in mh.column(f, "day")}, key=_natural)
    names = []
    for k, day in enumerate(days):
        label = f"Patrol day {mh.safe_text(day)}" if day else "Patrols"
        names.append(label)
        group = _group(m, label, show=k == 0)
        layer = f"patrol_day_{k + 1}"
        if routes is not None:
            part = routes.loc[(mh.column(routes, "day").map(_day) == day).to_numpy()]
            groups = []
            for unit in units:
                mine = part.loc[(part["unit"].map(lambda u: mh.plain(u, 80)) == unit).to_numpy()]
                geoms, tips = [], []
                for _, row in mine.iterrows():
                    for line in mh.line_parts([row.geometry]):
                        geoms.append(line)
                        tips.append(_patrol_tip(row, unit, day))
                if geoms:
                    groups.append(
                        {
                            "style": {"color": colour[unit], "weight": 3.5, "opacity": 0.9, "className": "hm-patrol"},
                            "tips": tips,
                            "arrows": True,
                            **mh.encode_lines(geoms),
                        }
                    )
            if groups:
                group.add_child(_Call("lines", {"layer": layer, "groups": groups}, deps=("textpath",)))
        if stops is not None:
            part = stops.loc[(mh.column(stops, "day").map(_day) == day).to_numpy()]
            if not part.empty:
                icons = [{"html": None, "cls": "hm-icon hm-stop-icon", "size": 18, "color": colour[u]} for u in units]
                lat, lon = mh.point_rows(part.geometry)
                rows = []
                for la, lo, unit, stop, target in zip(
                    lat, lon, part["unit"], mh.column(part, "stop"), mh.column(part, "target_id"), strict=True
                ):
                    u = mh.plain(unit, 80)
                    number = mh.plain(_int_text(stop), 6)
                    tip = [
                        f"unit {u} — stop {number}",
                        f"target {mh.plain(target, 60)}" if mh.plain(target) else "",
                        f"day {day}" if day else "",
                    ]
                    rows.append([la, lo, units.index(u), tip, None, number])
                group.add_child(_Call("points", {"layer": layer + "_stops", "icons": icons, "rows": rows}))
    if len(names) > 1:
        m.add_child(_Call("radio", {"names": [f"patrol_day_{k + 1}" for k in range(len(names))]}))
    rows = [
        (
            mh.line_swatch(colour[u], 3.5, arrow=True),
            f"unit {mh.safe_text(u)}: route (arrows: direction), numbered stops",
        )
        for u in units
    ]
    if len(days) > 1:
        rows.append(("", f"<i>{len(days)} days: pick one in the layer control</i>"))
    return rows


def _patrol_tip(row: pd.Series, unit: str, day: str) -> list[str]:
    minutes = mh.number(row.get("duration_min"))
    prize = mh.number(row.get("prize"))
    return [
        f"unit {unit}" + (f" — day {day}" if day else ""),
        f"duration {mh.fmt(minutes, '.0f')} min" if math.isfinite(minutes) else "",
        f"priority collected {mh.fmt(prize, '.3g')}" if math.isfinite(prize) else "",
        f"base {mh.plain(row.get('base_id'), 60)}" if mh.plain(row.get("base_id")) else "",
    ]


def _day(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return mh.plain(_int_text(value), 40)


def _int_text(value: Any) -> Any:
    """Integral floats as int text (3.0 → '3')."""
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return value


def _natural(text: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(text)))
