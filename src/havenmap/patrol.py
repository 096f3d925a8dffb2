"""Patrol planning: routes for every unit and shift that put presence where risk is, varied day to day.

The problem is a team orienteering problem with time windows: several units, each leaving
its base and back within its shift, visit targets (hotspot roads, defenders who consented,
safe havens for check-ins, any point file) to collect as much *priority* as possible.

How it runs
-----------
1. Bases and targets are snapped to the road network; targets may also arrive already
   placed on an edge (``edge``, ``edge_fraction``), e.g. hotspot-road midpoints.
2. One travel-time matrix between all stops from the routing core (one search per chunk of
   stops, :func:`havenmap._graph.travel_matrix`; a stop at an intersection leaves by every
   street there, see :mod:`havenmap.routing`). With ``edge_weights`` (or ``risk`` and
   ``risk_alpha``) the legs follow the danger-aware cost while times stay physical seconds.
3. PyVRP (iterated local search) solves the prize-collecting VRP: optional clients with
   prizes, one depot per base, shift limits, service times and time windows
   (:mod:`havenmap._vrp`). Prizes are scaled far above any possible travel cost, so the
   solver maximises priority first and only then shortens the routes.
4. Several days: a mixed strategy, as in security-game patrolling. Each target gets a
   long-run visit frequency proportional to its priority (capped at 1) and scaled to what
   the units can cover (estimated by a first full solve). Each day a seeded random draw
   decides which targets are *due* (probability = frequency plus a correction for the
   visits it is behind or ahead), due targets' prizes get a random factor, and travel
   costs a small random perturbation, then the day is solved. Plans differ from day to
   day, each target's realised frequency tracks its priority, and the same seed gives the
   same plan.

Units and conventions
---------------------
Times in the outputs are minutes from the shift start (``*_min``), inputs in minutes;
internally seconds. The solver works in whole seconds rounded *up* (travel, service,
window start) and *down* (window end), so a plan it accepts is also feasible in exact
times; the schedule reports exact times. One network (one vehicle profile: drive or walk)
per run: plan drive and walk units in separate runs.

Hotspot roads count as *covered* on a day when a route drives along at least half of
the road (either direction), whether or not it stops there. Defenders' positions: unless
``exact=True`` in :func:`targets_from_defenders`, a defender's target is moved to the
nearer end (an intersection) of the road it is snapped to, so no output holds the exact
position.
"""

from __future__ import annotations

import itertools
import os
import re
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import _gpx, _graph, _io, _vrp, layers
from . import _layers_util as _u
from .errors import InfeasibleError, InputError, OffNetworkError, listing, where
from .network import RoadNetwork
from .snap import DEFAULT_MAX_SNAP_M, snap_points

__all__ = [
    "FREQUENCY_COLUMNS",
    "MAX_DAYS",
    "OUTPUT_FILES",
    "ROUTE_COLUMNS",
    "SCHEDULE_COLUMNS",
    "STOP_COLUMNS",
    "TARGET_COLUMNS",
    "TIMING_KEYS",
    "PatrolPlan",
    "PatrolProblem",
    "as_targets",
    "check_consent",
    "check_days",
    "check_units",
    "combine_targets",
    "gpx_name",
    "plan_patrols",
    "read_targets",
    "read_units",
    "solve_times",
    "target_frequencies",
    "targets_from_defenders",
    "targets_from_havens",
    "targets_from_hotspots",
    "write_patrol_outputs",
]

#: Columns of a targets frame (besides optional ``name`` and ``geometry``).
TARGET_COLUMNS = (
    "id",
    "priority",
    "service_minutes",
    "window_start_min",
    "window_end_min",
    "kind",
    "sensitive",
    "edge",
    "edge_fraction",
)
#: Columns of :attr:`PatrolPlan.schedule`.
SCHEDULE_COLUMNS = ("unit", "day", "stop", "target_id", "arrival_min", "departure_min")
#: Columns of :attr:`PatrolPlan.routes` (besides ``geometry``).
ROUTE_COLUMNS = ("unit", "day", "base_id", "prize", "duration_min", "distance_m", "n_targets")
#: Columns of :attr:`PatrolPlan.stops` (besides ``geometry``).
STOP_COLUMNS = ("unit", "day", "stop", "target_id", "kind", "arrival_min", "departure_min")
#: Columns of :attr:`PatrolPlan.frequency`.
FREQUENCY_COLUMNS = (
    "target_id",
    "kind",
    "priority",
    "reachable",
    "target_frequency",
    "planned_visits",
    "planned_frequency",
    "presence_frequency",
)

#: Default solver budget per day: iterations (reproducible) and a wall-clock cap (seconds).
DEFAULT_ITERATIONS = 3000
DEFAULT_TIME_LIMIT_S = 30.0
#: Most days one plan may cover: a year. Longer horizons are re-planned (with fresh threat data),
#: and a bound keeps a run's time (days × the time limit) and its files (one GPX per unit and day)
#: within reach.
MAX_DAYS = 366
#: Files :func:`write_patrol_outputs` may write, relative to its folder (glob patterns).
OUTPUT_FILES = (
    "patrol_routes.geojson",
    "patrol_schedule.csv",
    "target_frequency.csv",
    "patrol_summary.json",
    "patrol_map.html",
    "gpx/*.gpx",
)
#: Keys of :attr:`PatrolPlan.summary` (and of its ``per_day`` entries) that are wall-clock times:
#: they differ between runs of the same plan, so the files leave them out (see :func:`solve_times`).
TIMING_KEYS = ("solve_time_s",)
#: Solver time grid: integer ticks per second (travel, service and window starts are rounded up to
#: the grid, window ends and shifts down, so a plan feasible on the grid is feasible in exact times).
TICKS_PER_S = 10
#: Travel costs are coarsened so that the total cost of any plan stays below about this many units.
_COST_SCALE = 10_000
#: Priorities are rounded to this many steps of the largest before scaling into prizes.
_PRIZE_STEPS = 1000
#: A hotspot road is covered when routes drive along at least this fraction of it.
COVER_FRACTION = 0.5
_CONSENT_NONE = {"", "none", "no", "false", "0", "n", "nan"}
_CONSENT_DRIVE_BY = {"drive-by", "driveby", "drive_by", "drive by", "pass", "pass-by", "passby"}
_CONSENT_VISIT = {"visit", "yes", "true", "1", "y", "check-in", "checkin", "full"}
_SIGNIFICANCE_WEIGHT = {"hot 99%": 3.0, "hot 95%": 2.0, "hot 90%": 1.0}


# =========================================================================== targets
def read_targets(path: str | os.PathLike[str], **kw: Any) -> gpd.GeoDataFrame:
    """Read patrol targets from a point file (CSV, GeoJSON, GPKG, GeoParquet).

    Columns (any case): ``id``; coordinates (``latitude``/``longitude`` or point geometry);
    ``priority`` (number ≥ 0, the prize; default 1); ``service_minutes`` (minutes spent at
    the target, default 0); ``window_start_min``/``window_end_min`` (optional: the visit
    must *start* within this many minutes after the shift start; blank = open). ``name``
    is kept. ``kw`` goes to :func:`havenmap.layers.read_points` (``id_column=``, ``crs=``...).

    Returns
    -------
    geopandas.GeoDataFrame
        :data:`TARGET_COLUMNS` (+ ``name``) + ``geometry`` (EPSG:4326); ``kind`` = 'point'.
    """
    points = layers.read_points(path, **kw)
    return as_targets(points, label=os.fspath(path))


