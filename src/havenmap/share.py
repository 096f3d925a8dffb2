"""Share bundles: what a partner or the public may see of a run, and provably nothing more.

:func:`share_run` turns a run's output folder (what ``havenmap demo`` / :func:`havenmap.run_scenario`
writes) into a folder for others, at one of two levels:

``public``
    incidents generalised (dates to the ISO week, positions to the centre of a grid cell of
    ``cell_m`` metres, ids and notes removed), threat on the public road network (hot spots, and
    each road's risk the length-weighted mean risk of its grid cell: no road shows more than its
    cell), public havens only (havens' ``public`` column), coverage per grid cell (the
    share of each cell within each band of a *public* haven); no defenders, no patrols, no alerts.
``partner``
    the same, with incident ids and days and the risk per road, plus defender counts per k-anonymous cell
    (:func:`havenmap.privacy.defender_cells`: cells with fewer than ``k`` defenders merged into
    larger squares, then shown as "fewer than k"), alerts by area without ids (highest level
    and counts per cell, reasons in general words), and patrol *areas* (the grid cells each unit
    patrols; no routes, no schedules, no GPX).

At every level free text (incident ``notes``) is withheld — it can name or locate people — and
only incidents dated on or before the run's ``as_of`` are shared; cells of fewer than ``k``
defenders show neither counts nor status nor alert level.

Every bundle has ``map.html`` (the commander's map at that level: the same
:class:`havenmap.maps.MapBuilder`, fewer layers), ``WITHHELD.json`` and ``README.txt`` (per
file: what was withheld or generalised and why) and ``manifest.json`` (every file's SHA-256;
also in the run manifests' schema, so ``havenmap verify`` checks a bundle).
CSV files carry an HXL hashtag row.

**The self-check.** The bundle is written to a private staging folder and every file is read
back (:class:`havenmap._leaks.LeakScanner`) before anything is moved into place: no defender id
or name, no private haven or base (ids, names), and no point, coordinate row or route end
within the generalisation radius (half a cell, ``cell_m / 2``) of a defender, base or private
haven — the public road network, public havens and the grid itself aside. If anything is found
the bundle is not written and :class:`BundleLeakError` names the file and what leaked.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import inspect
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import _checks, _io, _leaks, layers
from . import _maphtml as mh
from . import manifest as run_manifest
from ._maplayers import legible_cell_size, with_coverage
from .errors import InputError
from .privacy import DEFAULT_CELL_M, DEFAULT_K, DefenderCells, DefenderPrivacy, defender_cells

__all__ = [
    "BUNDLE_KIND",
    "LEVELS",
    "MAX_CELL_M",
    "Bundle",
    "BundleLeakError",
    "ShareInputs",
    "ShareOptions",
    "check_bundle",
    "check_cell_m",
    "share_inputs",
    "share_run",
]

PathLike = str | os.PathLike[str]
Step = Callable[[str], contextlib.AbstractContextManager[Any]]

LEVELS = ("public", "partner")
BUNDLE_KIND = "havenmap share bundle"
VIEW_GRID_DEG = 0.01  # the map's first view is snapped outward to this grid (no point of anyone's)
MAX_CELL_M = 100_000.0  # a cell of 100 km generalises a city away; larger is a typo (or inf)
MIN_K = 2  # k = 1 would publish single defenders' cells
FREE_TEXT_COLUMNS = ("notes",)  # the free-text incident columns (layers.INCIDENT_COLUMNS): never published
_WGS84 = "EPSG:4326"
_GENERIC_REASONS = {
    "critical": "a surge of violent events and a severe incident close by",
    "high": "a surge of violent events, or a deadly incident, close by",
    "elevated": "a severe incident close by",
}


class BundleLeakError(InputError):
    """The self-check found a defender, private haven or base in a file; nothing was written."""


@dataclass(frozen=True)
class ShareOptions:
    """What a bundle may show.

    Parameters
    ----------
    level
        ``"public"`` or ``"partner"`` (see the module docstring).
    k
        k-anonymity floor of the partner level's defender cells (default 5, at least 2).
    cell_m
        Side of the grid cells, metres (default 500, at least 100, at most 100 km): incidents, coverage,
        defenders, alerts and patrol areas are all generalised to it. The self-check's radius is
        half of it.
    """

    level: str = "public"
    k: int = DEFAULT_K
    cell_m: float = DEFAULT_CELL_M

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise InputError(f"--level {self.level!r}: use one of {', '.join(LEVELS)}")
        object.__setattr__(self, "cell_m", check_cell_m(self.cell_m))
        if isinstance(self.k, (int, np.integer)) and not isinstance(self.k, bool) and self.k < MIN_K:
            raise InputError(
                f"--k {self.k}: a share bundle needs k of at least {MIN_K} (k = 1 publishes cells of one defender)"
            )
        DefenderPrivacy(cell_size_m=self.cell_m, k=self.k)  # the same rules as the maps' cells

    @property
    def radius_m(self) -> float:
        """The generalisation radius: no point within it of a defender, base or private haven."""
        return self.cell_m / 2.0

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "share") -> ShareOptions:
        """Build from a mapping (a TOML table); unknown keys are an :class:`InputError`."""
        _checks.check_keys(cls, values, source)
        return cls(**values)


def check_cell_m(value: float) -> float:
    """``value`` as a cell side in metres: finite, at least 100 m (the privacy grid's rule), at most 100 km.

    Raises
    ------
    havenmap.errors.InputError
        One line naming ``--cell-m``.
    """
    try:
        side = float(value)
    except (TypeError, ValueError):
        raise InputError(f"--cell-m {value!r}: give a cell side in metres (100 to {MAX_CELL_M:g})") from None
    if math.isnan(side):
        raise InputError("--cell-m nan: give a cell side in metres (100 to 100000); nan is not a number")
    if not math.isfinite(side) or side > MAX_CELL_M:
        raise InputError(f"--cell-m {side:g}: give a finite cell side of at most {MAX_CELL_M:g} m (100 km)")
    try:
        return float(DefenderPrivacy(cell_size_m=side).cell_size_m)
    except InputError:
        raise InputError(
            f"--cell-m {side:g}: give a cell side of at least 100 m (smaller cells point at people)"
        ) from None


@dataclass
class ShareInputs:
    """The run's input files a bundle needs: the sensitive ones for the self-check, and the incidents.

    Attributes
    ----------
    defenders, havens
        Always needed (defenders for the self-check and the partner cells; havens for which are
        public).
    bases
        Patrol bases (needed when the run planned patrols).
    incidents
        Incident feeds (merged as :func:`havenmap.feeds.read_incident_feeds`); none: no incident table.
    network
        The road network, only when the run folder has no ``threat/edge_risk.geojson`` to take
        the public roads from.
    """

    defenders: Path
    havens: Path
    bases: Path | None = None
    incidents: list[Path] = field(default_factory=list)
    network: Path | None = None

    def files(self) -> dict[str, Path | list[Path] | None]:
        """Option name → file(s), for :func:`havenmap._io.check_paths`."""
        return {
            "--defenders": self.defenders,
            "--havens": self.havens,
            "--bases": self.bases,
            "--incidents": self.incidents or None,
            "--network": self.network,
        }


@dataclass
class Bundle:
    """A written share bundle: its folder, level, files (name → SHA-256) and a summary of what it holds."""

    folder: Path
    level: str
    files: dict[str, str]
    summary: dict[str, Any]


# ---------------------------------------------------------------------- inputs


def share_inputs(
    run_dir: PathLike,
    *,
    defenders: PathLike | None = None,
    havens: PathLike | None = None,
    bases: PathLike | None = None,
    incidents: Sequence[PathLike] | None = None,
    network: PathLike | None = None,
) -> ShareInputs:
    """The inputs of a run: the given files, else those ``run_dir/manifest.json`` lists (checked by SHA-256).

    A given ``defenders``, ``havens``, ``bases`` or incident file must be the one the run used when
    the run's manifest lists that role (same SHA-256): the self-check looks for the people and
    places of the run, not of another file.

    Raises
    ------
    havenmap.errors.InputError
        ``run_dir`` is no run folder; defenders or havens (or bases, for a run with patrols) are
        neither given nor in a manifest; a manifest's file is missing or changed since the run; a
        given file is not the one the run's manifest lists.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise InputError(f"{run}: no such folder; give the output folder of a run (havenmap demo / run)")
    if not (run / "report.json").is_file():
        raise InputError(f"{run}: not a havenmap run folder (no report.json); give the folder a run wrote")
    record = _read_run_manifest(run)
    entries = _manifest_entries(run, record)
    chosen: dict[str, Any] = {}
    for key, given in (("defenders", defenders), ("havens", havens), ("bases", bases), ("network", network)):
        if given is not None:
            if key != "network":
                _check_given(run, key, Path(given), entries.get(key, []))
            chosen[key] = Path(given)
        elif entries.get(key):
            chosen[key] = _manifest_file(run, key, entries[key][0])
        else:
            chosen[key] = None
    patrols = _run_has(run, record, "patrol/patrol_routes.geojson")
    needed = ["defenders", "havens", *(["bases"] if patrols else [])]
    missing = [k for k in needed if chosen[k] is None]
    if missing:
        flags = " ".join(f"--{k} FILE" for k in needed)
        where = "its manifest.json lists no" if record is not None else "it has no manifest.json naming the"
        raise InputError(
            f"{run}: {where} {' and '.join(missing)}; pass {flags} (the files the run used: the self-check "
            "looks for those people and places in every file of the bundle)"
        )
    if incidents:
        feeds = [Path(p) for p in incidents]
        for feed in feeds:
            _check_given(run, "incidents", feed, entries.get("incidents", []))
    else:
        feeds = [_manifest_file(run, name, named) for name, named in entries.get("incidents", [])]
    return ShareInputs(
        defenders=chosen["defenders"],
        havens=chosen["havens"],
        bases=chosen["bases"],
        incidents=feeds,
        network=chosen["network"],
    )


def _read_run_manifest(run: Path) -> dict[str, Any] | None:
    """``run/manifest.json`` as a mapping (None without one); its ``inputs`` must be a table."""
    path = run / run_manifest.MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read it as JSON ({exc}); pass the input files as options") from None
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), dict):
        raise InputError(f"{path}: no 'inputs' table; pass --defenders, --havens (and --bases) instead")
    return data


