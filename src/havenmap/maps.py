"""Self-contained offline HTML maps for commanders: threat, havens and reach, alerts and patrols.

Every map havenmap draws — the commander's map, ``threat_map.html``, ``patrol_map.html``,
``coverage_map.html``, the nearest-haven map, and later siting and share-bundle maps — is
composed with one :class:`MapBuilder` at one privacy level (:class:`havenmap.privacy.DefenderPrivacy`),
so they share one visual language and one set of rules:

* **It opens on what needs a decision.** A summary panel (top left) lists, most urgent
  first, defenders who cannot reach any haven, then those beyond ``slow_minutes``, then
  alerts by severity — each line a count, the nearest street (or a place) and a click
  that flies there — and the first view contains every one of them.
* **Few layers on by default**: the threat as hot-spot roads (or as heat when there are no
  hot spots — never both), havens with the service area of the nearest band, defenders'
  status cells and alerts. Routes, patrols, road risk, recent incidents and the other
  bands are one click away, in the layer control's groups Threat · Safety · Patrols.
* **One visual language**: a sequential yellow-red ramp means threat, a sequential blue
  ramp means reach (bands, routes, defenders who reach a haven), near-black means "cannot
  reach any haven", havens have category colours and glyphs, patrol stops are diamonds
  and counts are round (incident clusters) or pills (defender badges). Badges and alert
  icons are moved out from under other symbols and panels (collision-aware placement in
  the page).
* **A legend that follows the layers**: only switched-on layers appear, sections collapse,
  every scale has its unit.
* **Streets you can name**: hovering a road shows its name; the summary uses them.
* **Printable**: a print stylesheet puts map, summary and legend on one landscape page.

The saved HTML fetches nothing: Leaflet and its plugins (from ``offlinefolium``), our own
script and stylesheet (package data ``havenmap/assets/hm.js`` / ``hm.css``, read with
:mod:`importlib.resources`) and every icon (inline SVG) are inlined; no tile layer is added
unless asked for. User text reaches the page only as text (``textContent`` in the page).

Defender locations are sensitive: by default they are counted in k-anonymous grid cells
(:func:`havenmap.privacy.defender_cells`), alerts are drawn on those cells and routes start
outside the defender's cell, so no defender's position reaches the file. Exact points need
``exact_defenders=True``; :func:`save_map` then writes the file owner-only.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import offlinefolium as folium
import pandas as pd
from branca.element import Element, Figure, MacroElement
from jinja2.utils import htmlsafe_json_dumps
from offlinefolium import plugins
from offlinefolium.elements import _res

from havenmap import _maphtml as mh
from havenmap import _maplayers
from havenmap._io import write_text
from havenmap.errors import InputError
from havenmap.privacy import DefenderPrivacy

__all__ = [
    "SECTIONS",
    "MapBuilder",
    "commander_map",
    "coverage_map",
    "nearest_map",
    "page_assets",
    "patrol_map",
    "save_map",
    "siting_map",
    "threat_map",
]

#: Layer-control groups, in order; "Base map" holds the roads and tiles.
SECTIONS = ("Threat", "Safety", "Patrols")
# Map panes (name, z-index): roads under everything, then service-area bands, defender
# areas, heat, risk; the default
# overlay pane (400, SVG: routes, hotspots, patrols) and markers (600) above.
PANES = (("hmRoads", 250), ("hmBands", 340), ("hmAreas", 350), ("hmHeat", 380), ("hmRisk", 390))
#: set on a folium map that shows exact defender locations or havens not marked public (safe houses)
_PRIVATE_ATTR = "havenmap_private"
_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


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
    title) goes through this class instead, which is never parsed.
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
    figure.header.add_child(_Raw(f"<style>{mh.page_css()}</style>"), name="hm_css")
    figure.header.add_child(_Raw(f"<script>{mh.page_js()}</script>"), name="hm_js")


def page_assets() -> tuple[str, ...]:
    """The texts every map inlines verbatim: Leaflet and its plugins (cleaned), our stylesheet and script.

    They are code, not data: a check scanning a saved map for what it shows (the share bundle's
    self-check) skips the ``<script>`` / ``<style>`` blocks holding exactly one of these.
    """
    texts = [_clean_asset(_res[url]) for dep in _DEPS.values() for _, _, url in dep]
    return (*texts, mh.page_css(), mh.page_js())


class _Call(MacroElement):
    """One call of the page's ``HM`` library: ``HM.call(fn, map, <JSON data>)``.

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