def as_targets(frame: pd.DataFrame, *, label: str | None = None, kind: str = "point") -> gpd.GeoDataFrame:
    """Validate a point frame as patrol targets (see :func:`read_targets` for the columns).

    A GeoDataFrame with an ``id`` column is used as is (reprojected to EPSG:4326); other
    frames go through :func:`havenmap.layers.as_points`. Errors name the row (1-based),
    the id and the column.
    """
    label = label or frame.attrs.get("source", "<targets>")
    if not (isinstance(frame, gpd.GeoDataFrame) and "id" in frame.columns):
        frame = layers.as_points(frame, label=label)
    gdf = frame.to_crs("EPSG:4326") if frame.crs is not None else frame.set_crs("EPSG:4326")
    gdf = gdf.reset_index(drop=True)
    if len(gdf) == 0:
        raise InputError(f"{label}: no targets; give at least one target row")
    ids = gdf["id"].astype(str)
    dup = ids.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputError(f"{where(label, i + 1, 'id', ids.iat[i])}: the target id appears twice; make ids unique")
    cols = list(gdf.columns)
    priority = _numbers(gdf, label, ids, _u.find_column(cols, ("priority",)), default=1.0, blank_ok=False)
    service = _numbers(gdf, label, ids, _u.find_column(cols, ("service_minutes",)), default=0.0)
    w_start = _numbers(gdf, label, ids, _u.find_column(cols, ("window_start_min",)), default=np.nan)
    w_end = _numbers(gdf, label, ids, _u.find_column(cols, ("window_end_min",)), default=np.nan)
    placed = {"edge", "edge_fraction"} <= set(cols)  # already on the network (e.g. hotspot-road midpoints)
    bad = np.flatnonzero(np.isfinite(w_start) & np.isfinite(w_end) & (w_end < w_start))
    if len(bad):
        i = int(bad[0])
        raise InputError(
            f"{where(label, i + 1, 'window_end_min', ids.iat[i])}: the window ends "
            f"({w_end[i]:g} min) before it starts ({w_start[i]:g} min); fix the window"
        )
    out = {
        "id": ids.to_numpy(dtype=object),
        "priority": priority,
        "service_minutes": service,
        "window_start_min": w_start,
        "window_end_min": w_end,
        "kind": gdf["kind"].astype(str).to_numpy()
        if "kind" in gdf and kind == "point" and _is_target_kind(gdf["kind"])
        else np.full(len(gdf), kind, dtype=object),
        "sensitive": gdf["sensitive"].astype(bool).to_numpy() if "sensitive" in gdf else np.zeros(len(gdf), bool),
        "edge": gdf["edge"].fillna(-1).astype(np.int64).to_numpy() if placed else np.full(len(gdf), -1),
        "edge_fraction": gdf["edge_fraction"].astype(float).to_numpy() if placed else np.full(len(gdf), np.nan),
    }
    if "name" in gdf:
        out["name"] = gdf["name"].astype("string").fillna("").to_numpy(dtype=object)
    result = gpd.GeoDataFrame(out, geometry=gdf.geometry.to_numpy(), crs="EPSG:4326")
    result.attrs["exact"] = bool(frame.attrs.get("exact", False))  # exact defender positions inside
    result.attrs["source"] = label
    return result


def _is_target_kind(series: pd.Series) -> bool:
    return bool(series.astype(str).isin(["point", "road", "haven", "defender"]).all())


def _numbers(
    frame: pd.DataFrame, label: str, ids: pd.Series, column: object, *, default: float, blank_ok: bool = True
) -> np.ndarray:
    """A numeric column ≥ 0 as floats (``default`` where absent/blank); one-line errors naming the row."""
    if column is None:
        return np.full(len(frame), default, dtype=np.float64)
    values, blank, bad = _u.parse_numbers(frame[column].reset_index(drop=True))
    if not blank_ok and bool(blank.any()):
        i = int(np.flatnonzero(blank.to_numpy())[0])
        raise InputError(
            f"{where(label, i + 1, str(column), ids.iat[i])}: the {column} is blank; write a number (0 or more)"
        )
    if bool(bad.any()):
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raw = frame[column].iat[i]
        raise InputError(
            f"{where(label, i + 1, str(column), ids.iat[i])}: {_u.show(raw)} is not a number; "
            "write a number of minutes (priority: any number 0 or more)"
        )
    arr = values.fillna(default).to_numpy(dtype=np.float64)
    neg = np.flatnonzero(arr < 0)
    if len(neg):
        i = int(neg[0])
        raise InputError(f"{where(label, i + 1, str(column), ids.iat[i])}: {arr[i]:g} is negative; use 0 or more")
    return arr


def targets_from_hotspots(
    net: RoadNetwork,
    hotspots: gpd.GeoDataFrame,
    *,
    priority: str = "risk",
    service_minutes: float = 0.0,
    only_hot: bool = True,
    top: int | None = None,
) -> gpd.GeoDataFrame:
    """Targets on hotspot roads: one per physical road, placed at the road's midpoint.

    A road counts as *covered* on a day when a route drives along at least half of it
    (:data:`COVER_FRACTION`), reported in the plan's ``frequency`` (``presence_frequency``)
    and summary, whether or not the route stops there.

    Parameters
    ----------
    net
        The network the plan runs on.
    hotspots
        Edge frame as the threat module writes it: ``u``, ``v``, ``key`` (OSM node ids and
        key) or ``edge`` (edge index), ``risk``, optionally ``significance`` ('hot 99%' ...).
    priority
        Column giving the priority (default ``risk``), or ``"significance"``: hot 99 % → 3,
        95 % → 2, 90 % → 1.
    service_minutes
        Minutes to spend on the road (0: driving along is the visit).
    only_hot
        Keep only rows whose ``significance`` starts with 'hot' (when that column exists).
    top
        Keep only the ``top`` roads by priority.
    """
    frame = hotspots.reset_index(drop=True)
    if only_hot and "significance" in frame:
        frame = frame.loc[frame["significance"].astype(str).str.lower().str.startswith("hot")]
    edges = _hotspot_edges(net, frame)
    if priority == "significance":
        if "significance" not in frame:
            raise InputError("hotspots: no 'significance' column; use priority='risk' or add the column")
        weight = frame["significance"].astype(str).str.lower().map(_SIGNIFICANCE_WEIGHT).fillna(0.0).to_numpy()
    else:
        if priority not in frame:
            raise InputError(f"hotspots: no {priority!r} column for the priority; columns: {list(frame.columns)}")
        weight = pd.to_numeric(frame[priority], errors="coerce").fillna(0.0).clip(lower=0).to_numpy()
    twin = net.edge_twin[edges]
    canon = np.where((twin >= 0) & (twin < edges), twin, edges)
    table = pd.DataFrame({"edge": canon, "weight": weight}).groupby("edge", sort=True)["weight"].max()
    table = table.sort_values(ascending=False, kind="stable")
    if top is not None:
        table = table.iloc[: int(top)]
    edge_idx = table.index.to_numpy(dtype=np.int64)
    mids = shapely.line_interpolate_point(net.edge_geometries(edge_idx), 0.5, normalized=True)
    ids = [f"road-{net.node_id[net.edge_u[e]]}-{net.node_id[net.edge_v[e]]}-{net.edge_key[e]}" for e in edge_idx]
    names = net.edge_attrs["name"].iloc[edge_idx].astype("string").fillna("").to_numpy(dtype=object)
    frame_out = gpd.GeoDataFrame(
        {
            "id": ids,
            "priority": table.to_numpy(dtype=float),
            "service_minutes": float(service_minutes),
            "window_start_min": np.nan,
            "window_end_min": np.nan,
            "kind": "road",
            "sensitive": False,
            "edge": edge_idx,
            "edge_fraction": 0.5,
            "name": names,
        },
        geometry=mids,
        crs=net.crs,
    ).to_crs("EPSG:4326")
    return frame_out


def _hotspot_edges(net: RoadNetwork, frame: pd.DataFrame) -> np.ndarray:
    if {"u", "v", "key"} <= set(frame.columns):
        try:
            u = net.node_index(frame["u"].to_numpy(dtype=np.int64))
            v = net.node_index(frame["v"].to_numpy(dtype=np.int64))
        except KeyError as exc:
            raise InputError(
                f"hotspots: {exc.args[0]}; use the network (and --network-type) the hotspots were computed on"
            ) from None
        key = frame["key"].to_numpy(dtype=np.int64)
        lookup = pd.Series(
            np.arange(net.n_edges), index=pd.MultiIndex.from_arrays([net.edge_u, net.edge_v, net.edge_key])
        )
        found = lookup.reindex(pd.MultiIndex.from_arrays([u, v, key]))
        if found.isna().any():
            i = int(np.flatnonzero(found.isna().to_numpy())[0])
            raise InputError(
                f"hotspots: row {i + 1}: edge (u={frame['u'].iat[i]}, v={frame['v'].iat[i]}, "
                f"key={frame['key'].iat[i]}) is not in this network; use the network the "
                "hotspots were computed on"
            )
        return found.to_numpy(dtype=np.int64)
    if "edge" in frame:
        edges = frame["edge"].to_numpy(dtype=np.int64)
        if len(edges) and (edges.min() < 0 or edges.max() >= net.n_edges):
            raise InputError("hotspots: 'edge' values outside this network's edges; use the same network")
        return edges
    raise InputError("hotspots: need columns u, v, key (or edge) identifying the road edges")


