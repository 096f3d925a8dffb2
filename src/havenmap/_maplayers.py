"""The domain layers of havenmap's maps, composed through :class:`havenmap.maps.MapBuilder`.

Threat (hot spots, heat, recent incidents, road risk), safety (defenders' status at the
builder's privacy level, alerts, havens, service-area bands, routes) and patrols (bases,
one layer per day), each with its legend rows (units on every scale) and its lines in the
summary panel. Only the builder's public methods are used, so other maps (siting, share
bundles) compose the same way.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from havenmap import _maphtml as mh
from havenmap.errors import InputError, shortened
from havenmap.privacy import defender_cells

if TYPE_CHECKING:
    from havenmap.maps import MapBuilder

MAX_RECENT_MARKERS = 2000  # recent incidents drawn as markers, most recent first
MAX_LINE_TIPS = 3000  # hotspot lines with their own tooltip; above, drawn per class without
HEAT_BIN_M = 50.0  # metres; side of the heat squares (doubled until at most HEAT_MAX_CELLS)
HEAT_MAX_CELLS = 20_000
#: At most this many defender cells: beyond, cells double in size so the badges stay readable.
MAX_DEFENDER_CELLS = 1500
SUMMARY_AREAS = 3  # summary lines per kind; further areas are gathered in one "more areas" line
PLACE_MAX_M = 400.0  # a street farther than this from an area does not name it


# ====================================================================== place names


class Places:
    """Names for areas: the nearest named road (``name`` of the road network), else a haven, else a bearing."""

    def __init__(self, roads: gpd.GeoDataFrame | None) -> None:
        self.crs = None
        self.tree = None
        self.names: list[str] = []
        self.centre = None
        self.havens: tuple[np.ndarray, list[str]] | None = None
        if roads is None or roads.empty:
            return
        metric = mh.to_metric(roads)
        self.crs = metric.crs
        self.centre = shapely.box(*metric.total_bounds).centroid
        if "name" in metric.columns:
            names = [mh.road_name(v) for v in metric["name"]]
            keep = np.array([bool(n) for n in names], dtype=bool)
            if keep.any():
                self.tree = shapely.STRtree(metric.geometry.to_numpy()[keep])
                self.names = [n for n, k in zip(names, keep, strict=True) if k]

    def add_havens(self, havens: gpd.GeoDataFrame) -> None:
        if self.crs is None:
            self.crs = mh.metric_crs(havens)
        pts = havens.geometry.to_crs(self.crs).to_numpy()
        self.havens = (pts, [mh.plain(n, 80) for n in mh.column(havens, "name")])

    def near(self, area_wgs84: Any) -> str:
        """ "near <street>", "near the haven <name>" or "<km> km <bearing> of the map centre".

        The street is the named road nearest to the area's representative point among
        those crossing the area, else within :data:`PLACE_MAX_M` of it.
        """
        if self.crs is None:
            return ""
        area = gpd.GeoSeries([area_wgs84], crs=mh.WGS84).to_crs(self.crs).iloc[0]
        point = area.representative_point() if area.geom_type != "Point" else area
        if self.tree is not None:
            crossing = self.tree.query(area, predicate="intersects") if area.geom_type != "Point" else []
            if len(crossing):
                dist = shapely.distance(self.tree.geometries[crossing], point)
                return f"near {self.names[int(crossing[int(np.argmin(dist))])]}"
            hit = self.tree.query_nearest(point, max_distance=PLACE_MAX_M)
            if len(hit):
                return f"near {self.names[int(hit[0])]}"
        if self.havens is not None and len(self.havens[0]):
            dist = shapely.distance(self.havens[0], point)
            i = int(np.argmin(dist))
            if dist[i] <= 1500 and self.havens[1][i]:
                return f"near the haven {self.havens[1][i]}"
        if self.centre is None:
            return ""
        dx, dy = point.x - self.centre.x, point.y - self.centre.y
        km = math.hypot(dx, dy) / 1000.0
        if km < 0.3:
            return "in the centre of the map"
        bearing = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")[
            int(((math.degrees(math.atan2(dx, dy)) + 22.5) % 360) // 45)
        ]
        return f"{km:.1f} km {bearing} of the map centre"


def _clusters(geoms: np.ndarray, gap_m: float) -> np.ndarray:
    """Labels of groups of geometries (metric) chained by gaps of at most ``gap_m`` metres."""
    n = len(geoms)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="dwithin", distance=gap_m)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


# ====================================================================== roads


def add_roads(builder: MapBuilder, roads: gpd.GeoDataFrame) -> None:
    tiers, names = mh.road_layers(roads)
    legend: list[tuple[str, str, bool]] = []
    for t in tiers:
        _, text, style = mh.ROAD_TIERS[t["tier"]]
        if t["minZoom"] == 0:
            text = text.split(" (from")[0]
        legend.append((mh.line_swatch(style["color"], max(1, style["weight"])), text, False))
    if names:
        legend.append(("", "hover a road for its name", True))
    builder.layer("roads", "Road network (offline)", "Base map", base=True, legend=legend)
    builder.call(
        "roads",
        {
            "layer": "roads",
            "pane": "hmRoads",
            "attribution": "Roads © OpenStreetMap contributors",
            "names": names,
            "tiers": [{k: t[k] for k in ("minZoom", "style", "enc", "counts", "names")} for t in tiers],
        },
    )


# ====================================================================== threat


def add_threat(
    builder: MapBuilder,
    incidents: gpd.GeoDataFrame | None,
    edge_risk: gpd.GeoDataFrame | None,
    hotspots: gpd.GeoDataFrame | None,
    *,
    recent_days: float,
    view: str | None,
    summary: bool,
) -> None:
    if view not in (None, "hotspots", "heat"):
        raise InputError(f"threat view {view!r}: use 'hotspots' or 'heat'")
    inc = mh.to_wgs84(incidents, "incidents")
    hot = mh.to_wgs84(hotspots, "hotspots")
    risk = mh.to_wgs84(edge_risk, "edge_risk")
    if hot is not None and "significance" not in hot.columns:
        raise InputError("hotspots: column 'significance' is missing ('hot 99%', 'hot 95%' or 'hot 90%')")
    if risk is not None and "risk" not in risk.columns:
        raise InputError("edge_risk: column 'risk' is missing (risk per edge, a number >= 0)")
    has_hot = hot is not None and _hot_mask(hot).any()
    view = view or ("hotspots" if has_hot else "heat")
    if hot is not None:
        _add_hotspots(builder, hot, show=view == "hotspots", summary=summary)
    if inc is not None:
        _add_heat(builder, inc, show=view == "heat")
        _add_recent(builder, inc, recent_days)
        builder.include_in_view(bounds=inc.total_bounds, fallback=True)
    if risk is not None:
        _add_risk(builder, risk)
    if summary:
        builder.summary_heading("Where the threat is")
        if inc is not None:
            _summarise_recent(builder, inc, recent_days)
        if not has_hot:
            builder.summary_note("No road is a significant hot spot (Getis-Ord Gi*, 90% confidence or more).")


def _summarise_recent(builder: MapBuilder, incidents: gpd.GeoDataFrame, days: float) -> None:
    recent = mh.recent_incidents(incidents, builder.stamp, days, MAX_RECENT_MARKERS)
    if recent is None or not recent["total"]:
        return
    rows = recent["rows"]
    killed = sum(r[4] for r in rows)
    lat, lon = [r[0] for r in rows], [r[1] for r in rows]
    text = f"incident{'s' if recent['total'] != 1 else ''} in the last {days:g} days" + (
        f" ({killed} killed)" if killed else ""
    )
    builder.add_summary_line(
        "recent",
        f"{recent['total']:,}",
        text,
        bounds=(min(lon), min(lat), max(lon), max(lat)),
        swatch=mh.dot_swatch(mh.FATAL_COLOUR if killed else mh.INCIDENT_COLOUR, "#5a1a00", 5),
        focus=False,
    )


def _hot_mask(hot: gpd.GeoDataFrame) -> np.ndarray:
    sig = hot["significance"].map(lambda v: mh.plain(v).lower())
    return sig.isin([c for c, _, _ in mh.HOTSPOT_CLASSES]).to_numpy()


def _add_heat(builder: MapBuilder, incidents: gpd.GeoDataFrame, show: bool) -> None:
    heat = mh.heat_frames(incidents, builder.stamp, HEAT_BIN_M, HEAT_MAX_CELLS)
    if not heat["total"]:
        return
    n_weeks = len(heat["weeks"])
    until = f" up to {builder.stamp.date().isoformat()}" if builder.stamp is not None else ""
    weighting = (
        "type × fatalities × precision"
        if all(c in incidents.columns for c in mh.SEVERITY_COLUMNS)
        else "fatalities + 1"
    )
    legend = [
        (mh.heat_swatch(), f"weighted incidents per {heat['bin_m']:g} m square (weight: {weighting})", False),
        ("", "colours are relative: the darkest red is the densest spot in view", True),
    ]
    if n_weeks:
        legend.append(("", f"slider (bottom left): {n_weeks} week{'s' if n_weeks != 1 else ''}", True))
    builder.layer("heat", "Incident heat (by week)", "Threat", show=show, legend=legend)
    data = {
        "layer": "heat",
        "title": "Incident heat — by week",
        "allLabel": f"all weeks: {heat['total']:,} incidents{until}",
        "options": {
            "pane": "hmHeat",
            "radius": 20,
            "blur": 16,
            "minOpacity": 0.25,
            "maxZoom": 17,
            "gradient": {str(k): v for k, v in mh.HEAT_GRADIENT.items()},
        },
        "binM": heat["bin_m"],
        **{k: heat[k] for k in ("lat0", "lon0", "dlat", "dlon", "all", "weeks", "n", "deaths", "frames")},
    }
    builder.call("heat", data, deps=("heat",))


def _add_recent(builder: MapBuilder, incidents: gpd.GeoDataFrame, days: float) -> None:
    recent = mh.recent_incidents(incidents, builder.stamp, days, MAX_RECENT_MARKERS)
    if recent is None:
        return
    shown = len(recent["rows"])
    note = f"{recent['start']} – {recent['end']}: {recent['total']:,} incidents"
    if shown < recent["total"]:
        note += f", the {shown:,} most recent shown"
    cluster = (
        '<svg width="28" height="20" aria-hidden="true"><circle cx="14" cy="10" r="9" '
        f'fill="{mh.CLUSTER_COLOUR}" stroke="#5a1a00" stroke-width="2"/><text x="14" y="14" '
        'text-anchor="middle" font-size="10" font-weight="bold" fill="#222">12</text></svg>'
    )
    legend = [
        (mh.dot_swatch(mh.INCIDENT_COLOUR, "#5a1a00", 5), "incident, no deaths", False),
        (mh.dot_swatch(mh.FATAL_COLOUR, "#2d0008", 5), "incident with deaths", False),
        (cluster, "number of incidents close together (click to zoom in)", False),
        ("", note, True),
    ]
    builder.layer("recent", f"Recent incidents ({days:g} days)", "Threat", show=False, legend=legend)
    builder.call("incidents", {"layer": "recent", "rows": recent["rows"], "types": recent["types"]}, deps=("cluster",))


def _add_hotspots(builder: MapBuilder, hotspots: gpd.GeoDataFrame, show: bool, summary: bool) -> None:
    sig = hotspots["significance"].map(lambda v: mh.plain(v).lower())
    with_tips = len(hotspots) <= MAX_LINE_TIPS
    groups, legend = [], []
    for value, colour, weight in mh.HOTSPOT_CLASSES:
        part = hotspots.loc[(sig == value).to_numpy()]
        if part.empty:
            continue
        label = f"{value.split()[-1]} confidence"
        g: dict[str, Any] = {
            "style": {"color": colour, "weight": weight, "opacity": 0.95, "lineCap": "round", "className": "hm-hotspot"}
        }
        if with_tips:
            # one line per edge (multi-part edges keep their first part so tips stay aligned)
            firsts = [mh.line_parts([geom])[:1] for geom in part.geometry]
            keep = [i for i, f in enumerate(firsts) if len(f)]
            g.update(mh.encode_lines(np.concatenate([firsts[i] for i in keep]) if keep else []))
            g["tips"] = [_hotspot_tip(value, part.iloc[i]) for i in keep]
        else:
            g.update(mh.encode_lines(part.geometry.to_numpy()))
            g["style"]["interactive"] = False
        groups.append(g)
        legend.append((mh.line_swatch(colour, weight), label, False))
    if not groups:
        return
    legend.append(("", "Getis-Ord Gi* hot spots; hover a road: its risk (weighted incidents per km)", True))
    builder.layer("hotspots", "Hot-spot roads", "Threat", show=show, legend=legend)
    data: dict[str, Any] = {"layer": "hotspots", "groups": groups}
    if not with_tips:
        data.update(canvas=True, pane="hmRisk")
    builder.call("lines", data)
    hot = hotspots.loc[_hot_mask(hotspots)]
    builder.include_in_view(bounds=hot.total_bounds, fallback=True)
    if summary:
        _summarise_hotspots(builder, hot)


def _summarise_hotspots(builder: MapBuilder, hot: gpd.GeoDataFrame) -> None:
    metric = mh.to_metric(hot)
    labels = _clusters(metric.geometry.to_numpy(), 150.0)
    strength = (
        hot["significance"]
        .map(lambda v: mh.plain(v).lower())
        .map({c: len(mh.HOTSPOT_CLASSES) - i for i, (c, _, _) in enumerate(mh.HOTSPOT_CLASSES)})
    )
    table = pd.DataFrame({"label": labels, "strength": strength.to_numpy()})
    stats = table.groupby("label").agg(n=("strength", "size"), best=("strength", "max"))
    stats = stats.sort_values(["best", "n"], ascending=False)
    shown = stats.index[:SUMMARY_AREAS]
    for label in shown:
        part = hot.loc[labels == label]
        best = mh.HOTSPOT_CLASSES[len(mh.HOTSPOT_CLASSES) - int(stats.loc[label, "best"])]
        n = int(stats.loc[label, "n"])
        builder.add_summary_line(
            "hotspot",
            str(n),
            f"hot-spot road{'s' if n != 1 else ''}, up to {best[0].split()[-1]} confidence",
            place=builder.places.near(shapely.union_all(part.geometry.to_numpy())),
            bounds=part.total_bounds,
            swatch=mh.line_swatch(best[1], best[2]),
            focus=False,
        )
    rest = stats.index[SUMMARY_AREAS:]
    if len(rest):
        part = hot.loc[np.isin(labels, rest)]
        builder.add_summary_line(
            "hotspot",
            str(len(part)),
            f"more hot-spot roads in {len(rest)} more areas",
            bounds=part.total_bounds,
            focus=False,
        )


def _hotspot_tip(value: str, row: pd.Series) -> list[str]:
    risk = mh.number(row.get("risk"))
    z = mh.number(row.get("gi_z"))
    p = mh.number(row.get("p_value"))
    name = mh.road_name(row.get("name")) if "name" in row.index else ""
    return [
        f"hot-spot road ({value.split()[-1]} confidence)" + (f": {name}" if name else ""),
        f"risk {mh.fmt(risk, '.3g')} weighted incidents per km",
        f"Gi* z = {mh.fmt(z, '.2f')}, p = {mh.fmt(p, '.2g')}",
    ]


def _add_risk(builder: MapBuilder, edge_risk: gpd.GeoDataFrame) -> None:
    risk = pd.to_numeric(edge_risk["risk"], errors="coerce").to_numpy(dtype=float)
    positive = np.isfinite(risk) & (risk > 0)
    if not positive.any():
        return
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
    groups, legend = [], []
    for k in range(n_cls):
        sel = cls == k
        if not sel.any():
            continue
        colour = colours[k]
        groups.append(
            {
                "style": {"color": colour, "weight": 2.5, "opacity": 0.9, "interactive": False},
                **mh.encode_lines(geoms[sel]),
            }
        )
        legend.append((mh.line_swatch(colour, 2.5), f"{edges[k]:.3g} – {edges[k + 1]:.3g}", False))
    legend.append(("", "road risk in weighted incidents per km (quintiles)", True))
    builder.layer("risk", "Road risk", "Threat", show=False, legend=legend)
    builder.call("lines", {"layer": "risk", "canvas": True, "pane": "hmRisk", "groups": groups})


# ====================================================================== safety: joins


def with_coverage(defenders: gpd.GeoDataFrame | None, coverage: pd.DataFrame | None) -> gpd.GeoDataFrame | None:
    """Join the per-defender coverage columns onto ``defenders`` by id, exactly.

    Every coverage row must name a defender and every defender must have a row: a table
    made from another defenders file is an :class:`InputError` naming the unmatched ids,
    never a map showing everyone "cannot reach a haven".
    """
    if defenders is None or coverage is None:
        return defenders
    if "defender_id" not in coverage.columns:
        raise InputError("coverage: column 'defender_id' is missing; it joins the table to defenders' id")
    ids = mh.id_column(defenders, "id", "defender_id")
    if ids is None:
        raise InputError("defenders: no 'id' or 'defender_id' column to join the coverage table on")
    table = coverage.assign(defender_id=coverage["defender_id"].astype(str)).drop_duplicates("defender_id")
    _check_join("coverage", table["defender_id"], ids, both=True)
    cols = [c for c in ("travel_time_s", "reachable", "status") if c in coverage.columns]
    table = table.set_index("defender_id")[cols]
    joined = defenders.drop(columns=[c for c in cols if c in defenders.columns])
    for c in cols:
        joined[c] = ids.map(table[c]).to_numpy()
    if "reachable" in cols:
        joined["reachable"] = joined["reachable"].map(mh.is_reachable)
    return joined


def _check_join(what: str, table_ids: pd.Series, defender_ids: pd.Series, both: bool) -> None:
    """Fail unless every id of the table is a defender's (and, with ``both``, every defender has a row)."""
    known = set(defender_ids)
    unmatched = pd.unique(table_ids[~table_ids.isin(known)])
    if len(unmatched):
        raise InputError(
            f"{what}: {len(unmatched):,} of {table_ids.nunique():,} defender ids match no defender "
            f"({shortened(unmatched)}); use the {what} made from this defenders file"
        )
    if both:
        missing = pd.unique(defender_ids[~defender_ids.isin(set(table_ids))])
        if len(missing):
            raise InputError(
                f"{what}: {len(missing):,} of {len(known):,} defenders have no row ({shortened(missing)}); "
                f"use the {what} made from this defenders file"
            )