def _manifest_entries(run: Path, record: dict[str, Any] | None) -> dict[str, list[tuple[str, Any]]]:
    """Role → ``[(role as written, entry), ...]``; ``incidents``, ``incidents_2``, ... all under ``incidents``."""
    out: dict[str, list[tuple[str, Any]]] = {}
    for key, entry in (record or {}).get("inputs", {}).items():
        role = "incidents" if str(key).startswith("incidents") else str(key)
        for item in entry if isinstance(entry, list) else [entry]:
            if item is not None:
                out.setdefault(role, []).append((str(key), item))
    return out


def _manifest_file(run: Path, key: str, named: tuple[str, Any] | Any) -> Path:
    """The file of a manifest entry, checked by SHA-256."""
    manifest = run / run_manifest.MANIFEST
    key, entry = named if isinstance(named, tuple) else (key, named)
    raw = entry.get("path") if isinstance(entry, dict) else entry
    role = "incidents" if key.startswith("incidents") else key
    if not isinstance(raw, str) or not raw:
        raise InputError(f"{manifest}: inputs.{key} has no path; pass the file as an option instead")
    file = Path(raw) if Path(raw).is_absolute() else run / raw
    if not file.is_file():
        raise InputError(f"{manifest}: inputs.{key} {raw}: file not found; pass --{role} FILE instead")
    expected = entry.get("sha256") if isinstance(entry, dict) else None
    if expected and run_manifest.sha256_file(file) != str(expected).lower():
        raise InputError(
            f"{manifest}: inputs.{key} {raw} changed since the run (SHA-256 differs); "
            f"pass the file the run used with --{role} FILE"
        )
    return file


def _check_given(run: Path, role: str, given: Path, listed: list[tuple[str, Any]]) -> None:
    """Refuse a given file that is not the one (or, for incidents, one of those) the run's manifest lists."""
    digests = {str(e.get("sha256")).lower() for _, e in listed if isinstance(e, dict) and e.get("sha256")}
    if not digests or not given.is_file():
        return
    if run_manifest.sha256_file(given) not in digests:
        used = ", ".join(str(e.get("path")) for _, e in listed if isinstance(e, dict))
        raise InputError(
            f"--{role} {given}: the run used another file ({used}, by {run / run_manifest.MANIFEST}: SHA-256 "
            f"differs); pass the file the run used, or share a run made with this one"
        )


def _run_outputs(run: Path, record: dict[str, Any] | None) -> set[str] | None:
    """The run's output files by its manifest (None: no manifest, or one without an outputs table)."""
    outputs = (record or {}).get("outputs")
    return {str(k) for k in outputs} if isinstance(outputs, dict) else None


def _run_has(run: Path, record: dict[str, Any] | None, rel: str) -> bool:
    """Whether the run wrote ``rel``: by its manifest's outputs (a re-run into an old folder leaves others)."""
    listed = _run_outputs(run, record)
    return (run / rel).is_file() and (listed is None or rel in listed)


# ---------------------------------------------------------------------- the run folder


@dataclass
class _Run:
    """The run outputs a bundle is made from (None where the run has none)."""

    folder: Path
    report: dict[str, Any]
    coverage: pd.DataFrame | None = None
    service_areas: gpd.GeoDataFrame | None = None
    edge_risk: gpd.GeoDataFrame | None = None
    hotspots: gpd.GeoDataFrame | None = None
    alerts: pd.DataFrame | None = None
    patrol_routes: gpd.GeoDataFrame | None = None

    @property
    def minutes(self) -> list[float]:
        bands = (self.report.get("coverage") or {}).get("bands") or {}
        values = sorted(float(b) for b in bands)
        if not values and self.service_areas is not None and "minutes" in self.service_areas:
            values = sorted(float(m) for m in pd.to_numeric(self.service_areas["minutes"]).dropna().unique())
        return values

    @property
    def title(self) -> str:
        return mh.plain(self.report.get("scenario"), 120) or self.folder.name