def targets_from_havens(
    havens: gpd.GeoDataFrame, *, priority: float = 1.0, service_minutes: float = 5.0
) -> gpd.GeoDataFrame:
    """Check-in targets at safe havens (``id``, optional ``name``): one visit each, equal priority."""
    frame = havens if "id" in havens.columns else layers.as_points(havens, kind="havens")
    out = gpd.GeoDataFrame(
        {
            "id": frame["id"].astype(str).to_numpy(dtype=object),
            "priority": float(priority),
            "service_minutes": float(service_minutes),
            "window_start_min": np.nan,
            "window_end_min": np.nan,
            "kind": "haven",
            "sensitive": False,
            "edge": -1,
            "edge_fraction": np.nan,
            "name": (frame["name"] if "name" in frame else frame["id"]).astype(str).to_numpy(dtype=object),
        },
        geometry=frame.geometry.to_numpy(),
        crs=frame.crs or "EPSG:4326",
    )
    return out.to_crs("EPSG:4326")


def targets_from_defenders(
    net: RoadNetwork,
    defenders: gpd.GeoDataFrame,
    *,
    consent_column: str = "consent",
    priority: float | str = 1.0,
    service_minutes: float = 10.0,
    exact: bool = False,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
) -> gpd.GeoDataFrame:
    """Targets at defenders' homes or offices, only where the defender consented.

    Consent (column ``consent_column``, any case): ``none``/``no``/blank → not patrolled;
    ``drive-by``/``pass`` → a pass with no stop (service 0); ``visit``/``yes`` → a stop of
    ``service_minutes``. Anything else is an error naming the row.

    Unless ``exact``, each target is placed at the nearer end (an intersection) of the road
    its defender snaps to, so neither the plan nor any output holds the exact position;
    with ``exact`` the snapped road point is used and the targets are flagged so outputs
    are written owner-readable only. Defenders off the network are left out with a warning.
    Only the defender ``id`` is carried over (no names).
    """
    label = defenders.attrs.get("source", "defenders")
    level = check_consent(defenders, consent_column)
    ids = defenders["id"].astype(str).reset_index(drop=True)
    keep = ~level.isin(_CONSENT_NONE).to_numpy()
    if isinstance(priority, str):
        weight = _numbers(
            defenders.reset_index(drop=True),
            label,
            ids,
            _u.find_column(list(defenders.columns), (priority,)),
            default=1.0,
        )
    else:
        weight = np.full(len(defenders), float(priority))
    snapped = snap_points(net, defenders.reset_index(drop=True), max_snap_m, require_any=False)
    on = snapped["on_network"].to_numpy()
    if (keep & ~on).any():
        off = ids[keep & ~on].tolist()
        warnings.warn(
            f"{len(off)} consenting defender(s) too far from any road, not patrolled: {listing(off)}", stacklevel=2
        )
    sel = np.flatnonzero(keep & on)
    edge = snapped["edge"].to_numpy()[sel].astype(np.int64)
    frac = snapped["edge_fraction"].to_numpy()[sel].astype(float)
    if exact:
        geoms = shapely.points(snapped["snap_x"].to_numpy()[sel], snapped["snap_y"].to_numpy()[sel])
    else:
        frac = np.where(frac < 0.5, 0.0, 1.0)
        node = np.where(frac == 0.0, net.edge_u[edge], net.edge_v[edge])
        geoms = shapely.points(net.node_xy[node])
    drive_by = level.to_numpy()[sel]
    service = np.where(pd.Series(drive_by).isin(_CONSENT_DRIVE_BY).to_numpy(), 0.0, float(service_minutes))
    out = gpd.GeoDataFrame(
        {
            "id": ids.to_numpy(dtype=object)[sel],
            "priority": weight[sel],
            "service_minutes": service,
            "window_start_min": np.nan,
            "window_end_min": np.nan,
            "kind": "defender",
            "sensitive": True,
            "edge": edge,
            "edge_fraction": frac,
        },
        geometry=geoms,
        crs=net.crs,
    ).to_crs("EPSG:4326")
    out.attrs["exact"] = bool(exact)
    return out


def check_consent(defenders: pd.DataFrame, consent_column: str = "consent") -> pd.Series:
    """Each defender's consent, lower case (``none``/``drive-by``/``visit`` and their synonyms).

    Checked without the network, so a bad consent value fails before any slow work.

    Raises
    ------
    havenmap.errors.InputError
        No consent column, or a value that is not a known consent level (naming the row and id).
    """
    label = defenders.attrs.get("source", "defenders")
    col = _u.find_column(list(defenders.columns), (consent_column,))
    if col is None:
        raise InputError(
            f"{label}: no consent column {consent_column!r}; add one with none / drive-by / visit "
            "per defender (defenders are patrolled only with their consent)"
        )
    ids = defenders["id"].astype(str).reset_index(drop=True)
    level = defenders[col].astype("string").fillna("").str.strip().str.lower().reset_index(drop=True)
    known = level.isin(_CONSENT_NONE | _CONSENT_DRIVE_BY | _CONSENT_VISIT)
    if not known.all():
        i = int(np.flatnonzero(~known.to_numpy())[0])
        raise InputError(
            f"{where(label, i + 1, str(col), ids.iat[i])}: unknown consent {_u.show(level.iat[i])}; "
            "use none, drive-by or visit"
        )
    return level


