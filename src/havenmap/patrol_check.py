"""Patrol follow-up: did the planned patrols happen? A plan compared with the GPS tracks units recorded.

Inputs
------
The plan is a folder written by ``havenmap patrol`` (or a run's ``patrol/``):
``patrol_schedule.csv`` (stops and planned times), ``gpx/<unit>_day-<d>.gpx`` (each stop's
position as a waypoint named by its target id, the base first, and the planned route as
the track), optionally ``patrol_routes.geojson`` (planned km) and ``target_frequency.csv``
(target kinds). The tracks are GPX files from any GPS app (OsmAnd, SMART, Garmin...), read
with :func:`havenmap._gpx.read_gpx`. A track file names its unit and day:

1. by its file name, ``<unit>_day-<d>.gpx`` as the plan's own files (anything after the day
   number is ignored, so ``unit-1_day-2_part2.gpx`` is a second file for the same day), else
2. by the track's (or the file's metadata) ``<name>``: ``<unit> day <d>`` as the plan's GPX.

A unit matches the plan's unit of that name, or whose file-safe name it is. Several files
for one unit and day are joined in time order (the gap between them is not driven).

Rules
-----
* The shift starts when the track first leaves the base (farther than ``radius_m`` from it),
  or at the track's first point when it starts away from the base.
* A planned stop is **visited** when the track passes within ``radius_m`` of it (measured to
  the track's lines between fixes, so a fast pass between two fixes counts) at a time
  between ``window_min`` minutes before its planned arrival and ``window_min`` minutes after
  its planned departure (minutes from the shift start). A track without times is checked
  by distance only (``time_checked`` false).
* **Detour**: km driven (along the track, within its segments) minus the plan's km.
* **Risk coverage** (with hotspots, e.g. ``threat/hotspots.geojson``): a hotspot road is
  covered when at least half of it lies within ``corridor_m`` of the line — the planned
  route for *planned*, the track for *achieved* — and its risk (weighted incidents per km)
  times its km is the risk covered.

Written by hand on numpy and shapely (no library compares planned stops with GPS tracks);
the work per unit and day is one (stops × track pieces) distance array.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from . import _gpx, _io
from .errors import InputError, listing
from .network import utm_crs
from .params import PatrolCheckParams
from .patrol import COVER_FRACTION, gpx_name

__all__ = [
    "OUTPUT_FILES",
    "STOP_COLUMNS",
    "PatrolCheck",
    "PatrolPlanFiles",
    "Track",
    "check_patrols",
    "read_plan",
    "read_tracks",
    "track_files",
    "write_patrol_check",
]

#: Files :func:`write_patrol_check` writes into its folder.
OUTPUT_FILES = ("patrol_check.csv", "patrol_check.json", "patrol_check_map.html")
#: Columns of :attr:`PatrolCheck.stops` (``patrol_check.csv``).
STOP_COLUMNS = (
    "unit",
    "day",
    "stop",
    "target_id",
    "planned_arrival_min",
    "planned_departure_min",
    "visited",
    "visit_min",
    "closest_m",
    "reason",
)
_FILE_NAME = re.compile(r"^(?P<unit>.+?)_day-(?P<day>\d+)(?:[-_.].*)?$")
_TRACK_NAME = re.compile(r"^(?P<unit>.+?)[ _]day[ _-]?(?P<day>\d+)$", re.I)


# ---------------------------------------------------------------------- the plan
@dataclass
class PatrolPlanFiles:
    """A patrol plan read back from its folder.

    Attributes
    ----------
    stops : pandas.DataFrame
        ``unit``, ``day``, ``stop``, ``target_id``, ``kind``, ``arrival_min``, ``departure_min``,
        ``lon``, ``lat`` (the stop's road position, degrees).
    routes : dict
        ``(unit, day)`` → ``{"lon", "lat"`` (planned route), ``"km"``, ``"base_id"``, ``"base"`` (lon, lat)``}``.
    files : list of pathlib.Path
        The plan files read (for the manifest).
    private : bool
        Whether stops are at defenders (outputs owner-only).
    """

    folder: Path
    stops: pd.DataFrame
    routes: dict[tuple[str, int], dict[str, Any]]
    files: list[Path]
    private: bool


def read_plan(folder: str | os.PathLike[str], option: str = "--plan") -> PatrolPlanFiles:
    """Read a patrol plan folder (see the module docstring); one-line errors name the file."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{option} {root}: {'not a folder' if root.exists() else 'no such folder'}; {_PLAN_HINT}")
    schedule_path = root / "patrol_schedule.csv"
    if not schedule_path.is_file():
        raise InputError(f"{option} {root}: no patrol_schedule.csv; {_PLAN_HINT}")
    schedule = _io.read_table(schedule_path, option)
    missing = [c for c in ("unit", "day", "stop", "target_id", "arrival_min", "departure_min") if c not in schedule]
    if missing:
        raise InputError(f"{option} {schedule_path}: no column {missing[0]!r}; {_PLAN_HINT}")
    schedule["unit"] = schedule["unit"].astype(str)
    schedule["day"] = pd.to_numeric(schedule["day"], errors="coerce").astype("Int64")
    visits = schedule.loc[schedule["target_id"].fillna("").astype(str) != ""].copy()
    visits["target_id"] = visits["target_id"].astype(str)
    kinds: dict[str, str] = {}
    files = [schedule_path]
    freq = root / "target_frequency.csv"
    if freq.is_file():
        table = _io.read_table(freq, option)
        kinds = dict(zip(table["target_id"].astype(str), table["kind"].astype(str), strict=True))
        files.append(freq)
    km = _planned_km(root / "patrol_routes.geojson", files)
    plans = _plan_gpx(root, option, files)
    rows, routes = [], {}
    for (unit, day), group in visits.groupby(["unit", "day"], sort=True):
        key = (str(unit), int(day))
        gpx = plans.get(key)
        if gpx is None:
            raise InputError(
                f"{option} {root}: no GPX for {unit} day {day} in gpx/ ({gpx_name(unit, day)}.gpx); {_PLAN_HINT}"
            )
        group = group.sort_values("stop")
        points = gpx.waypoints[1:]
        names = [w.name for w in points]
        if names != group["target_id"].tolist():
            raise InputError(
                f"{option} {gpx.path}: its stops ({listing(names, 5)}) are not those of patrol_schedule.csv for "
                f"{unit} day {day} ({listing(group['target_id'], 5)}); use the folder as havenmap patrol wrote it"
            )
        for w, row in zip(points, group.itertuples(), strict=True):
            rows.append(
                (key[0], key[1], int(row.stop), row.target_id, kinds.get(row.target_id, "point"),
                 float(row.arrival_min), float(row.departure_min), w.lon, w.lat)
            )  # fmt: skip
        base = gpx.waypoints[0]
        line_km = _length_km(gpx.lon, gpx.lat, gpx.segment)
        routes[key] = {
            "lon": gpx.lon,
            "lat": gpx.lat,
            "km": km.get(key, line_km),
            "base_id": base.name.removeprefix("base "),
            "base": (base.lon, base.lat),
        }
    stops = pd.DataFrame(
        rows, columns=["unit", "day", "stop", "target_id", "kind", "arrival_min", "departure_min", "lon", "lat"]
    )
    return PatrolPlanFiles(
        folder=root, stops=stops, routes=routes, files=files, private=bool((stops["kind"] == "defender").any())
    )