def _read_run(folder: Path) -> _Run:
    try:
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{folder / 'report.json'}: cannot read it as JSON ({exc})") from None
    run = _Run(folder=folder, report=report if isinstance(report, dict) else {})
    record = _read_run_manifest(folder)

    def geo(rel: str) -> gpd.GeoDataFrame | None:
        path = folder / rel
        if not _run_has(folder, record, rel):
            return None
        try:
            frame = gpd.read_file(path)
        except Exception as exc:  # pyogrio raises several types for unreadable files
            raise InputError(f"{path}: cannot read it as GeoJSON ({exc})") from None
        return frame if frame.crs is not None else frame.set_crs(_WGS84)

    def table(rel: str) -> pd.DataFrame | None:
        path = folder / rel
        return _io.read_table(path, str(path)) if _run_has(folder, record, rel) else None

    run.coverage = table("coverage/coverage.csv")
    run.service_areas = geo("coverage/service_areas.geojson")
    run.edge_risk = geo("threat/edge_risk.geojson")
    run.hotspots = geo("threat/hotspots.geojson")
    run.alerts = table("threat/alerts.csv")
    run.patrol_routes = geo("patrol/patrol_routes.geojson")
    return run


# ---------------------------------------------------------------------- the grid


class _Grid:
    """The publication grid: squares of ``cell_m`` metres in the local UTM zone, corners on multiples of the side."""

    def __init__(self, crs: Any, cell_m: float) -> None:
        self.crs = crs
        self.cell_m = float(cell_m)

    def keys(self, geoms: gpd.GeoSeries) -> np.ndarray:
        """``(n, 2)`` cell indices of points (representative points of other geometry)."""
        pts = geoms.to_crs(self.crs)
        pts = pts if (pts.geom_type == "Point").all() else pts.representative_point()
        xy = shapely.get_coordinates(pts.to_numpy())
        return np.floor(xy / self.cell_m).astype(np.int64)

    def ids(self, keys: np.ndarray, size: float | np.ndarray | None = None) -> list[str]:
        side = np.broadcast_to(np.asarray(self.cell_m if size is None else size, dtype=float), (len(keys),))
        return [f"{s:g}m-E{int(x)}-N{int(y)}" for s, (x, y) in zip(side, keys, strict=True)]

    def squares(self, keys: np.ndarray, size: float | None = None) -> gpd.GeoSeries:
        side = self.cell_m if size is None else float(size)
        x0, y0 = keys[:, 0] * side, keys[:, 1] * side
        return gpd.GeoSeries(shapely.box(x0, y0, x0 + side, y0 + side), crs=self.crs)

    def centres(self, keys: np.ndarray, size: float | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Latitude and longitude (6 decimals) of the squares' centres."""
        side = self.cell_m if size is None else np.asarray(size, dtype=float)
        pts = gpd.GeoSeries(gpd.points_from_xy((keys[:, 0] + 0.5) * side, (keys[:, 1] + 0.5) * side), crs=self.crs)
        pts = pts.to_crs(_WGS84)
        return np.round(pts.y.to_numpy(), 6), np.round(pts.x.to_numpy(), 6)

    def cells_along(self, geoms: Sequence[Any], metric: bool = False) -> np.ndarray:
        """Unique keys of the cells any of ``geoms`` (lines, polygons; EPSG:4326 unless ``metric``) touch."""
        series = gpd.GeoSeries(list(geoms), crs=self.crs if metric else _WGS84).to_crs(self.crs)
        series = series[series.notna() & ~series.is_empty]
        if series.empty:
            return np.zeros((0, 2), dtype=np.int64)
        lo = np.floor(series.bounds[["minx", "miny"]].to_numpy() / self.cell_m).astype(np.int64)
        hi = np.floor(series.bounds[["maxx", "maxy"]].to_numpy() / self.cell_m).astype(np.int64)
        found = []
        for geom, (x0, y0), (x1, y1) in zip(series.to_numpy(), lo, hi, strict=True):
            kx, ky = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1))
            keys = np.column_stack([kx.ravel(), ky.ravel()])
            boxes = self.squares(keys).to_numpy()
            found.append(keys[shapely.intersects(boxes, geom)])
        return np.unique(np.concatenate(found), axis=0) if found else np.zeros((0, 2), dtype=np.int64)


# ---------------------------------------------------------------------- the tables


def _week_start(dates: pd.Series) -> pd.Series:
    day = pd.to_datetime(dates, errors="coerce").dt.normalize()
    return day - pd.to_timedelta(day.dt.day_of_week, unit="D")


def _incident_table(incidents: gpd.GeoDataFrame, grid: _Grid, level: str) -> pd.DataFrame:
    """Incidents generalised: the week (public) or day (partner), the cell and its centre.

    Free text (:data:`FREE_TEXT_COLUMNS`: ``notes``) is never published, at any level: it can name or
    locate people in ways no scanner is sure to read (coordinates in any notation, nicknames, addresses).
    """
    keys = grid.keys(incidents.geometry)
    lat, lon = grid.centres(keys)
    frame = pd.DataFrame(index=incidents.index)
    if level == "partner":
        frame["incident_id"] = incidents["incident_id"].astype(str)
        frame["date"] = pd.to_datetime(incidents["date"], errors="coerce").dt.date.astype("string")
    frame["week"] = _week_start(incidents["date"]).dt.date.astype("string")
    for col in ("event_type", "sub_event_type", "fatalities"):
        frame[col] = incidents[col].to_numpy()
    frame["n_sources"] = incidents["n_sources"].to_numpy() if "n_sources" in incidents else 1
    frame["sources"] = incidents["sources"].to_numpy() if "sources" in incidents else incidents["source"].to_numpy()
    frame["cell_id"] = grid.ids(keys)
    frame["latitude"], frame["longitude"] = lat, lon
    frame["cell_size_m"] = grid.cell_m
    frame = frame.replace({"NaT": pd.NA})
    return frame.sort_values(["week", "cell_id"], kind="stable", na_position="last").reset_index(drop=True)


def _incident_cells(table: pd.DataFrame) -> gpd.GeoDataFrame:
    """One point per cell with incidents (its centre), with tooltip lines, for the map."""
    rows = []
    for cell, part in table.groupby("cell_id", sort=True):
        n, killed = len(part), int(pd.to_numeric(part["fatalities"], errors="coerce").fillna(0).sum())
        weeks = part["week"].dropna()
        types = part["event_type"].astype(str).value_counts()
        rows.append(
            {
                "what": f"{n} incident{'s' if n != 1 else ''}" + (f" ({killed} killed)" if killed else ""),
                "when": f"weeks of {weeks.min()} – {weeks.max()}" if len(weeks) else "undated",
                "types": ", ".join(f"{t} ({c})" for t, c in types.head(3).items()),
                "cell": f"cell {cell}",
                "latitude": part["latitude"].iloc[0],
                "longitude": part["longitude"].iloc[0],
            }
        )
    frame = pd.DataFrame(rows)
    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame["longitude"], frame["latitude"]), crs=_WGS84)