def combine_targets(*frames: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Concatenate target frames (from files, hotspots, havens, defenders); ids must stay unique."""
    frames = tuple(f for f in frames if f is not None and len(f))
    if not frames:
        raise InputError("no targets: give a targets file, hotspots, havens or consenting defenders")
    parts = [as_targets(f, kind=str(f["kind"].iat[0]) if "kind" in f else "point") for f in frames]
    out = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs="EPSG:4326")
    dup = out["id"].duplicated()
    if dup.any():
        raise InputError(
            f"target id {out['id'][dup].iat[0]!r} appears in more than one target source; rename one of them"
        )
    if any(f.attrs.get("exact") for f in frames):
        out.attrs["exact"] = True
    return out


# =========================================================================== units
def read_units(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a units file: ``unit`` (or ``id``/``unit_id``), ``base_id`` (or ``base``), optional
    ``shift_minutes`` and ``profile`` ('drive'/'walk'; must match the run's network).

    Returns
    -------
    pandas.DataFrame
        ``unit`` (str), ``base_id`` (str), ``shift_minutes`` (float, NaN = the run's
        default), ``profile`` (str, '' = any).
    """
    frame, src = _u.load(path, text_columns=("unit", "id", "unit_id", "base_id", "base"))
    _u.require_rows(frame, src)
    cols = list(frame.columns)
    unit_col = _u.find_column(cols, ("unit", "unit_id", "id"))
    base_col = _u.find_column(cols, ("base_id", "base"))
    if unit_col is None or base_col is None:
        wanted = (
            "a unit id column ('unit', 'unit_id' or 'id')"
            if unit_col is None
            else "a base column ('base_id' or 'base')"
        )
        raise src.fail(f"needs {wanted}; columns found: {', '.join(map(str, cols))}")
    units = _u.clean_ids(src, frame[unit_col], unit_col)
    _u.check_unique(src, units, unit_col)
    base = _u.as_text(frame[base_col])
    blank = base.isna() | (base == "")
    if blank.any():
        row = int(blank.index[blank.to_numpy()][0])
        raise InputError(f"{src.loc(row, base_col, units.loc[row])}: the base is blank; name the unit's base id")
    shift = pd.Series(np.nan, index=frame.index)
    shift_col = _u.find_column(cols, ("shift_minutes", "shift"))
    if shift_col is not None:
        values, _, bad = _u.parse_numbers(frame[shift_col])
        bad = bad | (values <= 0)
        if bad.any():
            row = int(bad.index[bad.to_numpy()][0])
            raise InputError(
                f"{src.loc(row, shift_col, units.loc[row])}: {_u.show(frame[shift_col].loc[row])} is "
                "not a shift length; write minutes greater than 0 (blank = --shift-minutes)"
            )
        shift = values
    prof_col = _u.find_column(cols, ("profile", "network_type", "mode"))
    profile = (
        _u.as_text(frame[prof_col]).fillna("").str.lower() if prof_col is not None else pd.Series("", index=frame.index)
    )
    out = pd.DataFrame(
        {
            "unit": units.to_numpy(dtype=object),
            "base_id": base.to_numpy(dtype=object),
            "shift_minutes": shift.to_numpy(dtype=float),
            "profile": profile.to_numpy(dtype=object),
        }
    )
    out.attrs["source"] = src.label
    return out


def check_units(
    units: int | pd.DataFrame, bases: pd.DataFrame, shift_minutes: float | None, network_type: str
) -> pd.DataFrame:
    """The units table a plan will use, checked without the network (see :func:`plan_patrols`).

    ``network_type`` is the type the run's network has: ``'drive'``, ``'walk'``, or ``'graph'``
    for a GraphML file used as given (:func:`havenmap.network.check_source` tells it before
    loading). Returns ``unit``, ``base_id``, ``shift_minutes``, ``profile``.
    """
    return _units_table(units, bases["id"].astype(str).tolist(), shift_minutes, network_type)


def _units_table(
    units: int | pd.DataFrame, base_ids: list[str], shift_minutes: float | None, network_type: str
) -> pd.DataFrame:
    if isinstance(units, (int, np.integer)):
        if int(units) < 1:
            raise InfeasibleError(f"{int(units)} patrol units: at least one unit is needed (--units 1 or more)")
        if shift_minutes is None:
            raise InputError("no shift length: pass --shift-minutes (shift_minutes=)")
        n = int(units)
        return pd.DataFrame(
            {
                "unit": [f"unit-{i + 1}" for i in range(n)],
                "base_id": [base_ids[i % len(base_ids)] for i in range(n)],
                "shift_minutes": float(shift_minutes),
                "profile": "",
            }
        )
    table = units.copy().reset_index(drop=True)
    label = units.attrs.get("source", "<units>")
    if len(table) == 0:
        raise InfeasibleError(f"{label}: no patrol units; list at least one unit")
    if "unit" not in table:
        raise InputError(f"{label}: needs columns unit, base_id (optional shift_minutes, profile)")
    if "shift_minutes" not in table:
        table["shift_minutes"] = np.nan
    if "profile" not in table:
        table["profile"] = ""
    table["unit"] = table["unit"].astype(str)
    table["base_id"] = table["base_id"].astype(str)
    for i, row in enumerate(table.itertuples()):
        if row.base_id not in base_ids:
            raise InputError(
                f"{where(label, i + 1, 'base_id', row.unit)}: base {row.base_id!r} is not among the "
                f"bases ({listing(base_ids, 8, quote=True)}); fix the base id"
            )
        prof = str(row.profile or "").strip().lower()
        if prof not in ("", "nan", network_type, "any"):
            raise InputError(_profile_mismatch(where(label, i + 1, "profile", row.unit), prof, network_type))
        if not np.isfinite(row.shift_minutes):
            if shift_minutes is None:
                raise InputError(
                    f"{where(label, i + 1, 'shift_minutes', row.unit)}: no shift length; fill it in "
                    "or pass --shift-minutes"
                )
            table.loc[i, "shift_minutes"] = float(shift_minutes)
    if (table["shift_minutes"] <= 0).any():
        raise InfeasibleError("a shift of 0 minutes or less: give every unit a positive shift length")
    return table[["unit", "base_id", "shift_minutes", "profile"]]


def _profile_mismatch(place: str, profile: str, network_type: str) -> str:
    if network_type == "graph":
        return (
            f"{place}: profile {profile!r}, but the network is a graph file (GraphML) used as given, so "
            "its profile is whatever the graph was built for and --network-type does not apply; leave "
            "the profile blank (or 'any') to plan on this graph, or plan on an OSM extract with "
            f"--network-type {profile}"
        )
    return (
        f"{place}: profile {profile!r} but the network is {network_type!r}; one network per run: plan "
        f"{profile} units in a separate run with --network-type {profile}"
    )


# =========================================================================== plan
@dataclass
class PatrolProblem:
    """The data the plan was solved on: stops, exact travel times and each unit's shift.

    Stops ``0..n_bases-1`` are the bases in use (``base_ids``), then the on-network
    targets (``targets`` rows, in order). ``time_s[i, j]`` is the travel time (s) of the
    road leg i → j, ``length_m`` its length (m), ``cost`` the routing cost it minimised.
    """

    base_ids: list[str]
    targets: gpd.GeoDataFrame
    units: pd.DataFrame
    time_s: np.ndarray
    cost: np.ndarray
    network_type: str
    legs: _graph.Matrix = field(repr=False)

    @property
    def length_m(self) -> np.ndarray:
        """Road length of every leg, metres (S × S; computed on first use)."""
        return self.legs.length_m

    @property
    def n_bases(self) -> int:
        """Number of bases in use."""
        return len(self.base_ids)

    def stop_index(self, target_id: str) -> int:
        """Stop index of a target id."""
        return self.n_bases + int(self._target_pos[str(target_id)])

    def base_index(self, base_id: str) -> int:
        """Stop index of a base id."""
        return self.base_ids.index(str(base_id))

    @cached_property
    def _target_pos(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.targets["id"].astype(str))}


@dataclass
class PatrolPlan:
    """Patrol routes for every unit and day.

    Attributes
    ----------
    routes : geopandas.GeoDataFrame
        One row per unit and day that leaves its base (EPSG:4326): ``unit``, ``day``
        (1-based), ``base_id``, ``prize`` (sum of the priorities visited), ``duration_min``
        (back at base, minutes from shift start), ``distance_m``, ``n_targets``,
        ``geometry`` (LineString along the roads, base → stops → base).
    schedule : pandas.DataFrame
        ``unit``, ``day``, ``stop`` (0 = leaving the base, last = back at the base),
        ``target_id`` (empty at the base), ``arrival_min``, ``departure_min`` (minutes from
        shift start; departure = arrival + waiting for the window + service). Every unit
        and day appears (an idle unit: stops 0 and 1 at the base at 0).
    stops : geopandas.GeoDataFrame
        Target visits: ``unit``, ``day``, ``stop``, ``target_id``, ``kind``, ``arrival_min``,
        ``departure_min``, ``geometry`` (the road point visited; a defender's is the nearby
        intersection unless placed exactly).
    frequency : pandas.DataFrame
        Per target: ``target_id``, ``kind``, ``priority``, ``reachable`` (some unit can visit it
        within its shift and window), ``target_frequency`` (the mixed strategy's long-run visits
        per day; 0 when unreachable), ``planned_visits``, ``planned_frequency``
        (visits / days), ``presence_frequency`` (days visited, or for hotspot roads days
        covered by any route, / days).
    summary : dict
        Per day prize, targets visited, solver time and stop reason; totals; variety
        (Jaccard distance between consecutive days' visited sets); warnings.
    bases : geopandas.GeoDataFrame
        Bases in use: ``id``, ``name`` (if given), ``units``, ``geometry``.
    problem : PatrolProblem
        The stops and travel times, for independent checks.
    exact : bool
        Whether sensitive targets (defenders) are at exact positions (outputs then private).
    """

    routes: gpd.GeoDataFrame
    schedule: pd.DataFrame
    stops: gpd.GeoDataFrame
    frequency: pd.DataFrame
    summary: dict[str, Any]
    bases: gpd.GeoDataFrame
    problem: PatrolProblem
    exact: bool = False
    days: int = 1
    _day_routes: list[list[list[int]]] = field(default_factory=list, repr=False)

    def visited(self, day: int) -> set[str]:
        """Target ids visited on ``day`` (1-based)."""
        rows = self.schedule.loc[(self.schedule["day"] == day) & (self.schedule["target_id"] != "")]
        return set(rows["target_id"])

    def unit_route(self, unit: str, day: int) -> list[str]:
        """Target ids unit ``unit`` visits on ``day``, in order."""
        rows = self.schedule.loc[(self.schedule["unit"] == unit) & (self.schedule["day"] == day)]
        return [t for t in rows.sort_values("stop")["target_id"] if t != ""]