LegendRow = tuple[str, str, bool]  # (swatch SVG of ours, plain text, is a note)


# ================================================================== the builder


class MapBuilder:
    """Compose one offline map from layers, at one privacy level.

    Every map of havenmap is built with this class; layers are added by the ``add_*``
    methods and :meth:`build` returns the folium map (save it with :func:`save_map`).
    Domain layers (threat, safety, patrols) come from :meth:`add_threat`,
    :meth:`add_safety` and :meth:`add_patrols`; other maps (siting, share bundles) add
    their own with :meth:`add_points`, :meth:`add_lines` and :meth:`add_areas`, and may
    put lines into the summary with :meth:`add_summary_line`. Defender data must go
    through :meth:`add_safety`, which applies ``privacy``.

    Parameters
    ----------
    title
        Scenario name: the summary panel's title and the page title.
    as_of
        Date of the picture (date, datetime or ISO text), shown under the title.
    roads
        A :class:`havenmap.RoadNetwork` or road centrelines (GeoDataFrame of LineStrings,
        columns ``highway`` and ``name`` optional): the base map, with road names on
        hover. Main roads are always drawn, streets from zoom 14 and paths from zoom 15
        on large networks; geometry merged and simplified by 5 m.
    tiles
        ``None`` (default): no tiles, nothing is fetched. ``"osm"``, a URL template or a
        folium ``TileLayer``: an online tile layer that can be chosen as the base map.
    privacy
        How defenders may appear (default :class:`~havenmap.privacy.DefenderPrivacy`:
        k-anonymous 500 m cells with k = 5).
    """

    def __init__(
        self,
        *,
        title: str = "havenmap",
        as_of: Any = None,
        roads: Any = None,
        tiles: Any = None,
        privacy: DefenderPrivacy | None = None,
    ) -> None:
        self.privacy = privacy if privacy is not None else DefenderPrivacy()
        if not isinstance(self.privacy, DefenderPrivacy):
            raise InputError("privacy: give a havenmap.privacy.DefenderPrivacy")
        self.title = title
        self.stamp = mh.as_timestamp(as_of)
        self.as_of = self.stamp if self.stamp is not None else as_of
        self.m = _new_map(title)
        setattr(self.m, _PRIVATE_ATTR, bool(self.privacy.exact))
        self.roads = _road_frame(roads)
        self.places = _maplayers.Places(self.roads)
        self.cells = None  # the DefenderCells of add_safety, for alerts and routes
        self._keys: dict[str, dict[str, Any]] = {}
        self._summary: list[dict[str, Any]] = []
        self._summary_note: str | None = None
        self._summary_heading = "Needs a decision"
        self._home_cells: list[int] = []
        self._home_bounds: list[np.ndarray] = []
        self._fallback_bounds: list[np.ndarray] = []
        self._radios: list[list[str]] = []
        self._tiles: list[dict[str, str]] = []
        self._built = False
        if self.roads is not None:
            _maplayers.add_roads(self, self.roads)
            self.include_in_view(bounds=mh.wgs84_bounds(self.roads), fallback=True)
        if tiles is not None:
            self._add_tiles(tiles, default=self.roads is None)

    # ------------------------------------------------------------ generic composition

    def layer(
        self,
        key: str,
        name: str,
        section: str,
        *,
        show: bool = True,
        legend: Sequence[LegendRow | tuple[str, str]] = (),
        base: bool = False,
    ) -> str:
        """Declare a layer: its key (``[a-z][a-z0-9_]*``, unique), control label, section, default and legend.

        ``section`` is one of :data:`SECTIONS` (or ``"Base map"`` with ``base=True``).
        ``legend`` rows are ``(swatch, text)`` or ``(swatch, text, is_note)``: the swatch
        is SVG made by havenmap (never user text), the text is plain text.
        """
        if not _KEY.match(key) or key in self._keys:
            raise ValueError(f"layer key {key!r}: use a new name of lowercase letters, digits and '_'")
        if section not in (*SECTIONS, "Base map"):
            raise ValueError(f"section {section!r}: use one of {', '.join(SECTIONS)} or 'Base map'")
        rows = [[r[0], mh.plain(r[1], 300), bool(r[2]) if len(r) > 2 else False] for r in legend]
        meta = {"key": key, "name": mh.plain(name, 120), "section": section, "show": bool(show), "legend": rows}
        meta["base"] = bool(base)
        self._keys[key] = meta
        self.m.add_child(_Call("layer", meta))
        return key

    def call(self, fn: str, data: dict[str, Any], deps: Sequence[str] = ()) -> None:
        """Add one call of the page library (``HM[fn]``), with its JSON data and the plugins it needs."""
        self.m.add_child(_Call(fn, data, deps=deps))

    def add_points(
        self,
        key: str,
        name: str,
        section: str,
        points: gpd.GeoDataFrame,
        *,
        icon_svg: str,
        tooltip: Sequence[str] = ("name",),
        legend_text: str = "",
        show: bool = True,
        context: bool = False,
    ) -> None:
        """A layer of point symbols (one inline-SVG icon), with the given columns as tooltip lines.

        Not for defenders (use :meth:`add_safety`). ``context=True`` makes the first view
        include these points.
        """
        frame = mh.to_wgs84(points, key)
        if frame is None:
            return
        lat, lon = mh.point_rows(frame.geometry)
        cols = [mh.column(frame, c) for c in tooltip]
        rows = [
            [la, lo, 0, [mh.plain(c.iloc[i], 120) for c in cols], None, None]
            for i, (la, lo) in enumerate(zip(lat, lon, strict=True))
        ]
        self.layer(key, name, section, show=show, legend=[(icon_svg, legend_text or name)])
        self.call("points", {"layer": key, "icons": [{"html": icon_svg, "cls": "hm-icon", "size": 22}], "rows": rows})
        self.include_in_view(bounds=frame.total_bounds, fallback=not context)

    def add_lines(
        self,
        key: str,
        name: str,
        section: str,
        lines: gpd.GeoDataFrame,
        *,
        colour: str,
        weight: float = 3.0,
        legend_text: str = "",
        show: bool = True,
    ) -> None:
        """A layer of lines in one style (not for routes from defenders: use :meth:`add_safety`)."""
        frame = mh.to_wgs84(lines, key)
        if frame is None:
            return
        style = {"color": colour, "weight": weight, "opacity": 0.9, "interactive": False}
        self.layer(key, name, section, show=show, legend=[(mh.line_swatch(colour, weight), legend_text or name)])
        self.call("lines", {"layer": key, "groups": [{"style": style, **mh.encode_lines(frame.geometry.to_numpy())}]})
        self.include_in_view(bounds=frame.total_bounds, fallback=True)

    def add_areas(
        self,
        key: str,
        name: str,
        section: str,
        areas: gpd.GeoDataFrame,
        *,
        colour: str,
        opacity: float = 0.2,
        legend_text: str = "",
        show: bool = True,
    ) -> None:
        """A layer of polygons in one style (not for defender areas: use :meth:`add_safety`)."""
        frame = mh.to_wgs84(areas, key)
        if frame is None:
            return
        style = {"color": colour, "weight": 1, "opacity": 0.6, "fillColor": colour, "fillOpacity": opacity}
        items = [{"style": style, **mh.encode_polygon(g)} for g in frame.geometry]
        self.layer(key, name, section, show=show, legend=[(mh.box_swatch(colour, opacity + 0.15), legend_text or name)])
        self.call("areas", {"layer": key, "pane": "hmAreas", "items": items})
        self.include_in_view(bounds=frame.total_bounds, fallback=True)

    def add_summary_line(
        self,
        kind: str,
        count: str,
        text: str,
        *,
        place: str | None = None,
        cells: Sequence[int] = (),
        bounds: Sequence[float] | None = None,
        swatch: str = "",
        focus: bool = True,
    ) -> None:
        """A line of the summary panel: ``count`` ``text`` near ``place``; a click flies to ``cells`` / ``bounds``.

        ``bounds`` is ``(west, south, east, north)`` in degrees. With ``focus`` the first
        view contains the target. Lines appear in the order added.
        """
        line: dict[str, Any] = {"kind": kind, "count": mh.plain(count, 40), "text": mh.plain(text, 200)}
        if place:
            line["place"] = mh.plain(place, 120)
        if len(cells):
            line["cells"] = [int(c) for c in cells]
            if focus:
                self._home_cells.extend(line["cells"])
        if bounds is not None and np.all(np.isfinite(bounds)):
            w, s, e, n = (float(v) for v in bounds)
            line["bounds"] = [[round(s, 6), round(w, 6)], [round(n, 6), round(e, 6)]]
            if focus:
                self._home_bounds.append(np.array([w, s, e, n]))
        if swatch:
            line["swatch"] = swatch
        self._summary.append(line)

    def summary_heading(self, text: str) -> None:
        """The heading over the summary lines (default "Needs a decision")."""
        self._summary_heading = mh.plain(text, 80)

    def summary_note(self, text: str) -> None:
        """The note under the summary lines (e.g. "every defender reaches a haven in time")."""
        self._summary_note = mh.plain(text, 300)

    def include_in_view(
        self, bounds: Sequence[float] | None = None, cells: Sequence[int] = (), *, fallback: bool = False
    ) -> None:
        """Make the first view contain ``bounds`` (west, south, east, north) and/or defender ``cells``.

        With ``fallback`` the bounds only count when nothing else asked to be in view (the
        road network, incidents, hot spots: the area of a map without defenders or havens).
        """
        if bounds is not None and np.all(np.isfinite(bounds)):
            (self._fallback_bounds if fallback else self._home_bounds).append(np.asarray(bounds, dtype=float))
        self._home_cells.extend(int(c) for c in cells)

    def radio(self, keys: Sequence[str]) -> None:
        """Make the layers ``keys`` exclusive: switching one on switches the others off."""
        if len(keys) > 1:
            self.call("radio", {"names": list(keys)})

    def has_layer(self, key: str) -> bool:
        return key in self._keys

    # ------------------------------------------------------------ domain layers

    def add_threat(
        self,
        incidents: gpd.GeoDataFrame | None = None,
        edge_risk: gpd.GeoDataFrame | None = None,
        hotspots: gpd.GeoDataFrame | None = None,
        *,
        recent_days: float = 30,
        view: str | None = None,
        summary: bool = False,
    ) -> MapBuilder:
        """Threat layers: hot-spot roads, incident heat by week, recent incidents, road risk.

        ``view`` picks the one threat layer shown at first: ``"hotspots"`` or ``"heat"``
        (default: hot spots when given, else heat). ``summary`` adds the hot-spot areas to
        the summary panel (for maps without defenders). See :func:`commander_map`.
        """
        _maplayers.add_threat(self, incidents, edge_risk, hotspots, recent_days=recent_days, view=view, summary=summary)
        return self

    def add_safety(
        self,
        havens: gpd.GeoDataFrame | None = None,
        service_areas: gpd.GeoDataFrame | None = None,
        defenders: gpd.GeoDataFrame | None = None,
        coverage: pd.DataFrame | None = None,
        routes: gpd.GeoDataFrame | None = None,
        alerts: pd.DataFrame | None = None,
        *,
        slow_minutes: float = 10.0,
        show_routes: bool = False,
    ) -> MapBuilder:
        """Safety layers: defenders' status (at the privacy level), alerts, havens, service areas, routes.

        Joins ``coverage`` and ``alerts`` to ``defenders`` by id and fails (naming the ids)
        when any row does not match. Routes start off unless ``show_routes``. See
        :func:`commander_map`.
        """
        if havens is not None and not _all_public(havens):
            setattr(self.m, _PRIVATE_ATTR, True)  # a safe house's position is as sensitive as a defender's
        _maplayers.add_safety(
            self,
            havens=havens,
            service_areas=service_areas,
            defenders=defenders,
            coverage=coverage,
            routes=routes,
            alerts=alerts,
            slow_minutes=slow_minutes,
            show_routes=show_routes,
        )
        return self

    def add_patrols(
        self,
        routes: gpd.GeoDataFrame | None = None,
        stops: gpd.GeoDataFrame | None = None,
        bases: gpd.GeoDataFrame | None = None,
        *,
        show: bool = False,
    ) -> MapBuilder:
        """Patrol layers: bases and one layer per day (routes with arrows, numbered diamond stops).

        ``show`` switches the bases and day 1 on and lists the units' day-1 rounds in the
        summary (the patrol map); on the commander's map patrols start off.
        """
        _maplayers.add_patrols(self, routes, stops, bases, show=show)
        return self

    # ------------------------------------------------------------ finishing

    def build(self) -> folium.Map:
        """Add the summary, the layer control, the legend and the tools; return the map (once)."""
        if self._built:
            raise RuntimeError("MapBuilder.build() was already called")
        self._built = True
        bounds = self._home_bounds or ([] if self._home_cells else self._fallback_bounds)
        home: dict[str, Any] = {"cells": sorted(set(self._home_cells))}
        box = _union(bounds)
        if box is not None:
            w, s, e, n = box
            home["bounds"] = [[round(s, 6), round(w, 6)], [round(n, 6), round(e, 6)]]
        summary = {
            "title": mh.plain(self.title, 200),
            "asOf": mh.as_of_text(self.as_of),
            "exact": "⚠ EXACT DEFENDER LOCATIONS — do not share" if self.privacy.exact else None,
            "heading": self._summary_heading if self._summary else None,
            "lines": self._summary,
            "note": self._summary_note,
        }
        self.call("finish", {"summary": summary, "home": home, "tiles": self._tiles})
        self.call("tools", {}, deps=("fullscreen", "measure"))
        self.call("ready", {})
        return self.m

    def _add_tiles(self, tiles: Any, default: bool) -> None:
        if isinstance(tiles, folium.TileLayer):
            layer = tiles
        elif isinstance(tiles, str) and tiles.lower() in ("osm", "openstreetmap"):
            layer = folium.TileLayer("OpenStreetMap", name="OpenStreetMap tiles (online)", show=default)
        elif isinstance(tiles, str) and "{z}" in tiles:
            layer = folium.TileLayer(
                tiles, name="Tiles (online)", attr="tiles: see the tile server's terms", show=default
            )
        else:
            raise InputError(
                f"tiles={tiles!r}: use None (offline), 'osm', a URL template with {{z}}/{{x}}/{{y}} "
                "or a folium TileLayer"
            )
        layer.overlay = False
        layer.control = False
        layer.add_to(self.m)
        self._tiles.append({"name": layer.get_name(), "label": mh.plain(layer.layer_name, 80) or "Tiles (online)"})


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
    k_anonymity: int = 5,
    threat_view: str | None = None,
    privacy: DefenderPrivacy | None = None,
) -> folium.Map:
    """One offline map of threat, havens and their reach, defenders' status, alerts and patrols.

    Every layer is optional (``None`` leaves it out); GeoDataFrames may be in any CRS. On
    at first: one threat layer (hot-spot roads, else the heat), the service area of the
    smallest band, defenders' status, alerts and havens; off (one click away): the other
    threat layers, the other bands, routes, patrol bases and patrol days. The summary
    panel lists defenders who cannot reach any haven, those beyond ``slow_minutes`` and
    alerts by severity; the first view contains all of them (see the module docstring).

    Parameters
    ----------
    roads
        A :class:`havenmap.RoadNetwork` or road centrelines (see :class:`MapBuilder`).
    incidents
        Threat incidents (points; columns as from :func:`havenmap.read_incidents`:
        ``incident_id``, ``date``, ``event_type``, ``sub_event_type``, ``fatalities``,
        ``notes``). Drawn as a heatmap with a week slider (weight: severity when the
        threat module's weight columns are present, else ``fatalities + 1``), and the last
        ``recent_days`` days as clustered markers (at most 2,000, most recent first).
        Incidents dated after ``as_of`` are left out.
    edge_risk
        Per-edge risk: GeoDataFrame ``risk`` (weighted incidents per km, ≥ 0), LineStrings;
        edges with risk > 0 in five quantile classes.
    hotspots
        Hot-spot edges: ``risk, gi_z, p_value, significance`` ('hot 99%' / 'hot 95%' /
        'hot 90%'), LineStrings.
    havens
        Safe havens (points): ``id`` (or ``haven_id``), ``name``, ``kind``; an inline SVG
        icon per kind (embassy, clinic, place of worship, other).
    service_areas
        ``haven_id, minutes, geometry`` (polygons): merged per band, one layer per band.
    defenders
        Defender locations (points), ``id`` (or ``defender_id``). Status from ``status``
        (covered / slow / unreachable), or ``travel_time_s`` (s) and ``reachable``, or
        ``reachable`` alone (see ``coverage``). Counted in k-anonymous cells (see
        ``cell_size_m``, ``k_anonymity``) unless ``exact_defenders``.
    coverage
        Per-defender table ``defender_id, travel_time_s, reachable`` (as from the coverage
        module), joined to ``defenders`` by id; every row must match a defender and every
        defender a row (:class:`~havenmap.errors.InputError` naming the ids otherwise).
    routes
        Routes to havens (LineStrings starting at the defender), ``defender_id``, ``rank``,
        ``haven_id``, ``travel_time_s``, ``distance_m``, ``reachable``, optionally
        ``haven_name``. Unless exact, each route starts outside its defender's cell and at
        least ``route_trim_m`` (straight line) from the defender.
    patrol_routes, patrol_stops, bases
        The patrol plan (see :func:`patrol_map`); off at first on this map.
    alerts
        Early-warning alerts ``defender_id, score, level, reason``: joined to defenders by
        id (every row must match); active ones are drawn on the defenders' cells.
    title
        Scenario name: the summary panel's title and the page title.
    as_of
        Date of the picture: shown under the title; the end of the recent-incident window.
    exact_defenders
        Draw defenders (and their alerts) as exact points and routes untrimmed; the map is
        marked "EXACT DEFENDER LOCATIONS" and :func:`save_map` writes it owner-only.
    cell_size_m
        Side of the defender cells in metres, at least 100 (doubled while more than 1,500
        cells would be drawn).
    route_trim_m
        Metres cut from the start of each route when defenders are not exact.
    tiles
        ``None`` (default, nothing is fetched), ``"osm"``, a URL template or a TileLayer.
    recent_days
        Days of recent incidents drawn as markers (window ending at ``as_of``).
    slow_minutes
        A defender who reaches a haven within this many minutes is in time; beyond it the
        summary lists them as "more than … min" (pass the last service-area band).
    k_anonymity
        Each defender cell holds at least this many defenders (merged otherwise; "fewer
        than k" when even merging does not get there).
    threat_view
        ``"hotspots"`` or ``"heat"``: the threat layer on at first (default: hot spots if
        given).
    privacy
        A :class:`~havenmap.privacy.DefenderPrivacy`, instead of ``exact_defenders``,
        ``cell_size_m``, ``k_anonymity`` and ``route_trim_m``.

    Returns
    -------
    offlinefolium.Map
        Save it with :func:`save_map`.
    """
    if privacy is None:
        privacy = DefenderPrivacy(
            exact=bool(exact_defenders), cell_size_m=cell_size_m, k=k_anonymity, route_trim_m=route_trim_m
        )
    builder = MapBuilder(title=title, as_of=as_of, roads=roads, tiles=tiles, privacy=privacy)
    builder.add_threat(incidents, edge_risk, hotspots, recent_days=recent_days, view=threat_view)
    builder.add_safety(
        havens=havens,
        service_areas=service_areas,
        defenders=defenders,
        coverage=coverage,
        routes=routes,
        alerts=alerts,
        slow_minutes=slow_minutes,
    )
    builder.add_patrols(patrol_routes, patrol_stops, bases, show=False)
    return builder.build()


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
    threat_view: str | None = None,
) -> folium.Map:
    """Threat only: hot-spot roads (or heat), incident heat by week, recent incidents, road risk.

    The summary lists the hot-spot areas, strongest first. See :func:`commander_map` for the
    parameters.
    """
    builder = MapBuilder(title=title, as_of=as_of, roads=roads, tiles=tiles)
    builder.add_threat(incidents, edge_risk, hotspots, recent_days=recent_days, view=threat_view, summary=True)
    return builder.build()


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
    """Patrols: each unit's route in its own colour with arrows and numbered diamond stops, one layer per day.

    ``routes`` (``unit, day, base_id, prize, duration_min``, LineStrings), ``stops``
    (``unit, day, stop, target_id``, points) and ``bases`` (``id, name``, points) are the
    patrol plan's frames. Day 1 and the bases are on at first; the summary lists each
    unit's day-1 round.
    """
    builder = MapBuilder(title=title, as_of=as_of, roads=roads, tiles=tiles)
    builder.add_patrols(routes, stops, bases, show=True)
    return builder.build()


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
    k_anonymity: int = 5,
) -> folium.Map:
    """Havens, their service-area bands and defenders' status (in time / too slow / cannot reach).

    See :func:`commander_map` for the parameters.
    """
    privacy = DefenderPrivacy(exact=bool(exact_defenders), cell_size_m=cell_size_m, k=k_anonymity)
    builder = MapBuilder(title=title, as_of=as_of, roads=roads, tiles=tiles, privacy=privacy)
    builder.add_safety(
        havens=havens, service_areas=service_areas, defenders=defenders, coverage=coverage, slow_minutes=slow_minutes
    )
    return builder.build()


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
    k_anonymity: int = 5,
) -> folium.Map:
    """Roads, incident heat, safe havens, routes to havens and defenders (a :func:`commander_map`).

    Defenders without a ``reachable``/``status`` column take their reachability (and the
    rank-1 ``travel_time_s``) from ``routes`` when every defender appears there. Routes are
    on at first on this map. See :func:`commander_map` for the parameters.
    """
    privacy = DefenderPrivacy(
        exact=bool(exact_defenders), cell_size_m=cell_size_m, k=k_anonymity, route_trim_m=route_trim_m
    )
    builder = MapBuilder(title=title, as_of=as_of, roads=roads, tiles=tiles, privacy=privacy)
    builder.add_threat(incidents)
    builder.add_safety(havens=havens, defenders=defenders, routes=routes, show_routes=True)
    return builder.build()