def _dedupe_roads(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One row per physical road (both directions of a two-way road share a geometry)."""
    keys = shapely.to_wkb(shapely.normalize(frame.geometry.to_numpy()))
    first = np.unique(keys, return_index=True)[1]
    return frame.iloc[np.sort(first)].reset_index(drop=True)


def _threat_roads(
    edge_risk: gpd.GeoDataFrame, hotspots: gpd.GeoDataFrame | None, grid: _Grid, per_cell: bool
) -> gpd.GeoDataFrame:
    """Roads with risk > 0 (one row per physical road): ``u, v, key, name, highway, risk`` and hot-spot columns.

    ``per_cell`` (the public level): each road's ``risk`` is the length-weighted mean risk of all
    roads whose midpoints lie in the same publication cell (``cell_id``), so no road reveals more
    than its cell — a short piece in front of an attacked home would otherwise pin the incident.
    """
    roads = _dedupe_roads(edge_risk.to_crs(_WGS84))
    risk = pd.to_numeric(roads["risk"], errors="coerce").fillna(0.0).to_numpy(dtype=float)
    if per_cell and len(roads):
        risk, keys = _cell_mean_risk(roads, risk, grid)
        roads["cell_id"] = grid.ids(keys)
    roads["risk"] = risk
    roads = roads.loc[risk > 0].copy()
    roads["risk"] = roads["risk"].round(4)
    for col in ("significance", "gi_z", "p_value"):
        roads[col] = None
    if hotspots is not None and len(hotspots):
        hot = hotspots.to_crs(_WGS84)
        keys = pd.Series(np.arange(len(hot)), index=shapely.to_wkb(shapely.normalize(hot.geometry.to_numpy())))
        keys = keys[~keys.index.duplicated()]
        at = keys.reindex(shapely.to_wkb(shapely.normalize(roads.geometry.to_numpy()))).to_numpy()
        found = np.isfinite(at)
        idx = at[found].astype(int)
        roads.loc[roads.index[found], "significance"] = hot["significance"].to_numpy()[idx]
        roads.loc[roads.index[found], "gi_z"] = pd.to_numeric(hot["gi_z"]).round(3).to_numpy()[idx]
        roads.loc[roads.index[found], "p_value"] = pd.to_numeric(hot["p_value"]).to_numpy()[idx]
    cols = ("u", "v", "key", "name", "highway", "risk", "cell_id", "significance", "gi_z", "p_value")
    cols = [c for c in cols if c in roads]
    return gpd.GeoDataFrame(roads[cols].reset_index(drop=True), geometry=roads.geometry.to_numpy(), crs=_WGS84)


def _cell_mean_risk(roads: gpd.GeoDataFrame, risk: np.ndarray, grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """Per road: the length-weighted mean risk of the cell of its midpoint, and that cell's key."""
    metric = roads.geometry.to_crs(grid.crs).to_numpy()
    length = shapely.length(metric)
    mid = shapely.line_interpolate_point(metric, 0.5, normalized=True)
    keys = np.floor(shapely.get_coordinates(mid) / grid.cell_m).astype(np.int64)
    _, cell = np.unique(keys, axis=0, return_inverse=True)
    cell = np.asarray(cell).ravel()
    total = np.bincount(cell, weights=length)
    weighted = np.bincount(cell, weights=length * risk)
    plain = np.bincount(cell, weights=risk) / np.bincount(cell)  # cells of zero-length pieces only
    mean = np.where(total > 0, weighted / np.where(total > 0, total, 1.0), plain)
    return mean[cell], keys


def _coverage_cells(
    areas: gpd.GeoDataFrame | None,
    public_ids: set[str],
    grid: _Grid,
    roads: gpd.GeoDataFrame | None,
    minutes: Sequence[float],
) -> gpd.GeoDataFrame | None:
    """Per grid cell (cells with roads or reach): the share of its area within each band of a *public* haven."""
    if areas is None or not minutes:
        return None
    areas = areas.loc[areas["haven_id"].astype(str).isin(public_ids).to_numpy()].to_crs(grid.crs)
    keys = [grid.cells_along(areas.geometry.to_numpy(), metric=True)]
    if roads is not None:
        keys.append(grid.cells_along(roads.geometry.to_numpy()))
    keys = np.unique(np.concatenate(keys), axis=0) if any(len(k) for k in keys) else np.zeros((0, 2), np.int64)
    if not len(keys):
        return None
    boxes = grid.squares(keys).to_numpy()
    lat, lon = grid.centres(keys)
    frame = pd.DataFrame({"cell_id": grid.ids(keys), "latitude": lat, "longitude": lon, "cell_size_m": grid.cell_m})
    band = np.full(len(keys), np.nan)
    band_minutes = pd.to_numeric(areas["minutes"], errors="coerce").to_numpy()
    for m in sorted(minutes, reverse=True):
        reach = shapely.union_all(areas.geometry.to_numpy()[band_minutes == m]) if len(areas) else None
        share = (
            np.zeros(len(keys)) if reach is None or reach.is_empty else shapely.area(shapely.intersection(boxes, reach))
        )
        share = np.round(np.asarray(share) / grid.cell_m**2, 3)
        frame[f"share_within_{m:g}"] = share
        band = np.where(share >= 0.5, m, band)
    frame = frame[[*frame.columns[:4], *sorted(frame.columns[4:], key=lambda c: float(c.rsplit("_", 1)[1]))]]
    frame["band_min"] = band
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(boxes, crs=grid.crs).to_crs(_WGS84).to_numpy(), crs=_WGS84)


def _defender_status(defenders: gpd.GeoDataFrame, coverage: pd.DataFrame | None, slow: float) -> np.ndarray | None:
    joined = with_coverage(defenders, coverage) if coverage is not None else defenders
    return mh.defender_status(joined, slow)


def _defender_table(agg: DefenderCells, grid: _Grid) -> gpd.GeoDataFrame:
    """The k-anonymous cells as published: counts blank where fewer than k (``suppressed``)."""
    cells = agg.cells
    metric = cells.geometry.to_crs(agg.crs)
    size = cells["size_m"].to_numpy(dtype=float)
    lower = metric.bounds[["minx", "miny"]].to_numpy()
    keys = np.round(lower / size[:, None]).astype(np.int64)
    lat, lon = grid.centres(keys, size)
    frame = pd.DataFrame({"cell_id": grid.ids(keys, size), "latitude": lat, "longitude": lon, "cell_size_m": size})
    hidden = cells["suppressed"].to_numpy(dtype=bool)
    for col, name in (("count", "defenders"), ("covered", "covered"), ("slow", "slow"), ("unreachable", "unreachable")):
        values = cells[col].to_numpy() if col in cells else np.zeros(len(cells), dtype=np.int64)
        frame[name] = pd.Series(values, dtype="Int64", index=frame.index).mask(hidden)
    frame["suppressed"] = hidden
    return gpd.GeoDataFrame(frame, geometry=cells.geometry.to_numpy(), crs=_WGS84)