_PLAN_HINT = "give the folder written by 'havenmap patrol' (or a run's patrol/ folder)"


def _planned_km(path: Path, files: list[Path]) -> dict[tuple[str, int], float]:
    if not path.is_file():
        return {}
    files.append(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    return {
        (str(f["properties"]["unit"]), int(f["properties"]["day"])): float(f["properties"]["distance_m"]) / 1000.0
        for f in data.get("features", [])
    }


def _plan_gpx(root: Path, option: str, files: list[Path]) -> dict[tuple[str, int], _gpx.GpxFile]:
    """The plan's GPX files by (unit, day), from their track names ``<unit> day <d>``."""
    found = {}
    for path in sorted((root / "gpx").glob("*.gpx")):
        gpx = _gpx.read_gpx(path, need_track=False)
        unit, sep, day = gpx.name.rpartition(" day ")
        if not sep or not day.isdigit() or not gpx.waypoints:
            raise InputError(f"{option} {path}: not a GPX file of a havenmap patrol plan; {_PLAN_HINT}")
        found[(unit, int(day))] = gpx
        files.append(path)
    return found


# ---------------------------------------------------------------------- the tracks
@dataclass
class Track:
    """The recorded track of one unit on one day (one or more GPX files joined)."""

    unit: str
    day: int
    files: list[Path]
    lon: np.ndarray
    lat: np.ndarray
    time: np.ndarray  # datetime64[ns] UTC, NaT when the files have no times
    segment: np.ndarray

    @property
    def timed(self) -> bool:
        return bool(len(self.time)) and not bool(np.isnat(self.time).any())


def read_tracks(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    plan: PatrolPlanFiles,
    option: str = "--tracks",
) -> dict[tuple[str, int], Track]:
    """Read the GPX tracks (a folder of ``.gpx`` files, a file, or a list of files), by (unit, day) of ``plan``.

    Raises
    ------
    havenmap.errors.InputError
        A bad GPX file (:func:`havenmap._gpx.read_gpx`), no GPX files, a file whose unit and
        day cannot be told, or a unit and day the plan has no route for.
    """
    files = track_files(paths, option)
    units = sorted({u for u, _ in plan.routes})
    safe = {gpx_name(u, 0).removesuffix("_day-0"): u for u in units}
    parts: dict[tuple[str, int], list[tuple[Path, _gpx.GpxFile]]] = {}
    for path in files:
        gpx = _gpx.read_gpx(path)
        unit, day = _unit_day(path, gpx, option)
        unit = unit if unit in units else safe.get(unit, unit)
        if (unit, day) not in plan.routes:
            planned = listing(sorted(f"{u} day {d}" for u, d in plan.routes), 6)
            raise InputError(
                f"{option} {path}: {unit} day {day} has no planned route (planned: {planned}); "
                "rename the file <unit>_day-<d>.gpx after the plan, or leave it out"
            )
        parts.setdefault((unit, day), []).append((path, gpx))
    return {key: _join(key, found, option) for key, found in sorted(parts.items())}


def track_files(paths: Any, option: str = "--tracks") -> list[Path]:
    """The GPX files of a folder (``*.gpx``, sorted), a file, or a list of them; an error when there are none."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            files.extend(sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() == ".gpx"))
        elif item.is_file():
            files.append(item)
        else:
            raise InputError(f"{option} {item}: no such file or folder; give the folder of the units' GPX tracks")
    if not files:
        raise InputError(f"{option} {listing(items, 3)}: no .gpx files; put the units' recorded tracks there")
    return files


def _unit_day(path: Path, gpx: _gpx.GpxFile, option: str) -> tuple[str, int]:
    hit = _FILE_NAME.match(path.stem) or _TRACK_NAME.match(gpx.name.strip())
    if hit is None:
        raise InputError(
            f"{option} {path}: cannot tell the unit and day; name the file <unit>_day-<d>.gpx "
            "(e.g. unit-1_day-1.gpx, as the plan's GPX) or give the track the name '<unit> day <d>'"
        )
    return hit.group("unit"), int(hit.group("day"))


def _join(key: tuple[str, int], found: list[tuple[Path, _gpx.GpxFile]], option: str) -> Track:
    timed = {gpx.timed for _, gpx in found}
    if len(timed) > 1:
        raise InputError(
            f"{option} {found[0][0]}: {key[0]} day {key[1]} has files with and without times; "
            "export every file of the day with times"
        )
    if timed == {True}:
        found = sorted(found, key=lambda item: item[1].time[0])
    lon, lat, time, seg = [], [], [], []
    offset = 0
    for _, gpx in found:
        lon.append(gpx.lon)
        lat.append(gpx.lat)
        time.append(gpx.time)
        seg.append(gpx.segment + offset)
        offset += int(gpx.segment.max()) + 1
    return Track(
        unit=key[0],
        day=key[1],
        files=[p for p, _ in found],
        lon=np.concatenate(lon),
        lat=np.concatenate(lat),
        time=np.concatenate(time),
        segment=np.concatenate(seg),
    )


# ---------------------------------------------------------------------- the check
@dataclass
class PatrolCheck:
    """Result of :func:`check_patrols`.

    Attributes
    ----------
    stops : pandas.DataFrame
        One row per planned stop, :data:`STOP_COLUMNS`: ``visited``, ``visit_min`` (minutes
        from the shift start, NaN when missed or untimed), ``closest_m`` (closest pass within
        the window when visited, else at any time; NaN without a track), ``reason`` (why
        missed, in words; empty when visited).
    days : pandas.DataFrame
        One row per planned unit and day: ``unit, day, track_files, time_checked,
        stops_planned, stops_visited, missed`` (target ids), ``km_planned, km_driven,
        detour_km, detour_ratio`` and, with hotspots, ``hotspot_roads_planned,
        hotspot_roads_driven, hotspot_roads_missed, risk_planned, risk_driven, risk_share``.
    summary : dict
        Totals and the parameters.
    """

    stops: pd.DataFrame
    days: pd.DataFrame
    summary: dict[str, Any]
    plan: PatrolPlanFiles
    tracks: dict[tuple[str, int], Track] = field(default_factory=dict)
    hotspots: gpd.GeoDataFrame | None = None


def check_patrols(
    plan: PatrolPlanFiles,
    tracks: dict[tuple[str, int], Track],
    params: PatrolCheckParams | None = None,
    *,
    hotspots: gpd.GeoDataFrame | None = None,
) -> PatrolCheck:
    """Compare a plan with the recorded tracks (see the module docstring for the rules).

    Parameters
    ----------
    plan, tracks
        From :func:`read_plan` and :func:`read_tracks`.
    params
        Radius, time window and hotspot corridor (:class:`havenmap.params.PatrolCheckParams`).
    hotspots
        Hotspot roads (lines with a ``risk`` column, weighted incidents per km), e.g.
        ``threat/hotspots.geojson``.
    """
    params = params or PatrolCheckParams()
    lon0, lat0 = plan.stops[["lon", "lat"]].mean().to_numpy() if len(plan.stops) else (0.0, 0.0)
    project = pyproj.Transformer.from_crs("EPSG:4326", utm_crs(float(lon0), float(lat0)), always_xy=True).transform
    roads = _hotspot_roads(hotspots, project)
    stop_rows, day_rows = [], []
    for key, route in sorted(plan.routes.items()):
        planned = plan.stops.loc[(plan.stops["unit"] == key[0]) & (plan.stops["day"] == key[1])]
        track = tracks.get(key)
        stop_xy = np.column_stack(project(planned["lon"].to_numpy(), planned["lat"].to_numpy()))
        result = _visits(planned, stop_xy, track, route, project, params)
        stop_rows.append(result)
        day = {
            "unit": key[0],
            "day": key[1],
            "track_files": [] if track is None else [p.name for p in track.files],
            "time_checked": bool(track is not None and track.timed),
            "stops_planned": len(planned),
            "stops_visited": int(result["visited"].sum()),
            "missed": result.loc[~result["visited"], "target_id"].tolist(),
            "km_planned": round(float(route["km"]), 3),
            "km_driven": 0.0 if track is None else round(_length_km(track.lon, track.lat, track.segment, project), 3),
        }
        day["detour_km"] = round(day["km_driven"] - day["km_planned"], 3)
        day["detour_ratio"] = round(day["km_driven"] / day["km_planned"], 3) if day["km_planned"] > 0 else None
        if roads is not None:
            day.update(_risk_coverage(roads, route, track, project, params.corridor_m))
        day_rows.append(day)
    stops = pd.concat(stop_rows, ignore_index=True) if stop_rows else pd.DataFrame(columns=list(STOP_COLUMNS))
    days = pd.DataFrame(day_rows)
    summary = _summary(stops, days, params, roads is not None)
    return PatrolCheck(stops=stops, days=days, summary=summary, plan=plan, tracks=tracks, hotspots=hotspots)


def _visits(
    planned: pd.DataFrame, stop_xy: np.ndarray, track: Track | None, route: dict, project, params: PatrolCheckParams
) -> pd.DataFrame:
    n = len(planned)
    out = pd.DataFrame(
        {
            "unit": planned["unit"].to_numpy(),
            "day": planned["day"].to_numpy(),
            "stop": planned["stop"].to_numpy(),
            "target_id": planned["target_id"].to_numpy(),
            "planned_arrival_min": planned["arrival_min"].to_numpy(),
            "planned_departure_min": planned["departure_min"].to_numpy(),
            "visited": np.zeros(n, dtype=bool),
            "visit_min": np.full(n, np.nan),
            "closest_m": np.full(n, np.nan),
            "reason": ["no track for this unit and day"] * n,
        }
    )
    if track is None or n == 0:
        return out
    xy = np.column_stack(project(track.lon, track.lat))
    minutes = _shift_minutes(track, xy, np.array(project(*route["base"])), params.radius_m)
    a, b, ta, tb = _pieces(xy, minutes, track.segment)
    dist, when = _closest(stop_xy, a, b, ta, tb)  # (stops, pieces)
    near = dist <= params.radius_m
    lo = out["planned_arrival_min"].to_numpy()[:, None] - params.window_min
    hi = out["planned_departure_min"].to_numpy()[:, None] + params.window_min
    timed = track.timed and np.isfinite(params.window_min)
    ok = near & ((when >= lo) & (when <= hi) if timed else True)
    best = np.where(ok, dist, np.inf).argmin(axis=1)
    rows = np.arange(n)
    visited = ok.any(axis=1)
    out["visited"] = visited
    out["closest_m"] = np.round(np.where(visited, dist[rows, best], dist.min(axis=1)), 1)
    if track.timed:
        out["visit_min"] = np.round(np.where(visited, when[rows, best], np.nan), 1)
    reasons = []
    for i in range(n):
        if visited[i]:
            reasons.append("")
        elif not near[i].any():
            reasons.append(f"closest pass {dist[i].min():,.0f} m (more than {params.radius_m:g} m)")
        else:
            first = when[i][near[i]].min()
            reasons.append(
                f"passed within {params.radius_m:g} m at +{first:.0f} min, outside the window "
                f"+{max(lo[i, 0], 0):.0f} to +{hi[i, 0]:.0f} min"
            )
    out["reason"] = reasons
    return out


def _shift_minutes(track: Track, xy: np.ndarray, base: np.ndarray, radius_m: float) -> np.ndarray:
    """Minutes of every point from the shift start (when the track first leaves the base); NaN untimed."""
    if not track.timed:
        return np.full(len(xy), np.nan)
    seconds = (track.time - track.time[0]) / np.timedelta64(1, "s")
    away = np.flatnonzero(np.hypot(*(xy - base).T) > radius_m)
    start = 0 if not len(away) else max(int(away[0]) - 1, 0)
    return (seconds - seconds[start]) / 60.0


def _pieces(xy: np.ndarray, minutes: np.ndarray, segment: np.ndarray):
    """Track pieces between consecutive fixes of a segment, plus every fix as a piece of length 0."""
    join = np.flatnonzero(segment[1:] == segment[:-1])
    a = np.vstack([xy[join], xy])
    b = np.vstack([xy[join + 1], xy])
    return a, b, np.concatenate([minutes[join], minutes]), np.concatenate([minutes[join + 1], minutes])


def _closest(q: np.ndarray, a: np.ndarray, b: np.ndarray, ta: np.ndarray, tb: np.ndarray):
    """Distance from each point of ``q`` to each piece a→b, and the (interpolated) time there."""
    d = b - a
    length2 = np.einsum("ij,ij->i", d, d)
    rel = q[:, None, :] - a[None, :, :]
    u = np.where(length2 > 0, np.einsum("sij,ij->si", rel, d) / np.where(length2 > 0, length2, 1.0), 0.0)
    u = np.clip(u, 0.0, 1.0)
    foot = a[None, :, :] + u[..., None] * d[None, :, :]
    dist = np.hypot(*(q[:, None, :] - foot).transpose(2, 0, 1))
    return dist, ta[None, :] + u * (tb - ta)[None, :]


def _length_km(lon: np.ndarray, lat: np.ndarray, segment: np.ndarray, project=None) -> float:
    if len(lon) < 2:
        return 0.0
    if project is None:
        lon0, lat0 = float(np.mean(lon)), float(np.mean(lat))
        project = pyproj.Transformer.from_crs("EPSG:4326", utm_crs(lon0, lat0), always_xy=True).transform
    xy = np.column_stack(project(lon, lat))
    same = segment[1:] == segment[:-1]
    return float(np.hypot(*np.diff(xy, axis=0).T)[same].sum()) / 1000.0


def _hotspot_roads(hotspots: gpd.GeoDataFrame | None, project) -> gpd.GeoDataFrame | None:
    if hotspots is None:
        return None
    if "risk" not in hotspots.columns:
        raise InputError("--hotspots: no 'risk' column; give the hotspots.geojson of 'havenmap threat'")
    lines = hotspots.to_crs("EPSG:4326") if hotspots.crs is not None else hotspots.set_crs("EPSG:4326")
    metric = shapely.transform(lines.geometry.to_numpy(), lambda c: np.column_stack(project(c[:, 0], c[:, 1])))
    risk = pd.to_numeric(lines["risk"], errors="coerce").fillna(0.0).to_numpy()
    return gpd.GeoDataFrame({"risk": risk, "km": shapely.length(metric) / 1000.0}, geometry=metric)


def _covered(roads: gpd.GeoDataFrame, line: Any, corridor_m: float) -> np.ndarray:
    if line is None or line.is_empty:
        return np.zeros(len(roads), dtype=bool)
    inside = shapely.length(shapely.intersection(roads.geometry.to_numpy(), shapely.buffer(line, corridor_m)))
    return inside >= COVER_FRACTION * roads["km"].to_numpy() * 1000.0 - 1e-6


def _risk_coverage(roads, route: dict, track: Track | None, project, corridor_m: float) -> dict[str, Any]:
    planned_line = shapely.LineString(np.column_stack(project(route["lon"], route["lat"])))
    planned = _covered(roads, planned_line if len(route["lon"]) > 1 else None, corridor_m)
    driven = np.zeros(len(roads), dtype=bool)
    if track is not None:
        xy = np.column_stack(project(track.lon, track.lat))
        parts = [xy[track.segment == s] for s in np.unique(track.segment)]
        lines = shapely.MultiLineString([p for p in parts if len(p) > 1]) if any(len(p) > 1 for p in parts) else None
        driven = _covered(roads, lines, corridor_m)
    weight = roads["risk"].to_numpy() * roads["km"].to_numpy()
    risk_planned, risk_driven = float(weight[planned].sum()), float(weight[driven].sum())
    return {
        "hotspot_roads_planned": int(planned.sum()),
        "hotspot_roads_driven": int(driven.sum()),
        "hotspot_roads_missed": int((planned & ~driven).sum()),
        "risk_planned": round(risk_planned, 3),
        "risk_driven": round(risk_driven, 3),
        "risk_share": round(risk_driven / risk_planned, 3) if risk_planned > 0 else None,
    }


def _summary(stops: pd.DataFrame, days: pd.DataFrame, params: PatrolCheckParams, hot: bool) -> dict[str, Any]:
    planned = len(stops)
    visited = int(stops["visited"].sum()) if planned else 0
    out: dict[str, Any] = {
        "params": params.to_dict(),
        "unit_days": len(days),
        "unit_days_without_track": int((days["track_files"].map(len) == 0).sum()) if len(days) else 0,
        "stops_planned": planned,
        "stops_visited": visited,
        "stops_missed": planned - visited,
        "visited_share": round(visited / planned, 4) if planned else None,
        "km_planned": round(float(days["km_planned"].sum()), 3) if len(days) else 0.0,
        "km_driven": round(float(days["km_driven"].sum()), 3) if len(days) else 0.0,
    }
    out["detour_km"] = round(out["km_driven"] - out["km_planned"], 3)
    if hot and len(days):
        rp, rd = float(days["risk_planned"].sum()), float(days["risk_driven"].sum())
        out.update(
            {
                "hotspot_roads_planned": int(days["hotspot_roads_planned"].sum()),
                "hotspot_roads_driven": int(days["hotspot_roads_driven"].sum()),
                "risk_planned": round(rp, 3),
                "risk_driven": round(rd, 3),
                "risk_share": round(rd / rp, 3) if rp > 0 else None,
            }
        )
    return out


# ---------------------------------------------------------------------- outputs
def _rounded(stops: pd.DataFrame) -> pd.DataFrame:
    """Planned times to 0.1 min in the CSV, as the visit times (the check itself uses them exact)."""
    out = stops.copy()
    for column in ("planned_arrival_min", "planned_departure_min"):
        out[column] = out[column].astype(float).round(1)
    return out


def write_patrol_check(
    check: PatrolCheck, out_dir: str | os.PathLike[str], *, roads: Any = None, title: str = "Patrol check"
) -> dict[str, Path]:
    """Write ``patrol_check.csv`` (per stop), ``patrol_check.json`` (per unit and day, totals) and
    ``patrol_check_map.html`` (planned routes and stops, driven tracks, missed stops) into ``out_dir``.

    Every file is owner-only: tracks show where units were, and stops may be at defenders.
    """
    out = Path(out_dir)
    written = {
        "csv": _io.write_csv(out / "patrol_check.csv", _rounded(check.stops[list(STOP_COLUMNS)]), private=True),
        "json": _io.write_json(
            out / "patrol_check.json",
            {**check.summary, "days": _records(check.days), "stops": _records(check.stops[list(STOP_COLUMNS)])},
            private=True,
        ),
    }
    written["map"] = _write_map(check, out / "patrol_check_map.html", roads, title)
    return written


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = frame.to_dict("records")
    return [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()} for r in rows]


def _write_map(check: PatrolCheck, path: Path, roads: Any, title: str) -> Path:
    from . import maps

    plan = check.plan
    routes = gpd.GeoDataFrame(
        [
            {
                "unit": u,
                "day": d,
                "base_id": r["base_id"],
                "prize": None,
                "duration_min": None,
                "distance_m": r["km"] * 1e3,
            }
            for (u, d), r in plan.routes.items()
        ],
        geometry=[shapely.LineString(np.column_stack([r["lon"], r["lat"]])) for r in plan.routes.values()],
        crs="EPSG:4326",
    )
    stops = gpd.GeoDataFrame(
        plan.stops[["unit", "day", "stop", "target_id"]],
        geometry=shapely.points(plan.stops["lon"].to_numpy(), plan.stops["lat"].to_numpy()),
        crs="EPSG:4326",
    )
    bases = {r["base_id"]: r["base"] for r in plan.routes.values()}
    base_frame = gpd.GeoDataFrame(
        {"id": list(bases), "name": list(bases)}, geometry=shapely.points(list(bases.values())), crs="EPSG:4326"
    )
    builder = maps.MapBuilder(title=title, roads=roads)
    builder.add_patrols(routes, stops, base_frame, show=True)  # first: the record is drawn over the plan
    merged = check.stops.merge(plan.stops[["unit", "day", "stop", "lon", "lat"]], on=["unit", "day", "stop"])
    missed = merged.loc[~merged["visited"]]
    days = sorted({*(k[1] for k in check.tracks), *missed["day"].tolist()})
    for day in days:  # each day's driven tracks, then its missed stops on top; the first day shown
        _add_driven(builder, check, day, show=day == days[0])
        _add_missed(builder, missed.loc[missed["day"] == day], day, show=day == days[0])
    if len(missed):
        bounds = shapely.points(missed["lon"].to_numpy(), missed["lat"].to_numpy())
        builder.add_summary_line(
            "missed", str(len(missed)), f"planned stop{'s' if len(missed) != 1 else ''} missed",
            bounds=gpd.GeoSeries(bounds, crs="EPSG:4326").total_bounds, swatch=_MISSED_ICON,
        )  # fmt: skip
    else:
        builder.summary_note(f"All {len(merged)} planned stops were visited.")
    builder.summary_heading("Did the patrols happen?")
    return maps.save_map(builder.build(), path, private=True)


def _add_driven(builder: Any, check: PatrolCheck, day: int, show: bool) -> None:
    lines = [
        shapely.MultiLineString(
            [
                np.column_stack([t.lon, t.lat])[t.segment == s]
                for s in np.unique(t.segment)
                if (t.segment == s).sum() > 1
            ]
        )
        for (_, d), t in sorted(check.tracks.items())
        if d == day and len(t.lon) > 1
    ]
    if lines:
        frame = gpd.GeoDataFrame(geometry=lines, crs="EPSG:4326")
        builder.add_lines(f"driven_day_{day}", f"Driven, day {day}", "Patrols", frame, colour=_TRACK_COLOUR, show=show)


def _add_missed(builder: Any, missed: pd.DataFrame, day: int, show: bool) -> None:
    if not len(missed):
        return
    frame = gpd.GeoDataFrame(
        {"label": [f"{r.unit} day {r.day}, stop {r.stop} ({r.target_id}): {r.reason}" for r in missed.itertuples()]},
        geometry=shapely.points(missed["lon"].to_numpy(), missed["lat"].to_numpy()),
        crs="EPSG:4326",
    )
    builder.add_points(
        f"missed_stops_day_{day}", f"Missed stops, day {day}", "Patrols", frame,
        icon_svg=_MISSED_ICON, tooltip=("label",), show=show,
    )  # fmt: skip


_TRACK_COLOUR = "#4d4d4d"
_MISSED_ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="22" height="22" viewBox="0 0 22 22">'
    '<rect x="4" y="4" width="14" height="14" transform="rotate(45 11 11)" fill="#bd0026" stroke="#fff" '
    'stroke-width="1.5"/>'
    '<path d="M8 8l6 6M14 8l-6 6" stroke="#fff" stroke-width="2"/></svg>'
)