def check_days(days: int, option: str = "days") -> int:
    """The number of days to plan: a whole number from 1 to :data:`MAX_DAYS`, else an ``InputError``."""
    if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or not 1 <= days <= MAX_DAYS:
        raise InputError(
            f"{option} {days}: plan 1 to {MAX_DAYS} days at a time (a year); re-plan after that with fresh threat data"
        )
    return int(days)


def plan_patrols(
    net: RoadNetwork,
    targets: gpd.GeoDataFrame,
    bases: gpd.GeoDataFrame,
    *,
    units: int | pd.DataFrame = 1,
    shift_minutes: float | None = None,
    days: int = 1,
    seed: int = 0,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    max_iterations: int | None = DEFAULT_ITERATIONS,
    edge_weights: np.ndarray | None = None,
    risk: np.ndarray | None = None,
    risk_alpha: float = 1.0,
    max_snap_m: float = DEFAULT_MAX_SNAP_M,
    solver: str = "pyvrp",
    variety: float = 1.0,
) -> PatrolPlan:
    """Plan patrol routes for ``days`` days (see the module docstring for the method).

    Parameters
    ----------
    net
        Road network; its profile (drive or walk) is every unit's profile.
    targets
        Targets (:func:`read_targets`, :func:`targets_from_hotspots`, ... or
        :func:`combine_targets`): ``id``, ``priority``, optional ``service_minutes``,
        ``window_start_min``, ``window_end_min``, point geometry.
    bases
        Bases: ``id`` + point geometry (:func:`havenmap.layers.read_bases`).
    units
        A number of units, spread over the bases round-robin (unit-1 at the first base,
        ...), or a table ``unit``, ``base_id``, optional ``shift_minutes``, ``profile``
        (:func:`read_units`).
    shift_minutes
        Shift length (time budget) in minutes, for units without their own.
    days
        Number of days to plan (1: the single best plan; more: the mixed strategy), at most
        :data:`MAX_DAYS`.
    seed
        Seed of every random choice: same inputs and seed → same plan.
    time_limit_s
        Solver wall-clock cap per day, seconds.
    max_iterations
        Solver iterations per day. The solver stops at whichever limit comes first; only an
        iteration stop is reproducible across machines (``summary['reproducible']``). None:
        time limit only.
    edge_weights
        Optional per-edge routing cost (``inf`` closes an edge) for danger-aware legs;
        times stay physical. Overrides ``risk``.
    risk, risk_alpha
        Per-edge risk (≥ 0, aligned with edge indices, as from the threat module): legs then
        minimise ``time × (1 + risk_alpha × risk)``.
    max_snap_m
        Bases and targets farther than this from a road (metres) are off the network.
    solver
        'pyvrp' (default) or 'greedy' (the baseline; for comparisons).
    variety
        Strength of the day-to-day randomisation (0 = none: every day solved with the same
        prizes; 1 = default).

    Returns
    -------
    PatrolPlan

    Raises
    ------
    havenmap.errors.InfeasibleError
        Zero units, or no unit can visit any target within its shift.
    havenmap.errors.InputError
        No targets, a base off the network (names the base and its distance), bad unit rows.
    """
    check_days(days)
    if solver not in ("pyvrp", "greedy"):
        raise ValueError(f"unknown solver {solver!r}: use 'pyvrp' or 'greedy'")
    targets = combine_targets(*targets) if isinstance(targets, (list, tuple)) else as_targets(targets)
    exact = bool(targets.attrs.get("exact", False))
    bases = bases if "id" in bases.columns else layers.as_points(bases, kind="bases")
    base_ids_all = bases["id"].astype(str).tolist()
    unit_table = _units_table(units, base_ids_all, shift_minutes, net.network_type)

    prep = _prepare(net, targets, bases, unit_table, edge_weights, risk, risk_alpha, max_snap_m)
    rng = np.random.default_rng(seed)
    solve = _solver(solver, time_limit_s, max_iterations)

    priority = prep.targets["priority"].to_numpy(dtype=float)
    # a target no unit can reach within its shift is not offered to the solver
    full_prize = _vrp.lexicographic_prizes(np.where(prep.reachable, priority, 0.0), prep.bound, resolution=_PRIZE_STEPS)
    first = solve(_with(prep.inst, prize=full_prize), int(rng.integers(2**31 - 1)))
    capacity = len({t for r in first.routes for t in r})
    if days == 1:
        day_results = [first]
        freq = target_frequencies(np.where(prep.reachable, priority, 0.0), capacity)
    else:
        day_results, freq = _mixed_strategy(prep, priority, capacity, days, rng, solve, variety)
    return _assemble(
        net,
        prep,
        day_results,
        freq,
        first,
        days,
        seed,
        solver,
        time_limit_s,
        max_iterations,
        exact,
        edge_weights is not None or risk is not None,
    )


# ---------------------------------------------------------------------- preparation
@dataclass
class _Prepared:
    legs: _graph.Matrix
    inst: _vrp.Instance  # integer ticks of 1/TICKS_PER_S s (solver)
    exact_inst: _vrp.Instance  # float seconds (schedules)
    targets: gpd.GeoDataFrame  # on-network targets
    target_xy: np.ndarray  # (n, 2) snapped positions, network CRS
    bases: gpd.GeoDataFrame
    base_xy: np.ndarray
    units: pd.DataFrame
    bound: float
    reachable: np.ndarray  # (n,) bool: some unit can visit the target within its shift and window
    notes: dict[str, Any]