def _alerts_by_area(alerts: pd.DataFrame, defenders: gpd.GeoDataFrame, agg: DefenderCells, cells: pd.DataFrame):
    """Active alerts per defender cell: highest level, counts (blank in cells of fewer than k), reason in general words.

    Where a cell holds fewer than k defenders its level is blank as well as its counts, and the
    map gets none of its alerts: a level (or a cell's colour) is a count in disguise.

    Also returns the alerts the map draws: one per alerted defender in a published cell, its level
    and the general reason only.
    """
    active = mh.active_alerts(alerts)
    ids = defenders["id"].astype(str)
    position = pd.Series(np.arange(len(ids)), index=ids.to_numpy())
    active = active.loc[active["defender_id"].astype(str).isin(position.index)]
    level = active["level"].astype(str).str.lower() if "level" in active else pd.Series("alert", index=active.index)
    generic = pd.DataFrame(
        {
            "defender_id": active["defender_id"].astype(str).to_numpy(),
            "level": level.to_numpy(),
            "reason": [_GENERIC_REASONS.get(w, "violence close by") for w in level],
        }
    )
    cell = agg.cell_of[position.loc[generic["defender_id"]].to_numpy()] if len(generic) else np.zeros(0, np.int64)
    rows = []
    suppressed = agg.cells["suppressed"].to_numpy(dtype=bool)
    rank = active["rank"].to_numpy()
    for c in np.unique(cell):
        mine = cell == c
        hidden = bool(suppressed[c])
        top = generic["level"].to_numpy()[mine][np.argmax(rank[mine])]
        row = {"cell_id": cells["cell_id"].iloc[c], "latitude": cells["latitude"].iloc[c]}
        row.update(longitude=cells["longitude"].iloc[c], cell_size_m=cells["cell_size_m"].iloc[c])
        row["level"] = pd.NA if hidden else top  # a level of a cell of fewer than k tells of one of them
        row["defenders_alerted"] = pd.NA if hidden else int(generic.loc[mine, "defender_id"].nunique())
        for word in ("critical", "high", "elevated"):
            row[word] = pd.NA if hidden else int((generic.loc[mine, "level"] == word).sum())
        row["suppressed"] = hidden
        row["reason"] = (
            f"fewer than {agg.k} defenders: level and counts withheld"
            if hidden
            else _GENERIC_REASONS.get(top, "violence close by")
        )
        rows.append(row)
    columns = ["cell_id", "latitude", "longitude", "cell_size_m", "level", "defenders_alerted"]
    columns += ["critical", "high", "elevated", "suppressed", "reason"]
    table = pd.DataFrame(rows, columns=columns)
    for col in ("defenders_alerted", "critical", "high", "elevated"):
        table[col] = table[col].astype("Int64")
    shown = ~suppressed[cell] if len(generic) else np.zeros(0, dtype=bool)
    return table, generic.loc[shown].reset_index(drop=True)


def _patrol_areas(routes: gpd.GeoDataFrame, grid: _Grid) -> gpd.GeoDataFrame | None:
    """Per unit: the grid cells its routes pass through on any day (``unit, days, cells, area_km2``)."""
    if routes is None or routes.empty or "unit" not in routes:
        return None
    rows, geoms = [], []
    for unit, part in routes.to_crs(_WGS84).groupby(routes["unit"].astype(str), sort=True):
        keys = grid.cells_along(part.geometry.to_numpy())
        if not len(keys):
            continue
        area = shapely.union_all(grid.squares(keys).to_numpy())
        days = part["day"].nunique() if "day" in part else 1
        rows.append({"unit": unit, "days": int(days), "cells": len(keys), "area_km2": round(area.area / 1e6, 3)})
        geoms.append(area)
    if not rows:
        return None
    return gpd.GeoDataFrame(rows, geometry=gpd.GeoSeries(geoms, crs=grid.crs).to_crs(_WGS84).to_numpy(), crs=_WGS84)


# ---------------------------------------------------------------------- the map


def _view_box(frames: Sequence[gpd.GeoDataFrame | None]) -> np.ndarray | None:
    boxes = [f.to_crs(_WGS84).total_bounds for f in frames if f is not None and len(f)]
    if not boxes:
        return None
    arr = np.array(boxes)
    west, south, east, north = arr[:, 0].min(), arr[:, 1].min(), arr[:, 2].max(), arr[:, 3].max()
    step = VIEW_GRID_DEG
    return np.round(
        [
            np.floor(west / step) * step,
            np.floor(south / step) * step,
            np.ceil(east / step) * step,
            np.ceil(north / step) * step,
        ],
        2,
    )


def _bundle_map(
    level: str,
    run: _Run,
    options: ShareOptions,
    *,
    roads: gpd.GeoDataFrame | None,
    threat_roads: gpd.GeoDataFrame | None,
    incidents: pd.DataFrame | None,
    havens: gpd.GeoDataFrame,
    coverage_cells: gpd.GeoDataFrame | None,
    defenders: gpd.GeoDataFrame | None = None,
    coverage: pd.DataFrame | None = None,
    alerts: pd.DataFrame | None = None,
    patrol_areas: gpd.GeoDataFrame | None = None,
    cell_size_m: float | None = None,
):
    """The commander's map at the bundle's level: the same MapBuilder and layers, fewer of them."""
    from .maps import MapBuilder

    privacy = DefenderPrivacy(cell_size_m=cell_size_m or options.cell_m, k=options.k, routes=False)
    builder = MapBuilder(
        title=f"{run.title} — {level} share", as_of=run.report.get("as_of"), roads=roads, privacy=privacy
    )
    hot = None
    if threat_roads is not None:
        hot = threat_roads.loc[threat_roads["significance"].notna().to_numpy()]
    builder.add_threat(None, threat_roads, hot if hot is not None and len(hot) else None)
    cells = None
    if incidents is not None and len(incidents):
        cells = _incident_cells(incidents)
        builder.add_points(
            "incident_cells",
            f"Incidents per {options.cell_m:g} m cell",
            "Threat",
            cells,
            icon_svg=mh.dot_swatch(mh.INCIDENT_COLOUR, "#5a1a00", 6),
            tooltip=("what", "when", "types", "cell"),
            legend_text=f"incidents in this {options.cell_m:g} m cell (at its centre; hover for counts)",
            show=hot is None or not len(hot),
        )
    if coverage_cells is not None:
        for i, m in enumerate(sorted(run.minutes)):
            inside = coverage_cells.loc[(coverage_cells[f"share_within_{m:g}"] >= 0.5).to_numpy()]
            if inside.empty:
                continue
            area = gpd.GeoDataFrame(geometry=[shapely.union_all(inside.geometry.to_numpy())], crs=_WGS84)
            builder.add_areas(
                f"public_band_{i + 1}",
                f"Within {m:g} min of a public haven",
                "Safety",
                area,
                colour=mh.BAND_COLOURS[min(i, len(mh.BAND_COLOURS) - 1)],
                opacity=0.15,
                legend_text=f"{options.cell_m:g} m cells at least half within {m:g} min of a public haven",
                show=i == 0,
            )
    builder.add_safety(
        havens=havens if len(havens) else None,
        defenders=defenders,
        coverage=coverage,
        alerts=alerts,
        slow_minutes=max(run.minutes) if run.minutes else 15.0,
    )
    if patrol_areas is not None:
        for i, row in enumerate(patrol_areas.itertuples(index=False)):
            builder.add_areas(
                f"patrol_area_{i + 1}",
                f"Patrol area of unit {row.unit}",
                "Patrols",
                gpd.GeoDataFrame(geometry=[row.geometry], crs=_WGS84),
                colour=mh.UNIT_COLOURS[i % len(mh.UNIT_COLOURS)],
                opacity=0.12,
                legend_text=f"cells unit {row.unit} patrols ({row.days} days planned); no routes or times",
                show=False,
            )
    if defenders is None:
        builder.summary_note(
            f"{level.capitalize()} share: incidents by week and {options.cell_m:g} m cell, public havens only, "
            "no defenders, patrols or alerts."
        )
    box = _view_box([roads, havens, cells, coverage_cells, patrol_areas])
    if box is not None:
        builder.include_in_view(bounds=box)
    return builder.build()