#: Chosen siting candidates (numbered, in opening order) and the candidates not chosen.
CHOSEN_COLOUR, REJECTED_COLOUR = "#EE7733", "#8a8a8a"  # a round badge: not a haven category colour


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
    privacy: DefenderPrivacy | None = None,
    tiles: Any = None,
) -> folium.Map:
    """Where to open the next havens: the chosen sites in opening order, the others, and reach before/after.

    ``havens`` is :attr:`havenmap.siting.SitingResult.havens` (existing ones are drawn as
    havens; ``status`` 'new' ones are the chosen sites), ``candidates`` its ``candidates``
    (``site_id``, ``name``, ``chosen``, ``order``, ``gain``, ``weight_within``).
    ``service_areas_after`` (existing and new havens) are the safety bands,
    ``service_areas_before`` (existing havens only) a grey outline; defenders' status after
    siting (``coverage``, in time within ``minutes``) goes through :meth:`MapBuilder.add_safety`
    at the privacy level (k-anonymous cells unless ``exact_defenders``). The summary lists the
    sites in the order to open them.
    """
    if privacy is None:
        privacy = DefenderPrivacy(exact=bool(exact_defenders))
    builder = MapBuilder(title=title, roads=roads, tiles=tiles, privacy=privacy)
    cand = mh.to_wgs84(candidates, "candidates")
    if cand is None:
        raise InputError("candidates: no candidate site to draw")
    chosen = cand.loc[mh.column(cand, "chosen").astype(bool).to_numpy()]
    chosen = chosen.sort_values("order", kind="stable") if "order" in chosen.columns else chosen
    builder.summary_heading("Where to open the next havens")
    for row, bounds in zip(chosen.itertuples(), chosen.geometry.bounds.to_numpy(), strict=True):
        gain = mh.fmt(mh.number(getattr(row, "gain", None)), ".4g")
        builder.add_summary_line(
            "site", f"{int(row.order)}.", f"open {mh.plain(row.name, 80)} (gain {gain})", bounds=bounds,
            swatch=_site_svg(int(row.order), 16),
        )  # fmt: skip
    existing = None
    if havens is not None:
        existing = havens.loc[mh.column(havens, "status").astype(str).to_numpy() != "new"]
    builder.add_safety(
        havens=existing if existing is not None and len(existing) else None,
        service_areas=service_areas_after,
        defenders=defenders,
        coverage=coverage,
        slow_minutes=minutes,
    )
    if service_areas_before is not None:
        before = mh.to_wgs84(service_areas_before, "service_areas_before")
        if before is not None:
            merged = gpd.GeoDataFrame(geometry=[before.union_all()], crs=before.crs)
            builder.add_areas(
                "reach_before", f"Within {minutes:g} min before siting", "Safety", merged, colour=REJECTED_COLOUR,
                opacity=0.04, legend_text=f"a haven within {minutes:g} min before the new havens",
            )  # fmt: skip
    _add_sites(builder, cand, chosen)
    return builder.build()