def _prepare(net, targets, bases, unit_table, edge_weights, risk, risk_alpha, max_snap_m) -> _Prepared:
    notes: dict[str, Any] = {"off_network_targets": []}
    used_bases = list(dict.fromkeys(unit_table["base_id"]))
    bases = bases.assign(id=bases["id"].astype(str)).set_index("id", drop=False).loc[used_bases].reset_index(drop=True)
    b_snap = snap_points(net, bases, max_snap_m, require_any=False)
    off = np.flatnonzero(~b_snap["on_network"].to_numpy())
    if len(off):
        i = int(off[0])
        raise OffNetworkError(
            f"base {b_snap['id'].iat[i]!r} is {b_snap['snap_distance_m'].iat[i]:,.0f} m from the nearest road "
            f"of the {net.network_type} network (limit {max_snap_m:,.0f} m): move the base onto the road network, "
            "check the network covers it, or raise --max-snap-m"
        )

    t_edge = targets["edge"].to_numpy(dtype=np.int64).copy()
    t_frac = targets["edge_fraction"].to_numpy(dtype=float).copy()
    need = t_edge < 0
    if need.any():
        t_snap = snap_points(net, targets.loc[need].reset_index(drop=True), max_snap_m, require_any=True)
        t_edge[need] = t_snap["edge"].to_numpy()
        t_frac[need] = t_snap["edge_fraction"].to_numpy()
        off_ids = t_snap.loc[~t_snap["on_network"], "id"].astype(str).tolist()
        if off_ids:
            warnings.warn(f"{len(off_ids)} target(s) too far from any road, left out: {listing(off_ids)}", stacklevel=3)
        notes["off_network_targets"] = off_ids
    bad = (t_edge >= net.n_edges) | ((t_edge >= 0) & ~np.isfinite(t_frac))
    if bad.any():
        raise InputError(
            f"target {targets['id'].iat[int(np.flatnonzero(bad)[0])]!r}: edge/edge_fraction do not "
            "fit this network; build the targets on the network the plan runs on"
        )
    on = t_edge >= 0
    tg = targets.loc[on].reset_index(drop=True)
    t_edge, t_frac = t_edge[on], np.clip(t_frac[on], 0.0, 1.0)
    tg["edge"], tg["edge_fraction"] = t_edge, t_frac

    weights = edge_weights
    if weights is None and risk is not None:
        risk = np.asarray(risk, dtype=float)
        if risk.shape != (net.n_edges,):
            raise InputError(f"risk has {risk.shape[0]} values but the network has {net.n_edges} edges")
        weights = net.edge_time * (1.0 + float(risk_alpha) * np.clip(np.nan_to_num(risk), 0.0, None))
    b_edge = b_snap["edge"].to_numpy(dtype=np.int64)
    b_frac = b_snap["edge_fraction"].to_numpy(dtype=float)
    stops = _graph.Places.locate(net, np.concatenate([b_edge, t_edge]), np.concatenate([b_frac, t_frac]))
    legs = _graph.travel_matrix(_graph.cost_graph(net, "time", weights), stops, stops)
    np.fill_diagonal(legs.cost, 0.0)
    np.fill_diagonal(legs.time_s, 0.0)

    base_pos = {b: i for i, b in enumerate(used_bases)}
    vehicle_base = unit_table["base_id"].map(base_pos).to_numpy(dtype=np.int64)
    shift_s = unit_table["shift_minutes"].to_numpy(dtype=float) * 60.0
    service_s = tg["service_minutes"].to_numpy(dtype=float) * 60.0
    early_s = np.nan_to_num(tg["window_start_min"].to_numpy(dtype=float) * 60.0, nan=0.0)
    late_s = np.nan_to_num(tg["window_end_min"].to_numpy(dtype=float) * 60.0, nan=np.inf)

    # who can visit what: round trip base -> target -> base within the shift and the window
    nb = len(used_bases)
    go = legs.time_s[vehicle_base][:, nb:]  # (V, n)
    back = legs.time_s[nb:, vehicle_base].T
    begin = np.maximum(go, early_s)
    ok = (begin <= late_s) & (begin + service_s + back <= shift_s[:, None])
    if not ok.any():
        raise InfeasibleError(_infeasible_message(go, back, service_s, shift_s, unit_table, tg, ok))
    idle = unit_table["unit"][~ok.any(axis=1)].tolist()
    if idle:
        warnings.warn(
            f"unit(s) {listing(idle)} cannot visit any target within the shift (too far or too short)", stacklevel=3
        )
    notes["idle_units"] = idle
    unreachable = ~ok.any(axis=0)
    notes["unreachable_targets"] = tg["id"][unreachable].astype(str).tolist()
    if unreachable.any():
        warnings.warn(
            f"{int(unreachable.sum())} target(s) no unit can visit within its shift and window: "
            f"{listing(notes['unreachable_targets'])}",
            stacklevel=3,
        )

    target_xy = net.points_along(t_edge, t_frac)
    base_xy = np.column_stack([b_snap["snap_x"].to_numpy(), b_snap["snap_y"].to_numpy()])
    xy = np.vstack([base_xy, target_xy])
    tick = TICKS_PER_S
    dur = _int_matrix(legs.time_s * tick, np.ceil)
    cost_scale = tick if weights is None else tick * _cost_scale(legs)
    cost = _int_matrix(legs.cost * cost_scale, np.rint)
    inst = _vrp.Instance(
        duration=dur,
        cost=cost,
        n_bases=nb,
        service=np.ceil(service_s * tick - 1e-9).astype(np.int64),
        tw_early=np.ceil(early_s * tick - 1e-9).astype(np.int64),
        tw_late=np.where(
            np.isfinite(late_s), np.floor(np.nan_to_num(late_s, posinf=0) * tick + 1e-9), _vrp.UNREACHABLE
        ).astype(np.int64),
        prize=np.zeros(len(tg), dtype=np.int64),
        vehicle_base=vehicle_base,
        vehicle_shift=np.floor(shift_s * tick + 1e-9).astype(np.int64),
        xy=xy,
    )
    exact_inst = _vrp.Instance(
        duration=legs.time_s,
        cost=legs.cost,
        n_bases=nb,
        service=service_s,
        tw_early=early_s,
        tw_late=late_s,
        prize=inst.prize,
        vehicle_base=vehicle_base,
        vehicle_shift=shift_s,
        xy=xy,
    )
    # the cost only breaks ties between equal prizes: coarsen it so prize scales stay small (PyVRP's
    # penalised costs must not overflow int64)
    bound = _vrp.cost_bound(inst.cost, inst.duration, inst.vehicle_shift)
    quantum = max(1.0, np.ceil(bound / _COST_SCALE))
    if quantum > 1:
        inst.cost = _int_matrix(np.where(inst.cost >= _vrp.UNREACHABLE, np.inf, inst.cost / quantum), np.rint)
        bound = _vrp.cost_bound(inst.cost, inst.duration, inst.vehicle_shift)
    counts = unit_table["base_id"].value_counts()
    out_bases = bases.copy()
    out_bases["units"] = out_bases["id"].map(counts).fillna(0).astype(int)
    return _Prepared(
        legs=legs,
        inst=inst,
        exact_inst=exact_inst,
        targets=tg,
        target_xy=target_xy,
        bases=out_bases,
        base_xy=base_xy,
        units=unit_table.reset_index(drop=True),
        bound=bound,
        reachable=~unreachable,
        notes=notes,
    )


def _infeasible_message(go, back, service_s, shift_s, unit_table, tg, ok) -> str:
    trip = go + service_s + back
    if not np.isfinite(trip).any():
        return (
            "no target can be reached by road from any base (a disconnected network, or one-way streets?): "
            "check the bases and targets lie on the same connected roads"
        )
    v, t = np.unravel_index(int(np.nanargmin(np.where(np.isfinite(trip), trip, np.inf))), trip.shape)
    shortest = float(trip[v, t]) / 60.0
    longest = float(shift_s.max()) / 60.0
    if shortest > longest:
        return (
            f"no unit can visit any target within its shift: the shortest round trip (unit "
            f"{unit_table['unit'].iat[v]} from base {unit_table['base_id'].iat[v]} to target "
            f"{tg['id'].iat[t]} and back, with its service time) takes {shortest:.1f} min but the longest "
            f"shift is {longest:g} min; lengthen --shift-minutes or add a base nearer the targets"
        )
    return (
        f"no unit can visit any target within its shift and the targets' time windows (the shortest round "
        f"trip takes {shortest:.1f} min, shifts up to {longest:g} min): check window_start_min / "
        "window_end_min against the shift length"
    )


def _int_matrix(values: np.ndarray, rounding) -> np.ndarray:
    finite = np.isfinite(values)
    out = np.full(values.shape, _vrp.UNREACHABLE, dtype=np.int64)
    out[finite] = np.minimum(
        rounding(values[finite] - (1e-9 if rounding is np.ceil else 0.0)), _vrp.UNREACHABLE
    ).astype(np.int64)
    np.fill_diagonal(out, 0)
    return out


def _cost_scale(legs: _graph.Matrix) -> float:
    """Scale a danger-aware cost to about seconds, so rounding to integers keeps it precise."""
    finite = np.isfinite(legs.cost) & (legs.time_s > 0)
    if not finite.any():
        return 1.0
    ratio = np.median(legs.cost[finite] / legs.time_s[finite])
    return 1.0 / ratio if ratio > 0 else 1.0


def _with(inst: _vrp.Instance, **changes: Any) -> _vrp.Instance:
    data = dict(inst.__dict__)
    data.update(changes)
    return _vrp.Instance(**data)


def _solver(name: str, time_limit_s: float, max_iterations: int | None):
    if name == "greedy":
        return lambda inst, seed: _vrp.greedy(inst)
    return lambda inst, seed: _vrp.solve_pyvrp(
        inst, time_limit_s=time_limit_s, seed=seed, max_iterations=max_iterations
    )


# ---------------------------------------------------------------------- mixed strategy
def target_frequencies(priority: np.ndarray, capacity: float) -> np.ndarray:
    """Long-run visits per day for each target: proportional to priority, at most 1, summing to
    ``min(capacity, number of targets with priority > 0)`` (water-filling)."""
    p = np.asarray(priority, dtype=float)
    positive = p > 0
    total = min(float(capacity), float(positive.sum()))
    if total <= 0:
        return np.zeros(len(p))
    if total >= positive.sum():
        return positive.astype(np.float64)
    lo, hi = 0.0, total / p[positive].min()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.minimum(1.0, mid * p).sum() < total:
            lo = mid
        else:
            hi = mid
    return np.minimum(1.0, hi * p)


#: Mixed-strategy constants: deficit feedback on the due probability, prize boost per expected
#: visit missed, prize noise (log-sd), travel-cost noise (log-sd).
_FEEDBACK = 0.5
_BOOST = 1.0
_PRIZE_NOISE = 0.3
_COST_NOISE = 0.15