# ---------------------------------------------------------------------- the bundle


_FILES = {
    "incidents.csv": "incidents generalised: {incident_rule}; HXL hashtag row",
    "threat_roads.geojson": "risk (weighted incidents per km) and hot spots on the public road network: {roads_rule}",
    "havens.geojson": "public havens only (id, name, kind)",
    "coverage_cells.csv": "per {cell} m grid cell: share of its area within each band of a public haven; HXL row",
    "coverage_cells.geojson": "the same cells as polygons",
    "defenders_by_cell.csv": "defenders per k-anonymous cell (k = {k}): counts by status, blank where fewer than k",
    "defenders_by_cell.geojson": "the same cells as polygons",
    "alerts_by_area.csv": "active alerts per defender cell: highest level, counts, reason in general words; no ids; "
    "level and counts blank where fewer than k",
    "patrol_areas.csv": "per patrol unit: the grid cells it patrols, days planned, area",
    "patrol_areas.geojson": "the same areas as polygons (no routes, stops, times or GPX)",
    "map.html": "the commander's map at the {level} level: offline, self-contained",
    "WITHHELD.json": "per file of the run: what was withheld or generalised and why",
    "README.txt": "this file",
    "manifest.json": "SHA-256 of every other file of the bundle ('havenmap verify' checks them)",
}


def _withheld(level: str, run: _Run, counts: dict[str, int], options: ShareOptions) -> dict[str, Any]:
    partner = level == "partner"
    cell = f"{options.cell_m:g} m"
    runfiles: dict[str, str] = {
        "nearest_havens.geojson": "withheld: every route starts at a defender's position",
        "report.json": "withheld: it lists defender and haven ids; counts are in the bundle's tables",
        "map.html": f"rebuilt at the {level} level as map.html (the commander's map shows private havens, routes"
        + ("" if partner else ", defenders and alerts")
        + ")",
        "coverage/coverage.csv": (
            f"generalised into defenders_by_cell.csv (k-anonymous cells, k = {options.k}): "
            "per-defender rows point at people"
            if partner
            else "withheld: one row per defender"
        ),
        "coverage/coverage.json": "withheld: per-haven counts name private havens",
        "coverage/n_minus_1.csv": "withheld: per haven, private ones included",
        "coverage/closures_impact.csv": "withheld: one row per defender",
        "coverage/service_areas.geojson": f"generalised into coverage_cells (public havens only, {cell} cells): "
        "a private haven's service area shows where it is",
        "threat/edge_risk.geojson": "generalised into threat_roads.geojson: " + _roads_rule(level, options),
        "threat/hotspots.geojson": "merged into threat_roads.geojson (significance, gi_z, p_value)",
        "threat/node_risk.csv": "withheld: the same risk as threat_roads, per node",
        "threat/density_grid.geojson": "withheld: a fine (100 m) density grid of incident positions",
        "threat/clusters.geojson": "withheld: circles centred on incident sites; incidents.csv has them by cell",
        "threat/threat_map.html": "withheld: exact incident positions (map.html shows them by cell)",
        "threat/alerts.csv": (
            "generalised into alerts_by_area.csv: no ids, reasons without streets or distances"
            if partner
            else "withheld: alerts concern defenders"
        ),
        "threat/alerts.json": "withheld: as alerts.csv",
        "patrol/patrol_routes.geojson": (
            f"generalised into patrol_areas ({cell} cells per unit)" if partner else "withheld: patrols are not public"
        ),
        "patrol/gpx/*.gpx": "withheld: routes and stops (GPX is never shared)",
        "patrol/patrol_schedule.csv": "withheld: times and targets of visits",
        "patrol/target_frequency.csv": "withheld: targets include defenders' homes",
        "patrol/patrol_summary.json": "withheld: names bases and targets",
        "patrol/patrol_map.html": "withheld: routes and bases",
    }
    present = {k: v for k, v in runfiles.items() if k.endswith("*.gpx") or (run.folder / k).exists()}
    if any((run.folder / "patrol" / "gpx").glob("*.gpx")):
        present["patrol/gpx/*.gpx"] = runfiles["patrol/gpx/*.gpx"]
    incident_rule = (
        f"positions to the centre of a {cell} cell, dates kept to the day, notes removed"
        if partner
        else f"dates to the ISO week (Monday), positions to the centre of a {cell} cell, ids and notes removed"
    )
    as_of = run.report.get("as_of")
    if as_of:
        late = counts.get("incidents_after_as_of", 0)
        incident_rule += f"; only incidents dated on or before the run's as_of ({as_of}): {late} later ones left out"
    return {
        "level": level,
        "k": options.k,
        "cell_m": options.cell_m,
        "radius_m": options.radius_m,
        "self_check": (
            f"no defender, private haven or base (ids, names) and no point within {options.radius_m:g} m of one "
            "in any file; the public road network, public havens and the grid aside"
        ),
        "inputs": {
            "incidents": incident_rule if counts.get("incidents") else "none given",
            "havens": f"{counts.get('public_havens', 0)} public havens shared; "
            f"{counts.get('private_havens', 0)} private havens withheld (public column false or blank)",
            "defenders": (
                f"{counts.get('defenders', 0)} defenders counted in k-anonymous cells (k = {options.k}); "
                "ids, names and positions withheld"
                if partner
                else "withheld"
            ),
            "bases": "withheld: ids, names and positions",
            "free_text": f"incident {', '.join(FREE_TEXT_COLUMNS)} withheld at every level: free text can name or "
            "locate people (a name, an address, coordinates in any notation); event types, fatalities and feed "
            "names are kept",
        },
        "threat_roads": _roads_rule(level, options),
        "run_files": present,
    }