def _site_svg(order: int, size: int = 24) -> str:
    """A chosen site: a round badge with its opening number (a number we made, never user text)."""
    return (
        f'<svg width="{size}" height="{size}" viewBox="0 0 24 24" aria-hidden="true">'
        f'<circle cx="12" cy="12" r="10.5" fill="{CHOSEN_COLOUR}" stroke="#222" stroke-width="1.5"/>'
        '<circle cx="12" cy="12" r="8" fill="none" stroke="#fff" stroke-width="1.2"/>'
        f'<text x="12" y="16.3" text-anchor="middle" font-size="12" font-weight="bold" fill="#fff">{int(order)}</text>'
        "</svg>"
    )


def _add_sites(builder: MapBuilder, cand: gpd.GeoDataFrame, chosen: gpd.GeoDataFrame) -> None:
    dot = (
        '<svg width="12" height="12" viewBox="0 0 12 12" aria-hidden="true"><circle cx="6" cy="6" r="4.5" '
        f'fill="#ffffff" stroke="{REJECTED_COLOUR}" stroke-width="2"/></svg>'
    )
    rejected = cand.loc[~mh.column(cand, "chosen").astype(bool).to_numpy()]
    rows = []
    for frame, pick in ((rejected, False), (chosen, True)):
        if frame.empty:
            continue
        lat, lon = mh.point_rows(frame.geometry)
        for i, row in enumerate(frame.itertuples()):
            name = mh.plain(row.name, 120) or mh.plain(row.site_id, 60)
            within = mh.fmt(mh.number(getattr(row, "weight_within", None)), ".3g")
            lines = [
                f"open no. {int(row.order)}: {name}" if pick else f"candidate, not chosen: {name}",
                f"id {mh.plain(row.site_id, 60)}; defender weight within the band: {within}",
            ]
            if pick:
                lines.append(f"gain when opened: {mh.fmt(mh.number(row.gain), '.4g')}")
            rows.append([lat[i], lon[i], int(row.order) if pick else 0, lines, None, None])
    icons = [{"html": dot, "cls": "hm-icon hm-candidate", "size": 12}]
    icons += [{"html": _site_svg(k), "cls": "hm-icon hm-chosen", "size": 24} for k in range(1, len(chosen) + 1)]
    legend = [(_site_svg(1, 16), "new haven: the site to open, numbered in opening order")]
    if len(rejected):
        legend.append((dot, "candidate site not chosen"))
    builder.layer("sites", "Candidate sites (numbered: open in this order)", "Safety", legend=legend)
    builder.call("points", {"layer": "sites", "icons": icons, "rows": rows})
    builder.include_in_view(bounds=cand.total_bounds)