def _mixed_strategy(
    prep: _Prepared, priority: np.ndarray, capacity: float, days: int, rng: np.random.Generator, solve, variety: float
) -> tuple[list[_vrp.SolveResult], np.ndarray]:
    """Solve ``days`` days of the mixed strategy; return the results and the final target frequencies.

    Frequencies ``f`` come from the capacity estimate (targets visited by the first full
    solve). Day d: deficit ``D = f (d - 1) - visits so far``;
    a target is due with probability ``clip(f + 0.5 D, 0, 1)``; a due target's prize is
    ``priority × noise × (1 + max(D, 0) / f)`` (a target that keeps missing out grows more
    valuable), a target not due is not offered; travel costs get ±15 % noise so routes
    through the same targets vary too.
    """
    n = len(priority)
    weight_base = np.where(prep.reachable, priority, 0.0)
    visits = np.zeros(n)
    expected = np.zeros(n)
    done_counts: list[int] = []
    results = []
    base_cost = prep.inst.cost
    freq = target_frequencies(weight_base, capacity)
    for _day in range(days):
        deficit = expected - visits
        draw = rng.random(n)
        noise = np.exp(variety * _PRIZE_NOISE * rng.standard_normal(n))
        cost_noise = np.exp(variety * _COST_NOISE * rng.standard_normal(base_cost.shape))
        solver_seed = int(rng.integers(2**31 - 1))
        if variety > 0:
            due = (draw < np.clip(freq + _FEEDBACK * deficit, 0.0, 1.0)) & (freq > 0)
            boost = 1.0 + _BOOST * np.maximum(deficit, 0.0) / np.maximum(freq, 1e-9)
            weight = np.where(due, priority * noise * boost, 0.0)
            cost = np.where(base_cost >= _vrp.UNREACHABLE, base_cost, np.rint(base_cost * cost_noise)).astype(np.int64)
            np.fill_diagonal(cost, 0)
        else:
            due, weight, cost = freq > 0, weight_base, base_cost
        bound = _vrp.cost_bound(cost, prep.inst.duration, prep.inst.vehicle_shift)
        inst = _with(prep.inst, cost=cost, prize=_vrp.lexicographic_prizes(weight, bound, resolution=_PRIZE_STEPS))
        result = solve(inst, solver_seed)
        result.info["due"] = int(due.sum())
        results.append(result)
        seen = sorted({t for r in result.routes for t in r})
        visits[seen] += 1
        expected += freq
        done_counts.append(len(seen))
    # the units' realised capacity for random target sets is what the frequencies are measured against
    final = target_frequencies(weight_base, float(np.mean(done_counts)))
    return results, final


# ---------------------------------------------------------------------- assembling the plan
def _assemble(
    net,
    prep: _Prepared,
    day_results,
    freq,
    first,
    days,
    seed,
    solver,
    time_limit_s,
    max_iterations,
    exact,
    danger_aware,
) -> PatrolPlan:
    tg, units = prep.targets, prep.units
    t_ids = tg["id"].astype(str).to_numpy()
    priority = tg["priority"].to_numpy(dtype=float)
    kinds = tg["kind"].astype(str).to_numpy()
    base_ids = prep.bases["id"].astype(str).tolist()
    road_targets = np.flatnonzero(kinds == "road")
    road_canon = net.canonical_edge[tg["edge"].to_numpy(dtype=np.int64)[road_targets]]

    sched_rows, route_rows, route_geoms, stop_rows, stop_xy = [], [], [], [], []
    visits = np.zeros(len(tg))
    presence_days = np.zeros(len(tg))
    day_summ = []
    visited_sets = []
    route_legs: list[list[tuple[int, int]]] = []
    route_day: list[int] = []
    route_start: list[np.ndarray] = []
    day_visits: list[np.ndarray] = []
    for day, result in enumerate(day_results, start=1):
        visited_today: set[int] = set()
        for v, route in enumerate(result.routes):
            unit = str(units["unit"].iat[v])
            base = int(prep.inst.vehicle_base[v])
            arrival, _, departure, back = _vrp.schedule(prep.exact_inst, v, route)
            sched_rows.append((unit, day, 0, "", 0.0, 0.0))
            for k, t in enumerate(route):
                sched_rows.append((unit, day, k + 1, t_ids[t], arrival[k] / 60.0, departure[k] / 60.0))
                stop_rows.append((unit, day, k + 1, t_ids[t], kinds[t], arrival[k] / 60.0, departure[k] / 60.0))
                stop_xy.append(prep.target_xy[t])
            end = back if route else 0.0
            sched_rows.append((unit, day, len(route) + 1, "", end / 60.0, end / 60.0))
            if not route:
                continue
            visited_today.update(route)
            locs = [base, *(prep.inst.loc(t) for t in route), base]
            route_legs.append(list(itertools.pairwise(locs)))
            route_day.append(day)
            route_rows.append((unit, day, base_ids[base], float(priority[route].sum()), end / 60.0, 0.0, len(route)))
            route_start.append(prep.base_xy[base])
        day_visits.append(np.fromiter(visited_today, dtype=np.int64, count=len(visited_today)))

    # the road pieces of every route at once: one search per stop a leg leaves from
    pairs = np.array([leg for legs in route_legs for leg in legs], dtype=np.int64).reshape(-1, 2)
    leg_route = np.repeat(np.arange(len(route_legs)), [len(legs) for legs in route_legs])
    leg_pieces = prep.legs.routes(pairs)
    pieces = _graph.Pieces(leg_pieces.edge, leg_pieces.f0, leg_pieces.f1, leg_route[leg_pieces.owner], len(route_legs))
    route_geoms = list(_graph.pieces_to_lines(net, pieces, np.asarray(route_start).reshape(-1, 2)))
    distances = pieces.total(net.edge_length)
    route_rows = [(*row[:5], float(distances[i]), row[6]) for i, row in enumerate(route_rows)]
    covered = np.zeros((len(route_legs), len(road_targets)), dtype=bool)
    if len(road_targets):
        for i in range(len(route_legs)):
            covered[i] = _covers(net, pieces.route(i), road_canon)
    route_day_arr = np.asarray(route_day, dtype=np.int64)
    for day, (result, idx) in enumerate(zip(day_results, day_visits, strict=True), start=1):
        covered_today = covered[route_day_arr == day].any(axis=0)
        visits[idx] += 1
        present = np.zeros(len(tg), dtype=bool)
        present[idx] = True
        present[road_targets[covered_today]] = True
        presence_days += present
        visited_sets.append(set(t_ids[idx].tolist()))
        day_summ.append(
            {
                "day": day,
                "prize": round(float(priority[idx].sum()), 6),
                "targets_visited": len(idx),
                "units_out": sum(1 for r in result.routes if r),
                "hotspot_roads_covered": int(covered_today.sum()),
                "solve_time_s": round(result.runtime_s, 3),
                "iterations": result.iterations,
                "stopped_by": result.stopped_by,
                **({"due": result.info["due"]} if "due" in result.info else {}),
            }
        )

    schedule = pd.DataFrame(sched_rows, columns=list(SCHEDULE_COLUMNS))
    schedule["day"] = schedule["day"].astype("int64")
    schedule["stop"] = schedule["stop"].astype("int64")
    routes = gpd.GeoDataFrame(
        pd.DataFrame(route_rows, columns=list(ROUTE_COLUMNS)), geometry=route_geoms, crs=net.crs
    ).to_crs("EPSG:4326")
    xy = np.asarray(stop_xy).reshape(-1, 2)
    stops = gpd.GeoDataFrame(
        pd.DataFrame(stop_rows, columns=list(STOP_COLUMNS)), geometry=shapely.points(xy) if len(xy) else [], crs=net.crs
    ).to_crs("EPSG:4326")
    frequency = pd.DataFrame(
        {
            "target_id": t_ids,
            "kind": kinds,
            "priority": priority,
            "reachable": prep.reachable,
            "target_frequency": freq,
            "planned_visits": visits.astype(int),
            "planned_frequency": visits / days,
            "presence_frequency": presence_days / days,
        }
    )
    reproducible = all(r.stopped_by in ("iterations", "done") for r in day_results)
    summary = {
        "days": days,
        "units": len(units),
        "targets": len(tg),
        "bases": base_ids,
        "network_type": net.network_type,
        "danger_aware": bool(danger_aware),
        "solver": solver,
        "seed": int(seed),
        "time_limit_s": float(time_limit_s),
        "max_iterations": max_iterations,
        "reproducible": bool(reproducible),
        "capacity_targets_per_day": len({t for r in first.routes for t in r}),
        "prize_best_single_day": round(float(priority[sorted({t for r in first.routes for t in r})].sum()), 6),
        "per_day": day_summ,
        "prize_total": round(float(sum(d["prize"] for d in day_summ)), 6),
        "prize_possible_per_day": round(float(priority.sum()), 6),
        "solve_time_s": round(float(sum(r.runtime_s for r in day_results)), 3),
        "variety_jaccard": _mean_jaccard_distance(visited_sets),
        "frequency_priority_correlation": _correlation(priority, visits / days),
        "hotspot_roads": len(road_targets),
        **prep.notes,
    }
    bases_out = prep.bases[[c for c in ("id", "name", "units") if c in prep.bases] + ["geometry"]]
    return PatrolPlan(
        routes=routes,
        schedule=schedule,
        stops=stops,
        frequency=frequency,
        summary=summary,
        bases=bases_out.to_crs("EPSG:4326"),
        problem=PatrolProblem(
            base_ids=base_ids,
            targets=tg,
            units=units,
            time_s=prep.legs.time_s,
            cost=prep.legs.cost,
            network_type=net.network_type,
            legs=prep.legs,
        ),
        exact=bool(exact and tg["sensitive"].any()),
        days=days,
        _day_routes=[r.routes for r in day_results],
    )


