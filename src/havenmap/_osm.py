"""Read OSM road networks (XML, bz2 XML, PBF) straight into compact arrays with pyosmium.

One reader for every OSM file format keeps XML and PBF loading identical (same filter,
same one-way rules, same speeds). The Python work is one pass over the road *ways*; all
graph building afterwards is vectorised numpy, so a country extract with a million road
nodes never becomes a million Python objects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .errors import NetworkError

#: osmnx's ``drive`` network filter (osmnx/_overpass.py), as substring patterns that must *not* match.
_DRIVE_EXCLUDE = {
    "highway": re.compile(
        "abandoned|bridleway|bus_guideway|construction|corridor|cycleway|elevator|escalator|footway|"
        "^no$|path|pedestrian|planned|platform|proposed|raceway|razed|service|steps|track"
    ),
    "motor_vehicle": re.compile("^no$"),
    "motorcar": re.compile("^no$"),
    "service": re.compile("alley|driveway|emergency_access|parking|parking_aisle|private"),
}
#: osmnx's ``walk`` network filter.
_WALK_EXCLUDE = {
    "highway": re.compile(
        "abandoned|bus_guideway|construction|cycleway|motor|^no$|planned|platform|proposed|raceway|razed"
    ),
    "foot": re.compile("^no$"),
    "service": re.compile("private"),
}
_FILTERS = {"drive": _DRIVE_EXCLUDE, "walk": _WALK_EXCLUDE, "all": {}}
#: Network types an OSM file can be read as.
NETWORK_TYPES = tuple(_FILTERS)
_PRIVATE = re.compile("private")

#: Fallback driving speeds (km/h) by OSM ``highway`` value, used where ``maxspeed`` is
#: missing or unparseable. Typical urban/regional limits; conservative for conflict settings.
DRIVE_SPEED_KPH: dict[str, float] = {
    "motorway": 100.0,
    "motorway_link": 60.0,
    "trunk": 80.0,
    "trunk_link": 50.0,
    "primary": 60.0,
    "primary_link": 45.0,
    "secondary": 50.0,
    "secondary_link": 40.0,
    "tertiary": 40.0,
    "tertiary_link": 35.0,
    "unclassified": 30.0,
    "residential": 30.0,
    "living_street": 10.0,
    "road": 30.0,
    "service": 20.0,
    "track": 15.0,
    "busway": 30.0,
}
DEFAULT_DRIVE_SPEED_KPH = 30.0
#: Walking speed (km/h); steps are walked at half speed.
WALK_SPEED_KPH = 4.8

_MPH = 1.609344
_IMPLICIT_LIMITS = {
    "urban": 50.0,
    "rural": 80.0,
    "motorway": 110.0,
    "trunk": 90.0,
    "living_street": 20.0,
    "walk": 5.0,
    "school": 30.0,
    "zone30": 30.0,
    "zone20": 20.0,
}
#: The way tags kept for building the network (the filter reads its own keys).
_TAG_KEYS = ("highway", "oneway", "junction", "maxspeed", "name")


@dataclass
class OsmWays:
    """Road ways read from an OSM file, as flat arrays.

    ``refs``/``lon``/``lat`` hold every way's node sequence back to back; way ``i`` owns
    positions ``offsets[i]:offsets[i+1]``. Tag columns hold one entry per way.
    """

    refs: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    offsets: np.ndarray
    way_id: np.ndarray
    tags: dict[str, list[str | None]]


def keep_way(tags: Mapping[str, str], network_type: str) -> bool:
    """Whether a way with these tags belongs to the ``network_type`` network (osmnx semantics).

    ``tags`` is anything with ``get(key)``: a dict, or pyosmium's tag list as read (looking up
    the few keys the filter needs is cheaper than copying every tag of every way).
    """
    get = tags.get
    if get("highway") is None or get("area") == "yes":
        return False
    access = get("access")
    if access is not None and _PRIVATE.search(access):
        return False
    for key, pattern in _FILTERS[network_type].items():
        value = get(key)
        if value is not None and pattern.search(value):
            return False
    return True


def read_ways(path: str, network_type: str) -> OsmWays:
    """Read the road ways of ``network_type`` ('drive', 'walk' or 'all') from an OSM file."""
    import osmium

    if network_type not in _FILTERS:
        raise NetworkError(f"unknown network type {network_type!r}: use 'drive', 'walk' or 'all'")
    refs: list[int] = []
    lon: list[int] = []  # fixed-point, 1e-7 degrees, as stored in OSM files
    lat: list[int] = []
    append_ref, append_x, append_y = refs.append, lon.append, lat.append
    offsets = [0]
    roads_seen = 0  # ways with a highway tag, before the network-type filter
    way_ids: list[int] = []
    tags: dict[str, list[str | None]] = {k: [] for k in _TAG_KEYS}
    try:
        processor = (
            osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
            .with_locations()
            .with_filter(osmium.filter.KeyFilter("highway"))
            .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))  # nodes only feed the locations
        )
        for obj in processor:
            way_tags = obj.tags
            roads_seen += 1
            if not keep_way(way_tags, network_type):
                continue
            nodes = obj.nodes
            if len(nodes) < 2:
                continue
            for node in nodes:  # the per-node loop: locations are checked afterwards, all at once
                loc = node.location
                append_ref(node.ref)
                append_x(loc.x)
                append_y(loc.y)
            offsets.append(len(refs))
            way_ids.append(obj.id)
            get = way_tags.get
            for key, values in tags.items():
                values.append(get(key))
    except RuntimeError as exc:
        raise NetworkError(f"{path}: cannot read as OSM data ({exc}); is it a valid .osm/.osm.bz2/.osm.pbf?") from exc
    ways = OsmWays(
        refs=np.asarray(refs, dtype=np.int64),
        lon=np.asarray(lon, dtype=np.int64),
        lat=np.asarray(lat, dtype=np.int64),
        offsets=np.asarray(offsets, dtype=np.int64),
        way_id=np.asarray(way_ids, dtype=np.int64),
        tags=tags,
    )
    ways, incomplete = _without_missing_nodes(ways)
    if not len(ways.way_id):
        raise NetworkError(f"{path}: {_no_roads_hint(network_type, roads_seen, incomplete)}")
    ways.lon = ways.lon * 1e-7
    ways.lat = ways.lat * 1e-7
    return ways


def _without_missing_nodes(ways: OsmWays) -> tuple[OsmWays, int]:
    """The ways whose every node has a location (fixed-point ``lon``/``lat``), and how many were left out.

    A node missing from the file (an extract clipped without it) has pyosmium's undefined
    location, which lies outside the valid range, as does a corrupt coordinate.
    """
    valid = (np.abs(ways.lon) <= 1_800_000_000) & (np.abs(ways.lat) <= 900_000_000)
    if valid.all():
        return ways, 0
    sizes = np.diff(ways.offsets)
    way_of = np.repeat(np.arange(len(sizes)), sizes)
    whole = np.ones(len(sizes), dtype=bool)
    whole[way_of[~valid]] = False
    keep_pos = whole[way_of]
    kept = np.flatnonzero(whole)
    return (
        OsmWays(
            refs=ways.refs[keep_pos],
            lon=ways.lon[keep_pos],
            lat=ways.lat[keep_pos],
            offsets=np.concatenate([[0], np.cumsum(sizes[kept])]),
            way_id=ways.way_id[kept],
            tags={key: [values[i] for i in kept.tolist()] for key, values in ways.tags.items()},
        ),
        int(len(sizes) - len(kept)),
    )


def _no_roads_hint(network_type: str, roads_seen: int, incomplete: int) -> str:
    """Why a file gave no roads of ``network_type``, and what to try instead."""
    if roads_seen == 0:
        return "holds no roads (no ways tagged highway=*); check the file covers a road network"
    if incomplete:
        return (
            f"every '{network_type}' road ({incomplete:,}) refers to nodes missing from the file; "
            "is the extract truncated or clipped without its nodes? export it again"
        )
    other = {"drive": "walk", "walk": "drive"}.get(network_type)
    tail = f"; try --network-type {other}" if other else "; check the file covers a road network"
    return f"none of its {roads_seen:,} roads is a '{network_type}' road{tail}"


def parse_maxspeed(value: str | None) -> float:
    """Parse an OSM ``maxspeed`` value to km/h; NaN where it gives no number.

    Handles plain numbers, ``mph``, several values (``"50;30"`` → mean, as osmnx does) and
    implicit limits such as ``"FI:urban"`` or ``"RU:rural"``.
    """
    if not value:
        return np.nan
    speeds = []
    for part in re.split(r"[;|,]", value):
        part = part.strip().lower()
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(mph|km/h|kmh|kph)?", part)
        if match:
            speed = float(match.group(1))
            speeds.append(speed * _MPH if match.group(2) == "mph" else speed)
            continue
        implicit = part.split(":")[-1]
        if implicit in _IMPLICIT_LIMITS:
            speeds.append(_IMPLICIT_LIMITS[implicit])
    return float(np.mean(speeds)) if speeds else np.nan


def way_speeds(tags: dict[str, list[str | None]], network_type: str, walk_speed_kph: float) -> np.ndarray:
    """Travel speed (km/h) for each way: ``maxspeed`` where parseable, else by highway type."""
    highways = tags["highway"]
    if network_type == "walk":
        return np.array([walk_speed_kph * (0.5 if h == "steps" else 1.0) for h in highways])
    parsed = {value: parse_maxspeed(value) for value in set(tags["maxspeed"])}  # a few distinct values
    speeds = np.array([parsed[value] for value in tags["maxspeed"]], dtype=np.float64)
    fallback = np.array([DRIVE_SPEED_KPH.get(h or "", DEFAULT_DRIVE_SPEED_KPH) for h in highways])
    bad = ~np.isfinite(speeds) | (speeds <= 0)
    speeds[bad] = fallback[bad]
    return speeds


def way_directions(tags: dict[str, list[str | None]], network_type: str) -> tuple[np.ndarray, np.ndarray]:
    """Per way: (forward allowed, backward allowed). Walk networks ignore one-way tags."""
    n = len(tags["highway"])
    forward = np.ones(n, dtype=bool)
    backward = np.ones(n, dtype=bool)
    if network_type == "walk":
        return forward, backward
    for i, (oneway, junction) in enumerate(zip(tags["oneway"], tags["junction"], strict=True)):
        oneway = (oneway or "").lower()
        if oneway in ("yes", "true", "1"):
            backward[i] = False
        elif oneway in ("-1", "reverse"):
            forward[i] = False
        elif oneway in ("no", "false", "0"):
            continue
        elif junction in ("roundabout", "circular"):
            backward[i] = False
    return forward, backward


def haversine_m(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """Great-circle distance in metres (mean Earth radius 6,371,009 m, as osmnx uses)."""
    lon1, lat1, lon2, lat2 = map(np.radians, (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_009.0 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


@dataclass
class OsmFeatures:
    """Tagged OSM features (nodes, ways, areas) as flat columns, one entry per feature.

    ``lon``/``lat`` is the node itself, a representative point inside an area (closed way or
    multipolygon), or the middle of an open way; ``key``/``value`` the tag that matched.
    """

    osm_type: list[str]
    osm_id: list[int]
    key: list[str]
    value: list[str]
    name: list[str | None]
    lon: np.ndarray
    lat: np.ndarray


def read_features(path: str, tags: dict[str, tuple[str, ...]]) -> OsmFeatures:
    """Read the features carrying any of ``tags`` (key -> accepted values) from an OSM file.

    Areas are assembled by pyosmium (closed ways and multipolygon relations); a way that also
    became an area is reported once, as the area of its way.
    """
    import osmium
    import shapely

    pairs = [(key, value) for key, values in tags.items() for value in values]
    found: dict[tuple[str, int], tuple[str, str, str | None, float, float]] = {}

    def matched(obj) -> tuple[str, str] | None:
        for key, value in pairs:
            if obj.tags.get(key) == value:
                return key, value
        return None

    try:
        processor = osmium.FileProcessor(str(path)).with_areas().with_filter(osmium.filter.TagFilter(*pairs))
        for obj in processor:
            hit = matched(obj)
            if hit is None:
                continue
            name = obj.tags.get("name")
            if obj.is_node():
                if obj.location.valid():
                    found[("node", obj.id)] = (*hit, name, obj.location.lon, obj.location.lat)
            elif obj.is_area():
                rings = [[(n.lon, n.lat) for n in ring] for ring in obj.outer_rings()]
                polygons = [shapely.Polygon(r) for r in rings if len(r) >= 4]
                if not polygons:
                    continue
                point = shapely.MultiPolygon(polygons).buffer(0).representative_point()
                kind = "way" if obj.from_way() else "relation"
                found[(kind, obj.orig_id())] = (*hit, name, point.x, point.y)
            elif obj.is_way():
                coords = [(n.lon, n.lat) for n in obj.nodes if n.location.valid()]
                if len(coords) >= 2:
                    middle = shapely.LineString(coords).interpolate(0.5, normalized=True)
                    found.setdefault(("way", obj.id), (*hit, name, middle.x, middle.y))
    except RuntimeError as exc:
        raise NetworkError(f"{path}: cannot read as OSM data ({exc}); is it a valid .osm/.osm.bz2/.osm.pbf?") from exc
    rows = sorted(found.items())
    return OsmFeatures(
        osm_type=[kind for (kind, _), _ in rows],
        osm_id=[int(i) for (_, i), _ in rows],
        key=[v[0] for _, v in rows],
        value=[v[1] for _, v in rows],
        name=[v[2] for _, v in rows],
        lon=np.array([v[3] for _, v in rows], dtype=np.float64),
        lat=np.array([v[4] for _, v in rows], dtype=np.float64),
    )