def with_reachability(defenders: gpd.GeoDataFrame | None, routes: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame | None:
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


# ====================================================================== safety: layers


def add_safety(
    builder: MapBuilder,
    *,
    havens: gpd.GeoDataFrame | None,
    service_areas: gpd.GeoDataFrame | None,
    defenders: gpd.GeoDataFrame | None,
    coverage: pd.DataFrame | None,
    routes: gpd.GeoDataFrame | None,
    alerts: pd.DataFrame | None,
    slow_minutes: float,
    show_routes: bool,
) -> None:
    if alerts is not None and defenders is None:
        raise InputError("alerts: they are drawn on the defenders' cells; give the defenders too")
    if coverage is not None and defenders is None:
        raise InputError("coverage: it gives the defenders' status; give the defenders too")
    defenders = with_coverage(defenders, coverage)
    defenders = with_reachability(defenders, routes)
    hv = mh.to_wgs84(havens, "havens")
    areas = mh.to_wgs84(service_areas, "service_areas")
    dfd = mh.to_wgs84(defenders, "defenders")
    rts = mh.to_wgs84(routes, "routes")
    if hv is not None:
        builder.places.add_havens(hv)
    state = None
    if dfd is not None:
        state = _add_defenders(builder, dfd, float(slow_minutes))
    if alerts is not None:
        _add_alerts(builder, alerts, dfd, state)
    if state is not None:
        _summarise_defenders(builder, state)
    if hv is not None:
        _add_havens(builder, hv)
        builder.include_in_view(bounds=hv.total_bounds)
    if areas is not None:
        _add_service_areas(builder, areas)
    if rts is not None and builder.privacy.routes:
        _add_routes(builder, rts, hv, dfd, state, show=show_routes)


def _add_service_areas(builder: MapBuilder, areas: gpd.GeoDataFrame) -> None:
    if "minutes" not in areas.columns:
        raise InputError("service_areas: column 'minutes' is missing (the band's travel time in minutes)")
    metric = mh.to_metric(areas)
    minutes = pd.to_numeric(metric["minutes"], errors="coerce")
    bands = sorted(float(x) for x in minutes.dropna().unique())
    for i, band in enumerate(bands):
        geom = shapely.union_all(metric.geometry.to_numpy()[(minutes == band).to_numpy()])
        geom = mh.simplified(np.array([geom], dtype=object))[0]
        geom = mh.wgs84_geoms(np.array([geom], dtype=object), metric.crs)[0]
        if geom.is_empty:
            continue
        colour = mh.BAND_COLOURS[min(i, len(mh.BAND_COLOURS) - 1)]
        key = f"band_{i + 1}"
        legend = [(mh.box_swatch(colour, 0.35), f"a haven within {band:g} min by road (travel time)", False)]
        builder.layer(key, f"Within {band:g} min of a haven", "Safety", show=i == 0, legend=legend)
        item = {
            "style": {"color": colour, "weight": 1.2, "opacity": 0.7, "fillColor": colour, "fillOpacity": 0.13},
            **mh.encode_polygon(geom),
        }
        builder.call("areas", {"layer": key, "pane": "hmBands", "cls": "hm-service-area", "items": [item]})


def legible_cell_size(defenders: gpd.GeoDataFrame, cell_m: float) -> float:
    """``cell_m``, doubled until the defenders fill at most :data:`MAX_DEFENDER_CELLS` cells."""
    if len(defenders) <= MAX_DEFENDER_CELLS:
        return cell_m
    xy = shapely.get_coordinates(defenders.to_crs(defenders.estimate_utm_crs()).geometry.to_numpy())
    while len(np.unique(np.floor(xy / cell_m), axis=0)) > MAX_DEFENDER_CELLS:
        cell_m *= 2.0
    return cell_m


class _Defenders:
    """What the defender layer computed, for alerts, routes and the summary."""

    def __init__(self, frame: gpd.GeoDataFrame, status: np.ndarray | None, slow: float) -> None:
        self.frame = frame
        self.status = status
        self.slow = slow
        self.ids = mh.id_column(frame, "id", "defender_id")
        self.agg = None  # DefenderCells when aggregated
        self.alert_rank = np.zeros(len(frame), dtype=np.int64)  # highest active alert level per defender


_STATUS_WORDS = {
    "covered": "reach a haven within {slow:g} min",
    "slow": "need more than {slow:g} min to a haven",
    "reachable": "can reach a haven",
    "unreachable": "cannot reach any haven",
}


def _add_defenders(builder: MapBuilder, dfd: gpd.GeoDataFrame, slow: float) -> _Defenders:
    privacy = builder.privacy
    status = mh.defender_status(dfd, slow)
    state = _Defenders(dfd, status, slow)
    present = [s for s in mh.STATUS_ORDER if status is not None and (status == s).any()]
    legend = [
        (
            mh.box_swatch(mh.STATUS[s][0], 0.6) if not privacy.exact else mh.dot_swatch(mh.STATUS[s][0]),
            mh.STATUS[s][1].format(slow=slow),
            False,
        )
        for s in present
    ]
    if not present:
        legend = [(mh.box_swatch(mh.COUNT_COLOUR, 0.6), "defenders, status unknown", False)]
    if privacy.exact:
        _add_exact_defenders(builder, dfd, status, slow, legend)
        return state
    size = legible_cell_size(dfd, float(privacy.cell_size_m))
    agg = defender_cells(dfd, status, cell_size_m=size, k=privacy.k, categories=mh.STATUS_ORDER)
    state.agg = agg
    cells = agg.cells
    items = []
    for row in cells.itertuples(index=False):
        counts = {s: int(getattr(row, s)) for s in mh.STATUS_ORDER}
        # a cell of fewer than k shows no status: its colour would count the few inside
        worst = mh.worst_status(counts) if status is not None and not row.suppressed else ""
        colour = mh.STATUS[worst][0] if worst else mh.COUNT_COLOUR
        urgent = worst in ("unreachable", "slow")
        items.append(
            {
                "id": int(row.cell_id),
                "style": {
                    "color": colour if worst != "slow" else mh.REACH_RAMP[0],
                    "weight": 2.4 if urgent else 1.2,
                    "opacity": 0.95,
                    "dashArray": "5 4" if worst == "slow" else None,
                    "fillColor": colour,
                    "fillOpacity": 0.34 if worst == "unreachable" else 0.26,
                },
                "tip": _cell_tip(row, counts, agg.k, slow, status is not None),
                "badge": _cell_badge(row, counts, worst, agg.k),
                "prio": 30 if worst == "unreachable" else (20 if worst == "slow" else 10),
                **mh.encode_polygon(row.geometry),
            }
        )
    what = f"{size:g} m cells"
    legend.append(("", "numbers: defenders per status; colour: the worst status in the cell", True))
    if agg.k > 1:
        legend.append(("", f"cells merged until they hold {agg.k}; “<{agg.k}”: fewer, counts hidden", True))
    builder.layer("defenders", f"Defenders' status ({what})", "Safety", legend=legend)
    builder.call("defenderCells", {"layer": "defenders", "pane": "hmAreas", "cls": "hm-defender-cell", "items": items})
    builder.include_in_view(cells=cells["cell_id"].tolist())
    return state


def _cell_tip(row: Any, counts: dict[str, int], k: int, slow: float, known: bool) -> list[str]:
    if row.suppressed:
        return [f"fewer than {k} defenders in this area", "counts hidden, status too (k-anonymity)"]
    n = int(row.count)
    where = f"this {row.size_m:g} m cell" if row.level == 0 else f"this area (cells merged to hold at least {k})"
    tip = [f"{n} defender{'s' if n != 1 else ''} in {where}"]
    tip += [f"{counts[s]} {_STATUS_WORDS[s].format(slow=slow)}" for s in mh.STATUS_ORDER if counts[s]]
    return tip


def _cell_badge(row: Any, counts: dict[str, int], worst: str, k: int) -> list[list[str]]:
    if row.suppressed:
        return [[f"<{k}", "hm-st-few"]]
    chips = [[str(counts[s]), f"hm-st-{s}"] for s in mh.STATUS_ORDER if counts[s]]
    return chips or [[str(int(row.count)), "hm-st-n"]]


def _add_exact_defenders(
    builder: MapBuilder, dfd: gpd.GeoDataFrame, status: np.ndarray | None, slow: float, legend: list
) -> None:
    order = list(mh.STATUS_ORDER)
    base = {"radius": 6, "color": "#ffffff", "weight": 1.5, "fillOpacity": 0.95, "className": "hm-defender"}
    styles = [{**base, "fillColor": mh.STATUS[s][0]} for s in order] + [{**base, "fillColor": mh.COUNT_COLOUR}]
    lat, lon = mh.point_rows(dfd.geometry)
    names = dfd["name"] if "name" in dfd.columns else mh.column(dfd, "id")
    rows = []
    for i, (la, lo, name) in enumerate(zip(lat, lon, names, strict=True)):
        s = status[i] if status is not None else ""
        idx = order.index(s) if s in order else len(order)
        words = _STATUS_WORDS[s].format(slow=slow) if s else ""
        rows.append([la, lo, idx, [mh.plain(name, 120) or "(unnamed defender)", words]])
    builder.layer(
        "defenders", "Defenders (EXACT locations)", "Safety", legend=[*legend, ("", "exact defender locations", True)]
    )
    builder.call("dots", {"layer": "defenders", "styles": styles, "rows": rows})
    builder.include_in_view(bounds=dfd.total_bounds)


def _add_alerts(
    builder: MapBuilder, alerts: pd.DataFrame, dfd: gpd.GeoDataFrame | None, state: _Defenders | None
) -> None:
    if dfd is None or state is None:
        raise InputError("alerts: they are drawn on the defenders' cells; give the defenders too")
    if "defender_id" not in alerts.columns:
        raise InputError("alerts: column 'defender_id' is missing; alerts join defenders by defender_id")
    if state.ids is None:
        raise InputError("defenders: no 'id' or 'defender_id' column to join the alerts on")
    _check_join("alerts", alerts["defender_id"].astype(str), state.ids, both=False)
    active = mh.active_alerts(alerts)
    legend_note = ("", "no active alerts", True)
    if active.empty:
        builder.layer("alerts", "Alerts", "Safety", legend=[legend_note])
        return
    active = active.assign(defender_id=active["defender_id"].astype(str))
    position = pd.Series(np.arange(len(state.ids)), index=state.ids.to_numpy())
    position = position[~position.index.duplicated()]
    active = active.assign(_pos=position[active["defender_id"]].to_numpy())
    rank = active.groupby("_pos")["rank"].max()
    state.alert_rank[rank.index.to_numpy()] = rank.to_numpy()
    icons = [mh.alert_icon_svg(colour) for _, colour, _, _ in mh.ALERT_LEVELS]
    rank_to_icon = {r: i for i, (r, _, _, _) in enumerate(mh.ALERT_LEVELS)}
    ranks = set(active["rank"])
    legend = [(mh.alert_icon_svg(colour, 16), text, False) for r, colour, text, _ in mh.ALERT_LEVELS if r in ranks]
    if builder.privacy.exact:
        lat, lon = mh.point_rows(dfd.geometry)
        names = dfd["name"] if "name" in dfd.columns else state.ids
        rows = []
        for pos, part in active.groupby("_pos", sort=True):
            lines = [mh.plain(names.iloc[pos], 120) or "(unnamed defender)", *_alert_lines(part)]
            rows.append([lat[pos], lon[pos], rank_to_icon[int(part["rank"].max())], lines, lines, None])
        icon_specs = [{"html": svg, "cls": "hm-icon hm-alert", "size": 22} for svg in icons]
        builder.layer("alerts", "Alerts (EXACT defender locations)", "Safety", legend=legend)
        builder.call("points", {"layer": "alerts", "icons": icon_specs, "rows": rows})
        return
    cell_of = state.agg.cell_of
    active = active.assign(_cell=cell_of[active["_pos"].to_numpy()])
    suppressed = state.agg.cells["suppressed"].to_numpy()
    items = []
    for cell, part in active.groupby("_cell", sort=True):
        top = int(part["rank"].max())
        colour = next(c for r, c, _, _ in mh.ALERT_LEVELS if r == top)
        n = part["defender_id"].nunique()
        who = (
            f"fewer than {state.agg.k} defenders with active alerts in this area"
            if suppressed[cell]
            else f"{n} defender{'s' if n != 1 else ''} with active alerts in this area"
        )
        lines = [who, *_alert_lines(part)]
        items.append(
            {
                "cell": int(cell),
                "icon": rank_to_icon[top],
                "prio": 25 + top,
                "style": {"color": colour, "weight": 3, "opacity": 1, "dashArray": "7 5", "fill": False},
                "tip": lines[:2],
                "popup": lines,
            }
        )
    legend.append(("", "dashed outline: the area of a defender under alert (click: reasons)", True))
    builder.layer("alerts", "Alerts", "Safety", legend=legend)
    builder.call("cellAlerts", {"layer": "alerts", "icons": icons, "items": items})


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


# ---------------------------------------------------------------------- the summary


def _summarise_defenders(builder: MapBuilder, state: _Defenders) -> None:
    """Summary lines: cannot reach any haven, beyond ``slow`` minutes, then alerts by level."""
    slow = state.slow
    kinds: list[tuple[str, np.ndarray, str, str]] = []
    if state.status is not None:
        kinds.append(
            ("unreachable", state.status == "unreachable", "cannot reach any haven", mh.STATUS["unreachable"][0])
        )
        kinds.append(("slow", state.status == "slow", f"need more than {slow:g} min to a haven", mh.STATUS["slow"][0]))
    for r, colour, _, word in mh.ALERT_LEVELS:
        kinds.append((f"alert-{r}", state.alert_rank == r, f"with a {word} alert", colour))
    any_line = False
    for kind, mask, text, colour in kinds:
        if not mask.any():
            continue
        any_line = True
        swatch = mh.alert_icon_svg(colour, 16) if kind.startswith("alert") else mh.box_swatch(colour, 0.8)
        if state.agg is None:
            _summary_points(builder, state, kind, mask, text, swatch)
        else:
            _summary_cells(builder, state, kind, mask, text, swatch)
    n = len(state.frame)
    if not any_line:
        if state.status is None:
            builder.summary_note(f"{n} defenders; their status is unknown (give coverage or routes).")
        else:
            builder.summary_note(f"All {n} defenders reach a haven within {slow:g} min; no active alerts.")


def _summary_cells(builder: MapBuilder, state: _Defenders, kind: str, mask: np.ndarray, text: str, swatch: str) -> None:
    """One line per area (cells that touch), most defenders first; areas beyond the first few in one line."""
    agg = state.agg
    per_cell = np.bincount(agg.cell_of[mask], minlength=len(agg.cells))
    cells = agg.cells.loc[per_cell > 0]
    labels = _clusters(cells.geometry.to_crs(agg.crs).to_numpy(), 1.0)
    few = cells["suppressed"].to_numpy()
    table = pd.DataFrame({"label": labels, "n": np.where(few, 0, per_cell[per_cell > 0]), "few": few})
    stats = table.groupby("label").agg(n=("n", "sum"), few=("few", "sum")).sort_values(["n", "few"], ascending=False)
    ids = cells["cell_id"].to_numpy()
    geoms = cells.geometry.to_numpy()
    for label in stats.index[:SUMMARY_AREAS]:
        sel = labels == label
        count = _count_text(int(stats.loc[label, "n"]), int(stats.loc[label, "few"]), agg.k)
        place = builder.places.near(shapely.union_all(geoms[sel]))
        builder.add_summary_line(kind, count, _defenders_text(count, text), place=place, cells=ids[sel], swatch=swatch)
    rest = stats.index[SUMMARY_AREAS:]
    if len(rest):
        sel = np.isin(labels, rest)
        count = _count_text(int(stats.loc[rest, "n"].sum()), int(stats.loc[rest, "few"].sum()), agg.k)
        more = f", in {len(rest)} more area{'s' if len(rest) != 1 else ''}"
        builder.add_summary_line(kind, count, _defenders_text(count, text) + more, cells=ids[sel], swatch=swatch)


def _summary_points(
    builder: MapBuilder, state: _Defenders, kind: str, mask: np.ndarray, text: str, swatch: str
) -> None:
    pts = state.frame.loc[mask]
    labels = _clusters(pts.geometry.to_crs(mh.metric_crs(pts)).to_numpy(), 300.0)
    order = pd.Series(labels).value_counts().index
    for label in order[:SUMMARY_AREAS]:
        part = pts.loc[labels == label]
        count = str(len(part))
        place = builder.places.near(shapely.box(*part.total_bounds).centroid)
        builder.add_summary_line(
            kind, count, _defenders_text(count, text), place=place, bounds=part.total_bounds, swatch=swatch
        )
    if len(order) > SUMMARY_AREAS:
        part = pts.loc[np.isin(labels, order[SUMMARY_AREAS:])]
        count = str(len(part))
        builder.add_summary_line(
            kind,
            count,
            _defenders_text(count, text) + f", in {len(order) - SUMMARY_AREAS} more areas",
            bounds=part.total_bounds,
            swatch=swatch,
        )


def _count_text(exact: int, few_cells: int, k: int) -> str:
    if not few_cells:
        return str(exact)
    return f"<{k}" if not exact else f"{exact}+"


def _defenders_text(count: str, text: str) -> str:
    one = count == "1"
    if text.startswith("with"):
        return f"defender{'' if one else 's'} {text}"
    if one:  # "cannot reach" / "need more" read for one defender too, but the verb agrees
        text = text.replace("need more", "needs more")
    return f"defender{'' if one else 's'} {text}"


# ---------------------------------------------------------------------- routes and havens


def _add_routes(
    builder: MapBuilder,
    routes: gpd.GeoDataFrame,
    havens: gpd.GeoDataFrame | None,
    dfd: gpd.GeoDataFrame | None,
    state: _Defenders | None,
    show: bool,
) -> None:
    privacy = builder.privacy
    routes = _drawable_routes(routes, state, privacy.route_trim_m if not privacy.exact else 0.0)
    if routes is None:
        return
    names = _haven_names(havens)
    groups = []
    for nearest in (False, True):  # dashed alternatives under the nearest routes
        part = routes.loc[(routes["hm_rank"] == 1).to_numpy() == nearest]
        if part.empty:
            continue
        lines, tips = [], []
        for i in range(len(part)):
            pieces = mh.line_parts([part.geometry.iloc[i]])
            if not len(pieces):
                continue
            merged = shapely.line_merge(shapely.multilinestrings(pieces)) if len(pieces) > 1 else pieces[0]
            for line in mh.line_parts([merged]):
                lines.append(line)
                tips.append(_route_tip(part.iloc[i], names))
        style = {
            "color": mh.ROUTE_COLOUR,
            "weight": 3 if nearest else 2,
            "opacity": 0.9 if nearest else 0.75,
            "className": "hm-route",
        }
        if not nearest:
            style["dashArray"] = "6 5"
        groups.append({"style": style, "tips": tips, **mh.encode_lines(lines)})
    legend = [
        (mh.line_swatch(mh.ROUTE_COLOUR, 3), "route to the nearest haven", False),
        (mh.line_swatch(mh.ROUTE_COLOUR, 2, "6 5"), "route to the 2nd, 3rd … nearest haven", False),
    ]
    if not privacy.exact:
        legend.append(("", f"routes start {privacy.route_trim_m:g} m beyond the defender's cell", True))
    builder.layer("routes", "Routes to havens", "Safety", show=show, legend=legend)
    builder.call("lines", {"layer": "routes", "groups": groups})


def _without_attached_points(geoms: np.ndarray, tolerance_m: float = 0.5) -> np.ndarray:
    """Route lines (metric) without the vertices that lie on the straight line between their neighbours.

    A route's geometry also has a vertex wherever another point (a defender, a haven) was
    attached to an edge it runs along; drawn, it would show other defenders' positions on
    the road. Such a vertex splits a straight stretch of the edge, so dropping every
    interior vertex within ``tolerance_m`` of the segment joining its neighbours removes it
    and leaves the drawn shape as it was (bends of the road are kept).
    """
    parts, owner = shapely.get_parts(shapely.line_merge(geoms), return_index=True)
    lines = shapely.get_type_id(parts) == 1
    parts, owner = parts[lines], owner[lines]
    xy, line = shapely.get_coordinates(parts, return_index=True)
    if not len(xy):
        return geoms
    first = np.r_[True, line[1:] != line[:-1]]
    last = np.r_[line[1:] != line[:-1], True]
    prev, nxt = np.roll(xy, 1, axis=0), np.roll(xy, -1, axis=0)
    chord = nxt - prev
    length = np.hypot(chord[:, 0], chord[:, 1])
    cross = np.abs(chord[:, 0] * (xy[:, 1] - prev[:, 1]) - chord[:, 1] * (xy[:, 0] - prev[:, 0]))
    along = ((xy - prev) * chord).sum(axis=1)
    on_chord = (length > 0) & (cross <= tolerance_m * length) & (along >= 0) & (along <= length * length)
    keep = first | last | ~on_chord
    kept = shapely.linestrings(xy[keep], indices=line[keep])
    out = np.array(geoms, dtype=object)
    out[np.unique(owner)] = shapely.multilinestrings(kept, indices=owner)
    return out


def _drawable_routes(routes: gpd.GeoDataFrame, state: _Defenders | None, trim_m: float) -> gpd.GeoDataFrame | None:
    """Reachable routes with ``hm_rank``, cut so that nothing drawn points at a defender.

    Unless exact (``trim_m`` 0 and no cells): the vertices of points attached to the
    route's edges are dropped (see :func:`_without_attached_points`), then everything within ``trim_m`` metres of
    the defender's cell is cut off (the cell grown by ``trim_m``, square corners), so a
    route starts on a line parallel to the grid, never at a place that depends on where in
    the cell the defender is. A circle around the start would not do: three routes cut on
    one circle give its centre away. Routes of defenders not on the map lose a circle of
    ``trim_m`` around their start.
    """
    mask = mh.unreachable_mask(routes) if "reachable" in routes.columns else None
    if mask is not None:
        routes = routes.loc[~mask]
    if routes.empty:
        return None
    agg = state.agg if state is not None else None
    if trim_m > 0 or agg is not None:
        crs = agg.crs if agg is not None else mh.metric_crs(routes)
        metric = _without_attached_points(routes.geometry.to_crs(crs).to_numpy())
        known = np.zeros(len(routes), dtype=bool)
        if agg is not None and state.ids is not None and "defender_id" in routes.columns:
            position = pd.Series(np.arange(len(state.ids)), index=state.ids.to_numpy())
            position = position[~position.index.duplicated()]
            pos = routes["defender_id"].astype(str).map(position).to_numpy(dtype=float)
            known = np.isfinite(pos)
            cells = agg.cells.geometry.to_crs(crs).to_numpy()
            region = cells[agg.cell_of[pos[known].astype(np.int64)]]
            if trim_m > 0:
                region = shapely.buffer(region, trim_m, join_style="mitre")
            metric[known] = shapely.difference(metric[known], region)
        if trim_m > 0:
            for i in np.flatnonzero(~known):
                metric[i] = mh.trim_start(metric[i], trim_m)
        geoms = gpd.GeoSeries(metric, crs=crs, index=routes.index).to_crs(mh.WGS84)
        routes = routes.set_geometry(geoms)
        drawn = routes.geometry.to_numpy()
        routes = routes.loc[shapely.is_geometry(drawn) & ~shapely.is_empty(drawn)]
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


def _add_havens(builder: MapBuilder, havens: gpd.GeoDataFrame) -> None:
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
    legend = [
        (mh.haven_icon_svg(i, 16), text, False) for i, (_, _, _, text) in enumerate(mh.HAVEN_KINDS) if i in set(kinds)
    ]
    builder.layer("havens", "Safe havens", "Safety", legend=legend)
    builder.call("points", {"layer": "havens", "icons": icons, "rows": rows})


# ====================================================================== patrols


def add_patrols(
    builder: MapBuilder,
    routes: gpd.GeoDataFrame | None,
    stops: gpd.GeoDataFrame | None,
    bases: gpd.GeoDataFrame | None,
    *,
    show: bool,
) -> None:
    routes = mh.to_wgs84(routes, "patrol_routes")
    stops = mh.to_wgs84(stops, "patrol_stops")
    bases = mh.to_wgs84(bases, "bases")
    if bases is not None:
        _add_bases(builder, bases, show)
    if routes is not None or stops is not None:
        _add_patrol_days(builder, routes, stops, show)
    if show:
        builder.summary_heading("Patrol rounds, first day")
        extents = [f.total_bounds for f in (routes, stops, bases) if f is not None]
        for b in extents:
            builder.include_in_view(bounds=b)


def _add_bases(builder: MapBuilder, bases: gpd.GeoDataFrame, show: bool) -> None:
    lat, lon = mh.point_rows(bases.geometry)
    ids = mh.id_column(bases, "id", "base_id")
    ids = ids if ids is not None else pd.Series([""] * len(bases))
    rows = [
        [la, lo, 0, [mh.plain(name, 120) or mh.plain(i) or "patrol base", f"base {mh.plain(i, 60)}"], None, None]
        for la, lo, name, i in zip(lat, lon, mh.column(bases, "name"), ids, strict=True)
    ]
    icons = [{"html": mh.base_icon_svg(), "cls": "hm-icon hm-base", "size": 22}]
    builder.layer("bases", "Patrol bases", "Patrols", show=show, legend=[(mh.base_icon_svg(16), "patrol base", False)])
    builder.call("points", {"layer": "bases", "icons": icons, "rows": rows})


def _stop_swatch(colour: str) -> str:
    return (
        f'<svg width="28" height="16" aria-hidden="true"><rect x="8" y="2" width="12" height="12" '
        f'transform="rotate(45 14 8)" fill="{colour}" stroke="#fff" stroke-width="1.2"/>'
        '<text x="14" y="11.5" text-anchor="middle" font-size="9" font-weight="bold" fill="#fff">3</text></svg>'
    )


def _add_patrol_days(
    builder: MapBuilder, routes: gpd.GeoDataFrame | None, stops: gpd.GeoDataFrame | None, show: bool
) -> None:
    frames = [f for f in (routes, stops) if f is not None]
    for f, name in ((routes, "patrol_routes"), (stops, "patrol_stops")):
        if f is not None and "unit" not in f.columns:
            raise InputError(f"{name}: column 'unit' is missing (the patrol unit of each row)")
    units = sorted({mh.plain(u, 80) for f in frames for u in f["unit"]}, key=_natural)
    colour = {u: mh.UNIT_COLOURS[i % len(mh.UNIT_COLOURS)] for i, u in enumerate(units)}
    days = sorted({_day(d) for f in frames for d in mh.column(f, "day")}, key=_natural)
    keys = []
    for k, day in enumerate(days):
        key = f"patrol_day_{k + 1}"
        keys.append(key)
        legend = [
            (mh.line_swatch(colour[u], 3.5, arrow=True), f"unit {u}: route (arrows show the direction)", False)
            for u in units
        ]
        legend.append((_stop_swatch("#555"), "stop, numbered in the order visited (unit colour)", False))
        if len(days) > 1:
            legend.append(("", f"{len(days)} days: switching one on switches the others off", True))
        label = f"Patrol day {day}" if day else "Patrols"
        builder.layer(key, label, "Patrols", show=show and k == 0, legend=legend)
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
                    if show and k == 0:
                        _summarise_round(builder, mine, unit, day, colour[unit], stops)
            if groups:
                builder.call("lines", {"layer": key, "groups": groups}, deps=("textpath",))
        if stops is not None:
            part = stops.loc[(mh.column(stops, "day").map(_day) == day).to_numpy()]
            if not part.empty:
                icons = [{"html": None, "cls": "hm-icon hm-stop-icon", "size": 20, "color": colour[u]} for u in units]
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
                builder.call("points", {"layer": key, "icons": icons, "rows": rows})
    builder.radio(keys)


def _summarise_round(
    builder: MapBuilder, mine: gpd.GeoDataFrame, unit: str, day: str, colour: str, stops: gpd.GeoDataFrame | None
) -> None:
    minutes = pd.to_numeric(mh.column(mine, "duration_min"), errors="coerce").sum()
    n_stops = 0
    if stops is not None:
        sel = (mh.column(stops, "day").map(_day) == day) & (stops["unit"].map(lambda u: mh.plain(u, 80)) == unit)
        n_stops = int(sel.sum())
    text = f"stops for unit {unit}" + (f" on day {day}" if day else "")
    if math.isfinite(minutes) and minutes > 0:
        text += f", {minutes:.0f} min"
    builder.add_summary_line(
        "patrol", str(n_stops), text, bounds=mine.total_bounds, swatch=mh.line_swatch(colour, 3.5, arrow=True)
    )


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