def _covers(net: RoadNetwork, pieces: _graph.Pieces, roads: np.ndarray) -> np.ndarray:
    """For each road (canonical edge), whether the pieces cover at least COVER_FRACTION of it."""
    canon = net.canonical_edge[pieces.edge]
    flip = canon != pieces.edge
    a = np.where(flip, 1.0 - pieces.f1, pieces.f0)
    b = np.where(flip, 1.0 - pieces.f0, pieces.f1)
    out = np.zeros(len(roads), dtype=bool)
    wanted = {int(e): i for i, e in enumerate(roads)}
    spans: dict[int, list[tuple[float, float]]] = {}
    for e, lo, hi in zip(canon.tolist(), a.tolist(), b.tolist(), strict=True):
        if e in wanted:
            spans.setdefault(e, []).append((lo, hi))
    for e, parts in spans.items():
        total, end = 0.0, -1.0
        for lo, hi in sorted(parts):
            lo = max(lo, end)
            if hi > lo:
                total += hi - lo
                end = hi
        out[wanted[e]] = total >= COVER_FRACTION - 1e-9
    return out


def _mean_jaccard_distance(sets: list[set[str]]) -> float | None:
    if len(sets) < 2:
        return None
    dists = [1.0 - len(a & b) / len(a | b) if (a | b) else 0.0 for a, b in itertools.pairwise(sets)]
    return round(float(np.mean(dists)), 4)


def _correlation(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return None
    return round(float(np.corrcoef(x, y)[0, 1]), 4)


# =========================================================================== outputs
def write_patrol_outputs(
    plan: PatrolPlan,
    out_dir: str | os.PathLike[str],
    *,
    roads: gpd.GeoDataFrame | None = None,
    title: str = "Patrol plan",
    write_map: bool = True,
    hxl: bool = False,
) -> dict[str, Any]:
    """Write the plan's files into ``out_dir`` (atomically; owner-only when exact defender points are in).

    Files: ``patrol_routes.geojson`` (LineString per unit and day), ``gpx/<unit>_day-<d>.gpx``
    (track + stops as waypoints, one per unit and day that leaves its base),
    ``patrol_schedule.csv``, ``target_frequency.csv``, ``patrol_summary.json`` and
    ``patrol_map.html`` (when :func:`havenmap.maps.patrol_map` is available). With ``hxl`` the
    CSV files carry an HXL hashtag row.

    Returns
    -------
    dict
        File kind → path (``gpx`` → list of paths).
    """
    out = Path(out_dir)
    # defender targets, even displaced to a junction, point near people: keep every file owner-only
    private = bool(
        plan.exact or (plan.stops["kind"].astype(str) == "defender").any() if "kind" in plan.stops else plan.exact
    )
    written: dict[str, Any] = {}
    written["routes"] = _io.write_geojson(out / "patrol_routes.geojson", plan.routes, private=private)
    written["schedule"] = _io.write_csv(out / "patrol_schedule.csv", _rounded(plan.schedule), private=private, hxl=hxl)
    written["frequency"] = _io.write_csv(
        out / "target_frequency.csv", _rounded(plan.frequency), private=private, hxl=hxl
    )
    written["gpx"] = _write_gpx(plan, out / "gpx", private)
    summary = _without_timings(plan.summary)
    summary["files"] = {
        k: ([str(Path(p).relative_to(out)) for p in v] if isinstance(v, list) else str(Path(v).relative_to(out)))
        for k, v in written.items()
    }
    if write_map:
        from . import maps

        if hasattr(maps, "patrol_map"):
            m = maps.patrol_map(roads=roads, routes=plan.routes, stops=plan.stops, bases=plan.bases, title=title)
            written["map"] = maps.save_map(m, out / "patrol_map.html", private=private)
            summary["files"]["map"] = "patrol_map.html"
        else:
            summary["files"]["map"] = None
    written["summary"] = _io.write_json(out / "patrol_summary.json", summary, private=private)
    return written


def solve_times(plan: PatrolPlan) -> dict[str, Any]:
    """The solver's wall-clock times (``solve_s`` and ``solve_s_per_day``): for a run's manifest, not its files."""
    return {
        "solve_s": plan.summary.get("solve_time_s"),
        "solve_s_per_day": [day.get("solve_time_s") for day in plan.summary.get("per_day", [])],
    }


def _without_timings(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary without :data:`TIMING_KEYS`: the same plan gives the same file."""
    out = {k: v for k, v in summary.items() if k not in TIMING_KEYS}
    if "per_day" in out:
        out["per_day"] = [{k: v for k, v in day.items() if k not in TIMING_KEYS} for day in out["per_day"]]
    return out


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].round(4)
    return out


def _safe_name(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned or "unit"


def gpx_name(unit: str, day: int) -> str:
    """The file stem of a unit's GPX for a day: ``<unit>_day-<d>``, the unit's name made file-safe."""
    return f"{_safe_name(str(unit))}_day-{int(day)}"


def _write_gpx(plan: PatrolPlan, folder: Path, private: bool) -> list[Path]:
    if folder.is_dir():  # a re-run must not leave yesterday's routes beside today's
        for old in folder.glob("*.gpx"):
            old.unlink()
    paths: list[Path] = []
    used: set[str] = set()
    bases = plan.bases.set_index(plan.bases["id"].astype(str))
    for row in plan.routes.itertuples():
        visits = plan.stops.loc[(plan.stops["unit"] == row.unit) & (plan.stops["day"] == row.day)].sort_values("stop")
        base_pt = bases.geometry.loc[str(row.base_id)]
        wpts = [_gpx.Waypoint(base_pt.x, base_pt.y, f"base {row.base_id}", "start and end of the shift", "Flag")]
        for s in visits.itertuples():
            desc = f"stop {s.stop}: arrive +{s.arrival_min:.1f} min, leave +{s.departure_min:.1f} min"
            wpts.append(_gpx.Waypoint(s.geometry.x, s.geometry.y, str(s.target_id), desc, "Waypoint"))
        name = f"{row.unit} day {row.day}"
        desc = f"{row.n_targets} targets, back at base after {row.duration_min:.1f} min, {row.distance_m / 1000:.2f} km"
        text = _gpx.gpx_document(name, np.asarray(row.geometry.coords), wpts, description=desc)
        stem = gpx_name(row.unit, row.day)
        n = 2
        while stem in used:  # units 'a b' and 'a_b' must not overwrite each other
            stem = f"{_safe_name(str(row.unit))}-{n}_day-{row.day}"
            n += 1
        used.add(stem)
        paths.append(_io.write_text(folder / f"{stem}.gpx", text, private=private))
    return paths