def _all_public(havens: Any) -> bool:
    """Whether every haven is marked ``public`` (an embassy, a UN compound); no column: none is."""
    if len(havens) == 0:
        return True
    if "public" not in getattr(havens, "columns", ()):
        return False
    return bool(havens["public"].fillna(False).astype(bool).all())


def save_map(m: folium.Map, path: str | os.PathLike[str], private: bool | None = None) -> Path:
    """Write the map as one self-contained HTML file, atomically.

    Parameters
    ----------
    m
        A map from :func:`commander_map` (or any folium map).
    path
        Destination ``.html`` file; its folder is created if needed.
    private
        Create the file readable by the owner only (mode 0600). Default: when the map shows
        exact defender locations or havens not marked ``public`` (safe houses).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    if private is None:
        private = bool(getattr(m, _PRIVATE_ATTR, False))
    root = m.get_root()
    return write_text(path, _stable_ids(root, root.render()), private=private)


# ================================================================== helpers


_HEX_ID = re.compile(r"[0-9a-f]{32}")


def _stable_ids(root: Element, html: str) -> str:
    """Replace branca's random element ids (``map_<32 hex>``) by their order of appearance.

    branca names every element from ``os.urandom``; numbering them instead makes the same
    map the same file (a run's outputs are byte-identical, see :mod:`havenmap.manifest`).
    Only the ids of the page's own elements are touched.
    """
    ids, stack = set(), [root]
    while stack:
        element = stack.pop()
        ids.add(element._id)
        stack.extend(element._children.values())
    order: dict[str, str] = {}
    return _HEX_ID.sub(
        lambda hit: order.setdefault(hit.group(), f"{len(order) + 1:032x}") if hit.group() in ids else hit.group(), html
    )


def _road_frame(roads: Any) -> gpd.GeoDataFrame | None:
    """Roads as a GeoDataFrame (from a RoadNetwork: one row per physical road piece)."""
    if roads is None:
        return None
    if hasattr(roads, "edges_gdf") and not isinstance(roads, gpd.GeoDataFrame):
        return roads.edges_gdf(undirected=True)
    return mh.checked_layer(roads, "roads")


def _new_map(title: str) -> folium.Map:
    m = folium.Map(location=None, tiles=None, control_scale=True, zoom_control=False, maxZoom=19, zoomSnap=0.5)
    # Everything the page needs is inlined by _inline (cleaned); no jQuery, Bootstrap,
    # Font Awesome or glyphicon CSS (which still points at a CDN for its fonts).
    m.default_js = []
    m.default_css = []
    m.get_root().title = mh.safe_text(title)
    m.add_child(_Call("setup", {"panes": [list(p) for p in PANES]}))
    return m


def _union(bounds: list[np.ndarray]) -> tuple[float, float, float, float] | None:
    bounds = [np.asarray(b, dtype=float) for b in bounds if np.all(np.isfinite(b))]
    if not bounds:
        return None
    arr = np.array(bounds)
    return float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()), float(arr[:, 3].max())