def _roads_rule(level: str, options: ShareOptions) -> str:
    if level == "partner":
        return "risk per road (one row per road with risk > 0)"
    return (
        f"risk per {options.cell_m:g} m cell: each road's risk is the length-weighted mean risk of the roads whose "
        "midpoints lie in its cell (cell_id), so no road shows more than its cell; roads of cells with risk > 0"
    )


def _describe(name: str, withheld: dict[str, Any], options: ShareOptions) -> str:
    """What a bundle file holds, in words (README.txt and manifest.json)."""
    return _FILES.get(name, "").format(
        incident_rule=withheld["inputs"]["incidents"],
        cell=f"{options.cell_m:g}",
        k=options.k,
        level=options.level,
        roads_rule=withheld["threat_roads"],
    )


def _readme(level: str, files: Sequence[str], withheld: dict[str, Any], options: ShareOptions, title: str) -> str:
    lines = [
        f"havenmap share bundle — {title} — {level} level",
        "",
        f"Made by 'havenmap share' from a planning run. Positions are generalised to {options.cell_m:g} m grid",
        f"cells; {withheld['self_check']}.",
        "Free text can name or locate people: it is withheld at every level (incident notes).",
        "CSV files carry an HXL hashtag row (second line) for HXL tools; GeoJSON is EPSG:4326.",
        "",
        "Files:",
    ]
    for name in files:
        lines.append(f"  {name}: {_describe(name, withheld, options)}")
    lines += ["", "Withheld or generalised (see WITHHELD.json):"]
    lines += [f"  {k}: {v}" for k, v in withheld["inputs"].items()]
    lines += [f"  {k}: {v}" for k, v in withheld["run_files"].items()]
    return "\n".join(lines) + "\n"


def share_run(
    run_dir: PathLike,
    out: PathLike,
    options: ShareOptions,
    inputs: ShareInputs,
    *,
    dedup: Any = None,
    step: Step | None = None,
) -> Bundle:
    """Write the share bundle of a run at ``options.level`` into ``out`` (see the module docstring).

    Parameters
    ----------
    run_dir
        The run's output folder.
    out
        The bundle folder: new, empty, or an earlier bundle (replaced).
    options
        Level, k and cell size.
    inputs
        The run's inputs (:func:`share_inputs`).
    dedup
        :class:`havenmap.feeds.DedupOptions` for several incident feeds.
    step
        Progress context manager factory, as the CLI's.

    Returns
    -------
    Bundle

    Raises
    ------
    BundleLeakError
        The self-check found a defender, private haven or base in a file: nothing is written.
    havenmap.errors.InputError
        Bad inputs, an output folder holding other files, outputs that are inputs.
    """
    step = step or (lambda _message: contextlib.nullcontext())
    run_dir, out = Path(run_dir), Path(out)
    _io.check_paths({"DIR": run_dir, **inputs.files()}, {"--out": out}, folders=["--out"])
    owned = _owned_files(out)
    if inputs.network is None and not _run_has(run_dir, _read_run_manifest(run_dir), "threat/edge_risk.geojson"):
        raise InputError(
            f"{run_dir}: the run has no threat/edge_risk.geojson to take the public roads from; pass --network "
            "FILE (the run's road network)"
        )
    with step("Reading the run and its inputs"):
        run = _read_run(run_dir)
        defenders = layers.read_defenders(inputs.defenders)
        havens = layers.read_havens(inputs.havens)
        bases = layers.read_bases(inputs.bases) if inputs.bases is not None else None
        incidents = None
        late = 0
        if inputs.incidents:
            from .feeds import read_incident_feeds

            incidents, late = _until_as_of(read_incident_feeds(inputs.incidents, dedup).incidents, run)
        roads = None
        if run.edge_risk is not None:
            roads = _dedupe_roads(run.edge_risk.to_crs(_WGS84))
        elif inputs.network is not None:
            from .network import load_network

            roads = load_network(inputs.network).edges_gdf(undirected=True).to_crs(_WGS84)
    level = options.level
    partner = level == "partner"
    public = havens.loc[havens["public"].to_numpy(dtype=bool)].reset_index(drop=True)
    crs = defenders.estimate_utm_crs()
    grid = _Grid(crs, options.cell_m)
    counts = {"defenders": len(defenders), "public_havens": len(public), "private_havens": len(havens) - len(public)}
    counts["incidents_after_as_of"] = late
    with step(f"Generalising the {level} tables"):
        tables: dict[str, Any] = {}
        inc_table = _incident_table(incidents, grid, level) if incidents is not None and len(incidents) else None
        counts["incidents"] = 0 if inc_table is None else len(inc_table)
        if inc_table is not None:
            tables["incidents.csv"] = inc_table
        threat_roads = None
        if run.edge_risk is not None:
            threat_roads = _threat_roads(run.edge_risk, run.hotspots, grid, per_cell=not partner)
        if threat_roads is not None:
            tables["threat_roads.geojson"] = threat_roads
        tables["havens.geojson"] = public[["id", "name", "kind", "geometry"]]
        cells = _coverage_cells(run.service_areas, set(public["id"].astype(str)), grid, roads, run.minutes)
        if cells is not None:
            tables["coverage_cells.csv"] = cells
            tables["coverage_cells.geojson"] = cells
        map_kw: dict[str, Any] = {}
        if partner:
            size = legible_cell_size(defenders, options.cell_m)
            slow = max(run.minutes) if run.minutes else 15.0
            status = _defender_status(defenders, run.coverage, slow)
            agg = defender_cells(defenders, status, cell_size_m=size, k=options.k, categories=mh.STATUS_ORDER)
            by_cell = _defender_table(agg, grid)
            tables["defenders_by_cell.csv"] = by_cell
            tables["defenders_by_cell.geojson"] = by_cell
            map_kw.update(defenders=defenders, coverage=run.coverage, cell_size_m=size)
            if run.alerts is not None:
                by_area, generic = _alerts_by_area(run.alerts, defenders, agg, by_cell)
                tables["alerts_by_area.csv"] = by_area
                map_kw["alerts"] = generic
            areas = _patrol_areas(run.patrol_routes, grid)
            if areas is not None:
                tables["patrol_areas.csv"] = areas
                tables["patrol_areas.geojson"] = areas
                map_kw["patrol_areas"] = areas
    with step("Drawing the map"):
        m = _bundle_map(
            level,
            run,
            options,
            roads=roads,
            threat_roads=threat_roads,
            incidents=inc_table,
            havens=public,
            coverage_cells=cells,
            **map_kw,
        )
    names = [*tables, "map.html", "WITHHELD.json", "README.txt", "manifest.json"]
    withheld = _withheld(level, run, counts, options)
    scanner = _scanner(defenders, havens, bases, public, roads, grid, options, _template_words(withheld))
    with (
        step("Writing the bundle and checking every file for defenders, private havens and bases"),
        _io.output_folder(out, sorted({*names, *owned})) as stage,
    ):
        for name, frame in tables.items():
            if name.endswith(".csv"):
                _io.write_csv(stage / name, frame, hxl=True)
            else:
                _io.write_geojson(stage / name, frame)
        from .maps import save_map

        save_map(m, stage / "map.html", private=False)
        _io.write_json(stage / "WITHHELD.json", withheld)
        _io.write_text(stage / "README.txt", _readme(level, names, withheld, options, run.title))
        hashes = {p.name: run_manifest.sha256_file(p) for p in sorted(stage.iterdir()) if p.is_file()}
        _write_bundle_manifest(stage, hashes, options, withheld)
        leaks = scanner.scan(stage)
        if leaks:
            first = leaks[0]
            more = f" (and {len(leaks) - 1} more finding{'s' if len(leaks) > 2 else ''})" if len(leaks) > 1 else ""
            raise BundleLeakError(
                f"--out {out}: not written: {first}{more}; remove it from the inputs (a haven's name, an "
                "incident's notes ...), or mark a haven private"
            )
    summary = {"level": level, "files": len(hashes) + 1, **counts, "incident_cells": 0}
    if inc_table is not None:
        summary["incident_cells"] = int(inc_table["cell_id"].nunique())
    return Bundle(folder=out, level=level, files=hashes, summary=summary)


def _until_as_of(incidents: gpd.GeoDataFrame, run: _Run) -> tuple[gpd.GeoDataFrame, int]:
    """Incidents dated on or before the run's ``as_of`` (undated ones kept), and how many were later."""
    as_of = pd.to_datetime(run.report.get("as_of"), errors="coerce")
    if pd.isna(as_of):
        return incidents, 0
    day = pd.to_datetime(incidents["date"], errors="coerce").dt.normalize()
    late = (day > as_of.normalize()).to_numpy()
    return incidents.loc[~late], int(late.sum())


def _write_bundle_manifest(
    stage: Path, hashes: dict[str, str], options: ShareOptions, withheld: dict[str, Any]
) -> None:
    """The bundle's manifest: a run manifest (so ``havenmap verify BUNDLE`` checks it) plus per file SHA-256,
    size and description.

    ``inputs`` is empty: the private input paths never leave the team.
    """
    files = {
        n: {"sha256": h, "bytes": int((stage / n).stat().st_size), "description": _describe(n, withheld, options)}
        for n, h in hashes.items()
    }
    run_manifest.write_manifest(
        stage,
        command=[
            "havenmap",
            "share",
            "--level",
            options.level,
            "--k",
            str(options.k),
            "--cell-m",
            f"{options.cell_m:g}",
        ],
        scenario={"level": options.level, "k": options.k, "cell_m": options.cell_m},
        inputs={},
        outputs=sorted(hashes),
        extra={"kind": BUNDLE_KIND, "level": options.level, "k": options.k, "cell_m": options.cell_m, "files": files},
        private=False,
    )


def _template_words(withheld: dict[str, Any]) -> set[str]:
    """havenmap's own words in a bundle: WITHHELD/README texts and the string literals of the modules that
    write the bundle and its map (legends, tooltips, labels): a name equal to one is no leak in free text (it is
    still looked for in id and name fields). The map's scripts are not scanned, so their words are not needed."""
    return {*_leaks.words(json.dumps(withheld)), *_code_words()}


@functools.cache
def _code_words() -> frozenset[str]:
    from . import _maplayers, maps

    texts: list[str] = []
    for module in (sys.modules[__name__], _maplayers, mh, maps):
        tree = ast.parse(inspect.getsource(module))
        texts += [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return frozenset(w for text in texts for w in _leaks.words(text))


def _scanner(
    defenders: gpd.GeoDataFrame,
    havens: gpd.GeoDataFrame,
    bases: gpd.GeoDataFrame | None,
    public: gpd.GeoDataFrame,
    roads: gpd.GeoDataFrame | None,
    grid: _Grid,
    options: ShareOptions,
    common_words: set[str] | None = None,
) -> _leaks.LeakScanner:
    from .maps import page_assets

    parts = [
        _secrets(defenders, "defender"),
        _secrets(havens.loc[~havens["public"].to_numpy(dtype=bool)], "private haven"),
    ]
    if bases is not None:
        parts.append(_secrets(bases, "base"))
    secrets = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs=_WGS84)
    public_xy = [shapely.get_coordinates(public.geometry.to_numpy())]
    road_names: list[str] = []
    if roads is not None:
        public_xy.append(shapely.get_coordinates(roads.geometry.to_numpy()))
        if "name" in roads:
            road_names = [mh.road_name(n) for n in roads["name"]]
    return _leaks.LeakScanner(
        secrets,
        np.concatenate(public_xy),
        road_names,
        grid.crs,
        grid_m=options.cell_m / 2.0,
        radius_m=options.radius_m,
        assets=page_assets(),
        common_words=common_words or set(),
        public_names=[mh.plain(n) for n in public["name"]] if "name" in public else [],  # a defender may share one
    )


def _secrets(frame: gpd.GeoDataFrame, kind: str) -> gpd.GeoDataFrame:
    names = frame["name"] if "name" in frame.columns else pd.Series([None] * len(frame), index=frame.index)
    return gpd.GeoDataFrame(
        {"kind": kind, "id": frame["id"].astype(str).to_numpy(), "name": names.to_numpy()},
        geometry=frame.geometry.to_crs(_WGS84).to_numpy(),
        crs=_WGS84,
    )


def _owned_files(out: Path) -> list[str]:
    """Files of an earlier bundle in ``out`` (replaced); any other file there is an error."""
    if not out.exists():
        return []
    present = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    if not present:
        return []
    listed: set[str] = set()
    manifest = out / "manifest.json"
    if manifest.is_file():
        with contextlib.suppress(OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            data = json.loads(manifest.read_text(encoding="utf-8"))
            if data.get("kind") == BUNDLE_KIND:
                listed = {*data.get("files", {}), "manifest.json"}
    strangers = [p for p in present if p not in listed]
    if strangers:
        raise InputError(
            f"--out {out}: holds files that are not an earlier share bundle ({', '.join(strangers[:3])}"
            f"{', …' if len(strangers) > 3 else ''}); give a new or empty folder (everything in it is shared)"
        )
    return sorted(listed)


def check_bundle(
    folder: PathLike,
    defenders: gpd.GeoDataFrame,
    havens: gpd.GeoDataFrame,
    bases: gpd.GeoDataFrame | None = None,
    *,
    roads: gpd.GeoDataFrame | None = None,
    options: ShareOptions | None = None,
) -> list[str]:
    """Run the self-check on any folder (e.g. a bundle after hand edits): the leaks found, in words.

    ``havens`` with their ``public`` column; ``roads`` the public road network (EPSG:4326 lines).
    """
    options = options or ShareOptions()
    if "public" not in havens:
        havens = havens.assign(public=False)
    public = havens.loc[havens["public"].to_numpy(dtype=bool)]
    grid = _Grid(defenders.estimate_utm_crs(), options.cell_m)
    scanner = _scanner(defenders, havens, bases, public, roads, grid, options, _template_words({}))
    return [str(leak) for leak in scanner.scan(Path(folder))]
